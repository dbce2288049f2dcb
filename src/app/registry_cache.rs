//! The registry index this server matches files' lines with (`domain/registry_index.rs`),
//! kept while it holds the database's registry and read again, in the background, when not.
//!
//! Each batch of lines asks the database for the registry's generation (one point read: a
//! number drawn anew by every change, migrations 0021) and uses the index only if it was read
//! at that generation; otherwise the batch is looked up in the database as before, and a new
//! index is read beside it, once at a time. So the index never answers for a registry that
//! has changed since, whoever changed it (an import on this server or another replica,
//! `gateway admin`, a hand-written statement), and a small file sent just after an import
//! waits for no index: it is matched from the database.
//!
//! Memory: one index at a time (about 16 MB for 300,000 obligors with 600,000 cases); the one
//! the database has moved past is let go as soon as a batch finds it stale, before the new
//! one is read, so two are not held (batches still using the old one keep it until they end).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::registry_index::RegistryIndex;
use crate::metrics::Metrics;
use crate::storage::Store;

/// How long after a failed read no other is started (each batch would otherwise start one).
const AFTER_A_FAILED_READ: Duration = Duration::from_secs(10);

/// The registry index, and whether a new one is being read.
pub struct RegistryCache {
    state: Mutex<CacheState>,
    /// Where the index held is shown (`gateway_registry_index_*`).
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct CacheState {
    index: Option<Arc<RegistryIndex>>,
    /// A read of the registry is under way.
    reading: bool,
    /// The last generation a batch found while a read was under way: a read that ends at
    /// another generation reads again.
    found_while_reading: Option<i64>,
    /// The generation last found holding a key the index cannot hold, so that such a
    /// registry is not read again for each batch.
    unindexable: Option<i64>,
    /// When the last read failed.
    failed_at: Option<Instant>,
}

impl RegistryCache {
    pub fn new(metrics: Arc<Metrics>) -> RegistryCache {
        RegistryCache { state: Mutex::default(), metrics }
    }

    /// The index, if it holds the registry at `generation` (the database's, just read).
    /// Otherwise none, and a read of a new index is started in the background, unless one
    /// is under way (it reads again if it ends at another generation), this generation cannot
    /// be indexed, or a read failed less than [`AFTER_A_FAILED_READ`] ago.
    pub fn index_at(self: &Arc<Self>, store: &Arc<dyn Store>, generation: i64) -> Option<Arc<RegistryIndex>> {
        {
            let mut state = self.lock();
            if let Some(index) = &state.index {
                if index.generation() == generation {
                    return Some(index.clone());
                }
                // Stale (or this batch read the generation before the index was read: the
                // next batch reads it again, and the index with it).
                state.index = None;
                self.metrics.set_registry_index(0, 0);
            }
            if state.reading {
                state.found_while_reading = Some(generation);
                return None;
            }
            let failed_lately = state.failed_at.is_some_and(|at| at.elapsed() < AFTER_A_FAILED_READ);
            if state.unindexable == Some(generation) || failed_lately {
                return None;
            }
            state.reading = true;
        }
        // Made before the task, so a task dropped unpolled (the runtime ending) ends the read too.
        let ends = ReadEnds(self.clone());
        let store = store.clone();
        tokio::spawn(async move {
            ends.0.read_index(&*store).await;
            drop(ends);
        });
        None
    }

