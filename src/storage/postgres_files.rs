//! Writing a remittance file on PostgreSQL: one transaction of the pool, from the file's
//! claim of its batch id to its commit, its rows many a statement, its references to the
//! registry checked in bulk (`file_references.rs`).

use async_trait::async_trait;
use sqlx::{Postgres, Transaction};

use super::file_references::GatheredKeys;
use super::postgres::PostgresStore;
use super::queue_segments::{Segment, Unqueued, UnqueuedCollections};
use super::remittance::{
    after_a_failed_batch, DirectoryPage, LineBatch, LineCounts, NewRemittance, RegistryRows, RemittanceSummary, RemittanceWriter,
    StoredLine, REGISTRY_GENERATION_QUERY, REGISTRY_ROWS_QUERY,
};
use super::sql_store::{self as sql, placeholders, LOOKUP_CHUNK};
use super::{AuditEntry, StoreError, StoreResult};
use crate::domain::month::iso_date_text;
use crate::domain::registry_index::{RegistryIndex, Unindexable};
use futures::TryStreamExt;

/// Writes one remittance file in one transaction (rolled back if dropped).
pub(super) struct PostgresFileWriter {
    tx: Transaction<'static, Postgres>,
    remittance_id: i64,
    remittance: NewRemittance,
    /// The submission's audit row, written when the file commits.
    audit: AuditEntry,
    /// The registry keys the file's rows name, checked here in bulk (`file_references.rs`).
    references: GatheredKeys,
    /// The registry's generation, read as the file's transaction began: keys found in the
    /// registry at it are there until the file commits, as obligors and cases are never
    /// deleted or renumbered (migration 0016's triggers refuse it).
    registry_generation: i64,
    /// Rows written and not sent yet.
    unsent: UnsentRows,
    /// Its collections sent and not queued yet.
    unqueued: UnqueuedCollections,
    /// Its collections sent, and queued: equal before it commits, so that none is left out
    /// of the queue (the trigger that would have queued them leaves them to this writer).
    collections_sent: usize,
    collections_queued: usize,
    /// Why a batch failed, if one did: nothing more of the file is written or committed.
    failed: Option<String>,
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
        // The statement triggers that check each row's references give way to the writer's
        // own checks, in this transaction only (migration 0019).
        sqlx::query(REFERENCES_CHECKED_HERE).execute(&mut *tx).await?;
        // The file queues its collections itself, a segment at a time (migration 0022).
        sqlx::query(COLLECTIONS_QUEUED_HERE).execute(&mut *tx).await?;
        let registry_generation = sqlx::query_scalar(REGISTRY_GENERATION_QUERY).fetch_one(&mut *tx).await?;
        Ok(Box::new(PostgresFileWriter {
            tx,
            remittance_id,
            remittance,
            audit,
            references: GatheredKeys::default(),
            registry_generation,
            unsent: UnsentRows::default(),
            unqueued: UnqueuedCollections::default(),
            collections_sent: 0,
            collections_queued: 0,
            failed: None,
            _slot: slot,
        }))
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

    pub(super) async fn registry_generation_row(&self) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(REGISTRY_GENERATION_QUERY).fetch_one(self.reader()).await?)
    }

    /// The registry's rows streamed from one statement (one snapshot) into an index.
    pub(super) async fn registry_index_rows(&self) -> StoreResult<Result<RegistryIndex, Unindexable>> {
        let mut rows = sqlx::query_as::<_, (i64, Option<String>, Option<String>, Option<String>)>(REGISTRY_ROWS_QUERY).fetch(self.reader());
        let mut index = RegistryRows::default();
        while let Some((generation, obligor_id, ssn_hmac, case_number)) = rows.try_next().await? {
            if !index.add(generation, obligor_id.as_deref(), ssn_hmac.as_deref(), case_number.as_deref()) {
                break;
            }
        }
        drop(rows);
        tokio::task::spawn_blocking(move || index.finish())
            .await
            .map_err(|error| StoreError::Corrupt(format!("building the registry index stopped: {error}")))?
    }
}

fn line_number(line: &StoredLine) -> i64 {
    i64::try_from(line.line).expect("a line number fits in i64")
}

fn date(line: &StoredLine) -> Option<String> {
    line.pay_date.map(iso_date_text)
}

/// A value of a row sent with `COPY … FROM STDIN`.
enum Field<'a> {
    Null,
    Text(&'a str),
    Integer(i64),
    Boolean(bool),
}

