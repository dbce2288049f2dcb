//! Money as a whole number of cents.
//!
//! Every amount in the core is a [`Money`]: an `i64` count of cents, never a float. It is
//! built from text only through [`Money::parse`] (at most 2 decimal places, no exponent, no
//! thousands separators), and arithmetic is checked: an overflow is a bug, so it panics
//! rather than wrapping silently (TigerBeetle's "assert, don't guess").

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};
use std::str::FromStr;

use super::excerpt;

/// An amount of money in cents. Negative amounts exist only for reversal entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Money(i64);

/// Why a decimal string is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("the amount is empty")]
    Empty,
    // The messages never repeat the value: an amount field sometimes holds a mistyped SSN or
    // account number, and messages reach acknowledgments, logs and exports. The value is kept
    // (cut short) for the code that wants it.
    #[error("the amount is not a decimal amount such as 184.62")]
    Malformed(String),
    #[error("the amount has more than 2 decimal places")]
    TooManyDecimals(String),
    #[error("the amount is too large")]
    OutOfRange(String),
}

impl Money {
    pub const ZERO: Money = Money(0);
    /// The largest amount one remittance line or payment may carry: 99,999,999.99.
    pub const MAX_LINE_AMOUNT: Money = Money(9_999_999_999);

    pub const fn from_cents(cents: i64) -> Money {
        Money(cents)
    }

    pub const fn cents(self) -> i64 {
        self.0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub const fn is_positive(self) -> bool {
        self.0 > 0
    }

    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    pub fn checked_mul(self, factor: i64) -> Option<Money> {
        self.0.checked_mul(factor).map(Money)
    }

    /// `self - other`, or zero when that would be negative: balances are "never below 0".
    pub fn saturating_sub_floor_zero(self, other: Money) -> Money {
        let difference = self - other;
        if difference.is_negative() {
            Money::ZERO
        } else {
            difference
        }
    }

    /// Parses an unsigned decimal amount: digits, optionally `.` and 1 or 2 more digits.
    pub fn parse(text: &str) -> Result<Money, MoneyError> {
        let cents = parse_wide_cents(text)?;
        i64::try_from(cents).map(Money).map_err(|_| MoneyError::OutOfRange(excerpt(text)))
    }

    /// Parses a decimal amount that may carry a leading `-` (reversal entries in exports).
    pub fn parse_signed(text: &str) -> Result<Money, MoneyError> {
        match text.strip_prefix('-') {
            Some(rest) => Money::parse(rest).map(|m| -m),
            None => Money::parse(text),
        }
    }
}

/// The most digits before the point [`parse_wide_cents`] reads: far past any real amount, so a
/// control total can still count an absurd one, and short enough that the sum of five
/// million of them fits in an `i128`.
const MAX_WIDE_DIGITS: usize = 28;

/// Reads the amount grammar of [`Money::parse`] into cents without its `i64` range: what a
/// control total needs, so that an amount too large to be money still counts against the
/// total a file declares instead of vanishing from the sum.
pub fn parse_wide_cents(text: &str) -> Result<i128, MoneyError> {
    if text.is_empty() {
        return Err(MoneyError::Empty);
    }
    let malformed = || MoneyError::Malformed(excerpt(text));
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    let fraction_cents = match fraction {
        None => 0,
        Some(f) if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) => return Err(malformed()),
        // The spec allows at most 2 places, so even "1.500" is refused: a sender whose
        // system writes 3 places is likely computing in fractions of a cent.
        Some(f) if f.len() > 2 => return Err(MoneyError::TooManyDecimals(excerpt(text))),
        Some(f) => i128::from(parse_fraction(f)),
    };
    let whole = whole.trim_start_matches('0');
    if whole.len() > MAX_WIDE_DIGITS {
        return Err(MoneyError::OutOfRange(excerpt(text)));
    }
    let dollars: i128 = if whole.is_empty() { 0 } else { whole.parse().expect("at most 28 digits fit an i128") };
    Ok(dollars * 100 + fraction_cents)
}

