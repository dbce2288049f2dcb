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

/// Where a part of a pool went. Ordered as the reversal tie-break ranks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    Current,
    Arrears,
    Unapplied,
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Current => "CURRENT",
            Bucket::Arrears => "ARREARS",
            Bucket::Unapplied => "UNAPPLIED",
        }
    }

    pub fn parse(text: &str) -> Option<Bucket> {
        match text {
            "CURRENT" => Some(Bucket::Current),
            "ARREARS" => Some(Bucket::Arrears),
            "UNAPPLIED" => Some(Bucket::Unapplied),
            _ => None,
        }
    }
}

/// One entry written by distribution (or, negative, by a reversal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// `None` for unapplied credit, which belongs to the obligor, not to an order.
    pub order_id: Option<OrderId>,
    pub bucket: Bucket,
    /// The month of current support; `None` for arrears and unapplied.
    pub month: Option<YearMonth>,
    pub amount: Money,
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
        allocations.push(Allocation { order_id: None, bucket: Bucket::Unapplied, month: None, amount: left });
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
    let shares = if available >= owed { balances.to_vec() } else { apportion(available, balances) };
    for (ledger, share) in ledgers.iter().zip(&shares) {
        if share.is_positive() {
            allocations.push(Allocation { order_id: Some(ledger.order.id.clone()), bucket, month, amount: *share });
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

/// A pool as a run plans to write it: the collections merged into it and what it paid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedPool {
    pub collection_ids: Vec<i64>,
    pub distribution: PoolDistribution,
}

/// Distributes an obligor's pending collections: merged into one pool per effective date
/// (whatever their source), applied in ascending effective date.
pub fn distribute_obligor(ledgers: &mut [OrderLedger], pending: &[PendingCollection]) -> Vec<PlannedPool> {
    let mut by_date: BTreeMap<NaiveDate, (Money, Vec<i64>)> = BTreeMap::new();
    for collection in pending {
        assert!(collection.amount.is_positive(), "collection {} has no money", collection.id);
        let (amount, ids) = by_date.entry(collection.effective_date).or_default();
        *amount += collection.amount;
        ids.push(collection.id);
    }
    by_date
        .into_iter()
        .map(|(date, (amount, collection_ids))| PlannedPool { collection_ids, distribution: apply_pool(ledgers, date, amount) })
        .collect()
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
        .map(|(row, share)| Allocation { order_id: row.order_id.clone(), bucket: row.bucket, month: row.month, amount: -share })
        .collect();
    assert_eq!(entries.iter().map(|e| e.amount).sum::<Money>(), -amount, "a reversal takes back exactly its amount");
    entries
}

/// One obligor's share of a distribution run: its orders as they stand, and its pending
/// collections.
#[derive(Clone, Debug)]
pub struct ObligorInput {
    pub obligor_id: super::ids::ObligorId,
    pub ledgers: Vec<OrderLedger>,
    pub pending: Vec<PendingCollection>,
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
/// Σ collections = Σ pools = Σ allocations (unapplied credit included).
pub fn plan_obligors(inputs: Vec<ObligorInput>) -> Result<Vec<ObligorPlan>, ConservationError> {
    inputs
        .into_iter()
        .map(|mut input| {
            let pools = distribute_obligor(&mut input.ledgers, &input.pending);
            let plan = ObligorPlan { obligor_id: input.obligor_id, pools };
            check_conservation(&input.pending, &plan)?;
            Ok(plan)
        })
        .collect()
}

fn check_conservation(pending: &[PendingCollection], plan: &ObligorPlan) -> Result<(), ConservationError> {
    let collected: Money = pending.iter().map(|c| c.amount).sum();
    let pooled: Money = plan.pools.iter().map(|p| p.distribution.amount).sum();
    let allocated: Money = plan.pools.iter().flat_map(|p| &p.distribution.allocations).map(|a| a.amount).sum();
    let pooled_ids: usize = plan.pools.iter().map(|p| p.collection_ids.len()).sum();
    if collected == pooled && pooled == allocated && pooled_ids == pending.len() {
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
        }
    }
}
