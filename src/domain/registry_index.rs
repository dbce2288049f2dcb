//! The registry's cases and SSN HMACs held in memory, compactly, for matching a file's lines
//! without a database read a line.
//!
//! A line is matched by its case number (→ the case's obligor) and its SSN's HMAC (→ the
//! obligors with that SSN). Read from the database, each is a B-tree descent through pages
//! copied from the OS's cache: about a fifth of a large file's CPU (docs/performance.md,
//! session 23). Held here they are one or two cache lines each.
//!
//! Held as strings in hash maps, 300,000 obligors and 600,000 cases would take some 60 MB;
//! the server's memory budget (200 MB during a 1,000,000-line file) cannot spare that. So:
//! - an obligor is a number, its id kept once in one string of all the ids;
//! - a case number (8 digits) is a `u32`;
//! - an SSN HMAC (64 lowercase hexadecimal digits, as the gateway writes them) is its first
//!   128 bits: two different SSNs share those with a chance of one in 2¹²⁸ a pair
//!   (HMAC-SHA-256 truncated to 128 bits, as RFC 4868 uses it), against the 4.8 MB more that
//!   the whole 256 would cost the server's memory budget at 300,000 obligors;
//! - each kind of key is kept sorted in 65,536 buckets chosen by its top bits (case numbers
//!   first mixed by a bijection, since real ones cluster), so a lookup reads its bucket's
//!   bounds and a few neighbouring keys.
//!
//! 8 bytes a case and 24 an obligor, plus its id: some 16 MB for that registry.
//!
//! The index answers for one state of the registry, its `generation` (a number the database
//! draws anew with every change to a case or an obligor's SSN): whoever holds it checks the
//! database's generation before trusting it.

use super::ids::{CaseNumber, ObligorId};

/// Buckets a kind of key is spread over: 2¹⁶ bounds of 4 bytes, 256 KiB a kind.
const BUCKET_BITS: u32 = 16;
const BUCKETS: usize = 1 << BUCKET_BITS;

/// A key the index sorts and buckets.
trait Key: Copy + Ord {
    /// Its bucket: its top [`BUCKET_BITS`] bits.
    fn bucket(self) -> usize;
}

/// A case number, mixed: multiplying by an odd number is a bijection of `u32`, so two case
/// numbers never share a mixed key, and consecutive ones land in different buckets.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct MixedCase(u32);

impl MixedCase {
    fn of(case_number: u32) -> MixedCase {
        MixedCase(case_number.wrapping_mul(0x9E37_79B1))
    }
}

impl Key for MixedCase {
    fn bucket(self) -> usize {
        (self.0 >> (32 - BUCKET_BITS)) as usize
    }
}

/// The first 128 bits of an SSN's HMAC (already uniformly spread).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct HmacPrefix(u128);

impl HmacPrefix {
    /// The prefix of an HMAC written as 64 lowercase hexadecimal digits. Any other text is
    /// none: the database, comparing text, would find no stored HMAC equal to it either.
    fn of(hmac_hex: &str) -> Option<HmacPrefix> {
        if hmac_hex.len() != 64 || !hmac_hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return None;
        }
        u128::from_str_radix(&hmac_hex[..32], 16).ok().map(HmacPrefix)
    }
}

impl Key for HmacPrefix {
    fn bucket(self) -> usize {
        (self.0 >> (128 - BUCKET_BITS)) as usize
    }
}

/// Keys with the obligor (a number) each belongs to, sorted by key, in buckets.
struct Buckets<K> {
    /// Bucket `b`'s entries are `starts[b]..starts[b + 1]`.
    starts: Vec<u32>,
    keys: Vec<K>,
    obligors: Vec<u32>,
}

