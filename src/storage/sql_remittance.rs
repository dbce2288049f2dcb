//! The remittance SQL both backends run, written once (see `sql_store.rs` for why a macro).

pub(super) type SummaryRow = (i64, String, String, String, String, String, String, i64, i64, i64, i64, i64, i64);

pub(super) const SUMMARY_COLUMNS: &str = "remittance_id, sender, batch_id, format, content_sha256, received_at, received_on, \
     line_count, total_cents, applied, applied_by_ssn, suspense, rejected";

pub(super) fn summary(row: SummaryRow) -> Result<super::remittance::RemittanceSummary, super::StoreError> {
    let (
        remittance_id,
        sender,
        batch_id,
        format,
        content_sha256,
        received_at,
        received_on,
        lines,
        total,
        applied,
        by_ssn,
        suspense,
        rejected,
    ) = row;
    let count = |n: i64| u64::try_from(n).map_err(super::sql_store::corrupt("count"));
    Ok(super::remittance::RemittanceSummary {
        remittance_id,
        sender,
        batch_id,
        format,
        content_sha256,
        received_at,
        received_on: super::sql_store::date(&received_on)?,
        counts: super::remittance::LineCounts {
            line_count: count(lines)?,
            total: crate::domain::Money::from_cents(total),
            applied: count(applied)?,
            applied_by_ssn: count(by_ssn)?,
            suspense: count(suspense)?,
            rejected: count(rejected)?,
        },
    })
}

