//! SQLite: the embedded default. `gateway serve` on a fresh machine creates `gateway.db`.
//!
//! SQLite allows one writer at a time, so writes go through a pool of exactly one connection
//! (queued in-process instead of failing with SQLITE_BUSY), and reads through a small pool of
//! their own that WAL mode lets run beside the writer. A read's audit row, which must be
//! durable before its answer leaves, goes through the audit journal when the writer is busy
//! (`sqlite_journal.rs`), so a long file never holds reads up.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, Transaction};

use super::sql_access::impl_sql_access;
use super::sql_verify::impl_sql_verify;
use super::sql_explain::impl_sql_explain;
use super::sql_credit::impl_sql_credit;
use super::sql_ends::impl_sql_ends;
use super::sql_payment::impl_sql_payments;
use super::sql_remittance::impl_sql_remittances;
use super::sql_store::impl_sql_store;
use super::sql_obligors::impl_sql_obligors;
use super::sql_reports::impl_sql_reports;
use super::sql_reviews::impl_sql_reviews;
use super::sql_suspense::impl_sql_suspense;
use super::sql_terminations::impl_sql_terminations;
use super::sqlite_checkpoints::{writer_limits, Checkpointer};
use super::sqlite_files::WriterThread;
use super::sqlite_journal::AuditJournal;
use super::sqlite_lookups::Lookups;
use super::payment_groups::GroupCommit;
use super::StoreResult;

pub struct SqliteStore {
    pub(super) writer: SqlitePool,
    pub(super) reader: SqlitePool,
    /// Where audit rows written on their own wait while the writer is busy.
    pub(super) journal: AuditJournal,
    /// Commits online payments in groups (`sqlite_payments.rs`).
    payments: GroupCommit,
    /// Writes remittance files, payments' group commits and distribution chunks on a thread
    /// of its own (`sqlite_files.rs`).
    pub(super) files: WriterThread,
    /// Looks up the registry for remittance lines (`sqlite_lookups.rs`).
    pub(super) lookups: Arc<Lookups>,
    /// Copies the log into the database file off the writers' path (`sqlite_checkpoints.rs`).
    _checkpoints: Checkpointer,
}

impl SqliteStore {
    /// SQLite has one writer: nothing to lock.
    const FOR_UPDATE: &'static str = "";


    /// Opens (creating if missing) the database file a `sqlite://FILE` URL names and applies
    /// the migrations.
    pub async fn connect(url: &str) -> StoreResult<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit the gateway acknowledged survives a power cut, not only a crash.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        // The writer's page cache holds a large file's transaction without spilling it to the
        // log page by page (32 MiB; the server stays well under its 200 MB budget).
        // It checkpoints only past its own limit: the checkpoint thread copies the log.
        let writer_options = writer_limits()
            .into_iter()
            .fold(options.clone().pragma("cache_size", "-32768").pragma("temp_store", "MEMORY"), |writer, (pragma, value)| {
                writer.pragma(pragma, value)
            });
        let writer = SqlitePoolOptions::new().max_connections(1).connect_with(writer_options).await?;
        sqlx::migrate!("./migrations/sqlite").run(&writer).await?;
        let reader = SqlitePoolOptions::new().max_connections(4).connect_with(options.read_only(true)).await?;
        // The read pool, the audit journal and the file thread each open the file again, so
        // an in-memory database (one per connection) cannot serve.
        let file = super::sqlite_file(url).ok_or_else(|| super::StoreError::UnsupportedUrl(format!("{url} (SQLite needs a file)")))?;
        let journal = AuditJournal::open(&file, &writer).await?;
        let files = WriterThread::start(&file)?;
        let lookups = Lookups::new(&file);
        let payments = super::sqlite_payments::start(writer.clone(), files.clone());
        let _checkpoints = Checkpointer::start(&file)?;
        Ok(SqliteStore { writer, reader, journal, payments, files, lookups, _checkpoints })
    }

    /// Commits an accepted payment with those waiting beside it, in one durable commit.
    async fn commit_payment(&self, new: super::payment::NewPayment, audit: &super::AuditEntry) -> StoreResult<super::payment::PaymentRecord> {
        self.payments.commit(new, audit).await
    }

    /// Writes an audit row of its own: straight into `audit_log` when the writer is free,
    /// else into the journal, which moves it there once the writer is.
    async fn append_audit(&self, entry: &super::AuditEntry) -> StoreResult<()> {
        match self.writer.try_acquire() {
            None => self.journal.append(entry).await,
            Some(mut writer) => {
                super::sql_access::insert_audit!(&mut *writer, entry)?;
                Ok(())
            }
        }
    }

    /// Moves what the journal holds into `audit_log`, so a reader of the log sees every
    /// call answered before it asked.
    async fn settle_audit(&self) -> StoreResult<()> {
        self.journal.settle(&self.writer).await
    }

    fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    fn reader(&self) -> &SqlitePool {
        &self.reader
    }

    /// A read transaction that sees one state of the database for all its statements: a
    /// deferred transaction in WAL mode keeps the snapshot of its first read.
    async fn begin_snapshot(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.reader().begin().await?)
    }

    /// A write transaction that holds SQLite's write lock from its start: one that reads
    /// before it writes could otherwise find, at its first write, that another process
    /// committed since its read began, and fail at once with "database is locked".
    async fn begin_writing(&self) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Nothing to do: without statistics, SQLite's planner already takes the index for an
    /// equality or `IN (…)` on an indexed column, as the lookups need.
    async fn registry_changed_in_bulk(&self) -> StoreResult<()> {
        Ok(())
    }

    /// The single writer connection already serialises distribution runs in this process;
    /// another process on the same file waits on SQLite's own lock (busy timeout).
    async fn lock_distribution(_tx: &mut Transaction<'_, Sqlite>) -> StoreResult<()> {
        Ok(())
    }
}

impl_sql_store!(SqliteStore, Sqlite, "sqlite");
impl_sql_remittances!(SqliteStore, Sqlite);
impl_sql_payments!(SqliteStore, Sqlite);
impl_sql_access!(SqliteStore, Sqlite);
impl_sql_suspense!(SqliteStore, Sqlite);
impl_sql_terminations!(SqliteStore, Sqlite);
impl_sql_reviews!(SqliteStore, Sqlite);
impl_sql_ends!(SqliteStore, Sqlite);
impl_sql_credit!(SqliteStore, Sqlite);
impl_sql_explain!(SqliteStore, Sqlite);
impl_sql_verify!(SqliteStore, Sqlite);
impl_sql_reports!(SqliteStore, Sqlite);
impl_sql_obligors!(SqliteStore, Sqlite);
