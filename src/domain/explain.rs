//! Explaining every cent: where a collection went (its pool, each row and the rule's step
//! that wrote it, the orders' balances before and after, what later moved it), and an order's
//! statement over a date range. Pure functions over the stored rows; every figure they print
//! adds up to the amounts.

use chrono::NaiveDate;

use super::apportion::apportion;
use super::distribution::{Bucket, Order, OrderLedger, RuleStep};
use super::ids::OrderId;
use super::lifecycle::EndReason;
use super::money::Money;
use super::month::YearMonth;

/// What wrote an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// The distribution rule, in the pool's own run.
    Distribution,
    /// A reversal of one of the pool's collections.
    Reversal,
    /// An end recorded after the money: current support moved into a correction pool.
    Correction,
    /// A later run applying a correction pool again (rows of the original pool).
    CorrectionApplied,
    /// Unapplied credit refunded or applied by hand.
    Credit,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Distribution => "DISTRIBUTION",
            EntryKind::Reversal => "REVERSAL",
            EntryKind::Correction => "CORRECTION",
            EntryKind::CorrectionApplied => "CORRECTION_APPLIED",
            EntryKind::Credit => "CREDIT",
        }
    }
}

/// One stored entry about a pool's money, or an order's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub allocation_id: i64,
    pub run_id: i64,
    pub pool_id: i64,
    pub kind: EntryKind,
    /// The day it was written (its run's day).
    pub written_on: NaiveDate,
    /// The pool's effective date.
    pub effective_date: NaiveDate,
    pub order_id: Option<OrderId>,
    pub bucket: Bucket,
    pub month: Option<YearMonth>,
    pub amount: Money,
    pub step: Option<RuleStep>,
    /// The collection a reversal entry reverses.
    pub reversal_of: Option<i64>,
    /// The end a correction entry follows from.
    pub end_id: Option<i64>,
    /// The credit action that wrote it.
    pub credit_id: Option<i64>,
}

/// An order's balances at one month: its current support still due, and its arrears.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balances {
    pub current_due: Money,
    pub arrears: Money,
}

/// One order's balances around a pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OrderBalances {
    pub order_id: OrderId,
    pub before: Balances,
    pub after: Balances,
}

/// A row the pool's distribution wrote, with the collection's share of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExplainedRow {
    pub entry: Entry,
    /// This collection's part of the row, in proportion to its part of the pool.
    pub share: Money,
}

/// Where a distributed collection went.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolExplanation {
    pub pool_amount: Money,
    pub rows: Vec<ExplainedRow>,
    pub balances: Vec<OrderBalances>,
    /// Entries written later about the pool's money: reversals, corrections, correction
    /// pools applied again, credit actions.
    pub later: Vec<Entry>,
    /// What the pool's rows hold now: its amount less what reversals took back.
    pub pool_holds: Money,
}

/// An order with every entry of its own: `(allocation id, bucket, month, amount)`.
pub type OrderRows = (Order, Vec<(i64, Bucket, Option<YearMonth>, Money)>);

/// Explains a pool: `entries` are all of its rows in the order written; `orders` the ledgers
/// of the orders it touched with every entry of theirs (`(allocation_id, bucket, month,
/// amount)`), from which the balances before and after its distribution are derived.
pub fn explain_pool(
    pool_run_id: i64,
    pool_amount: Money,
    collection_amount: Money,
    entries: Vec<Entry>,
    orders: &[OrderRows],
) -> PoolExplanation {
    let (own, later): (Vec<Entry>, Vec<Entry>) =
        entries.into_iter().partition(|e| e.run_id == pool_run_id && e.kind == EntryKind::Distribution);
    let weights: Vec<Money> = own.iter().map(|e| e.amount).collect();
    assert_eq!(weights.iter().sum::<Money>(), pool_amount, "a pool's distribution adds up to the pool");
    let shares = apportion(collection_amount, &weights);
    let first = own.iter().map(|e| e.allocation_id).min().unwrap_or(i64::MAX);
    let last = own.iter().map(|e| e.allocation_id).max().unwrap_or(i64::MIN);
    let month = own.first().map(|e| YearMonth::of(e.effective_date));
    let balances = match month {
        None => Vec::new(),
        Some(month) => orders
            .iter()
            .map(|(order, rows)| OrderBalances {
                order_id: order.id.clone(),
                before: balances_through(order, rows, first - 1, month),
                after: balances_through(order, rows, last, month),
            })
            .collect(),
    };
    let pool_holds = own.iter().chain(&later).map(|e| e.amount).sum();
    let rows = own.into_iter().zip(shares).map(|(entry, share)| ExplainedRow { entry, share }).collect();
    PoolExplanation { pool_amount, rows, balances, later, pool_holds }
}

