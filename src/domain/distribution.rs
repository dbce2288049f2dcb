//! The distribution rule (`distribution.md`): current support first, prorated; then past-due
//! support, prorated; then unapplied credit. Exact to the cent.
//!
//! Balances are never stored: an [`OrderLedger`] derives them from the order's terms and the
//! allocations written so far, so there is no month-end job and nothing to drift.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::apportion::apportion;
use super::ids::{CaseNumber, OrderId};
use super::money::Money;
use super::month::YearMonth;

/// A support order's terms, as the case registry gives them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub id: OrderId,
    pub case_number: CaseNumber,
    pub monthly_amount: Money,
    pub start_month: YearMonth,
    pub opening_arrears: Money,
    pub end_date: Option<NaiveDate>,
}

impl Order {
    /// A month is due when it is on or after the start month and its first day is not after
    /// the end date: the month of termination is owed in full, later months are not.
    pub fn is_due(&self, month: YearMonth) -> bool {
        self.start_month <= month && self.end_date.is_none_or(|end| month.first_day() <= end)
    }

    /// The last due month, if the order has ended.
    fn last_due_month(&self) -> Option<YearMonth> {
        self.end_date.map(YearMonth::of)
    }

    /// Σ monthly_amount over the due months before `month`.
    fn accrued_before(&self, month: YearMonth) -> Money {
        let mut last = month.previous();
        if let Some(end) = self.last_due_month() {
            last = last.min(end);
        }
        let due_months = self.start_month.months_through(last);
        self.monthly_amount.checked_mul(due_months).expect("accrued support fits in i64 cents")
    }
}

/// Where a part of a pool went (or now is). Ordered as the reversal tie-break ranks them.
///
/// Every entry about a pool's money is a row of that pool, so a pool's rows always add up to
/// its amount less what reversals took back: a correction or a refund moves money between
/// the pool's rows, it never takes money out of the pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    /// An order's current support for one month.
    Current,
    /// An order's past-due support.
    Arrears,
    /// The obligor's unapplied credit.
    Unapplied,
    /// Freed by an end recorded after the money (`order-lifecycle.md`): the correction pool,
    /// waiting for the next distribution run.
    Correction,
    /// Unapplied credit refunded to the obligor.
    Refunded,
}

impl Bucket {
    pub const ALL: [Bucket; 5] = [Bucket::Current, Bucket::Arrears, Bucket::Unapplied, Bucket::Correction, Bucket::Refunded];

    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Current => "CURRENT",
            Bucket::Arrears => "ARREARS",
            Bucket::Unapplied => "UNAPPLIED",
            Bucket::Correction => "CORRECTION",
            Bucket::Refunded => "REFUNDED",
        }
    }

    pub fn parse(text: &str) -> Option<Bucket> {
        Bucket::ALL.into_iter().find(|bucket| bucket.as_str() == text)
    }

    /// Current support and arrears are an order's; the rest is the obligor's.
    pub fn is_order_money(self) -> bool {
        matches!(self, Bucket::Current | Bucket::Arrears)
    }
}

/// The step of the distribution rule that wrote an allocation, kept with it so that an
/// explanation never has to replay the rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RuleStep {
    /// Every order's current support for the month was paid in full.
    CurrentInFull,
    /// The pool could not pay every order's current support: divided in proportion.
    CurrentProrated,
    ArrearsInFull,
    ArrearsProrated,
    /// What was left after current support and arrears.
    Unapplied,
}

impl RuleStep {
    pub const ALL: [RuleStep; 5] =
        [RuleStep::CurrentInFull, RuleStep::CurrentProrated, RuleStep::ArrearsInFull, RuleStep::ArrearsProrated, RuleStep::Unapplied];

