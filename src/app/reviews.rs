//! Review requests of orders (`order-lifecycle.md`): the back office records a parent's
//! request (by mail or fax); within 3 years of the last review, or of the order's start, one
//! without a stated reason is refused, naming the day from which none is needed.

use chrono::NaiveDate;

use super::paging::{self, Page, PageRequest};
use super::{App, AppError, Caller};
use crate::domain::access::Action;
use crate::domain::codes::ProblemCode;
use crate::domain::review::decide;
use crate::domain::OrderId;
use crate::storage::reviews::{NewReview, ReviewOutcome, ReviewRecord};

/// The name of the list of review requests, in its page tokens.
pub const REVIEW_LIST: &str = "reviews";

/// The longest reason a request records.
const MAX_REASON_CHARS: usize = 500;

/// How a request reached the agency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReviewChannel {
    Mail,
    Fax,
}

impl ReviewChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            ReviewChannel::Mail => "MAIL",
            ReviewChannel::Fax => "FAX",
        }
    }
}

/// A parent's request, as the clerk enters it.
#[derive(Clone, Debug)]
pub struct ReviewRequest {
    pub order_id: OrderId,
    pub requested_on: NaiveDate,
    pub channel: ReviewChannel,
    /// The reason or change of circumstance stated; empty when none was.
    pub reason: String,
}

impl App {
    /// Records a review request when the 3-year rule accepts it.
    pub async fn request_review(&self, caller: &Caller, request: ReviewRequest) -> Result<ReviewRecord, AppError> {
        let audit = self.authorize(caller, Action::RequestOrderReview, format!("order:{}", request.order_id)).await?;
        let result = async {
            let reason = request.reason.trim().to_owned();
            if reason.chars().count() > MAX_REASON_CHARS || reason.chars().any(char::is_control) {
                return Err(AppError::invalid("reason", format!("at most {MAX_REASON_CHARS} printable characters")));
            }
            if request.requested_on > self.today() {
                return Err(AppError::invalid("request_date", "a request cannot be dated in the future"));
            }
            let review = NewReview {
                order_id: request.order_id.clone(),
                requested_on: request.requested_on,
                channel: request.channel.as_str(),
                reason: reason.clone(),
                recorded_by: caller.principal.name.clone(),
                recorded_at: self.clock.now_rfc3339(),
            };
            let requested_on = request.requested_on;
            let rule = move |start: NaiveDate, last: Option<NaiveDate>| decide(start, last, requested_on, &reason);
            match self.store.record_review(&review, &rule, &audit).await? {
                ReviewOutcome::Recorded(record) => Ok(record),
                ReviewOutcome::UnknownOrder => Err(AppError::NotFound(format!("order {} is not in the registry", request.order_id))),
                ReviewOutcome::Refused { free_from } => Err(AppError::precondition(
                    ProblemCode::ReviewNeedsReason,
                    format!("order:{}", request.order_id),
                    format!(
                        "order {} was started or last reviewed less than 3 years before {requested_on}: a request needs a \
                         stated reason or change of circumstance until {free_from}",
                        request.order_id
                    ),
                )),
            }
        }
        .await;
        self.audited_write(audit, result).await
    }

    /// Accepted review requests, oldest first, of one order or all.
    pub async fn list_reviews(&self, caller: &Caller, order_id: Option<OrderId>, page: PageRequest) -> Result<Page<ReviewRecord>, AppError> {
        let audit = self.authorize(caller, Action::ListOrderReviews, "reviews").await?;
        let result = async {
            let after = page.id_cursor()?;
            let fetched = self.store.review_requests(order_id.as_ref(), after, page.size + 1).await?;
            Ok(paging::page(REVIEW_LIST, page.size, fetched, |review| review.review_id.to_string()))
        }
        .await;
        self.audited_read(audit, result).await
    }
}

/// The name of the list of projected ends, in its page tokens.
pub const PROJECTED_END_LIST: &str = "projected-ends";

/// An order whose projected end has passed without an end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectedEnd {
    pub order: crate::storage::ChildOrder,
    pub projected_end: NaiveDate,
    pub basis: crate::domain::lifecycle::EndBasis,
}

impl App {
    /// Orders whose projected end (18th birthday, 21st with continuing education, none when
    /// impaired) is on or before today, and that have no end: for the back office to act on.
    pub async fn list_projected_ends(&self, caller: &Caller, page: PageRequest) -> Result<Page<ProjectedEnd>, AppError> {
        use crate::domain::lifecycle::{born_on_or_before_for_age_18, projected_end};
        let audit = self.authorize(caller, Action::ListProjectedEnds, "projected-ends").await?;
        let result = async {
            let mut after = match &page.after {
                Some(cursor) => Some(OrderId::parse(cursor).map_err(|_| AppError::invalid("page_token", "not a page token of this list"))?),
                None => None,
            };
            let today = self.today();
            let born_by = born_on_or_before_for_age_18(today);
            let mut due = Vec::new();
            // Orders of children old enough are read in batches; those still within their 21
            // years (continuing education) or impaired are skipped.
            loop {
                let batch = self.store.orders_without_end_born_by(born_by, after.as_ref(), 500).await?;
                let Some(last) = batch.last() else { break };
                after = Some(last.order_id.clone());
                for order in batch {
                    let projected = projected_end(order.child_birth_date, order.continuing_education == Some(true), order.impaired == Some(true));
                    if let Some((day, basis)) = projected.filter(|(day, _)| *day <= today) {
                        due.push(ProjectedEnd { order, projected_end: day, basis });
                    }
                }
                if due.len() > page.size as usize {
                    break;
                }
            }
            Ok(paging::page(PROJECTED_END_LIST, page.size, due, |end| end.order.order_id.to_string()))
        }
        .await;
        self.audited_read(audit, result).await
    }
}
