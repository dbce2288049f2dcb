//! The ledger's rules together (`distribution.md`, `order-lifecycle.md`), as properties over
//! random sequences of collections, distribution runs, reversals, ends (recorded and
//! withdrawn) and unapplied-credit actions. The model keeps every entry as a row of its pool,
//! as the store does, and uses the same pure functions the store calls.
//!
//! After every step: every pool's rows add up to its amount less what reversals took back
//! (so every collection is conserved), no row of a pool is overdrawn, no month's current
//! support exceeds the order's monthly amount, and after an end no current support is held
//! for the months after it.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use gateway::domain::credit::{credit_entries, CreditUse, HeldCredit};
use gateway::domain::distribution::{
    plan_obligors, reversal_entries, Allocation, Bucket, ObligorInput, Order, OrderLedger, PendingCollection, PendingCorrection, PoolRow,
    PoolTarget,
};
use gateway::domain::lifecycle::{end_corrections, HeldCurrent};
use gateway::domain::{CaseNumber, Money, ObligorId, OrderId, YearMonth};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Step {
    Collect { cents: i64, day: u64 },
    Run,
    Reverse { pick: usize },
    End { order: usize, day: u64 },
    Withdraw { order: usize },
    Refund { cents: i64 },
    Apply { order: usize, cents: i64, day: u64, to_arrears: bool },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (1i64..900_00, 0u64..360).prop_map(|(cents, day)| Step::Collect { cents, day }),
        2 => Just(Step::Run),
        1 => (0usize..64).prop_map(|pick| Step::Reverse { pick }),
        1 => (0usize..3, 0u64..360).prop_map(|(order, day)| Step::End { order, day }),
        1 => (0usize..3).prop_map(|order| Step::Withdraw { order }),
        1 => (1i64..300_00).prop_map(|cents| Step::Refund { cents }),
        1 => (0usize..3, 1i64..300_00, 0u64..360, any::<bool>()).prop_map(|(order, cents, day, to_arrears)| Step::Apply { order, cents, day, to_arrears }),
    ]
}

#[derive(Clone, Debug)]
struct Collection {
    amount: Money,
    date: NaiveDate,
    pool: Option<usize>,
    reversed: bool,
}

#[derive(Clone, Debug)]
struct Pool {
    date: NaiveDate,
    amount: Money,
    rows: Vec<Allocation>,
}

struct Model {
    orders: Vec<Order>,
    collections: Vec<Collection>,
    pools: Vec<Pool>,
}

fn day(offset: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 1).unwrap() + chrono::Days::new(offset)
}

impl Model {
    fn new(arrears: [i64; 3]) -> Model {
        let order = |id: &str, monthly: i64, arrears: i64, start: &str| Order {
            id: OrderId::parse(id).unwrap(),
            case_number: CaseNumber::parse("12345678").unwrap(),
            monthly_amount: Money::from_cents(monthly),
            start_month: YearMonth::parse(start).unwrap(),
            opening_arrears: Money::from_cents(arrears),
            end_date: None,
        };
        Model {
            orders: vec![
                order("A", 300_00, arrears[0], "2026-01"),
                order("B", 200_00, arrears[1], "2026-03"),
                order("C", 125_50, arrears[2], "2026-02"),
            ],
            collections: Vec::new(),
            pools: Vec::new(),
        }
    }

    fn ledgers(&self) -> Vec<OrderLedger> {
        self.orders
            .iter()
            .map(|order| {
                let mut ledger = OrderLedger::new(order.clone());
                for row in self.pools.iter().flat_map(|p| &p.rows).filter(|r| r.order_id.as_ref() == Some(&order.id)) {
                    ledger.record(row.bucket, row.month, row.amount);
                }
                ledger
            })
            .collect()
    }

    /// Net of a pool's rows by (order, bucket, month).
    fn held(pool: &Pool) -> BTreeMap<(Option<OrderId>, Bucket, Option<YearMonth>), Money> {
        let mut held = BTreeMap::new();
        for row in &pool.rows {
            *held.entry((row.order_id.clone(), row.bucket, row.month)).or_insert(Money::ZERO) += row.amount;
        }
        held
    }

    fn run(&mut self) {
        let pending: Vec<PendingCollection> = self
            .collections
            .iter()
            .enumerate()
            .filter(|(_, c)| c.pool.is_none() && !c.reversed)
            .map(|(id, c)| PendingCollection { id: id as i64, amount: c.amount, effective_date: c.date })
            .collect();
        let corrections: Vec<PendingCorrection> = self
            .pools
            .iter()
            .enumerate()
            .filter_map(|(id, pool)| {
                let held: Money = pool.rows.iter().filter(|r| r.bucket == Bucket::Correction).map(|r| r.amount).sum();
                held.is_positive().then_some(PendingCorrection { pool_id: id as i64, amount: held, effective_date: pool.date })
            })
            .collect();
        if pending.is_empty() && corrections.is_empty() {
            return;
        }
        let input = ObligorInput { obligor_id: ObligorId::parse("OB-1").unwrap(), ledgers: self.ledgers(), pending, corrections };
        let plans = plan_obligors(vec![input]).expect("a plan conserves money");
        for pool in &plans[0].pools {
            for part in &pool.parts {
                match part.target {
                    PoolTarget::New => {
                        let id = self.pools.len();
                        self.pools.push(Pool {
                            date: pool.distribution.effective_date,
                            amount: part.amount,
                            rows: part.allocations.clone(),
                        });
                        for collection in &pool.collection_ids {
                            self.collections[*collection as usize].pool = Some(id);
                        }
                    }
                    PoolTarget::Corrected(id) => {
                        let rows = &mut self.pools[id as usize].rows;
                        rows.push(Allocation { order_id: None, bucket: Bucket::Correction, month: None, amount: -part.amount, step: None });
                        rows.extend(part.allocations.iter().cloned());
                    }
                }
            }
        }
    }

