//! A file's collections queued by its writer, a segment at a time (migration 0020 on both
//! databases), instead of one by one by the queue's trigger.
//!
//! The queue is keyed (segment, obligor, collection). The trigger queues a collection in
//! segment 0, where its obligor sorts: a 1,000,000-line file's collections went each into
//! another leaf of a tree of text keys, a large part of the time the database spent on the
//! file (docs/performance.md). A segment is numbered by its first collection's id, and
//! collection ids only grow, so a segment written now sorts after those written before (on
//! PostgreSQL, files written at once draw ids turn about, so their segments may interleave:
//! a matter of speed only): its entries, sorted by obligor, go in at the end of the tree, a
//! leaf filled after another.
//! Each distribution chunk reads its range of obligors in every segment (one seek a
//! segment), so segments are kept few and long.

use chrono::NaiveDate;

/// Collections a file queues together, as one segment: about a megabyte waits until queued.
/// A segment is queued once the collections written (on SQLite) or sent (on PostgreSQL, every
/// few thousand lines) take the file to this many.
pub(super) const SEGMENT_COLLECTIONS: usize = 16_384;

/// The fewest collections a file queues as a segment of their own at its end; fewer (a small
/// file, or a large one's last few) go into segment 0, each entry where its obligor sorts, as
/// the trigger queues a payment's. Segments stay few whatever the number of files: at most
/// one for each 4,096 collections queued.
pub(super) const SEGMENT_AT_LEAST: usize = 4_096;

/// A collection a file wrote and has not queued yet: what the queue carries of it.
pub(super) struct Unqueued {
    pub(super) obligor: Box<str>,
    pub(super) collection_id: i64,
    pub(super) cents: i64,
    pub(super) effective_date: NaiveDate,
}

/// The collections a file wrote and has not queued yet.
#[derive(Default)]
pub(super) struct UnqueuedCollections {
    entries: Vec<Unqueued>,
}

/// Collections to queue as one segment, sorted by obligor and then collection.
pub(super) struct Segment {
    pub(super) number: i64,
    pub(super) entries: Vec<Unqueued>,
}

impl UnqueuedCollections {
    pub(super) fn push(&mut self, entry: Unqueued) {
        self.entries.push(entry);
    }

    /// Whether enough wait to be queued as a segment now.
    pub(super) fn fill_a_segment(&self) -> bool {
        self.entries.len() >= SEGMENT_COLLECTIONS
    }

    /// Takes every collection waiting as one segment, numbered by its first collection's id,
    /// or segment 0 when fewer than [`SEGMENT_AT_LEAST`] wait; none when none wait.
    pub(super) fn take_segment(&mut self) -> Option<Segment> {
        let first = self.entries.iter().map(|entry| entry.collection_id).min()?;
        let number = if self.entries.len() >= SEGMENT_AT_LEAST { first } else { 0 };
        let mut entries = std::mem::take(&mut self.entries);
        entries.sort_unstable_by(|a, b| a.obligor.cmp(&b.obligor).then(a.collection_id.cmp(&b.collection_id)));
        Some(Segment { number, entries })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(obligor: &str, collection_id: i64) -> Unqueued {
        Unqueued { obligor: obligor.into(), collection_id, cents: 100, effective_date: NaiveDate::from_ymd_opt(2026, 12, 4).unwrap() }
    }

    fn taken(unqueued: &mut UnqueuedCollections) -> (i64, Vec<(String, i64)>) {
        let segment = unqueued.take_segment().expect("a segment");
        (segment.number, segment.entries.iter().map(|e| (e.obligor.to_string(), e.collection_id)).collect())
    }

    #[test]
    fn a_segment_is_numbered_by_its_first_collection_and_sorted_by_obligor() {
        let mut unqueued = UnqueuedCollections::default();
        assert!(unqueued.take_segment().is_none(), "nothing waits");
        for n in 0..SEGMENT_AT_LEAST as i64 {
            unqueued.push(entry(&format!("OB-{:05}", SEGMENT_AT_LEAST as i64 - n), 1_000 + n));
        }
        assert!(!unqueued.fill_a_segment());
        let (number, entries) = taken(&mut unqueued);
        assert_eq!(number, 1_000);
        assert_eq!(entries.len(), SEGMENT_AT_LEAST);
        assert!(entries.windows(2).all(|pair| pair[0] < pair[1]), "sorted by obligor");
        assert!(unqueued.take_segment().is_none(), "all taken");
    }

    #[test]
    fn a_few_go_into_segment_0_each_obligors_in_collection_order() {
        let mut unqueued = UnqueuedCollections::default();
        for (obligor, id) in [("OB-2", 7), ("OB-1", 9), ("OB-1", 8)] {
            unqueued.push(entry(obligor, id));
        }
        assert_eq!(taken(&mut unqueued), (0, vec![("OB-1".into(), 8), ("OB-1".into(), 9), ("OB-2".into(), 7)]));
    }

    /// Full at exactly its size; a segment of its own from exactly the least.
    #[test]
    fn the_sizes_are_exact() {
        let mut unqueued = UnqueuedCollections::default();
        for n in 1..SEGMENT_COLLECTIONS as i64 {
            unqueued.push(entry("OB-1", n));
        }
        assert!(!unqueued.fill_a_segment(), "one short");
        unqueued.push(entry("OB-1", SEGMENT_COLLECTIONS as i64));
        assert!(unqueued.fill_a_segment());

        let mut unqueued = UnqueuedCollections::default();
        for n in 1..SEGMENT_AT_LEAST as i64 {
            unqueued.push(entry("OB-1", n + 10));
        }
        assert_eq!(taken(&mut unqueued).0, 0, "one short of a segment of their own");
        for n in 1..=SEGMENT_AT_LEAST as i64 {
            unqueued.push(entry("OB-1", n + 10));
        }
        assert_eq!(taken(&mut unqueued).0, 11);
    }
}
