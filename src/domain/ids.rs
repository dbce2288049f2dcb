//! Identifiers, each built only through a checked constructor.
//!
//! A value of one of these types is known to be well formed, so nothing past the parsers
//! re-checks it. The SSN is personal data: its `Debug` and `Display` show only the last four
//! digits, so it cannot leak into a log line or an error message by accident.

use std::fmt;

/// Why a text is not a valid identifier. The messages never repeat an SSN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("a case number has 8 digits (spaces and dashes are ignored)")]
    CaseNumber,
    #[error("an SSN has 9 digits, not all zeros, and does not begin with 000, 666 or 9")]
    Ssn,
    #[error("a FEIN has 9 digits, optionally written 43-1234567")]
    Fein,
    #[error("an id is 1 to 32 printable characters")]
    Text,
}

/// Keeps only the digits of `text` when every other character is a space or a dash.
fn digits_ignoring_separators(text: &str) -> Option<String> {
    let mut digits = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' => {}
            _ => return None,
        }
    }
    Some(digits)
}

/// A IV-D case number: 8 digits in Missouri's numbering.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CaseNumber(String);

impl CaseNumber {
    /// Accepts `12345678`, `1234-5678` or `1234 5678`.
    pub fn parse(text: &str) -> Result<CaseNumber, IdError> {
        match digits_ignoring_separators(text) {
            Some(digits) if digits.len() == 8 => Ok(CaseNumber(digits)),
            _ => Err(IdError::CaseNumber),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CaseNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Social Security number. Shown only as `***-**-6789`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Ssn(String);

impl Ssn {
    /// Accepts 9 digits, dashes or spaces allowed, under the SSA's rules for numbers it
    /// issues: not all zeros, and not beginning with 000, 666 or 9.
    pub fn parse(text: &str) -> Result<Ssn, IdError> {
        let digits = digits_ignoring_separators(text).ok_or(IdError::Ssn)?;
        let never_issued = digits.starts_with("000") || digits.starts_with("666") || digits.starts_with('9');
        if digits.len() != 9 || never_issued {
            return Err(IdError::Ssn);
        }
        Ok(Ssn(digits))
    }

    pub fn last4(&self) -> &str {
        &self.0[5..]
    }

    /// The full digits, for keyed hashing or encryption only: never for display.
    pub fn expose_digits(&self) -> &str {
        &self.0
    }

    pub fn masked(&self) -> String {
        format!("***-**-{}", self.last4())
    }
}

impl fmt::Debug for Ssn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ssn({})", self.masked())
    }
}

impl fmt::Display for Ssn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// An SSN's keyed HMAC-SHA-256 (`app::pii`): how the registry knows an SSN without holding
/// it. Kept as its 32 bytes while a file is matched; stored as 64 lowercase hexadecimal digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SsnHmac([u8; 32]);

impl SsnHmac {
    pub fn from_bytes(bytes: [u8; 32]) -> SsnHmac {
        SsnHmac(bytes)
    }

    /// An HMAC as the registry stores it; any other text (uppercase digits included) is none,
    /// as the database, comparing text, would find no stored HMAC equal to it either.
    pub fn from_hex(text: &str) -> Option<SsnHmac> {
        if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(SsnHmac(bytes))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// As the registry stores it: 64 lowercase hexadecimal digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// A Federal Employer Identification Number, kept as its 9 digits.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fein(String);

impl Fein {
    /// Accepts `431234567` or `43-1234567`.
    pub fn parse(text: &str) -> Result<Fein, IdError> {
        let bytes = text.as_bytes();
        let digits: String = match bytes.len() {
            9 => text.to_owned(),
            10 if bytes[2] == b'-' => format!("{}{}", &text[..2], &text[3..]),
            _ => return Err(IdError::Fein),
        };
        if digits.len() == 9 && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Fein(digits))
        } else {
            Err(IdError::Fein)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Fein {
    /// The usual written form, `43-1234567`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", &self.0[..2], &self.0[2..])
    }
}

/// Checks the registry's "text, 1–32 chars" ids: printable, no surrounding spaces.
fn parse_text_id(text: &str) -> Result<String, IdError> {
    let length = text.chars().count();
    let printable = text.chars().all(|c| !c.is_control());
    if (1..=32).contains(&length) && printable && text.trim() == text {
        Ok(text.to_owned())
    } else {
        Err(IdError::Text)
    }
}

macro_rules! text_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: &str) -> Result<$name, IdError> {
                parse_text_id(text).map($name)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_id!(
    /// A support order's id in the case management system. Orders are ranked by this id,
    /// compared as text, in the last tie-break of the dividing rule.
    OrderId
);
text_id!(
    /// The paying parent's id in the case management system.
    ObligorId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_numbers_ignore_spaces_and_dashes() {
        assert_eq!(CaseNumber::parse("1234-5678").unwrap().as_str(), "12345678");
        assert_eq!(CaseNumber::parse(" 1234 5678 ").unwrap().as_str(), "12345678");
        for bad in ["", "1234567", "123456789", "1234567a", "１２３４５６７８"] {
            assert_eq!(CaseNumber::parse(bad), Err(IdError::CaseNumber), "{bad}");
        }
    }

    #[test]
    fn ssns_follow_the_issuing_rules_and_never_show_in_full() {
        let ssn = Ssn::parse("123-45-6789").unwrap();
        assert_eq!(ssn.expose_digits(), "123456789");
        assert_eq!(ssn.to_string(), "***-**-6789");
        assert_eq!(format!("{ssn:?}"), "Ssn(***-**-6789)");
        for bad in ["000000000", "000123456", "666123456", "912345678", "12345678", "12345678a"] {
            assert_eq!(Ssn::parse(bad), Err(IdError::Ssn), "{bad}");
        }
    }

    #[test]
    fn ssn_hmacs_are_read_only_as_the_registry_writes_them() {
        let hex = format!("{}{}", "0123456789abcdef".repeat(3), "fedcba9876543210");
        let hmac = SsnHmac::from_hex(&hex).unwrap();
        assert_eq!(hmac.as_bytes()[..2], [0x01, 0x23]);
        assert_eq!(hmac.to_hex(), hex);
        // Uppercase, short, long or non-hexadecimal text is no stored HMAC.
        for bad in [hex.to_uppercase(), hex[..63].to_owned(), format!("{hex}0"), hex.replace('a', "g"), String::new()] {
            assert_eq!(SsnHmac::from_hex(&bad), None, "{bad}");
        }
    }

    #[test]
    fn feins_take_the_dash_only_in_its_place() {
        assert_eq!(Fein::parse("43-1234567").unwrap().as_str(), "431234567");
        assert_eq!(Fein::parse("431234567").unwrap().to_string(), "43-1234567");
        for bad in ["4312345678", "431-234567", "43-123456a", ""] {
            assert_eq!(Fein::parse(bad), Err(IdError::Fein), "{bad}");
        }
    }

    #[test]
    fn text_ids_are_short_and_printable() {
        assert!(OrderId::parse("ORD-1").is_ok());
        assert!(OrderId::parse(&"x".repeat(32)).is_ok());
        for bad in ["", " ORD", "ORD\n1", &"x".repeat(33)] {
            assert_eq!(OrderId::parse(bad), Err(IdError::Text), "{bad:?}");
        }
    }
}