    pub fn as_str(self) -> &'static str {
        match self {
            RuleStep::CurrentInFull => "CURRENT_IN_FULL",
            RuleStep::CurrentProrated => "CURRENT_PRORATED",
            RuleStep::ArrearsInFull => "ARREARS_IN_FULL",
            RuleStep::ArrearsProrated => "ARREARS_PRORATED",
            RuleStep::Unapplied => "UNAPPLIED",
        }
    }

    pub fn parse(text: &str) -> Option<RuleStep> {
        RuleStep::ALL.into_iter().find(|step| step.as_str() == text)
    }

    fn of(bucket: Bucket, prorated: bool) -> RuleStep {
        match (bucket, prorated) {
            (Bucket::Current, false) => RuleStep::CurrentInFull,
            (Bucket::Current, true) => RuleStep::CurrentProrated,
            (Bucket::Arrears, false) => RuleStep::ArrearsInFull,
            (Bucket::Arrears, true) => RuleStep::ArrearsProrated,
            _ => RuleStep::Unapplied,
        }
    }
}

/// One entry about a pool's money: written by distribution, or (its negative) by a reversal,
/// or by a correction or a back-office action moving money between the pool's rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// `None` for the obligor's money (unapplied, correction, refunded), not an order's.
    pub order_id: Option<OrderId>,
    pub bucket: Bucket,
    /// The month of current support; `None` for every other bucket.
    pub month: Option<YearMonth>,
    pub amount: Money,
    /// The rule's step, for entries the distribution rule wrote; `None` for the others.
    pub step: Option<RuleStep>,
}

/// An order with everything allocated to it so far: the source of its balances.
#[derive(Clone, Debug)]
pub struct OrderLedger {
    order: Order,
    current_paid: BTreeMap<YearMonth, Money>,
    arrears_paid: Money,
}

impl OrderLedger {
    pub fn new(order: Order) -> OrderLedger {
        assert!(!order.monthly_amount.is_negative(), "order {} has a negative monthly amount", order.id);
        assert!(!order.opening_arrears.is_negative(), "order {} has negative opening arrears", order.id);
        OrderLedger { order, current_paid: BTreeMap::new(), arrears_paid: Money::ZERO }
    }

    pub fn order(&self) -> &Order {
        &self.order
    }

    /// Adds an allocation already written (by an earlier pool or run, or a reversal).
    pub fn record(&mut self, bucket: Bucket, month: Option<YearMonth>, amount: Money) {
        match (bucket, month) {
            (Bucket::Current, Some(month)) => *self.current_paid.entry(month).or_default() += amount,
            (Bucket::Arrears, None) => self.arrears_paid += amount,
            other => panic!("order {}: cannot record {other:?}", self.order.id),
        }
    }

    /// All allocations so far to current support for `month`.
    pub fn current_paid(&self, month: YearMonth) -> Money {
        self.current_paid.get(&month).copied().unwrap_or_default()
    }

    /// `monthly_amount − current_paid(m)` if m is due, else 0; never below 0.
    pub fn current_due(&self, month: YearMonth) -> Money {
        if !self.order.is_due(month) {
            return Money::ZERO;
        }
        self.order.monthly_amount.saturating_sub_floor_zero(self.current_paid(month))
    }

    /// `opening_arrears + Σ monthly over due months k < m − Σ current_paid(k < m) − Σ arrears
    /// allocations`; never below 0.
    pub fn arrears(&self, month: YearMonth) -> Money {
        let paid_as_current_before: Money = self.current_paid.range(..month).map(|(_, paid)| *paid).sum();
        let owed = self.order.opening_arrears + self.order.accrued_before(month);
        owed.saturating_sub_floor_zero(paid_as_current_before + self.arrears_paid)
    }

    fn apply(&mut self, allocation: &Allocation) {
        self.record(allocation.bucket, allocation.month, allocation.amount);
        if let Some(month) = allocation.month {
            assert!(
                self.current_paid(month) <= self.order.monthly_amount,
                "order {}: current support for {month} would exceed the monthly amount",
                self.order.id
            );
        }
    }
}

/// What one pool wrote: its allocations, unapplied credit included, adding up to its amount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolDistribution {
    pub effective_date: NaiveDate,
    pub amount: Money,
    pub allocations: Vec<Allocation>,
}

impl PoolDistribution {
    pub fn unapplied(&self) -> Money {
        self.allocations.iter().filter(|a| a.bucket == Bucket::Unapplied).map(|a| a.amount).sum()
    }
}

