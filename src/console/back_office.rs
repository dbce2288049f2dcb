//! The back office's pages: the dashboard, the suspense queue, distribution, where a
//! collection went, an order's statement, and the exports.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use futures::StreamExt;
use maud::{html, Markup};
use serde::Deserialize;

use super::error::ConsoleError;
use super::page::{self, bar_chart, csrf, empty, field, layout, money, next_page, notice, FieldKind};
use super::{Console, Signed};
use crate::app::paging::PageRequest;
use crate::app::suspense::{ResolveTarget, SuspenseOrder, SuspenseQuery, SuspenseReturn, SuspenseState, SUSPENSE_LIST};
use crate::app::{AppError, ReportKind};
use crate::domain::access::Action;
use crate::domain::{CaseNumber, Money, ObligorId};

pub async fn dashboard(State(console): State<Console>, signed: Signed) -> Result<Html<String>, ConsoleError> {
    let board = console.app.dashboard(&signed.caller).await?;
    let received: Money = board.collections_per_day.iter().map(|(_, m)| *m).fold(Money::ZERO, |a, b| a + b);
    let body = html! {
        div.cards {
            section.card aria-labelledby="waiting" {
                h2 id="waiting" { "Money waiting" }
                dl.counts {
                    dt { "Not yet distributed" } dd.num { (money(board.undistributed)) }
                    dt { a href="/suspense" { "In suspense" } } dd.num { (money(board.in_suspense)) }
                    dt { "Unapplied credit" } dd.num { (money(board.unapplied_credit)) }
                }
            }
            section.card aria-labelledby="last-run" {
                h2 id="last-run" { "Last distribution run" }
                @match &board.last_run {
                    Some(run) => dl.counts {
                        dt { "Run" } dd { (run.run_id) }
                        dt { "Started" } dd { (page::instant(&run.started_at)) }
                        dt { "Collections" } dd.num { (run.collections) }
                        dt { "Distributed" } dd.num { (money(run.total)) }
                        dt { "Left unapplied" } dd.num { (money(run.unapplied)) }
                    },
                    None => (empty("No distribution has run yet. Run one from the Distribution page.")),
                }
            }
        }
        section aria-labelledby="per-day" {
            h2 id="per-day" { "Collections per day" }
            (bar_chart(&format!("Money received per day, last {} days: ${received} in all", crate::app::console::DASHBOARD_DAYS), &board.collections_per_day))
        }
        div.cards {
            section.card aria-labelledby="by-source" {
                h2 id="by-source" { "Received by source, last 30 days" }
                @if board.received_by_source.is_empty() { (empty("Nothing received in the last 30 days.")) } @else {
                    table { thead { tr { th scope="col" { "Source" } th.num scope="col" { "Collections" } th.num scope="col" { "Amount" } } }
                        tbody { @for (source, count, amount) in &board.received_by_source { tr { td { (source) } td.num { (count) } td.num { (money(*amount)) } } } } }
                }
            }
            section.card aria-labelledby="files-today" {
                h2 id="files-today" { "Today's files by sender" }
                @if board.files_today.is_empty() { (empty("No file has come in today yet.")) } @else {
                    table { thead { tr { th scope="col" { "Sender" } th.num scope="col" { "Files" } th.num scope="col" { "Lines" } th.num scope="col" { "Amount" } } }
                        tbody { @for (sender, files, lines, amount) in &board.files_today {
                            tr { td { a href=(format!("/files?sender={}&from={}", page::url_encode(sender), board.today)) { (sender) } } td.num { (files) } td.num { (lines) } td.num { (money(*amount)) } }
                        } } }
                    @if board.files_today_truncated { p { "Only the first 1,000 files of today are counted." } }
                }
            }
            section.card aria-labelledby="suspense-age" {
                h2 id="suspense-age" { "Open suspense by age" }
                table { thead { tr { th scope="col" { "Age (days)" } th.num scope="col" { "Items" } th.num scope="col" { "Amount" } } }
                    tbody { @for (bucket, items, amount) in &board.suspense_by_age { tr { td { (bucket) } td.num { (items) } td.num { (money(*amount)) } } } } }
            }
            section.card aria-labelledby="late" {
                h2 id="late" { "Late employers, last 30 days" }
                @if board.late_employers.is_empty() { (empty("No employer remitted late in the last 30 days.")) } @else {
                    table { thead { tr { th scope="col" { "Employer FEIN" } th.num scope="col" { "Late lines" } th.num scope="col" { "Amount" } th.num scope="col" { "Average days late" } } }
                        tbody { @for employer in board.late_employers.iter().take(20) {
                            tr { td { (employer.employer_fein) } td.num { (employer.lines) } td.num { (money(employer.amount)) } td.num { (employer.average_days_late()) } }
                        } } }
                }
            }
        }
    };
    Ok(layout(&signed, "Dashboard", "/dashboard", body))
}