impl<K: Key> Buckets<K> {
    fn new(mut entries: Vec<(K, u32)>) -> Buckets<K> {
        entries.sort_unstable();
        entries.dedup();
        let mut starts = Vec::with_capacity(BUCKETS + 1);
        let mut at = 0;
        for bucket in 0..BUCKETS {
            starts.push(u32::try_from(at).expect("fewer than 2³² keys"));
            while at < entries.len() && entries[at].0.bucket() == bucket {
                at += 1;
            }
        }
        assert_eq!(at, entries.len(), "every key is in a bucket");
        starts.push(u32::try_from(at).expect("fewer than 2³² keys"));
        let (keys, obligors) = entries.into_iter().unzip();
        Buckets { starts, keys, obligors }
    }

    /// The obligors filed under `key`, in increasing order of their numbers.
    fn get(&self, key: K) -> &[u32] {
        let bucket = key.bucket();
        let (start, end) = (self.starts[bucket] as usize, self.starts[bucket + 1] as usize);
        let keys = &self.keys[start..end];
        let first = keys.partition_point(|k| *k < key);
        let after = first + keys[first..].partition_point(|k| *k == key);
        &self.obligors[start + first..start + after]
    }

    fn heap_bytes(&self) -> usize {
        self.starts.capacity() * 4 + self.keys.capacity() * std::mem::size_of::<K>() + self.obligors.capacity() * 4
    }
}

/// The registry's cases and SSN HMACs at one generation. Built with [`RegistryIndexBuilder`].
pub struct RegistryIndex {
    generation: i64,
    /// Every obligor's id, one after another; obligor `n` ends at `obligor_ends[n]`.
    obligor_ids: String,
    obligor_ends: Vec<u32>,
    cases: Buckets<MixedCase>,
    ssns: Buckets<HmacPrefix>,
    /// Whether it holds a case whose obligor has no row.
    holds_obligors_without_rows: bool,
}

impl RegistryIndex {
    /// The registry's generation this index holds.
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// The generation at which every obligor and case this index answers with had its row
    /// in the registry: none when the index holds a case whose obligor has no row (possible
    /// only where foreign keys were not enforced), as it answers with that obligor's id. A
    /// file's writer that finds the registry still at this generation need not look up the
    /// keys of lines matched by this index (docs/reliability.md).
    pub fn generation_of_registered_keys(&self) -> Option<i64> {
        (!self.holds_obligors_without_rows).then_some(self.generation)
    }

    /// The obligor owning a case, if the registry has the case.
    pub fn obligor_of_case(&self, case: &CaseNumber) -> Option<ObligorId> {
        let number = case_number_value(case.as_str())?;
        self.cases.get(MixedCase::of(number)).first().map(|&n| self.obligor(n))
    }

    /// The obligors whose SSN has this HMAC (64 lowercase hexadecimal digits), each once, in
    /// the order they were added to the index.
    pub fn obligors_with_ssn_hmac(&self, hmac_hex: &str) -> Vec<ObligorId> {
        let Some(prefix) = HmacPrefix::of(hmac_hex) else { return Vec::new() };
        let mut obligors: Vec<ObligorId> = Vec::new();
        for &number in self.ssns.get(prefix) {
            let obligor = self.obligor(number);
            // An obligor whose rows came apart is held under two numbers: one answer still.
            if !obligors.contains(&obligor) {
                obligors.push(obligor);
            }
        }
        obligors
    }

    /// Whether `obligor`'s SSN has this HMAC (64 lowercase hexadecimal digits).
    pub fn obligor_has_ssn_hmac(&self, obligor: &ObligorId, hmac_hex: &str) -> bool {
        HmacPrefix::of(hmac_hex).is_some_and(|prefix| self.ssns.get(prefix).iter().any(|&n| self.obligor_text(n) == obligor.as_str()))
    }

    /// Obligors and cases held.
    pub fn len(&self) -> (usize, usize) {
        (self.obligor_ends.len(), self.cases.keys.len())
    }

