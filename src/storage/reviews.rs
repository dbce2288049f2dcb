//! Review requests of orders (`order-lifecycle.md`), recorded when the rule accepts them.

use async_trait::async_trait;
use chrono::NaiveDate;

use super::{AuditEntry, StoreResult};
use crate::domain::{CaseNumber, OrderId};

/// An accepted request, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewRecord {
    pub review_id: i64,
    pub order_id: OrderId,
    pub case_number: CaseNumber,
    pub requested_on: NaiveDate,
    /// MAIL or FAX.
    pub channel: String,
    /// Empty when none was needed.
    pub reason: String,
    pub recorded_by: String,
    pub recorded_at: String,
}

/// A request to record.
#[derive(Clone, Debug)]
pub struct NewReview {
    pub order_id: OrderId,
    pub requested_on: NaiveDate,
    pub channel: &'static str,
    pub reason: String,
    pub recorded_by: String,
    pub recorded_at: String,
}

/// Decides, inside the recording transaction, from the order's start and its last accepted
/// review: `Err(day)` refuses, naming the day from which no reason is needed.
pub type ReviewRule = dyn Fn(NaiveDate, Option<NaiveDate>) -> Result<(), NaiveDate> + Send + Sync;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReviewOutcome {
    Recorded(ReviewRecord),
    UnknownOrder,
    Refused { free_from: NaiveDate },
}

#[async_trait]
pub trait ReviewStore: Send + Sync {
    /// Records the request if `rule` accepts it, with its audit row; the order's last review
    /// is read in the same transaction, so two requests at once are decided one after the other.
    async fn record_review(&self, review: &NewReview, rule: &ReviewRule, audit: &AuditEntry) -> StoreResult<ReviewOutcome>;

    /// Accepted requests, oldest first, of one order or all, after `after`, at most `limit`.
    async fn review_requests(&self, order_id: Option<&OrderId>, after: Option<i64>, limit: u32) -> StoreResult<Vec<ReviewRecord>>;
}
