//! Calendar months (`YYYY-MM`), the unit current support accrues in.

use chrono::{Datelike, NaiveDate};
use std::fmt;

/// A calendar month. Ordered chronologically.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct YearMonth {
    year: i32,
    month: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the month is not written YYYY-MM")]
pub struct MonthError(pub String);

impl YearMonth {
    pub fn new(year: i32, month: u32) -> Option<YearMonth> {
        ((1..=12).contains(&month) && (1..=9999).contains(&year)).then_some(YearMonth { year, month })
    }

    pub fn of(date: NaiveDate) -> YearMonth {
        YearMonth { year: date.year(), month: date.month() }
    }

    /// Parses exactly `YYYY-MM`.
    pub fn parse(text: &str) -> Result<YearMonth, MonthError> {
        let error = || MonthError(super::excerpt(text));
        let bytes = text.as_bytes();
        if bytes.len() != 7 || bytes[4] != b'-' {
            return Err(error());
        }
        let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let (year, month) = (&text[..4], &text[5..]);
        if !all_digits(year) || !all_digits(month) {
            return Err(error());
        }
        YearMonth::new(year.parse().map_err(|_| error())?, month.parse().map_err(|_| error())?).ok_or_else(error)
    }

    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a valid month has a first day")
    }

    pub fn year(self) -> i32 {
        self.year
    }

    pub fn month(self) -> u32 {
        self.month
    }

    /// Months since year 0, for counting spans.
    fn ordinal(self) -> i64 {
        i64::from(self.year) * 12 + i64::from(self.month) - 1
    }

    /// The number of months from `self` to `later`, inclusive of both; 0 when `later` is earlier.
    pub fn months_through(self, later: YearMonth) -> i64 {
        (later.ordinal() - self.ordinal() + 1).max(0)
    }

    pub fn previous(self) -> YearMonth {
        if self.month == 1 {
            YearMonth { year: self.year - 1, month: 12 }
        } else {
            YearMonth { year: self.year, month: self.month - 1 }
        }
    }

    pub fn next(self) -> YearMonth {
        if self.month == 12 {
            YearMonth { year: self.year + 1, month: 1 }
        } else {
            YearMonth { year: self.year, month: self.month + 1 }
        }
    }
}

impl fmt::Display for YearMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// Parses exactly `YYYY-MM-DD`, a real calendar date.
///
/// Read digit by digit rather than through chrono's format strings: every remittance line's
/// pay date comes through here, and interpreting `"%Y-%m-%d"` each time showed in a file's
/// profile.
pub fn parse_iso_date(text: &str) -> Option<NaiveDate> {
    let bytes = text.as_bytes();
    let shape_ok = bytes.len() == 10
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes.iter().enumerate().all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
    if !shape_ok {
        return None;
    }
    let number = |digits: &[u8]| digits.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
    let year = i32::try_from(number(&bytes[..4])).ok()?;
    NaiveDate::from_ymd_opt(year, number(&bytes[5..7]), number(&bytes[8..]))
}

/// `date` as `YYYY-MM-DD`, as its `Display` writes it, without the formatting machinery: a
/// file's writer stores two or three dates for each line.
pub fn iso_date_text(date: NaiveDate) -> String {
    let (year, month, day) = (date.year(), date.month(), date.day());
    if !(0..=9999).contains(&year) {
        return date.to_string(); // a sign or a fifth digit: chrono's own spelling
    }
    let mut text = String::with_capacity(10);
    for (value, digits) in [(year as u32, 4), (month, 2), (day, 2)] {
        if !text.is_empty() {
            text.push('-');
        }
        for place in (0..digits).rev() {
            text.push(char::from(b'0' + (value / 10u32.pow(place) % 10) as u8));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_orders_months() {
        let nov = YearMonth::parse("2026-11").unwrap();
        assert_eq!(nov.to_string(), "2026-11");
        assert!(YearMonth::parse("2026-13").is_err());
        assert!(YearMonth::parse("2026-1").is_err());
        assert!(YearMonth::parse("26-11").is_err());
        assert!(YearMonth::parse("2026-00").is_err());
        let jan = YearMonth::parse("2027-01").unwrap();
        assert!(nov < jan);
        assert_eq!(jan.previous().previous(), nov);
        assert_eq!(nov.months_through(jan), 3);
        assert_eq!(jan.months_through(nov), 0);
    }

    #[test]
    fn writes_dates_as_chrono_displays_them() {
        for (y, m, d) in [(2026, 11, 13), (1, 1, 1), (0, 12, 31), (9999, 12, 31), (10000, 1, 1), (-5, 3, 4), (2024, 2, 29)] {
            let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(iso_date_text(date), date.to_string());
        }
    }

    #[test]
    fn parses_only_real_iso_dates() {
        assert_eq!(parse_iso_date("2026-11-13"), NaiveDate::from_ymd_opt(2026, 11, 13));
        assert_eq!(parse_iso_date("0001-01-01"), NaiveDate::from_ymd_opt(1, 1, 1));
        assert_eq!(parse_iso_date("2024-02-29"), NaiveDate::from_ymd_opt(2024, 2, 29));
        assert!(parse_iso_date("2026-13-01").is_none());
        assert!(parse_iso_date("2026-00-10").is_none());
        assert!(parse_iso_date("2026-04-31").is_none());
        assert!(parse_iso_date("2026-04-00").is_none());
        assert!(parse_iso_date("2026-04-1a").is_none());
        assert!(parse_iso_date("2026-04-011").is_none());
        assert!(parse_iso_date("2026-02-29").is_none());
        assert!(parse_iso_date("2026-2-09").is_none());
        assert!(parse_iso_date("+2026-02-09").is_none());
    }
}