    /// The memory the index holds, in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.obligor_ids.capacity() + self.obligor_ends.capacity() * 4 + self.cases.heap_bytes() + self.ssns.heap_bytes()
    }

    fn obligor_text(&self, number: u32) -> &str {
        let n = number as usize;
        let start = if n == 0 { 0 } else { self.obligor_ends[n - 1] as usize };
        &self.obligor_ids[start..self.obligor_ends[n] as usize]
    }

    fn obligor(&self, number: u32) -> ObligorId {
        ObligorId::parse(self.obligor_text(number)).expect("each obligor id was parsed when the index was built")
    }
}

/// An 8-digit case number as a number.
fn case_number_value(text: &str) -> Option<u32> {
    (text.len() == 8 && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok()).flatten()
}

/// A stored key the index cannot hold: the registry is then matched by reading the database.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UnindexableKey {
    #[error("a stored obligor id is not 1 to 32 printable characters")]
    ObligorId,
    #[error("a stored case number is not 8 digits")]
    CaseNumber,
    #[error("a stored SSN HMAC is not 64 lowercase hexadecimal digits")]
    SsnHmac,
    #[error("the registry holds 2³² obligors or more")]
    TooLarge,
}

/// A registry the index cannot hold, at the generation it was read at.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{key} (registry generation {generation})")]
pub struct Unindexable {
    pub generation: i64,
    pub key: UnindexableKey,
}

/// Builds a [`RegistryIndex`] from the registry's rows: each obligor with its SSN's HMAC and
/// one of its cases (or none), an obligor's rows one after another. A case whose obligor has
/// no row (possible only where foreign keys were not enforced) comes with no HMAC: its case
/// is held, and its obligor has no SSN, as the database would answer.
pub struct RegistryIndexBuilder {
    generation: i64,
    obligor_ids: String,
    obligor_ends: Vec<u32>,
    cases: Vec<(MixedCase, u32)>,
    ssns: Vec<(HmacPrefix, u32)>,
    holds_obligors_without_rows: bool,
}

impl RegistryIndexBuilder {
    /// A builder for the registry at `generation`.
    pub fn new(generation: i64) -> RegistryIndexBuilder {
        RegistryIndexBuilder {
            generation,
            obligor_ids: String::new(),
            obligor_ends: Vec::new(),
            cases: Vec::new(),
            ssns: Vec::new(),
            holds_obligors_without_rows: false,
        }
    }

    /// Adds a row: an obligor, its SSN's HMAC (none for a case whose obligor has no row), and
    /// one of its cases. An obligor whose rows are not one after another is held twice, under
    /// two numbers that answer the same id.
    pub fn add(&mut self, obligor_id: &str, ssn_hmac: Option<&str>, case_number: Option<&str>) -> Result<(), UnindexableKey> {
        let number = match self.last_obligor() {
            // The obligor's next row reuses its number.
            Some((last, number)) if last == obligor_id => number,
            _ => {
                ObligorId::parse(obligor_id).map_err(|_| UnindexableKey::ObligorId)?;
                let prefix = ssn_hmac.map(|hmac| HmacPrefix::of(hmac).ok_or(UnindexableKey::SsnHmac)).transpose()?;
                let number = u32::try_from(self.obligor_ends.len()).map_err(|_| UnindexableKey::TooLarge)?;
                self.obligor_ids.push_str(obligor_id);
                self.obligor_ends.push(u32::try_from(self.obligor_ids.len()).map_err(|_| UnindexableKey::TooLarge)?);
                match prefix {
                    Some(prefix) => self.ssns.push((prefix, number)),
                    // Every obligor row has an SSN: a row without one is a case's alone.
                    None => self.holds_obligors_without_rows = true,
                }
                number
            }
        };
        if let Some(case_number) = case_number {
            let value = case_number_value(case_number).ok_or(UnindexableKey::CaseNumber)?;
            self.cases.push((MixedCase::of(value), number));
        }
        Ok(())
    }

    /// The id and number of the obligor added last: the end of the ids.
    fn last_obligor(&self) -> Option<(&str, u32)> {
        let number = self.obligor_ends.len().checked_sub(1)?;
        let start = number.checked_sub(1).map_or(0, |before| self.obligor_ends[before] as usize);
        Some((&self.obligor_ids[start..], number as u32))
    }

