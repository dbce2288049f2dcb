//! Distribution runs on SQLite: each chunk on the writer thread (`sqlite_files.rs`), with its
//! connection's prepared statements, and the next chunk read and planned on the other core
//! meanwhile.
//!
//! Through sqlx every row a chunk read and every value it bound crossed to sqlx's worker
//! thread and back, each its own allocation: a run of 1,000,000 collections spent most of its
//! CPU handing rows over (`docs/performance.md`). Here a chunk is one job on the thread: it
//! takes its plans (read ahead, below, or listed, loaded and planned there: the planner is a
//! plain function), writes, checks and commits, and answers once.
//!
//! **Reading ahead.** The writer is the one core a run can use, so once a chunk is planned its
//! job has the next chunk listed, loaded and planned on a read connection (`Lookups`), on a
//! blocking thread, while it writes. Every row a chunk writes or deletes is keyed by one of
//! its own obligors (its range of the queue, its pools, claims and allocations, and through
//! the trigger its orders' balances), and its new pools are referred to by no older row; the
//! next chunk reads only obligors after it. So what the read saw is the next chunk's state as
//! long as nobody else wrote between the two chunks' jobs. That is checked when the next
//! chunk begins, under the write lock ([`Stamp`]): no other connection committed (`PRAGMA
//! data_version` is unchanged) and the writer thread ran no other job in between. The read
//! began after the first job's stamp and ended before the second's, so any other commit
//! that it could have seen, or missed, shows in one of the two. Otherwise the next chunk is
//! loaded and planned on the writer, as the first is.
//!
//! **References.** A chunk's rows name only what it read in its own transaction (or read
//! ahead and checked as above): its run, its new pools, and the obligors, orders and
//! correction pools it loaded; `ChunkRows::new` refuses a plan naming anything else. So
//! SQLite's row-by-row foreign-key checks, about a third of the chunk's writing, are off for
//! its transaction, as for a file's, and `gateway verify` checks every stored reference
//! (`distribution_references`).
//!
//! A chunk is one transaction (`BEGIN IMMEDIATE` … `COMMIT`), holding the sqlx writer
//! connection as its token throughout, as a file does; whatever fails, a panic included, is
//! rolled back before the token is given back (`WriterThread::run`). A caller that goes away (its
//! deadline passed, its client hung up) before its chunk commits leaves nothing of the chunk:
//! the thread asks before it starts and again before it commits, as dropping the call drops
//! the transaction on PostgreSQL.

use std::sync::{mpsc, Arc};

use rusqlite::{params, Connection, Row};
use tokio::sync::oneshot;

use super::distribution_chunk::{self as chunk, ChunkLoader, ChunkRows, LoadedKeys, PendingAmounts, Segments, WrittenSums};
use super::sql_store::{self as sql, OBLIGORS_PER_BATCH};
use super::sqlite::SqliteStore;
use super::sqlite_files::{begin_checking_references_here, insert_rows, integer, optional_owned_text, optional_text, stopped, text, JobNumber};
use super::sqlite_lookups::Lookups;
use super::{Planner, StoreError, StoreResult};
use crate::domain::distribution::{ObligorInput, ObligorPlan, RunSummary};

/// Which chunk: from the first obligor with money after `after`, a span of `obligors` of the
/// registry (less if that holds too much to load: `sql::chunk_too_big`).
#[derive(Clone, Debug, PartialEq, Eq)]
struct ChunkRequest {
    after: String,
    obligors: i64,
}

/// A chunk listed and loaded: its range of obligors (and how many of the registry's it spans),
/// the queue's segments it read, its pending collections, and the keys its rows may name.
struct OpenChunk {
    first: String,
    last: String,
    registry_obligors: i64,
    segments: Segments,
    pending: PendingAmounts,
    keys: LoadedKeys,
}

/// A chunk ready to write: loaded and planned; `None` when nothing is left to distribute.
type Planned = Option<(OpenChunk, Vec<ObligorPlan>)>;

/// What the database had been written by when a chunk's job began, under the write lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    /// Changes whenever another connection commits.
    data_version: i64,
    /// The writer thread's job that took it.
    job: JobNumber,
}

