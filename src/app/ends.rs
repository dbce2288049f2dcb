//! Order ends (`order-lifecycle.md`): the back office records one (one of six reasons, its
//! date), or withdraws it. An end recorded after the money corrects the current support paid
//! for later months, by new entries the next distribution run applies again.

use chrono::NaiveDate;

use super::{App, AppError, Caller};
use crate::domain::access::Action;
use crate::domain::codes::ProblemCode;
use crate::domain::lifecycle::{EndReason, EndRefusal};
use crate::domain::OrderId;
use crate::storage::ends::{EndOutcome, EndRecord, NewEnd, WithdrawOutcome};

/// How far ahead an end may be dated: a court's order ends support at a known date, rarely
/// more than a year out; anything later is more likely a typing error.
const MAX_DAYS_AHEAD: i64 = 366;

impl App {
    /// Records an end against an order and corrects what was paid for months after it.
    pub async fn record_order_end(&self, caller: &Caller, order_id: OrderId, reason: EndReason, end_date: NaiveDate) -> Result<EndRecord, AppError> {
        let audit = self.authorize(caller, Action::RecordOrderEnd, format!("order:{order_id}")).await?;
        let result = async {
            if !EndReason::RECORDED.contains(&reason) {
                return Err(AppError::invalid("reason", "one of the six reasons of an end"));
            }
            if (end_date - self.today()).num_days() > MAX_DAYS_AHEAD {
                return Err(AppError::invalid("end_date", format!("at most {MAX_DAYS_AHEAD} days ahead")));
            }
            let end = NewEnd {
                order_id: order_id.clone(),
                reason,
                end_date,
                recorded_by: caller.principal.name.clone(),
                recorded_at: self.clock.now_rfc3339(),
            };
            match self.store.record_end(&end, &audit).await? {
                EndOutcome::Recorded(record) => Ok(record),
                EndOutcome::UnknownOrder => Err(unknown_order(&order_id)),
                EndOutcome::Refused(EndRefusal::BeforeStart(start)) => {
                    Err(AppError::invalid("end_date", format!("order {order_id} starts in {start}: an end cannot be before it")))
                }
                EndOutcome::Refused(EndRefusal::AlreadyEnded(on)) => Err(AppError::precondition(
                    ProblemCode::OrderAlreadyEnded,
                    format!("order:{order_id}"),
                    format!("order {order_id} already has an end recorded on {on}: withdraw it first"),
                )),
                EndOutcome::Refused(EndRefusal::EndedByRegistry(on)) => Err(AppError::precondition(
                    ProblemCode::OrderAlreadyEnded,
                    format!("order:{order_id}"),
                    format!("the case registry ends order {order_id} on {on}, on or before {end_date}"),
                )),
            }
        }
        .await;
        self.audited_write(audit, result).await
    }

    /// Withdraws the back office's end of an order (the court's decision reversed).
    pub async fn withdraw_order_end(&self, caller: &Caller, order_id: OrderId) -> Result<EndRecord, AppError> {
        let audit = self.authorize(caller, Action::WithdrawOrderEnd, format!("order:{order_id}")).await?;
        let result = async {
            let at = self.clock.now_rfc3339();
            match self.store.withdraw_end(&order_id, &caller.principal.name, &at, &audit).await? {
                WithdrawOutcome::Withdrawn(record) => Ok(record),
                WithdrawOutcome::UnknownOrder => Err(unknown_order(&order_id)),
                WithdrawOutcome::NothingToWithdraw => Err(AppError::precondition(
                    ProblemCode::NoEndToWithdraw,
                    format!("order:{order_id}"),
                    format!("order {order_id} has no end recorded by the back office in force"),
                )),
            }
        }
        .await;
        self.audited_write(audit, result).await
    }
}

pub(super) fn unknown_order(order_id: &OrderId) -> AppError {
    AppError::NotFound(format!("order {order_id} is not in the registry"))
}
