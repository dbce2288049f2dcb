//! Reviews of an order (`order-lifecycle.md`): a parent may ask for one every 3 years; within
//! 3 years of the last review (or of the order's start) a request must state its reason.

use chrono::{Months, NaiveDate};

/// How long after a review (or the order's start) a request needs no reason.
pub const REVIEW_INTERVAL_MONTHS: u32 = 36;

/// The day from which a request needs no reason: 3 years after the last review, or after the
/// order's start when it was never reviewed (a 29 February anchor gives 28 February).
pub fn free_from(order_start: NaiveDate, last_review: Option<NaiveDate>) -> NaiveDate {
    let anchor = last_review.map_or(order_start, |last| last.max(order_start));
    anchor.checked_add_months(Months::new(REVIEW_INTERVAL_MONTHS)).expect("a date 3 years on is representable")
}

/// Whether a request made on `requested_on`, with `reason` (empty when none), is accepted; a
/// refusal carries the day from which none is needed.
pub fn decide(order_start: NaiveDate, last_review: Option<NaiveDate>, requested_on: NaiveDate, reason: &str) -> Result<(), NaiveDate> {
    let free = free_from(order_start, last_review);
    if requested_on >= free || !reason.trim().is_empty() {
        Ok(())
    } else {
        Err(free)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_request_within_three_years_needs_a_reason_and_is_told_from_when_it_does_not() {
        let start = d("2024-03-01");
        assert_eq!(decide(start, None, d("2026-12-01"), ""), Err(d("2027-03-01")));
        assert_eq!(decide(start, None, d("2026-12-01"), "  "), Err(d("2027-03-01")), "blank is no reason");
        assert_eq!(decide(start, None, d("2026-12-01"), "lost my job"), Ok(()));
        assert_eq!(decide(start, None, d("2027-03-01"), ""), Ok(()), "the day itself needs none");
        // The last review restarts the 3 years.
        assert_eq!(decide(start, Some(d("2027-06-15")), d("2028-01-01"), ""), Err(d("2030-06-15")));
        assert_eq!(free_from(d("2024-02-29"), None), d("2027-02-28"));
    }
}
