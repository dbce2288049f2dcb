//! Writing remittance files on SQLite: a thread of its own, owning a connection of its own
//! with its statements prepared once.
//!
//! Through sqlx, every statement of a file crossed to sqlx's worker thread and back (a
//! channel send and a thread switch each way), and every row was bound by parameter name.
//! A 1,000,000-line file made several million such crossings; the profile showed the writer
//! spending more time handing work over than in SQLite. Here a batch of lines crosses once,
//! and the thread writes it with multi-row INSERTs prepared once and re-executed from its
//! statement cache, their values bound by position.
//!
//! SQLite has one writer. In this process the writes through sqlx take the writer pool's one
//! connection; a file takes that same connection first, as its token, and holds it until its
//! transaction has committed or rolled back on this thread. So nothing else in the process
//! writes meanwhile, and the audit journal still sees the writer busy. Another process (a
//! `gateway admin` command) waits on SQLite's own lock, as before.
//!
//! A file is still one transaction (`BEGIN IMMEDIATE` … `COMMIT`): a refusal, a dropped
//! upload or a crash leaves nothing of it.
//!
//! The thread is the process's SQLite writer for whatever else pays for crossing threads per
//! statement: other writers hand it a whole piece of work with the token
//! ([`WriterThread::run`]), which the thread holds until the work's transaction has ended.
//! Online payments' group commits (`sqlite_payments.rs`) and distribution chunks
//! (`sqlite_distribution.rs`) do.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::config::DbConfig;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{params, Connection, OpenFlags};
use sqlx::pool::PoolConnection;
use sqlx::Sqlite;
use tokio::sync::oneshot;

use crate::domain::month::iso_date_text;

use super::queue_segments::{Segment, Unqueued, UnqueuedCollections};
use super::remittance::{
    after_a_failed_batch, LineBatch, LineCounts, LineToWrite, NewRemittance, RemittanceSummary, RemittanceWriter, StoredLine,
    REGISTRY_GENERATION_QUERY,
};
use super::sqlite::SqliteStore;
use super::sqlite_checkpoints::writer_pragmas;
use super::sqlite_references::RegistryReferences;
use super::{AuditEntry, StoreError, StoreResult};

/// What the file thread is asked to do, in the order asked.
enum Job {
    /// Opens a file's transaction and claims its batch id and content. `token` is the sqlx
    /// writer connection, held until the transaction ends.
    /// Answered with the file's id and its serial ([`FileSerial`]).
    Begin { remittance: NewRemittance, token: PoolConnection<Sqlite>, answer: oneshot::Sender<StoreResult<(i64, FileSerial)>> },
    /// Answered with the batch itself, for its caller to free ([`SqliteFileWriter::written_so_far`]).
    Lines { file: FileSerial, batch: LineBatch, answer: oneshot::Sender<(StoreResult<()>, LineBatch)> },
    Finish { file: FileSerial, counts: LineCounts, audit: AuditEntry, answer: oneshot::Sender<StoreResult<()>> },
    /// The file was dropped unfinished: roll it back, if it is still the one open (a writer
    /// dropped late must not roll back the file begun after it).
    Abandon { file: FileSerial },
    /// Another writer's work, run with the connection between files, holding `token` (the
    /// sqlx writer connection) until what it leaves uncommitted is rolled back.
    Run { token: PoolConnection<Sqlite>, work: Box<dyn FnOnce(&Connection, JobNumber) + Send> },
}

/// The thread that writes files and runs other writers' work; it ends when the store and
/// every clone of this are dropped.
#[derive(Clone)]
pub(super) struct WriterThread {
    jobs: mpsc::Sender<Job>,
}

impl WriterThread {
    /// Opens the thread's connection to the database file (already migrated) and starts it.
    pub(super) fn start(file: &Path) -> StoreResult<WriterThread> {
        let connection = open(file)?;
        let runtime = tokio::runtime::Handle::current();
        let (jobs, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                // The token is a sqlx pool connection; giving it back to its pool needs the
                // runtime, so the thread runs inside it.
                let _runtime = runtime.enter();
                serve(connection, queue);
            })
            .map_err(|error| StoreError::Corrupt(format!("cannot start the SQLite file writer: {error}")))?;
        Ok(WriterThread { jobs })
    }

    fn send(&self, job: Job) -> StoreResult<()> {
        self.jobs.send(job).map_err(|_| stopped())
    }

    /// Queues `work` to run on the thread with its connection and the number of its job.
    /// `token` is the sqlx writer connection, which the caller took so nothing else in the
    /// process writes meanwhile. However the work ends, a panic included, the thread rolls
    /// back what it left uncommitted before it gives the token back, so no other writer
    /// starts while its transaction is open. Its results go back through channels it
    /// captures; a panic in it drops them.
    pub(super) fn run(&self, token: PoolConnection<Sqlite>, work: impl FnOnce(&Connection, JobNumber) + Send + 'static) -> StoreResult<()> {
        self.send(Job::Run { token, work: Box::new(work) })
    }
}

pub(super) fn stopped() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

/// The same settings as the sqlx writer: WAL, durable commits (`synchronous = FULL`), foreign
/// keys (off for a file's or a distribution chunk's transaction: see `enforce_schema_rules`),
/// checkpoints left to their own thread up to a limit and the log's file kept to a size
/// (`sqlite_checkpoints.rs`), a 10 s wait for another
/// process's lock, and a page cache that holds a large file's transaction without spilling it
/// to the log page by page.
fn open(file: &Path) -> StoreResult<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(file, flags)?;
    connection.busy_timeout(Duration::from_secs(10))?;
    // Files, payments' group commits and distribution chunks each keep their statements.
    connection.set_prepared_statement_cache_capacity(64);
    connection.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY; {}",
        writer_pragmas()
    ))?;
    Ok(connection)
}