#[derive(Deserialize, Default)]
pub struct SuspenseListQuery {
    #[serde(default)]
    state: String,
    #[serde(default)]
    sender: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    min_age_days: String,
    #[serde(default)]
    order: String,
    #[serde(default)]
    page_token: String,
}

/// The queue's orders, as the form names them.
const ORDERS: [(&str, SuspenseOrder, &str); 4] = [
    ("oldest", SuspenseOrder::OldestFirst, "Oldest first"),
    ("newest", SuspenseOrder::NewestFirst, "Newest first"),
    ("largest", SuspenseOrder::LargestFirst, "Largest amount first"),
    ("smallest", SuspenseOrder::SmallestFirst, "Smallest amount first"),
];

pub async fn suspense_list(State(console): State<Console>, signed: Signed, Query(query): Query<SuspenseListQuery>) -> Result<Html<String>, ConsoleError> {
    let state = match query.state.as_str() {
        "" | "OPEN" => SuspenseState::Open,
        "RESOLVED" => SuspenseState::Resolved,
        "RETURNED" => SuspenseState::Returned,
        _ => return Err(ConsoleError::BadRequest("state is OPEN, RESOLVED or RETURNED".to_owned())),
    };
    let min_age_days = match query.min_age_days.trim() {
        "" => None,
        days => Some(days.parse::<u32>().map_err(|_| ConsoleError::BadRequest("the age is a whole number of days".to_owned()))?),
    };
    let order = match ORDERS.iter().find(|(name, ..)| *name == query.order) {
        Some((_, order, _)) => *order,
        None if query.order.is_empty() => SuspenseOrder::OldestFirst,
        None => return Err(ConsoleError::BadRequest("order is oldest, newest, largest or smallest".to_owned())),
    };
    let filter = SuspenseQuery {
        order,
        state,
        sender: Some(query.sender.trim().to_owned()).filter(|s| !s.is_empty()),
        reason: Some(query.reason.trim().to_ascii_uppercase()).filter(|s| !s.is_empty()),
        min_age_days,
        ..SuspenseQuery::default()
    };
    let items = console.app.list_suspense(&signed.caller, filter, PageRequest::parse(SUSPENSE_LIST, 50, &query.page_token)?).await?;
    let body = html! {
        form.filters method="get" action="/suspense" {
            div.field {
                label for="field-state" { "State" }
                select id="field-state" name="state" {
                    @for choice in ["OPEN", "RESOLVED", "RETURNED"] { option value=(choice) selected[state.as_str() == choice] { (choice) } }
                }
            }
            (field("sender", "Sender", &query.sender, None, FieldKind::Text { required: false, hint: None }))
            (field("reason", "Reason", &query.reason, None, FieldKind::Text { required: false, hint: Some("e.g. SSN_MISMATCH") }))
            (field("min_age_days", "At least days old", &query.min_age_days, None, FieldKind::Text { required: false, hint: None }))
            div.field {
                label for="field-order" { "Order" }
                select id="field-order" name="order" {
                    @for (name, value, label) in ORDERS { option value=(name) selected[value == order] { (label) } }
                }
            }
            button type="submit" { "Filter" }
        }
        @if items.items.is_empty() {
            (empty(if state == SuspenseState::Open { "The suspense queue is empty: every payment received has been identified." } else { "No item matches these filters." }))
        } @else {
            table.keyboard-list {
                caption.visually-hidden { "Suspense items, " (ORDERS.iter().find(|(_, value, _)| *value == order).map_or("oldest first", |(_, _, label)| label).to_lowercase()) }
                thead { tr {
                    th.num scope="col" { "Item" } th.secondary scope="col" { "Received" } th scope="col" { "Sender / batch / line" } th.secondary scope="col" { "Employer" }
                    th.secondary scope="col" { "Case as sent" } th.secondary scope="col" { "SSN" } th scope="col" { "Pay date" } th.num scope="col" { "Amount" } th scope="col" { "Reason" }
                } }
                tbody {
                    @for item in &items.items {
                        tr {
                            td.num { a href=(format!("/suspense/{}", item.suspense_id)) { (item.suspense_id) } }
                            td.secondary { (page::instant(&item.created_at)) }
                            td { (item.sender) " / " (item.batch_id) " / " (item.line) }
                            td.secondary { (item.employer_fein.as_deref().unwrap_or("")) }
                            td.secondary { (item.case_number.as_deref().unwrap_or("")) }
                            td.secondary { @if let Some(last4) = &item.ssn_last4 { "•••-••-" (last4) } }
                            td { (item.pay_date) }
                            td.num { (money(item.amount)) }
                            td { code { (item.reason) } }
                        }
                    }
                }
            }
            (next_page("/suspense", &[("state", query.state.clone()), ("sender", query.sender.clone()), ("reason", query.reason.clone()), ("min_age_days", query.min_age_days.clone()), ("order", query.order.clone())], &items.next_page_token))
        }
    };
    Ok(layout(&signed, "Suspense", "/suspense", body))
}