impl Stamp {
    fn now(connection: &Connection, job: JobNumber) -> StoreResult<Stamp> {
        let data_version = connection.query_row("PRAGMA data_version", [], |row| row.get(0))?;
        Ok(Stamp { data_version, job })
    }

    /// Whether `later`, the next chunk's stamp, shows nobody wrote since this one but the
    /// chunk whose job took this stamp.
    fn followed_only_by_its_chunk(&self, later: &Stamp) -> bool {
        later.data_version == self.data_version && later.job == self.job + 1
    }
}

/// The next chunk, read and planned beside the chunk before it.
struct ReadAhead {
    /// The stamp of the chunk whose job began the read (the read began after it was taken).
    stamp: Stamp,
    request: ChunkRequest,
    planned: StoreResult<Planned>,
}

impl SqliteStore {
    /// Distributes every pending collection, chunk by chunk on the writer thread.
    pub(super) async fn distribute_chunks(&self, started_at: &str, planner: &'static Planner) -> StoreResult<Option<RunSummary>> {
        let mut run: Option<RunSummary> = None;
        let mut request = ChunkRequest { after: String::new(), obligors: OBLIGORS_PER_BATCH };
        // The next chunk's read, begun by the chunk before it.
        let mut ahead: Option<mpsc::Receiver<ReadAhead>> = None;
        loop {
            let token = self.writer.acquire().await?;
            let (answer, answered) = oneshot::channel::<StoreResult<Option<(ChunkRequest, RunSummary)>>>();
            let (read_next, next) = mpsc::sync_channel(1);
            let this = Chunk {
                request: request.clone(),
                run_id: run.as_ref().map(|r| r.run_id),
                started_at: started_at.to_owned(),
                planner,
                ahead: ahead.replace(next),
                reader: (self.lookups.clone(), read_next),
            };
            self.files.run(token, move |connection, job| {
                let outcome = this.run(connection, job, &|| !answer.is_closed());
                let _ = answer.send(outcome);
            })?;
            let Some((next, summary)) = answered.await.map_err(|_| stopped())?? else { break };
            run = Some(chunk::add_to_run(run, summary));
            request = next;
        }
        Ok(run)
    }
}

/// One chunk's job on the writer thread.
struct Chunk {
    request: ChunkRequest,
    /// The run's id; the first chunk writes the run's row.
    run_id: Option<i64>,
    started_at: String,
    planner: &'static Planner,
    /// This chunk read ahead by the job before, if it did.
    ahead: Option<mpsc::Receiver<ReadAhead>>,
    /// Where this job reads the next chunk ahead, and where it sends it.
    reader: (Arc<Lookups>, mpsc::SyncSender<ReadAhead>),
}

impl Chunk {
    /// Plans (or takes the plans read ahead), writes and commits the chunk: the next chunk's
    /// request and what this one wrote, or `None` when no obligor after `request.after` has
    /// money to distribute. Nothing is committed once `caller_waiting` says the caller went
    /// away.
    fn run(self, connection: &Connection, job: JobNumber, caller_waiting: &dyn Fn() -> bool) -> StoreResult<Option<(ChunkRequest, RunSummary)>> {
        if !caller_waiting() {
            return Err(caller_went_away());
        }
        // Waited for before the write lock is taken, so a slow read holds nobody up.
        let ahead = self.ahead.and_then(|ahead| ahead.recv().ok());
        // IMMEDIATE: the write lock from the start, so nothing changes what the chunk
        // planned from (loaded here, or read ahead and checked by the stamps) until it commits.
        // Its rows name only keys it read (`ChunkRows::new` refuses others), so SQLite's
        // row-by-row foreign-key checks, a third of a chunk's writing, are off for it.
        begin_checking_references_here(connection)?;
        let stamp = Stamp::now(connection, job)?;
        let planned = match ahead {
            Some(read) if read.request == self.request && read.stamp.followed_only_by_its_chunk(&stamp) => match read.planned {
                Ok(planned) => planned,
                // What failed on the read connection is tried again here, where it counts.
                Err(error) => {
                    tracing::debug!(%error, "distribution: reading the next chunk ahead failed; planning it on the writer");
                    plan(connection, &self.request, self.planner)?
                }
            },
            Some(_) => {
                tracing::debug!("distribution: something else was written since the chunk was read ahead; planning it on the writer");
                plan(connection, &self.request, self.planner)?
            }
            None => plan(connection, &self.request, self.planner)?,
        };
        let Some((open, plans)) = planned else { return Ok(None) };
        // Sized from this chunk's obligors and collections per registry obligor (every
        // pending one is claimed).
        let next = ChunkRequest {
            after: open.last.clone(),
            obligors: sql::next_chunk_span(open.registry_obligors as u64, plans.len() as u64, open.pending.count() as u64),
        };
        read_ahead(self.reader, stamp, next.clone(), self.planner);
        let run_id = match self.run_id {
            Some(run_id) => run_id,
            None => connection.prepare_cached(&numbered(chunk::NEW_RUN))?.query_row(params![self.started_at], |row| row.get(0))?,
        };
        let summary = write_chunk(connection, run_id, &open, &plans, caller_waiting)?;
        Ok(Some((next, summary)))
    }
}

