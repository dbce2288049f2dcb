//! Obligors and their orders: the search (by case number, name or the SSN's last four), an
//! order's statement with its review requests and its end, and the orders whose projected end
//! has come.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::error::ConsoleError;
use super::page::{self, csrf, empty, field, layout, money, next_page, notice, FieldKind};
use super::{Console, Signed};
use crate::app::obligors::{ObligorQuery, OBLIGOR_LIST};
use crate::app::paging::PageRequest;
use crate::app::reviews::{ReviewChannel, ReviewRequest, PROJECTED_END_LIST, REVIEW_LIST};
use crate::app::{date_field, optional_date_field as optional_date, AppError};
use crate::domain::explain::StatementItem;
use crate::domain::lifecycle::{EndBasis, EndReason};
use crate::domain::OrderId;

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    #[serde(default)]
    case_number: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    ssn_last4: String,
    #[serde(default)]
    page_token: String,
}

pub async fn search(State(console): State<Console>, signed: Signed, Query(query): Query<SearchQuery>) -> Result<Html<String>, ConsoleError> {
    let asked = !(query.case_number.trim().is_empty() && query.last_name.trim().is_empty() && query.ssn_last4.trim().is_empty());
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut found = None;
    if asked {
        let searched = match ObligorQuery::new(&query.case_number, &query.last_name, &query.ssn_last4) {
            Ok(search) => console.app.search_obligors(&signed.caller, search, PageRequest::parse(OBLIGOR_LIST, 50, &query.page_token)?).await,
            Err(error) => Err(error),
        };
        match searched {
            Ok(page) => found = Some(page),
            Err(AppError::InvalidArgument { field, message }) => errors.push((field.to_owned(), message)),
            Err(AppError::InvalidFields(violations)) => errors.extend(violations.into_iter().map(|v| (v.field, v.description))),
            Err(other) => return Err(other.into()),
        }
    } else {
        // Reading the page is allowed only to whom may search.
        console.app.check_role(&signed.caller, crate::domain::access::Action::SearchObligors).await?;
    }
    let error = |name: &str| errors.iter().find(|(field, _)| field == name).map(|(_, message)| message.as_str());
    let body = html! {
        form.filters method="get" action="/obligors" role="search" {
            (field("case_number", "Case number", &query.case_number, error("case_number"), FieldKind::Text { required: false, hint: Some("8 digits") }))
            (field("last_name", "Last name starts with", &query.last_name, error("last_name"), FieldKind::Text { required: false, hint: None }))
            (field("ssn_last4", "SSN, last 4", &query.ssn_last4, error("ssn_last4"), FieldKind::Text { required: false, hint: Some("6789") }))
            button type="submit" { "Find" }
        }
        @match &found {
            None => (empty("Find an obligor by one of its case numbers, the start of its last name, or its SSN's last four digits.")),
            Some(page) if page.items.is_empty() => (empty("No obligor matches. Check the case number, or search by name or SSN instead.")),
            Some(page) => {
                table {
                    caption.visually-hidden { "Obligors found, by obligor id" }
                    thead { tr {
                        th scope="col" { "Obligor" } th scope="col" { "Name" } th scope="col" { "SSN" }
                        th scope="col" { "Order" } th scope="col" { "Case" } th.num scope="col" { "Monthly" } th scope="col" { "Since" } th scope="col" { "Ends" }
                    } }
                    tbody {
                        @for obligor in &page.items {
                            @for (i, order) in obligor.orders.iter().enumerate() {
                                tr {
                                    @if i == 0 {
                                        td rowspan=(obligor.orders.len()) { (obligor.obligor_id) }
                                        td rowspan=(obligor.orders.len()) { (obligor.last_name) ", " (obligor.first_name) }
                                        td rowspan=(obligor.orders.len()) { "•••-••-" (obligor.ssn_last4) }
                                    }
                                    td { a href=(order_href(&order.id)) { (order.id) } }
                                    td { (order.case_number) }
                                    td.num { (money(order.monthly_amount)) }
                                    td { (order.start_month) }
                                    td { (order.end_date.map(|d| d.to_string()).unwrap_or_else(|| "—".to_owned())) }
                                }
                            }
                            @if obligor.orders.is_empty() {
                                tr { td { (obligor.obligor_id) } td { (obligor.last_name) ", " (obligor.first_name) } td { "•••-••-" (obligor.ssn_last4) } td colspan="5" { "No order" } }
                            }
                        }
                    }
                }
                (next_page("/obligors", &[("case_number", query.case_number.clone()), ("last_name", query.last_name.clone()), ("ssn_last4", query.ssn_last4.clone())], &page.next_page_token))
            }
        }
    };
    Ok(layout(&signed, "Obligors", "/obligors", body))
}