/// Applies one pool of an obligor, dated `effective_date`, to the obligor's orders, and
/// updates their ledgers so that the next pool sees the balances this one left.
pub fn apply_pool(ledgers: &mut [OrderLedger], effective_date: NaiveDate, amount: Money) -> PoolDistribution {
    assert!(amount.is_positive(), "a pool holds money: {amount}");
    let month = YearMonth::of(effective_date);
    // The dividing rule's last tie-break is the smaller order id, compared as text.
    ledgers.sort_by(|a, b| a.order.id.cmp(&b.order.id));

    let mut allocations = Vec::new();
    let mut left = amount;

    let current_due: Vec<Money> = ledgers.iter().map(|l| l.current_due(month)).collect();
    left -= pay_in_proportion(ledgers, &current_due, left, Bucket::Current, Some(month), &mut allocations);

    let arrears: Vec<Money> = ledgers.iter().map(|l| l.arrears(month)).collect();
    left -= pay_in_proportion(ledgers, &arrears, left, Bucket::Arrears, None, &mut allocations);

    if left.is_positive() {
        allocations.push(Allocation {
            order_id: None,
            bucket: Bucket::Unapplied,
            month: None,
            amount: left,
            step: Some(RuleStep::Unapplied),
        });
    }

    for allocation in &allocations {
        if let Some(order_id) = &allocation.order_id {
            let ledger = ledgers.iter_mut().find(|l| &l.order.id == order_id).expect("allocated to a known order");
            ledger.apply(allocation);
        }
    }

    let distribution = PoolDistribution { effective_date, amount, allocations };
    assert_eq!(distribution.allocations.iter().map(|a| a.amount).sum::<Money>(), amount, "a pool's allocations must add up to the pool");
    distribution
}

/// Pays every balance in full when `available` covers them all, else divides `available` in
/// proportion to them. Returns what was paid.
fn pay_in_proportion(
    ledgers: &[OrderLedger],
    balances: &[Money],
    available: Money,
    bucket: Bucket,
    month: Option<YearMonth>,
    allocations: &mut Vec<Allocation>,
) -> Money {
    let owed: Money = balances.iter().sum();
    let prorated = available < owed;
    let shares = if prorated { apportion(available, balances) } else { balances.to_vec() };
    let step = Some(RuleStep::of(bucket, prorated));
    for (ledger, share) in ledgers.iter().zip(&shares) {
        if share.is_positive() {
            allocations.push(Allocation { order_id: Some(ledger.order.id.clone()), bucket, month, amount: *share, step });
        }
    }
    shares.iter().sum()
}

/// A collection waiting for distribution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCollection {
    pub id: i64,
    pub amount: Money,
    pub effective_date: NaiveDate,
}

/// A correction pool waiting for distribution (`order-lifecycle.md`): the money an end freed
/// from one original pool, held in that pool's CORRECTION row, with that pool's date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingCorrection {
    pub pool_id: i64,
    pub amount: Money,
    pub effective_date: NaiveDate,
}

/// Where one source's share of a merged pool is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PoolTarget {
    /// A new pool of the run, holding the collections merged into it.
    New,
    /// The original pool a correction freed the money from: its CORRECTION row is emptied
    /// into these rows, so the pool's rows keep adding up to its amount.
    Corrected(i64),
}

/// One source's share of a merged pool's allocations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolPart {
    pub target: PoolTarget,
    pub amount: Money,
    pub allocations: Vec<Allocation>,
}

/// A pool as a run plans to write it: the money merged into it (collections, and correction
/// pools of the same date), what the rule paid from it, and that divided among its sources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedPool {
    pub collection_ids: Vec<i64>,
    pub distribution: PoolDistribution,
    /// The collections' part (if any) and each correction pool's, adding up row by row to
    /// `distribution.allocations`.
    pub parts: Vec<PoolPart>,
}

impl PlannedPool {
    /// The part the new pool holds: the collections' money.
    pub fn new_part(&self) -> Option<&PoolPart> {
        self.parts.iter().find(|part| part.target == PoolTarget::New)
    }
}

