//! What the store keeps of remittance files: the file, its lines with their outcomes, the
//! collections of applied lines, the suspense queue and termination notices.
//!
//! A file is written through a [`RemittanceWriter`]: one transaction from the first line to
//! `finish`, so a crash or a refusal mid-file leaves nothing of it.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{AuditEntry, StoreError, StoreResult};
use crate::domain::registry_index::{RegistryIndex, RegistryIndexBuilder, Unindexable};
pub use crate::domain::remittance::LineCounts;
use crate::domain::{Money, ObligorId};

/// The file as received, before its lines.
#[derive(Clone, Debug)]
pub struct NewRemittance {
    pub sender: String,
    pub batch_id: String,
    /// CSV, XML or NACHA.
    pub format: &'static str,
    pub content_sha256: String,
    pub received_at: String,
    pub received_on: NaiveDate,
}

/// An accepted file and the counts of its acknowledgment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemittanceSummary {
    pub remittance_id: i64,
    pub sender: String,
    pub batch_id: String,
    pub format: String,
    pub content_sha256: String,
    pub received_at: String,
    pub received_on: NaiveDate,
    pub counts: LineCounts,
}

/// A problem of a line, as stored and read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredProblem {
    pub code: String,
    pub field: String,
    pub severity: String,
    pub message: String,
}

/// One line of a file with its outcome, as written and read back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredLine {
    pub line: u64,
    /// APPLIED, APPLIED_BY_SSN, SUSPENSE or REJECTED.
    pub status: String,
    pub employer_fein: Option<String>,
    pub case_number: Option<String>,
    pub ssn_last4: Option<String>,
    pub amount: Option<Money>,
    pub pay_date: Option<NaiveDate>,
    pub obligor_id: Option<ObligorId>,
    pub prenote: bool,
    pub problems: Vec<StoredProblem>,
}

/// What happens to a line besides being recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LineEffects {
    /// Money for an identified obligor: becomes a PAYROLL collection effective on the pay date.
    pub collect: Option<PayrollCollection>,
    /// Money held for the back office, with the reason and the SSN's HMAC for later matching.
    pub suspense: Option<SuspenseHold>,
    /// The employee left the employer.
    pub termination_notice: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayrollCollection {
    /// The registry case the line named, when it named a known one (not when matched by SSN).
    pub case_number: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuspenseHold {
    pub reason: String,
    pub ssn_hmac: Option<String>,
}

/// A line to write: its record and its effects.
#[derive(Clone, Debug)]
pub struct LineToWrite {
    pub record: StoredLine,
    pub effects: LineEffects,
}

/// A batch of a file's lines, with what vouches for the registry keys they name.
#[derive(Clone, Debug)]
pub struct LineBatch {
    pub lines: Vec<LineToWrite>,
    /// The registry's generation at which every obligor and case these lines name had its row
    /// (they were matched by an index read at it, which names no other:
    /// `RegistryIndex::generation_of_registered_keys`), if one vouches for them. A file whose
    /// transaction found the registry at this generation as it began does not look them up
    /// again: they were in the registry then, and are still there when it commits (on SQLite
    /// the file's transaction holds the one write lock, so nothing changes the registry; on
    /// PostgreSQL obligors and cases are never deleted or renumbered, as migration 0016's
    /// triggers refuse it). Lines vouched for at any other generation, or at none, are looked
    /// up (`file_references.rs`).
    pub keys_registered_at: Option<i64>,
}

impl From<Vec<LineToWrite>> for LineBatch {
    /// Lines whose keys nothing vouches for: the writer looks them up.
    fn from(lines: Vec<LineToWrite>) -> LineBatch {
        LineBatch { lines, keys_registered_at: None }
    }
}

impl LineToWrite {
    /// Money collected needs an obligor, an amount and a date; money held, an amount and a
    /// date. A line that breaks this is a bug upstream, refused before anything is written.
    pub(super) fn check_effects(&self) -> StoreResult<()> {
        let record = &self.record;
        if self.effects.collect.is_some() {
            self.collected()?;
        }
        if self.effects.suspense.is_some() && (record.amount.is_none() || record.pay_date.is_none()) {
            return Err(StoreError::Corrupt(format!("line {} is held without amount or date", record.line)));
        }
        Ok(())
    }

    /// What a collected line collects: its obligor, amount and pay date, or the refusal of a
    /// line without all three (which [`check_effects`](Self::check_effects) gives first).
    pub(super) fn collected(&self) -> StoreResult<(&str, Money, NaiveDate)> {
        let record = &self.record;
        match (&record.obligor_id, record.amount, record.pay_date) {
            (Some(obligor), Some(amount), Some(pay_date)) => Ok((obligor.as_str(), amount, pay_date)),
            _ => Err(StoreError::Corrupt(format!("line {} is collected without obligor, amount or date", record.line))),
        }
    }
}

impl StoredLine {
    /// The problems as stored: a JSON array, `[]` for a clean line without serialising it.
    pub(super) fn problems_json(&self) -> String {
        if self.problems.is_empty() {
            "[]".to_owned()
        } else {
            serde_json::to_string(&self.problems).expect("problems serialise")
        }
    }
}

impl RemittanceSummary {
    /// The summary of a file just committed with these counts.
    pub(super) fn committed(remittance_id: i64, remittance: NewRemittance, counts: LineCounts) -> RemittanceSummary {
        RemittanceSummary {
            remittance_id,
            sender: remittance.sender,
            batch_id: remittance.batch_id,
            format: remittance.format.to_owned(),
            content_sha256: remittance.content_sha256,
            received_at: remittance.received_at,
            received_on: remittance.received_on,
            counts,
        }
    }
}

/// Who the registry says a batch of lines may belong to: case number → obligor, and SSN
/// HMAC → obligors. Whether a case's obligor has a line's SSN is read from the second, since
/// the batch's lookup asks for the HMAC of every SSN its lines carry.
#[derive(Clone, Debug, Default)]
pub struct DirectoryPage {
    pub cases: HashMap<String, ObligorId>,
    pub obligors_by_ssn: HashMap<String, Vec<ObligorId>>,
}

/// Which files a list shows; every filter given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileFilter {
    pub sender: Option<String>,
    /// Files with a line of this employer (9 digits).
    pub employer_fein: Option<String>,
    pub received_from: Option<NaiveDate>,
    pub received_to: Option<NaiveDate>,
}

