//! Unapplied credit (`order-lifecycle.md`): the back office lists it by obligor, refunds it
//! (with the refund's reference) or applies it by hand to one of the obligor's orders, never
//! beyond what is due; each action moves at most the credit left.

use super::paging::{self, Page, PageRequest};
use super::{App, AppError, Caller};
use crate::domain::access::Action;
use crate::domain::codes::ProblemCode;
use crate::domain::credit::{CreditRefusal, CreditUse};
use crate::domain::{Money, ObligorId, OrderId, YearMonth};
use crate::storage::credit::{CreditAction, CreditBalance, CreditMove, CreditOutcome};

/// The name of the list of unapplied credit, in its page tokens.
pub const CREDIT_LIST: &str = "credit";

/// The longest refund reference kept (a check number, an EFT trace).
const MAX_REFERENCE_CHARS: usize = 80;

impl App {
    /// Obligors with unapplied credit left (one, or all), by obligor id.
    pub async fn list_unapplied_credit(&self, caller: &Caller, obligor: Option<ObligorId>, page: PageRequest) -> Result<Page<CreditBalance>, AppError> {
        let audit = self.authorize(caller, Action::ListUnappliedCredit, "credit").await?;
        let result = async {
            let after = match &page.after {
                Some(cursor) => Some(ObligorId::parse(cursor).map_err(|_| AppError::invalid("page_token", "not a page token of this list"))?),
                None => None,
            };
            let fetched = self.store.unapplied_credit(obligor.as_ref(), after.as_ref(), page.size + 1).await?;
            Ok(paging::page(CREDIT_LIST, page.size, fetched, |balance| balance.obligor_id.to_string()))
        }
        .await;
        self.audited_read(audit, result).await
    }

    /// Refunds part or all of an obligor's credit.
    pub async fn refund_credit(&self, caller: &Caller, obligor_id: ObligorId, amount: Money, reference: &str) -> Result<CreditAction, AppError> {
        let audit = self.authorize(caller, Action::RefundCredit, format!("obligor:{obligor_id}")).await?;
        let result = async {
            let reference = reference.trim();
            if reference.is_empty() || reference.chars().count() > MAX_REFERENCE_CHARS || reference.chars().any(char::is_control) {
                return Err(AppError::invalid("reference", format!("the refund's reference: 1 to {MAX_REFERENCE_CHARS} printable characters")));
            }
            let request = self.credit_move(caller, obligor_id, amount, CreditUse::Refund, None, Some(reference.to_owned()))?;
            self.move_credit(request, &audit).await
        }
        .await;
        self.audited_write(audit, result).await
    }

    /// Applies part of an obligor's credit to one of its orders: to a month's current support
    /// (`month`), or to its arrears.
    pub async fn apply_credit(
        &self,
        caller: &Caller,
        obligor_id: ObligorId,
        order_id: OrderId,
        amount: Money,
        month: Option<YearMonth>,
    ) -> Result<CreditAction, AppError> {
        let audit = self.authorize(caller, Action::ApplyCredit, format!("obligor:{obligor_id}")).await?;
        let result = async {
            let target = month.map_or(CreditUse::Arrears, CreditUse::Current);
            let request = self.credit_move(caller, obligor_id, amount, target, Some(order_id), None)?;
            self.move_credit(request, &audit).await
        }
        .await;
        self.audited_write(audit, result).await
    }

    fn credit_move(
        &self,
        caller: &Caller,
        obligor_id: ObligorId,
        amount: Money,
        target: CreditUse,
        order_id: Option<OrderId>,
        reference: Option<String>,
    ) -> Result<CreditMove, AppError> {
        if !amount.is_positive() {
            return Err(AppError::invalid("amount", "an amount above zero"));
        }
        Ok(CreditMove {
            obligor_id,
            amount,
            target,
            order_id,
            reference,
            this_month: YearMonth::of(self.today()),
            recorded_by: caller.principal.name.clone(),
            recorded_at: self.clock.now_rfc3339(),
        })
    }

    async fn move_credit(&self, request: CreditMove, audit: &crate::storage::AuditEntry) -> Result<CreditAction, AppError> {
        let subject = format!("obligor:{}", request.obligor_id);
        match self.store.move_credit(&request, audit).await? {
            CreditOutcome::Done(action) => Ok(action),
            CreditOutcome::UnknownObligor => Err(AppError::NotFound(format!("obligor {} is not in the registry", request.obligor_id))),
            CreditOutcome::UnknownOrder => Err(AppError::NotFound(format!(
                "order {} is not an order of obligor {}",
                request.order_id.as_ref().map(|o| o.as_str()).unwrap_or("-"),
                request.obligor_id
            ))),
            CreditOutcome::Refused(CreditRefusal::MoreThanLeft { left }) => Err(AppError::precondition(
                ProblemCode::CreditNotAvailable,
                subject,
                format!("obligor {} has {left} of unapplied credit left, less than {}", request.obligor_id, request.amount),
            )),
            CreditOutcome::Refused(CreditRefusal::MoreThanDue { due }) => Err(AppError::precondition(
                ProblemCode::CreditBeyondDue,
                subject,
                format!("{} is more than the {due} due there", request.amount),
            )),
            CreditOutcome::Refused(CreditRefusal::MonthNotDue) => {
                Err(AppError::invalid("month", "a month of the order's support, no later than this month"))
            }
        }
    }
}