/// A file between its `Begin` and its end.
struct OpenFile {
    /// Which file this is: each job of a file names it, and a job naming another is refused.
    serial: FileSerial,
    remittance_id: i64,
    received_at: String,
    /// What its rows name in the registry, checked in bulk (SQLite's own foreign-key checks
    /// are off while a file is open).
    references: RegistryReferences,
    /// The registry's generation, read in the file's transaction: the registry cannot change
    /// while the transaction holds SQLite's one write lock, so keys found in the registry at
    /// this generation are there until the file commits.
    registry_generation: i64,
    /// The id its next collection is written with (the file holds the write lock, so its
    /// collections take consecutive ids after the highest ever given).
    next_collection_id: i64,
    /// Its collections not yet queued: queued a segment at a time ([`queue_segment`]).
    unqueued: UnqueuedCollections,
    /// Why a batch of it failed, if one did: its caller may have sent the next batch before
    /// it heard, and nothing is written after a failure (the file is rolled back, never
    /// finished).
    failed: Option<String>,
    /// The sqlx writer connection, so nothing else in the process writes meanwhile.
    _token: PoolConnection<Sqlite>,
}

/// The number of a job on the writer thread, counted from 1 as the thread begins them: two
/// jobs whose numbers follow each other had nothing written by this thread between them.
pub(super) type JobNumber = u64;

/// A file's serial on the writer thread: the number of the job that began it, never given to
/// another file. (Not its `remittance_id`: a file rolled back gives its id back, and the next
/// file takes it.) A file's writer sends its next batch before it hears of the last one, so
/// after a failure that closed the file (a panic) a batch of it may still be queued; its
/// serial keeps it out of the file begun next, and a late `Abandon` from rolling that one back.
pub(super) type FileSerial = JobNumber;

fn serve(connection: Connection, queue: mpsc::Receiver<Job>) {
    let mut open: Option<OpenFile> = None;
    let mut begun: JobNumber = 0;
    while let Ok(job) = queue.recv() {
        begun += 1;
        // A bug that panics in one job fails that file (its caller's answer is dropped, so it
        // is told the writer stopped) and rolls it back; the thread goes on with the next.
        let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle(&connection, &mut open, job, begun)));
        if handled.is_err() {
            tracing::error!("the SQLite writer thread panicked; what it was writing is rolled back");
            // Rolled back before the file's token is given back, so no other writer starts
            // while its transaction is open.
            roll_back(&connection);
            open = None;
        }
    }
}

fn handle(connection: &Connection, open: &mut Option<OpenFile>, job: Job, number: JobNumber) {
    match job {
        Job::Begin { remittance, token, answer } => {
            // Cannot happen (one token), but never let two files share a transaction.
            roll_back_open_file(connection, open);
            let begun = begin(connection, &remittance);
            let answered = match begun {
                Ok(Begun { remittance_id, next_collection_id, registry_generation }) => {
                    *open = Some(OpenFile {
                        serial: number,
                        remittance_id,
                        received_at: remittance.received_at,
                        references: RegistryReferences::default(),
                        registry_generation,
                        next_collection_id,
                        unqueued: UnqueuedCollections::default(),
                        failed: None,
                        _token: token,
                    });
                    Ok((remittance_id, number))
                }
                Err(error) => {
                    roll_back(connection);
                    Err(error)
                }
            };
            let _ = answer.send(answered);
        }
        Job::Lines { file, batch, answer } => {
            let written = match open.as_mut() {
                Some(open) if open.serial != file => Err(no_longer_open()),
                Some(OpenFile { failed: Some(why), .. }) => Err(after_a_failed_batch(why)),
                Some(open) => {
                    let written = write_lines(connection, open, &batch);
                    if let Err(error) = &written {
                        open.failed = Some(error.to_string());
                    }
                    written
                }
                None => Err(no_longer_open()),
            };
            let _ = answer.send((written, batch));
        }
        Job::Finish { file, counts, audit, answer } => {
            // The file stays in `open` until its transaction has ended, so that a panic in
            // `finish` too rolls it back (in `serve`) before its token is given back.
            let finished = match open.as_mut() {
                // Another file is open: it is left as it is.
                Some(open) if open.serial != file => Err(no_longer_open()),
                None => Err(no_longer_open()),
                Some(OpenFile { failed: Some(why), .. }) => {
                    let refused = Err(after_a_failed_batch(why));
                    roll_back_open_file(connection, open);
                    refused
                }
                Some(this) => {
                    let finished = finish(connection, this, &counts, &audit);
                    if finished.is_err() {
                        roll_back_open_file(connection, open);
                    }
                    *open = None;
                    finished
                }
            };
            let _ = answer.send(finished);
        }
        Job::Abandon { file } => {
            if open.as_ref().is_some_and(|open| open.serial == file) {
                roll_back_open_file(connection, open);
            }
        }
        Job::Run { token, work } => {
            if roll_back_open_file(connection, open) {
                // Cannot happen (one token), but never let work join a file's transaction.
                tracing::error!("work was sent to the SQLite writer while a file was open; the file was rolled back");
            }
            if !enforce_schema_rules(connection) {
                // Cannot happen, but never run other writers' work unchecked: dropped, it
                // tells its callers the writer stopped.
                tracing::error!("foreign keys or triggers are not enforced on the SQLite writer; the work is not run");
                return;
            }
            // Work that failed half-way, or panicked, may have left its transaction open: it
            // is ended before the token is given back.
            let holding = Holding { connection, _token: token };
            work(holding.connection, number);
        }
    }
}

fn no_longer_open() -> StoreError {
    StoreError::Corrupt("the file is no longer open on the SQLite writer (rolled back); nothing of it is written".into())
}