/// One suspense item, for the suspense export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuspenseRecord {
    pub suspense_id: i64,
    pub batch_id: String,
    pub line: u64,
    pub case_number: Option<String>,
    pub ssn_last4: Option<String>,
    pub amount: Money,
    pub pay_date: NaiveDate,
    pub reason: String,
    pub state: String,
}

/// The refusal of a batch, or of the end, of a file one of whose batches failed: nothing after
/// a failure is written, so no file is committed without a batch its writer was sent.
pub(super) fn after_a_failed_batch(why: &str) -> StoreError {
    StoreError::Corrupt(format!("a batch of the file failed before this one ({why}); nothing more of it is written"))
}

/// Writes one file inside one transaction. Dropping it without `finish` rolls back.
#[async_trait]
pub trait RemittanceWriter: Send {
    /// Writes a batch of lines; taken by value, since SQLite's writer runs on a thread of its own.
    /// A writer may answer a batch's failure late, with the next call or with `finish`. After
    /// any failure the writer is to be dropped (rolling the file back), never finished: each
    /// writer refuses every later batch and its end (`after_a_failed_batch`).
    async fn write_lines(&mut self, batch: LineBatch) -> StoreResult<()>;
    /// Records the counts and commits the file.
    async fn finish(self: Box<Self>, counts: LineCounts) -> StoreResult<RemittanceSummary>;
}