impl<'a> Field<'a> {
    fn text(value: Option<&'a str>) -> Field<'a> {
        value.map_or(Field::Null, Field::Text)
    }

    fn integer(value: Option<i64>) -> Field<'a> {
        value.map_or(Field::Null, Field::Integer)
    }
}

/// Appends one row in COPY's text format: fields separated by tabs, `\N` for NULL, and a
/// backslash, tab, newline or carriage return within a value escaped with a backslash.
fn push_row(out: &mut String, fields: &[Field<'_>]) {
    use std::fmt::Write;
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            out.push('\t');
        }
        match field {
            Field::Null => out.push_str("\\N"),
            Field::Integer(value) => write!(out, "{value}").expect("writing to a String"),
            Field::Boolean(value) => out.push(if *value { 't' } else { 'f' }),
            Field::Text(text) => {
                for c in text.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\t' => out.push_str("\\t"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        c => out.push(c),
                    }
                }
            }
        }
    }
    out.push('\n');
}

/// Lines whose rows wait before they are sent, one `COPY` a table, once this many or more
/// wait (five of the pipeline's 1,000-line batches). Each statement costs round trips, and
/// the collections' ids are drawn once for all the collections sent. What waits takes about
/// 250 bytes a line.
const SEND_EVERY_LINES: usize = 4_096;

/// A collection written and not sent yet.
struct UnsentCollection {
    obligor: Box<str>,
    case_number: Option<Box<str>>,
    cents: i64,
    effective_date: chrono::NaiveDate,
    line: i64,
}

/// Rows in COPY's text format, a buffer a table, until they are sent.
#[derive(Default)]
struct UnsentRows {
    /// Collections as values: their ids are drawn as they are sent.
    collections: Vec<UnsentCollection>,
    lines: String,
    held: String,
    notices: String,
    /// Lines whose rows wait here.
    count: usize,
}

/// Has the statement triggers of `collections` and `remittance_lines` leave the checking of
/// their references to the registry to the file writer, until its transaction ends.
const REFERENCES_CHECKED_HERE: &str = "SET LOCAL gateway.file_references = 'checked by the file writer'";

/// Has the trigger that queues each collection in segment 0 leave the file's collections to
/// the file writer, which queues them a segment at a time, until its transaction ends.
const COLLECTIONS_QUEUED_HERE: &str = "SET LOCAL gateway.file_collections = 'queued by the file writer'";

/// The first of `keys` that `table` holds no row for, if any: one statement, one index probe
/// a key, the keys in order so that consecutive probes read neighbouring index pages.
async fn first_missing(tx: &mut Transaction<'static, Postgres>, table: &str, column: &str, keys: &[&str]) -> StoreResult<Option<String>> {
    if keys.is_empty() {
        return Ok(None);
    }
    let missing: Option<String> = sqlx::query_scalar(&format!(
        "SELECT k.key FROM unnest($1::text[]) AS k (key) \
         WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE t.{column} = k.key COLLATE \"C\") LIMIT 1"
    ))
    .bind(keys)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(missing)
}

impl PostgresFileWriter {
    /// Checks every registry key gathered since the last check: a line naming an obligor or
    /// a case the registry does not hold refuses the file (the caller's drop rolls it back).
    async fn check_references(&mut self) -> StoreResult<()> {
        let PostgresFileWriter { tx, references, .. } = self;
        for of_table in references.to_check() {
            if let Some(missing) = first_missing(tx, of_table.table, of_table.column, &of_table.keys).await? {
                return Err((of_table.refusal)(&missing));
            }
        }
        references.checked();
        Ok(())
    }

    /// Sends the rows waiting, a `COPY` a table, in the order the tables were always written:
    /// the collections, the lines, then what the lines hold and the notices they give.
    async fn send_rows(&mut self) -> StoreResult<()> {
        let UnsentRows { collections, lines, held, notices, .. } = std::mem::take(&mut self.unsent);
        let collections = self.collection_rows(collections).await?;
        self.copy(
            "COPY collections (collection_id, obligor_id, case_number, source, amount_cents, effective_date, received_at, \
             remittance_id, remittance_line) FROM STDIN",
            collections,
        )
        .await?;
        if self.unqueued.fill_a_segment() {
            self.queue_segment().await?;
        }
        self.copy(
            "COPY remittance_lines (remittance_id, line, status, employer_fein, case_number, ssn_last4, amount_cents, pay_date, \
             obligor_id, prenote, problems) FROM STDIN",
            lines,
        )
        .await?;
        self.copy(
            "COPY suspense_items (remittance_id, line, employer_fein, case_number, ssn_hmac, ssn_last4, amount_cents, pay_date, \
             reason, state, created_at) FROM STDIN",
            held,
        )
        .await?;
        self.copy(
            "COPY termination_notices (remittance_id, line, employer_fein, obligor_id, case_number, ssn_last4, pay_date, created_at) \
             FROM STDIN",
            notices,
        )
        .await
    }