pub fn order_href(order_id: &OrderId) -> String {
    format!("/orders/{}", page::url_encode(order_id.as_str()))
}

#[derive(Deserialize, Default)]
pub struct StatementQuery {
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// What the order page's forms keep when shown again, and what was just done.
#[derive(Default)]
struct OrderForms {
    done: Option<String>,
    review: ReviewForm,
    review_error: Option<String>,
    end: EndForm,
    end_error: Option<String>,
}

async fn order_page(console: &Console, signed: &Signed, order_id: OrderId, range: &StatementQuery, forms: OrderForms, status: StatusCode) -> Result<Response, ConsoleError> {
    let from = optional_date("from", &range.from)?;
    let to = optional_date("to", &range.to)?;
    let explained = console.app.explain_order(&signed.caller, order_id.clone(), from, to).await?;
    let reviews = console.app.list_reviews(&signed.caller, Some(order_id.clone()), PageRequest::parse(REVIEW_LIST, 20, "")?).await?;
    let statement = &explained.statement;
    let here = order_href(&order_id);
    let body = html! {
        @if let Some(done) = &forms.done { (notice(done)) }
        dl.counts {
            dt { "Obligor" } dd { (explained.obligor_id) }
            dt { "Case" } dd { (explained.order.case_number) }
            dt { "Monthly support" } dd.num { (money(explained.order.monthly_amount)) }
            dt { "Ends" } dd { (explained.order.end_date.map(|d| d.to_string()).unwrap_or_else(|| "no end".to_owned())) }
            dt { "Owed on " (statement.from) } dd.num { (money(statement.opening)) }
            dt { "Fell due" } dd.num { (money(statement.accrued)) }
            dt { "Paid to the order" } dd.num { (money(statement.allocated)) }
            dt { "Owed on " (statement.to) } dd.num { (money(statement.closing)) }
        }
        h2 { "Statement" }
        form.filters method="get" action=(here) {
            div.field { label for="field-from" { "From" } input type="date" id="field-from" name="from" value=(range.from); }
            div.field { label for="field-to" { "To" } input type="date" id="field-to" name="to" value=(range.to); }
            button type="submit" { "Show" }
        }
        @if statement.lines.is_empty() { (empty("Nothing happened on this order in these dates.")) } @else {
            table {
                caption.visually-hidden { "Statement lines, oldest first" }
                thead { tr { th scope="col" { "Date" } th scope="col" { "What" } th.num scope="col" { "Change" } th.num scope="col" { "Owed after" } } }
                tbody {
                    @for line in &statement.lines {
                        tr { td { (line.date) } td { (statement_item(&line.item)) } td.num { (money(line.change)) } td.num { (money(line.balance)) } }
                    }
                }
            }
        }
        div.cards {
            section.card aria-labelledby="reviews" {
                h2 id="reviews" { "Review requests" }
                @if reviews.items.is_empty() { (empty("No review has been requested.")) } @else {
                    table {
                        thead { tr { th scope="col" { "Requested" } th scope="col" { "By" } th scope="col" { "Reason" } th scope="col" { "Recorded by" } } }
                        tbody { @for review in &reviews.items { tr { td { (review.requested_on) } td { (review.channel) } td { (review.reason) } td { (review.recorded_by) } } } }
                    }
                }
                h3 { "Record a request" }
                form method="post" action=(format!("{here}/reviews")) {
                    (csrf(signed))
                    @if let Some(error) = &forms.review_error { p.field-error role="alert" { (error) } }
                    div.field { label for="field-requested_on" { "Received on" } input type="date" id="field-requested_on" name="requested_on" required value=(forms.review.requested_on); }
                    div.field {
                        label for="field-channel" { "Received by" }
                        select id="field-channel" name="channel" {
                            option value="MAIL" selected[forms.review.channel != "FAX"] { "Mail" }
                            option value="FAX" selected[forms.review.channel == "FAX"] { "Fax" }
                        }
                    }
                    (field("reason", "Reason or change of circumstance (needed within 3 years of the last review)", &forms.review.reason, None, FieldKind::Text { required: false, hint: None }))
                    button type="submit" { "Record the request" }
                }
            }
            section.card aria-labelledby="end" {
                h2 id="end" { "End of the order" }
                @if let Some(error) = &forms.end_error { p.field-error role="alert" { (error) } }
                form method="post" action=(format!("{here}/end")) {
                    (csrf(signed))
                    div.field {
                        label for="field-end-reason" { "Why it ends" }
                        select id="field-end-reason" name="reason" {
                            @for reason in EndReason::RECORDED { option value=(reason.as_str()) selected[forms.end.reason == reason.as_str()] { (reason.as_str()) } }
                        }
                    }
                    div.field { label for="field-end_date" { "End date (its month is owed in full)" } input type="date" id="field-end_date" name="end_date" required value=(forms.end.end_date); }
                    button type="submit" { "Record the end" }
                }
                form method="post" action=(format!("{here}/end/withdraw")) {
                    (csrf(signed))
                    p { "A court's decision reversed: the later months are due again." }
                    button type="submit" { "Withdraw the end in force" }
                }
            }
        }
    };
    Ok((status, layout(signed, &format!("Order {order_id}"), "/obligors", body)).into_response())
}

fn parse_order(order_id: &str) -> Result<OrderId, ConsoleError> {
    OrderId::parse(order_id).map_err(|_| ConsoleError::NotFound(format!("no order {order_id}")))
}

pub async fn order(
    State(console): State<Console>,
    signed: Signed,
    Path(order_id): Path<String>,
    Query(range): Query<StatementQuery>,
) -> Result<Response, ConsoleError> {
    order_page(&console, &signed, parse_order(&order_id)?, &range, OrderForms::default(), StatusCode::OK).await
}

#[derive(Deserialize, Default, Clone)]
pub struct ReviewForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    requested_on: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    reason: String,
}