/// Reads and plans the chunk of `request` on a read connection, on a blocking thread, and
/// sends it with `stamp`, or the error that stopped it; a read that panics sends nothing. The
/// chunk is then planned on the writer.
fn read_ahead((lookups, send): (Arc<Lookups>, mpsc::SyncSender<ReadAhead>), stamp: Stamp, request: ChunkRequest, planner: &'static Planner) {
    tokio::task::spawn_blocking(move || {
        let planned = lookups.with_connection(|connection| {
            // One read transaction: every query of the chunk sees the same state.
            connection.execute_batch("BEGIN")?;
            let planned = plan(connection, &request, planner);
            connection.execute_batch("ROLLBACK")?;
            planned
        });
        let _ = send.send(ReadAhead { stamp, request, planned });
    });
}

/// Lists, loads and plans the chunk of `request`, in the connection's open transaction.
fn plan(connection: &Connection, request: &ChunkRequest, planner: &Planner) -> StoreResult<Planned> {
    let Some((open, inputs)) = load_chunk(connection, request)? else { return Ok(None) };
    let plans = planner(inputs)?;
    Ok(Some((open, plans)))
}

/// Never answered (no one is waiting): it rolls the chunk back.
fn caller_went_away() -> StoreError {
    StoreError::Conflict("the caller went away before the chunk committed".into())
}

/// SQLite binds `$N` by order of first appearance, `?N` by number: the shared SQL, numbered.
fn numbered(sql: &str) -> String {
    sql.replace('$', "?")
}

fn text_at<'r>(row: &'r Row<'_>, column: usize) -> StoreResult<&'r str> {
    row.get_ref(column)?.as_str().map_err(sql::corrupt("text column"))
}