/// Rolls back the open file, if there is one, and only then gives its token back, so no other
/// writer starts while its transaction is open. Whether there was one.
fn roll_back_open_file(connection: &Connection, open: &mut Option<OpenFile>) -> bool {
    let Some(file) = open.take() else { return false };
    roll_back(connection);
    drop(file);
    true
}

/// The thread's connection held for one piece of [`WriterThread::run`] work, with the sqlx
/// writer connection as its token. However the work ends, a panic included, what it left
/// uncommitted is rolled back before the token is given back (fields drop after `drop`).
struct Holding<'c> {
    connection: &'c Connection,
    _token: PoolConnection<Sqlite>,
}

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        roll_back(self.connection);
    }
}

/// Turns SQLite's enforcement of the schema's foreign keys, and its triggers, on before other
/// writers' work (payments, distribution), which SQLite checks and whose collections the
/// trigger queues; whether both are on. A file, and a distribution chunk, turn foreign keys
/// off for their own transaction and check their rows' references themselves
/// (`begin_checking_references_here`), and a file turns triggers off too and queues its
/// collections itself (`begin`); the work is the only other thing the connection writes, so
/// this is the one place they are turned on again, never inside a transaction (`Run` work
/// starts with none open). A change expires the prepared statements, which SQLite prepares
/// again at their next use; setting what is already set changes nothing.
fn enforce_schema_rules(connection: &Connection) -> bool {
    let enforced = connection
        .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_FKEY, true)
        .and_then(|keys| Ok(keys && connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, true)?));
    match enforced {
        Ok(on) => on,
        Err(error) => {
            tracing::error!(%error, "turning foreign-key enforcement and triggers on for the SQLite writer failed");
            false
        }
    }
}

/// Ends the open transaction, if any, keeping nothing of it.
pub(super) fn roll_back(connection: &Connection) {
    if !connection.is_autocommit() {
        if let Err(error) = connection.execute_batch("ROLLBACK") {
            tracing::error!(%error, "rolling back on the SQLite writer failed");
        }
    }
}

/// A uniqueness (or primary key) violation, as sqlx's `is_unique_violation`: the one failure
/// that means another request claimed the same thing.
pub(super) fn is_unique_violation(error: &rusqlite::Error) -> bool {
    matches!(error, rusqlite::Error::SqliteFailure(error, _)
        if matches!(error.extended_code, rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY))
}

/// Writes a call's audit row in the open transaction.
pub(super) fn insert_audit(connection: &Connection, audit: &AuditEntry) -> StoreResult<()> {
    connection
        .prepare_cached(
            "INSERT INTO audit_log (at, request_id, actor, key_id, role, action, object, outcome) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![audit.at, audit.request_id, audit.actor, audit.key_id, audit.role, audit.action, audit.object, audit.outcome])?;
    Ok(())
}

/// Begins a transaction that checks its rows' references itself, with SQLite's row-by-row
/// foreign-key checks off for it: a file's (`sqlite_references.rs`) and a distribution
/// chunk's (`distribution_chunk::LoadedKeys`). Enforcement is changed only outside a
/// transaction, and turned on again before any other writer's work (`enforce_schema_rules`).
/// IMMEDIATE: the write lock from the start, so no other process slips a write in between,
/// and nothing a check read can change before the transaction commits.
pub(super) fn begin_checking_references_here(connection: &Connection) -> StoreResult<()> {
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_FKEY, false)?;
    connection.execute_batch("BEGIN IMMEDIATE")?;
    Ok(())
}

/// What a file's transaction learnt as it began.
struct Begun {
    remittance_id: i64,
    /// The id of the file's first collection.
    next_collection_id: i64,
    registry_generation: i64,
}

/// Opens a file's transaction, with triggers off (the file queues its own collections:
/// [`queue_segment`]), claims its batch id and content, and reads the registry's generation.
fn begin(connection: &Connection, remittance: &NewRemittance) -> StoreResult<Begun> {
    // Off outside the transaction, as foreign keys are; on again before any other writer's
    // work (`enforce_schema_rules`). The only trigger a file's inserts would fire is the
    // queue's, which would queue each collection a second time.
    if connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_TRIGGER, false)? {
        return Err(StoreError::Corrupt("triggers could not be turned off for a file's transaction".into()));
    }
    begin_checking_references_here(connection)?;
    let inserted = connection
        .prepare_cached(
            "INSERT INTO remittances (sender, batch_id, format, content_sha256, content_claim, received_at, received_on, \
             line_count, total_cents, applied, applied_by_ssn, suspense, rejected) \
             VALUES (?1, ?2, ?3, ?4, ?4, ?5, ?6, 0, 0, 0, 0, 0, 0) RETURNING remittance_id",
        )?
        .query_row(
            params![
                remittance.sender,
                remittance.batch_id,
                remittance.format,
                remittance.content_sha256,
                remittance.received_at,
                remittance.received_on.to_string()
            ],
            |row| row.get(0),
        );
    match inserted {
        Ok(id) => {
            // After the highest id AUTOINCREMENT ever gave: safe, as the transaction holds
            // SQLite's write lock from its start.
            let highest_collection: i64 = connection
                .prepare_cached(
                    "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'collections'), 0), \
                     COALESCE((SELECT MAX(collection_id) FROM collections), 0))",
                )?
                .query_row([], |row| row.get(0))?;
            let registry_generation = connection.prepare_cached(REGISTRY_GENERATION_QUERY)?.query_row([], |row| row.get(0))?;
            Ok(Begun { remittance_id: id, next_collection_id: highest_collection + 1, registry_generation })
        }
        // Only the batch id's or the content's uniqueness; any other constraint failing is
        // an error, not another upload's claim.
        Err(error) if is_unique_violation(&error) => {
            Err(StoreError::Conflict(format!("batch {} or its content was claimed by another upload", remittance.batch_id)))
        }
        Err(error) => Err(error.into()),
    }
}

