//! Personal data kept out of reach: SSNs are stored as a keyed HMAC (to match payroll lines)
//! and their last 4 digits (to show), never in full.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::Ssn;

/// The key of the SSN HMAC. A plain hash of a 9-digit number is reversed by trying all of
/// them; a keyed one is not, without the key.
pub struct PiiKey([u8; 32]);

#[derive(Debug, thiserror::Error)]
#[error("the PII key must be 64 hexadecimal digits (32 bytes)")]
pub struct PiiKeyError;

impl PiiKey {
    pub fn from_hex(text: &str) -> Result<PiiKey, PiiKeyError> {
        let bytes = hex::decode(text.trim()).map_err(|_| PiiKeyError)?;
        Ok(PiiKey(bytes.try_into().map_err(|_| PiiKeyError)?))
    }

    /// A new random key, as hex, for a database that has none.
    pub fn generate_hex() -> String {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system provides random bytes");
        hex::encode(key)
    }

    pub fn ssn_hmac(&self, ssn: &Ssn) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes a key of any length");
        mac.update(ssn.expose_digits().as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for PiiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PiiKey(redacted)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hmac_depends_on_the_key_and_never_shows_the_ssn() {
        let ssn = Ssn::parse("123-45-6789").unwrap();
        let a = PiiKey::from_hex(&PiiKey::generate_hex()).unwrap();
        let b = PiiKey::from_hex(&PiiKey::generate_hex()).unwrap();
        assert_eq!(a.ssn_hmac(&ssn), a.ssn_hmac(&ssn));
        assert_ne!(a.ssn_hmac(&ssn), b.ssn_hmac(&ssn));
        assert!(!a.ssn_hmac(&ssn).contains("123456789"));
        assert_eq!(format!("{a:?}"), "PiiKey(redacted)");
        assert!(PiiKey::from_hex("abcd").is_err());
    }
}
