//! The termination-notice service: converts, calls one `App` method, converts back.

use tonic::{Request, Response, Status};

use super::convert;
use super::proto;
use super::services::{caller_of, understood};
use crate::app::paging::PageRequest;
use crate::app::terminations::{NoticeQuery, NOTICE_LIST};
use crate::app::{App, AppError};
use crate::domain::access::Action;
use crate::domain::ObligorId;
use crate::storage::terminations::TerminationNotice;

pub struct Terminations(pub App);

fn notice(notice: TerminationNotice) -> proto::TerminationNotice {
    proto::TerminationNotice {
        notice_id: notice.notice_id,
        sender: notice.sender,
        batch_id: notice.batch_id,
        line: notice.line,
        employer_fein: notice.employer_fein.unwrap_or_default(),
        obligor_id: notice.obligor_id.map(|o| o.to_string()).unwrap_or_default(),
        case_number: notice.case_number.unwrap_or_default(),
        ssn_last4: notice.ssn_last4.unwrap_or_default(),
        pay_date: notice.pay_date.map(|d| d.to_string()).unwrap_or_default(),
        create_time: convert::timestamp(&notice.created_at),
        handled_by: notice.handled_by.unwrap_or_default(),
        handle_time: notice.handled_at.as_deref().and_then(convert::timestamp),
    }
}

fn query(request: &proto::ListTerminationNoticesRequest) -> Result<NoticeQuery, AppError> {
    let fein = convert::optional_fein("employer_fein", &request.employer_fein);
    let obligor = match request.obligor_id.trim() {
        "" => Ok(None),
        text => ObligorId::parse(text).map(Some).map_err(|e| AppError::invalid("obligor_id", e.to_string())),
    };
    match (fein, obligor) {
        (Ok(employer_fein), Ok(obligor_id)) => Ok(NoticeQuery { handled: request.handled, employer_fein, obligor_id }),
        (fein, obligor) => Err(AppError::every_field([fein.err(), obligor.err()])),
    }
}

#[tonic::async_trait]
impl proto::termination_service_server::TerminationService for Terminations {
    async fn list_termination_notices(
        &self,
        request: Request<proto::ListTerminationNoticesRequest>,
    ) -> Result<Response<proto::ListTerminationNoticesResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let converted = PageRequest::parse(NOTICE_LIST, request.page_size, &request.page_token)
            .and_then(|page| query(&request).map(|query| (query, page)));
        let (query, page) = understood(&self.0, &caller, Action::ListTerminationNotices, converted).await?;
        let page = self.0.list_termination_notices(&caller, query, page).await?;
        Ok(Response::new(proto::ListTerminationNoticesResponse {
            termination_notices: page.items.into_iter().map(notice).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn mark_termination_notice_handled(
        &self,
        request: Request<proto::MarkTerminationNoticeHandledRequest>,
    ) -> Result<Response<proto::MarkTerminationNoticeHandledResponse>, Status> {
        let caller = caller_of(&request)?;
        let handled = self.0.mark_notice_handled(&caller, request.into_inner().notice_id).await?;
        Ok(Response::new(proto::MarkTerminationNoticeHandledResponse { termination_notice: Some(notice(handled)) }))
    }
}