/// Rows a multi-row INSERT carries. A single-row INSERT pays, per row, for starting the
/// statement, opening its tables' cursors and building the little b-tree each CHECK's
/// `IN (…)` list is tested against; 64 rows a statement pay it once per 64.
const ROWS_PER_INSERT: usize = 64;

/// Inserts `rows` with `head` (`INSERT INTO t (a, b, …)`) and one `(?, ?, …)` group of `N`
/// values a row: `ROWS_PER_INSERT` rows a statement, the rest one a statement. Both are
/// prepared once and kept in the connection's statement cache.
pub(super) fn insert_rows<'a, T, const N: usize>(
    connection: &Connection,
    head: &str,
    rows: &[&'a T],
    values: impl Fn(&'a T) -> [ToSqlOutput<'a>; N],
) -> StoreResult<()> {
    let group = format!("({})", vec!["?"; N].join(", "));
    let mut chunks = rows.chunks_exact(ROWS_PER_INSERT);
    if chunks.len() > 0 {
        let mut many = connection.prepare_cached(&format!("{head} VALUES {}", vec![group.as_str(); ROWS_PER_INSERT].join(", ")))?;
        for chunk in chunks.by_ref() {
            for (r, row) in chunk.iter().enumerate() {
                for (c, value) in values(row).iter().enumerate() {
                    many.raw_bind_parameter(r * N + c + 1, value)?;
                }
            }
            many.raw_execute()?;
        }
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut one = connection.prepare_cached(&format!("{head} VALUES {group}"))?;
        for row in rest {
            for (c, value) in values(row).iter().enumerate() {
                one.raw_bind_parameter(c + 1, value)?;
            }
            one.raw_execute()?;
        }
    }
    Ok(())
}

pub(super) fn text(value: &str) -> ToSqlOutput<'_> {
    ToSqlOutput::Borrowed(ValueRef::Text(value.as_bytes()))
}

pub(super) fn optional_text(value: Option<&str>) -> ToSqlOutput<'_> {
    value.map_or(ToSqlOutput::Owned(Value::Null), text)
}

pub(super) fn optional_owned_text(value: Option<String>) -> ToSqlOutput<'static> {
    ToSqlOutput::Owned(value.map_or(Value::Null, Value::Text))
}

pub(super) fn integer(value: i64) -> ToSqlOutput<'static> {
    ToSqlOutput::Owned(Value::Integer(value))
}

fn optional_integer(value: Option<i64>) -> ToSqlOutput<'static> {
    ToSqlOutput::Owned(value.map_or(Value::Null, Value::Integer))
}

/// A file's rows go in with `INSERT OR ROLLBACK`: a row the schema refuses ends the file's
/// transaction then and there, as the file's failure would anyway. SQLite then needs no
/// statement journal: a plain INSERT may fail after writing some of its rows and must be able
/// to take back just its own, so every page each 64-row INSERT touches was first copied
/// aside, about an eighth of the writer's time. (A file's inserts fire no trigger: triggers
/// are off for its transaction, `begin`.)
const FILE_INSERT: &str = "INSERT OR ROLLBACK INTO";

/// Refuses to write unless the file's transaction is still open: once a row was refused
/// ([`FILE_INSERT`]) the connection is in autocommit mode, where each statement would commit
/// on its own.
fn check_file_transaction_open(connection: &Connection) -> StoreResult<()> {
    if connection.is_autocommit() {
        return Err(StoreError::Corrupt("the file's transaction has ended: a row of it was refused".into()));
    }
    Ok(())
}

