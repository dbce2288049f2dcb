//! Termination notices (`remittance-formats.md`: a line with employment terminated = Y), as
//! the back office works them: listed by employer or obligor, and marked handled once.

use async_trait::async_trait;
use chrono::NaiveDate;

use super::suspense::Worker;
use super::{AuditEntry, StoreResult};
use crate::domain::ObligorId;

/// One notice with whether it was handled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TerminationNotice {
    pub notice_id: i64,
    pub sender: String,
    pub batch_id: String,
    pub line: u64,
    pub employer_fein: Option<String>,
    /// The obligor the line was identified to, when it was.
    pub obligor_id: Option<ObligorId>,
    pub case_number: Option<String>,
    pub ssn_last4: Option<String>,
    pub pay_date: Option<NaiveDate>,
    pub created_at: String,
    pub handled_by: Option<String>,
    pub handled_at: Option<String>,
}

/// Which notices a list shows; every filter given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoticeFilter {
    /// `Some(false)`: only notices not yet handled.
    pub handled: Option<bool>,
    pub employer_fein: Option<String>,
    pub obligor_id: Option<String>,
    /// Only notices of this sender's files.
    pub sender: Option<String>,
}

/// What marking a notice handled came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Handled {
    Done(Box<TerminationNotice>),
    Missing,
    /// Handled already: nothing changed.
    Already(Box<TerminationNotice>),
}

#[async_trait]
pub trait TerminationStore: Send + Sync {
    /// Notices matching `filter`, oldest first, after notice `after`, at most `limit`.
    async fn termination_notices(&self, filter: &NoticeFilter, after: Option<i64>, limit: u32) -> StoreResult<Vec<TerminationNotice>>;

    /// Marks a notice handled, with its audit row, once.
    async fn mark_notice_handled(&self, notice_id: i64, worker: &Worker, audit: &AuditEntry) -> StoreResult<Handled>;
}
