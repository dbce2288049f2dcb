//! The suspense queue as the back office works it (`case-registry.md`, "Working the suspense
//! queue"): items listed with filters, each resolved to an obligor (a new collection) or
//! returned to its sender, once.

use async_trait::async_trait;
use chrono::NaiveDate;

use super::{AuditEntry, CollectionRecord, StoreResult};
use crate::domain::{CaseNumber, Money, ObligorId};

/// One suspense item with how it was worked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuspenseItem {
    pub suspense_id: i64,
    pub sender: String,
    pub batch_id: String,
    pub line: u64,
    pub employer_fein: Option<String>,
    /// As the line gave it (masked when it was an SSN).
    pub case_number: Option<String>,
    pub ssn_last4: Option<String>,
    pub amount: Money,
    pub pay_date: NaiveDate,
    /// Why it is in suspense: the line's problem code.
    pub reason: String,
    /// OPEN, RESOLVED or RETURNED.
    pub state: String,
    pub created_at: String,
    pub resolved_obligor_id: Option<ObligorId>,
    pub collection_id: Option<i64>,
    pub return_reason: Option<String>,
    pub return_reference: Option<String>,
    pub worked_by: Option<String>,
    pub worked_at: Option<String>,
}

/// Which items a list shows; every filter given must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SuspenseFilter {
    /// OPEN, RESOLVED or RETURNED.
    pub state: String,
    pub sender: Option<String>,
    pub employer_fein: Option<String>,
    pub batch_id: Option<String>,
    pub reason: Option<String>,
    pub min_amount: Option<Money>,
    pub max_amount: Option<Money>,
    /// Items received before this day (so at least so many days old).
    pub received_before: Option<NaiveDate>,
    pub order: SuspenseOrder,
}

/// The order a list of items comes in; ties between equal amounts go oldest first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SuspenseOrder {
    #[default]
    OldestFirst,
    NewestFirst,
    LargestFirst,
    SmallestFirst,
}

/// Where a page of a list ends: its last item (and that item's amount, for the orders by
/// amount).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SuspenseCursor {
    pub amount_cents: i64,
    pub suspense_id: i64,
}

/// Who works an item, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Worker {
    pub name: String,
    pub at: String,
}

/// What resolving or returning an item came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Worked<T> {
    Done(T),
    /// No such item.
    Missing,
    /// The item was worked already (by someone else, perhaps a moment ago): nothing changed.
    NotOpen(Box<SuspenseItem>),
    /// Resolving to an obligor the registry does not hold: nothing changed.
    UnknownObligor,
}

#[async_trait]
pub trait SuspenseStore: Send + Sync {
    async fn suspense_item(&self, suspense_id: i64) -> StoreResult<Option<SuspenseItem>>;

    /// Items matching `filter`, in its order, after `after`, at most `limit`.
    async fn suspense_items(&self, filter: &SuspenseFilter, after: Option<SuspenseCursor>, limit: u32) -> StoreResult<Vec<SuspenseItem>>;

    /// Resolves an OPEN item to `obligor`: in one transaction the item is marked, a PAYROLL
    /// collection effective on its pay date is made, and the audit row written.
    async fn resolve_suspense(
        &self,
        suspense_id: i64,
        obligor: &ObligorId,
        case_number: Option<&CaseNumber>,
        worker: &Worker,
        audit: &AuditEntry,
    ) -> StoreResult<Worked<(SuspenseItem, CollectionRecord)>>;

    /// Returns an OPEN item to its sender, with a reason and the return's reference.
    async fn return_suspense(
        &self,
        suspense_id: i64,
        reason: &str,
        reference: &str,
        worker: &Worker,
        audit: &AuditEntry,
    ) -> StoreResult<Worked<SuspenseItem>>;
}
