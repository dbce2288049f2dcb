//! The audit journal: on SQLite, an audit row written on its own (a read, a refusal, a failed
//! call's outcome) while the one writer connection is busy goes first to a small database file
//! of its own beside the main one, and a background task moves it into `audit_log` as soon as
//! the writer is free.
//!
//! Why: SQLite has one writer per file. A long write (a file of a million lines, a slow
//! upload) holds it for as long as it takes. A read needs none of it, but its audit row must
//! be durable before its answer leaves; written to the main file, it would wait for the
//! whole file (up to the pool's acquire timeout, then fail). The journal has a writer of its
//! own, so the read waits for one small durable commit instead.
//!
//! Each row reaches `audit_log` exactly once: it carries a random key, unique there, so a
//! move that committed into `audit_log` but died before deleting from the journal is not
//! repeated by the next. Rows are moved in the order they were journaled. `audit_log`'s
//! `audit_id` is therefore the order rows reached the log; `at` says when each call was
//! answered (as on PostgreSQL, where concurrent calls commit out of id order too).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::Notify;

use super::access::AuditEntry;
use super::StoreResult;

/// Rows moved a transaction: a move holds the main writer briefly, so a file waiting for it
/// is not delayed by a long backlog.
const ROWS_PER_MOVE: i64 = 500;

/// How long a reader of the audit log waits for the writer to move the journal first.
const SETTLE_WAIT: Duration = Duration::from_secs(2);

/// The journal of one SQLite database, and its mover's controls.
pub(super) struct AuditJournal {
    pool: SqlitePool,
    wake: Arc<Notify>,
    stopped: Arc<AtomicBool>,
}

type JournalRow = (i64, String, String, String, String, Option<String>, String, String, String, String);

impl AuditJournal {
    /// The journal file of a database file: beside it, with `.audit` added to its name.
    pub(super) fn path_for(database: &Path) -> PathBuf {
        let mut name = database.as_os_str().to_owned();
        name.push(".audit");
        PathBuf::from(name)
    }

