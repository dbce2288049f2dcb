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
//! 8 bytes a case and 28 an obligor, plus its id: some 17 MB for that registry.
//!
//! The index answers for one state of the registry, its `generation` (a number the database
//! draws anew with every change to a case or an obligor's SSN): whoever holds it checks the
//! database's generation before trusting it.

use super::ids::{CaseNumber, ObligorId, SsnHmac};
use super::remittance::CaseMatch;

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

/// The first 128 bits of an SSN's HMAC (already uniformly spread), as two halves so that a
/// key and its obligor take 24 bytes, not the 32 a `u128`'s alignment would round them to.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct HmacPrefix {
    high: u64,
    low: u64,
}

impl HmacPrefix {
    fn of(hmac: &SsnHmac) -> HmacPrefix {
        let bytes = hmac.as_bytes();
        let half = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        HmacPrefix { high: half(0), low: half(8) }
    }
}

impl Key for HmacPrefix {
    fn bucket(self) -> usize {
        (self.high >> (64 - BUCKET_BITS)) as usize
    }
}

/// Keys with the obligor (a number) each belongs to, sorted, in buckets. A key sits beside
/// its obligor, so a lookup reads one more cache line than the bucket's bounds, not two.
struct Buckets<K> {
    /// Bucket `b`'s entries are `starts[b]..starts[b + 1]`.
    starts: Vec<u32>,
    entries: Vec<(K, u32)>,
}

impl<K: Key> Buckets<K> {
    fn new(mut entries: Vec<(K, u32)>) -> Buckets<K> {
        entries.sort_unstable();
        entries.dedup();
        entries.shrink_to_fit();
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
        Buckets { starts, entries }
    }

    /// The obligors filed under `key`, in increasing order of their numbers.
    fn get(&self, key: K) -> impl Iterator<Item = u32> + '_ {
        let bucket = key.bucket();
        let (start, end) = (self.starts[bucket] as usize, self.starts[bucket + 1] as usize);
        let entries = &self.entries[start..end];
        let first = entries.partition_point(|(k, _)| *k < key);
        entries[first..].iter().take_while(move |(k, _)| *k == key).map(|&(_, obligor)| obligor)
    }

    fn heap_bytes(&self) -> usize {
        self.starts.capacity() * 4 + self.entries.capacity() * std::mem::size_of::<(K, u32)>()
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
        self.owner_of_case(case).map(|n| self.obligor(n))
    }

    /// Who owns a line's case, and whether that obligor's SSN has the line's HMAC. The two
    /// are compared by number, and only a match reads the obligor's id.
    pub fn case_with_ssn(&self, case: &CaseNumber, hmac: &SsnHmac) -> CaseMatch {
        match self.owner_of_case(case) {
            None => CaseMatch::NoSuchCase,
            Some(owner) if self.ssns.get(HmacPrefix::of(hmac)).any(|n| n == owner) => CaseMatch::SsnMatches(self.obligor(owner)),
            Some(_) => CaseMatch::OtherSsn,
        }
    }

    /// The obligors whose SSN has this HMAC, each once, in the order they were added.
    pub fn obligors_with_ssn(&self, hmac: &SsnHmac) -> Vec<ObligorId> {
        // An obligor is one number (`RegistryIndexBuilder::finish`), and a key's entries
        // were deduplicated, so no obligor comes twice.
        self.ssns.get(HmacPrefix::of(hmac)).map(|n| self.obligor(n)).collect()
    }

    /// Obligors and cases held.
    pub fn len(&self) -> (usize, usize) {
        (self.obligor_ends.len(), self.cases.entries.len())
    }

    /// The memory the index holds, in bytes.
    pub fn heap_bytes(&self) -> usize {
        self.obligor_ids.capacity() + self.obligor_ends.capacity() * 4 + self.cases.heap_bytes() + self.ssns.heap_bytes()
    }

    fn owner_of_case(&self, case: &CaseNumber) -> Option<u32> {
        self.cases.get(MixedCase::of(case_number_value(case.as_str())?)).next()
    }

    fn obligor(&self, number: u32) -> ObligorId {
        let id = nth_id(&self.obligor_ids, &self.obligor_ends, number);
        ObligorId::parse(id).expect("each obligor id was parsed when the index was built")
    }
}

