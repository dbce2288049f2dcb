//! One chunk of a distribution run, between the store's rows and the rule.
//!
//! Every backend runs a chunk the same way, in one transaction: list the chunk's obligors,
//! load their pending money and ledgers, plan (the pure rule, [`Planner`](super::Planner)),
//! write the plan's rows, check conservation on the rows as written, commit. The SQL of each
//! step is below, written once; so are the two conversions between rows and the rule's
//! values: [`ChunkLoader`] turns the loaded rows into the planner's inputs, [`ChunkRows`] turns
//! its plans into the rows to write. What a backend adds is only how it runs the statements
//! (sqlx on PostgreSQL; the writer thread's own connection on SQLite, `sqlite_distribution.rs`).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::sql_store as sql;
use super::StoreError;
use crate::domain::distribution::{ConservationError, ObligorInput, ObligorPlan, OrderLedger, PendingCollection, PendingCorrection, PoolTarget, RunSummary};
use crate::domain::month::iso_date_text;
use crate::domain::{Allocation, Bucket, Money, Order};

/// The queue's segments (migrations 0020): segment 0 holds the collections queued one at a
/// time (and small files' and files' last few), each other one a run of collections a file
/// queued together, in obligor order. Listed
/// by skipping along the key from one to the next: a seek each, however long the queue.
pub(super) const QUEUE_SEGMENTS: &str = "WITH RECURSIVE segments (segment) AS (SELECT MIN(segment) FROM pending_collections \
     UNION ALL SELECT (SELECT MIN(q.segment) FROM pending_collections q WHERE q.segment > s.segment) FROM segments s \
     WHERE s.segment IS NOT NULL) SELECT segment FROM segments WHERE segment IS NOT NULL";

/// The first obligor after `$2` with a collection queued in segment `$1`.
pub(super) const FIRST_QUEUED_AFTER: &str =
    "SELECT obligor_id FROM pending_collections WHERE segment = $1 AND obligor_id > $2 ORDER BY obligor_id LIMIT 1";

/// The first obligor after `$1` with a correction pool (a CORRECTION row; one emptied since is
/// planned with nothing and written with nothing).
pub(super) const FIRST_CORRECTED_AFTER: &str = "SELECT obligor_id FROM allocations WHERE bucket = 'CORRECTION' AND obligor_id > $1 \
     GROUP BY obligor_id, pool_id HAVING SUM(amount_cents) > 0 ORDER BY obligor_id LIMIT 1";

/// The chunk's range, from its first obligor `$1` (the first with money after the chunk
/// before): up to `$2` obligors of the registry, the last of them and how many. A chunk is
/// bounded by the registry rather than by the next `$2` obligors with money, which would read
/// `$2` entries of every segment to find; it is sized from the chunk before
/// (`sql::next_chunk_span`), and the next chunk starts at the first obligor with money after
/// it, so a sparse queue is crossed in a few chunks.
pub(super) const CHUNK_RANGE: &str =
    "SELECT MAX(obligor_id), COUNT(*) FROM (SELECT obligor_id FROM obligors WHERE obligor_id >= $1 ORDER BY obligor_id LIMIT $2) registry";

/// The segments a chunk read, as a list for SQL: `(0, 1001, 17385)`; `(NULL)`, which matches
/// nothing, when the queue is empty. Numbers from the database, never text from a caller.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Segments(Vec<i64>);

impl Segments {
    pub fn new(segments: Vec<i64>) -> Segments {
        Segments(segments)
    }

    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        self.0.iter().copied()
    }

    /// `(a, b, …)`, for `segment IN …`.
    pub fn sql_list(&self) -> String {
        if self.0.is_empty() {
            return "(NULL)".into();
        }
        let numbers: Vec<String> = self.0.iter().map(i64::to_string).collect();
        format!("({})", numbers.join(", "))
    }
}

/// Where a chunk starts: the first obligor after `after` with a collection queued in one of
/// `segments` (each segment's first, `first_queued`) or a correction pool (`first_corrected`).
pub(super) fn chunk_start(first_queued: impl IntoIterator<Item = String>, first_corrected: Option<String>) -> Option<String> {
    first_queued.into_iter().chain(first_corrected).min()
}

/// The chunk's last obligor: the registry's `$2`-th from its first ([`CHUNK_RANGE`]), or the
/// first itself if the registry holds none from there (a queued obligor the registry does not
/// hold is still planned, as before the segments).
pub(super) fn chunk_end(first: &str, registry_last: Option<String>) -> String {
    registry_last.filter(|last| last.as_str() >= first).unwrap_or_else(|| first.to_owned())
}

