//! Voluntary online payments (`online-payments.md`): the payer's bank account, its
//! validation, and ACH return codes. Pure values and rules.

use std::fmt;

use chrono::{Days, NaiveDate};

use super::calendar::add_business_days;

/// Why a payer's detail is not acceptable. Messages never repeat an account number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentDetailError {
    #[error("an ABA routing number has 9 digits and a valid check digit")]
    RoutingNumber,
    #[error("a bank account number has 4 to 17 digits")]
    AccountNumber,
    #[error("this looks like a debit or credit card number: the agency takes payments only by ACH debit of a bank account")]
    CardNumber,
    #[error("the account type is CHECKING or SAVINGS")]
    AccountType,
    #[error("a valid e-mail address is required")]
    Email,
    #[error("a telephone number has 10 digits (US)")]
    Telephone,
    #[error("an ACH return code is one NACHA defines: R01–R53, R61–R62, R67–R77 or R80–R85")]
    ReturnCode,
}

/// An ABA routing transit number: 9 digits whose weighted sum (3, 7, 1, …) is a multiple of 10.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoutingNumber(String);

impl RoutingNumber {
    pub fn parse(text: &str) -> Result<RoutingNumber, PaymentDetailError> {
        let text = text.trim();
        let digits: Vec<u32> = text.chars().map(|c| c.to_digit(10)).collect::<Option<_>>().ok_or(PaymentDetailError::RoutingNumber)?;
        if digits.len() != 9 || digits.iter().all(|&d| d == 0) {
            return Err(PaymentDetailError::RoutingNumber);
        }
        let weighted: u32 = digits.iter().zip([3, 7, 1, 3, 7, 1, 3, 7, 1]).map(|(d, w)| d * w).sum();
        if weighted % 10 == 0 {
            Ok(RoutingNumber(text.to_owned()))
        } else {
            Err(PaymentDetailError::RoutingNumber)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A bank account number. Shown only as its last 4 digits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AccountNumber(String);

impl AccountNumber {
    /// 4 to 17 digits (the NACHA field is 17 wide); a number that looks like a payment card
    /// (13–19 digits, a card network's prefix, a valid Luhn check digit) is refused.
    pub fn parse(text: &str) -> Result<AccountNumber, PaymentDetailError> {
        let digits: String = text.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(PaymentDetailError::AccountNumber);
        }
        // Leading zeros do not make a card number an account number: "0411…" is "411…".
        if looks_like_a_card(&digits) || looks_like_a_card(digits.trim_start_matches('0')) {
            return Err(PaymentDetailError::CardNumber);
        }
        if !(4..=17).contains(&digits.len()) {
            return Err(PaymentDetailError::AccountNumber);
        }
        Ok(AccountNumber(digits))
    }

    pub fn last4(&self) -> &str {
        &self.0[self.0.len() - 4..]
    }

    /// The full number, for encryption only: never for display.
    pub fn expose_digits(&self) -> &str {
        &self.0
    }

    pub fn masked(&self) -> String {
        format!("****{}", self.last4())
    }
}

impl fmt::Debug for AccountNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountNumber({})", self.masked())
    }
}

impl fmt::Display for AccountNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Visa, Mastercard, American Express, Discover and others: 13–19 digits, a network prefix,
/// and a valid Luhn check digit.
pub fn looks_like_a_card(digits: &str) -> bool {
    let network = ["4", "34", "37", "51", "52", "53", "54", "55", "6011", "65", "35", "36", "30", "62"]
        .iter()
        .any(|prefix| digits.starts_with(prefix))
        || digits.get(..4).and_then(|p| p.parse::<u32>().ok()).is_some_and(|p| (2221..=2720).contains(&p));
    (13..=19).contains(&digits.len()) && network && luhn_valid(digits)
}

fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountType {
    Checking,
    Savings,
}

impl AccountType {
    pub fn parse(text: &str) -> Result<AccountType, PaymentDetailError> {
        match text.trim().to_ascii_uppercase().as_str() {
            "CHECKING" => Ok(AccountType::Checking),
            "SAVINGS" => Ok(AccountType::Savings),
            _ => Err(PaymentDetailError::AccountType),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AccountType::Checking => "CHECKING",
            AccountType::Savings => "SAVINGS",
        }
    }
}