fn write_lines(connection: &Connection, file: &mut OpenFile, batch: &LineBatch) -> StoreResult<()> {
    check_file_transaction_open(connection)?;
    let lines = batch.lines.as_slice();
    for line in lines {
        line.check_effects()?;
    }
    // Keys found in the registry at the generation it is at until the file commits need no
    // second look (docs/reliability.md, "A file's references to the registry").
    if batch.keys_registered_at != Some(file.registry_generation) {
        file.references.add(connection, lines)?;
    }
    let remittance_id = file.remittance_id;
    let received_at = file.received_at.as_str();
    let pay_date = |r: &StoredLine| ToSqlOutput::Owned(r.pay_date.map_or(Value::Null, |d| Value::Text(iso_date_text(d))));
    // Rows in the order the multi-row INSERTs of PostgreSQL write them: a batch's
    // collections, its lines, then what it holds and the notices it gives.
    let collected: Vec<(i64, &LineToWrite)> = lines
        .iter()
        .filter(|l| l.effects.collect.is_some())
        .map(|line| {
            let collection_id = file.next_collection_id;
            file.next_collection_id += 1;
            (collection_id, line)
        })
        .collect();
    let collected: Vec<&(i64, &LineToWrite)> = collected.iter().collect();
    insert_rows(
        connection,
        &format!("{FILE_INSERT} collections (collection_id, obligor_id, case_number, source, amount_cents, effective_date, received_at, \
         remittance_id, remittance_line)"),
        &collected,
        |(collection_id, line)| {
            let (r, collect) = (&line.record, line.effects.collect.as_ref().expect("filtered"));
            [
                integer(*collection_id),
                optional_text(obligor(r)),
                optional_text(collect.case_number.as_deref()),
                text("PAYROLL"),
                optional_integer(r.amount.map(|a| a.cents())),
                pay_date(r),
                text(received_at),
                integer(remittance_id),
                integer(line_number(r)),
            ]
        },
    )?;
    for (collection_id, line) in collected {
        let (obligor, amount, effective_date) = line.collected()?;
        file.unqueued.push(Unqueued { obligor: obligor.into(), collection_id: *collection_id, cents: amount.cents(), effective_date });
    }
    if file.unqueued.fill_a_segment() {
        queue_segment(connection, &mut file.unqueued)?;
    }
    let all: Vec<&LineToWrite> = lines.iter().collect();
    insert_rows(
        connection,
        &format!("{FILE_INSERT} remittance_lines (remittance_id, line, status, employer_fein, case_number, ssn_last4, amount_cents, \
         pay_date, obligor_id, prenote, problems)"),
        &all,
        |line| {
            let r = &line.record;
            [
                integer(remittance_id),
                integer(line_number(r)),
                text(&r.status),
                optional_text(r.employer_fein.as_deref()),
                optional_text(r.case_number.as_deref()),
                optional_text(r.ssn_last4.as_deref()),
                optional_integer(r.amount.map(|a| a.cents())),
                pay_date(r),
                optional_text(obligor(r)),
                integer(i64::from(r.prenote)),
                ToSqlOutput::Owned(Value::Text(r.problems_json())),
            ]
        },
    )?;
    let held: Vec<&LineToWrite> = lines.iter().filter(|l| l.effects.suspense.is_some()).collect();
    insert_rows(
        connection,
        &format!("{FILE_INSERT} suspense_items (remittance_id, line, employer_fein, case_number, ssn_hmac, ssn_last4, amount_cents, \
         pay_date, reason, state, created_at)"),
        &held,
        |line| {
            let (r, hold) = (&line.record, line.effects.suspense.as_ref().expect("filtered"));
            [
                integer(remittance_id),
                integer(line_number(r)),
                optional_text(r.employer_fein.as_deref()),
                optional_text(r.case_number.as_deref()),
                optional_text(hold.ssn_hmac.as_deref()),
                optional_text(r.ssn_last4.as_deref()),
                optional_integer(r.amount.map(|a| a.cents())),
                pay_date(r),
                text(&hold.reason),
                text("OPEN"),
                text(received_at),
            ]
        },
    )?;
    let notices: Vec<&LineToWrite> = lines.iter().filter(|l| l.effects.termination_notice).collect();
    insert_rows(
        connection,
        &format!("{FILE_INSERT} termination_notices (remittance_id, line, employer_fein, obligor_id, case_number, ssn_last4, pay_date, \
         created_at)"),
        &notices,
        |line| {
            let r = &line.record;
            [
                integer(remittance_id),
                integer(line_number(r)),
                optional_text(r.employer_fein.as_deref()),
                optional_text(obligor(r)),
                optional_text(r.case_number.as_deref()),
                optional_text(r.ssn_last4.as_deref()),
                pay_date(r),
                text(received_at),
            ]
        },
    )?;
    Ok(())
}

/// Queues the file's collections waiting as one segment (`queue_segments.rs`).
fn queue_segment(connection: &Connection, unqueued: &mut UnqueuedCollections) -> StoreResult<()> {
    let Some(Segment { number, entries }) = unqueued.take_segment() else { return Ok(()) };
    let entries: Vec<&Unqueued> = entries.iter().collect();
    insert_rows(
        connection,
        &format!("{FILE_INSERT} pending_collections (segment, obligor_id, collection_id, amount_cents, effective_date)"),
        &entries,
        |entry| {
            [
                integer(number),
                text(&entry.obligor),
                integer(entry.collection_id),
                integer(entry.cents),
                ToSqlOutput::Owned(Value::Text(iso_date_text(entry.effective_date))),
            ]
        },
    )
}

fn line_number(line: &StoredLine) -> i64 {
    i64::try_from(line.line).expect("a line number fits in i64")
}

fn obligor(line: &StoredLine) -> Option<&str> {
    line.obligor_id.as_ref().map(|o| o.as_str())
}

fn finish(connection: &Connection, file: &mut OpenFile, counts: &LineCounts, audit: &AuditEntry) -> StoreResult<()> {
    check_file_transaction_open(connection)?;
    queue_segment(connection, &mut file.unqueued)?;
    file.references.check(connection)?;
    let as_i64 = |n: u64| i64::try_from(n).expect("a count fits in i64");
    connection
        .prepare_cached(
            "UPDATE remittances SET line_count = ?1, total_cents = ?2, applied = ?3, applied_by_ssn = ?4, suspense = ?5, \
             rejected = ?6 WHERE remittance_id = ?7",
        )?
        .execute(params![
            as_i64(counts.line_count),
            counts.total.cents(),
            as_i64(counts.applied),
            as_i64(counts.applied_by_ssn),
            as_i64(counts.suspense),
            as_i64(counts.rejected),
            file.remittance_id
        ])?;
    insert_audit(connection, audit)?;
    crate::crash_points::reached("remittance.before_commit");
    connection.execute_batch("COMMIT")?;
    crate::crash_points::reached("remittance.after_commit");
    Ok(())
}

/// One file being written by the file thread. Dropped unfinished, it is rolled back.
struct SqliteFileWriter {
    thread: mpsc::Sender<Job>,
    /// Named by each of its jobs.
    serial: FileSerial,
    remittance: Option<NewRemittance>,
    remittance_id: i64,
    audit: AuditEntry,
    /// The answer to the last batch sent, not awaited yet.
    in_flight: Option<oneshot::Receiver<(StoreResult<()>, LineBatch)>>,
}

impl SqliteStore {
    /// Takes the writer, then has the file thread open the file's transaction and claim its
    /// batch id and content.
    pub(super) async fn begin_file(&self, remittance: NewRemittance, audit: AuditEntry) -> StoreResult<Box<dyn RemittanceWriter>> {
        let token = self.writer.acquire().await?;
        let (answer, answered) = oneshot::channel();
        self.files.send(Job::Begin { remittance: remittance.clone(), token, answer })?;
        let (remittance_id, serial) = answered.await.map_err(|_| stopped())??;
        Ok(Box::new(SqliteFileWriter {
            thread: self.files.jobs.clone(),
            serial,
            remittance: Some(remittance),
            remittance_id,
            audit,
            in_flight: None,
        }))
    }
}

