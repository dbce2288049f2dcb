//! The unapplied-credit service: converts, calls one `App` method, converts back.

use tonic::{Request, Response, Status};

use super::convert;
use super::orders::order_id;
use super::proto;
use super::services::{caller_of, understood};
use crate::app::credit::CREDIT_LIST;
use crate::app::paging::PageRequest;
use crate::app::AppError;
use crate::domain::access::Action;
use crate::domain::{ObligorId, YearMonth};
use crate::storage::credit::{CreditAction, CreditBalance};

pub struct Credit(pub crate::app::App);

fn obligor_id(text: &str) -> Result<ObligorId, AppError> {
    ObligorId::parse(text.trim()).map_err(|e| AppError::invalid("obligor_id", e.to_string()))
}

fn balance(balance: CreditBalance) -> proto::CreditBalance {
    proto::CreditBalance {
        obligor_id: balance.obligor_id.to_string(),
        last_name: balance.last_name,
        first_name: balance.first_name,
        credit: balance.credit.to_string(),
    }
}

fn action(action: CreditAction) -> proto::CreditAction {
    let kind = if action.kind == "REFUND" { proto::CreditActionKind::Refund } else { proto::CreditActionKind::Apply };
    proto::CreditAction {
        credit_id: action.credit_id,
        obligor_id: action.obligor_id.to_string(),
        kind: kind.into(),
        amount: action.amount.to_string(),
        reference: action.reference.unwrap_or_default(),
        order_id: action.order_id.map(|o| o.to_string()).unwrap_or_default(),
        month: action.month.map(|m| m.to_string()).unwrap_or_default(),
        recorded_by: action.recorded_by,
        record_time: convert::timestamp(&action.recorded_at),
        credit_left: action.credit_left.to_string(),
    }
}

#[tonic::async_trait]
impl proto::credit_service_server::CreditService for Credit {
    async fn list_unapplied_credit(
        &self,
        request: Request<proto::ListUnappliedCreditRequest>,
    ) -> Result<Response<proto::ListUnappliedCreditResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let obligor = match request.obligor_id.trim() {
            "" => Ok(None),
            text => obligor_id(text).map(Some),
        };
        let converted = PageRequest::parse(CREDIT_LIST, request.page_size, &request.page_token).and_then(|page| obligor.map(|o| (o, page)));
        let (obligor, page) = understood(&self.0, &caller, Action::ListUnappliedCredit, converted).await?;
        let page = self.0.list_unapplied_credit(&caller, obligor, page).await?;
        Ok(Response::new(proto::ListUnappliedCreditResponse {
            balances: page.items.into_iter().map(balance).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn refund_credit(&self, request: Request<proto::RefundCreditRequest>) -> Result<Response<proto::RefundCreditResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let converted = match (obligor_id(&request.obligor_id), convert::amount("amount", &request.amount)) {
            (Ok(obligor), Ok(amount)) => Ok((obligor, amount)),
            (obligor, amount) => Err(AppError::every_field([obligor.err(), amount.err()])),
        };
        let (obligor, amount) = understood(&self.0, &caller, Action::RefundCredit, converted).await?;
        let done = self.0.refund_credit(&caller, obligor, amount, &request.reference).await?;
        Ok(Response::new(proto::RefundCreditResponse { action: Some(action(done)) }))
    }

    async fn apply_credit(&self, request: Request<proto::ApplyCreditRequest>) -> Result<Response<proto::ApplyCreditResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let month = match request.month.trim() {
            "" => Ok(None),
            text => YearMonth::parse(text).map(Some).map_err(|e| AppError::invalid("month", e.to_string())),
        };
        let converted = match (obligor_id(&request.obligor_id), order_id("order_id", &request.order_id), convert::amount("amount", &request.amount), month)
        {
            (Ok(obligor), Ok(order), Ok(amount), Ok(month)) => Ok((obligor, order, amount, month)),
            (obligor, order, amount, month) => Err(AppError::every_field([obligor.err(), order.err(), amount.err(), month.err()])),
        };
        let (obligor, order, amount, month) = understood(&self.0, &caller, Action::ApplyCredit, converted).await?;
        let done = self.0.apply_credit(&caller, obligor, order, amount, month).await?;
        Ok(Response::new(proto::ApplyCreditResponse { action: Some(action(done)) }))
    }
}