fn parse_fraction(digits: &str) -> i64 {
    debug_assert!(!digits.is_empty() && digits.len() <= 2);
    let value: i64 = digits.parse().expect("caller checked the digits");
    if digits.len() == 1 {
        value * 10
    } else {
        value
    }
}

impl fmt::Display for Money {
    /// `184.62`, `-0.05`, `0.00`: always two decimals, a plain number a spreadsheet reads.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let magnitude = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", magnitude / 100, magnitude % 100)
    }
}

impl FromStr for Money {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Money::parse_signed(s)
    }
}

impl From<Money> for rust_decimal::Decimal {
    fn from(money: Money) -> Self {
        rust_decimal::Decimal::new(money.0, 2)
    }
}

impl TryFrom<rust_decimal::Decimal> for Money {
    type Error = MoneyError;
    fn try_from(value: rust_decimal::Decimal) -> Result<Self, Self::Error> {
        let normalized = value.normalize();
        if normalized.scale() > 2 {
            return Err(MoneyError::TooManyDecimals(value.to_string()));
        }
        let mut cents = normalized;
        cents.rescale(2);
        i64::try_from(cents.mantissa()).map(Money).map_err(|_| MoneyError::OutOfRange(value.to_string()))
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, other: Money) -> Money {
        self.checked_add(other).expect("money overflow in addition")
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, other: Money) {
        *self = *self + other;
    }
}

impl Sub for Money {
    type Output = Money;
    fn sub(self, other: Money) -> Money {
        self.checked_sub(other).expect("money overflow in subtraction")
    }
}

impl SubAssign for Money {
    fn sub_assign(&mut self, other: Money) {
        *self = *self - other;
    }
}

impl Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(self.0.checked_neg().expect("money overflow in negation"))
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

impl<'a> Sum<&'a Money> for Money {
    fn sum<I: Iterator<Item = &'a Money>>(iter: I) -> Money {
        iter.copied().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_amounts() {
        assert_eq!(Money::parse("184.62"), Ok(Money::from_cents(18462)));
        assert_eq!(Money::parse("184.6"), Ok(Money::from_cents(18460)));
        assert_eq!(Money::parse("184"), Ok(Money::from_cents(18400)));
        assert_eq!(Money::parse("0.05"), Ok(Money::from_cents(5)));
        assert_eq!(Money::parse("007.10"), Ok(Money::from_cents(710)));
        assert_eq!(Money::parse("99999999.99"), Ok(Money::MAX_LINE_AMOUNT));
    }

    #[test]
    fn refuses_what_is_not_an_exact_amount() {
        assert_eq!(Money::parse(""), Err(MoneyError::Empty));
        for bad in ["abc", "1.", ".5", "1,000.00", "1e5", " 1.00", "+1", "-1", "1.2.3", "١٢"] {
            assert!(matches!(Money::parse(bad), Err(MoneyError::Malformed(_))), "{bad}");
        }
        assert!(matches!(Money::parse("1.005"), Err(MoneyError::TooManyDecimals(_))));
        assert!(matches!(Money::parse("1.500"), Err(MoneyError::TooManyDecimals(_))));
        assert!(matches!(Money::parse("99999999999999999999"), Err(MoneyError::OutOfRange(_))));
    }

    #[test]
    fn displays_two_decimals_and_round_trips() {
        for cents in [0, 5, 10, 18462, -5, -30000, i64::MAX, -i64::MAX] {
            let money = Money::from_cents(cents);
            assert_eq!(Money::parse_signed(&money.to_string()), Ok(money));
        }
        assert_eq!(Money::from_cents(-5).to_string(), "-0.05");
    }

    #[test]
    fn converts_to_and_from_decimal_exactly() {
        let money = Money::from_cents(18462);
        let decimal = rust_decimal::Decimal::from(money);
        assert_eq!(decimal.to_string(), "184.62");
        assert_eq!(Money::try_from(decimal), Ok(money));
        assert!(Money::try_from(rust_decimal::Decimal::new(1005, 3)).is_err());
    }
}