/// A run's row, written by its first chunk.
pub(super) const NEW_RUN: &str = "INSERT INTO distribution_runs (started_at, collections, pools, total_cents, unapplied_cents) \
     VALUES ($1, 0, 0, 0, 0) RETURNING run_id";

/// The pending collections of the obligors from `$1` to `$2`, in `segments`: a range read in
/// each; `at_most` of them, unless the span is the least (a chunk that has more is read again
/// with a smaller span, `sql::chunk_too_big`). The queue carries what the plan needs: a run never reads `collections`, whose rows
/// lie in the order received, not by obligor (migration 0018). In no particular order:
/// [`ChunkLoader`] puts each obligor's in collection order.
pub(super) fn chunk_pending(segments: &Segments, at_most: Option<u64>) -> String {
    let limit = at_most.map_or(String::new(), |rows| format!(" LIMIT {rows}"));
    format!(
        "SELECT collection_id, obligor_id, amount_cents, effective_date FROM pending_collections \
         WHERE segment IN {} AND obligor_id BETWEEN $1 AND $2{limit}",
        segments.sql_list()
    )
}

/// The correction pools of the obligors from `$1` to `$2`: (pool, obligor, date, amount).
pub(super) const CHUNK_CORRECTIONS: &str = "SELECT a.pool_id, a.obligor_id, p.effective_date, CAST(SUM(a.amount_cents) AS BIGINT) FROM allocations a \
     JOIN pools p ON p.pool_id = a.pool_id WHERE a.bucket = 'CORRECTION' AND a.obligor_id BETWEEN $1 AND $2 \
     GROUP BY a.pool_id, a.obligor_id, p.effective_date HAVING SUM(a.amount_cents) > 0 ORDER BY a.pool_id";

/// The obligors from `$1` to `$2` with money to plan (queued in `segments`, or a correction
/// pool), as a subquery.
fn obligors_in_range(segments: &Segments) -> String {
    format!(
        "SELECT obligor_id FROM pending_collections WHERE segment IN {} AND obligor_id BETWEEN $1 AND $2 \
         UNION SELECT obligor_id FROM allocations WHERE bucket = 'CORRECTION' AND obligor_id BETWEEN $1 AND $2",
        segments.sql_list()
    )
}

/// The orders of the chunk's obligors, with [`sql::ORDER_COLUMNS`] (an [`sql::OrderRow`]).
pub(super) fn chunk_orders(segments: &Segments) -> String {
    format!("SELECT {} FROM orders WHERE obligor_id IN ({})", sql::ORDER_COLUMNS, obligors_in_range(segments))
}

/// What each of those orders has been paid, with its obligor, kept per month by the
/// allocations' trigger: a few rows an order, however long its history.
pub(super) fn chunk_paid(segments: &Segments) -> String {
    format!(
        "SELECT b.order_id, o.obligor_id, b.bucket, b.month, b.paid_cents FROM orders o JOIN order_balances b ON b.order_id = o.order_id \
         WHERE o.obligor_id IN ({})",
        obligors_in_range(segments)
    )
}

/// The highest allocation id written before the chunk's: those after it are the chunk's.
pub(super) const ALLOCATION_WATERMARK: &str = "SELECT CAST(COALESCE(MAX(allocation_id), 0) AS BIGINT) FROM allocations";

/// Conservation, on the chunk's rows as written, before it commits: Σ pools, Σ allocations
/// (unapplied included), Σ collections claimed, and the sum of the rows written into
/// corrected pools (which move money within them: zero). Each sum reads only this chunk's
/// rows, found by key range (the chunk's pools have the highest ids, from `$2`; its
/// allocations come after the watermark `$3`, and are read once, in id order, for both of
/// their sums): a unary `+` keeps a column's index out, so the cost stays the chunk's, not
/// the run's so far.
pub(super) const CHUNK_SUMS: &str = "SELECT p.pooled, a.allocated, k.claimed, a.moved FROM \
       (SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) AS pooled FROM pools WHERE pool_id >= $2 AND +run_id = $1) p, \
       (SELECT CAST(COALESCE(SUM(CASE WHEN pool_id >= $2 THEN amount_cents ELSE 0 END), 0) AS BIGINT) AS allocated, \
               CAST(COALESCE(SUM(CASE WHEN pool_id < $2 THEN amount_cents ELSE 0 END), 0) AS BIGINT) AS moved \
        FROM allocations WHERE allocation_id > $3 AND +run_id = $1) a, \
       (SELECT CAST(COALESCE(SUM(k.amount_cents), 0) AS BIGINT) AS claimed FROM collection_claims k JOIN pools p ON p.pool_id = k.pool_id \
        WHERE k.pool_id >= $2 AND +p.run_id = $1) k";