/// Lists the chunk's obligors and loads their money and ledgers, in the connection's open
/// transaction; `None` when no obligor after `request.after` has money to distribute.
fn load_chunk(connection: &Connection, request: &ChunkRequest) -> StoreResult<Option<(OpenChunk, Vec<ObligorInput>)>> {
    let segments = Segments::new(
        connection.prepare_cached(chunk::QUEUE_SEGMENTS)?.query_map([], |row| row.get::<_, i64>(0))?.collect::<Result<Vec<i64>, _>>()?,
    );
    let mut first_queued = Vec::new();
    let mut first_in_segment = connection.prepare_cached(&numbered(chunk::FIRST_QUEUED_AFTER))?;
    for segment in segments.iter() {
        let mut rows = first_in_segment.query(params![segment, request.after])?;
        if let Some(row) = rows.next()? {
            first_queued.push(row.get::<_, String>(0)?);
        }
    }
    let mut corrected = connection.prepare_cached(&numbered(chunk::FIRST_CORRECTED_AFTER))?;
    let first_corrected = corrected.query(params![request.after])?.next()?.map(|row| row.get::<_, String>(0)).transpose()?;
    let Some(first) = chunk::chunk_start(first_queued, first_corrected) else { return Ok(None) };
    let mut span = request.obligors;
    let (last, registry_obligors, mut loader) = loop {
        let (registry_last, registry_obligors): (Option<String>, i64) =
            connection.prepare_cached(&numbered(chunk::CHUNK_RANGE))?.query_row(params![first, span], |row| Ok((row.get(0)?, row.get(1)?)))?;
        let last = chunk::chunk_end(&first, registry_last);
        let smaller = sql::smaller_span(span);
        let mut loader = ChunkLoader::default();
        let mut pending = connection.prepare_cached(&numbered(&chunk::chunk_pending(&segments, smaller.map(|_| sql::PENDING_READ_AT_MOST))))?;
        let mut rows = pending.query(params![first, last])?;
        while let Some(row) = rows.next()? {
            loader.pending(row.get(0)?, text_at(row, 1)?, row.get(2)?, text_at(row, 3)?)?;
        }
        let (collections, obligors) = loader.loaded();
        match smaller {
            Some(smaller) if sql::chunk_too_big(collections, obligors) => span = smaller,
            _ => break (last, registry_obligors, loader),
        }
    };
    let range = params![first, last];
    let mut corrections = connection.prepare_cached(&numbered(chunk::CHUNK_CORRECTIONS))?;
    let mut rows = corrections.query(range)?;
    while let Some(row) = rows.next()? {
        loader.correction(row.get(0)?, text_at(row, 1)?, text_at(row, 2)?, row.get(3)?)?;
    }
    let mut orders = connection.prepare_cached(&numbered(&chunk::chunk_orders(&segments)))?;
    let mut rows = orders.query(range)?;
    while let Some(row) = rows.next()? {
        let order = sql::order_from_columns(text_at(row, 0)?, text_at(row, 1)?, row.get(2)?, text_at(row, 3)?, row.get(4)?, row.get(5)?)?;
        loader.order(order, text_at(row, 6)?);
    }
    let mut paid = connection.prepare_cached(&numbered(&chunk::chunk_paid(&segments)))?;
    let mut rows = paid.query(range)?;
    while let Some(row) = rows.next()? {
        loader.paid(text_at(row, 0)?, text_at(row, 1)?, text_at(row, 2)?, text_at(row, 3)?, row.get(4)?)?;
    }
    let loaded = loader.finish();
    let open = OpenChunk { first, last, registry_obligors, segments, pending: loaded.pending, keys: loaded.keys };
    Ok(Some((open, loaded.inputs)))
}

