//! The order service: converts, calls one `App` method, converts back.

use tonic::{Request, Response, Status};

use super::convert;
use super::proto;
use super::services::{caller_of, understood};
use crate::app::obligors::{ObligorQuery, OBLIGOR_LIST};
use crate::app::paging::PageRequest;
use crate::storage::obligors::ObligorSummary;
use crate::app::reviews::{ProjectedEnd, ReviewChannel, ReviewRequest, PROJECTED_END_LIST, REVIEW_LIST};
use crate::domain::lifecycle::EndBasis;
use crate::app::{App, AppError};
use crate::domain::access::Action;
use crate::domain::OrderId;
use crate::domain::lifecycle::EndReason;
use crate::storage::ends::EndRecord;
use crate::storage::reviews::ReviewRecord;

pub struct Orders(pub App);

fn review(record: ReviewRecord) -> proto::OrderReview {
    let channel = match record.channel.as_str() {
        "MAIL" => proto::ReviewChannel::Mail,
        "FAX" => proto::ReviewChannel::Fax,
        _ => proto::ReviewChannel::Unspecified,
    };
    proto::OrderReview {
        review_id: record.review_id,
        order_id: record.order_id.to_string(),
        case_number: record.case_number.to_string(),
        request_date: record.requested_on.to_string(),
        channel: channel.into(),
        reason: record.reason,
        recorded_by: record.recorded_by,
        record_time: convert::timestamp(&record.recorded_at),
    }
}

pub(super) fn end_reason(reason: EndReason) -> proto::EndReason {
    match reason {
        EndReason::ChildMarried => proto::EndReason::ChildMarried,
        EndReason::ChildDied => proto::EndReason::ChildDied,
        EndReason::Military => proto::EndReason::Military,
        EndReason::SelfSupporting => proto::EndReason::SelfSupporting,
        EndReason::Age18 => proto::EndReason::Age18,
        EndReason::Age21 => proto::EndReason::Age21,
        EndReason::RegistryImport => proto::EndReason::RegistryImport,
    }
}

fn recorded_reason(value: i32) -> Result<EndReason, AppError> {
    let reason = proto::EndReason::try_from(value).ok().and_then(|reason| EndReason::RECORDED.into_iter().find(|r| end_reason(*r) == reason));
    reason.ok_or_else(|| AppError::invalid("reason", "one of the six reasons: END_REASON_CHILD_MARRIED … END_REASON_AGE_21"))
}

pub(super) fn order_end(end: EndRecord) -> proto::OrderEnd {
    proto::OrderEnd {
        end_id: end.end_id,
        order_id: end.order_id.to_string(),
        reason: end_reason(end.reason).into(),
        end_date: end.end_date.to_string(),
        recorded_by: end.recorded_by,
        record_time: convert::timestamp(&end.recorded_at),
        withdrawn_by: end.withdrawn_by.unwrap_or_default(),
        withdraw_time: end.withdrawn_at.as_deref().and_then(convert::timestamp),
        corrected: end.corrected.to_string(),
        corrected_pools: end.corrected_pools,
    }
}

pub(super) fn order_id(field: &'static str, text: &str) -> Result<OrderId, AppError> {
    OrderId::parse(text.trim()).map_err(|e| AppError::invalid(field, e.to_string()))
}

fn review_request(request: proto::RequestOrderReviewRequest) -> Result<ReviewRequest, AppError> {
    let order = order_id("order_id", &request.order_id);
    let date = convert::date("request_date", &request.request_date);
    let channel = match proto::ReviewChannel::try_from(request.channel) {
        Ok(proto::ReviewChannel::Mail) => Ok(ReviewChannel::Mail),
        Ok(proto::ReviewChannel::Fax) => Ok(ReviewChannel::Fax),
        _ => Err(AppError::invalid("channel", "the channel is REVIEW_CHANNEL_MAIL or REVIEW_CHANNEL_FAX")),
    };
    match (order, date, channel) {
        (Ok(order_id), Ok(requested_on), Ok(channel)) => Ok(ReviewRequest { order_id, requested_on, channel, reason: request.reason }),
        (order, date, channel) => Err(AppError::every_field([order.err(), date.err(), channel.err()])),
    }
}

fn projected(end: ProjectedEnd) -> proto::ProjectedEnd {
    proto::ProjectedEnd {
        order_id: end.order.order_id.to_string(),
        case_number: end.order.case_number.to_string(),
        obligor_id: end.order.obligor_id.to_string(),
        child_birth_date: end.order.child_birth_date.to_string(),
        projected_end_date: end.projected_end.to_string(),
        basis: match end.basis {
            EndBasis::Age18 => proto::EndBasis::Age18,
            EndBasis::Age21 => proto::EndBasis::Age21,
        }
        .into(),
    }
}