/// The run's totals, with the chunk's added.
pub(super) const ADD_TO_RUN: &str = "UPDATE distribution_runs SET collections = collections + $1, pools = pools + $2, \
     total_cents = total_cents + $3, unapplied_cents = unapplied_cents + $4 WHERE run_id = $5";

/// The columns of a new pool, in the order [`NewPool`] is bound.
pub(super) const INSERT_POOLS: &str = "INSERT INTO pools (pool_id, run_id, obligor_id, effective_date, amount_cents)";

/// The columns of a claim, in the order [`Claim`] is bound.
pub(super) const INSERT_CLAIMS: &str = "INSERT INTO collection_claims (obligor_id, collection_id, pool_id, amount_cents)";

/// The columns of an allocation, in the order [`AllocationRow`] is bound.
pub(super) const INSERT_ALLOCATIONS: &str =
    "INSERT INTO allocations (run_id, pool_id, obligor_id, order_id, bucket, month, effective_date, amount_cents, step)";

/// The planner's inputs, built from the rows a chunk loads, in any order of rows.
#[derive(Default)]
pub(super) struct ChunkLoader {
    /// Obligor id → (its number in the chunk, its input).
    inputs: BTreeMap<String, (ObligorNumber, ObligorInput)>,
    /// Order id → (its obligor, its ledger).
    ledgers: BTreeMap<String, (String, OrderLedger)>,
    pending_amounts: HashMap<i64, QueuedAmount>,
    collected: Money,
    /// Correction pool → its obligor.
    corrections: HashMap<i64, String>,
}

/// What a chunk loaded, ready to plan.
pub(super) struct LoadedChunk {
    /// The obligors with money to plan, by obligor id, each with its orders' ledgers.
    pub inputs: Vec<ObligorInput>,
    /// The pending collections: each one's amount in cents, to check and claim the plan's.
    pub pending: PendingAmounts,
    /// What the plan's rows may refer to.
    pub keys: LoadedKeys,
}

/// The keys a chunk read from their own tables, in the transaction that writes the chunk's
/// rows (or read ahead and checked unchanged since: `sqlite_distribution.rs`): the only ones
/// its rows may refer to. [`ChunkRows::new`] refuses a plan naming any other, so every
/// reference a chunk writes holds when it commits, whether or not the database checks its
/// foreign keys row by row (SQLite's are off for a chunk, as for a file).
#[derive(Default)]
pub(super) struct LoadedKeys {
    /// The obligors planned, each with its number: each has a pending collection or a
    /// correction pool.
    obligors: HashMap<String, ObligorNumber>,
    /// Order → its obligor.
    orders: HashMap<String, String>,
    /// Correction pool → its obligor.
    corrections: HashMap<i64, String>,
}

impl LoadedKeys {
    /// Refuses a plan for an `obligor` the chunk did not load; else the obligor's number.
    fn check_obligor(&self, obligor: &str) -> Result<ObligorNumber, StoreError> {
        self.obligors
            .get(obligor)
            .copied()
            .ok_or_else(|| StoreError::Corrupt(format!("the plan wrote for obligor {obligor}, which the chunk did not load")))
    }

    /// Refuses `obligor`'s row naming an `order` the chunk did not load as theirs.
    fn check_order(&self, obligor: &str, order: &str) -> Result<(), StoreError> {
        refuse_unless(self.orders.get(order).map(String::as_str) == Some(obligor), || {
            format!("the plan paid order {order} from obligor {obligor}'s money, and the chunk loaded no such order of theirs")
        })
    }

    /// Refuses `obligor`'s row emptying a `pool_id` the chunk did not load as their correction pool.
    fn check_correction(&self, obligor: &str, pool_id: i64) -> Result<(), StoreError> {
        refuse_unless(self.corrections.get(&pool_id).map(String::as_str) == Some(obligor), || {
            format!("the plan emptied pool {pool_id} for obligor {obligor}, which the chunk did not load as their correction pool")
        })
    }
}

/// A broken ledger (`why`) unless `loaded`.
fn refuse_unless(loaded: bool, why: impl FnOnce() -> String) -> Result<(), StoreError> {
    if loaded {
        Ok(())
    } else {
        Err(StoreError::Corrupt(why()))
    }
}