    /// The collections' rows to send, in COPY's text format, each with an id drawn from the
    /// collections' sequence (one statement for them all), each also waiting to be queued:
    /// the file queues its own collections, so it names their ids itself.
    async fn collection_rows(&mut self, collections: Vec<UnsentCollection>) -> StoreResult<String> {
        if collections.is_empty() {
            return Ok(String::new());
        }
        // The sequence is looked up once a statement (a materialized CTE): called a row,
        // `pg_get_serial_sequence` was a third of the backend's time.
        let mut ids: Vec<i64> = sqlx::query_scalar(
            "WITH s AS MATERIALIZED (SELECT CAST(pg_get_serial_sequence('collections', 'collection_id') AS regclass) AS sequence) \
             SELECT nextval(s.sequence) FROM s, generate_series(1, $1)",
        )
        .bind(i64::try_from(collections.len()).expect("a count fits in i64"))
        .fetch_all(&mut *self.tx)
        .await?;
        if ids.len() != collections.len() {
            return Err(StoreError::Corrupt(format!("{} collection ids drawn for {} collections", ids.len(), collections.len())));
        }
        // In the order the lines came, as the sequence would have numbered them.
        ids.sort_unstable();
        self.collections_sent += collections.len();
        let (remittance_id, received_at) = (self.remittance_id, self.remittance.received_at.as_str());
        let mut rows = String::with_capacity(collections.len() * 96);
        for (collection, collection_id) in collections.into_iter().zip(ids) {
            let effective_date = iso_date_text(collection.effective_date);
            push_row(
                &mut rows,
                &[
                    Field::Integer(collection_id),
                    Field::Text(&collection.obligor),
                    Field::text(collection.case_number.as_deref()),
                    Field::Text("PAYROLL"),
                    Field::Integer(collection.cents),
                    Field::Text(&effective_date),
                    Field::Text(received_at),
                    Field::Integer(remittance_id),
                    Field::Integer(collection.line),
                ],
            );
            let UnsentCollection { obligor, cents, effective_date, .. } = collection;
            self.unqueued.push(Unqueued { obligor, collection_id, cents, effective_date });
        }
        Ok(rows)
    }

    /// Queues the collections sent and not queued yet as one segment (`queue_segments.rs`).
    async fn queue_segment(&mut self) -> StoreResult<()> {
        let Some(Segment { number, entries }) = self.unqueued.take_segment() else { return Ok(()) };
        self.collections_queued += entries.len();
        let mut rows = String::with_capacity(entries.len() * 64);
        for entry in &entries {
            let effective_date = iso_date_text(entry.effective_date);
            push_row(
                &mut rows,
                &[
                    Field::Integer(number),
                    Field::Text(&entry.obligor),
                    Field::Integer(entry.collection_id),
                    Field::Integer(entry.cents),
                    Field::Text(&effective_date),
                ],
            );
        }
        self.copy("COPY pending_collections (segment, obligor_id, collection_id, amount_cents, effective_date) FROM STDIN", rows).await
    }

    /// Sends `rows` (COPY text format) with `copy` (`COPY t (a, b, …) FROM STDIN`) in the
    /// file's transaction: one message and PostgreSQL's bulk load path instead of an INSERT
    /// of bound parameters, parsed and planned, per few hundred rows. Constraints, foreign
    /// keys and triggers hold as for an INSERT, except the reference triggers of
    /// `collections` and `remittance_lines`, which leave those to [`Self::check_references`],
    /// and the queue's trigger of `collections`, which leaves the file's collections to
    /// [`Self::queue_segment`].
    async fn copy(&mut self, copy: &str, rows: String) -> StoreResult<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut copy_in = self.tx.copy_in_raw(copy).await?;
        copy_in.send(rows.into_bytes()).await?;
        copy_in.finish().await?;
        Ok(())
    }
}

#[async_trait]
impl RemittanceWriter for PostgresFileWriter {
    async fn write_lines(&mut self, batch: LineBatch) -> StoreResult<()> {
        if let Some(why) = &self.failed {
            return Err(after_a_failed_batch(why));
        }
        let written = self.write_batch(batch).await;
        if let Err(error) = &written {
            // A batch refused before its rows were sent leaves the transaction usable: the
            // writer itself refuses to go on, as SQLite's does.
            self.failed = Some(error.to_string());
        }
        written
    }

