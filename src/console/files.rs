//! Remittance files: the list (a sender's own, or every sender's for the back office), one
//! file's acknowledgment and lines, and the employer's two ways to send one: uploading a CSV
//! or XML file, or keying in a few lines.

use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use futures::StreamExt;
use maud::{html, Markup};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::error::ConsoleError;
use super::page::{self, csrf, empty, field, layout, money, next_page, FieldKind};
use super::{Console, Signed};
use crate::app::paging::PageRequest;
use crate::app::{optional_date_field as optional_date, AckStatus, Acknowledgment, AppError, FileQuery, LineFilter, Submission, UploadEnd, UploadPart, REMITTANCE_LIST};
use crate::domain::access::Action;
use crate::domain::problem_groups::group_problems;
use crate::formats::{DeclaredTotals, RemittanceFormat};

/// The largest file the console takes; larger files go through the gRPC API, which streams.
pub const MAX_CONSOLE_UPLOAD_BYTES: usize = 20 << 20;

/// Lines of a file shown per page.
const LINES_PER_PAGE: usize = 100;

/// Rows of the key-in form.
const KEY_IN_ROWS: usize = 5;

#[derive(Deserialize, Default)]
pub struct FileListQuery {
    #[serde(default)]
    sender: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    page_token: String,
}

pub async fn list(State(console): State<Console>, signed: Signed, Query(query): Query<FileListQuery>) -> Result<Html<String>, ConsoleError> {
    let back_office = !signed.principal().role.is_remitter();
    let file_query = FileQuery {
        sender: (back_office && !query.sender.trim().is_empty()).then(|| query.sender.trim().to_owned()),
        employer_fein: None,
        received_from: optional_date("from", &query.from)?,
        received_to: optional_date("to", &query.to)?,
    };
    let page_request = PageRequest::parse(REMITTANCE_LIST, 50, &query.page_token)?;
    let files = console.app.list_remittances(&signed.caller, file_query, page_request).await?;
    let title = if back_office { "Files" } else { "Our files" };
    let body = html! {
        form.filters method="get" action="/files" {
            @if back_office {
                (field("sender", "Sender", &query.sender, None, FieldKind::Text { required: false, hint: Some("key name") }))
            }
            div.field { label for="field-from" { "Received from" } input type="date" id="field-from" name="from" value=(query.from); }
            div.field { label for="field-to" { "Received to" } input type="date" id="field-to" name="to" value=(query.to); }
            button type="submit" { "Filter" }
        }
        @if files.items.is_empty() {
            @if back_office { (empty("No file matches these filters. Clear them to see every file.")) }
            @else { (empty("You have not sent a file yet. Upload one, or key in a few lines.")) }
        } @else {
            table {
                caption.visually-hidden { "Files, newest first" }
                thead { tr {
                    th scope="col" { "Received" }
                    @if back_office { th scope="col" { "Sender" } }
                    th scope="col" { "Batch" } th.secondary scope="col" { "Format" }
                    th.num scope="col" { "Lines" } th.num scope="col" { "Total" } th.num.secondary scope="col" { "Applied" }
                    th.num.secondary scope="col" { "Suspense" } th.num.secondary scope="col" { "Rejected" }
                } }
                tbody {
                    @for file in &files.items {
                        tr {
                            td { (page::instant(&file.received_at)) }
                            @if back_office { td { (file.sender) } }
                            td { a href=(file_href(&file.sender, &file.batch_id)) { (file.batch_id) } }
                            td.secondary { (file.format) }
                            td.num { (file.counts.line_count) }
                            td.num { (money(file.counts.total)) }
                            td.num.secondary { (file.counts.applied + file.counts.applied_by_ssn) }
                            td.num.secondary { (file.counts.suspense) }
                            td.num.secondary { (file.counts.rejected) }
                        }
                    }
                }
            }
            (next_page("/files", &[("sender", query.sender.clone()), ("from", query.from.clone()), ("to", query.to.clone())], &files.next_page_token))
        }
    };
    Ok(layout(&signed, title, "/files", body))
}

pub(super) fn file_href(sender: &str, batch_id: &str) -> String {
    format!("/files/{}/{}", page::url_encode(sender), page::url_encode(batch_id))
}

#[derive(Deserialize, Default)]
pub struct LinesQuery {
    /// APPLIED, APPLIED_BY_SSN, SUSPENSE, REJECTED, or empty for every line with a problem.
    #[serde(default)]
    status: String,
    /// Lines after this one.
    #[serde(default)]
    after: u64,
}