/// Obligor `number`'s id, of ids held one after another, each ending at its `ends`.
fn nth_id<'a>(ids: &'a str, ends: &[u32], number: u32) -> &'a str {
    let n = number as usize;
    let start = if n == 0 { 0 } else { ends[n - 1] as usize };
    &ids[start..ends[n] as usize]
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
    /// Whether each obligor's id was greater than the one before, so no id came twice.
    ids_ascending: bool,
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
            ids_ascending: true,
        }
    }

    /// Adds a row: an obligor, its SSN's HMAC (none for a case whose obligor has no row), and
    /// one of its cases. An obligor whose rows are not one after another is added under a
    /// second number, which [`finish`](Self::finish) makes the first one.
    pub fn add(&mut self, obligor_id: &str, ssn_hmac: Option<&str>, case_number: Option<&str>) -> Result<(), UnindexableKey> {
        let number = match self.last_obligor() {
            // The obligor's next row reuses its number.
            Some((last, number)) if last == obligor_id => number,
            last => {
                ObligorId::parse(obligor_id).map_err(|_| UnindexableKey::ObligorId)?;
                self.ids_ascending &= last.is_none_or(|(last, _)| last < obligor_id);
                let hmac = ssn_hmac.map(|hmac| SsnHmac::from_hex(hmac).ok_or(UnindexableKey::SsnHmac)).transpose()?;
                let number = u32::try_from(self.obligor_ends.len()).map_err(|_| UnindexableKey::TooLarge)?;
                self.obligor_ids.push_str(obligor_id);
                self.obligor_ends.push(u32::try_from(self.obligor_ids.len()).map_err(|_| UnindexableKey::TooLarge)?);
                match hmac {
                    Some(hmac) => self.ssns.push((HmacPrefix::of(&hmac), number)),
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
        let number = u32::try_from(self.obligor_ends.len().checked_sub(1)?).expect("numbers are u32");
        Some((nth_id(&self.obligor_ids, &self.obligor_ends, number), number))
    }

    /// For each number, the first number its obligor was added under; none when the ids came
    /// in increasing order, so no obligor came twice.
    fn first_numbers(&self) -> Option<Vec<u32>> {
        if self.ids_ascending {
            return None;
        }
        let id = |number: u32| nth_id(&self.obligor_ids, &self.obligor_ends, number);
        let count = u32::try_from(self.obligor_ends.len()).expect("numbers are u32");
        let mut by_id: Vec<u32> = (0..count).collect();
        by_id.sort_unstable_by(|&a, &b| id(a).cmp(id(b)).then(a.cmp(&b)));
        let mut first: Vec<u32> = (0..count).collect();
        for pair in by_id.windows(2) {
            if id(pair[0]) == id(pair[1]) {
                first[pair[1] as usize] = first[pair[0] as usize];
            }
        }
        Some(first)
    }

    /// The index, each obligor under one number: two numbers are one obligor only if equal.
    pub fn finish(mut self) -> RegistryIndex {
        if let Some(first) = self.first_numbers() {
            for (_, number) in self.cases.iter_mut() {
                *number = first[*number as usize];
            }
            for (_, number) in self.ssns.iter_mut() {
                *number = first[*number as usize];
            }
        }
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

    fn bytes(hex: &str) -> SsnHmac {
        SsnHmac::from_hex(hex).unwrap()
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
        assert_eq!(ids(index.obligors_with_ssn(&bytes(&hmac(1)))), ["OB-1"]);
        assert_eq!(ids(index.obligors_with_ssn(&bytes(&hmac(2)))), ["OB-2", "OB-3"]);
        assert_eq!(ids(index.obligors_with_ssn(&bytes(&hmac(0xff)))), ["OB-4"]);
        assert_eq!(ids(index.obligors_with_ssn(&bytes(&hmac(3)))), Vec::<String>::new());
    }

    #[test]
    fn a_case_matches_only_with_its_obligors_ssn() {
        let index = sample();
        let matches = |id: &str| CaseMatch::SsnMatches(ObligorId::parse(id).unwrap());
        assert_eq!(index.case_with_ssn(&case("99999999"), &bytes(&hmac(2))), matches("OB-3"));
        assert_eq!(index.case_with_ssn(&case("12345679"), &bytes(&hmac(1))), matches("OB-1"));
        // OB-2 shares OB-3's SSN, but the case is OB-1's.
        assert_eq!(index.case_with_ssn(&case("12345678"), &bytes(&hmac(2))), CaseMatch::OtherSsn);
        assert_eq!(index.case_with_ssn(&case("12345678"), &bytes(&hmac(3))), CaseMatch::OtherSsn);
        assert_eq!(index.case_with_ssn(&case("50000000"), &bytes(&hmac(1))), CaseMatch::NoSuchCase);
    }

    /// Rows of one obligor that are not one after another are still one obligor. (Both
    /// databases order the rows by id, bytewise, so this is for rows not grouped by id.)
    #[test]
    fn an_obligor_whose_rows_are_apart_is_still_one_answer() {
        let mut builder = RegistryIndexBuilder::new(1);
        builder.add("OB-1", Some(&hmac(1)), Some("11111111")).unwrap();
        builder.add("OB-2", Some(&hmac(2)), Some("22222222")).unwrap();
        builder.add("OB-1", Some(&hmac(1)), Some("33333333")).unwrap();
        builder.add("OB-3", Some(&hmac(3)), Some("44444444")).unwrap();
        builder.add("OB-1", Some(&hmac(1)), Some("55555555")).unwrap();
        let index = builder.finish();
        let ob1 = ObligorId::parse("OB-1").unwrap();
        for number in ["11111111", "33333333", "55555555"] {
            assert_eq!(index.obligor_of_case(&case(number)), Some(ob1.clone()), "{number}");
            assert_eq!(index.case_with_ssn(&case(number), &bytes(&hmac(1))), CaseMatch::SsnMatches(ob1.clone()), "{number}");
            assert_eq!(index.case_with_ssn(&case(number), &bytes(&hmac(2))), CaseMatch::OtherSsn, "{number}");
        }
        // One obligor with that SSN, not one a number it was added under.
        assert_eq!(ids(index.obligors_with_ssn(&bytes(&hmac(1)))), ["OB-1"]);
        assert_eq!(ids(index.obligors_with_ssn(&bytes(&hmac(3)))), ["OB-3"]);
    }

    /// The prefix is 128 bits: HMACs that differ in bits 64–127 are two SSNs; HMACs that
    /// differ only after bit 128 are one (a chance of one in 2¹²⁸ a pair, module docs).
    #[test]
    fn an_hmac_is_told_apart_by_its_first_128_bits() {
        let same_start = "0123456789abcdef";
        let first = format!("{same_start}{}{}", "1".repeat(16), "0".repeat(32));
        let second = format!("{same_start}{}{}", "2".repeat(16), "0".repeat(32));
        let second_but_tail = format!("{same_start}{}{}", "2".repeat(16), "f".repeat(32));
        let mut builder = RegistryIndexBuilder::new(1);
        builder.add("OB-1", Some(&first), Some("11111111")).unwrap();
        builder.add("OB-2", Some(&second), Some("22222222")).unwrap();
        let index = builder.finish();
        assert_eq!(ids(index.obligors_with_ssn(&bytes(&first))), ["OB-1"]);
        assert_eq!(ids(index.obligors_with_ssn(&bytes(&second))), ["OB-2"]);
        assert_eq!(index.case_with_ssn(&case("11111111"), &bytes(&second)), CaseMatch::OtherSsn);
        assert_eq!(ids(index.obligors_with_ssn(&bytes(&second_but_tail))), ["OB-2"]);
    }

    /// Ids in decreasing order, none apart: each obligor keeps its own number.
    #[test]
    fn obligors_in_decreasing_order_stay_apart() {
        let mut builder = RegistryIndexBuilder::new(1);
        builder.add("OB-9", Some(&hmac(9)), Some("99999999")).unwrap();
        builder.add("OB-10", Some(&hmac(9)), Some("10101010")).unwrap(); // the same SSN
        builder.add("OB-1", Some(&hmac(1)), Some("11111111")).unwrap();
        let index = builder.finish();
        assert_eq!(ids(index.obligors_with_ssn(&bytes(&hmac(9)))), ["OB-9", "OB-10"]);
        assert_eq!(index.case_with_ssn(&case("10101010"), &bytes(&hmac(9))), CaseMatch::SsnMatches(ObligorId::parse("OB-10").unwrap()));
        assert_eq!(index.case_with_ssn(&case("11111111"), &bytes(&hmac(9))), CaseMatch::OtherSsn);
        assert_eq!(index.len(), (3, 3));
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
        assert_eq!(index.obligor_of_case(&case("22222222")), Some(gone));
        assert_eq!(index.case_with_ssn(&case("22222222"), &bytes(&hmac(1))), CaseMatch::OtherSsn);
        assert_eq!(ids(index.obligors_with_ssn(&bytes(&hmac(1)))), ["OB-1"]);
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
            assert_eq!(ids(index.obligors_with_ssn(&bytes(hmac))), [owner.as_str()]);
            assert_eq!(index.case_with_ssn(&case(text), &bytes(hmac)), CaseMatch::SsnMatches(ObligorId::parse(owner).unwrap()));
        }
        assert_eq!(ids(index.obligors_with_ssn(&bytes(&"f".repeat(64)))), ["OB-LAST"]);
        assert_eq!(ids(index.obligors_with_ssn(&bytes(&"0".repeat(64)))), ["OB-FIRST"]);
        assert!(index.heap_bytes() > 20_000 * (4 + 4 + 16 + 4));
    }
}