/// What the item page's forms keep when shown again.
#[derive(Default)]
struct ItemForms {
    target: String,
    target_error: Option<String>,
    reason: String,
    reference: String,
    return_error: Option<String>,
    done: Option<String>,
}

async fn item_page(console: &Console, signed: &Signed, suspense_id: i64, forms: ItemForms, status: StatusCode) -> Result<Response, ConsoleError> {
    let item = console.app.get_suspense_item(&signed.caller, suspense_id).await?;
    let body = html! {
        @if let Some(done) = &forms.done { (notice(done)) }
        dl.counts {
            dt { "State" } dd { (item.state) }
            dt { "Amount" } dd.num { (money(item.amount)) }
            dt { "Pay date" } dd { (item.pay_date) }
            dt { "Reason" } dd { code { (item.reason) } }
            dt { "File" } dd { a href=(super::files::file_href(&item.sender, &item.batch_id)) { (item.sender) " / " (item.batch_id) } ", line " (item.line) }
            dt { "Employer FEIN" } dd { (item.employer_fein.as_deref().unwrap_or("—")) }
            dt { "Case number as sent" } dd { (item.case_number.as_deref().unwrap_or("—")) }
            dt { "Employee SSN" } dd { @if let Some(last4) = &item.ssn_last4 { "•••-••-" (last4) } @else { "—" } }
            @if let Some(obligor) = &item.resolved_obligor_id { dt { "Resolved to obligor" } dd { (obligor) } }
            @if let Some(collection) = item.collection_id { dt { "Collection" } dd { a href=(format!("/collections/{collection}")) { "Where this money went (collection " (collection) ")" } } }
            @if let Some(reason) = &item.return_reason { dt { "Returned because" } dd { (reason) " (" (item.return_reference.as_deref().unwrap_or("")) ")" } }
            @if let (Some(by), Some(at)) = (&item.worked_by, &item.worked_at) { dt { "Worked by" } dd { (by) ", " (page::instant(at)) } }
        }
        @if item.state == "OPEN" {
            div.cards {
                section.card aria-labelledby="resolve" {
                    h2 id="resolve" { "Resolve to an obligor" }
                    p { "The money becomes a payroll collection of the obligor, distributed at the next run." }
                    @if let Some(last4) = &item.ssn_last4 {
                        p { a href=(format!("/obligors?ssn_last4={last4}")) { "Find the obligors whose SSN ends in " (last4) } }
                    }
                    form method="post" action=(format!("/suspense/{suspense_id}/resolve")) {
                        (csrf(signed))
                        (field("target", "Case number or obligor id", &forms.target, forms.target_error.as_deref(), FieldKind::Text { required: true, hint: Some("8-digit case number, or obligor id") }))
                        button type="submit" { "Resolve" }
                    }
                }
                section.card aria-labelledby="return" {
                    h2 id="return" { "Return to the sender" }
                    p { "No collection is made; the money goes back to the employer." }
                    form method="post" action=(format!("/suspense/{suspense_id}/return")) {
                        (csrf(signed))
                        @if let Some(error) = &forms.return_error { p.field-error role="alert" { (error) } }
                        (field("reason", "Reason", &forms.reason, None, FieldKind::Text { required: true, hint: Some("e.g. not our case") }))
                        (field("reference", "Reference", &forms.reference, None, FieldKind::Text { required: true, hint: Some("e.g. check number") }))
                        button type="submit" { "Return" }
                    }
                }
            }
        }
        p { a href="/suspense" { "← Back to the queue" } }
    };
    Ok((status, layout(signed, &format!("Suspense item {suspense_id}"), "/suspense", body)).into_response())
}

pub async fn suspense_item(State(console): State<Console>, signed: Signed, Path(suspense_id): Path<i64>) -> Result<Response, ConsoleError> {
    item_page(&console, &signed, suspense_id, ItemForms::default(), StatusCode::OK).await
}

