//! Distribution runs on SQLite: each chunk on the writer thread (`sqlite_files.rs`), with its
//! connection's prepared statements.
//!
//! Through sqlx every row a chunk read and every value it bound crossed to sqlx's worker
//! thread and back, each its own allocation: a run of 1,000,000 collections spent most of its
//! CPU handing rows over (`docs/performance.md`). Here a chunk is one job on the thread: it
//! lists and loads the chunk, plans it (the planner is a plain function, so it runs there
//! too), writes, checks and commits, and answers once.
//!
//! A chunk is one transaction (`BEGIN IMMEDIATE` … `COMMIT`), holding the sqlx writer
//! connection as its token throughout, as a file does; whatever fails, a panic included, is
//! rolled back before the token is given back ([`Holding`]). A caller that goes away (its
//! deadline passed, its client hung up) before its chunk commits leaves nothing of the chunk:
//! the thread asks before it starts and again before it commits, as dropping the call drops
//! the transaction on PostgreSQL.

use rusqlite::{params, Connection, Row};
use tokio::sync::oneshot;

use super::distribution_chunk::{self as chunk, ChunkLoader, ChunkRows, PendingAmounts, WrittenSums};
use super::sql_store::{self as sql, OBLIGORS_PER_BATCH};
use super::sqlite::SqliteStore;
use super::sqlite_files::{insert_rows, integer, optional_owned_text, optional_text, stopped, text, Holding};
use super::{Planner, StoreError, StoreResult};
use crate::domain::distribution::{ObligorInput, ObligorPlan, RunSummary};

/// Which chunk to run: the obligors after `after`, at most `obligors`, of run `run_id` (its
/// first chunk writes the run's row).
struct ChunkRequest {
    after: String,
    obligors: i64,
    run_id: Option<i64>,
    started_at: String,
}

/// A chunk listed and loaded, its transaction open.
struct OpenChunk {
    run_id: i64,
    first: String,
    last: String,
    pending: PendingAmounts,
}

impl SqliteStore {
    /// Distributes every pending collection, chunk by chunk on the writer thread.
    pub(super) async fn distribute_chunks(&self, started_at: &str, planner: &'static Planner) -> StoreResult<Option<RunSummary>> {
        let mut run: Option<RunSummary> = None;
        let mut after = String::new();
        let mut obligors = OBLIGORS_PER_BATCH;
        loop {
            let token = self.writer.acquire().await?;
            let (answer, answered) = oneshot::channel::<StoreResult<Option<(String, RunSummary)>>>();
            let request =
                ChunkRequest { after: after.clone(), obligors, run_id: run.as_ref().map(|r| r.run_id), started_at: started_at.to_owned() };
            self.files.run(move |connection| {
                let holding = Holding::new(connection, token);
                let outcome = run_chunk(holding.connection(), &request, planner, &|| !answer.is_closed());
                let _ = answer.send(outcome);
            })?;
            let Some((last, summary)) = answered.await.map_err(|_| stopped())?? else { break };
            obligors = sql::next_chunk_obligors(summary.obligors, summary.collections);
            run = Some(chunk::add_to_run(run, summary));
            after = last;
        }
        Ok(run)
    }
}