/// An e-mail address: one `@`, a local part of 1–64 characters, a domain of dot-separated
/// labels with at least one dot, 254 characters at most, no spaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(text: &str) -> Result<Email, PaymentDetailError> {
        let text = text.trim();
        let (local, domain) = text.split_once('@').ok_or(PaymentDetailError::Email)?;
        let local_ok = (1..=64).contains(&local.len())
            && local.chars().all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..");
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                (1..=63).contains(&l.len())
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            })
            && labels.last().is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
        if text.len() <= 254 && local_ok && domain_ok {
            Ok(Email(text.to_owned()))
        } else {
            Err(PaymentDetailError::Email)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A US telephone number, kept as its 10 digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Telephone(String);

impl Telephone {
    /// Accepts `573-555-0100`, `(573) 555-0100`, `+1 573 555 0100`.
    pub fn parse(text: &str) -> Result<Telephone, PaymentDetailError> {
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        let allowed = text.chars().all(|c| c.is_ascii_digit() || " -().+".contains(c));
        let digits = match digits.len() {
            11 if digits.starts_with('1') => digits[1..].to_owned(),
            _ => digits,
        };
        if allowed && digits.len() == 10 && !digits.starts_with(['0', '1']) {
            Ok(Telephone(digits))
        } else {
            Err(PaymentDetailError::Telephone)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An ACH return reason code that NACHA's rules define (`R01`, `R03`, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReturnCode(u8);

impl ReturnCode {
    pub fn parse(text: &str) -> Result<ReturnCode, PaymentDetailError> {
        let text = text.trim().to_ascii_uppercase();
        match text.strip_prefix('R') {
            Some(number) if number.len() == 2 && number.bytes().all(|b| b.is_ascii_digit()) => {
                let number: u8 = number.parse().map_err(|_| PaymentDetailError::ReturnCode)?;
                // The codes NACHA's rules define (some since retired, still seen in old
                // files): R01–R53, the dishonored and contested returns R61–R62 and R67–R77,
                // and the IAT returns R80–R85. Anything else (R00, R99) is not a return.
                if matches!(number, 1..=53 | 61..=62 | 67..=77 | 80..=85) {
                    Ok(ReturnCode(number))
                } else {
                    Err(PaymentDetailError::ReturnCode)
                }
            }
            _ => Err(PaymentDetailError::ReturnCode),
        }
    }

    /// A code as the gateway recorded it: read leniently (any `R` and two digits), since a
    /// code recorded before the list of NACHA's codes was enforced must keep its meaning —
    /// a returned prenote stays returned. Text that is no code at all reads as R99.
    pub fn stored(text: &str) -> ReturnCode {
        let text = text.trim().to_ascii_uppercase();
        let number = text.strip_prefix('R').filter(|n| n.len() == 2).and_then(|n| n.parse::<u8>().ok());
        ReturnCode(number.filter(|&n| n > 0).unwrap_or(99))
    }

    /// R02 (account closed), R03 (no account), R04 (invalid account number): the account
    /// cannot be used again until it is replaced and validated.
    pub fn makes_account_unusable(self) -> bool {
        matches!(self.0, 2..=4)
    }
}

impl fmt::Display for ReturnCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "R{:02}", self.0)
    }
}

/// How long a new bank account is validated: about 5 business days for the prenote's return.
pub const VALIDATION_BUSINESS_DAYS: u32 = 5;

/// What the back office recorded of an account's prenote, if anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrenoteResult {
    Confirmed,
    Returned(ReturnCode),
}

/// Whether an account can pay today.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountState {
    /// Still being validated; it can pay from `usable_from`.
    Pending {
        usable_from: NaiveDate,
    },
    Usable,
    /// Returned by the bank: unusable until replaced (and validated again).
    Unusable {
        code: ReturnCode,
    },
}

/// The day a bank account added on `added_on` can first pay, when no return comes back: the
/// day after the fifth business day after it was added.
pub fn usable_from(added_on: NaiveDate) -> NaiveDate {
    add_business_days(added_on, VALIDATION_BUSINESS_DAYS).checked_add_days(Days::new(1)).expect("a day after")
}

/// The state of an account on `today`, derived from the facts alone: no background job is
/// needed for an account to become usable.
pub fn account_state(
    added_on: NaiveDate,
    prenote: Option<PrenoteResult>,
    unusable_return: Option<ReturnCode>,
    today: NaiveDate,
) -> AccountState {
    if let Some(code) = unusable_return {
        return AccountState::Unusable { code };
    }
    match prenote {
        Some(PrenoteResult::Returned(code)) => AccountState::Unusable { code },
        Some(PrenoteResult::Confirmed) => AccountState::Usable,
        None if today >= usable_from(added_on) => AccountState::Usable,
        None => AccountState::Pending { usable_from: usable_from(added_on) },
    }
}