#[derive(Deserialize)]
pub struct ResolveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    target: String,
}

pub async fn resolve(State(console): State<Console>, signed: Signed, Path(suspense_id): Path<i64>, Form(form): Form<ResolveForm>) -> Result<Response, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    let typed = form.target.trim().to_owned();
    let target = match CaseNumber::parse(&typed) {
        Ok(case) => Ok(ResolveTarget::Case(case)),
        Err(_) => ObligorId::parse(&typed).map(ResolveTarget::Obligor).map_err(|_| "an 8-digit case number, or an obligor id".to_owned()),
    };
    let result = match target {
        Ok(target) => console.app.resolve_suspense(&signed.caller, suspense_id, target).await.map_err(|e| match e {
            AppError::NotFound(message) | AppError::InvalidArgument { message, .. } => Err(message),
            other => Ok(other),
        }),
        Err(message) => Err(Err(message)),
    };
    match result {
        Ok((_, collection)) => {
            let done = format!("Resolved: collection {} of {} for obligor {}, waiting for the next distribution run.", collection.collection_id, collection.amount, collection.obligor_id);
            item_page(&console, &signed, suspense_id, ItemForms { done: Some(done), ..ItemForms::default() }, StatusCode::OK).await
        }
        Err(Err(message)) => {
            let forms = ItemForms { target: typed, target_error: Some(message), ..ItemForms::default() };
            item_page(&console, &signed, suspense_id, forms, StatusCode::BAD_REQUEST).await
        }
        Err(Ok(other)) => Err(other.into()),
    }
}

#[derive(Deserialize)]
pub struct ReturnForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    reference: String,
}

pub async fn return_item(State(console): State<Console>, signed: Signed, Path(suspense_id): Path<i64>, Form(form): Form<ReturnForm>) -> Result<Response, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    let request = SuspenseReturn { reason: form.reason.clone(), reference: form.reference.clone() };
    match console.app.return_suspense(&signed.caller, suspense_id, request).await {
        Ok(_) => {
            let forms = ItemForms { done: Some("Returned to the sender.".to_owned()), ..ItemForms::default() };
            item_page(&console, &signed, suspense_id, forms, StatusCode::OK).await
        }
        Err(error @ (AppError::InvalidArgument { .. } | AppError::InvalidFields(_))) => {
            let forms = ItemForms { reason: form.reason, reference: form.reference, return_error: Some(error.to_string()), ..ItemForms::default() };
            item_page(&console, &signed, suspense_id, forms, StatusCode::BAD_REQUEST).await
        }
        Err(other) => Err(other.into()),
    }
}

fn distribution_page(signed: &Signed, summary: Option<Markup>) -> Html<String> {
    let body = html! {
        @if let Some(summary) = summary { (summary) }
        p { "A run distributes every collection waiting: current support first, prorated across the obligor's orders; "
            "then past-due support, prorated; what is left stays as the obligor's unapplied credit." }
        form method="post" action="/distribution" {
            (csrf(signed))
            button type="submit" { "Run distribution now" }
        }
    };
    layout(signed, "Distribution", "/distribution", body)
}

pub async fn distribution(State(console): State<Console>, signed: Signed) -> Result<Html<String>, ConsoleError> {
    console.app.check_role(&signed.caller, Action::RunDistribution).await?;
    Ok(distribution_page(&signed, None))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn run_distribution(State(console): State<Console>, signed: Signed, Form(form): Form<CsrfForm>) -> Result<Html<String>, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    let summary = console.app.distribute(&signed.caller).await?;
    let summary = match summary {
        None => html! { (notice("Nothing was waiting to be distributed.")) },
        Some(run) => html! {
            section.ack aria-labelledby="run-title" {
                h2 id="run-title" { "Run " (run.run_id) " done" }
                dl.counts {
                    dt { "Obligors" } dd.num { (run.obligors) }
                    dt { "Collections" } dd.num { (run.collections) }
                    dt { "Distributed" } dd.num { (money(run.total)) }
                    dt { "To current support" } dd.num { (money(run.current)) }
                    dt { "To past-due support" } dd.num { (money(run.arrears)) }
                    dt { "Left unapplied" } dd.num { (money(run.unapplied)) }
                }
            }
        },
    };
    Ok(distribution_page(&signed, Some(summary)))
}