pub async fn request_review(State(console): State<Console>, signed: Signed, Path(order_id): Path<String>, Form(form): Form<ReviewForm>) -> Result<Response, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    let order_id = parse_order(&order_id)?;
    let request = match date_field("requested_on", &form.requested_on) {
        Ok(requested_on) => Ok(ReviewRequest {
            order_id: order_id.clone(),
            requested_on,
            channel: if form.channel == "FAX" { ReviewChannel::Fax } else { ReviewChannel::Mail },
            reason: form.reason.clone(),
        }),
        Err(error) => Err(error),
    };
    let result = match request {
        Ok(request) => console.app.request_review(&signed.caller, request).await,
        Err(error) => Err(error),
    };
    let forms = match result {
        Ok(review) => OrderForms { done: Some(format!("Review request {} recorded.", review.review_id)), ..OrderForms::default() },
        Err(error @ (AppError::InvalidArgument { .. } | AppError::InvalidFields(_) | AppError::FailedPrecondition { .. })) => {
            OrderForms { review_error: Some(error.to_string()), review: form, ..OrderForms::default() }
        }
        Err(other) => return Err(other.into()),
    };
    let status = if forms.done.is_some() { StatusCode::OK } else { StatusCode::UNPROCESSABLE_ENTITY };
    order_page(&console, &signed, order_id, &StatementQuery::default(), forms, status).await
}

#[derive(Deserialize, Default, Clone)]
pub struct EndForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    end_date: String,
}