/// An obligor's number within one chunk, so that a pending collection's obligor is checked
/// without a string of its own for each collection.
type ObligorNumber = u32;

/// A pending collection's amount and the obligor it is queued for.
#[derive(Clone, Copy)]
struct QueuedAmount {
    cents: i64,
    obligor: ObligorNumber,
}

/// The chunk's pending collections, by id: what the plan may pool and claim, each only for the
/// obligor it is queued for. The obligors' numbers are those of the same chunk's
/// [`LoadedKeys`].
pub(super) struct PendingAmounts {
    cents: HashMap<i64, QueuedAmount>,
    /// Their sum: what the chunk must pool.
    pub collected: Money,
}

impl PendingAmounts {
    /// How many collections are pending.
    pub fn count(&self) -> usize {
        self.cents.len()
    }
}

impl ChunkLoader {
    /// How many collections and obligors with money it holds so far.
    pub fn loaded(&self) -> (u64, u64) {
        (self.pending_amounts.len() as u64, self.inputs.len() as u64)
    }

    /// The obligor's number and input, both made on its first row.
    fn input(&mut self, obligor: &str) -> Result<(ObligorNumber, &mut ObligorInput), StoreError> {
        if !self.inputs.contains_key(obligor) {
            let obligor_id = sql::obligor_id(obligor)?;
            let number = ObligorNumber::try_from(self.inputs.len()).map_err(|_| StoreError::Corrupt("a chunk of over 4 billion obligors".into()))?;
            let input = ObligorInput { obligor_id, ledgers: Vec::new(), pending: Vec::new(), corrections: Vec::new() };
            self.inputs.insert(obligor.to_owned(), (number, input));
        }
        let (number, input) = self.inputs.get_mut(obligor).expect("inserted above");
        Ok((*number, input))
    }

    /// A row of [`chunk_pending`].
    pub fn pending(&mut self, collection_id: i64, obligor: &str, cents: i64, effective_date: &str) -> Result<(), StoreError> {
        // The queue has no CHECK of its own: its trigger, or the file writer, copies a
        // collection's amount, which `collections` checks; the rule asserts it, so a bad row
        // fails here, as data.
        if cents <= 0 {
            return Err(StoreError::Corrupt(format!("collection {collection_id} is queued with {cents} cents")));
        }
        let amount = Money::from_cents(cents);
        let effective_date = sql::date(effective_date)?;
        self.collected += amount;
        let (number, input) = self.input(obligor)?;
        input.pending.push(PendingCollection { id: collection_id, amount, effective_date });
        if self.pending_amounts.insert(collection_id, QueuedAmount { cents, obligor: number }).is_some() {
            return Err(StoreError::Corrupt(format!("collection {collection_id} is queued twice")));
        }
        Ok(())
    }

    /// A row of [`CHUNK_CORRECTIONS`].
    pub fn correction(&mut self, pool_id: i64, obligor: &str, effective_date: &str, cents: i64) -> Result<(), StoreError> {
        let correction = PendingCorrection { pool_id, amount: Money::from_cents(cents), effective_date: sql::date(effective_date)? };
        self.input(obligor)?.1.corrections.push(correction);
        self.corrections.insert(pool_id, obligor.to_owned());
        Ok(())
    }

    /// An order of a row of [`chunk_orders`] ([`sql::order_from_columns`]), of `obligor`.
    pub fn order(&mut self, order: Order, obligor: &str) {
        self.ledgers.insert(order.id.as_str().to_owned(), (obligor.to_owned(), OrderLedger::new(order)));
    }

    /// A row of [`chunk_paid`], of `obligor`'s `order`; the chunk's pending money, and then its
    /// orders, must have been loaded first.
    ///
    /// On PostgreSQL each statement of a chunk reads the database as it is then, and money
    /// received meanwhile can add an obligor to the chunk's range between the read of the
    /// orders and that of their balances: such an obligor has no money loaded, so it is not
    /// planned in this chunk and its balances are skipped. A balance of an obligor who is
    /// planned must be of an order loaded.
    pub fn paid(&mut self, order: &str, obligor: &str, bucket: &str, month: &str, cents: i64) -> Result<(), StoreError> {
        match self.ledgers.get_mut(order) {
            Some((_, ledger)) => {
                ledger.record(sql::bucket(bucket)?, sql::balance_month(month)?, Money::from_cents(cents));
                Ok(())
            }
            None if !self.inputs.contains_key(obligor) => Ok(()),
            None => Err(StoreError::Corrupt(format!("balance of unknown order {order}"))),
        }
    }