/// Distributes an obligor's pending money: collections and correction pools merged into one
/// pool per effective date (whatever their source), applied in ascending effective date.
pub fn distribute_obligor(
    ledgers: &mut [OrderLedger],
    pending: &[PendingCollection],
    corrections: &[PendingCorrection],
) -> Vec<PlannedPool> {
    #[derive(Default)]
    struct Merged {
        collected: Money,
        collection_ids: Vec<i64>,
        corrections: Vec<(i64, Money)>,
    }
    let mut by_date: BTreeMap<NaiveDate, Merged> = BTreeMap::new();
    for collection in pending {
        assert!(collection.amount.is_positive(), "collection {} has no money", collection.id);
        let merged = by_date.entry(collection.effective_date).or_default();
        merged.collected += collection.amount;
        merged.collection_ids.push(collection.id);
    }
    for correction in corrections {
        assert!(correction.amount.is_positive(), "correction pool of pool {} has no money", correction.pool_id);
        by_date.entry(correction.effective_date).or_default().corrections.push((correction.pool_id, correction.amount));
    }
    by_date
        .into_iter()
        .map(|(date, mut merged)| {
            let corrected: Money = merged.corrections.iter().map(|(_, amount)| *amount).sum();
            let distribution = apply_pool(ledgers, date, merged.collected + corrected);
            merged.corrections.sort();
            let mut sources: Vec<(PoolTarget, Money)> =
                merged.corrections.iter().map(|&(pool_id, amount)| (PoolTarget::Corrected(pool_id), amount)).collect();
            if merged.collected.is_positive() {
                sources.push((PoolTarget::New, merged.collected));
            }
            let parts = split_among_sources(&distribution.allocations, &sources);
            PlannedPool { collection_ids: merged.collection_ids, distribution, parts }
        })
        .collect()
}

/// Divides a merged pool's allocations among the money it was made of: each source in turn
/// takes its amount from every row in proportion to what the row has left, the last source
/// takes the rest. Every row and every source adds up exactly.
fn split_among_sources(allocations: &[Allocation], sources: &[(PoolTarget, Money)]) -> Vec<PoolPart> {
    let mut left: Vec<Money> = allocations.iter().map(|a| a.amount).collect();
    let mut parts = Vec::with_capacity(sources.len());
    for (index, &(target, amount)) in sources.iter().enumerate() {
        let shares = if index + 1 == sources.len() { left.clone() } else { apportion(amount, &left) };
        let part_allocations: Vec<Allocation> = allocations
            .iter()
            .zip(&shares)
            .filter(|(_, share)| share.is_positive())
            .map(|(allocation, share)| Allocation { amount: *share, ..allocation.clone() })
            .collect();
        for (row_left, share) in left.iter_mut().zip(&shares) {
            *row_left -= *share;
        }
        assert_eq!(part_allocations.iter().map(|a| a.amount).sum::<Money>(), amount, "a source's part adds up to its amount");
        parts.push(PoolPart { target, amount, allocations: part_allocations });
    }
    assert!(left.iter().all(|l| l.is_zero()), "every row of a merged pool is divided among its sources");
    parts
}

/// What is left of one row of a pool: an allocation (or the unapplied credit) less the
/// reversals of the pool's collections that already took from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolRow {
    pub order_id: Option<OrderId>,
    pub bucket: Bucket,
    pub month: Option<YearMonth>,
    pub remaining: Money,
}

/// The entries that reverse `amount` of a distributed pool: the amount divided among the
/// pool's rows in proportion to what each still holds, written as negatives.
pub fn reversal_entries(rows: &[PoolRow], amount: Money) -> Vec<Allocation> {
    let held: Money = rows.iter().map(|r| r.remaining).sum();
    assert!(amount.is_positive() && amount <= held, "cannot reverse {amount} of a pool holding {held}");
    let mut ranked: Vec<&PoolRow> = rows.iter().collect();
    // The reversal's last tie-break: current before arrears before unapplied, then order id.
    ranked.sort_by(|a, b| a.bucket.cmp(&b.bucket).then(a.order_id.cmp(&b.order_id)).then(a.month.cmp(&b.month)));
    let weights: Vec<Money> = ranked.iter().map(|r| r.remaining).collect();
    let shares = apportion(amount, &weights);
    let entries: Vec<Allocation> = ranked
        .iter()
        .zip(shares)
        .filter(|(_, share)| share.is_positive())
        .map(|(row, share)| Allocation { order_id: row.order_id.clone(), bucket: row.bucket, month: row.month, amount: -share, step: None })
        .collect();
    assert_eq!(entries.iter().map(|e| e.amount).sum::<Money>(), -amount, "a reversal takes back exactly its amount");
    entries
}