/// What recording a return did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReturnOutcome {
    /// The payment was distributed: its share of its pool was reversed by these entries,
    /// written by reversal run `run_id`.
    Reversed { run_id: i64, entries: Vec<super::Allocation> },
    /// The payment was not distributed yet: it never will be.
    CancelledBeforeDistribution,
    /// The payment was already returned (with this code): nothing more was done.
    AlreadyReturned(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn routing_numbers_need_a_valid_check_digit() {
        for good in ["091000019", "021000021", "011000015", "111000025"] {
            assert!(RoutingNumber::parse(good).is_ok(), "{good}");
        }
        for bad in ["091000018", "000000000", "12345678", "0910000190", "09100001a"] {
            assert!(RoutingNumber::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn account_numbers_are_masked_and_cards_refused() {
        let account = AccountNumber::parse("0012-3456-789").unwrap();
        assert_eq!((account.to_string().as_str(), format!("{account:?}").as_str()), ("****6789", "AccountNumber(****6789)"));
        assert_eq!(AccountNumber::parse("4111 1111 1111 1111"), Err(PaymentDetailError::CardNumber));
        assert_eq!(AccountNumber::parse("5500000000000004"), Err(PaymentDetailError::CardNumber));
        assert_eq!(AccountNumber::parse("378282246310005"), Err(PaymentDetailError::CardNumber));
        // A 16-digit account number that fails the Luhn check is an account, not a card.
        assert!(AccountNumber::parse("4111111111111112").is_ok());
        // Leading zeros (a 17-digit field padded) do not hide a card number.
        assert_eq!(AccountNumber::parse("04111111111111111"), Err(PaymentDetailError::CardNumber));
        assert_eq!(AccountNumber::parse("00378282246310005"), Err(PaymentDetailError::CardNumber));
        assert!(AccountNumber::parse("00012345678").is_ok());
        assert_eq!(AccountNumber::parse("123"), Err(PaymentDetailError::AccountNumber));
        assert_eq!(AccountNumber::parse("123456789012345678"), Err(PaymentDetailError::AccountNumber));
    }

    #[test]
    fn emails_and_telephones() {
        for good in ["parent@example.com", "a.b+c@mail.mo.gov"] {
            assert!(Email::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "parent", "parent@", "@example.com", "parent@example", "pa rent@example.com", "a@b.c", "a..b@example.com"] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Telephone::parse("(573) 555-0100").unwrap().as_str(), "5735550100");
        assert_eq!(Telephone::parse("+1 573 555 0100").unwrap().as_str(), "5735550100");
        assert!(Telephone::parse("555-0100").is_err());
    }

    #[test]
    fn return_codes() {
        assert_eq!(ReturnCode::parse("r03").unwrap().to_string(), "R03");
        assert!(ReturnCode::parse("R02").unwrap().makes_account_unusable());
        assert!(!ReturnCode::parse("R01").unwrap().makes_account_unusable());
        assert!(ReturnCode::parse("R1").is_err() && ReturnCode::parse("X01").is_err() && ReturnCode::parse("R00").is_err());
        for undefined in ["R99", "R54", "R60", "R66", "R78", "R86"] {
            assert!(ReturnCode::parse(undefined).is_err(), "{undefined} is not a NACHA return code");
        }
        for defined in ["R01", "R29", "R53", "R61", "R62", "R67", "R77", "R80", "R85"] {
            assert!(ReturnCode::parse(defined).is_ok(), "{defined} is a NACHA return code");
        }
        // Codes recorded before the list was enforced keep their meaning.
        assert_eq!(ReturnCode::stored("R99").to_string(), "R99");
        assert!(ReturnCode::stored("r03").makes_account_unusable());
        assert_eq!(ReturnCode::stored("garbage").to_string(), "R99");
    }

    #[test]
    fn a_new_account_is_pending_for_five_business_days_across_weekends_and_holidays() {
        // Added Friday Nov 20, 2026: business days Mon 23, Tue 24, Wed 25, (Thu 26
        // Thanksgiving), Fri 27, Mon 30 — usable from Tuesday Dec 1.
        assert_eq!(usable_from(d("2026-11-20")), d("2026-12-01"));
        let pending = AccountState::Pending { usable_from: d("2026-12-01") };
        assert_eq!(account_state(d("2026-11-20"), None, None, d("2026-11-30")), pending);
        assert_eq!(account_state(d("2026-11-20"), None, None, d("2026-12-01")), AccountState::Usable);
        assert_eq!(account_state(d("2026-11-20"), Some(PrenoteResult::Confirmed), None, d("2026-11-21")), AccountState::Usable);
        let r03 = ReturnCode::parse("R03").unwrap();
        assert_eq!(
            account_state(d("2026-11-20"), Some(PrenoteResult::Returned(r03)), None, d("2027-01-01")),
            AccountState::Unusable { code: r03 }
        );
        assert_eq!(account_state(d("2026-11-20"), None, Some(r03), d("2027-01-01")), AccountState::Unusable { code: r03 });
    }
}
