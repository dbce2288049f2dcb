//! API keys as recently read from the store, so that a call does not cost a database read to
//! learn who is calling.
//!
//! A revoked key stops working at once on the server that revoked it (the entry is dropped)
//! and within [`KEY_CACHE_TTL`] on every other replica of the same database (entries are
//! re-read once that old). Only keys that exist are kept, and at most [`MAX_CACHED_KEYS`] of
//! them: a flood of made-up key ids costs a database read each, never memory.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::storage::access::ApiKeyRecord;

/// How long a key read from the store is trusted before it is read again: the longest a key
/// revoked on another replica keeps working here.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(5);

/// The most keys kept at once (far more than an agency has).
pub const MAX_CACHED_KEYS: usize = 4096;

/// Where a key is looked up from: its id (bearer tokens) or its client certificate.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyLookup {
    Id(String),
    ClientCert(String),
}

pub struct KeyCache {
    ttl: Duration,
    entries: Mutex<HashMap<KeyLookup, (ApiKeyRecord, Instant)>>,
    /// Bumped by every `forget`: a read that started before a revocation here is not kept.
    generation: AtomicU64,
}

/// A read of a key from the store about to start: when, and the cache's generation then.
#[derive(Clone, Copy, Debug)]
pub struct ReadStarted {
    at: Instant,
    generation: u64,
}

impl KeyCache {
    pub fn new(ttl: Duration) -> KeyCache {
        KeyCache { ttl, entries: Mutex::new(HashMap::new()), generation: AtomicU64::new(0) }
    }

    /// To be taken just before reading a key from the store, and handed to [`KeyCache::put`].
    pub fn read_starting(&self) -> ReadStarted {
        ReadStarted { at: Instant::now(), generation: self.generation.load(Ordering::SeqCst) }
    }

    /// The key, if read from the store less than the TTL ago.
    pub fn get(&self, lookup: &KeyLookup) -> Option<ApiKeyRecord> {
        let entries = self.entries.lock().expect("never poisoned");
        entries.get(lookup).filter(|(_, read_at)| read_at.elapsed() < self.ttl).map(|(key, _)| key.clone())
    }

    /// Keeps a key read from the store by a read that started at `read`: its age counts from
    /// then, and it is not kept at all if a key was forgotten since (the read may have seen
    /// the key before its revocation). When full, entries past their TTL go first, then
    /// everything (the next calls read their keys again).
    pub fn put(&self, lookup: KeyLookup, key: ApiKeyRecord, read: ReadStarted) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().expect("never poisoned");
        if self.generation.load(Ordering::SeqCst) != read.generation {
            return;
        }
        if entries.len() >= MAX_CACHED_KEYS && !entries.contains_key(&lookup) {
            entries.retain(|_, (_, read_at)| read_at.elapsed() < self.ttl);
            if entries.len() >= MAX_CACHED_KEYS {
                entries.clear();
            }
        }
        entries.insert(lookup, (key, read.at));
    }

    /// Forgets a key (revoked here): its next call reads it from the store.
    pub fn forget(&self, key_id: &str) {
        let mut entries = self.entries.lock().expect("never poisoned");
        self.generation.fetch_add(1, Ordering::SeqCst);
        entries.retain(|_, (key, _)| key.key_id != key_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::access::Role;

    fn key(id: &str) -> ApiKeyRecord {
        ApiKeyRecord {
            key_id: id.to_owned(),
            name: "acme".to_owned(),
            role: Role::Vendor,
            feins: Vec::new(),
            secret_sha256: "00".repeat(32),
            client_cert_sha256: Some("ab".repeat(32)),
            created_at: "2026-11-20T00:00:00Z".to_owned(),
            revoked_at: None,
        }
    }

    #[test]
    fn a_key_is_kept_for_its_ttl_and_forgotten_with_every_way_it_was_looked_up() {
        let cache = KeyCache::new(Duration::from_millis(50));
        cache.put(KeyLookup::Id("k1".into()), key("k1"), cache.read_starting());
        cache.put(KeyLookup::ClientCert("ab".repeat(32)), key("k1"), cache.read_starting());
        assert_eq!(cache.get(&KeyLookup::Id("k1".into())), Some(key("k1")));
        cache.forget("k1");
        assert_eq!(cache.get(&KeyLookup::Id("k1".into())), None);
        assert_eq!(cache.get(&KeyLookup::ClientCert("ab".repeat(32))), None);

        cache.put(KeyLookup::Id("k2".into()), key("k2"), cache.read_starting());
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(cache.get(&KeyLookup::Id("k2".into())), None, "past its TTL it is read again");
    }

    #[test]
    fn a_read_that_started_before_a_revocation_here_is_not_kept() {
        let cache = KeyCache::new(Duration::from_secs(60));
        let read = cache.read_starting();
        // Meanwhile the key is revoked on this server...
        cache.forget("k1");
        // ...and the read, which saw the key before its revocation, comes back.
        cache.put(KeyLookup::Id("k1".into()), key("k1"), read);
        assert_eq!(cache.get(&KeyLookup::Id("k1".into())), None, "the stale copy is not kept");
        cache.put(KeyLookup::Id("k1".into()), key("k1"), cache.read_starting());
        assert!(cache.get(&KeyLookup::Id("k1".into())).is_some(), "a read started after it is");
    }

    #[test]
    fn a_key_ages_from_when_its_read_started() {
        let cache = KeyCache::new(Duration::from_millis(50));
        let read = cache.read_starting();
        std::thread::sleep(Duration::from_millis(60)); // a slow read
        cache.put(KeyLookup::Id("k1".into()), key("k1"), read);
        assert_eq!(cache.get(&KeyLookup::Id("k1".into())), None);
    }

    #[test]
    fn the_cache_never_holds_more_than_its_bound_and_a_zero_ttl_keeps_nothing() {
        let cache = KeyCache::new(Duration::from_secs(60));
        for n in 0..MAX_CACHED_KEYS * 3 {
            cache.put(KeyLookup::Id(n.to_string()), key(&n.to_string()), cache.read_starting());
            assert!(cache.entries.lock().unwrap().len() <= MAX_CACHED_KEYS);
        }
        let off = KeyCache::new(Duration::ZERO);
        off.put(KeyLookup::Id("k".into()), key("k"), off.read_starting());
        assert!(off.entries.lock().unwrap().is_empty());
    }
}
