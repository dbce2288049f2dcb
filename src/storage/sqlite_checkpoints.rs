//! The database file's WAL checkpoints, on a thread and a connection of their own.
//!
//! In WAL mode a commit appends its pages to the log, and a checkpoint copies them into the
//! database file. By default SQLite checkpoints inside the commit that leaves the log over
//! 1,000 pages (4 MiB), so that commit's caller waits for the copy: a distribution chunk writes
//! more than that, so nearly every chunk's commit also copied its pages (0.95 s of a 6.4 s
//! full-size run, `docs/performance.md`), and a payments group that crossed the line was
//! answered only after it.
//!
//! Here a thread runs `PRAGMA wal_checkpoint(PASSIVE)` every [`INTERVAL`]: it copies what no
//! reader still needs and neither waits for nor blocks the writers or the readers, so a
//! commit of an ordinary size only appends. The writing connections keep a limit of their
//! own, [`WRITER_LIMIT_PAGES`] (64 MiB), at which a commit checkpoints as before: a large
//! file's commit, whose transaction alone writes hundreds of MiB to the log, still copies it
//! before the file is acknowledged, and the writers take over should this thread fall
//! behind. Neither can copy what an open read snapshot (a verification, an explanation) still
//! needs, so the log grows while one is open, as it always could.
//!
//! A checkpoint copies the log but does not shrink its file: the next commit writes over it from
//! the start. The writers cut its file back to [`LOG_FILE_LIMIT_BYTES`] (`journal_size_limit`)
//! when they do, so a large file's commit does not leave hundreds of MiB on disk for good.
//!
//! Nothing durable depends on it: a commit is durable once its pages are synced to the log
//! (`synchronous = FULL`), and a checkpoint cut short by a crash is done again from the log
//! when the file is next opened.

use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, InterruptHandle, OpenFlags};

use super::{StoreError, StoreResult};

/// The log's size, in pages, at which a writing connection's own commit checkpoints, should the
/// checkpoint thread fall behind.
pub(super) const WRITER_LIMIT_PAGES: u32 = 16_384;

/// The size, in bytes, the log's file is cut back to once a checkpoint has copied it all:
/// above what the writers' limit fills (16,384 frames of a 4 KiB page and a 24-byte header,
/// about 64.4 MiB), so an ordinary log is never cut and regrown.
pub(super) const LOG_FILE_LIMIT_BYTES: u64 = 72 * 1024 * 1024;

/// The settings every writing connection takes, as (pragma, value): its own checkpoint limit
/// and the log's size limit. The one list both writers (sqlx's and the file thread's) read.
pub(super) fn writer_limits() -> [(&'static str, String); 2] {
    [("wal_autocheckpoint", WRITER_LIMIT_PAGES.to_string()), ("journal_size_limit", LOG_FILE_LIMIT_BYTES.to_string())]
}

/// [`writer_limits`] as statements, for a connection opened without sqlx.
pub(super) fn writer_pragmas() -> String {
    writer_limits().iter().map(|(pragma, value)| format!("PRAGMA {pragma} = {value};")).collect::<Vec<_>>().join(" ")
}

/// How often the thread checkpoints. A checkpoint with nothing to copy reads the log's index
/// and returns.
const INTERVAL: Duration = Duration::from_millis(100);

/// The checkpoint thread. Dropping this ends it: a checkpoint under way is interrupted (what it
/// had not copied stays in the log), and the drop returns once the thread has closed its
/// connection, so the store's end leaves nothing of it running on the file.
pub(super) struct Checkpointer {
    /// Dropped first: the thread's wait ends when its sender is gone.
    running: Option<mpsc::Sender<()>>,
    interrupt: InterruptHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the database `file` (already in WAL mode).
    pub(super) fn start(file: &Path) -> StoreResult<Checkpointer> {
        let connection = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        // As the writers: the copy is synced to the database file before the log is reused.
        connection.execute_batch("PRAGMA synchronous = FULL;")?;
        let interrupt = connection.get_interrupt_handle();
        let (running, stop) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpointer".into())
            .spawn(move || serve(&connection, &stop))
            .map_err(|error| StoreError::Corrupt(format!("cannot start the SQLite checkpoint thread: {error}")))?;
        Ok(Checkpointer { running: Some(running), interrupt, thread: Some(thread) })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.running.take());
        self.interrupt.interrupt();
        if let Some(thread) = self.thread.take() {
            // A panic on the thread was already reported by the panic hook.
            let _ = thread.join();
        }
    }
}

fn serve(connection: &Connection, stop: &mpsc::Receiver<()>) {
    // Nothing is ever sent: the wait ends with the store, which drops the sender.
    while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(INTERVAL) {
        match connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            Ok(()) => {}
            // The store is ending (see `Drop`).
            Err(error) if error.sqlite_error_code() == Some(ErrorCode::OperationInterrupted) => {}
            Err(error) => tracing::warn!(%error, "checkpointing the SQLite log failed; the writers checkpoint at their own limit"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A commit leaves its pages in the log (its writer's limit is not reached), and the
    /// thread copies them into the database file without anyone else writing.
    #[test]
    fn committed_pages_reach_the_database_file_without_the_writer_copying_them() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.db");
        let writer = Connection::open(&file).unwrap();
        writer
            .execute_batch(&format!("PRAGMA journal_mode = WAL; {} CREATE TABLE t (x BLOB);", writer_pragmas()))
            .unwrap();
        writer
            .execute_batch(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000) \
                 INSERT INTO t SELECT randomblob(1000) FROM n;",
            )
            .unwrap();
        let size = || std::fs::metadata(&file).unwrap().len();
        assert!(size() < 1_000_000, "the rows are in the log, not yet in the file: {} bytes", size());

        let _checkpointer = Checkpointer::start(&file).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // 4,000 rows of 1,000 bytes: about 4.1 MB once copied.
        while size() < 3_500_000 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(size() >= 3_500_000, "the thread copied the log into the file: {} bytes", size());
        assert_eq!(writer.query_row("SELECT COUNT(*) FROM t", [], |row| row.get::<_, i64>(0)).unwrap(), 4000);
    }

    /// The last connection to close deletes the log, so its file is gone once the drop has
    /// returned only if the thread's connection was closed before it did.
    #[test]
    fn dropping_the_checkpointer_closes_its_connection_before_returning() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.db");
        let log = dir.path().join("gateway.db-wal");
        let writer = Connection::open(&file).unwrap();
        writer.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x BLOB); INSERT INTO t VALUES (1);").unwrap();
        let checkpointer = Checkpointer::start(&file).unwrap();
        std::thread::sleep(INTERVAL * 2);
        drop(writer);
        assert!(log.exists(), "the checkpoint thread's connection keeps the log");
        drop(checkpointer);
        assert!(!log.exists(), "the thread closed its connection, the last one, before the drop returned");
    }
}
