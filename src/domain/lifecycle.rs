//! When an order is projected to end (`order-lifecycle.md`): the child's 18th birthday, or
//! the 21st when the child continues education past high school; never when the child is
//! impaired. A projection is not an end: it tells the back office which orders to look at.

use chrono::{Months, NaiveDate};

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
