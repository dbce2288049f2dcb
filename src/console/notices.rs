//! Termination notices: lines saying an employee left. The back office works them (marks each
//! handled once the withholding order went on); a vendor or employer reads those of its own
//! files.

use axum::extract::{Path, Query, State};
use axum::response::{Html, Redirect};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::error::ConsoleError;
use super::page::{self, csrf, empty, layout, next_page};
use super::{Console, Signed};
use crate::app::paging::PageRequest;
use crate::app::terminations::{NoticeQuery, NOTICE_LIST};

#[derive(Deserialize, Default)]
pub struct NoticeListQuery {
    /// open (the default), handled or all.
    #[serde(default)]
    show: String,
    #[serde(default)]
    page_token: String,
}

async fn notices_page(console: &Console, signed: &Signed, query: &NoticeListQuery) -> Result<Html<String>, ConsoleError> {
    let handled = match query.show.as_str() {
        "" | "open" => Some(false),
        "handled" => Some(true),
        "all" => None,
        _ => return Err(ConsoleError::BadRequest("show open, handled or all".to_owned())),
    };
    let list = NoticeQuery { handled, ..NoticeQuery::default() };
    let notices = console.app.list_termination_notices(&signed.caller, list, PageRequest::parse(NOTICE_LIST, 50, &query.page_token)?).await?;
    let back_office = !signed.principal().role.is_remitter();
    let shown = if query.show.is_empty() { "open" } else { query.show.as_str() };
    let body = html! {
        p { @if back_office { "Employees who left their employer, as the employers' files said. Mark each handled once the withholding order has gone to the new employer." }
            @else { "The employees your files said have left. The agency sends their withholding orders on." } }
        form.filters method="get" action="/notices" {
            div.field {
                label for="field-show" { "Show" }
                select id="field-show" name="show" {
                    @for (value, label) in [("open", "Not yet handled"), ("handled", "Handled"), ("all", "All")] {
                        option value=(value) selected[shown == value] { (label) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        @if notices.items.is_empty() { (empty("No termination notice here.")) } @else {
            table {
                caption.visually-hidden { "Termination notices, oldest first" }
                thead { tr {
                    th.num scope="col" { "Notice" } th scope="col" { "Received" } th scope="col" { "File / line" } th scope="col" { "Employer" }
                    th scope="col" { "Case" } th scope="col" { "SSN" } th scope="col" { "Pay date" } th scope="col" { "Handled" }
                } }
                tbody {
                    @for item in &notices.items {
                        tr {
                            td.num { (item.notice_id) }
                            td { (page::instant(&item.created_at)) }
                            td { a href=(super::files::file_href(&item.sender, &item.batch_id)) { (item.sender) " / " (item.batch_id) } ", line " (item.line) }
                            td { (item.employer_fein.as_deref().unwrap_or("—")) }
                            td { (item.case_number.as_deref().unwrap_or("—")) }
                            td { @if let Some(last4) = &item.ssn_last4 { "•••-••-" (last4) } }
                            td { (item.pay_date.map(|d| d.to_string()).unwrap_or_default()) }
                            td {
                                @if let Some(at) = &item.handled_at {
                                    @if let Some(by) = &item.handled_by { (by) ", " } (page::instant(at))
                                }
                                @else if back_office {
                                    form method="post" action=(format!("/notices/{}/handled", item.notice_id)) {
                                        (csrf(signed))
                                        button type="submit" aria-label=(format!("Mark handled: notice {}", item.notice_id)) { "Mark handled" }
                                    }
                                } @else { "not yet" }
                            }
                        }
                    }
                }
            }
            (next_page("/notices", &[("show", query.show.clone())], &notices.next_page_token))
        }
    };
    Ok(layout(signed, "Termination notices", "/notices", body))
}

pub async fn list(State(console): State<Console>, signed: Signed, Query(query): Query<NoticeListQuery>) -> Result<Html<String>, ConsoleError> {
    notices_page(&console, &signed, &query).await
}

#[derive(Deserialize)]
pub struct HandledForm {
    #[serde(default)]
    csrf: String,
}

pub async fn mark_handled(State(console): State<Console>, signed: Signed, Path(notice_id): Path<i64>, Form(form): Form<HandledForm>) -> Result<Redirect, ConsoleError> {
    signed.check_csrf(&form.csrf)?;
    console.app.mark_notice_handled(&signed.caller, notice_id).await?;
    // To the handled notices, where this one now is: a reload does not post again.
    Ok(Redirect::to("/notices?show=handled"))
}
