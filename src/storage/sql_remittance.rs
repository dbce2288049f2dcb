//! The remittance SQL both backends run, written once (see `sql_store.rs` for why a macro).

/// Rows per IN (…) list: well under SQLite's and PostgreSQL's parameter limits.
pub(super) const LOOKUP_CHUNK: usize = 500;

/// Rows per multi-row INSERT: at most 11 parameters a row, so 500 rows stay far below
/// SQLite's 32,766 and PostgreSQL's 65,535 parameters.
pub(super) const ROWS_PER_INSERT: usize = 500;

/// `$1, $2, …, $n`.
pub(super) fn placeholders(count: usize) -> String {
    (1..=count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

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

/// Expands the [`RemittanceStore`](super::remittance::RemittanceStore) implementation and its
/// writer for one backend.
macro_rules! impl_sql_remittances {
    ($store:ty, $writer:ident, $db:ty) => {
        /// Writes one remittance file in one transaction (rolled back if dropped).
        pub struct $writer {
            tx: sqlx::Transaction<'static, $db>,
            remittance_id: i64,
            remittance: $crate::storage::remittance::NewRemittance,
            /// The submission's audit row, written when the file commits.
            audit: $crate::storage::AuditEntry,
            /// The backend's slot for an open file, if it bounds them (released on drop).
            _slot: Option<tokio::sync::OwnedSemaphorePermit>,
        }

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
                let slot = self.file_slot().await;
                let mut tx = self.writer().begin().await?;
                // Another upload may hold the same batch id or content in its transaction for
                // as long as its file takes: wait for it only briefly, then answer "retry".
                <$store>::bound_claim_wait(&mut tx, true).await?;
                let inserted: Result<i64, sqlx::Error> = sqlx::query_scalar(
                    "INSERT INTO remittances (sender, batch_id, format, content_sha256, content_claim, received_at, received_on, \
                     line_count, total_cents, applied, applied_by_ssn, suspense, rejected) \
                     VALUES ($1, $2, $3, $4, $4, $5, $6, 0, 0, 0, 0, 0, 0) RETURNING remittance_id",
                )
                .bind(&remittance.sender)
                .bind(&remittance.batch_id)
                .bind(remittance.format)
                .bind(&remittance.content_sha256)
                .bind(&remittance.received_at)
                .bind(remittance.received_on.to_string())
                .fetch_one(&mut *tx)
                .await;
                let remittance_id = match inserted {
                    Ok(id) => id,
                    Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
                        return Err($crate::storage::StoreError::Conflict(format!(
                            "batch {} or its content was claimed by another upload",
                            remittance.batch_id
                        )))
                    }
                    // PostgreSQL's lock_not_available: the other upload is still being received.
                    Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("55P03") => {
                        return Err($crate::storage::StoreError::Conflict(format!(
                            "batch {} or its content is being received by another upload right now",
                            remittance.batch_id
                        )))
                    }
                    Err(error) => return Err(error.into()),
                };
                <$store>::bound_claim_wait(&mut tx, false).await?;
                Ok(Box::new($writer { tx, remittance_id, remittance, audit, _slot: slot }))
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
                case_numbers: &[String],
                ssn_hmacs: &[String],
            ) -> $crate::storage::StoreResult<$crate::storage::remittance::DirectoryPage> {
                use $crate::storage::sql_remittance::{placeholders, LOOKUP_CHUNK};
                use $crate::storage::sql_store as sql;
                let mut page = $crate::storage::remittance::DirectoryPage::default();
                for chunk in case_numbers.chunks(LOOKUP_CHUNK) {
                    let query = format!(
                        "SELECT c.case_number, c.obligor_id, o.ssn_hmac FROM cases c JOIN obligors o ON o.obligor_id = c.obligor_id \
                         WHERE c.case_number IN ({})",
                        placeholders(chunk.len())
                    );
                    let mut select = sqlx::query_as::<_, (String, String, String)>(&query);
                    for case in chunk {
                        select = select.bind(case);
                    }
                    for (case, obligor, ssn_hmac) in select.fetch_all(self.reader()).await? {
                        page.cases.insert(case, (sql::obligor_id(&obligor)?, ssn_hmac));
                    }
                }
                for chunk in ssn_hmacs.chunks(LOOKUP_CHUNK) {
                    let query = format!("SELECT ssn_hmac, obligor_id FROM obligors WHERE ssn_hmac IN ({})", placeholders(chunk.len()));
                    let mut select = sqlx::query_as::<_, (String, String)>(&query);
                    for hmac in chunk {
                        select = select.bind(hmac);
                    }
                    for (hmac, obligor) in select.fetch_all(self.reader()).await? {
                        page.obligors_by_ssn.entry(hmac).or_default().push(sql::obligor_id(&obligor)?);
                    }
                }
                Ok(page)
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

        #[async_trait::async_trait]
        impl $crate::storage::remittance::RemittanceWriter for $writer {
            async fn write_lines(&mut self, lines: &[$crate::storage::remittance::LineToWrite]) -> $crate::storage::StoreResult<()> {
                use $crate::storage::sql_remittance::ROWS_PER_INSERT;
                use $crate::storage::StoreError;
                // Many rows per statement: one round trip per few hundred lines, not four per line.
                let remittance_id = self.remittance_id;
                let received_at = self.remittance.received_at.clone();
                let line_number = |line: &$crate::storage::remittance::StoredLine| i64::try_from(line.line).expect("a line number fits in i64");
                let date = |line: &$crate::storage::remittance::StoredLine| line.pay_date.map(|d| d.to_string());

                let collected: Vec<_> = lines.iter().filter_map(|l| l.effects.collect.as_ref().map(|c| (l, c))).collect();
                for chunk in collected.chunks(ROWS_PER_INSERT) {
                    for (line, _) in chunk {
                        if line.record.obligor_id.is_none() || line.record.amount.is_none() || line.record.pay_date.is_none() {
                            return Err(StoreError::Corrupt(format!("line {} is collected without obligor, amount or date", line.record.line)));
                        }
                    }
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO collections (obligor_id, case_number, source, amount_cents, effective_date, status, received_at, remittance_id, remittance_line) ",
                    );
                    insert.push_values(chunk, |mut row, (line, collection)| {
                        let record = &line.record;
                        row.push_bind(record.obligor_id.as_ref().map(|o| o.to_string()))
                            .push_bind(collection.case_number.clone())
                            .push_bind("PAYROLL")
                            .push_bind(record.amount.map(|a| a.cents()))
                            .push_bind(date(record))
                            .push_bind("PENDING")
                            .push_bind(received_at.clone())
                            .push_bind(remittance_id)
                            .push_bind(line_number(record));
                    });
                    insert.build().execute(&mut *self.tx).await?;
                }

                for chunk in lines.chunks(ROWS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO remittance_lines (remittance_id, line, status, employer_fein, case_number, ssn_last4, amount_cents, \
                         pay_date, obligor_id, prenote, problems) ",
                    );
                    insert.push_values(chunk, |mut row, line| {
                        let record = &line.record;
                        row.push_bind(remittance_id)
                            .push_bind(line_number(record))
                            .push_bind(record.status.clone())
                            .push_bind(record.employer_fein.clone())
                            .push_bind(record.case_number.clone())
                            .push_bind(record.ssn_last4.clone())
                            .push_bind(record.amount.map(|a| a.cents()))
                            .push_bind(date(record))
                            .push_bind(record.obligor_id.as_ref().map(|o| o.to_string()))
                            .push_bind(record.prenote)
                            .push_bind(serde_json::to_string(&record.problems).expect("problems serialise"));
                    });
                    insert.build().execute(&mut *self.tx).await?;
                }

                let held: Vec<_> = lines.iter().filter_map(|l| l.effects.suspense.as_ref().map(|h| (l, h))).collect();
                for chunk in held.chunks(ROWS_PER_INSERT) {
                    for (line, _) in chunk {
                        if line.record.amount.is_none() || line.record.pay_date.is_none() {
                            return Err(StoreError::Corrupt(format!("line {} is held without amount or date", line.record.line)));
                        }
                    }
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO suspense_items (remittance_id, line, employer_fein, case_number, ssn_hmac, ssn_last4, amount_cents, \
                         pay_date, reason, state, created_at) ",
                    );
                    insert.push_values(chunk, |mut row, (line, hold)| {
                        let record = &line.record;
                        row.push_bind(remittance_id)
                            .push_bind(line_number(record))
                            .push_bind(record.employer_fein.clone())
                            .push_bind(record.case_number.clone())
                            .push_bind(hold.ssn_hmac.clone())
                            .push_bind(record.ssn_last4.clone())
                            .push_bind(record.amount.map(|a| a.cents()))
                            .push_bind(date(record))
                            .push_bind(hold.reason.clone())
                            .push_bind("OPEN")
                            .push_bind(received_at.clone());
                    });
                    insert.build().execute(&mut *self.tx).await?;
                }

                let notices: Vec<_> = lines.iter().filter(|l| l.effects.termination_notice).collect();
                for chunk in notices.chunks(ROWS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO termination_notices (remittance_id, line, employer_fein, obligor_id, case_number, ssn_last4, pay_date, created_at) ",
                    );
                    insert.push_values(chunk, |mut row, line| {
                        let record = &line.record;
                        row.push_bind(remittance_id)
                            .push_bind(line_number(record))
                            .push_bind(record.employer_fein.clone())
                            .push_bind(record.obligor_id.as_ref().map(|o| o.to_string()))
                            .push_bind(record.case_number.clone())
                            .push_bind(record.ssn_last4.clone())
                            .push_bind(date(record))
                            .push_bind(received_at.clone());
                    });
                    insert.build().execute(&mut *self.tx).await?;
                }
                Ok(())
            }

            async fn finish(
                self: Box<Self>,
                counts: $crate::storage::remittance::LineCounts,
            ) -> $crate::storage::StoreResult<$crate::storage::remittance::RemittanceSummary> {
                let $writer { mut tx, remittance_id, remittance, audit, _slot } = *self;
                let as_i64 = |n: u64| i64::try_from(n).expect("a count fits in i64");
                sqlx::query(
                    "UPDATE remittances SET line_count = $1, total_cents = $2, applied = $3, applied_by_ssn = $4, suspense = $5, \
                     rejected = $6 WHERE remittance_id = $7",
                )
                .bind(as_i64(counts.line_count))
                .bind(counts.total.cents())
                .bind(as_i64(counts.applied))
                .bind(as_i64(counts.applied_by_ssn))
                .bind(as_i64(counts.suspense))
                .bind(as_i64(counts.rejected))
                .bind(remittance_id)
                .execute(&mut *tx)
                .await?;
                $crate::storage::sql_access::insert_audit!(&mut *tx, &audit)?;
                $crate::crash_points::reached("remittance.before_commit");
                tx.commit().await?;
                $crate::crash_points::reached("remittance.after_commit");
                Ok($crate::storage::remittance::RemittanceSummary {
                    remittance_id,
                    sender: remittance.sender,
                    batch_id: remittance.batch_id,
                    format: remittance.format.to_owned(),
                    content_sha256: remittance.content_sha256,
                    received_at: remittance.received_at,
                    received_on: remittance.received_on,
                    counts,
                })
            }
        }
    };
}

pub(super) use impl_sql_remittances;
