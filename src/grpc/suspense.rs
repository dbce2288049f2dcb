//! The suspense service: converts, calls one `App` method, converts back.

use tonic::{Request, Response, Status};

use super::convert;
use super::proto;
use super::services::{caller_of, understood};
use crate::app::paging::PageRequest;
use crate::app::suspense::{ResolveTarget, SuspenseOrder, SuspenseQuery, SuspenseReturn, SuspenseState, SUSPENSE_LIST};
use crate::app::{App, AppError};
use crate::domain::access::Action;
use crate::domain::ObligorId;
use crate::storage::suspense::SuspenseItem;

pub struct Suspense(pub App);

fn state_name(state: &str) -> proto::SuspenseState {
    match state {
        "OPEN" => proto::SuspenseState::Open,
        "RESOLVED" => proto::SuspenseState::Resolved,
        "RETURNED" => proto::SuspenseState::Returned,
        _ => proto::SuspenseState::Unspecified,
    }
}

fn item(item: SuspenseItem) -> proto::SuspenseItem {
    proto::SuspenseItem {
        suspense_id: item.suspense_id,
        sender: item.sender,
        batch_id: item.batch_id,
        line: item.line,
        employer_fein: item.employer_fein.unwrap_or_default(),
        case_number: item.case_number.unwrap_or_default(),
        ssn_last4: item.ssn_last4.unwrap_or_default(),
        amount: item.amount.to_string(),
        pay_date: item.pay_date.to_string(),
        reason: item.reason,
        state: state_name(&item.state).into(),
        create_time: convert::timestamp(&item.created_at),
        resolved_obligor_id: item.resolved_obligor_id.map(|o| o.to_string()),
        collection_id: item.collection_id,
        return_reason: item.return_reason,
        return_reference: item.return_reference,
        worked_by: item.worked_by.unwrap_or_default(),
        work_time: item.worked_at.as_deref().and_then(convert::timestamp),
    }
}

fn optional_text(text: String) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

fn query(request: &proto::ListSuspenseItemsRequest) -> Result<SuspenseQuery, AppError> {
    let state = match proto::SuspenseState::try_from(request.state) {
        Ok(proto::SuspenseState::Unspecified | proto::SuspenseState::Open) => Ok(SuspenseState::Open),
        Ok(proto::SuspenseState::Resolved) => Ok(SuspenseState::Resolved),
        Ok(proto::SuspenseState::Returned) => Ok(SuspenseState::Returned),
        Err(_) => Err(AppError::invalid("state", "the state is one of SuspenseState's values")),
    };
    let employer_fein = convert::optional_fein("employer_fein", &request.employer_fein);
    let min_amount = request.min_amount.as_deref().map(|a| convert::amount("min_amount", a)).transpose();
    let max_amount = request.max_amount.as_deref().map(|a| convert::amount("max_amount", a)).transpose();
    let order = match proto::SuspenseOrder::try_from(request.order) {
        Ok(proto::SuspenseOrder::Unspecified | proto::SuspenseOrder::OldestFirst) => Ok(SuspenseOrder::OldestFirst),
        Ok(proto::SuspenseOrder::NewestFirst) => Ok(SuspenseOrder::NewestFirst),
        Ok(proto::SuspenseOrder::LargestFirst) => Ok(SuspenseOrder::LargestFirst),
        Ok(proto::SuspenseOrder::SmallestFirst) => Ok(SuspenseOrder::SmallestFirst),
        Err(_) => Err(AppError::invalid("order", "the order is one of SuspenseOrder's values")),
    };
    match (state, employer_fein, min_amount, max_amount, order) {
        (Ok(state), Ok(employer_fein), Ok(min_amount), Ok(max_amount), Ok(order)) => Ok(SuspenseQuery {
            state,
            sender: optional_text(request.sender.clone()),
            employer_fein,
            batch_id: optional_text(request.batch_id.clone()),
            reason: optional_text(request.reason.clone()),
            min_amount,
            max_amount,
            min_age_days: request.min_age_days,
            order,
        }),
        (state, fein, min, max, order) => Err(AppError::every_field([state.err(), fein.err(), min.err(), max.err(), order.err()])),
    }
}

fn target(request: &proto::ResolveSuspenseItemRequest) -> Result<ResolveTarget, AppError> {
    use proto::resolve_suspense_item_request::Target;
    match &request.target {
        Some(Target::ObligorId(id)) => ObligorId::parse(id.trim()).map(ResolveTarget::Obligor).map_err(|e| AppError::invalid("obligor_id", e.to_string())),
        Some(Target::CaseNumber(case)) => convert::case_number("case_number", case).map(ResolveTarget::Case),
        None => Err(AppError::invalid("target", "name the obligor_id or the case_number the money belongs to")),
    }
}

#[tonic::async_trait]
impl proto::suspense_service_server::SuspenseService for Suspense {
    async fn list_suspense_items(
        &self,
        request: Request<proto::ListSuspenseItemsRequest>,
    ) -> Result<Response<proto::ListSuspenseItemsResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let converted = PageRequest::parse(SUSPENSE_LIST, request.page_size, &request.page_token)
            .and_then(|page| query(&request).map(|query| (query, page)));
        let (query, page) = understood(&self.0, &caller, Action::ListSuspenseItems, converted).await?;
        let page = self.0.list_suspense(&caller, query, page).await?;
        Ok(Response::new(proto::ListSuspenseItemsResponse {
            suspense_items: page.items.into_iter().map(item).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_suspense_item(
        &self,
        request: Request<proto::GetSuspenseItemRequest>,
    ) -> Result<Response<proto::GetSuspenseItemResponse>, Status> {
        let caller = caller_of(&request)?;
        let found = self.0.get_suspense_item(&caller, request.into_inner().suspense_id).await?;
        Ok(Response::new(proto::GetSuspenseItemResponse { suspense_item: Some(item(found)) }))
    }

    async fn resolve_suspense_item(
        &self,
        request: Request<proto::ResolveSuspenseItemRequest>,
    ) -> Result<Response<proto::ResolveSuspenseItemResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let target = understood(&self.0, &caller, Action::ResolveSuspenseItem, target(&request)).await?;
        let (resolved, collection) = self.0.resolve_suspense(&caller, request.suspense_id, target).await?;
        Ok(Response::new(proto::ResolveSuspenseItemResponse { suspense_item: Some(item(resolved)), collection: Some(collection.into()) }))
    }

    async fn return_suspense_item(
        &self,
        request: Request<proto::ReturnSuspenseItemRequest>,
    ) -> Result<Response<proto::ReturnSuspenseItemResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let details = SuspenseReturn { reason: request.reason, reference: request.reference };
        let returned = self.0.return_suspense(&caller, request.suspense_id, details).await?;
        Ok(Response::new(proto::ReturnSuspenseItemResponse { suspense_item: Some(item(returned)) }))
    }
}
