//! Distribution runs on PostgreSQL: each chunk its own transaction through sqlx, holding the
//! distribution lock, so replicas' runs interleave chunk by chunk and never claim a collection
//! twice. The steps and their SQL are `distribution_chunk.rs`'s.

use sqlx::{Postgres, QueryBuilder, Transaction};

use super::distribution_chunk::{self as chunk, ChunkLoader, ChunkRows, Segments, WrittenSums};
use super::postgres::PostgresStore;
use super::sql_store::{self as sql, OBLIGORS_PER_BATCH, ROWS_PER_INSERT};
use super::{Planner, StoreError, StoreResult};
use crate::domain::distribution::RunSummary;

/// Collections claimed per statement pair: a DELETE from the queue (2 + 500 parameters) and
/// an INSERT of claims (4 parameters each, 2,000): far below PostgreSQL's limit.
const CLAIM_CHUNK: usize = 500;

impl PostgresStore {
    /// Distributes every pending collection, one committed chunk of obligors at a time, so
    /// files and payments wait at most one chunk; a crash leaves whole chunks only, and the
    /// next run distributes what is still pending.
    pub(super) async fn distribute_chunks(&self, started_at: &str, planner: &'static Planner) -> StoreResult<Option<RunSummary>> {
        let mut run: Option<RunSummary> = None;
        let mut after = String::new();
        let mut obligors = OBLIGORS_PER_BATCH;
        loop {
            let mut tx = self.begin_writing().await?;
            Self::lock_distribution(&mut tx).await?;
            let Some((range, loader)) = list_chunk(&mut tx, &after, obligors).await? else {
                tx.rollback().await?;
                break;
            };
            let run_id = match &run {
                Some(summary) => summary.run_id,
                None => sqlx::query_scalar(chunk::NEW_RUN).bind(started_at).fetch_one(&mut *tx).await?,
            };
            let summary = distribute_chunk(&mut tx, run_id, &range, loader, planner).await?;
            crate::crash_points::reached("distribution.before_commit");
            tx.commit().await?;
            crate::crash_points::reached("distribution.after_commit");
            obligors = sql::next_chunk_span(range.registry_obligors as u64, summary.obligors, summary.collections);
            run = Some(chunk::add_to_run(run, summary));
            after = range.last;
        }
        Ok(run)
    }
}

/// A chunk's range of obligors, how many of the registry's it spans, and the queue's segments
/// it reads.
struct ChunkRange {
    first: String,
    last: String,
    registry_obligors: i64,
    segments: Segments,
}

/// The next chunk, with its pending collections loaded: from the first obligor after `after`
/// with money to distribute, a span of `span` obligors of the registry (less if that holds
/// too much to load: `sql::chunk_too_big`); `None` when there is none.
async fn list_chunk(tx: &mut Transaction<'static, Postgres>, after: &str, span: i64) -> StoreResult<Option<(ChunkRange, ChunkLoader)>> {
    let segments = Segments::new(sqlx::query_scalar(chunk::QUEUE_SEGMENTS).fetch_all(&mut **tx).await?);
    let mut first_queued = Vec::new();
    for segment in segments.iter() {
        let first: Option<String> = sqlx::query_scalar(chunk::FIRST_QUEUED_AFTER).bind(segment).bind(after).fetch_optional(&mut **tx).await?;
        first_queued.extend(first);
    }
    let first_corrected: Option<String> = sqlx::query_scalar(chunk::FIRST_CORRECTED_AFTER).bind(after).fetch_optional(&mut **tx).await?;
    let Some(first) = chunk::chunk_start(first_queued, first_corrected) else { return Ok(None) };
    let mut span = span;
    loop {
        let (registry_last, registry_obligors): (Option<String>, i64) =
            sqlx::query_as(chunk::CHUNK_RANGE).bind(&first).bind(span).fetch_one(&mut **tx).await?;
        let last = chunk::chunk_end(&first, registry_last);
        let smaller = sql::smaller_span(span);
        let pending: Vec<(i64, String, i64, String)> = sqlx::query_as(&chunk::chunk_pending(&segments, smaller.map(|_| sql::PENDING_READ_AT_MOST)))
            .bind(&first)
            .bind(&last)
            .fetch_all(&mut **tx)
            .await?;
        let mut loader = ChunkLoader::default();
        for (collection_id, obligor, cents, effective_date) in pending {
            loader.pending(collection_id, &obligor, cents, &effective_date)?;
        }
        let (collections, obligors) = loader.loaded();
        match smaller {
            Some(smaller) if sql::chunk_too_big(collections, obligors) => span = smaller,
            _ => return Ok(Some((ChunkRange { first, last, registry_obligors, segments }, loader))),
        }
    }
}

