//! Personal data kept out of reach: SSNs are stored as a keyed HMAC (to match payroll lines)
//! and their last 4 digits (to show), never in full; bank account numbers, which the ACH
//! debit needs, are stored encrypted (AES-256-GCM) and as their last 4 digits.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::domain::payment::AccountNumber;
use crate::domain::{Ssn, SsnHmac};

/// The key of the SSN HMAC. A plain hash of a 9-digit number is reversed by trying all of
/// them; a keyed one is not, without the key.
pub struct PiiKey {
    key: [u8; 32],
    /// The HMAC with the key already absorbed: cloned for each SSN, it hashes two blocks
    /// instead of four (a large file's lines are hashed one by one).
    ssn_mac: Hmac<Sha256>,
}

#[derive(Debug, thiserror::Error)]
#[error("the PII key must be 64 hexadecimal digits (32 bytes)")]
pub struct PiiKeyError;

impl PiiKey {
    pub fn from_hex(text: &str) -> Result<PiiKey, PiiKeyError> {
        let bytes = hex::decode(text.trim()).map_err(|_| PiiKeyError)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| PiiKeyError)?;
        let ssn_mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC takes a key of any length");
        Ok(PiiKey { key, ssn_mac })
    }

    /// A new random key, as hex, for a database that has none.
    pub fn generate_hex() -> String {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system provides random bytes");
        hex::encode(key)
    }

    /// The SSN's HMAC as the registry stores it: 64 lowercase hexadecimal digits.
    pub fn ssn_hmac(&self, ssn: &Ssn) -> String {
        self.ssn_hmac_bytes(ssn).to_hex()
    }

    /// The SSN's HMAC as bytes, for matching in memory.
    pub fn ssn_hmac_bytes(&self, ssn: &Ssn) -> SsnHmac {
        let mut mac = self.ssn_mac.clone();
        mac.update(ssn.expose_digits().as_bytes());
        SsnHmac::from_bytes(mac.finalize().into_bytes().into())
    }
}

impl PiiKey {
    /// The account-number key, derived from the PII key so one secret is configured.
    fn account_cipher(&self) -> Aes256Gcm {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(b"fspc-gateway bank account encryption v1");
        let key = mac.finalize().into_bytes();
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key))
    }

    /// `hex(nonce ‖ ciphertext)`: a fresh random nonce each time.
    pub fn encrypt_account(&self, account: &AccountNumber) -> String {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).expect("the operating system provides random bytes");
        let sealed = self
            .account_cipher()
            .encrypt(Nonce::from_slice(&nonce), account.expose_digits().as_bytes())
            .expect("AES-GCM encrypts any short message");
        hex::encode([nonce.as_slice(), &sealed].concat())
    }

    /// The account number back, for the ACH debit; `None` when the text was not sealed with
    /// this key.
    pub fn decrypt_account(&self, sealed: &str) -> Option<AccountNumber> {
        let bytes = hex::decode(sealed).ok()?;
        let (nonce, ciphertext) = bytes.split_at_checked(12)?;
        let plain = self.account_cipher().decrypt(Nonce::from_slice(nonce), ciphertext).ok()?;
        AccountNumber::parse(std::str::from_utf8(&plain).ok()?).ok()
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
        assert_eq!(a.ssn_hmac(&ssn), a.ssn_hmac_bytes(&ssn).to_hex());
        // HMAC-SHA-256 (RFC 2104) with the key absorbed once, checked against Python's `hmac`.
        let known = PiiKey::from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f").unwrap();
        let expected = "a2fb4a2e5d7a21b17d1213d493a97fffd9c65f4f57dcd304c0b8bc58d310027f";
        assert_eq!(known.ssn_hmac(&ssn), expected);
        assert_eq!(known.ssn_hmac(&ssn), expected, "the prepared key is not used up by a first SSN");
        assert_ne!(a.ssn_hmac(&ssn), b.ssn_hmac(&ssn));
        assert!(!a.ssn_hmac(&ssn).contains("123456789"));
        assert_eq!(format!("{a:?}"), "PiiKey(redacted)");
        assert!(PiiKey::from_hex("abcd").is_err());
    }

    #[test]
    fn account_numbers_are_sealed_and_opened_only_with_the_key() {
        let key = PiiKey::from_hex(&PiiKey::generate_hex()).unwrap();
        let account = AccountNumber::parse("000123456789").unwrap();
        let sealed = key.encrypt_account(&account);
        assert!(!sealed.contains("123456789"));
        assert_ne!(sealed, key.encrypt_account(&account), "a fresh nonce each time");
        assert_eq!(key.decrypt_account(&sealed), Some(account));
        let other = PiiKey::from_hex(&PiiKey::generate_hex()).unwrap();
        assert_eq!(other.decrypt_account(&sealed), None);
        assert_eq!(key.decrypt_account("00"), None);
    }
}
