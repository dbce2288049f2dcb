//! Unapplied credit (`order-lifecycle.md`): what each obligor has, and the back office's
//! refunds and applications by hand.

use async_trait::async_trait;

use super::{AuditEntry, StoreResult};
use crate::domain::credit::{CreditRefusal, CreditUse};
use crate::domain::{Money, ObligorId, OrderId, YearMonth};

/// An obligor's unapplied credit left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditBalance {
    pub obligor_id: ObligorId,
    pub last_name: String,
    pub first_name: String,
    pub credit: Money,
}

/// A refund or an application by hand, to record.
#[derive(Clone, Debug)]
pub struct CreditMove {
    pub obligor_id: ObligorId,
    pub amount: Money,
    pub target: CreditUse,
    /// The order credit is applied to; `None` for a refund.
    pub order_id: Option<OrderId>,
    /// The refund's reference; `None` for an application.
    pub reference: Option<String>,
    /// Arrears are those owed before this month; current support up to this month is due.
    pub this_month: YearMonth,
    pub recorded_by: String,
    pub recorded_at: String,
}

/// A recorded action on credit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreditAction {
    pub credit_id: i64,
    pub obligor_id: ObligorId,
    /// REFUND or APPLY.
    pub kind: String,
    pub amount: Money,
    pub reference: Option<String>,
    pub order_id: Option<OrderId>,
    pub month: Option<YearMonth>,
    pub recorded_by: String,
    pub recorded_at: String,
    /// The obligor's credit left after it.
    pub credit_left: Money,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreditOutcome {
    Done(CreditAction),
    Refused(CreditRefusal),
    UnknownObligor,
    /// Not an order of this obligor.
    UnknownOrder,
}

#[async_trait]
pub trait CreditStore: Send + Sync {
    /// Obligors with credit left (one, or all), by obligor id, after `after`, at most `limit`.
    async fn unapplied_credit(&self, obligor: Option<&ObligorId>, after: Option<&ObligorId>, limit: u32) -> StoreResult<Vec<CreditBalance>>;

    /// Moves credit (oldest pool first) with its action row and audit row, in one transaction
    /// that waits for a running distribution; reads the credit left and the order's balance
    /// inside it, so two clerks at once never move the same cent twice.
    async fn move_credit(&self, request: &CreditMove, audit: &AuditEntry) -> StoreResult<CreditOutcome>;
}