    /// Opens (creating) the journal of the database whose one writer is `writer`, moves what
    /// an earlier process left in it, and starts the task that moves rows from now on.
    pub(super) async fn open(database: &Path, writer: &SqlitePool) -> StoreResult<AuditJournal> {
        let options = SqliteConnectOptions::new()
            .filename(Self::path_for(database))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // As the main file: a row journaled before its answer left survives a power cut.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new().max_connections(2).connect_with(options).await?;
        // A queue, not a record: its one table is made here rather than by migrations.
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS audit_journal (\
               journal_id INTEGER PRIMARY KEY AUTOINCREMENT, journal_key TEXT NOT NULL UNIQUE, \
               at TEXT NOT NULL, request_id TEXT NOT NULL, actor TEXT NOT NULL, key_id TEXT, role TEXT NOT NULL, \
               action TEXT NOT NULL, object TEXT NOT NULL, outcome TEXT NOT NULL)",
        )
        .execute(&pool)
        .await?;
        let journal = AuditJournal { pool, wake: Arc::new(Notify::new()), stopped: Arc::new(AtomicBool::new(false)) };
        // What an earlier process left is moved now; if another process holds the writer
        // longer than the busy timeout, the mover keeps trying instead of failing the start.
        if let Err(error) = move_all(&journal.pool, writer).await {
            tracing::warn!(%error, "audit rows an earlier process journaled are not moved yet; trying again");
            journal.wake.notify_one();
        }
        tokio::spawn(keep_moving(journal.pool.clone(), writer.clone(), journal.wake.clone(), journal.stopped.clone()));
        Ok(journal)
    }

    /// Writes `entry` durably to the journal and wakes the mover.
    pub(super) async fn append(&self, entry: &AuditEntry) -> StoreResult<()> {
        let mut key = [0u8; 16];
        getrandom::fill(&mut key).expect("the operating system provides random bytes");
        let key: String = key.iter().map(|byte| format!("{byte:02x}")).collect();
        sqlx::query(
            "INSERT INTO audit_journal (journal_key, at, request_id, actor, key_id, role, action, object, outcome) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(key)
        .bind(&entry.at)
        .bind(&entry.request_id)
        .bind(&entry.actor)
        .bind(entry.key_id.as_deref())
        .bind(&entry.role)
        .bind(&entry.action)
        .bind(&entry.object)
        .bind(&entry.outcome)
        .execute(&self.pool)
        .await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Moves every row journaled so far into `audit_log`, so a reader of the log sees every
    /// call answered before it asked: waiting for the writer at most `SETTLE_WAIT`, since a
    /// reader must not be held up by a long write either. Past that, the rows stay journaled
    /// (durable) and reach the log when the write ends. Cancelling a move is safe: rows
    /// copied but not yet deleted from the journal are skipped when moved again.
    pub(super) async fn settle(&self, writer: &SqlitePool) -> StoreResult<()> {
        match tokio::time::timeout(SETTLE_WAIT, move_all(&self.pool, writer)).await {
            Ok(moved) => moved,
            Err(_) => {
                tracing::info!("the writer is busy: audit rows journaled meanwhile reach the log when it is free");
                Ok(())
            }
        }
    }
}

impl Drop for AuditJournal {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// The mover: woken by each row journaled, it moves all there is, trying again each second
/// while it fails; it ends when its journal is dropped (what is left then is moved when the
/// database is next opened).
async fn keep_moving(journal: SqlitePool, writer: SqlitePool, wake: Arc<Notify>, stopped: Arc<AtomicBool>) {
    loop {
        wake.notified().await;
        if stopped.load(Ordering::Acquire) {
            break;
        }
        if let Err(error) = move_all(&journal, &writer).await {
            // The rows stay journaled, durable, until a move succeeds (most often the writer
            // was only busy past the pool's timeout with a long file).
            tracing::warn!(%error, "journaled audit rows not moved into audit_log yet; trying again");
            tokio::time::sleep(Duration::from_secs(1)).await;
            wake.notify_one();
        }
    }
}

/// Moves journaled rows into `audit_log`, oldest first, until none is left.
async fn move_all(journal: &SqlitePool, writer: &SqlitePool) -> StoreResult<()> {
    loop {
        let rows: Vec<JournalRow> = sqlx::query_as(
            "SELECT journal_id, journal_key, at, request_id, actor, key_id, role, action, object, outcome \
             FROM audit_journal ORDER BY journal_id LIMIT $1",
        )
        .bind(ROWS_PER_MOVE)
        .fetch_all(journal)
        .await?;
        let Some(last) = rows.last().map(|row| row.0) else { return Ok(()) };
        copy_into_log(writer, &rows).await?;
        sqlx::query("DELETE FROM audit_journal WHERE journal_id <= $1").bind(last).execute(journal).await?;
    }
}

/// Inserts `rows` into `audit_log` in one transaction, skipping any already there.
async fn copy_into_log(writer: &SqlitePool, rows: &[JournalRow]) -> StoreResult<()> {
    let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO audit_log (journal_key, at, request_id, actor, key_id, role, action, object, outcome) ",
    );
    insert.push_values(rows, |mut row, (_, key, at, request_id, actor, key_id, role, action, object, outcome)| {
        row.push_bind(key)
            .push_bind(at)
            .push_bind(request_id)
            .push_bind(actor)
            .push_bind(key_id)
            .push_bind(role)
            .push_bind(action)
            .push_bind(object)
            .push_bind(outcome);
    });
    insert.push(" ON CONFLICT (journal_key) DO NOTHING");
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    insert.build().execute(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            at: "2026-12-03T10:00:00Z".into(),
            request_id: format!("req-{action}"),
            actor: "clerk".into(),
            key_id: Some("k1".into()),
            role: "back-office".into(),
            action: action.into(),
            object: String::new(),
            outcome: "OK".into(),
        }
    }

    async fn logged_actions(writer: &SqlitePool) -> Vec<String> {
        sqlx::query_scalar("SELECT action FROM audit_log ORDER BY audit_id").fetch_all(writer).await.unwrap()
    }

    #[tokio::test]
    async fn journaled_rows_reach_the_log_once_in_order_even_when_a_move_is_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("gateway.db");
        let store = super::super::SqliteStore::connect(&format!("sqlite://{}", database.display())).await.unwrap();
        let journal = &store.journal;
        // The writer held, as by a long file: the mover cannot move anything yet.
        let held = store.writer.acquire().await.unwrap();
        for action in ["first", "second", "third"] {
            journal.append(&entry(action)).await.unwrap();
        }
        // A move that died after its commit into audit_log, before deleting from the journal:
        // the rows are copied again by the next move, and skipped.
        let rows: Vec<JournalRow> = sqlx::query_as(
            "SELECT journal_id, journal_key, at, request_id, actor, key_id, role, action, object, outcome FROM audit_journal ORDER BY journal_id",
        )
        .fetch_all(&journal.pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), 3, "the rows are still journaled");
        drop(held);
        copy_into_log(&store.writer, &rows).await.unwrap();
        copy_into_log(&store.writer, &rows).await.unwrap();
        journal.settle(&store.writer).await.unwrap();
        assert_eq!(logged_actions(&store.writer).await, ["first", "second", "third"]);
        let left: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_journal").fetch_one(&journal.pool).await.unwrap();
        assert_eq!(left, 0);
    }

    #[tokio::test]
    async fn rows_left_by_a_process_that_died_are_moved_when_the_database_is_opened_again() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("gateway.db");
        let url = format!("sqlite://{}", database.display());
        let store = super::super::SqliteStore::connect(&url).await.unwrap();
        // Written straight to the journal file, as a process killed before its mover ran left it.
        let journal = SqlitePool::connect(&format!("sqlite://{}", AuditJournal::path_for(&database).display())).await.unwrap();
        sqlx::query(
            "INSERT INTO audit_journal (journal_key, at, request_id, actor, key_id, role, action, object, outcome) \
             VALUES ('abc', '2026-12-03T10:00:00Z', 'r', 'clerk', NULL, 'back-office', 'left-behind', '', 'OK')",
        )
        .execute(&journal)
        .await
        .unwrap();
        drop(store);
        let reopened = super::super::SqliteStore::connect(&url).await.unwrap();
        assert_eq!(logged_actions(&reopened.writer).await, ["left-behind"]);
    }
}
