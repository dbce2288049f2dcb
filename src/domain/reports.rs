//! The arithmetic of the back office's reports: how late employers remit, and how old the
//! open suspense is. Plain functions over values.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::calendar::add_business_days;
use super::money::Money;

/// The business days an employer has from the pay date (`remittance-formats.md`).
pub const REMIT_WITHIN_BUSINESS_DAYS: u32 = 7;

/// One employer's late lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LateEmployer {
    pub employer_fein: String,
    pub lines: u64,
    pub amount: Money,
    /// Calendar days after the remit-by date, summed (for the average).
    pub days_late: u64,
}

impl LateEmployer {
    /// The average days late, to one decimal, as text.
    pub fn average_days_late(&self) -> String {
        let tenths = (self.days_late * 10 + self.lines / 2) / self.lines.max(1);
        format!("{}.{}", tenths / 10, tenths % 10)
    }
}

/// Days after the remit-by date (pay date + 7 business days) that a line was received; 0 when
/// it was not late.
pub fn days_late(pay_date: NaiveDate, received_on: NaiveDate) -> u64 {
    let remit_by = add_business_days(pay_date, REMIT_WITHIN_BUSINESS_DAYS);
    u64::try_from((received_on - remit_by).num_days()).unwrap_or(0)
}

/// Late lines (employer, pay date, received on, amount) grouped by employer, by FEIN.
pub fn late_by_employer(lines: impl IntoIterator<Item = (String, NaiveDate, NaiveDate, Money)>) -> Vec<LateEmployer> {
    let mut employers: BTreeMap<String, LateEmployer> = BTreeMap::new();
    for (fein, pay_date, received_on, amount) in lines {
        let entry = employers.entry(fein.clone()).or_insert(LateEmployer { employer_fein: fein, lines: 0, amount: Money::ZERO, days_late: 0 });
        entry.lines += 1;
        entry.amount += amount;
        entry.days_late += days_late(pay_date, received_on);
    }
    employers.into_values().collect()
}

/// The age buckets of open suspense, in days since the file was received.
pub const AGE_BUCKETS: [(&str, i64, i64); 4] = [("0-7", 0, 7), ("8-30", 8, 30), ("31-90", 31, 90), ("91+", 91, i64::MAX)];

/// Open suspense (day received, items, amount) in [`AGE_BUCKETS`] as of `today`: every bucket,
/// empty ones included, so the report always has the same rows.
pub fn suspense_by_age(today: NaiveDate, days: impl IntoIterator<Item = (NaiveDate, i64, Money)>) -> Vec<(&'static str, i64, Money)> {
    let mut buckets: Vec<(&'static str, i64, Money)> = AGE_BUCKETS.iter().map(|(name, _, _)| (*name, 0, Money::ZERO)).collect();
    for (received_on, items, amount) in days {
        let age = (today - received_on).num_days().max(0);
        let index = AGE_BUCKETS.iter().position(|(_, low, high)| (*low..=*high).contains(&age)).expect("the buckets cover every age");
        buckets[index].1 += items;
        buckets[index].2 += amount;
    }
    buckets
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn days_late_count_from_the_seventh_business_day() {
        // Friday 2026-11-13 + 7 business days (Veterans Day is on the 11th, before) = 2026-11-24.
        assert_eq!(days_late(d("2026-11-13"), d("2026-11-24")), 0);
        assert_eq!(days_late(d("2026-11-13"), d("2026-11-30")), 6);
        assert_eq!(days_late(d("2026-11-13"), d("2026-11-14")), 0, "early is not late");
    }

    #[test]
    fn late_lines_group_by_employer_with_their_average() {
        let m = |c| Money::from_cents(c);
        let grouped = late_by_employer([
            ("431234567".to_owned(), d("2026-11-13"), d("2026-11-30"), m(100_00)),
            ("431234567".to_owned(), d("2026-11-13"), d("2026-12-01"), m(50_00)),
            ("123456789".to_owned(), d("2026-11-13"), d("2026-11-25"), m(1_00)),
        ]);
        assert_eq!(grouped.len(), 2);
        assert_eq!((grouped[1].lines, grouped[1].amount, grouped[1].days_late), (2, m(150_00), 13));
        assert_eq!(grouped[1].average_days_late(), "6.5");
        assert_eq!(grouped[0].average_days_late(), "1.0");
    }

    #[test]
    fn suspense_falls_in_every_bucket_by_age() {
        let m = |c| Money::from_cents(c);
        let buckets = suspense_by_age(
            d("2026-12-31"),
            [(d("2026-12-31"), 1, m(1)), (d("2026-12-24"), 2, m(2)), (d("2026-12-23"), 1, m(4)), (d("2026-01-01"), 3, m(8))],
        );
        assert_eq!(buckets, [("0-7", 3, m(3)), ("8-30", 1, m(4)), ("31-90", 0, m(0)), ("91+", 3, m(8))]);
    }
}