fn obligor(found: ObligorSummary) -> proto::ObligorSummary {
    proto::ObligorSummary {
        obligor_id: found.obligor_id.to_string(),
        last_name: found.last_name,
        first_name: found.first_name,
        ssn_last4: found.ssn_last4,
        orders: found
            .orders
            .into_iter()
            .map(|order| proto::ObligorOrder {
                order_id: order.id.to_string(),
                case_number: order.case_number.to_string(),
                monthly_amount: order.monthly_amount.to_string(),
                start_month: order.start_month.to_string(),
                opening_arrears: order.opening_arrears.to_string(),
                end_date: order.end_date.map(|d| d.to_string()).unwrap_or_default(),
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl proto::order_service_server::OrderService for Orders {
    async fn search_obligors(&self, request: Request<proto::SearchObligorsRequest>) -> Result<Response<proto::SearchObligorsResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let query = ObligorQuery::new(&request.case_number, &request.last_name, &request.ssn_last4);
        let page = PageRequest::parse(OBLIGOR_LIST, request.page_size, &request.page_token);
        let converted = match (query, page) {
            (Ok(query), Ok(page)) => Ok((query, page)),
            (query, page) => Err(AppError::every_field([query.err(), page.err()])),
        };
        let (query, page) = understood(&self.0, &caller, Action::SearchObligors, converted).await?;
        let page = self.0.search_obligors(&caller, query, page).await?;
        Ok(Response::new(proto::SearchObligorsResponse { obligors: page.items.into_iter().map(obligor).collect(), next_page_token: page.next_page_token }))
    }

    async fn list_projected_ends(
        &self,
        request: Request<proto::ListProjectedEndsRequest>,
    ) -> Result<Response<proto::ListProjectedEndsResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let page = PageRequest::parse(PROJECTED_END_LIST, request.page_size, &request.page_token);
        let page = understood(&self.0, &caller, Action::ListProjectedEnds, page).await?;
        let page = self.0.list_projected_ends(&caller, page).await?;
        Ok(Response::new(proto::ListProjectedEndsResponse {
            projected_ends: page.items.into_iter().map(projected).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn request_order_review(
        &self,
        request: Request<proto::RequestOrderReviewRequest>,
    ) -> Result<Response<proto::RequestOrderReviewResponse>, Status> {
        let caller = caller_of(&request)?;
        let converted = review_request(request.into_inner());
        let request = understood(&self.0, &caller, Action::RequestOrderReview, converted).await?;
        let recorded = self.0.request_review(&caller, request).await?;
        Ok(Response::new(proto::RequestOrderReviewResponse { review: Some(review(recorded)) }))
    }

    async fn list_order_reviews(
        &self,
        request: Request<proto::ListOrderReviewsRequest>,
    ) -> Result<Response<proto::ListOrderReviewsResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let order = match request.order_id.trim() {
            "" => Ok(None),
            text => order_id("order_id", text).map(Some),
        };
        let converted = PageRequest::parse(REVIEW_LIST, request.page_size, &request.page_token).and_then(|page| order.map(|o| (o, page)));
        let (order, page) = understood(&self.0, &caller, Action::ListOrderReviews, converted).await?;
        let page = self.0.list_reviews(&caller, order, page).await?;
        Ok(Response::new(proto::ListOrderReviewsResponse { reviews: page.items.into_iter().map(review).collect(), next_page_token: page.next_page_token }))
    }

    async fn record_order_end(
        &self,
        request: Request<proto::RecordOrderEndRequest>,
    ) -> Result<Response<proto::RecordOrderEndResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let converted = match (order_id("order_id", &request.order_id), recorded_reason(request.reason), convert::date("end_date", &request.end_date)) {
            (Ok(order), Ok(reason), Ok(date)) => Ok((order, reason, date)),
            (order, reason, date) => Err(AppError::every_field([order.err(), reason.err(), date.err()])),
        };
        let (order, reason, date) = understood(&self.0, &caller, Action::RecordOrderEnd, converted).await?;
        let end = self.0.record_order_end(&caller, order, reason, date).await?;
        Ok(Response::new(proto::RecordOrderEndResponse { end: Some(order_end(end)) }))
    }

    async fn withdraw_order_end(
        &self,
        request: Request<proto::WithdrawOrderEndRequest>,
    ) -> Result<Response<proto::WithdrawOrderEndResponse>, Status> {
        let caller = caller_of(&request)?;
        let converted = order_id("order_id", &request.into_inner().order_id);
        let order = understood(&self.0, &caller, Action::WithdrawOrderEnd, converted).await?;
        let end = self.0.withdraw_order_end(&caller, order).await?;
        Ok(Response::new(proto::WithdrawOrderEndResponse { end: Some(order_end(end)) }))
    }
}