    async fn finish(mut self: Box<Self>, counts: LineCounts) -> StoreResult<RemittanceSummary> {
        if let Some(why) = &self.failed {
            return Err(after_a_failed_batch(why));
        }
        self.finish_file(counts).await
    }
}

impl PostgresFileWriter {
    async fn write_batch(&mut self, batch: LineBatch) -> StoreResult<()> {
        let lines = batch.lines;
        for line in &lines {
            line.check_effects()?;
        }
        // Keys found in the registry at the generation the file began at need no second look
        // (docs/reliability.md, "A file's references to the registry").
        if batch.keys_registered_at != Some(self.registry_generation) && self.references.gather(&lines) {
            self.check_references().await?;
        }
        let remittance_id = self.remittance_id;
        let received_at = self.remittance.received_at.as_str();
        let UnsentRows { collections, lines: lines_out, held, notices, count } = &mut self.unsent;
        *count += lines.len();
        for line in &lines {
            let record = &line.record;
            let pay_date = date(record);
            let obligor = record.obligor_id.as_ref().map(|o| o.as_str());
            if let Some(collection) = &line.effects.collect {
                let (obligor, amount, effective_date) = line.collected()?;
                collections.push(UnsentCollection {
                    obligor: obligor.into(),
                    case_number: collection.case_number.as_deref().map(Into::into),
                    cents: amount.cents(),
                    effective_date,
                    line: line_number(record),
                });
            }
            push_row(
                lines_out,
                &[
                    Field::Integer(remittance_id),
                    Field::Integer(line_number(record)),
                    Field::Text(&record.status),
                    Field::text(record.employer_fein.as_deref()),
                    Field::text(record.case_number.as_deref()),
                    Field::text(record.ssn_last4.as_deref()),
                    Field::integer(record.amount.map(|a| a.cents())),
                    Field::text(pay_date.as_deref()),
                    Field::text(obligor),
                    Field::Boolean(record.prenote),
                    Field::Text(&record.problems_json()),
                ],
            );
            if let Some(hold) = &line.effects.suspense {
                push_row(
                    held,
                    &[
                        Field::Integer(remittance_id),
                        Field::Integer(line_number(record)),
                        Field::text(record.employer_fein.as_deref()),
                        Field::text(record.case_number.as_deref()),
                        Field::text(hold.ssn_hmac.as_deref()),
                        Field::text(record.ssn_last4.as_deref()),
                        Field::integer(record.amount.map(|a| a.cents())),
                        Field::text(pay_date.as_deref()),
                        Field::Text(&hold.reason),
                        Field::Text("OPEN"),
                        Field::Text(received_at),
                    ],
                );
            }
            if line.effects.termination_notice {
                push_row(
                    notices,
                    &[
                        Field::Integer(remittance_id),
                        Field::Integer(line_number(record)),
                        Field::text(record.employer_fein.as_deref()),
                        Field::text(obligor),
                        Field::text(record.case_number.as_deref()),
                        Field::text(record.ssn_last4.as_deref()),
                        Field::text(pay_date.as_deref()),
                        Field::Text(received_at),
                    ],
                );
            }
        }
        if self.unsent.count >= SEND_EVERY_LINES {
            self.send_rows().await?;
        }
        Ok(())
    }