/// An order's balances at `month` from its entries written up to `through` (an allocation id).
fn balances_through(order: &Order, rows: &[(i64, Bucket, Option<YearMonth>, Money)], through: i64, month: YearMonth) -> Balances {
    let mut ledger = OrderLedger::new(order.clone());
    for (_, bucket, row_month, amount) in rows.iter().filter(|(id, ..)| *id <= through) {
        ledger.record(*bucket, *row_month, *amount);
    }
    Balances { current_due: ledger.current_due(month), arrears: ledger.arrears(month) }
}

/// An end as the statement shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndFact {
    pub end_id: i64,
    pub reason: EndReason,
    pub end_date: NaiveDate,
    pub recorded_by: String,
    pub recorded_on: NaiveDate,
    pub withdrawn: Option<(String, NaiveDate)>,
}

/// What a statement line is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StatementItem {
    /// A month's support fell due.
    Accrual(YearMonth),
    /// Money allocated to the order (negative: taken back).
    Entry(Entry),
    /// An end was recorded.
    EndRecorded(EndFact),
    /// An end was withdrawn.
    EndWithdrawn(EndFact),
}

/// One line: its date, what it is, its effect on what is owed, and the balance after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatementLine {
    pub date: NaiveDate,
    pub item: StatementItem,
    /// + support fallen due, − money allocated, + money taken back; 0 for an end.
    pub change: Money,
    pub balance: Money,
}

/// An order's statement: support owed at the start, the lines, and owed at the end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Statement {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub opening: Money,
    pub lines: Vec<StatementLine>,
    pub closing: Money,
    pub accrued: Money,
    pub allocated: Money,
}

/// The day an entry counts on an order's statement: its pool's date when the rule wrote it
/// (the money's date), the day it was written for what came later.
pub fn statement_date(entry: &Entry) -> NaiveDate {
    match entry.kind {
        EntryKind::Distribution => entry.effective_date,
        _ => entry.written_on,
    }
}