    /// The state; a panic while it was held (none is known) leaves it whole, so it is used.
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Reads the index until it holds the generation the batches found meanwhile. The caller
    /// holds the [`ReadEnds`] that marks the read's end.
    async fn read_index(&self, store: &dyn Store) {
        loop {
            let started = Instant::now();
            self.lock().found_while_reading = None;
            let read = store.registry_index().await;
            let mut state = self.lock();
            match read {
                Ok(Ok(index)) => {
                    if state.found_while_reading.is_some_and(|found| found != index.generation()) {
                        continue; // The registry changed while it was read: this one is stale.
                    }
                    let (obligors, cases) = index.len();
                    tracing::info!(
                        obligors,
                        cases,
                        mib = index.heap_bytes() / (1 << 20),
                        ms = started.elapsed().as_millis() as u64,
                        "registry index read"
                    );
                    if index.generation_of_registered_keys().is_none() {
                        // Matching still works; only the writer's shortcut is lost, silently
                        // but for this line (docs/reliability.md, "A file's references to the registry").
                        tracing::warn!(
                            "the registry has cases whose obligor has no row (foreign keys were not enforced): \
                             each file's references to it are looked up again as the file is written"
                        );
                    }
                    self.metrics.set_registry_index(index.generation(), index.heap_bytes());
                    state.index = Some(Arc::new(index));
                }
                Ok(Err(unindexable)) => {
                    tracing::warn!(%unindexable, "the registry cannot be held in memory; files are matched from the database");
                    state.unindexable = Some(unindexable.generation);
                }
                Err(error) => {
                    tracing::warn!(%error, "reading the registry index failed; files are matched from the database until it is read");
                    state.failed_at = Some(Instant::now());
                }
            }
            return;
        }
    }
}

/// Marks the end of a read of the index when dropped: however the read ends, a panic or a
/// task never run included, another can start after it.
struct ReadEnds(Arc<RegistryCache>);

impl Drop for ReadEnds {
    fn drop(&mut self) {
        self.0.lock().reading = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{AuditEntry, RegistryEntry};

    const REGISTRY: &str = "\
obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears
OB-1,123-45-6789,Smith,John,12345678,A,300.00,2026-11,100.00
";

    async fn import(store: &Arc<dyn Store>, registry: &str) {
        let pii = crate::app::PiiKey::from_hex(&"ab".repeat(32)).unwrap();
        let entries: Vec<RegistryEntry> = crate::formats::registry::read_registry(registry.as_bytes(), crate::formats::FileLimits::STANDARD)
            .unwrap()
            .into_iter()
            .map(|row| {
                let hmac = pii.ssn_hmac(&row.ssn);
                RegistryEntry::from_row(row, hmac)
            })
            .collect();
        let audit = AuditEntry {
            at: "2026-12-05T12:00:00Z".into(),
            request_id: "test".into(),
            actor: "test".into(),
            key_id: None,
            role: "back-office".into(),
            action: "ImportRegistry".into(),
            object: String::new(),
            outcome: "OK".into(),
        };
        store.import_registry(&entries, &audit).await.unwrap();
    }

    async fn settled(cache: &RegistryCache) {
        while cache.lock().reading {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn cache() -> Arc<RegistryCache> {
        Arc::new(RegistryCache::new(Arc::new(Metrics::default())))
    }

    #[tokio::test]
    async fn an_index_is_read_once_used_while_current_and_let_go_when_stale() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::storage::connect(&format!("sqlite://{}", dir.path().join("gateway.db").display())).await.unwrap();
        import(&store, REGISTRY).await;
        let generation = store.registry_generation().await.unwrap();
        let cache = cache();

        // The first batch is matched from the database; the index is read beside it, once.
        assert!(cache.index_at(&store, generation).is_none());
        assert!(cache.lock().reading);
        assert!(cache.index_at(&store, generation).is_none(), "a batch during the read waits for nothing");
        settled(&cache).await;
        let index = cache.index_at(&store, generation).expect("the index, read");
        assert_eq!((index.generation(), index.len()), (generation, (1, 1)));
        assert!(cache.metrics.encode().contains(&format!("gateway_registry_index_generation {generation}")));

        // The registry changes: the first batch to find it lets the index go and reads anew.
        import(&store, &format!("{REGISTRY}OB-2,223-45-6789,Doe,Jane,22345678,C,150.00,2026-11,0.00\n")).await;
        let changed = store.registry_generation().await.unwrap();
        assert_ne!(changed, generation);
        assert!(cache.index_at(&store, changed).is_none());
        assert!(cache.metrics.encode().contains("gateway_registry_index_generation 0"));
        settled(&cache).await;
        assert_eq!(cache.index_at(&store, changed).expect("read again").len(), (2, 2));
        // An import that changes nothing keeps the generation, and the index.
        import(&store, &format!("{REGISTRY}OB-2,223-45-6789,Doe,Jane,22345678,C,150.00,2026-11,0.00\n")).await;
        assert_eq!(store.registry_generation().await.unwrap(), changed);
    }

    #[tokio::test]
    async fn a_registry_that_cannot_be_indexed_is_not_read_again_for_each_batch() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
        let store = crate::storage::connect(&url).await.unwrap();
        import(&store, REGISTRY).await;
        let by_hand = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query("UPDATE obligors SET ssn_hmac = 'not an hmac'").execute(&by_hand).await.unwrap();
        by_hand.close().await;
        let generation = store.registry_generation().await.unwrap();
        let cache = cache();
        assert!(cache.index_at(&store, generation).is_none());
        settled(&cache).await;
        assert_eq!(cache.lock().unindexable, Some(generation));
        assert!(cache.index_at(&store, generation).is_none());
        assert!(!cache.lock().reading, "not read again at the same generation");
    }
}