/// Writes the chunk's plans, checks conservation on the rows as written and commits.
fn write_chunk(
    connection: &Connection,
    run_id: i64,
    open: &OpenChunk,
    plans: &[ObligorPlan],
    caller_waiting: &dyn Fn() -> bool,
) -> StoreResult<RunSummary> {
    // The ids after the highest AUTOINCREMENT ever gave: safe, as the transaction has held
    // SQLite's write lock from its start.
    let highest: i64 = connection
        .prepare_cached(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'pools'), 0), \
             COALESCE((SELECT MAX(pool_id) FROM pools), 0))",
        )?
        .query_row([], |row| row.get(0))?;
    let new_pools = i64::try_from(chunk::new_pool_count(plans)).expect("a chunk's pools fit in i64");
    let rows = ChunkRows::new(run_id, plans, &open.pending, &open.keys, highest + 1..=highest + new_pools)?;
    let watermark: i64 = connection.prepare_cached(chunk::ALLOCATION_WATERMARK)?.query_row([], |row| row.get(0))?;

    let pools: Vec<_> = rows.pools.iter().collect();
    insert_rows(connection, chunk::INSERT_POOLS, &pools, |pool| {
        [integer(pool.pool_id), integer(run_id), text(pool.obligor), text(&pool.effective_date), integer(pool.cents)]
    })?;
    // The chunk's range of the queue is emptied in one statement, then each collection is
    // claimed. Nothing else has written since the chunk's range was loaded (under this write
    // lock, or read ahead and checked by the stamps), and the plan
    // pools every collection it was given (each claimed one was loaded: `ChunkRows::new`; the
    // claims' key takes each once), so the rows deleted are exactly the claims, or the chunk
    // is rolled back. One range delete reads the queue's pages once, in order; a delete a
    // collection cost a third of the run in key seeks.
    let dequeued = connection
        .prepare_cached(&format!("DELETE FROM pending_collections WHERE segment IN {} AND obligor_id BETWEEN ?1 AND ?2", open.segments.sql_list()))?
        .execute(params![open.first, open.last])?;
    if dequeued != rows.claims.len() {
        // Not a race, as it may be on PostgreSQL (a Conflict there): nothing else wrote
        // since the chunk's range was loaded.
        return Err(StoreError::Corrupt(format!(
            "run {run_id}'s chunk (obligors {} to {}) took {dequeued} collections from the queue but claims {}",
            open.first,
            open.last,
            rows.claims.len()
        )));
    }
    let claims: Vec<_> = rows.claims.iter().collect();
    insert_rows(connection, chunk::INSERT_CLAIMS, &claims, |claim| {
        [text(claim.obligor), integer(claim.collection_id), integer(claim.pool_id), integer(claim.cents)]
    })?;
    let allocations: Vec<_> = rows.allocations.iter().collect();
    insert_rows(connection, chunk::INSERT_ALLOCATIONS, &allocations, |row| {
        let allocation = &row.allocation;
        [
            integer(run_id),
            integer(row.pool_id),
            text(row.obligor),
            optional_text(allocation.order_id.as_ref().map(|order| order.as_str())),
            text(allocation.bucket.as_str()),
            optional_owned_text(allocation.month.map(|month| month.to_string())),
            text(&row.effective_date),
            integer(allocation.amount.cents()),
            optional_text(allocation.step.map(|step| step.as_str())),
        ]
    })?;

    let written = connection.prepare_cached(&numbered(chunk::CHUNK_SUMS))?.query_row(
        params![run_id, rows.first_pool_id(), watermark],
        |row| Ok(WrittenSums { pooled: row.get(0)?, allocated: row.get(1)?, claimed: row.get(2)?, moved: row.get(3)? }),
    )?;
    let summary = rows.summary;
    chunk::check_chunk_conservation(&open.first, &open.last, &summary, open.pending.collected, written)?;
    connection.prepare_cached(&numbered(chunk::ADD_TO_RUN))?.execute(params![
        summary.collections as i64,
        summary.pools as i64,
        summary.total.cents(),
        summary.unapplied.cents(),
        run_id
    ])?;
    if !caller_waiting() {
        return Err(caller_went_away());
    }
    crate::crash_points::reached("distribution.before_commit");
    connection.execute_batch("COMMIT")?;
    crate::crash_points::reached("distribution.after_commit");
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What reading ahead rests on: the writer's own commits leave its `data_version` as it
    /// was, another connection's change it, and a job of the writer thread between the two
    /// chunks' jobs shows in the job numbers.
    #[test]
    fn a_read_ahead_holds_only_when_nothing_but_its_chunk_was_written_between() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.db");
        let writer = Connection::open(&file).unwrap();
        writer.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (x INTEGER);").unwrap();
        let other = Connection::open(&file).unwrap();

        let chunk = Stamp::now(&writer, 7).unwrap();
        writer.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1); COMMIT;").unwrap();
        let next = Stamp::now(&writer, 8).unwrap();
        assert!(chunk.followed_only_by_its_chunk(&next), "the chunk's own commit");

        let another_job = Stamp { job: chunk.job + 2, ..next };
        assert!(!chunk.followed_only_by_its_chunk(&another_job), "a file or payments' commit on the writer thread between");

        other.execute_batch("INSERT INTO t VALUES (2);").unwrap();
        let after_other = Stamp::now(&writer, 8).unwrap();
        assert!(!chunk.followed_only_by_its_chunk(&after_other), "another connection's commit between");
    }
}
