//! The registry keys a remittance file's rows name, gathered as they are written so that the
//! file writer can check each distinct one once, in key order, instead of the database
//! checking every row's keys as it goes (SQLite's foreign keys, PostgreSQL's statement
//! triggers: docs/performance.md, "Ingest on SQLite" and "Ingest on PostgreSQL").
//!
//! Each line names its obligor (in its line, its collection and its termination notice) and
//! each collection its case; every row also names its file, whose row the file's own
//! transaction inserted, so that reference needs no check. The checks run inside the file's
//! transaction, every [`CHECK_EVERY_LINES`] lines and before it commits. A key found there
//! stays good until the commit: on SQLite the file's transaction holds the one write lock,
//! and on PostgreSQL obligors and cases are never deleted or renumbered (migration 0016's
//! triggers refuse it). `gateway verify` checks every stored reference
//! again (`references_in_the_registry`). The check itself is each backend's:
//! `sqlite_references.rs`, `postgres_files.rs`.
//!
//! Lines matched by the registry held in memory need none of this when the file's
//! transaction began at the generation that index was read at ([`LineBatch`]'s
//! `keys_registered_at`): every key they name was in the registry then, and stays, for the
//! same reasons.
//!
//! [`LineBatch`]: super::remittance::LineBatch

use super::remittance::LineToWrite;

/// Lines gathered before their references are checked (the check comes with the first batch
/// that brings them to this many or more). More lines make the lookups more
/// orderly (of 300,000 obligors, 16,384 lines name about one in twenty, several to an index
/// page) and cost memory, about 60 bytes a line while checked: a megabyte here.
pub(super) const CHECK_EVERY_LINES: usize = 16_384;

/// Keys gathered in one buffer: no allocation a key.
#[derive(Default)]
pub(super) struct KeyList {
    text: String,
    /// Where each key ends in `text`: a file's keys of a check are far fewer than 4 GiB.
    ends: Vec<u32>,
}

impl KeyList {
    fn push(&mut self, key: &str) {
        self.text.push_str(key);
        self.ends.push(u32::try_from(self.text.len()).expect("a check's keys fit in 4 GiB"));
    }

    /// The keys gathered, sorted, each once.
    pub(super) fn sorted_distinct(&self) -> Vec<&str> {
        let mut start = 0;
        let mut keys: Vec<&str> = self
            .ends
            .iter()
            .map(|&end| {
                let end = end as usize;
                let key = &self.text[start..end];
                start = end;
                key
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.ends.len()
    }

    fn clear(&mut self) {
        self.text.clear();
        self.ends.clear();
    }
}

/// The registry keys an open file's rows name and nobody has checked yet.
#[derive(Default)]
pub(super) struct GatheredKeys {
    pub(super) obligors: KeyList,
    pub(super) cases: KeyList,
    /// Lines gathered since the last check.
    pub(super) lines: usize,
}

impl GatheredKeys {
    /// Gathers the keys `lines` name; true once enough lines wait for a check.
    pub(super) fn gather(&mut self, lines: &[LineToWrite]) -> bool {
        for line in lines {
            if let Some(obligor) = &line.record.obligor_id {
                self.obligors.push(obligor.as_str());
            }
            if let Some(case) = line.effects.collect.as_ref().and_then(|c| c.case_number.as_deref()) {
                self.cases.push(case);
            }
        }
        self.lines += lines.len();
        self.lines >= CHECK_EVERY_LINES
    }

    /// What to check, table by table: the table, its key column, the keys gathered for it
    /// (sorted, each once) and the refusal of a file naming one it does not hold.
    pub(super) fn to_check(&self) -> [KeysOfTable<'_>; 2] {
        [
            KeysOfTable { table: "obligors", column: "obligor_id", keys: self.obligors.sorted_distinct(), refusal: unknown_obligor },
            KeysOfTable { table: "cases", column: "case_number", keys: self.cases.sorted_distinct(), refusal: unknown_case },
        ]
    }

    /// Forgets the keys, once checked.
    pub(super) fn checked(&mut self) {
        self.obligors.clear();
        self.cases.clear();
        self.lines = 0;
    }
}

/// The keys a file names of one registry table, to be checked against it.
pub(super) struct KeysOfTable<'k> {
    pub(super) table: &'static str,
    pub(super) column: &'static str,
    pub(super) keys: Vec<&'k str>,
    /// The refusal of a file whose lines name a key the table does not hold.
    pub(super) refusal: fn(&str) -> super::StoreError,
}

/// The refusal of a file whose line names `obligor`, which the registry does not hold.
fn unknown_obligor(obligor: &str) -> super::StoreError {
    super::StoreError::Corrupt(format!("a line names obligor {obligor}, which the registry does not hold"))
}

/// The refusal of a file with a line collected for `case`, which the registry does not hold.
fn unknown_case(case: &str) -> super::StoreError {
    super::StoreError::Corrupt(format!("a line is collected for case {case}, which the registry does not hold"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_come_back_sorted_and_each_once() {
        let mut keys = KeyList::default();
        for key in ["b", "a", "b", "", "ccc", "a"] {
            keys.push(key);
        }
        assert_eq!(keys.sorted_distinct(), ["", "a", "b", "ccc"]);
        keys.clear();
        assert!(keys.sorted_distinct().is_empty());
    }
}