/// Builds an order's statement for `from..=to`: owed = opening arrears + support fallen due
/// (on the first day of each due month) − money allocated to the order.
pub fn statement(order: &Order, entries: &[Entry], ends: &[EndFact], from: NaiveDate, to: NaiveDate) -> Statement {
    assert!(from <= to, "a statement's range runs forward");
    let mut items: Vec<(NaiveDate, u8, i64, StatementItem, Money)> = Vec::new();
    let last_month = YearMonth::of(to);
    let mut month = order.start_month;
    while month <= last_month && order.is_due(month) {
        items.push((month.first_day(), 0, 0, StatementItem::Accrual(month), order.monthly_amount));
        month = month.next();
    }
    for entry in entries.iter().filter(|e| e.order_id.as_ref() == Some(&order.id)) {
        items.push((statement_date(entry), 1, entry.allocation_id, StatementItem::Entry(entry.clone()), -entry.amount));
    }
    for end in ends {
        items.push((end.recorded_on, 2, end.end_id, StatementItem::EndRecorded(end.clone()), Money::ZERO));
        if let Some((_, on)) = &end.withdrawn {
            items.push((*on, 3, end.end_id, StatementItem::EndWithdrawn(end.clone()), Money::ZERO));
        }
    }
    items.sort_by_key(|item| (item.0, item.1, item.2));

    let mut opening = order.opening_arrears;
    let mut lines = Vec::new();
    let (mut accrued, mut allocated) = (Money::ZERO, Money::ZERO);
    for (date, _, _, item, change) in items {
        if date < from {
            opening += change;
            continue;
        }
        if date > to {
            break;
        }
        match item {
            StatementItem::Accrual(_) => accrued += change,
            StatementItem::Entry(_) => allocated -= change,
            _ => {}
        }
        let balance = lines.last().map_or(opening, |l: &StatementLine| l.balance) + change;
        lines.push(StatementLine { date, item, change, balance });
    }
    let closing = lines.last().map_or(opening, |l| l.balance);
    assert_eq!(opening + accrued - allocated, closing, "a statement adds up");
    Statement { from, to, opening, lines, closing, accrued, allocated }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::CaseNumber;

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn m(text: &str) -> YearMonth {
        YearMonth::parse(text).unwrap()
    }

    fn order(end: Option<&str>) -> Order {
        Order {
            id: OrderId::parse("A").unwrap(),
            case_number: CaseNumber::parse("12345678").unwrap(),
            monthly_amount: Money::from_cents(300_00),
            start_month: m("2026-08"),
            opening_arrears: Money::from_cents(100_00),
            end_date: end.map(d),
        }
    }

    fn entry(id: i64, run: i64, kind: EntryKind, bucket: Bucket, month: Option<&str>, cents: i64, step: Option<RuleStep>) -> Entry {
        Entry {
            allocation_id: id,
            run_id: run,
            pool_id: 1,
            kind,
            written_on: d("2026-10-20"),
            effective_date: d("2026-09-15"),
            order_id: bucket.is_order_money().then(|| OrderId::parse("A").unwrap()),
            bucket,
            month: month.map(m),
            amount: Money::from_cents(cents),
            step,
            reversal_of: None,
            end_id: None,
            credit_id: None,
        }
    }

    #[test]
    fn a_pool_is_explained_with_shares_that_add_up_and_balances_around_it() {
        let entries = vec![
            entry(10, 1, EntryKind::Distribution, Bucket::Current, Some("2026-09"), 300_00, Some(RuleStep::CurrentInFull)),
            entry(11, 1, EntryKind::Distribution, Bucket::Arrears, None, 100_00, Some(RuleStep::ArrearsInFull)),
            entry(12, 1, EntryKind::Distribution, Bucket::Unapplied, None, 100_00, Some(RuleStep::Unapplied)),
            entry(20, 2, EntryKind::Reversal, Bucket::Current, Some("2026-09"), -60_00, None),
        ];
        let ledger_rows = vec![(10, Bucket::Current, Some(m("2026-09")), Money::from_cents(300_00)), (11, Bucket::Arrears, None, Money::from_cents(100_00))];
        let explained = explain_pool(1, Money::from_cents(500_00), Money::from_cents(200_00), entries, &[(order(None), ledger_rows)]);
        assert_eq!(explained.rows.iter().map(|r| r.share.cents()).collect::<Vec<_>>(), [120_00, 40_00, 40_00]);
        assert_eq!(explained.later.len(), 1);
        assert_eq!(explained.pool_holds, Money::from_cents(440_00));
        let balances = &explained.balances[0];
        // Before: August's 300.00 unpaid plus 100.00 opening arrears; September due in full.
        assert_eq!(balances.before, Balances { current_due: Money::from_cents(300_00), arrears: Money::from_cents(400_00) });
        assert_eq!(balances.after, Balances { current_due: Money::ZERO, arrears: Money::from_cents(300_00) });
    }

    #[test]
    fn a_statement_adds_up_and_shows_ends_and_what_was_taken_back() {
        let paid = entry(10, 1, EntryKind::Distribution, Bucket::Current, Some("2026-09"), 300_00, Some(RuleStep::CurrentInFull));
        let taken_back = Entry { kind: EntryKind::Correction, ..entry(11, 2, EntryKind::Correction, Bucket::Current, Some("2026-09"), -300_00, None) };
        let end = EndFact {
            end_id: 1,
            reason: EndReason::ChildMarried,
            end_date: d("2026-08-20"),
            recorded_by: "clerk".into(),
            recorded_on: d("2026-10-20"),
            withdrawn: None,
        };
        let statement = statement(&order(Some("2026-08-20")), &[paid, taken_back], &[end], d("2026-09-01"), d("2026-12-31"));
        // Opening: 100.00 arrears + August's 300.00 (September on is not due: the order ended).
        assert_eq!(statement.opening, Money::from_cents(400_00));
        assert_eq!(statement.accrued, Money::ZERO);
        assert_eq!(statement.allocated, Money::ZERO);
        assert_eq!(statement.lines.len(), 3);
        assert_eq!(statement.lines[0].balance, Money::from_cents(100_00));
        assert_eq!(statement.closing, Money::from_cents(400_00));
        assert!(matches!(statement.lines[2].item, StatementItem::EndRecorded(_)));
    }
}