    fn reverse(&mut self, pick: usize) {
        let live: Vec<usize> = (0..self.collections.len()).filter(|&i| !self.collections[i].reversed).collect();
        let Some(&index) = live.get(pick % live.len().max(1)) else { return };
        let collection = self.collections[index].clone();
        self.collections[index].reversed = true;
        let Some(pool) = collection.pool else { return };
        let rows: Vec<PoolRow> = Model::held(&self.pools[pool])
            .into_iter()
            .map(|((order_id, bucket, month), remaining)| PoolRow { order_id, bucket, month, remaining })
            .collect();
        let entries = reversal_entries(&rows, collection.amount);
        self.pools[pool].rows.extend(entries);
    }

    fn end(&mut self, order: usize, date: NaiveDate) {
        let order = &mut self.orders[order];
        if date < order.start_month.first_day() || order.end_date.is_some_and(|end| end <= date) {
            return;
        }
        order.end_date = Some(date);
        let id = order.id.clone();
        let mut held = Vec::new();
        for (pool_id, pool) in self.pools.iter().enumerate() {
            for ((order_id, bucket, month), remaining) in Model::held(pool) {
                if order_id.as_ref() == Some(&id) && bucket == Bucket::Current {
                    held.push(HeldCurrent { pool_id: pool_id as i64, month: month.unwrap(), remaining });
                }
            }
        }
        for correction in end_corrections(&id, date, &held) {
            self.pools[correction.pool_id as usize].rows.extend(correction.entries);
        }
    }

    fn credit(&mut self, amount: Money, target: CreditUse, order: Option<usize>, this_month: YearMonth) {
        let held: Vec<HeldCredit> = self
            .pools
            .iter()
            .enumerate()
            .map(|(id, pool)| HeldCredit {
                pool_id: id as i64,
                remaining: pool.rows.iter().filter(|r| r.bucket == Bucket::Unapplied).map(|r| r.amount).sum(),
            })
            .collect();
        let ledgers = self.ledgers();
        let ledger = order.map(|i| &ledgers[i]);
        if let Ok(moves) = credit_entries(&held, amount, &target, ledger, this_month) {
            for (pool, entries) in moves {
                self.pools[pool as usize].rows.extend(entries);
            }
        }
    }

    fn check(&self, step: &Step) -> Result<(), TestCaseError> {
        for (id, pool) in self.pools.iter().enumerate() {
            let reversed: Money = self.collections.iter().filter(|c| c.pool == Some(id) && c.reversed).map(|c| c.amount).sum();
            let rows: Money = pool.rows.iter().map(|r| r.amount).sum();
            prop_assert_eq!(rows, pool.amount - reversed, "pool {} after {:?}: its rows are its money", id, step);
            for (key, net) in Model::held(pool) {
                prop_assert!(!net.is_negative(), "pool {id} row {key:?} overdrawn ({net}) after {step:?}");
            }
        }
        let in_pools: Money = self.collections.iter().filter(|c| c.pool.is_some() && !c.reversed).map(|c| c.amount).sum();
        prop_assert_eq!(self.pools.iter().flat_map(|p| &p.rows).map(|r| r.amount).sum::<Money>(), in_pools);
        for ledger in self.ledgers() {
            let order = ledger.order();
            for index in 0..13u32 {
                let month = YearMonth::new(2026 + (index / 12) as i32, index % 12 + 1).unwrap();
                let paid = ledger.current_paid(month);
                prop_assert!(paid <= order.monthly_amount, "order {} {}: {} paid as current support", order.id, month, paid);
                if !order.is_due(month) && order.end_date.is_some_and(|end| month.first_day() > end) && matches!(step, Step::End { .. }) {
                    prop_assert!(paid.is_zero(), "order {} {}: {} held after its end", order.id, month, paid);
                }
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_sequence_of_runs_reversals_ends_and_credit_conserves_every_collection(
        arrears in proptest::array::uniform3(0i64..2000_00),
        steps in proptest::collection::vec(step(), 1..40),
    ) {
        let mut model = Model::new(arrears);
        for step in &steps {
            match *step {
                Step::Collect { cents, day: offset } => {
                    model.collections.push(Collection { amount: Money::from_cents(cents), date: day(offset), pool: None, reversed: false });
                }
                Step::Run => model.run(),
                Step::Reverse { pick } => model.reverse(pick),
                Step::End { order, day: offset } => model.end(order, day(offset)),
                Step::Withdraw { order } => model.orders[order].end_date = None,
                Step::Refund { cents } => model.credit(Money::from_cents(cents), CreditUse::Refund, None, YearMonth::of(day(359))),
                Step::Apply { order, cents, day: offset, to_arrears } => {
                    let target = if to_arrears { CreditUse::Arrears } else { CreditUse::Current(YearMonth::of(day(offset))) };
                    model.credit(Money::from_cents(cents), target, Some(order), YearMonth::of(day(359)));
                }
            }
            model.check(step)?;
        }
        // And a last run leaves nothing pending that could be distributed.
        model.run();
        model.check(&Step::Run)?;
        prop_assert!(model.pools.iter().all(|p| p.rows.iter().filter(|r| r.bucket == Bucket::Correction).map(|r| r.amount).sum::<Money>().is_zero()));
    }
}