#[async_trait]
pub trait RemittanceStore: Send + Sync {
    async fn remittance_by_batch(&self, sender: &str, batch_id: &str) -> StoreResult<Option<RemittanceSummary>>;
    async fn remittance_by_content(&self, sender: &str, content_sha256: &str) -> StoreResult<Option<RemittanceSummary>>;
    /// Files matching `filter`, newest first, those received before file `before` (an id)
    /// when given.
    async fn remittances(&self, filter: &FileFilter, before: Option<i64>, limit: u32) -> StoreResult<Vec<RemittanceSummary>>;
    /// Starts writing a file; `audit` is written when it commits. `Conflict` when the
    /// sender's batch id was taken meanwhile.
    async fn begin_remittance(&self, remittance: NewRemittance, audit: AuditEntry) -> StoreResult<Box<dyn RemittanceWriter>>;
    async fn remittance_lines_after(&self, remittance_id: i64, after_line: u64, limit: u32) -> StoreResult<Vec<StoredLine>>;
    /// The cases and SSN HMACs a batch of lines quotes, as the registry holds them. Read
    /// beside the file's transaction, not in it, so that a file's lines are matched while
    /// the lines before them are being written: the registry a file is matched against
    /// cannot change under it (on SQLite the file holds the one write lock; on PostgreSQL
    /// the file's own statements read committed rows too, as these do).
    async fn directory(&self, case_numbers: Vec<String>, ssn_hmacs: Vec<String>) -> StoreResult<DirectoryPage>;
    /// The registry's generation (migration 0021): a random number drawn anew by every change
    /// to a case's obligor or an obligor's SSN, whoever makes it. An index of the registry
    /// read at this generation answers as [`directory`](Self::directory) would.
    async fn registry_generation(&self) -> StoreResult<i64>;
    /// The whole registry's cases and SSN HMACs with the generation they are at, read in one
    /// snapshot; the key that stopped the reading when one cannot be held in the index.
    async fn registry_index(&self) -> StoreResult<Result<RegistryIndex, Unindexable>>;
    async fn suspense_after(&self, after_id: i64, limit: u32) -> StoreResult<Vec<SuspenseRecord>>;
}

/// The registry's generation (migration 0021).
pub(super) const REGISTRY_GENERATION_QUERY: &str = "SELECT generation FROM registry_generation";

/// Every obligor with its SSN's HMAC and each of its cases (or none), and every case whose
/// obligor has no row (with no HMAC: possible only where foreign keys were not enforced), an
/// obligor's rows together, each row with the registry's generation: one statement, so one
/// snapshot on either database. An empty registry is one row of NULLs, with its generation.
pub(super) const REGISTRY_ROWS_QUERY: &str = "SELECT g.generation, o.obligor_id, o.ssn_hmac, c.case_number \
     FROM registry_generation g LEFT JOIN obligors o ON TRUE LEFT JOIN cases c ON c.obligor_id = o.obligor_id \
     UNION ALL SELECT g.generation, c.obligor_id, NULL, c.case_number FROM registry_generation g JOIN cases c \
     ON NOT EXISTS (SELECT 1 FROM obligors o WHERE o.obligor_id = c.obligor_id) \
     ORDER BY 2";

/// Builds a [`RegistryIndex`] from the rows of [`REGISTRY_ROWS_QUERY`].
#[derive(Default)]
pub(super) struct RegistryRows {
    builder: Option<RegistryIndexBuilder>,
    unindexable: Option<Unindexable>,
}

impl RegistryRows {
    /// Adds a row; whether to read on (not once a key could not be held).
    pub(super) fn add(&mut self, generation: i64, obligor_id: Option<&str>, ssn_hmac: Option<&str>, case_number: Option<&str>) -> bool {
        let builder = self.builder.get_or_insert_with(|| RegistryIndexBuilder::new(generation));
        if let Some(obligor_id) = obligor_id {
            if let Err(key) = builder.add(obligor_id, ssn_hmac, case_number) {
                self.unindexable = Some(Unindexable { generation, key });
                return false;
            }
        }
        true
    }

    /// The index; sorting its keys takes about a tenth of a second at 300,000 obligors, so a
    /// caller on the async runtime runs this on a blocking thread.
    pub(super) fn finish(self) -> StoreResult<Result<RegistryIndex, Unindexable>> {
        match (self.unindexable, self.builder) {
            (Some(unindexable), _) => Ok(Err(unindexable)),
            (None, Some(builder)) => Ok(Ok(builder.finish())),
            (None, None) => Err(StoreError::Corrupt("the registry's generation row is missing".into())),
        }
    }
}