    /// The obligors with money to plan, each with its ledgers.
    pub fn finish(mut self) -> LoadedChunk {
        let mut orders = HashMap::with_capacity(self.ledgers.len());
        for (order, (obligor, ledger)) in std::mem::take(&mut self.ledgers) {
            if let Some((_, input)) = self.inputs.get_mut(&obligor) {
                input.ledgers.push(ledger);
                orders.insert(order, obligor);
            }
        }
        let mut obligors = HashMap::with_capacity(self.inputs.len());
        let inputs = self
            .inputs
            .into_iter()
            .filter(|(_, (_, input))| !input.pending.is_empty() || !input.corrections.is_empty())
            .map(|(obligor, (number, mut input))| {
                obligors.insert(obligor, number);
                // Read segment by segment: each obligor's in the order received.
                input.pending.sort_unstable_by_key(|collection| collection.id);
                input
            })
            .collect();
        LoadedChunk {
            inputs,
            pending: PendingAmounts { cents: self.pending_amounts, collected: self.collected },
            keys: LoadedKeys { obligors, orders, corrections: self.corrections },
        }
    }
}

/// A pool of the chunk: (pool id, obligor, effective date, amount in cents).
pub(super) struct NewPool<'p> {
    pub pool_id: i64,
    pub obligor: &'p str,
    pub effective_date: Arc<str>,
    pub cents: i64,
}

/// A collection claimed by a pool of the chunk.
pub(super) struct Claim<'p> {
    pub obligor: &'p str,
    pub collection_id: i64,
    pub pool_id: i64,
    pub cents: i64,
}

/// An allocation the chunk writes, into a new pool or (emptying a correction) an old one.
pub(super) struct AllocationRow<'p> {
    pub pool_id: i64,
    pub obligor: &'p str,
    pub effective_date: Arc<str>,
    pub allocation: Cow<'p, Allocation>,
}

/// The rows a chunk's plans write, and the chunk's totals.
pub(super) struct ChunkRows<'p> {
    pub pools: Vec<NewPool<'p>>,
    /// By (obligor, collection): each DELETE from the queue reads about its own rows.
    pub claims: Vec<Claim<'p>>,
    /// In the order planned, so the allocation export lists them as written.
    pub allocations: Vec<AllocationRow<'p>>,
    pub summary: RunSummary,
}

/// The number of new pools `plans` write: the ids to reserve before [`ChunkRows::new`].
pub(super) fn new_pool_count(plans: &[ObligorPlan]) -> usize {
    plans.iter().flat_map(|plan| &plan.pools).flat_map(|pool| &pool.parts).filter(|part| part.target == PoolTarget::New).count()
}

