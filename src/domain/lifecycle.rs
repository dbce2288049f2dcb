//! When an order is projected to end (`order-lifecycle.md`): the child's 18th birthday, or
//! the 21st when the child continues education past high school; never when the child is
//! impaired. A projection is not an end: it tells the back office which orders to look at.
//!
//! Ends themselves: the reasons, which end counts, when one may be recorded, and the
//! corrections an end recorded after the money makes.

use std::collections::BTreeMap;

use chrono::{Months, NaiveDate};

use super::distribution::{Allocation, Bucket, Order};
use super::ids::OrderId;
use super::money::Money;
use super::month::YearMonth;

/// Why an order is projected to end when it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndBasis {
    /// The child turns 18 (and does not continue education).
    Age18,
    /// The child turns 21 (continuing education past high school).
    Age21,
}

/// The projected end of support for a child born on `birth`: `None` when the child is
/// impaired. Unknown flags count as no. A 29 February birthday falls on 28 February.
pub fn projected_end(birth: NaiveDate, continuing_education: bool, impaired: bool) -> Option<(NaiveDate, EndBasis)> {
    if impaired {
        return None;
    }
    let (years, basis) = if continuing_education { (21, EndBasis::Age21) } else { (18, EndBasis::Age18) };
    birth.checked_add_months(Months::new(12 * years)).map(|day| (day, basis))
}

/// The earliest birth date whose 18th birthday is after `today`: children born on or before
/// the day before it may have an order due to end (the store's first filter).
pub fn born_on_or_before_for_age_18(today: NaiveDate) -> NaiveDate {
    today.checked_sub_months(Months::new(12 * 18)).expect("a date 18 years back is representable")
}


/// Why an order ended (`order-lifecycle.md`, "End of a support order"), or that the case
/// registry's import set its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EndReason {
    ChildMarried,
    ChildDied,
    Military,
    SelfSupporting,
    Age18,
    Age21,
    /// Not recorded by the back office: a registry import set or moved `end_date` earlier.
    RegistryImport,
}

impl EndReason {
    /// The six reasons the back office records; the registry's is not one of them.
    pub const RECORDED: [EndReason; 6] = [
        EndReason::ChildMarried,
        EndReason::ChildDied,
        EndReason::Military,
        EndReason::SelfSupporting,
        EndReason::Age18,
        EndReason::Age21,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::ChildMarried => "CHILD_MARRIED",
            EndReason::ChildDied => "CHILD_DIED",
            EndReason::Military => "MILITARY",
            EndReason::SelfSupporting => "SELF_SUPPORTING",
            EndReason::Age18 => "AGE_18",
            EndReason::Age21 => "AGE_21",
            EndReason::RegistryImport => "REGISTRY_IMPORT",
        }
    }

    pub fn parse(text: &str) -> Option<EndReason> {
        EndReason::RECORDED.into_iter().chain([EndReason::RegistryImport]).find(|reason| reason.as_str() == text)
    }
}

/// The end that counts: the earlier of the registry's `end_date` and the back office's
/// (not withdrawn) end event.
pub fn effective_end(registry_end: Option<NaiveDate>, event_end: Option<NaiveDate>) -> Option<NaiveDate> {
    match (registry_end, event_end) {
        (Some(registry), Some(event)) => Some(registry.min(event)),
        (registry, event) => registry.or(event),
    }
}

/// Why an end event cannot be recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndRefusal {
    /// The date is before the order's first month.
    BeforeStart(YearMonth),
    /// An end event is recorded and not withdrawn: withdraw it first.
    AlreadyEnded(NaiveDate),
    /// The registry ends the order on or before that date already.
    EndedByRegistry(NaiveDate),
}

/// Whether an end event dated `date` may be recorded against `order`.
pub fn may_end(order: &Order, registry_end: Option<NaiveDate>, active_event: Option<NaiveDate>, date: NaiveDate) -> Result<(), EndRefusal> {
    if YearMonth::of(date) < order.start_month {
        return Err(EndRefusal::BeforeStart(order.start_month));
    }
    if let Some(ended) = active_event {
        return Err(EndRefusal::AlreadyEnded(ended));
    }
    match registry_end {
        Some(ended) if ended <= date => Err(EndRefusal::EndedByRegistry(ended)),
        _ => Ok(()),
    }
}

/// Current support an order still holds from one pool for one month (reversals and earlier
/// corrections netted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldCurrent {
    pub pool_id: i64,
    pub month: YearMonth,
    pub remaining: Money,
}

/// What an end recorded after the money writes in one original pool: the negatives of the
/// order's current support for months after the end month, and the freed total in the
/// pool's CORRECTION row (its correction pool), so the pool's rows still add up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolCorrection {
    pub pool_id: i64,
    pub freed: Money,
    pub entries: Vec<Allocation>,
}

/// The corrections an end dated `end_date` makes to `order`'s current support
/// (`order-lifecycle.md`, "An end recorded after the money"). Arrears are never moved.
pub fn end_corrections(order: &OrderId, end_date: NaiveDate, held: &[HeldCurrent]) -> Vec<PoolCorrection> {
    let end_month = YearMonth::of(end_date);
    let mut by_pool: BTreeMap<i64, Vec<&HeldCurrent>> = BTreeMap::new();
    for row in held.iter().filter(|row| row.month > end_month && row.remaining.is_positive()) {
        by_pool.entry(row.pool_id).or_default().push(row);
    }
    by_pool
        .into_iter()
        .map(|(pool_id, mut rows)| {
            rows.sort_by_key(|row| row.month);
            let freed: Money = rows.iter().map(|row| row.remaining).sum();
            let mut entries: Vec<Allocation> = rows
                .iter()
                .map(|row| Allocation {
                    order_id: Some(order.clone()),
                    bucket: Bucket::Current,
                    month: Some(row.month),
                    amount: -row.remaining,
                    step: None,
                })
                .collect();
            entries.push(Allocation { order_id: None, bucket: Bucket::Correction, month: None, amount: freed, step: None });
            assert!(entries.iter().map(|e| e.amount).sum::<Money>().is_zero(), "a correction moves money within its pool");
            PoolCorrection { pool_id, freed, entries }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn support_is_projected_to_end_at_18_at_21_with_education_and_never_when_impaired() {
        assert_eq!(projected_end(d("2008-12-03"), false, false), Some((d("2026-12-03"), EndBasis::Age18)));
        assert_eq!(projected_end(d("2008-12-03"), true, false), Some((d("2029-12-03"), EndBasis::Age21)));
        assert_eq!(projected_end(d("2008-12-03"), true, true), None);
        assert_eq!(projected_end(d("2008-02-29"), false, false), Some((d("2026-02-28"), EndBasis::Age18)));
        assert_eq!(born_on_or_before_for_age_18(d("2026-12-03")), d("2008-12-03"));
    }
}