    pub fn finish(self) -> RegistryIndex {
        let mut obligor_ids = self.obligor_ids;
        obligor_ids.shrink_to_fit();
        let mut obligor_ends = self.obligor_ends;
        obligor_ends.shrink_to_fit();
        RegistryIndex {
            generation: self.generation,
            obligor_ids,
            obligor_ends,
            cases: Buckets::new(self.cases),
            ssns: Buckets::new(self.ssns),
            holds_obligors_without_rows: self.holds_obligors_without_rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hmac(seed: u8) -> String {
        // 64 hex digits whose first bits vary with the seed.
        format!("{:02x}", seed).repeat(32)
    }

    fn case(text: &str) -> CaseNumber {
        CaseNumber::parse(text).unwrap()
    }

    fn ids(obligors: Vec<ObligorId>) -> Vec<String> {
        obligors.iter().map(|o| o.as_str().to_owned()).collect()
    }

    fn sample() -> RegistryIndex {
        let mut builder = RegistryIndexBuilder::new(7);
        builder.add("OB-1", Some(&hmac(1)), Some("12345678")).unwrap();
        builder.add("OB-1", Some(&hmac(1)), Some("12345679")).unwrap();
        builder.add("OB-2", Some(&hmac(2)), Some("00000000")).unwrap();
        builder.add("OB-3", Some(&hmac(2)), Some("99999999")).unwrap(); // the same SSN as OB-2
        builder.add("OB-4", Some(&hmac(0xff)), None).unwrap(); // no case
        builder.finish()
    }

    #[test]
    fn cases_answer_their_obligor_and_nothing_else() {
        let index = sample();
        assert_eq!(index.generation(), 7);
        assert_eq!(index.generation_of_registered_keys(), Some(7), "every obligor it names has a row");
        assert_eq!(index.len(), (4, 4));
        for (number, owner) in [("12345678", "OB-1"), ("12345679", "OB-1"), ("00000000", "OB-2"), ("99999999", "OB-3")] {
            assert_eq!(index.obligor_of_case(&case(number)).map(|o| o.as_str().to_owned()), Some(owner.to_owned()), "{number}");
        }
        for unknown in ["12345677", "12345680", "00000001", "99999998", "50000000"] {
            assert_eq!(index.obligor_of_case(&case(unknown)), None, "{unknown}");
        }
    }

    #[test]
    fn an_ssn_answers_every_obligor_with_it() {
        let index = sample();
        assert_eq!(ids(index.obligors_with_ssn_hmac(&hmac(1))), ["OB-1"]);
        assert_eq!(ids(index.obligors_with_ssn_hmac(&hmac(2))), ["OB-2", "OB-3"]);
        let obligor = |id: &str| ObligorId::parse(id).unwrap();
        assert!(index.obligor_has_ssn_hmac(&obligor("OB-3"), &hmac(2)));
        assert!(!index.obligor_has_ssn_hmac(&obligor("OB-1"), &hmac(2)));
        assert!(!index.obligor_has_ssn_hmac(&obligor("OB-9"), &hmac(2)));
        assert!(!index.obligor_has_ssn_hmac(&obligor("OB-1"), "not hex"));
        assert_eq!(ids(index.obligors_with_ssn_hmac(&hmac(0xff))), ["OB-4"]);
        assert_eq!(ids(index.obligors_with_ssn_hmac(&hmac(3))), Vec::<String>::new());
        // The gateway writes HMACs in lowercase; other text matches nothing, as in the database.
        assert!(index.obligors_with_ssn_hmac(&hmac(0xff).to_uppercase()).is_empty());
        assert!(index.obligors_with_ssn_hmac("not hex").is_empty());
        assert!(index.obligors_with_ssn_hmac(&hmac(1)[..63]).is_empty());
    }

    #[test]
    fn an_obligor_whose_rows_are_apart_is_still_one_answer() {
        let mut builder = RegistryIndexBuilder::new(1);
        builder.add("OB-1", Some(&hmac(1)), Some("11111111")).unwrap();
        builder.add("OB-2", Some(&hmac(2)), Some("22222222")).unwrap();
        builder.add("OB-1", Some(&hmac(1)), Some("33333333")).unwrap();
        let index = builder.finish();
        assert_eq!(index.obligor_of_case(&case("33333333")).unwrap().as_str(), "OB-1");
        // Held under two numbers, but one obligor with that SSN.
        assert_eq!(ids(index.obligors_with_ssn_hmac(&hmac(1))), ["OB-1"]);
    }

    #[test]
    fn keys_the_index_cannot_hold_are_refused() {
        let mut builder = RegistryIndexBuilder::new(1);
        assert_eq!(builder.add("", Some(&hmac(1)), None), Err(UnindexableKey::ObligorId));
        assert_eq!(builder.add("OB-1", Some("hmac"), None), Err(UnindexableKey::SsnHmac));
        assert_eq!(builder.add("OB-1", Some(&"AB".repeat(32)), None), Err(UnindexableKey::SsnHmac));
        assert_eq!(builder.add("OB-1", Some(&hmac(1)), Some("1234567")), Err(UnindexableKey::CaseNumber));
        assert_eq!(builder.add("OB-2", Some(&hmac(1)), Some("1234567a")), Err(UnindexableKey::CaseNumber));
    }

    /// A case whose obligor has no row: the case answers its obligor, who has no SSN.
    #[test]
    fn a_case_of_an_obligor_without_a_row_is_held_without_an_ssn() {
        let mut builder = RegistryIndexBuilder::new(1);
        builder.add("OB-1", Some(&hmac(1)), Some("11111111")).unwrap();
        builder.add("OB-GONE", None, Some("22222222")).unwrap();
        let index = builder.finish();
        let gone = ObligorId::parse("OB-GONE").unwrap();
        assert_eq!(index.obligor_of_case(&case("22222222")), Some(gone.clone()));
        assert!(!index.obligor_has_ssn_hmac(&gone, &hmac(1)));
        assert_eq!(ids(index.obligors_with_ssn_hmac(&hmac(1))), ["OB-1"]);
        assert_eq!(index.generation_of_registered_keys(), None, "it names an obligor the registry has no row for");
    }

    /// Many keys over every bucket, the first and last included: each found, its neighbours not.
    #[test]
    fn every_key_is_found_among_many() {
        let mut builder = RegistryIndexBuilder::new(1);
        let mut cases = Vec::new();
        for n in 1..20_000u32 {
            let number = n * 4_999; // spread over the range, never 0 or 99999999
            let text = format!("{number:08}");
            let hmac = format!("{:032x}{:032x}", (u128::from(n) << 100) | u128::from(n), n);
            builder.add(&format!("OB-{n}"), Some(&hmac), Some(&text)).unwrap();
            cases.push((text, format!("OB-{n}"), hmac));
        }
        builder.add("OB-LAST", Some(&"f".repeat(64)), Some("99999999")).unwrap();
        builder.add("OB-FIRST", Some(&"0".repeat(64)), Some("00000000")).unwrap();
        let index = builder.finish();
        for (text, owner, hmac) in &cases {
            assert_eq!(index.obligor_of_case(&case(text)).unwrap().as_str(), owner);
            assert_eq!(ids(index.obligors_with_ssn_hmac(hmac)), [owner.clone()]);
        }
        assert_eq!(ids(index.obligors_with_ssn_hmac(&"f".repeat(64))), ["OB-LAST"]);
        assert_eq!(ids(index.obligors_with_ssn_hmac(&"0".repeat(64))), ["OB-FIRST"]);
        assert!(index.heap_bytes() > 20_000 * (4 + 4 + 16 + 4));
    }
}
