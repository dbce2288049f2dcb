//! Unapplied credit worked by hand (`order-lifecycle.md`, "Unapplied credit"): refunded to
//! the obligor, or applied to one of the obligor's orders, never beyond what is due.
//!
//! Credit lives in the UNAPPLIED rows of the pools that left it. Acting on it moves money
//! between a pool's rows (UNAPPLIED down, REFUNDED or the order's row up), oldest pool first,
//! so every pool's rows keep adding up to its amount and a later reversal of one of its
//! collections still finds the money to take back.

use super::distribution::{Allocation, Bucket, OrderLedger};
use super::money::Money;
use super::month::YearMonth;

/// Unapplied credit one pool still holds (reversals and earlier actions netted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldCredit {
    pub pool_id: i64,
    pub remaining: Money,
}

/// Where credit goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreditUse {
    /// Back to the obligor.
    Refund,
    /// To an order's current support for one month.
    Current(YearMonth),
    /// To an order's arrears.
    Arrears,
}

/// Why credit cannot be moved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreditRefusal {
    /// More than the obligor's credit left.
    MoreThanLeft { left: Money },
    /// More than the order has due there.
    MoreThanDue { due: Money },
    /// The month is not one of the order's due months up to this one.
    MonthNotDue,
}

/// What the order has due for `target` as of `this_month`: the month's current support left
/// (a due month no later than this one), or the arrears owed before this month.
pub fn due_for(ledger: &OrderLedger, target: &CreditUse, this_month: YearMonth) -> Result<Money, CreditRefusal> {
    match target {
        CreditUse::Refund => Ok(Money::from_cents(i64::MAX)),
        CreditUse::Current(month) if *month > this_month || !ledger.order().is_due(*month) => Err(CreditRefusal::MonthNotDue),
        CreditUse::Current(month) => Ok(ledger.current_due(*month)),
        CreditUse::Arrears => Ok(ledger.arrears(this_month)),
    }
}

/// The entries that move `amount` of credit to `target`, taken from the oldest pools first,
/// by pool: each pool's UNAPPLIED row down, and the target's row up by the same amount.
pub fn credit_entries(
    held: &[HeldCredit],
    amount: Money,
    target: &CreditUse,
    order: Option<&OrderLedger>,
    this_month: YearMonth,
) -> Result<Vec<(i64, Vec<Allocation>)>, CreditRefusal> {
    assert!(amount.is_positive(), "credit moved must be positive: {amount}");
    let left: Money = held.iter().map(|h| h.remaining.max(Money::ZERO)).sum();
    if amount > left {
        return Err(CreditRefusal::MoreThanLeft { left });
    }
    let (order_id, bucket, month) = match (target, order) {
        (CreditUse::Refund, _) => (None, Bucket::Refunded, None),
        (CreditUse::Current(month), Some(ledger)) => (Some(ledger.order().id.clone()), Bucket::Current, Some(*month)),
        (CreditUse::Arrears, Some(ledger)) => (Some(ledger.order().id.clone()), Bucket::Arrears, None),
        (_, None) => panic!("credit applied to an order needs the order's ledger"),
    };
    if let Some(ledger) = order {
        let due = due_for(ledger, target, this_month)?;
        if amount > due {
            return Err(CreditRefusal::MoreThanDue { due });
        }
    }
    let mut oldest_first: Vec<&HeldCredit> = held.iter().filter(|h| h.remaining.is_positive()).collect();
    oldest_first.sort_by_key(|h| h.pool_id);
    let mut to_move = amount;
    let mut moves = Vec::new();
    for pool in oldest_first {
        if to_move.is_zero() {
            break;
        }
        let take = pool.remaining.min(to_move);
        to_move -= take;
        let from = Allocation { order_id: None, bucket: Bucket::Unapplied, month: None, amount: -take, step: None };
        let to = Allocation { order_id: order_id.clone(), bucket, month, amount: take, step: None };
        moves.push((pool.pool_id, vec![from, to]));
    }
    assert!(to_move.is_zero(), "credit left covers the amount");
    assert_eq!(moves.iter().flat_map(|(_, entries)| entries).map(|e| e.amount).sum::<Money>(), Money::ZERO);
    Ok(moves)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::distribution::Order;
    use crate::domain::ids::{CaseNumber, OrderId};

    fn money(cents: i64) -> Money {
        Money::from_cents(cents)
    }

    fn ledger() -> OrderLedger {
        let month = YearMonth::parse("2026-09").unwrap();
        let mut ledger = OrderLedger::new(Order {
            id: OrderId::parse("A").unwrap(),
            case_number: CaseNumber::parse("12345678").unwrap(),
            monthly_amount: money(300_00),
            start_month: month,
            opening_arrears: money(100_00),
            end_date: None,
        });
        ledger.record(Bucket::Current, Some(month), money(250_00));
        ledger
    }

    fn held() -> Vec<HeldCredit> {
        vec![HeldCredit { pool_id: 9, remaining: money(70_00) }, HeldCredit { pool_id: 4, remaining: money(30_00) }]
    }

    #[test]
    fn credit_is_taken_from_the_oldest_pool_first_and_each_pool_stays_whole() {
        let this_month = YearMonth::parse("2026-10").unwrap();
        let moves = credit_entries(&held(), money(50_00), &CreditUse::Refund, None, this_month).unwrap();
        assert_eq!(moves.iter().map(|(pool, _)| *pool).collect::<Vec<_>>(), [4, 9]);
        assert_eq!(moves[0].1[0].amount, money(-30_00));
        assert_eq!(moves[1].1[1], Allocation { order_id: None, bucket: Bucket::Refunded, month: None, amount: money(20_00), step: None });
        for (_, entries) in &moves {
            assert!(entries.iter().map(|e| e.amount).sum::<Money>().is_zero());
        }
    }

    #[test]
    fn credit_never_moves_more_than_is_left_or_more_than_is_due() {
        let this_month = YearMonth::parse("2026-10").unwrap();
        let september = YearMonth::parse("2026-09").unwrap();
        assert_eq!(
            credit_entries(&held(), money(100_01), &CreditUse::Refund, None, this_month),
            Err(CreditRefusal::MoreThanLeft { left: money(100_00) })
        );
        // September: 300.00 due, 250.00 paid.
        assert_eq!(
            credit_entries(&held(), money(50_01), &CreditUse::Current(september), Some(&ledger()), this_month),
            Err(CreditRefusal::MoreThanDue { due: money(50_00) })
        );
        // Arrears before October: 100.00 opening + September's 50.00 unpaid.
        assert_eq!(due_for(&ledger(), &CreditUse::Arrears, this_month), Ok(money(150_00)));
        let moves = credit_entries(&held(), money(50_00), &CreditUse::Current(september), Some(&ledger()), this_month).unwrap();
        assert_eq!(moves[0].1[1].bucket, Bucket::Current);
        // A month not yet come, or before the order's start, is not due.
        for month in ["2026-11", "2026-08"] {
            let month = YearMonth::parse(month).unwrap();
            assert_eq!(due_for(&ledger(), &CreditUse::Current(month), this_month), Err(CreditRefusal::MonthNotDue));
        }
    }
}
