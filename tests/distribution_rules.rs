//! The distribution rule of `distribution.md`: every worked example as a table test, the
//! balances' derivation, and property tests over random orders and pools.

use chrono::NaiveDate;
use gateway::domain::distribution::{
    apply_pool, distribute_obligor, reversal_entries, Allocation, Bucket, RuleStep, Order, OrderLedger, PendingCollection, PoolRow,
};
use gateway::domain::{CaseNumber, Money, OrderId, YearMonth};
use proptest::prelude::*;

fn date(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

fn month(text: &str) -> YearMonth {
    YearMonth::parse(text).unwrap()
}

fn order(id: &str, monthly_cents: i64, arrears_cents: i64, start: &str, end: Option<&str>) -> OrderLedger {
    OrderLedger::new(Order {
        id: OrderId::parse(id).unwrap(),
        case_number: CaseNumber::parse("12345678").unwrap(),
        monthly_amount: Money::from_cents(monthly_cents),
        start_month: month(start),
        opening_arrears: Money::from_cents(arrears_cents),
        end_date: end.map(date),
    })
}

/// The spec's orders: A 300.00 a month with 100.00 arrears, B 200.00 with 300.00.
fn spec_orders() -> Vec<OrderLedger> {
    vec![order("A", 300_00, 100_00, "2026-11", None), order("B", 200_00, 300_00, "2026-11", None)]
}

/// (current A, current B, arrears A, arrears B, unapplied) of a pool's allocations.
fn table_row(allocations: &[Allocation]) -> [i64; 5] {
    let find = |id: Option<&str>, bucket| {
        allocations.iter().filter(|a| a.order_id.as_ref().map(|o| o.as_str()) == id && a.bucket == bucket).map(|a| a.amount.cents()).sum()
    };
    [
        find(Some("A"), Bucket::Current),
        find(Some("B"), Bucket::Current),
        find(Some("A"), Bucket::Arrears),
        find(Some("B"), Bucket::Arrears),
        find(None, Bucket::Unapplied),
    ]
}

#[test]
fn the_worked_examples_of_the_spec() {
    let table = [
        (250_00, [150_00, 100_00, 0, 0, 0]),
        (600_00, [300_00, 200_00, 25_00, 75_00, 0]),
        (1000_00, [300_00, 200_00, 100_00, 300_00, 100_00]),
        (100_01, [60_01, 40_00, 0, 0, 0]),
    ];
    for (pool, expected) in table {
        let mut ledgers = spec_orders();
        let distribution = apply_pool(&mut ledgers, date("2026-11-13"), Money::from_cents(pool));
        assert_eq!(table_row(&distribution.allocations), expected, "pool {pool}");
        assert!(distribution.allocations.iter().filter(|a| a.bucket == Bucket::Current).all(|a| a.month == Some(month("2026-11"))));
    }
}

#[test]
fn two_pools_of_250_in_a_month_equal_one_of_500() {
    let mut two = spec_orders();
    let first = apply_pool(&mut two, date("2026-11-05"), Money::from_cents(250_00));
    assert_eq!(table_row(&first.allocations), [150_00, 100_00, 0, 0, 0]);
    let second = apply_pool(&mut two, date("2026-11-20"), Money::from_cents(250_00));
    assert_eq!(table_row(&second.allocations), [150_00, 100_00, 0, 0, 0]);
    let mut one = spec_orders();
    let single = apply_pool(&mut one, date("2026-11-05"), Money::from_cents(500_00));
    assert_eq!(table_row(&single.allocations), [300_00, 200_00, 0, 0, 0]);
}

#[test]
fn collections_of_one_date_are_one_pool_applied_in_date_order() {
    let mut ledgers = spec_orders();
    let pending = [
        PendingCollection { id: 3, amount: Money::from_cents(100_00), effective_date: date("2026-12-01") },
        PendingCollection { id: 1, amount: Money::from_cents(400_00), effective_date: date("2026-11-13") },
        PendingCollection { id: 2, amount: Money::from_cents(200_00), effective_date: date("2026-11-13") },
    ];
    let pools = distribute_obligor(&mut ledgers, &pending, &[]);
    assert_eq!(pools.len(), 2);
    assert_eq!(pools[0].collection_ids, [1, 2]);
    assert_eq!(table_row(&pools[0].distribution.allocations), [300_00, 200_00, 25_00, 75_00, 0]);
    // December: current due again (300 + 200); 100.00 prorated 60/40.
    assert_eq!(pools[1].distribution.effective_date, date("2026-12-01"));
    assert_eq!(table_row(&pools[1].distribution.allocations), [60_00, 40_00, 0, 0, 0]);
}

#[test]
fn arrears_accrue_from_unpaid_months_and_balances_never_go_below_zero() {
    let mut ledger = order("A", 300_00, 100_00, "2026-08", None);
    // August, September, October unpaid: seen from November, arrears are 100 + 3 × 300.
    assert_eq!(ledger.arrears(month("2026-11")), Money::from_cents(1000_00));
    assert_eq!(ledger.current_due(month("2026-11")), Money::from_cents(300_00));
    assert_eq!(ledger.current_due(month("2026-07")), Money::ZERO, "before the start month nothing is due");
    assert_eq!(ledger.arrears(month("2026-08")), Money::from_cents(100_00));
    ledger.record(Bucket::Current, Some(month("2026-09")), Money::from_cents(300_00));
    assert_eq!(ledger.arrears(month("2026-11")), Money::from_cents(700_00));
    ledger.record(Bucket::Arrears, None, Money::from_cents(5000_00));
    assert_eq!(ledger.arrears(month("2026-11")), Money::ZERO);
    // A reversal (a negative entry) raises the balance again by exactly its amount.
    ledger.record(Bucket::Arrears, None, Money::from_cents(-4400_00));
    assert_eq!(ledger.arrears(month("2026-11")), Money::from_cents(100_00));
}

#[test]
fn an_order_owes_its_end_month_in_full_and_nothing_after() {
    let ledger = order("A", 300_00, 0, "2026-01", Some("2026-03-15"));
    assert_eq!(ledger.current_due(month("2026-03")), Money::from_cents(300_00));
    assert_eq!(ledger.current_due(month("2026-04")), Money::ZERO);
    // January to March accrued; arrears stay owed after the end.
    assert_eq!(ledger.arrears(month("2026-06")), Money::from_cents(900_00));
    let on_the_first = order("B", 100_00, 0, "2026-01", Some("2026-03-01"));
    assert!(on_the_first.order().is_due(month("2026-03")));
    let the_day_before = order("C", 100_00, 0, "2026-01", Some("2026-02-28"));
    assert!(!the_day_before.order().is_due(month("2026-03")));
}

#[test]
fn the_odd_cent_goes_by_remainder_then_weight_then_order_id_as_text() {
    // Equal weights, equal remainders: "B10" < "B9" as text.
    let mut ledgers = vec![order("B9", 100_00, 0, "2026-11", None), order("B10", 100_00, 0, "2026-11", None)];
    let distribution = apply_pool(&mut ledgers, date("2026-11-13"), Money::from_cents(1));
    assert_eq!(distribution.allocations.len(), 1);
    assert_eq!(distribution.allocations[0].order_id.as_ref().unwrap().as_str(), "B10");
    // Remainders 1 × 1 mod 4 = 1 and 1 × 3 mod 4 = 3: the larger remainder wins.
    let mut ledgers = vec![order("A", 1_00, 0, "2026-11", None), order("Z", 3_00, 0, "2026-11", None)];
    let distribution = apply_pool(&mut ledgers, date("2026-11-13"), Money::from_cents(1));
    assert_eq!(distribution.allocations[0].order_id.as_ref().unwrap().as_str(), "Z");
}

#[test]
fn an_obligor_without_orders_gets_unapplied_credit() {
    let distribution = apply_pool(&mut [], date("2026-11-13"), Money::from_cents(50_00));
    assert_eq!(
        distribution.allocations,
        [Allocation { order_id: None, bucket: Bucket::Unapplied, month: None, amount: Money::from_cents(50_00), step: Some(RuleStep::Unapplied) }]
    );
}

// ---------------------------------------------------------------- properties

/// 1 to 5 orders with distinct ids, random terms (monthly 0 included), start months in 2025–2026,
/// optional end dates.
fn arbitrary_orders() -> impl Strategy<Value = Vec<OrderLedger>> {
    proptest::collection::vec((0i64..2000_00, 0i64..5000_00, 0u32..24, proptest::option::of((0u32..30, 1u32..28))), 1..=5).prop_map(
        |terms| {
            terms
                .into_iter()
                .enumerate()
                .map(|(index, (monthly, arrears, start, end))| {
                    let start_month = format!("{}-{:02}", 2025 + start / 12, start % 12 + 1);
                    let end = end.map(|(m, d)| format!("{}-{:02}-{d:02}", 2025 + m / 12, m % 12 + 1));
                    order(&format!("O{index}"), monthly, arrears, &start_month, end.as_deref())
                })
                .collect()
        },
    )
}

/// 1 to 4 pools dated in 2025–2026.
fn arbitrary_pools() -> impl Strategy<Value = Vec<(NaiveDate, Money)>> {
    proptest::collection::vec((0i64..730, 1i64..20_000_00), 1..=4).prop_map(|pools| {
        let mut pools: Vec<_> =
            pools.into_iter().map(|(day, cents)| (date("2025-01-01") + chrono::Days::new(day as u64), Money::from_cents(cents))).collect();
        pools.sort_by_key(|p| p.0);
        pools
    })
}

fn balances(ledgers: &[OrderLedger], at: YearMonth) -> Vec<(Money, Money)> {
    ledgers.iter().map(|l| (l.current_due(at), l.arrears(at))).collect()
}

/// |share − P·w/W| < 1 cent, for every share of a prorated bucket.
fn within_a_cent_of_proportional(shares: &[i64], weights: &[i64]) -> bool {
    let pool: i128 = shares.iter().map(|&s| i128::from(s)).sum();
    let total_weight: i128 = weights.iter().map(|&w| i128::from(w)).sum();
    if total_weight == 0 {
        return pool == 0;
    }
    shares.iter().zip(weights).all(|(&share, &weight)| (i128::from(share) * total_weight - pool * i128::from(weight)).abs() < total_weight)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn pools_are_distributed_by_the_rule(mut ledgers in arbitrary_orders(), pools in arbitrary_pools()) {
        for (effective_date, amount) in pools {
            let at = YearMonth::of(effective_date);
            ledgers.sort_by(|a, b| a.order().id.cmp(&b.order().id));
            let before = balances(&ledgers, at);
            let distribution = apply_pool(&mut ledgers, effective_date, amount);
            let after = balances(&ledgers, at);

            // The parts add up to the pool.
            prop_assert_eq!(distribution.allocations.iter().map(|a| a.amount).sum::<Money>(), amount);
            // No order's current support for the month exceeds its monthly amount.
            for ledger in &ledgers {
                prop_assert!(ledger.current_paid(at) <= ledger.order().monthly_amount);
            }
            // Nothing to arrears while current support is owed; unapplied only when all is paid.
            let has = |bucket| distribution.allocations.iter().any(|a| a.bucket == bucket);
            if has(Bucket::Arrears) {
                prop_assert!(after.iter().all(|(current, _)| current.is_zero()));
            }
            if has(Bucket::Unapplied) {
                prop_assert!(after.iter().all(|(current, arrears)| current.is_zero() && arrears.is_zero()));
            }
            // Each prorated share is within a cent of its exact proportional share.
            let shares = |bucket| -> Vec<i64> {
                ledgers
                    .iter()
                    .map(|l| distribution.allocations.iter().filter(|a| a.bucket == bucket && a.order_id.as_ref() == Some(&l.order().id)).map(|a| a.amount.cents()).sum())
                    .collect()
            };
            let current_owed: Vec<i64> = before.iter().map(|(c, _)| c.cents()).collect();
            let arrears_owed: Vec<i64> = before.iter().map(|(_, a)| a.cents()).collect();
            if amount.cents() < current_owed.iter().sum::<i64>() {
                prop_assert!(within_a_cent_of_proportional(&shares(Bucket::Current), &current_owed));
            } else {
                prop_assert_eq!(shares(Bucket::Current), current_owed.clone());
                let rest = amount.cents() - current_owed.iter().sum::<i64>();
                if rest < arrears_owed.iter().sum::<i64>() {
                    prop_assert!(within_a_cent_of_proportional(&shares(Bucket::Arrears), &arrears_owed));
                } else {
                    prop_assert_eq!(shares(Bucket::Arrears), arrears_owed);
                }
            }
        }
    }

    #[test]
    fn two_pools_in_a_month_are_within_a_cent_of_one_pool_of_their_sum(
        ledgers in arbitrary_orders(),
        day in 0i64..700,
        first in 1i64..10_000_00,
        second in 1i64..10_000_00,
    ) {
        let effective_date = date("2025-01-01") + chrono::Days::new(day as u64);
        let mut split = ledgers.clone();
        let mut split_allocations = apply_pool(&mut split, effective_date, Money::from_cents(first)).allocations;
        split_allocations.extend(apply_pool(&mut split, effective_date, Money::from_cents(second)).allocations);
        let mut whole = ledgers.clone();
        let whole_allocations = apply_pool(&mut whole, effective_date, Money::from_cents(first + second)).allocations;
        let total = |allocations: &[Allocation], order: &OrderId, bucket| -> i64 {
            allocations.iter().filter(|a| a.order_id.as_ref() == Some(order) && a.bucket == bucket).map(|a| a.amount.cents()).sum()
        };
        for ledger in &ledgers {
            for bucket in [Bucket::Current, Bucket::Arrears] {
                let id = &ledger.order().id;
                prop_assert!((total(&split_allocations, id, bucket) - total(&whole_allocations, id, bucket)).abs() <= 1);
            }
        }
    }

    #[test]
    fn distributing_nothing_changes_nothing(mut ledgers in arbitrary_orders(), day in 0i64..700) {
        let at = YearMonth::of(date("2025-01-01") + chrono::Days::new(day as u64));
        let before = balances(&ledgers, at);
        prop_assert!(distribute_obligor(&mut ledgers, &[], &[]).is_empty());
        prop_assert_eq!(balances(&ledgers, at), before);
    }

    #[test]
    fn reversing_every_collection_of_a_pool_brings_each_row_to_zero(
        mut ledgers in arbitrary_orders(),
        amounts in proptest::collection::vec(1i64..3000_00, 1..=4),
        day in 0i64..700,
    ) {
        let effective_date = date("2025-01-01") + chrono::Days::new(day as u64);
        let pending: Vec<PendingCollection> = amounts
            .iter()
            .enumerate()
            .map(|(i, &cents)| PendingCollection { id: i as i64, amount: Money::from_cents(cents), effective_date })
            .collect();
        let pool = distribute_obligor(&mut ledgers, &pending, &[]).remove(0);
        let mut rows: Vec<PoolRow> = pool
            .distribution
            .allocations
            .iter()
            .map(|a| PoolRow { order_id: a.order_id.clone(), bucket: a.bucket, month: a.month, remaining: a.amount })
            .collect();
        for collection in &pending {
            let entries = reversal_entries(&rows, collection.amount);
            prop_assert_eq!(entries.iter().map(|e| e.amount).sum::<Money>(), -collection.amount);
            for entry in entries {
                let row = rows.iter_mut().find(|r| r.order_id == entry.order_id && r.bucket == entry.bucket && r.month == entry.month).unwrap();
                row.remaining += entry.amount;
                prop_assert!(!row.remaining.is_negative(), "never more from a row than it holds");
            }
        }
        prop_assert!(rows.iter().all(|r| r.remaining.is_zero()));
    }
}