impl SqliteFileWriter {
    async fn ask<T>(&self, job: impl FnOnce(oneshot::Sender<StoreResult<T>>) -> Job) -> StoreResult<T> {
        let (answer, answered) = oneshot::channel();
        self.thread.send(job(answer)).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Waits for the answer to the last batch sent, if any. The batch comes back with it and
    /// is freed here, on the caller's thread: the lines' memory is otherwise the writer
    /// thread's to free, about a twentieth of its time, on the thread every file waits for.
    async fn written_so_far(&mut self) -> StoreResult<()> {
        let Some(in_flight) = self.in_flight.take() else { return Ok(()) };
        let (written, batch) = in_flight.await.map_err(|_| stopped())?;
        drop(batch);
        written
    }
}

#[async_trait]
impl RemittanceWriter for SqliteFileWriter {
    /// Queues `batch` on the writer thread, then waits for the batch before it: the thread
    /// has the next batch in hand as it ends one. (Waiting for each batch before sending the
    /// next left the thread idle whenever the task that sends the batches was busy checking
    /// the next one: docs/performance.md, "Session 25".) A failure is answered one batch
    /// late, and nothing is written after it ([`OpenFile::failed`]).
    async fn write_lines(&mut self, batch: LineBatch) -> StoreResult<()> {
        let (answer, answered) = oneshot::channel();
        self.thread.send(Job::Lines { file: self.serial, batch, answer }).map_err(|_| stopped())?;
        let before = self.written_so_far().await;
        self.in_flight = Some(answered);
        before
    }

    async fn finish(mut self: Box<Self>, counts: LineCounts) -> StoreResult<RemittanceSummary> {
        self.written_so_far().await?;
        let audit = self.audit.clone();
        let file = self.serial;
        let finished = self.ask(|answer| Job::Finish { file, counts, audit, answer }).await;
        // Finished or failed, the thread has ended the transaction: nothing to abandon.
        let remittance = self.remittance.take().expect("a file is finished once");
        finished?;
        Ok(RemittanceSummary::committed(self.remittance_id, remittance, counts))
    }
}

impl Drop for SqliteFileWriter {
    fn drop(&mut self) {
        if self.remittance.is_some() {
            // Queued behind any batch still being written, so it rolls the file back last.
            let _ = self.thread.send(Job::Abandon { file: self.serial });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of batch `batch` from sender acme.
    fn file_sent_as(batch: &str) -> NewRemittance {
        NewRemittance {
            sender: "acme".into(),
            batch_id: batch.into(),
            format: "CSV",
            content_sha256: format!("sha-{batch}"),
            received_at: "t".into(),
            received_on: chrono::NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        }
    }

    fn audit_of_test() -> AuditEntry {
        AuditEntry {
            at: "2026-11-20T12:00:00Z".into(),
            request_id: "r".into(),
            actor: "tester".into(),
            key_id: None,
            role: "vendor".into(),
            action: "test".into(),
            object: String::new(),
            outcome: "OK".into(),
        }
    }

    /// Work that panics mid-transaction gives the writer back only once its transaction is
    /// rolled back: whoever takes the token next finds the database's write lock free at once
    /// and nothing of the work written.
    #[tokio::test]
    async fn work_that_panics_is_rolled_back_before_the_next_writer_may_start() {
        let (_dir, file, store) = store_in_a_folder().await;
        let token = store.writer.acquire().await.unwrap();
        store
            .files
            .run(token, move |connection, _| {
                connection.execute_batch("BEGIN IMMEDIATE; INSERT INTO gateway_settings (name, value) VALUES ('half', 'written');").unwrap();
                panic!("a bug in the middle of the work");
            })
            .unwrap();

        let next = store.writer.acquire().await.unwrap();
        let other = Connection::open(&file).unwrap();
        other.busy_timeout(Duration::ZERO).unwrap();
        other.execute_batch("BEGIN IMMEDIATE; ROLLBACK;").expect("the write lock is free as soon as the token is");
        let kept: i64 = other.query_row("SELECT COUNT(*) FROM gateway_settings WHERE name = 'half'", [], |row| row.get(0)).unwrap();
        assert_eq!(kept, 0);

        // The thread goes on serving.
        let (done, finished) = oneshot::channel();
        store.files.run(next, move |connection, _| done.send(connection.is_autocommit()).unwrap()).unwrap();
        assert!(finished.await.unwrap(), "no transaction left open");
    }

    /// The bundled SQLite is built as `.cargo/config.toml` asks: without memory statistics, and
    /// with each connection's page cache its own rather than one shared behind a global mutex
    /// (which the file writer and the lookups' readers took on every page they touched).
    #[test]
    fn sqlite_is_built_with_a_page_cache_per_connection() {
        let connection = Connection::open_in_memory().unwrap();
        let mut statement = connection.prepare("PRAGMA compile_options").unwrap();
        let options: Vec<String> = statement.query_map([], |row| row.get(0)).unwrap().collect::<Result<_, _>>().unwrap();
        assert!(options.iter().any(|option| option == "DEFAULT_MEMSTATUS=0"), "{options:?}");
        assert!(!options.iter().any(|option| option == "ENABLE_MEMORY_MANAGEMENT"), "{options:?}");
        assert!(options.iter().any(|option| option == "DEFAULT_FOREIGN_KEYS"), "the list read is the bundled build's: {options:?}");
    }

    /// Both writing connections, the file thread's and sqlx's, leave checkpoints to their
    /// thread up to the same limit and cut the log's file back to the same size.
    #[tokio::test]
    async fn both_writers_keep_the_logs_checkpoint_and_size_limits() {
        use crate::storage::sqlite_checkpoints::{LOG_FILE_LIMIT_BYTES, WRITER_LIMIT_PAGES};
        let (_dir, _, store) = store_in_a_folder().await;
        let read = |connection: &Connection| {
            let pages: i64 = connection.query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0)).unwrap();
            let bytes: i64 = connection.query_row("PRAGMA journal_size_limit", [], |row| row.get(0)).unwrap();
            (pages, bytes)
        };
        let expected = (i64::from(WRITER_LIMIT_PAGES), i64::try_from(LOG_FILE_LIMIT_BYTES).unwrap());

        let token = store.writer.acquire().await.unwrap();
        let (done, file_thread) = oneshot::channel();
        store.files.run(token, move |connection, _| done.send(read(connection)).unwrap()).unwrap();
        assert_eq!(file_thread.await.unwrap(), expected, "the file thread's connection");

        let mut sqlx_writer = store.writer.acquire().await.unwrap();
        let pages: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint").fetch_one(&mut *sqlx_writer).await.unwrap();
        let bytes: i64 = sqlx::query_scalar("PRAGMA journal_size_limit").fetch_one(&mut *sqlx_writer).await.unwrap();
        assert_eq!((pages, bytes), expected, "sqlx's writer connection");
    }