/// Lists, loads, plans, writes and commits one chunk: its last obligor and what it wrote, or
/// `None` when no obligor after `request.after` has money to distribute. Nothing is committed
/// once `caller_waiting` says the caller went away.
fn run_chunk(
    connection: &Connection,
    request: &ChunkRequest,
    planner: &Planner,
    caller_waiting: &dyn Fn() -> bool,
) -> StoreResult<Option<(String, RunSummary)>> {
    if !caller_waiting() {
        return Err(caller_went_away());
    }
    let Some((open, inputs)) = load_chunk(connection, request)? else { return Ok(None) };
    let plans = planner(inputs)?;
    let summary = write_chunk(connection, &open, &plans, caller_waiting)?;
    Ok(Some((open.last, summary)))
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

/// Opens the chunk's transaction, lists its obligors and loads their money and ledgers;
/// `None` when no obligor after `request.after` has money to distribute.
fn load_chunk(connection: &Connection, request: &ChunkRequest) -> StoreResult<Option<(OpenChunk, Vec<ObligorInput>)>> {
    // IMMEDIATE: the write lock from the start, so what is loaded is what is written over.
    connection.execute_batch("BEGIN IMMEDIATE")?;
    let batch = connection
        .prepare_cached(&numbered(chunk::CHUNK_OBLIGORS))?
        .query_map(params![request.after, request.obligors], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<String>, _>>()?;
    let (Some(first), Some(last)) = (batch.first(), batch.last()) else { return Ok(None) };
    let run_id = match request.run_id {
        Some(run_id) => run_id,
        None => connection.prepare_cached(&numbered(chunk::NEW_RUN))?.query_row(params![request.started_at], |row| row.get(0))?,
    };
    let range = params![first, last];
    let mut loader = ChunkLoader::default();
    let mut pending = connection.prepare_cached(&numbered(chunk::CHUNK_PENDING))?;
    let mut rows = pending.query(range)?;
    while let Some(row) = rows.next()? {
        loader.pending(row.get(0)?, text_at(row, 1)?, row.get(2)?, text_at(row, 3)?)?;
    }
    let mut corrections = connection.prepare_cached(&numbered(chunk::CHUNK_CORRECTIONS))?;
    let mut rows = corrections.query(range)?;
    while let Some(row) = rows.next()? {
        loader.correction(row.get(0)?, text_at(row, 1)?, text_at(row, 2)?, row.get(3)?)?;
    }
    let mut orders = connection.prepare_cached(&numbered(&chunk::CHUNK_ORDERS))?;
    let mut rows = orders.query(range)?;
    while let Some(row) = rows.next()? {
        loader.order(text_at(row, 0)?, text_at(row, 1)?, row.get(2)?, text_at(row, 3)?, row.get(4)?, row.get(5)?, text_at(row, 6)?)?;
    }
    let mut paid = connection.prepare_cached(&numbered(&chunk::CHUNK_PAID))?;
    let mut rows = paid.query(range)?;
    while let Some(row) = rows.next()? {
        loader.paid(text_at(row, 0)?, text_at(row, 1)?, text_at(row, 2)?, row.get(3)?)?;
    }
    let loaded = loader.finish();
    let open = OpenChunk { run_id, first: first.clone(), last: last.clone(), pending: loaded.pending };
    Ok(Some((open, loaded.inputs)))
}

/// Writes the chunk's plans, checks conservation on the rows as written and commits.
fn write_chunk(
    connection: &Connection,
    open: &OpenChunk,
    plans: &[ObligorPlan],
    caller_waiting: &dyn Fn() -> bool,
) -> StoreResult<RunSummary> {
    let run_id = open.run_id;
    // The ids after the highest AUTOINCREMENT ever gave: safe, as the transaction has held
    // SQLite's write lock from its start.
    let highest: i64 = connection
        .prepare_cached(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'pools'), 0), \
             COALESCE((SELECT MAX(pool_id) FROM pools), 0))",
        )?
        .query_row([], |row| row.get(0))?;
    let new_pools = i64::try_from(chunk::new_pool_count(plans)).expect("a chunk's pools fit in i64");
    let rows = ChunkRows::new(run_id, plans, &open.pending, highest + 1..=highest + new_pools)?;
    let watermark: i64 = connection.prepare_cached(chunk::ALLOCATION_WATERMARK)?.query_row([], |row| row.get(0))?;

    let pools: Vec<_> = rows.pools.iter().collect();
    insert_rows(connection, chunk::INSERT_POOLS, &pools, |pool| {
        [integer(pool.pool_id), integer(run_id), text(pool.obligor), text(&pool.effective_date), integer(pool.cents)]
    })?;
    // The chunk's range of the queue is emptied in one statement, then each collection is
    // claimed. The chunk has held the write lock since it loaded that range, and the plan
    // pools every collection it was given (each claimed one was loaded: `ChunkRows::new`; the
    // claims' key takes each once), so the rows deleted are exactly the claims, or the chunk
    // is rolled back. One range delete reads the queue's pages once, in order; a delete a
    // collection cost a third of the run in key seeks.
    let dequeued = connection
        .prepare_cached("DELETE FROM pending_collections WHERE obligor_id BETWEEN ?1 AND ?2")?
        .execute(params![open.first, open.last])?;
    if dequeued != rows.claims.len() {
        // Not a race, as it may be on PostgreSQL (a Conflict there): nothing else wrote
        // since the chunk loaded the range.
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
