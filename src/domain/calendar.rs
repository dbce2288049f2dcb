//! Business days: weekdays that are not US federal holidays (`remittance-formats.md`).
//!
//! Used for the 7-business-day remittance deadline and, later, the 5-business-day bank
//! account validation.

use chrono::{Datelike, Days, NaiveDate, Weekday};

/// The `n`th given weekday of a month (n from 1).
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u8) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n).expect("every month has 4 of each weekday")
}

fn last_weekday(year: i32, month: u32, weekday: Weekday) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, 5).unwrap_or_else(|| nth_weekday(year, month, weekday, 4))
}

/// A fixed-date holiday on a Saturday is observed the Friday before, on a Sunday the Monday
/// after.
fn observed(date: NaiveDate) -> NaiveDate {
    match date.weekday() {
        Weekday::Sat => date.pred_opt().expect("a day before"),
        Weekday::Sun => date.succ_opt().expect("a day after"),
        _ => date,
    }
}

/// The federal holidays of `year` as observed (a New Year's Day on a Saturday is observed
/// on December 31 of the year before, so it is in that year's list, not this one's).
pub fn federal_holidays(year: i32) -> Vec<NaiveDate> {
    let fixed = |month, day| observed(NaiveDate::from_ymd_opt(year, month, day).expect("a real date"));
    let mut holidays = vec![
        fixed(1, 1),
        nth_weekday(year, 1, Weekday::Mon, 3),  // Martin Luther King Jr. Day
        nth_weekday(year, 2, Weekday::Mon, 3),  // Washington's Birthday
        last_weekday(year, 5, Weekday::Mon),    // Memorial Day
        fixed(6, 19),                           // Juneteenth
        fixed(7, 4),                            // Independence Day
        nth_weekday(year, 9, Weekday::Mon, 1),  // Labor Day
        nth_weekday(year, 10, Weekday::Mon, 2), // Columbus Day
        fixed(11, 11),                          // Veterans Day
        nth_weekday(year, 11, Weekday::Thu, 4), // Thanksgiving
        fixed(12, 25),                          // Christmas
    ];
    let next_new_year = observed(NaiveDate::from_ymd_opt(year + 1, 1, 1).expect("a real date"));
    if next_new_year.year() == year {
        holidays.push(next_new_year);
    }
    holidays.retain(|d| d.year() == year);
    holidays
}

pub fn is_federal_holiday(date: NaiveDate) -> bool {
    // Every line of a file asks about the same few days: the last year's list is kept per
    // thread rather than worked out again for each day asked (a cache of a pure function).
    thread_local! {
        static LAST_YEAR: std::cell::RefCell<Option<(i32, Vec<NaiveDate>)>> = const { std::cell::RefCell::new(None) };
    }
    LAST_YEAR.with_borrow_mut(|last| {
        let year = date.year();
        if last.as_ref().is_none_or(|(cached, _)| *cached != year) {
            *last = Some((year, federal_holidays(year)));
        }
        last.as_ref().is_some_and(|(_, holidays)| holidays.contains(&date))
    })
}

pub fn is_business_day(date: NaiveDate) -> bool {
    !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !is_federal_holiday(date)
}

/// Whether more than `limit` business days lie after `from`, up to and including `to`.
/// Stops counting as soon as the answer is known, so an old date costs no more than a
/// recent one.
pub fn more_than_business_days_between(from: NaiveDate, to: NaiveDate, limit: u32) -> bool {
    let mut count = 0;
    let mut day = from;
    while day < to {
        day = day.checked_add_days(Days::new(1)).expect("a day after");
        if is_business_day(day) {
            count += 1;
            if count > limit {
                return true;
            }
        }
    }
    false
}

/// The date `count` business days after `date`.
pub fn add_business_days(date: NaiveDate, count: u32) -> NaiveDate {
    let mut day = date;
    let mut left = count;
    while left > 0 {
        day = day.checked_add_days(Days::new(1)).expect("a day after");
        if is_business_day(day) {
            left -= 1;
        }
    }
    day
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn the_holidays_of_2026_as_observed() {
        let expected = [
            "2026-01-01",
            "2026-01-19",
            "2026-02-16",
            "2026-05-25",
            "2026-06-19",
            "2026-07-03",
            "2026-09-07",
            "2026-10-12",
            "2026-11-11",
            "2026-11-26",
            "2026-12-25",
        ];
        assert_eq!(federal_holidays(2026), expected.map(d));
    }

    #[test]
    fn saturday_holidays_move_to_friday_and_sunday_ones_to_monday() {
        // 2027: Jun 19 and Dec 25 are Saturdays, Jul 4 a Sunday; Jan 1 2028 is a Saturday,
        // observed on Friday Dec 31 2027.
        let holidays = federal_holidays(2027);
        for observed in ["2027-06-18", "2027-07-05", "2027-12-24", "2027-12-31"] {
            assert!(holidays.contains(&d(observed)), "{observed}");
        }
        assert!(!holidays.contains(&d("2027-12-25")));
        assert!(!federal_holidays(2028).contains(&d("2028-01-01")));
        assert_eq!(federal_holidays(2028).len(), 10, "2028's New Year's Day is observed in 2027");
        // 2028: Nov 11 is a Saturday → Friday Nov 10.
        assert!(is_federal_holiday(d("2028-11-10")));
    }

    #[test]
    fn business_days_skip_weekends_and_holidays() {
        assert!(!is_business_day(d("2026-11-21"))); // Saturday
        assert!(!is_business_day(d("2026-11-26"))); // Thanksgiving
        assert!(is_business_day(d("2026-11-27")));
        // From Friday Nov 20, 2026: Mon 23, Tue 24, Wed 25, (Thu 26 holiday), Fri 27 = 4 days.
        assert_eq!(add_business_days(d("2026-11-20"), 4), d("2026-11-27"));
        assert_eq!(add_business_days(d("2026-11-20"), 5), d("2026-11-30"));
        // Pay date Nov 13: 7 business days later is Nov 24; a file received on Nov 25 is late.
        assert!(!more_than_business_days_between(d("2026-11-13"), d("2026-11-24"), 7));
        assert!(more_than_business_days_between(d("2026-11-13"), d("2026-11-25"), 7));
        assert!(more_than_business_days_between(d("2016-01-01"), d("2026-11-25"), 7));
        assert!(!more_than_business_days_between(d("2026-11-25"), d("2026-11-13"), 7));
    }
}