    /// SQLite's foreign-key enforcement is off for a file's transaction (the file checks its
    /// references itself): once a file has committed, been abandoned or been refused, the work
    /// that follows on the thread has it on again.
    #[tokio::test]
    async fn foreign_keys_are_enforced_again_once_a_file_or_a_distribution_chunk_has_ended() {
        let (_dir, _, store) = store_in_a_folder().await;
        let enforced = || async {
            let token = store.writer.acquire().await.unwrap();
            let (done, enforced) = oneshot::channel();
            store
                .files
                .run(token, move |connection, _| done.send(connection.db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_FKEY).unwrap()).unwrap())
                .unwrap();
            enforced.await.unwrap()
        };
        let remittance = file_sent_as;
        let audit = audit_of_test();
        assert!(enforced().await);

        let committed = store.begin_file(remittance("B-1"), audit.clone()).await.unwrap();
        committed.finish(LineCounts::default()).await.unwrap();
        assert!(enforced().await, "after a file committed");

        let abandoned = store.begin_file(remittance("B-2"), audit.clone()).await.unwrap();
        drop(abandoned);
        assert!(enforced().await, "after a file abandoned");

        // Turned off before the claim, which fails: the batch id is taken.
        assert!(matches!(store.begin_file(remittance("B-1"), audit.clone()).await, Err(StoreError::Conflict(_))));
        assert!(enforced().await, "after a file refused at its beginning");