const STATUSES: [&str; 4] = ["APPLIED", "APPLIED_BY_SSN", "SUSPENSE", "REJECTED"];

pub async fn detail(
    State(console): State<Console>,
    signed: Signed,
    Path((sender, batch_id)): Path<(String, String)>,
    Query(query): Query<LinesQuery>,
) -> Result<Html<String>, ConsoleError> {
    let ack = console.app.get_remittance(&signed.caller, &sender, &batch_id).await?;
    let status = query.status.trim().to_ascii_uppercase();
    if !status.is_empty() && !STATUSES.contains(&status.as_str()) {
        return Err(ConsoleError::BadRequest(format!("status is one of {}", STATUSES.join(", "))));
    }
    let filter = LineFilter { statuses: if status.is_empty() { Vec::new() } else { vec![status.clone()] }, problem_code: None };
    let mut lines = console.app.remittance_lines(&signed.caller, &sender, &batch_id, filter).await?;
    let mut shown = Vec::new();
    while let Some(line) = lines.next().await {
        let line = line?;
        // Without a status, the lines worth a look: those with a problem.
        if line.line <= query.after || (status.is_empty() && line.problems.is_empty()) {
            continue;
        }
        shown.push(line);
        if shown.len() > LINES_PER_PAGE {
            break;
        }
    }
    drop(lines); // Stops reading the rest of the file.
    let more = shown.len() > LINES_PER_PAGE;
    shown.truncate(LINES_PER_PAGE);
    let here = file_href(&sender, &batch_id);
    let body = html! {
        (acknowledgment(&ack))
        h2 { "Lines" }
        form.filters method="get" action=(here) {
            div.field {
                label for="field-status" { "Show" }
                select id="field-status" name="status" {
                    option value="" selected[status.is_empty()] { "Lines with a problem" }
                    @for choice in STATUSES { option value=(choice) selected[status == choice] { (choice) } }
                }
            }
            button type="submit" { "Show" }
        }
        @if shown.is_empty() {
            (empty(if status.is_empty() { "No line of this file has a problem." } else { "No line of this file has that status." }))
        } @else {
            table {
                thead { tr { th.num scope="col" { "Line" } th scope="col" { "Status" } th scope="col" { "Problems" } } }
                tbody {
                    @for line in &shown {
                        tr {
                            td.num { (line.line) }
                            td { (line.status) }
                            td { @for problem in &line.problems {
                                div { span class=(format!("severity {}", problem.severity.to_ascii_lowercase())) { (problem.severity) } " " code { (problem.code) } " " (problem.field) ": " (problem.message) }
                            } }
                        }
                    }
                }
            }
            @if more {
                @if let Some(last) = shown.last() {
                    nav.paging aria-label="Pages" { a rel="next" href=(format!("{here}?status={}&after={}", status, last.line)) { "Next lines →" } }
                }
            }
        }
    };
    Ok(layout(&signed, &format!("File {}", ack.batch_id), "/files", body))
}