/// One obligor's share of a distribution run: its orders as they stand, its pending
/// collections and its correction pools.
#[derive(Clone, Debug)]
pub struct ObligorInput {
    pub obligor_id: super::ids::ObligorId,
    pub ledgers: Vec<OrderLedger>,
    pub pending: Vec<PendingCollection>,
    pub corrections: Vec<PendingCorrection>,
}

/// What a run writes for one obligor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObligorPlan {
    pub obligor_id: super::ids::ObligorId,
    pub pools: Vec<PlannedPool>,
}

/// A run's plan broke the conservation rule. This is a defect, never a user error: the run
/// is abandoned and nothing of it is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conservation violated for obligor {obligor_id}: collections {collected}, pools {pooled}, allocations {allocated}")]
pub struct ConservationError {
    pub obligor_id: String,
    pub collected: Money,
    pub pooled: Money,
    pub allocated: Money,
}

/// Plans a batch of obligors and checks, before anything is written, that for each obligor
/// Σ collections and correction pools = Σ pools = Σ allocations (unapplied credit included),
/// and that each source's part is exactly its own money.
pub fn plan_obligors(inputs: Vec<ObligorInput>) -> Result<Vec<ObligorPlan>, ConservationError> {
    inputs
        .into_iter()
        .map(|mut input| {
            let pools = distribute_obligor(&mut input.ledgers, &input.pending, &input.corrections);
            let plan = ObligorPlan { obligor_id: input.obligor_id, pools };
            check_conservation(&input.pending, &input.corrections, &plan)?;
            Ok(plan)
        })
        .collect()
}

fn check_conservation(
    pending: &[PendingCollection],
    corrections: &[PendingCorrection],
    plan: &ObligorPlan,
) -> Result<(), ConservationError> {
    let collected: Money = pending.iter().map(|c| c.amount).sum::<Money>() + corrections.iter().map(|c| c.amount).sum::<Money>();
    let pooled: Money = plan.pools.iter().map(|p| p.distribution.amount).sum();
    let allocated: Money = plan.pools.iter().flat_map(|p| &p.distribution.allocations).map(|a| a.amount).sum();
    let pooled_ids: usize = plan.pools.iter().map(|p| p.collection_ids.len()).sum();
    let new_money: Money = pending.iter().map(|c| c.amount).sum();
    let new_parts: Money = plan.pools.iter().filter_map(|p| p.new_part()).map(|part| part.amount).sum();
    let parts_whole = plan.pools.iter().all(|pool| {
        pool.parts.iter().map(|part| part.amount).sum::<Money>() == pool.distribution.amount
            && pool.parts.iter().all(|part| part.allocations.iter().map(|a| a.amount).sum::<Money>() == part.amount)
    });
    if collected == pooled && pooled == allocated && pooled_ids == pending.len() && new_money == new_parts && parts_whole {
        Ok(())
    } else {
        Err(ConservationError { obligor_id: plan.obligor_id.to_string(), collected, pooled, allocated })
    }
}

/// What a distribution run wrote, in totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunSummary {
    pub run_id: i64,
    pub obligors: u64,
    pub collections: u64,
    pub pools: u64,
    pub allocations: u64,
    pub total: Money,
    pub current: Money,
    pub arrears: Money,
    pub unapplied: Money,
    /// Correction pools applied again (not in `total`, which is the collections' money):
    /// `total + corrections = current + arrears + unapplied`.
    pub corrections: Money,
}

impl RunSummary {
    /// This run's figures with a further chunk's added (the run id stays).
    pub fn plus(&self, chunk: &RunSummary) -> RunSummary {
        RunSummary {
            run_id: self.run_id,
            obligors: self.obligors + chunk.obligors,
            collections: self.collections + chunk.collections,
            pools: self.pools + chunk.pools,
            allocations: self.allocations + chunk.allocations,
            total: self.total + chunk.total,
            current: self.current + chunk.current,
            arrears: self.arrears + chunk.arrears,
            unapplied: self.unapplied + chunk.unapplied,
            corrections: self.corrections + chunk.corrections,
        }
    }
}