        // What a distribution chunk begins with: off inside, and on again for the next work
        // (the probe is itself work, so it shows only that work turns it on first).
        let token = store.writer.acquire().await.unwrap();
        let (done, inside) = oneshot::channel();
        store
            .files
            .run(token, move |connection, _| {
                begin_checking_references_here(connection).unwrap();
                done.send(connection.db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_FKEY).unwrap()).unwrap();
            })
            .unwrap();
        assert!(!inside.await.unwrap(), "off inside the chunk's transaction");
        assert!(enforced().await, "after a chunk's transaction");
        static PLANNER: &crate::storage::Planner = &crate::domain::distribution::plan_obligors;
        assert!(store.distribute_chunks("2026-11-20T12:00:00Z", PLANNER).await.unwrap().is_none());
        assert!(enforced().await, "after a distribution run that found nothing pending");
    }

    /// A store on a database file of its own, in a folder removed when the first is dropped;
    /// the file's path, for connections of the test's own.
    async fn store_in_a_folder() -> (tempfile::TempDir, std::path::PathBuf, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.db");
        let store = SqliteStore::connect(&format!("sqlite://{}", file.display())).await.unwrap();
        (dir, file, store)
    }

    /// A line of a file, rejected (so it writes no money), with the status given.
    fn rejected_line(line: u64, status: &str) -> LineToWrite {
        use crate::storage::remittance::{LineEffects, StoredLine};
        LineToWrite {
            record: StoredLine {
                line,
                status: status.into(),
                employer_fein: None,
                case_number: None,
                ssn_last4: None,
                amount: None,
                pay_date: None,
                obligor_id: None,
                prenote: false,
                problems: vec![],
            },
            effects: LineEffects { collect: None, suspense: None, termination_notice: false },
        }
    }

    /// The lines and files the database holds, read by a connection of its own.
    fn lines_and_files(file: &Path) -> (i64, i64) {
        Connection::open(file)
            .unwrap()
            .query_row("SELECT (SELECT COUNT(*) FROM remittance_lines), (SELECT COUNT(*) FROM remittances)", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .unwrap()
    }

    /// A row the schema refuses ends the file's transaction at once (`INSERT OR ROLLBACK`):
    /// the batches after it and the file's end are refused rather than written one statement
    /// at a time outside any transaction, and nothing of the file is kept.
    #[tokio::test]
    async fn a_row_the_schema_refuses_ends_the_file_and_nothing_after_it_is_written() {
        let (_dir, file, store) = store_in_a_folder().await;
        let line = rejected_line;
        let (remittance, audit) = (file_sent_as("B-1"), audit_of_test());
        let mut writer = store.begin_file(remittance.clone(), audit.clone()).await.unwrap();
        writer.write_lines(vec![line(1, "REJECTED")].into()).await.unwrap();
        // A batch's answer comes with the call that sends the next one (the writer thread has
        // the next batch in hand as it ends one).
        writer.write_lines(vec![line(2, "NOT-A-STATUS")].into()).await.expect("the first batch was written");
        let refused = writer.write_lines(vec![line(3, "REJECTED")].into()).await.unwrap_err();
        assert!(refused.to_string().contains("CHECK"), "{refused}");
        // The writer answers the last batch's failure before it would send the file's end.
        let after = writer.finish(LineCounts::default()).await.expect_err("the file's end is refused too");
        assert!(matches!(&after, StoreError::Corrupt(why) if why.contains("failed before this one")), "{after}");
        assert_eq!(lines_and_files(&file), (0, 0), "nothing of the file is kept");
        // The writer is free, and the batch id unclaimed: the same file may be sent again.
        let again = store.begin_file(remittance, audit).await.unwrap();
        again.finish(LineCounts::default()).await.unwrap();
    }

    /// Has the thread begin a file; its id and serial.
    async fn begin_on_the_thread(store: &SqliteStore, batch: &str) -> (i64, FileSerial) {
        let token = store.writer.acquire().await.unwrap();
        let (answer, answered) = oneshot::channel();
        store.files.send(Job::Begin { remittance: file_sent_as(batch), token, answer }).unwrap();
        answered.await.unwrap().unwrap()
    }

    async fn lines_on_the_thread(store: &SqliteStore, file: FileSerial, lines: Vec<LineToWrite>) -> StoreResult<()> {
        let (answer, answered) = oneshot::channel();
        store.files.send(Job::Lines { file, batch: lines.into(), answer }).unwrap();
        answered.await.unwrap().0
    }

    async fn finish_on_the_thread(store: &SqliteStore, file: FileSerial) -> StoreResult<()> {
        let (answer, answered) = oneshot::channel();
        store.files.send(Job::Finish { file, counts: LineCounts::default(), audit: audit_of_test(), answer }).unwrap();
        answered.await.unwrap()
    }

    /// A file's end that reaches the thread after one of its batches failed (its writer sent
    /// both before hearing) is refused, and the file rolled back.
    #[tokio::test]
    async fn the_end_of_a_file_whose_batch_failed_is_refused() {
        let (_dir, file, store) = store_in_a_folder().await;
        let (_, serial) = begin_on_the_thread(&store, "B-1").await;
        lines_on_the_thread(&store, serial, vec![rejected_line(1, "REJECTED")]).await.unwrap();
        // A line that would collect without an obligor is refused before anything of its
        // batch is written: the file's transaction stays open.
        let mut collected_from_nobody = rejected_line(2, "APPLIED");
        collected_from_nobody.effects.collect = Some(crate::storage::remittance::PayrollCollection { case_number: None });
        let refused = lines_on_the_thread(&store, serial, vec![collected_from_nobody]).await.unwrap_err();
        assert!(refused.to_string().contains("collected without obligor"), "{refused}");
        let end = finish_on_the_thread(&store, serial).await.unwrap_err();
        assert!(end.to_string().contains("failed before this one"), "{end}");
        assert_eq!(lines_and_files(&file), (0, 0), "nothing of the file is kept");
        // Rolled back, its token given back: the next file begins.
        let (_, next) = begin_on_the_thread(&store, "B-1").await;
        finish_on_the_thread(&store, next).await.unwrap();
        assert_eq!(lines_and_files(&file), (0, 1));
    }

    /// A file the thread no longer holds (rolled back, as a panic rolls it back, while its
    /// writer had its next batch on the way) names no other: its late batch, end and abandon
    /// are refused or ignored, and the file begun after it, which may even have its id, is
    /// written and kept as its own writer sent it.
    #[tokio::test]
    async fn jobs_of_a_file_no_longer_open_leave_the_next_file_alone() {
        let (_dir, file, store) = store_in_a_folder().await;
        let (first_id, first) = begin_on_the_thread(&store, "B-1").await;
        store.files.send(Job::Abandon { file: first }).unwrap();
        let (second_id, second) = begin_on_the_thread(&store, "B-2").await;
        assert_eq!(second_id, first_id, "a file rolled back gives its id back: the serial tells them apart");
        assert_ne!(second, first);

        let late = lines_on_the_thread(&store, first, vec![rejected_line(1, "REJECTED")]).await.unwrap_err();
        assert!(late.to_string().contains("no longer open"), "{late}");
        store.files.send(Job::Abandon { file: first }).unwrap();
        let late_end = finish_on_the_thread(&store, first).await.unwrap_err();
        assert!(late_end.to_string().contains("no longer open"), "{late_end}");

        lines_on_the_thread(&store, second, vec![rejected_line(2, "REJECTED")]).await.expect("the open file goes on");
        finish_on_the_thread(&store, second).await.expect("and is kept");
        let kept: Vec<(String, i64)> = Connection::open(&file)
            .unwrap()
            .prepare("SELECT r.batch_id, l.line FROM remittance_lines l JOIN remittances r USING (remittance_id)")
            .unwrap()
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(kept, vec![("B-2".to_string(), 2)], "the second file holds its own line and none of the first's");
    }

    /// Each job is told its number, one more than the job the thread began before it, however
    /// that one ended (a panic included).
    #[tokio::test]
    async fn each_job_is_numbered_after_the_one_before() {
        let (_dir, _, store) = store_in_a_folder().await;
        let mut numbers = Vec::new();
        for panics in [false, true, false] {
            let token = store.writer.acquire().await.unwrap();
            let (done, number) = oneshot::channel();
            store
                .files
                .run(token, move |_, job| {
                    done.send(job).unwrap();
                    assert!(!panics, "a bug in the middle of the work");
                })
                .unwrap();
            numbers.push(number.await.unwrap());
        }
        assert_eq!(numbers[1], numbers[0] + 1);
        assert_eq!(numbers[2], numbers[1] + 1);
    }
}