impl<'p> ChunkRows<'p> {
    /// The rows of `plans`, the chunk's new pools numbered from `pool_ids`. Every collection a
    /// plan pools must be one of the chunk's `pending`, queued for the plan's obligor; every obligor, order and correction
    /// pool its rows name must be one the chunk loaded (`keys`), and the rule must have
    /// written only current, arrears and unapplied rows.
    pub fn new(
        run_id: i64,
        plans: &'p [ObligorPlan],
        pending: &PendingAmounts,
        keys: &LoadedKeys,
        pool_ids: impl IntoIterator<Item = i64>,
    ) -> Result<ChunkRows<'p>, StoreError> {
        let mut pool_ids = pool_ids.into_iter();
        let mut rows = ChunkRows { pools: Vec::new(), claims: Vec::new(), allocations: Vec::new(), summary: RunSummary { run_id, ..RunSummary::default() } };
        let summary = &mut rows.summary;
        summary.obligors = plans.len() as u64;
        for plan in plans {
            let obligor = plan.obligor_id.as_str();
            let number = keys.check_obligor(obligor)?;
            for pool in &plan.pools {
                for allocation in &pool.distribution.allocations {
                    match allocation.bucket {
                        Bucket::Current => summary.current += allocation.amount,
                        Bucket::Arrears => summary.arrears += allocation.amount,
                        Bucket::Unapplied => summary.unapplied += allocation.amount,
                        other => return Err(StoreError::Corrupt(format!("the rule wrote a {} row", other.as_str()))),
                    }
                }
                let effective_date: Arc<str> = iso_date_text(pool.distribution.effective_date).into();
                for part in &pool.parts {
                    let pool_id = match part.target {
                        PoolTarget::New => {
                            let pool_id = pool_ids.next().ok_or_else(|| StoreError::Corrupt("fewer pool ids than new pools".into()))?;
                            rows.pools.push(NewPool { pool_id, obligor, effective_date: effective_date.clone(), cents: part.amount.cents() });
                            for &collection_id in &pool.collection_ids {
                                let queued = pending.cents.get(&collection_id).ok_or_else(|| {
                                    StoreError::Corrupt(format!("the plan pooled collection {collection_id}, which was not pending"))
                                })?;
                                refuse_unless(queued.obligor == number, || {
                                    format!("the plan pooled collection {collection_id} for obligor {obligor}, and it is queued for another obligor")
                                })?;
                                rows.claims.push(Claim { obligor, collection_id, pool_id, cents: queued.cents });
                            }
                            summary.pools += 1;
                            summary.collections += pool.collection_ids.len() as u64;
                            summary.total += part.amount;
                            pool_id
                        }
                        // The correction pool is emptied into its original pool's rows.
                        PoolTarget::Corrected(pool_id) => {
                            keys.check_correction(obligor, pool_id)?;
                            let emptied = Allocation { order_id: None, bucket: Bucket::Correction, month: None, amount: -part.amount, step: None };
                            rows.allocations.push(AllocationRow {
                                pool_id,
                                obligor,
                                effective_date: effective_date.clone(),
                                allocation: Cow::Owned(emptied),
                            });
                            summary.corrections += part.amount;
                            pool_id
                        }
                    };
                    for allocation in &part.allocations {
                        if let Some(order) = &allocation.order_id {
                            keys.check_order(obligor, order.as_str())?;
                        }
                        rows.allocations.push(AllocationRow { pool_id, obligor, effective_date: effective_date.clone(), allocation: Cow::Borrowed(allocation) });
                    }
                }
            }
        }
        rows.summary.allocations = rows.allocations.len() as u64;
        rows.claims.sort_unstable_by(|a, b| (a.obligor, a.collection_id).cmp(&(b.obligor, b.collection_id)));
        Ok(rows)
    }

    /// The first new pool's id: the chunk's pools are those from it ([`CHUNK_SUMS`]'s `$2`).
    pub fn first_pool_id(&self) -> i64 {
        self.pools.first().map_or(i64::MAX, |pool| pool.pool_id)
    }
}

/// The run so far with a further chunk's figures added (the first chunk's starts it).
pub(super) fn add_to_run(run: Option<RunSummary>, chunk: RunSummary) -> RunSummary {
    match run {
        Some(so_far) => so_far.plus(&chunk),
        None => chunk,
    }
}

/// The sums [`CHUNK_SUMS`] read back.
#[derive(Clone, Copy, Debug)]
pub(super) struct WrittenSums {
    pub pooled: i64,
    pub allocated: i64,
    pub claimed: i64,
    /// Net of the rows written into corrected pools: zero.
    pub moved: i64,
}

