//! Order ends (`order-lifecycle.md`): recorded by the back office or by a registry import,
//! withdrawn, and the corrections an end recorded after the money makes.

use async_trait::async_trait;
use chrono::NaiveDate;

use super::{AuditEntry, StoreResult};
use crate::domain::lifecycle::{EndReason, EndRefusal};
use crate::domain::{Money, OrderId};

/// An end as stored, with what its correction freed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndRecord {
    pub end_id: i64,
    pub order_id: OrderId,
    pub reason: EndReason,
    pub end_date: NaiveDate,
    pub recorded_by: String,
    pub recorded_at: String,
    pub withdrawn_by: Option<String>,
    pub withdrawn_at: Option<String>,
    /// Current support moved from months after the end into correction pools.
    pub corrected: Money,
    /// The pools it corrected.
    pub corrected_pools: u64,
}

/// An end the back office records.
#[derive(Clone, Debug)]
pub struct NewEnd {
    pub order_id: OrderId,
    pub reason: EndReason,
    pub end_date: NaiveDate,
    pub recorded_by: String,
    pub recorded_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndOutcome {
    Recorded(EndRecord),
    Refused(EndRefusal),
    UnknownOrder,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WithdrawOutcome {
    Withdrawn(EndRecord),
    /// The order has no end of the back office in force.
    NothingToWithdraw,
    UnknownOrder,
}

#[async_trait]
pub trait EndStore: Send + Sync {
    /// Records the end if the rule allows it, moves the order's end date, and writes the
    /// corrections of current support already paid for months after it, with its audit
    /// row, in one transaction (which waits for a running distribution).
    async fn record_end(&self, end: &NewEnd, audit: &AuditEntry) -> StoreResult<EndOutcome>;

    /// Withdraws the back office's end in force: the order's end is the registry's again (or
    /// none). Money already moved stays where the correction put it.
    async fn withdraw_end(&self, order_id: &OrderId, by: &str, at: &str, audit: &AuditEntry) -> StoreResult<WithdrawOutcome>;

    /// Every end of an order, withdrawn ones included, oldest first.
    async fn ends_of_order(&self, order_id: &OrderId) -> StoreResult<Vec<EndRecord>>;
}