/// Loads the rest of the chunk of `range` (its pending collections are in `loader`), plans,
/// writes and checks it.
async fn distribute_chunk(
    tx: &mut Transaction<'static, Postgres>,
    run_id: i64,
    range: &ChunkRange,
    mut loader: ChunkLoader,
    planner: &Planner,
) -> StoreResult<RunSummary> {
    let (first, last) = (range.first.as_str(), range.last.as_str());
    let corrections: Vec<(i64, String, String, i64)> =
        sqlx::query_as(chunk::CHUNK_CORRECTIONS).bind(first).bind(last).fetch_all(&mut **tx).await?;
    for (pool_id, obligor, effective_date, cents) in corrections {
        loader.correction(pool_id, &obligor, &effective_date, cents)?;
    }
    let orders: Vec<sql::OrderRow> = sqlx::query_as(&chunk::chunk_orders(&range.segments)).bind(first).bind(last).fetch_all(&mut **tx).await?;
    for (id, case, monthly, start, arrears, end, obligor) in orders {
        loader.order(sql::order_from_columns(&id, &case, monthly, &start, arrears, end)?, &obligor);
    }
    let paid: Vec<(String, String, String, String, i64)> =
        sqlx::query_as(&chunk::chunk_paid(&range.segments)).bind(first).bind(last).fetch_all(&mut **tx).await?;
    for (order, obligor, bucket, month, cents) in paid {
        loader.paid(&order, &obligor, &bucket, &month, cents)?;
    }
    let loaded = loader.finish();

    let plans = planner(loaded.inputs)?;
    let pool_ids = reserve_pool_ids(tx, chunk::new_pool_count(&plans)).await?;
    let rows = ChunkRows::new(run_id, &plans, &loaded.pending, &loaded.keys, pool_ids)?;
    let watermark: i64 = sqlx::query_scalar(chunk::ALLOCATION_WATERMARK).fetch_one(&mut **tx).await?;
    for pools in rows.pools.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Postgres>::new(chunk::INSERT_POOLS);
        insert.push(" ").push_values(pools, |mut row, pool| {
            row.push_bind(pool.pool_id).push_bind(run_id).push_bind(pool.obligor).push_bind(&*pool.effective_date).push_bind(pool.cents);
        });
        insert.build().execute(&mut **tx).await?;
    }
    // Each collection is taken out of the queue, then claimed. Returns and runs hold the
    // distribution lock, so none should be missing; if one is, the count falls short and the
    // chunk is rolled back. The claim's key takes a collection once. Sorted, each statement's
    // deletes are bounded by its own first and last obligor, so the key's range scan reads
    // about its own rows.
    for claims in rows.claims.chunks(CLAIM_CHUNK) {
        let (Some(low), Some(high)) = (claims.first(), claims.last()) else { continue };
        let mut dequeue = QueryBuilder::<Postgres>::new(format!("DELETE FROM pending_collections WHERE segment IN {} AND obligor_id BETWEEN ", range.segments.sql_list()));
        dequeue.push_bind(low.obligor).push(" AND ").push_bind(high.obligor).push(" AND collection_id IN (");
        let mut ids = dequeue.separated(", ");
        for claim in claims {
            ids.push_bind(claim.collection_id);
        }
        dequeue.push(")");
        let dequeued = dequeue.build().execute(&mut **tx).await?;
        if dequeued.rows_affected() != claims.len() as u64 {
            return Err(StoreError::Conflict(format!(
                "a collection of run {run_id}'s chunk (obligors {first} to {last}) is no longer pending"
            )));
        }
        let mut claim = QueryBuilder::<Postgres>::new(chunk::INSERT_CLAIMS);
        claim.push(" ").push_values(claims, |mut row, claim| {
            row.push_bind(claim.obligor).push_bind(claim.collection_id).push_bind(claim.pool_id).push_bind(claim.cents);
        });
        claim.build().execute(&mut **tx).await?;
    }
    for allocations in rows.allocations.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Postgres>::new(chunk::INSERT_ALLOCATIONS);
        insert.push(" ").push_values(allocations, |mut row, written| {
            let allocation = &written.allocation;
            row.push_bind(run_id)
                .push_bind(written.pool_id)
                .push_bind(written.obligor)
                .push_bind(allocation.order_id.as_ref().map(|order| order.as_str()))
                .push_bind(allocation.bucket.as_str())
                .push_bind(allocation.month.map(|month| month.to_string()))
                .push_bind(&*written.effective_date)
                .push_bind(allocation.amount.cents())
                .push_bind(allocation.step.map(|step| step.as_str()));
        });
        insert.build().execute(&mut **tx).await?;
    }

    let (pooled, allocated, claimed, moved): (i64, i64, i64, i64) = sqlx::query_as(chunk::CHUNK_SUMS)
        .bind(run_id)
        .bind(rows.first_pool_id())
        .bind(watermark)
        .fetch_one(&mut **tx)
        .await?;
    let summary = rows.summary;
    chunk::check_chunk_conservation(first, last, &summary, loaded.pending.collected, WrittenSums { pooled, allocated, claimed, moved })?;
    sqlx::query(chunk::ADD_TO_RUN)
        .bind(summary.collections as i64)
        .bind(summary.pools as i64)
        .bind(summary.total.cents())
        .bind(summary.unapplied.cents())
        .bind(run_id)
        .execute(&mut **tx)
        .await?;
    Ok(summary)
}

/// `count` new pool ids from the pools' sequence, so a chunk's pools are written many rows a
/// statement (ids other writers take meanwhile never collide).
async fn reserve_pool_ids(tx: &mut Transaction<'static, Postgres>, count: usize) -> StoreResult<Vec<i64>> {
    let count = i64::try_from(count).expect("a chunk's pools fit in i64");
    // The sequence is looked up once (a materialized CTE), not once a row.
    let mut ids: Vec<i64> = sqlx::query_scalar(
        "WITH s AS MATERIALIZED (SELECT CAST(pg_get_serial_sequence('pools', 'pool_id') AS regclass) AS sequence) \
         SELECT nextval(s.sequence) FROM s, generate_series(1, $1)",
    )
    .bind(count)
    .fetch_all(&mut **tx)
    .await?;
    // Ascending: the chunk's conservation check takes its pools as those from the first.
    ids.sort_unstable();
    Ok(ids)
}