/// Expands the [`RemittanceStore`](super::remittance::RemittanceStore) implementation for one
/// backend. Each backend writes a file its own way (`begin_file`): SQLite on a thread of its
/// own (`sqlite_files.rs`), PostgreSQL in a transaction of its pool (`postgres_files.rs`).
macro_rules! impl_sql_remittances {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::remittance::RemittanceStore for $store {
            async fn remittance_by_batch(
                &self,
                sender: &str,
                batch_id: &str,
            ) -> $crate::storage::StoreResult<Option<$crate::storage::remittance::RemittanceSummary>> {
                use $crate::storage::sql_remittance::{summary, SummaryRow, SUMMARY_COLUMNS};
                let row: Option<SummaryRow> = sqlx::query_as(&format!("SELECT {SUMMARY_COLUMNS} FROM remittances WHERE sender = $1 AND batch_id = $2"))
                    .bind(sender)
                    .bind(batch_id)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(summary).transpose()
            }

            async fn remittance_by_content(
                &self,
                sender: &str,
                content_sha256: &str,
            ) -> $crate::storage::StoreResult<Option<$crate::storage::remittance::RemittanceSummary>> {
                use $crate::storage::sql_remittance::{summary, SummaryRow, SUMMARY_COLUMNS};
                let row: Option<SummaryRow> = sqlx::query_as(&format!(
                    "SELECT {SUMMARY_COLUMNS} FROM remittances WHERE sender = $1 AND content_sha256 = $2 ORDER BY remittance_id LIMIT 1"
                ))
                .bind(sender)
                .bind(content_sha256)
                .fetch_optional(self.reader())
                .await?;
                row.map(summary).transpose()
            }

            async fn remittances(
                &self,
                filter: &$crate::storage::remittance::FileFilter,
                before: Option<i64>,
                limit: u32,
            ) -> $crate::storage::StoreResult<Vec<$crate::storage::remittance::RemittanceSummary>> {
                use $crate::storage::sql_remittance::{summary, SummaryRow, SUMMARY_COLUMNS};
                // Every filter is a bound parameter; an absent one is NULL and holds for all.
                let rows: Vec<SummaryRow> = sqlx::query_as(&format!(
                    "SELECT {SUMMARY_COLUMNS} FROM remittances WHERE remittance_id < $1 \
                     AND ($2 IS NULL OR sender = $2) AND ($3 IS NULL OR received_on >= $3) AND ($4 IS NULL OR received_on <= $4) \
                     AND ($5 IS NULL OR EXISTS (SELECT 1 FROM remittance_lines l \
                                                WHERE l.remittance_id = remittances.remittance_id AND l.employer_fein = $5)) \
                     ORDER BY remittance_id DESC LIMIT $6"
                ))
                .bind(before.unwrap_or(i64::MAX))
                .bind(filter.sender.as_deref())
                .bind(filter.received_from.map(|d| d.to_string()))
                .bind(filter.received_to.map(|d| d.to_string()))
                .bind(filter.employer_fein.as_deref())
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                rows.into_iter().map(summary).collect()
            }

            async fn begin_remittance(
                &self,
                remittance: $crate::storage::remittance::NewRemittance,
                audit: $crate::storage::AuditEntry,
            ) -> $crate::storage::StoreResult<Box<dyn $crate::storage::remittance::RemittanceWriter>> {
                self.begin_file(remittance, audit).await
            }

            async fn remittance_lines_after(
                &self,
                remittance_id: i64,
                after_line: u64,
                limit: u32,
            ) -> $crate::storage::StoreResult<Vec<$crate::storage::remittance::StoredLine>> {
                use $crate::storage::sql_store::{self as sql, corrupt};
                let rows: Vec<(i64, String, Option<String>, Option<String>, Option<String>, Option<i64>, Option<String>, Option<String>, bool, String)> =
                    sqlx::query_as(
                        "SELECT line, status, employer_fein, case_number, ssn_last4, amount_cents, pay_date, obligor_id, prenote, problems \
                         FROM remittance_lines WHERE remittance_id = $1 AND line > $2 ORDER BY line LIMIT $3",
                    )
                    .bind(remittance_id)
                    .bind(i64::try_from(after_line).unwrap_or(i64::MAX))
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter()
                    .map(|(line, status, employer_fein, case_number, ssn_last4, amount, pay_date, obligor, prenote, problems)| {
                        Ok($crate::storage::remittance::StoredLine {
                            line: u64::try_from(line).map_err(corrupt("line"))?,
                            status,
                            employer_fein,
                            case_number,
                            ssn_last4,
                            amount: amount.map($crate::domain::Money::from_cents),
                            pay_date: sql::optional_date(pay_date)?,
                            obligor_id: obligor.as_deref().map(sql::obligor_id).transpose()?,
                            prenote,
                            problems: serde_json::from_str(&problems).map_err(corrupt("line problems"))?,
                        })
                    })
                    .collect()
            }

            async fn directory(
                &self,
                case_numbers: Vec<String>,
                ssn_hmacs: Vec<String>,
            ) -> $crate::storage::StoreResult<$crate::storage::remittance::DirectoryPage> {
                self.directory_page(case_numbers, ssn_hmacs).await
            }

            async fn registry_generation(&self) -> $crate::storage::StoreResult<i64> {
                self.registry_generation_row().await
            }

            async fn registry_index(
                &self,
            ) -> $crate::storage::StoreResult<
                Result<$crate::domain::registry_index::RegistryIndex, $crate::domain::registry_index::Unindexable>,
            > {
                self.registry_index_rows().await
            }

            async fn suspense_after(
                &self,
                after_id: i64,
                limit: u32,
            ) -> $crate::storage::StoreResult<Vec<$crate::storage::remittance::SuspenseRecord>> {
                use $crate::storage::sql_store::{self as sql, corrupt};
                let rows: Vec<(i64, String, i64, Option<String>, Option<String>, i64, String, String, String)> = sqlx::query_as(
                    "SELECT s.suspense_id, r.batch_id, s.line, s.case_number, s.ssn_last4, s.amount_cents, s.pay_date, s.reason, s.state \
                     FROM suspense_items s JOIN remittances r ON r.remittance_id = s.remittance_id \
                     WHERE s.suspense_id > $1 ORDER BY s.suspense_id LIMIT $2",
                )
                .bind(after_id)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                rows.into_iter()
                    .map(|(suspense_id, batch_id, line, case_number, ssn_last4, cents, pay_date, reason, state)| {
                        Ok($crate::storage::remittance::SuspenseRecord {
                            suspense_id,
                            batch_id,
                            line: u64::try_from(line).map_err(corrupt("line"))?,
                            case_number,
                            ssn_last4,
                            amount: $crate::domain::Money::from_cents(cents),
                            pay_date: sql::date(&pay_date)?,
                            reason,
                            state,
                        })
                    })
                    .collect()
            }
        }

    };
}

pub(super) use impl_sql_remittances;