pub async fn record_end(State(console): State<Console>, signed: Signed, Path(order_id): Path<String>, Form(form): Form<EndForm>) -> Result<Response, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    let order_id = parse_order(&order_id)?;
    let reason = EndReason::RECORDED.into_iter().find(|r| r.as_str() == form.reason).ok_or_else(|| AppError::invalid("reason", "one of the six reasons"));
    let date = date_field("end_date", &form.end_date);
    let result = match (reason, date) {
        (Ok(reason), Ok(date)) => console.app.record_order_end(&signed.caller, order_id.clone(), reason, date).await,
        (reason, date) => Err(AppError::every_field([reason.err(), date.err()])),
    };
    end_answer(&console, &signed, order_id, result.map(|end| format!("End recorded: from {} on, ${} of current support moved to be applied again.", end.end_date, end.corrected)), form).await
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn withdraw_end(State(console): State<Console>, signed: Signed, Path(order_id): Path<String>, Form(form): Form<CsrfOnly>) -> Result<Response, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    let order_id = parse_order(&order_id)?;
    let result = console.app.withdraw_order_end(&signed.caller, order_id.clone()).await;
    end_answer(&console, &signed, order_id, result.map(|end| format!("The end of {} was withdrawn.", end.end_date)), EndForm::default()).await
}

async fn end_answer(console: &Console, signed: &Signed, order_id: OrderId, result: Result<String, AppError>, typed: EndForm) -> Result<Response, ConsoleError> {
    let (forms, status) = match result {
        Ok(done) => (OrderForms { done: Some(done), ..OrderForms::default() }, StatusCode::OK),
        Err(error @ (AppError::InvalidArgument { .. } | AppError::InvalidFields(_) | AppError::FailedPrecondition { .. })) => {
            (OrderForms { end_error: Some(error.to_string()), end: typed, ..OrderForms::default() }, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(other) => return Err(other.into()),
    };
    order_page(console, signed, order_id, &StatementQuery::default(), forms, status).await
}

fn statement_item(item: &StatementItem) -> String {
    match item {
        StatementItem::Accrual(month) => format!("Support for {month} fell due"),
        StatementItem::Entry(entry) => {
            let month = entry.month.map(|m| format!(" for {m}")).unwrap_or_default();
            format!("{} {}{month} (run {}, pool {})", entry.kind.as_str(), entry.bucket.as_str(), entry.run_id, entry.pool_id)
        }
        StatementItem::EndRecorded(end) => format!("End recorded ({}, on {}) by {}", end.reason.as_str(), end.end_date, end.recorded_by),
        StatementItem::EndWithdrawn(end) => format!("End withdrawn ({})", end.reason.as_str()),
    }
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    #[serde(default)]
    page_token: String,
}

pub async fn projected_ends(State(console): State<Console>, signed: Signed, Query(query): Query<PageQuery>) -> Result<Html<String>, ConsoleError> {
    let page = console.app.list_projected_ends(&signed.caller, PageRequest::parse(PROJECTED_END_LIST, 50, &query.page_token)?).await?;
    let body = html! {
        p { "Orders whose child has reached 18 (21 with continuing education; never when impaired) and that have no end yet. Open one to record its end." }
        @if page.items.is_empty() { (empty("No order is past its projected end.")) } @else {
            table {
                thead { tr { th scope="col" { "Order" } th scope="col" { "Case" } th scope="col" { "Obligor" } th scope="col" { "Child born" } th scope="col" { "Projected end" } th scope="col" { "Because" } } }
                tbody {
                    @for due in &page.items {
                        tr {
                            td { a href=(order_href(&due.order.order_id)) { (due.order.order_id) } }
                            td { (due.order.case_number) } td { (due.order.obligor_id) } td { (due.order.child_birth_date) }
                            td { (due.projected_end) } td { (match due.basis { EndBasis::Age18 => "18th birthday", EndBasis::Age21 => "21st birthday (continuing education)" }) }
                        }
                    }
                }
            }
            (next_page("/projected-ends", &[], &page.next_page_token))
        }
    };
    Ok(layout(&signed, "Projected ends due", "/projected-ends", body))
}