pub async fn collection(State(console): State<Console>, signed: Signed, Path(collection_id): Path<i64>) -> Result<Html<String>, ConsoleError> {
    let explained = console.app.explain_collection(&signed.caller, collection_id).await?;
    let record = &explained.collection;
    let body = html! {
        dl.counts {
            dt { "Obligor" } dd { (record.obligor_id) }
            dt { "Case" } dd { (record.case_number.as_ref().map(CaseNumber::as_str).unwrap_or("—")) }
            dt { "Source" } dd { (record.source.as_str()) }
            dt { "Amount" } dd.num { (money(record.amount)) }
            dt { "Effective" } dd { (record.effective_date) }
            dt { "Received" } dd { (page::instant(&explained.received_at)) }
            dt { "Status" } dd { (record.status) }
            @if explained.reversed != Money::ZERO { dt { "Taken back by reversals" } dd.num { (money(explained.reversed)) } }
        }
        @match &explained.pool {
            None => (empty("Not distributed yet: it waits for the next distribution run.")),
            Some((pool_id, effective, merged, pool)) => {
                h2 { "Distributed in pool " (pool_id) " of " (effective) }
                p { "The pool merged " (merged.len()) " collection(s), " (money(pool.pool_amount)) " in all; this collection's share of each row is shown." }
                table {
                    thead { tr { th scope="col" { "Order" } th scope="col" { "Bucket" } th scope="col" { "Month" } th scope="col" { "Step" } th.num scope="col" { "Row" } th.num scope="col" { "This collection's share" } } }
                    tbody {
                        @for row in &pool.rows {
                            tr {
                                td { @if let Some(order) = &row.entry.order_id { a href=(super::orders::order_href(order)) { (order) } } @else { "—" } }
                                td { (row.entry.bucket.as_str()) }
                                td { (row.entry.month.map(|m| m.to_string()).unwrap_or_default()) }
                                td { (row.entry.step.map(|s| s.as_str()).unwrap_or("")) }
                                td.num { (money(row.entry.amount)) }
                                td.num { (money(row.share)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(&signed, &format!("Collection {collection_id}"), "/suspense", body))
}

/// The exports, by the name the download's address uses.
const EXPORTS: [(&str, &str); 8] = [
    ("allocations", "Every allocation written by distribution"),
    ("balances", "Every order's balances today"),
    ("suspense", "The suspense queue"),
    ("audit", "The audit trail"),
    ("report-collections", "Collections per day, source and employer"),
    ("report-late", "Late remittances by employer"),
    ("report-suspense-age", "Open suspense by age"),
    ("report-totals", "Money waiting: undistributed, suspense, unapplied"),
];

pub async fn exports(State(console): State<Console>, signed: Signed) -> Result<Html<String>, ConsoleError> {
    console.app.check_role(&signed.caller, Action::ExportAllocations).await?;
    let body = html! {
        p { "Each export is a CSV file, read from the database as it downloads. SSNs and bank accounts never appear in full." }
        ul.exports {
            @for (name, label) in EXPORTS {
                li { a href=(format!("/exports/{name}")) download=(format!("{name}.csv")) { (label) } " (" code { (name) ".csv" } ")" }
            }
        }
    };
    Ok(layout(&signed, "Exports", "/exports", body))
}

pub async fn download(State(console): State<Console>, signed: Signed, Path(name): Path<String>) -> Result<Response, ConsoleError> {
    // An export streams after its handler has answered: its own permit, held by the body until
    // the last byte is sent (or the browser goes away), bounds how many run at once.
    let Ok(permit) = console.exports.clone().try_acquire_owned() else {
        return Err(ConsoleError::Unavailable("too many exports are being downloaded; try again in a moment".to_owned()));
    };
    let app = &console.app;
    let caller = &signed.caller;
    let stream = match name.trim_end_matches(".csv") {
        "allocations" => app.export_allocations(caller).await?,
        "balances" => app.export_balances(caller, None).await?,
        "suspense" => app.export_suspense(caller).await?,
        "audit" => app.export_audit(caller).await?,
        "report-collections" => app.export_report(caller, ReportKind::Collections, None, None).await?,
        "report-late" => app.export_report(caller, ReportKind::Late, None, None).await?,
        "report-suspense-age" => app.export_report(caller, ReportKind::SuspenseAge, None, None).await?,
        "report-totals" => app.export_report(caller, ReportKind::Totals, None, None).await?,
        _ => return Err(ConsoleError::NotFound(format!("there is no export {name}"))),
    };
    let name = name.trim_end_matches(".csv").to_owned();
    let body = Body::from_stream(stream.map(move |chunk| {
        let _held = &permit;
        chunk.map_err(|error| std::io::Error::other(error.to_string()))
    }));
    Ok((
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()), (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{name}.csv\""))],
        body,
    )
        .into_response())
}