/// Checks that the chunk's rows as written hold exactly the money it collected: pools,
/// allocations and claims each add up to the collections, rows written into corrected pools
/// net to zero, and the rule's rows add up to the collections plus the corrections.
pub(super) fn check_chunk_conservation(
    first: &str,
    last: &str,
    summary: &RunSummary,
    collected: Money,
    written: WrittenSums,
) -> Result<(), StoreError> {
    let total = summary.total.cents();
    let sums = [written.pooled, written.allocated, written.claimed, collected.cents()];
    if sums.iter().all(|&cents| cents == total)
        && written.moved == 0
        && summary.current + summary.arrears + summary.unapplied == summary.total + summary.corrections
    {
        return Ok(());
    }
    Err(StoreError::Conservation(ConservationError {
        obligor_id: format!("(run {}, obligors {first} to {last})", summary.run_id),
        collected,
        pooled: Money::from_cents(written.pooled),
        allocated: Money::from_cents(written.allocated),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::distribution::plan_obligors;

    /// Two obligors: B with one order and two collections of different dates, A with one
    /// collection and no order (its money goes unapplied).
    fn loaded() -> LoadedChunk {
        let mut loader = ChunkLoader::default();
        loader.order(sql::order_from_columns("B-1", "12345678", 10_000, "2026-01", 0, None).unwrap(), "B");
        loader.paid("B-1", "B", "CURRENT", "2026-11", 4_000).unwrap();
        loader.pending(7, "B", 8_000, "2026-11-13").unwrap();
        loader.pending(3, "B", 5_000, "2026-11-20").unwrap();
        loader.pending(5, "A", 1_234, "2026-11-13").unwrap();
        loader.finish()
    }

    #[test]
    fn loaded_rows_become_one_input_per_obligor_with_its_orders_ledgers() {
        let chunk = loaded();
        let obligors: Vec<&str> = chunk.inputs.iter().map(|input| input.obligor_id.as_str()).collect();
        assert_eq!(obligors, ["A", "B"]);
        assert_eq!(chunk.inputs[0].ledgers.len(), 0);
        assert_eq!(chunk.inputs[1].ledgers.len(), 1);
        // Loaded from the queue's segments in any order, each obligor's in the order received.
        assert_eq!(chunk.inputs[1].pending.iter().map(|p| p.id).collect::<Vec<_>>(), [3, 7]);
        assert_eq!(chunk.pending.collected, Money::from_cents(14_234));
    }

    #[test]
    fn a_collection_queued_twice_or_a_balance_of_an_unknown_order_is_a_broken_ledger() {
        let mut loader = ChunkLoader::default();
        loader.pending(1, "A", 100, "2026-11-13").unwrap();
        assert!(matches!(loader.pending(1, "A", 100, "2026-11-13"), Err(StoreError::Corrupt(_))));
        // A balance of a planned obligor's order that was not loaded; one of an obligor with no
        // money loaded (received since the chunk's orders were read) is not the chunk's.
        assert!(matches!(loader.paid("X-9", "A", "ARREARS", "", 100), Err(StoreError::Corrupt(_))));
        assert!(loader.paid("Y-1", "Y", "ARREARS", "", 100).is_ok());
        assert!(matches!(loader.pending(2, "A", 100, "13/11/2026"), Err(StoreError::Corrupt(_))));
        assert!(matches!(loader.pending(3, "A", 0, "2026-11-13"), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn the_plans_rows_number_the_new_pools_sort_the_claims_and_add_up() {
        let chunk = loaded();
        let plans = plan_obligors(chunk.inputs).unwrap();
        assert_eq!(new_pool_count(&plans), 3, "one pool an obligor and date");
        let rows = ChunkRows::new(9, &plans, &chunk.pending, &chunk.keys, 100..).unwrap();
        assert_eq!(rows.pools.iter().map(|p| p.pool_id).collect::<Vec<_>>(), [100, 101, 102]);
        assert_eq!(rows.first_pool_id(), 100);
        let claims: Vec<(&str, i64)> = rows.claims.iter().map(|c| (c.obligor, c.collection_id)).collect();
        assert_eq!(claims, [("A", 5), ("B", 3), ("B", 7)]);
        let pooled: i64 = rows.pools.iter().map(|p| p.cents).sum();
        let claimed: i64 = rows.claims.iter().map(|c| c.cents).sum();
        let allocated: i64 = rows.allocations.iter().map(|a| a.allocation.amount.cents()).sum();
        assert_eq!((pooled, claimed, allocated), (14_234, 14_234, 14_234));
        let summary = &rows.summary;
        assert_eq!((summary.run_id, summary.obligors, summary.collections, summary.pools), (9, 2, 3, 3));
        assert_eq!(summary.allocations, rows.allocations.len() as u64);
        assert_eq!(summary.current + summary.arrears + summary.unapplied, summary.total);
        assert_eq!(summary.total, Money::from_cents(14_234));
        let written = WrittenSums { pooled, allocated, claimed, moved: 0 };
        check_chunk_conservation("A", "B", summary, chunk.pending.collected, written).unwrap();
    }

    #[test]
    fn a_plan_that_pools_money_not_pending_or_runs_short_of_ids_writes_nothing() {
        let chunk = loaded();
        let plans = plan_obligors(chunk.inputs).unwrap();
        let mut other = ChunkLoader::default();
        other.pending(5, "A", 1_234, "2026-11-13").unwrap();
        let only_a = other.finish();
        assert!(matches!(ChunkRows::new(9, &plans, &only_a.pending, &chunk.keys, 100..), Err(StoreError::Corrupt(_))));
        assert!(matches!(ChunkRows::new(9, &plans, &chunk.pending, &chunk.keys, 100..102), Err(StoreError::Corrupt(_))));
    }

    /// A chunk's rows may name only the obligors, orders and correction pools it loaded, each
    /// as its obligor's: on SQLite nothing else checks them before the chunk commits.
    #[test]
    fn a_plan_naming_what_the_chunk_did_not_load_as_its_obligors_writes_nothing() {
        let plans = plan_obligors(loaded().inputs).unwrap();
        let refused = |keys: &LoadedKeys, named: &str| {
            let pending = loaded().pending;
            match ChunkRows::new(9, &plans, &pending, keys, 100..) {
                Err(StoreError::Corrupt(why)) => assert!(why.contains(named), "{why}"),
                Err(other) => panic!("{other}"),
                Ok(_) => panic!("a plan naming {named} was written"),
            }
        };
        let keys_of = |load: &dyn Fn(&mut ChunkLoader)| {
            let mut loader = ChunkLoader::default();
            load(&mut loader);
            loader.finish().keys
        };
        let order = || sql::order_from_columns("B-1", "12345678", 10_000, "2026-01", 0, None).unwrap();
        let both_pending = |loader: &mut ChunkLoader| {
            loader.pending(7, "B", 8_000, "2026-11-13").unwrap();
            loader.pending(5, "A", 1_234, "2026-11-13").unwrap();
        };
        refused(&keys_of(&both_pending), "order B-1");
        refused(
            &keys_of(&|loader| {
                both_pending(loader);
                loader.order(order(), "A");
            }),
            "order B-1",
        );
        refused(
            &keys_of(&|loader| {
                loader.pending(7, "B", 8_000, "2026-11-13").unwrap();
                loader.order(order(), "B");
            }),
            "obligor A",
        );

        // A correction pool emptied by A's plan, loaded as B's.
        let mut corrected = ChunkLoader::default();
        corrected.correction(42, "A", "2026-11-13", 500).unwrap();
        let corrected = corrected.finish();
        let plans = plan_obligors(corrected.inputs).unwrap();
        assert!(ChunkRows::new(9, &plans, &corrected.pending, &corrected.keys, 100..).is_ok(), "loaded as A's");
        let as_b = keys_of(&|loader| {
            loader.pending(5, "A", 1_234, "2026-11-13").unwrap();
            loader.correction(42, "B", "2026-11-13", 500).unwrap();
        });
        match ChunkRows::new(9, &plans, &corrected.pending, &as_b, 100..) {
            Err(StoreError::Corrupt(why)) => assert!(why.contains("pool 42"), "{why}"),
            _ => panic!("a correction pool not loaded as A's was emptied for A"),
        }
    }

    /// A plan may claim only its own obligor's queued collections: a claim of another's would
    /// move their money into this obligor's pools.
    #[test]
    fn a_plan_pooling_another_obligors_collection_writes_nothing() {
        let chunk = loaded();
        let mut swapped = ChunkLoader::default();
        swapped.order(sql::order_from_columns("B-1", "12345678", 10_000, "2026-01", 0, None).unwrap(), "B");
        swapped.pending(7, "A", 8_000, "2026-11-13").unwrap();
        swapped.pending(3, "B", 5_000, "2026-11-20").unwrap();
        swapped.pending(5, "B", 1_234, "2026-11-13").unwrap();
        let plans = plan_obligors(swapped.finish().inputs).unwrap();
        match ChunkRows::new(9, &plans, &chunk.pending, &chunk.keys, 100..) {
            Err(StoreError::Corrupt(why)) => assert!(why.contains("collection 7 for obligor A"), "{why}"),
            Err(other) => panic!("{other}"),
            Ok(_) => panic!("A's plan claimed B's collection"),
        }
    }

    #[test]
    fn rows_written_that_do_not_hold_the_collected_money_fail_the_chunk() {
        let summary = RunSummary { run_id: 4, total: Money::from_cents(500), current: Money::from_cents(500), ..RunSummary::default() };
        let collected = Money::from_cents(500);
        let whole = WrittenSums { pooled: 500, allocated: 500, claimed: 500, moved: 0 };
        check_chunk_conservation("A", "B", &summary, collected, whole).unwrap();
        for broken in [
            WrittenSums { pooled: 499, ..whole },
            WrittenSums { allocated: 501, ..whole },
            WrittenSums { claimed: 0, ..whole },
            WrittenSums { moved: 1, ..whole },
        ] {
            let error = check_chunk_conservation("A", "B", &summary, collected, broken).unwrap_err();
            assert!(matches!(&error, StoreError::Conservation(e) if e.obligor_id == "(run 4, obligors A to B)"), "{error}");
        }
        assert!(check_chunk_conservation("A", "B", &summary, Money::from_cents(501), whole).is_err());
    }
}