/// An acknowledgment as a sender reads it: the outcome, the counts, the problems grouped.
fn acknowledgment(ack: &Acknowledgment) -> Markup {
    let groups = group_problems(
        ack.lines.iter().flat_map(|line| line.problems.iter().map(move |p| (line.line, p.code.as_str(), p.severity.as_str()))),
    );
    let (class, outcome) = match ack.status {
        AckStatus::Accepted if ack.replayed => ("accepted", "Accepted earlier: this is its first acknowledgment again"),
        AckStatus::Accepted => ("accepted", "Accepted"),
        AckStatus::Refused => ("refused", "Refused: nothing was recorded"),
        AckStatus::Duplicate => ("refused", "Duplicate: these bytes were already accepted; nothing was recorded"),
    };
    html! {
        section.ack aria-labelledby="ack-title" {
            h2 id="ack-title" { "Acknowledgment" }
            p class=(format!("outcome {class}")) role="status" { (outcome) }
            @if let Some(original) = &ack.duplicate_of { p { "Accepted before as batch " strong { (original) } "." } }
            @if let Some(problem) = &ack.file_problem { p.error { (problem.to_string()) } }
            dl.counts {
                dt { "Batch" } dd { (ack.batch_id) }
                dt { "Format" } dd { (ack.format) }
                dt { "Received" } dd { (page::instant(&ack.received_at)) }
                dt { "Lines" } dd.num { (ack.counts.line_count) }
                dt { "Total received" } dd.num { (money(ack.counts.total)) }
                dt { "Applied" } dd.num { (ack.counts.applied) }
                dt { "Applied by SSN" } dd.num { (ack.counts.applied_by_ssn) }
                dt { "In suspense" } dd.num { (ack.counts.suspense) }
                dt { "Rejected" } dd.num { (ack.counts.rejected) }
            }
            @if !groups.is_empty() {
                table {
                    caption { "Problems" @if ack.lines_truncated { " (the first lines only)" } }
                    thead { tr { th scope="col" { "Code" } th scope="col" { "Severity" } th.num scope="col" { "Lines" } th scope="col" { "First lines" } } }
                    tbody {
                        @for group in &groups {
                            tr {
                                td { code { (group.code) } }
                                td { (group.severity) }
                                td.num { (group.count) }
                                td { (group.first_lines.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")) @if group.count > group.first_lines.len() as u64 { ", …" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// What an upload form keeps when it is shown again.
#[derive(Default)]
struct UploadValues {
    batch_id: String,
    format: String,
    errors: FormErrors,
}

/// The errors of a form's fields, each said beside its field.
#[derive(Default)]
struct FormErrors(Vec<(String, String)>);

impl FormErrors {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_owned(), message.into()));
    }

    /// All of `field`'s errors, joined.
    fn of(&self, field: &str) -> Option<String> {
        let messages: Vec<&str> = self.0.iter().filter(|(name, _)| name == field).map(|(_, message)| message.as_str()).collect();
        (!messages.is_empty()).then(|| messages.join("; "))
    }
}

fn upload_page(signed: &Signed, values: &UploadValues, ack: Option<&Acknowledgment>) -> Html<String> {
    let body = html! {
        @if let Some(ack) = ack { (acknowledgment(ack)) }
        p { "Send a remittance file in the agency's CSV or XML format (at most 20 MB; larger files go through the API). "
            "The batch id is your own number for the file: use a new one for each file." }
        form #upload method="post" action="/upload" enctype="multipart/form-data" {
            (csrf(signed))
            (field("batch_id", "Batch id", &values.batch_id, values.errors.of("batch_id").as_deref(), FieldKind::Text { required: true, hint: Some("e.g. ACME-2026-12-03") }))
            div.field.invalid[values.errors.of("format").is_some()] {
                label for="field-format" { "Format" }
                select id="field-format" name="format" {
                    option value="csv" selected[values.format != "xml"] { "CSV" }
                    option value="xml" selected[values.format == "xml"] { "XML" }
                }
            }
            div.field.invalid[values.errors.of("file").is_some()] {
                label for="field-file" { "File" }
                input type="file" id="field-file" name="file" required accept=".csv,.xml,text/csv,application/xml,text/xml"
                    aria-invalid=[values.errors.of("file").map(|_| "true")] aria-describedby=[values.errors.of("file").map(|_| "field-file-error")];
                @if let Some(error) = values.errors.of("file") { p.field-error id="field-file-error" { (error) } }
            }
            progress #upload-progress max="100" value="0" hidden aria-label="Upload progress" { "0%" }
            button type="submit" { "Send the file" }
        }
    };
    layout(signed, "Upload a file", "/upload", body)
}

pub async fn upload_form(State(console): State<Console>, signed: Signed) -> Result<Html<String>, ConsoleError> {
    console.app.check_role(&signed.caller, Action::SubmitRemittance).await?;
    Ok(upload_page(&signed, &UploadValues::default(), None))
}

/// Reads a small text field of the form.
async fn text_field(field: axum::extract::multipart::Field<'_>) -> Result<String, ConsoleError> {
    let text = field.text().await.map_err(|e| ConsoleError::BadRequest(format!("the form could not be read: {e}")))?;
    Ok(text.chars().take(200).collect())
}

pub async fn upload(State(console): State<Console>, signed: Signed, mut multipart: Multipart) -> Result<Response, ConsoleError> {
    let unreadable = |e: axum::extract::multipart::MultipartError| ConsoleError::BadRequest(format!("the form could not be read: {e}"));
    let mut values = UploadValues::default();
    let mut csrf_checked = false;
    // The fields come in the form's order; the file comes last and is streamed.
    while let Some(part) = multipart.next_field().await.map_err(unreadable)? {
        match part.name().unwrap_or_default() {
            "csrf" => {
                signed.check_csrf(&text_field(part).await?)?;
                csrf_checked = true;
            }
            "batch_id" => values.batch_id = text_field(part).await?.trim().to_owned(),
            "format" => values.format = text_field(part).await?,
            "file" => {
                if !csrf_checked {
                    signed.check_csrf("")?;
                }
                let format = match values.format.as_str() {
                    "csv" => RemittanceFormat::Csv,
                    "xml" => RemittanceFormat::Xml,
                    _ => {
                        values.errors.push("format", "choose CSV or XML");
                        return Ok((StatusCode::BAD_REQUEST, upload_page(&signed, &values, None)).into_response());
                    }
                };
                let submission = Submission { format, batch_id: values.batch_id.clone(), declared: DeclaredTotals::default() };
                let (parts, receiver) = mpsc::channel::<Result<UploadPart, AppError>>(8);
                let submitted = console.app.submit_remittance(&signed.caller, submission, ReceiverStream::new(receiver));
                let ((), result) = tokio::join!(stream_file(part, parts), submitted);
                return respond(&signed, values, result, upload_page);
            }
            _ => {}
        }
    }
    signed.check_csrf(if csrf_checked { &signed.csrf } else { "" })?;
    values.errors.push("file", "choose the file to send");
    Ok((StatusCode::BAD_REQUEST, upload_page(&signed, &values, None)).into_response())
}

/// Streams the form's file part to the same use case as a gRPC upload, with its end (size and
/// SHA-256) computed here as it passes, so a form cut off half-way is not a whole file.
async fn stream_file(mut field: axum::extract::multipart::Field<'_>, parts: mpsc::Sender<Result<UploadPart, AppError>>) {
    let (mut hasher, mut bytes) = (Sha256::new(), 0u64);
    loop {
        match field.chunk().await {
            Ok(Some(chunk)) => {
                hasher.update(&chunk);
                bytes += chunk.len() as u64;
                if parts.send(Ok(UploadPart::Chunk(chunk.to_vec()))).await.is_err() {
                    return; // The use case has stopped reading (it refused the file).
                }
            }
            Ok(None) => break,
            Err(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                let too_large = format!("the file is larger than the console's {} MB: send it through the API", MAX_CONSOLE_UPLOAD_BYTES >> 20);
                return drop(parts.send(Err(AppError::ResourceExhausted(too_large))).await);
            }
            Err(error) => return drop(parts.send(Err(AppError::UploadInterrupted(error.to_string()))).await),
        }
    }
    let end = UploadEnd { byte_count: bytes, sha256: hex::encode(hasher.finalize()) };
    let _ = parts.send(Ok(UploadPart::End(end))).await;
}

/// The acknowledgment on the form's page, or the form again with its errors beside the
/// fields they are about.
fn respond<V: FieldErrors>(
    signed: &Signed,
    mut values: V,
    result: Result<Acknowledgment, AppError>,
    page: impl Fn(&Signed, &V, Option<&Acknowledgment>) -> Html<String>,
) -> Result<Response, ConsoleError> {
    match result {
        Ok(ack) => {
            let status = if ack.status == AckStatus::Accepted {
                values.accepted();
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            Ok((status, page(signed, &values, Some(&ack))).into_response())
        }
        Err(AppError::InvalidArgument { field, message }) => {
            values.push(field, message);
            Ok((StatusCode::BAD_REQUEST, page(signed, &values, None)).into_response())
        }
        Err(AppError::InvalidFields(violations)) => {
            for violation in violations {
                values.push(&violation.field, violation.description);
            }
            Ok((StatusCode::BAD_REQUEST, page(signed, &values, None)).into_response())
        }
        Err(AppError::ResourceExhausted(message)) => {
            values.push("file", message);
            Ok((StatusCode::PAYLOAD_TOO_LARGE, page(signed, &values, None)).into_response())
        }
        Err(AppError::AlreadyExists { message, .. }) => {
            values.push("batch_id", message);
            Ok((StatusCode::CONFLICT, page(signed, &values, None)).into_response())
        }
        Err(other) => Err(other.into()),
    }
}

/// A form whose fields can carry errors.
trait FieldErrors {
    /// The fields the form shows; an error about any other goes with `OTHER`.
    const FIELDS: &'static [&'static str];
    const OTHER: &'static str;
    fn errors(&mut self) -> &mut FormErrors;
    /// The file was accepted: what was typed for it is not needed again.
    fn accepted(&mut self);
    fn push(&mut self, field: &str, message: String) {
        let field = if Self::FIELDS.contains(&field) { field } else { Self::OTHER };
        self.errors().push(field, message);
    }
}

impl FieldErrors for UploadValues {
    const FIELDS: &'static [&'static str] = &["batch_id", "format", "file"];
    const OTHER: &'static str = "file";
    fn errors(&mut self) -> &mut FormErrors {
        &mut self.errors
    }
    fn accepted(&mut self) {
        self.batch_id.clear();
    }
}

/// One keyed-in line.
#[derive(Clone, Default, Deserialize)]
struct KeyedLine {
    case_number: String,
    employee_ssn: String,
    employee_last_name: String,
    pay_date: String,
    amount: String,
    terminated: bool,
}

impl KeyedLine {
    fn is_blank(&self) -> bool {
        [&self.case_number, &self.employee_ssn, &self.employee_last_name, &self.pay_date, &self.amount].iter().all(|v| v.trim().is_empty())
    }
}

#[derive(Default)]
struct KeyInValues {
    batch_id: String,
    employer_fein: String,
    lines: Vec<KeyedLine>,
    errors: FormErrors,
}

impl FieldErrors for KeyInValues {
    const FIELDS: &'static [&'static str] = &["batch_id", "employer_fein", "lines"];
    const OTHER: &'static str = "lines";
    fn errors(&mut self) -> &mut FormErrors {
        &mut self.errors
    }
    /// The lines sent are in the acknowledgment; the form is not shown with them (and their
    /// SSNs) again.
    fn accepted(&mut self) {
        self.batch_id.clear();
        self.lines.clear();
    }
}

fn key_in_page(signed: &Signed, values: &KeyInValues, ack: Option<&Acknowledgment>) -> Html<String> {
    let rows: Vec<KeyedLine> = (0..KEY_IN_ROWS).map(|i| values.lines.get(i).cloned().unwrap_or_default()).collect();
    let body = html! {
        @if let Some(ack) = ack { (acknowledgment(ack)) }
        p { "Key in up to five payments of one pay period. Blank rows are skipped. "
            "Each line is checked as in a file; the acknowledgment says what happened to each." }
        form method="post" action="/key-in" {
            (csrf(signed))
            (field("batch_id", "Batch id", &values.batch_id, values.errors.of("batch_id").as_deref(), FieldKind::Text { required: true, hint: Some("e.g. ACME-2026-12-03") }))
            (field("employer_fein", "Employer FEIN", &values.employer_fein, values.errors.of("employer_fein").as_deref(), FieldKind::Text { required: true, hint: Some("43-1234567") }))
            @if let Some(error) = values.errors.of("lines") { p.field-error role="alert" { (error) } }
            table.key-in {
                caption { "Payments" }
                thead { tr {
                    th scope="col" { "Case number" } th scope="col" { "Employee SSN" } th scope="col" { "Last name" }
                    th scope="col" { "Pay date" } th.num scope="col" { "Amount" } th scope="col" { "Left employment" }
                } }
                tbody {
                    @for (i, row) in rows.iter().enumerate() {
                        tr {
                            td { input type="text" name=(format!("lines[{i}].case_number")) value=(row.case_number) aria-label=(format!("Line {} case number", i + 1)) inputmode="numeric"; }
                            td { input type="text" name=(format!("lines[{i}].employee_ssn")) value=(row.employee_ssn) aria-label=(format!("Line {} employee SSN", i + 1)) autocomplete="off"; }
                            td { input type="text" name=(format!("lines[{i}].employee_last_name")) value=(row.employee_last_name) aria-label=(format!("Line {} last name", i + 1)); }
                            td { input type="date" name=(format!("lines[{i}].pay_date")) value=(row.pay_date) aria-label=(format!("Line {} pay date", i + 1)); }
                            td.num { input type="text" name=(format!("lines[{i}].amount")) value=(row.amount) aria-label=(format!("Line {} amount", i + 1)) inputmode="decimal"; }
                            td { input type="checkbox" name=(format!("lines[{i}].terminated")) value="true" checked[row.terminated] aria-label=(format!("Line {} employee left", i + 1)); }
                        }
                    }
                }
            }
            button type="submit" { "Send these lines" }
        }
    };
    layout(signed, "Key in lines", "/key-in", body)
}

pub async fn key_in_form(State(console): State<Console>, signed: Signed) -> Result<Html<String>, ConsoleError> {
    console.app.check_role(&signed.caller, Action::SubmitRemittance).await?;
    Ok(key_in_page(&signed, &KeyInValues::default(), None))
}

/// The key-in form as posted: `lines[0].amount=…` pairs, read by hand (the form is flat).
fn key_in_values(pairs: Vec<(String, String)>) -> (String, KeyInValues) {
    let mut values = KeyInValues { lines: vec![KeyedLine::default(); KEY_IN_ROWS], ..KeyInValues::default() };
    let mut csrf = String::new();
    for (name, value) in pairs {
        let value: String = value.chars().take(200).collect();
        match name.as_str() {
            "csrf" => csrf = value,
            "batch_id" => values.batch_id = value.trim().to_owned(),
            "employer_fein" => values.employer_fein = value.trim().to_owned(),
            other => {
                let Some((index, column)) = other.strip_prefix("lines[").and_then(|rest| rest.split_once("].")) else { continue };
                let Some(line) = index.parse::<usize>().ok().and_then(|i| values.lines.get_mut(i)) else { continue };
                match column {
                    "case_number" => line.case_number = value,
                    "employee_ssn" => line.employee_ssn = value,
                    "employee_last_name" => line.employee_last_name = value,
                    "pay_date" => line.pay_date = value,
                    "amount" => line.amount = value,
                    "terminated" => line.terminated = value == "true",
                    _ => {}
                }
            }
        }
    }
    (csrf, values)
}

/// The keyed-in lines as a CSV file of the agency's format.
fn key_in_csv(values: &KeyInValues) -> Result<Vec<u8>, csv::Error> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(["employer_fein", "case_number", "employee_ssn", "employee_last_name", "pay_date", "amount", "employment_terminated"])?;
    for line in values.lines.iter().filter(|line| !line.is_blank()) {
        writer.write_record([
            values.employer_fein.as_str(),
            line.case_number.trim(),
            line.employee_ssn.trim(),
            line.employee_last_name.trim(),
            line.pay_date.trim(),
            line.amount.trim(),
            if line.terminated { "Y" } else { "N" },
        ])?;
    }
    writer.into_inner().map_err(|e| e.into_error().into())
}

pub async fn key_in(State(console): State<Console>, signed: Signed, Form(pairs): Form<Vec<(String, String)>>) -> Result<Response, ConsoleError> {
    let (presented, mut values) = key_in_values(pairs);
    signed.check_csrf(&presented)?;
    if values.lines.iter().all(KeyedLine::is_blank) {
        values.errors.push("lines", "key in at least one payment");
        return Ok((StatusCode::BAD_REQUEST, key_in_page(&signed, &values, None)).into_response());
    }
    let bytes = key_in_csv(&values).map_err(|e| ConsoleError::Internal(format!("the lines could not be written as CSV: {e}")))?;
    let end = UploadEnd::of(&bytes);
    let upload = futures::stream::iter([Ok(UploadPart::Chunk(bytes)), Ok(UploadPart::End(end))]);
    let submission = Submission { format: RemittanceFormat::Csv, batch_id: values.batch_id.clone(), declared: DeclaredTotals::default() };
    let result = console.app.submit_remittance(&signed.caller, submission, upload).await;
    respond(&signed, values, result, key_in_page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_in_lines_become_a_csv_file_of_the_agencys_format_without_blank_rows() {
        let pairs = [
            ("csrf", "t"),
            ("batch_id", " KEYED-1 "),
            ("employer_fein", "43-1234567"),
            ("lines[0].case_number", "10000011"),
            ("lines[0].employee_ssn", "101-00-0001"),
            ("lines[0].employee_last_name", "Smith, Jr"),
            ("lines[0].pay_date", "2026-11-27"),
            ("lines[0].amount", "184.62"),
            ("lines[3].amount", "1.00"),
            ("lines[3].terminated", "true"),
            ("lines[9].amount", "9.00"),
            ("lines[x].amount", "9.00"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .to_vec();
        let (csrf, values) = key_in_values(pairs);
        assert_eq!((csrf.as_str(), values.batch_id.as_str()), ("t", "KEYED-1"));
        let csv = String::from_utf8(key_in_csv(&values).unwrap()).unwrap();
        assert_eq!(
            csv,
            "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount,employment_terminated\n\
             43-1234567,10000011,101-00-0001,\"Smith, Jr\",2026-11-27,184.62,N\n\
             43-1234567,,,,,1.00,Y\n"
        );
    }
}
