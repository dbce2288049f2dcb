//! Writing a remittance file on PostgreSQL: one transaction of the pool, from the file's
//! claim of its batch id to its commit, its rows many a statement.

use async_trait::async_trait;
use sqlx::{Postgres, QueryBuilder, Transaction};

use super::postgres::PostgresStore;
use super::remittance::{DirectoryPage, LineCounts, LineToWrite, NewRemittance, RemittanceSummary, RemittanceWriter, StoredLine};
use super::sql_store::{self as sql, placeholders, LOOKUP_CHUNK, ROWS_PER_INSERT};
use super::{AuditEntry, StoreError, StoreResult};

/// Writes one remittance file in one transaction (rolled back if dropped).
pub(super) struct PostgresFileWriter {
    tx: Transaction<'static, Postgres>,
    remittance_id: i64,
    remittance: NewRemittance,
    /// The submission's audit row, written when the file commits.
    audit: AuditEntry,
    /// One of the store's slots for an open file (released on drop), so that open files never
    /// hold every connection their own registry lookups need.
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl PostgresStore {
    /// Claims the file's batch id and content and opens its transaction.
    pub(super) async fn begin_file(&self, remittance: NewRemittance, audit: AuditEntry) -> StoreResult<Box<dyn RemittanceWriter>> {
        let slot = self.file_slot().await;
        let mut tx = self.writer().begin().await?;
        // Another upload may hold the same batch id or content in its transaction for as long
        // as its file takes: wait for it only briefly (lock_timeout), then answer "retry".
        sqlx::query("SET LOCAL lock_timeout = '2s'").execute(&mut *tx).await?;
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
                return Err(StoreError::Conflict(format!("batch {} or its content was claimed by another upload", remittance.batch_id)))
            }
            // lock_not_available: the other upload is still being received.
            Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("55P03") => {
                return Err(StoreError::Conflict(format!(
                    "batch {} or its content is being received by another upload right now",
                    remittance.batch_id
                )))
            }
            Err(error) => return Err(error.into()),
        };
        sqlx::query("SET LOCAL lock_timeout = DEFAULT").execute(&mut *tx).await?;
        Ok(Box::new(PostgresFileWriter { tx, remittance_id, remittance, audit, _slot: slot }))
    }
}

impl PostgresStore {
    /// The cases and SSN HMACs a batch of lines quotes, a few hundred to a statement.
    pub(super) async fn directory_page(&self, case_numbers: Vec<String>, ssn_hmacs: Vec<String>) -> StoreResult<DirectoryPage> {
        let mut page = DirectoryPage::default();
        for chunk in case_numbers.chunks(LOOKUP_CHUNK) {
            let query = format!(
                "SELECT case_number, obligor_id FROM cases WHERE case_number IN ({})",
                placeholders(chunk.len())
            );
            let mut select = sqlx::query_as::<_, (String, String)>(&query);
            for case in chunk {
                select = select.bind(case);
            }
            for (case, obligor) in select.fetch_all(self.reader()).await? {
                page.cases.insert(case, sql::obligor_id(&obligor)?);
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
}

fn line_number(line: &StoredLine) -> i64 {
    i64::try_from(line.line).expect("a line number fits in i64")
}

fn date(line: &StoredLine) -> Option<String> {
    line.pay_date.map(|d| d.to_string())
}

#[async_trait]
impl RemittanceWriter for PostgresFileWriter {
    async fn write_lines(&mut self, lines: Vec<LineToWrite>) -> StoreResult<()> {
        // Many rows per statement: one round trip per few hundred lines, not four per line.
        let remittance_id = self.remittance_id;
        let received_at = self.remittance.received_at.as_str();
        for line in &lines {
            line.check_effects()?;
        }

        let collected: Vec<_> = lines.iter().filter_map(|l| l.effects.collect.as_ref().map(|c| (l, c))).collect();
        for chunk in collected.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Postgres>::new(
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
                    .push_bind(received_at)
                    .push_bind(remittance_id)
                    .push_bind(line_number(record));
            });
            insert.build().execute(&mut *self.tx).await?;
        }

        for chunk in lines.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Postgres>::new(
                "INSERT INTO remittance_lines (remittance_id, line, status, employer_fein, case_number, ssn_last4, amount_cents, \
                 pay_date, obligor_id, prenote, problems) ",
            );
            insert.push_values(chunk, |mut row, line| {
                let record = &line.record;
                row.push_bind(remittance_id)
                    .push_bind(line_number(record))
                    .push_bind(record.status.as_str())
                    .push_bind(record.employer_fein.as_deref())
                    .push_bind(record.case_number.as_deref())
                    .push_bind(record.ssn_last4.as_deref())
                    .push_bind(record.amount.map(|a| a.cents()))
                    .push_bind(date(record))
                    .push_bind(record.obligor_id.as_ref().map(|o| o.to_string()))
                    .push_bind(record.prenote)
                    .push_bind(record.problems_json());
            });
            insert.build().execute(&mut *self.tx).await?;
        }

        let held: Vec<_> = lines.iter().filter_map(|l| l.effects.suspense.as_ref().map(|h| (l, h))).collect();
        for chunk in held.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Postgres>::new(
                "INSERT INTO suspense_items (remittance_id, line, employer_fein, case_number, ssn_hmac, ssn_last4, amount_cents, \
                 pay_date, reason, state, created_at) ",
            );
            insert.push_values(chunk, |mut row, (line, hold)| {
                let record = &line.record;
                row.push_bind(remittance_id)
                    .push_bind(line_number(record))
                    .push_bind(record.employer_fein.as_deref())
                    .push_bind(record.case_number.as_deref())
                    .push_bind(hold.ssn_hmac.as_deref())
                    .push_bind(record.ssn_last4.as_deref())
                    .push_bind(record.amount.map(|a| a.cents()))
                    .push_bind(date(record))
                    .push_bind(hold.reason.as_str())
                    .push_bind("OPEN")
                    .push_bind(received_at);
            });
            insert.build().execute(&mut *self.tx).await?;
        }

        let notices: Vec<_> = lines.iter().filter(|l| l.effects.termination_notice).collect();
        for chunk in notices.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Postgres>::new(
                "INSERT INTO termination_notices (remittance_id, line, employer_fein, obligor_id, case_number, ssn_last4, pay_date, created_at) ",
            );
            insert.push_values(chunk, |mut row, line| {
                let record = &line.record;
                row.push_bind(remittance_id)
                    .push_bind(line_number(record))
                    .push_bind(record.employer_fein.as_deref())
                    .push_bind(record.obligor_id.as_ref().map(|o| o.to_string()))
                    .push_bind(record.case_number.as_deref())
                    .push_bind(record.ssn_last4.as_deref())
                    .push_bind(date(record))
                    .push_bind(received_at);
            });
            insert.build().execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    async fn finish(self: Box<Self>, counts: LineCounts) -> StoreResult<RemittanceSummary> {
        let PostgresFileWriter { mut tx, remittance_id, remittance, audit, _slot } = *self;
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
        super::sql_access::insert_audit!(&mut *tx, &audit)?;
        crate::crash_points::reached("remittance.before_commit");
        tx.commit().await?;
        crate::crash_points::reached("remittance.after_commit");
        Ok(RemittanceSummary::committed(remittance_id, remittance, counts))
    }
}