    async fn finish_file(mut self: Box<Self>, counts: LineCounts) -> StoreResult<RemittanceSummary> {
        self.send_rows().await?;
        self.queue_segment().await?;
        if self.collections_queued != self.collections_sent {
            return Err(StoreError::Corrupt(format!(
                "the file sent {} collections and queued {}: it is not committed",
                self.collections_sent, self.collections_queued
            )));
        }
        self.check_references().await?;
        let PostgresFileWriter { mut tx, remittance_id, remittance, audit, .. } = *self;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The statement triggers give way to the file writer's own checks only in a transaction
    /// that says so, and only until it ends: on another connection meanwhile, and on the same
    /// one once it has rolled back or committed, a collection or a line naming an obligor the
    /// registry does not hold is refused as before.
    #[tokio::test]
    async fn the_triggers_leave_references_to_the_file_writer_only_in_its_own_transaction() {
        use sqlx::Connection;
        let store = super::super::postgres::test_store().await;
        let mut connection = store.writer().acquire().await.unwrap();
        let mut other = store.writer().acquire().await.unwrap();
        let collection = "INSERT INTO collections (obligor_id, source, amount_cents, effective_date, received_at) \
                          VALUES ('OB-GONE', 'MANUAL', 100, '2026-12-05', 't')";
        let line = "INSERT INTO remittance_lines (remittance_id, line, status, obligor_id, prenote, problems) \
                    VALUES (1, 1, 'APPLIED', 'OB-GONE', FALSE, '[]')";
        let refused = |result: Result<sqlx::postgres::PgQueryResult, sqlx::Error>| match result {
            Err(sqlx::Error::Database(error)) => error.code().as_deref() == Some("23503") && error.message().contains("OB-GONE"),
            _ => false,
        };
        assert!(refused(sqlx::query(collection).execute(&mut *connection).await), "refused outside a file");

        let mut file = connection.begin().await.unwrap();
        sqlx::query(REFERENCES_CHECKED_HERE).execute(&mut *file).await.unwrap();
        sqlx::query(collection).execute(&mut *file).await.expect("left to the file writer's checks");
        assert!(refused(sqlx::query(collection).execute(&mut *other).await), "refused on another connection meanwhile");
        assert!(refused(sqlx::query(line).execute(&mut *other).await), "a line too");
        file.rollback().await.unwrap();
        assert!(refused(sqlx::query(collection).execute(&mut *connection).await), "refused once that transaction rolled back");

        let mut file = connection.begin().await.unwrap();
        sqlx::query(REFERENCES_CHECKED_HERE).execute(&mut *file).await.unwrap();
        file.commit().await.unwrap();
        assert!(refused(sqlx::query(collection).execute(&mut *connection).await), "and once one committed");
        assert!(refused(sqlx::query(line).execute(&mut *connection).await), "a line too");
    }

    /// The queue's trigger leaves collections to the file writer only in a transaction that
    /// says so: on another connection meanwhile, and on the same one once it has ended, each
    /// collection is queued by the trigger as before.
    #[tokio::test]
    async fn the_queue_trigger_leaves_collections_to_the_file_writer_only_in_its_own_transaction() {
        use sqlx::Connection;
        let store = super::super::postgres::test_store().await;
        let mut connection = store.writer().acquire().await.unwrap();
        let mut other = store.writer().acquire().await.unwrap();
        /// Inserts a collection (its obligor left unchecked) and says whether the trigger queued it.
        async fn queued_by_the_trigger(tx: &mut Transaction<'_, Postgres>) -> bool {
            sqlx::query(REFERENCES_CHECKED_HERE).execute(&mut **tx).await.unwrap();
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO collections (obligor_id, source, amount_cents, effective_date, received_at) \
                 VALUES ('OB-Q', 'MANUAL', 100, '2026-12-05', 't') RETURNING collection_id",
            )
            .fetch_one(&mut **tx)
            .await
            .unwrap();
            let queued = "SELECT COUNT(*) FROM pending_collections WHERE collection_id = $1";
            sqlx::query_scalar::<_, i64>(queued).bind(id).fetch_one(&mut **tx).await.unwrap() == 1
        }

        let mut file = connection.begin().await.unwrap();
        sqlx::query(COLLECTIONS_QUEUED_HERE).execute(&mut *file).await.unwrap();
        assert!(!queued_by_the_trigger(&mut file).await, "left to the file writer");
        let mut meanwhile = other.begin().await.unwrap();
        assert!(queued_by_the_trigger(&mut meanwhile).await, "queued on another connection meanwhile");
        meanwhile.rollback().await.unwrap();
        file.rollback().await.unwrap();
        let mut after = connection.begin().await.unwrap();
        assert!(queued_by_the_trigger(&mut after).await, "queued once that transaction rolled back");
        after.rollback().await.unwrap();

        let mut file = connection.begin().await.unwrap();
        sqlx::query(COLLECTIONS_QUEUED_HERE).execute(&mut *file).await.unwrap();
        file.commit().await.unwrap();
        let mut after = connection.begin().await.unwrap();
        assert!(queued_by_the_trigger(&mut after).await, "and once one committed");
        after.rollback().await.unwrap();
    }

    #[test]
    fn a_copy_row_separates_fields_with_tabs_marks_null_and_escapes_what_would_end_a_field() {
        let mut out = String::new();
        push_row(
            &mut out,
            &[Field::Integer(-42), Field::Null, Field::Boolean(true), Field::Text("a\tb\nc\rd\\e \\N"), Field::Text("")],
        );
        assert_eq!(out, "-42\t\\N\tt\ta\\tb\\nc\\rd\\\\e \\\\N\t\n");
        push_row(&mut out, &[Field::text(None), Field::integer(Some(7)), Field::Boolean(false)]);
        assert_eq!(out.lines().nth(1), Some("\\N\t7\tf"));
    }
}
