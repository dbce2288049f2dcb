//! The back-office CSV exports (`case-registry.md`), produced page by page from the store
//! and streamed in chunks, so an export of millions of rows needs little memory.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::NaiveDate;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::AppError;
use crate::domain::YearMonth;
use crate::storage::Store;

/// Rows read from the store per page (and so per chunk sent).
const ROWS_PER_PAGE: u32 = 2000;

/// CSV text in chunks, header first. An error ends the stream.
pub type ExportStream = ReceiverStream<Result<Vec<u8>, AppError>>;

pub const ALLOCATION_COLUMNS: [&str; 8] =
    ["run_id", "obligor_id", "case_number", "order_id", "bucket", "month", "effective_date", "amount"];

pub const BALANCE_COLUMNS: [&str; 7] = ["order_id", "case_number", "obligor_id", "monthly_amount", "current_due", "arrears", "status"];

pub fn allocations(store: Arc<dyn Store>) -> ExportStream {
    spawn_export(move |sender| async move {
        if !send(&sender, csv_chunk([ALLOCATION_COLUMNS.map(Cow::Borrowed)])?).await {
            return Ok(());
        }
        let mut after = 0;
        loop {
            let page = store.allocations_after(after, ROWS_PER_PAGE).await?;
            let Some(last) = page.last() else { return Ok(()) };
            after = last.allocation_id;
            let rows = page.iter().map(|a| {
                [
                    Cow::Owned(a.run_id.to_string()),
                    spreadsheet_safe(a.obligor_id.as_str()),
                    Cow::Owned(a.case_number.as_ref().map(ToString::to_string).unwrap_or_default()),
                    a.order_id.as_ref().map(|o| spreadsheet_safe(o.as_str())).unwrap_or_default(),
                    Cow::Borrowed(a.bucket.as_str()),
                    Cow::Owned(a.month.map(|m| m.to_string()).unwrap_or_default()),
                    Cow::Owned(a.effective_date.to_string()),
                    Cow::Owned(a.amount.to_string()),
                ]
            });
            if !send(&sender, csv_chunk(rows)?).await {
                return Ok(());
            }
        }
    })
}

pub fn balances(store: Arc<dyn Store>, as_of: NaiveDate) -> ExportStream {
    let month = YearMonth::of(as_of);
    spawn_export(move |sender| async move {
        if !send(&sender, csv_chunk([BALANCE_COLUMNS.map(Cow::Borrowed)])?).await {
            return Ok(());
        }
        let mut after = None;
        loop {
            let page = store.orders_after(after.as_ref(), ROWS_PER_PAGE).await?;
            let Some(last) = page.last() else { return Ok(()) };
            after = Some(last.ledger.order().id.clone());
            let rows = page.iter().map(|stored| {
                let order = stored.ledger.order();
                let ended = order.end_date.is_some_and(|end| end < as_of);
                [
                    spreadsheet_safe(order.id.as_str()),
                    Cow::Owned(order.case_number.to_string()),
                    spreadsheet_safe(stored.obligor_id.as_str()),
                    Cow::Owned(order.monthly_amount.to_string()),
                    Cow::Owned(stored.ledger.current_due(month).to_string()),
                    Cow::Owned(stored.ledger.arrears(month).to_string()),
                    Cow::Borrowed(if ended { "ENDED" } else { "ACTIVE" }),
                ]
            });
            if !send(&sender, csv_chunk(rows)?).await {
                return Ok(());
            }
        }
    })
}

pub const SUSPENSE_COLUMNS: [&str; 9] = ["batch_id", "line", "case_number", "ssn", "amount", "pay_date", "reason", "state", "suspense_id"];

/// The suspense queue: one row per line that could not be identified, with the case number
/// and masked SSN as received.
pub fn suspense(store: Arc<dyn Store>) -> ExportStream {
    spawn_export(move |sender| async move {
        if !send(&sender, csv_chunk([SUSPENSE_COLUMNS.map(Cow::Borrowed)])?).await {
            return Ok(());
        }
        let mut after = 0;
        loop {
            let page = store.suspense_after(after, ROWS_PER_PAGE).await?;
            let Some(last) = page.last() else { return Ok(()) };
            after = last.suspense_id;
            let rows = page.iter().map(|item| {
                [
                    spreadsheet_safe(&item.batch_id).into_owned().into(),
                    Cow::Owned(item.line.to_string()),
                    item.case_number.as_deref().map(|c| Cow::Owned(spreadsheet_safe(c).into_owned())).unwrap_or_default(),
                    Cow::Owned(item.ssn_last4.as_deref().map(|l| format!("***-**-{l}")).unwrap_or_default()),
                    Cow::Owned(item.amount.to_string()),
                    Cow::Owned(item.pay_date.to_string()),
                    Cow::Owned(item.reason.clone()),
                    Cow::Owned(item.state.clone()),
                    Cow::Owned(item.suspense_id.to_string()),
                ]
            });
            if !send(&sender, csv_chunk(rows)?).await {
                return Ok(());
            }
        }
    })
}

pub const AUDIT_COLUMNS: [&str; 9] = ["audit_id", "at", "request_id", "actor", "key_id", "role", "action", "object", "outcome"];

/// The audit trail, oldest first: who did what, to what, when, and how it ended.
pub fn audit(store: Arc<dyn Store>) -> ExportStream {
    spawn_export(move |sender| async move {
        if !send(&sender, csv_chunk([AUDIT_COLUMNS.map(Cow::Borrowed)])?).await {
            return Ok(());
        }
        let mut after = 0;
        loop {
            let page = store.audit_after(after, ROWS_PER_PAGE).await?;
            let Some(last) = page.last() else { return Ok(()) };
            after = last.audit_id;
            let rows = page.iter().map(|row| {
                let entry = &row.entry;
                [
                    Cow::Owned(row.audit_id.to_string()),
                    Cow::Owned(entry.at.clone()),
                    Cow::Owned(entry.request_id.clone()),
                    Cow::Owned(spreadsheet_safe(&entry.actor).into_owned()),
                    Cow::Owned(entry.key_id.clone().unwrap_or_default()),
                    Cow::Owned(entry.role.clone()),
                    Cow::Owned(entry.action.clone()),
                    Cow::Owned(spreadsheet_safe(&entry.object).into_owned()),
                    Cow::Owned(entry.outcome.clone()),
                ]
            });
            if !send(&sender, csv_chunk(rows)?).await {
                return Ok(());
            }
        }
    })
}

type Sender = mpsc::Sender<Result<Vec<u8>, AppError>>;

fn spawn_export<F, Fut>(produce: F) -> ExportStream
where
    F: FnOnce(Sender) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), AppError>> + Send,
{
    let (sender, receiver) = mpsc::channel(2);
    tokio::spawn(async move {
        // A client gone (or an answer cut off) stops the producer at once, even inside a
        // page's query or a report's aggregate: its future is dropped.
        let result = tokio::select! {
            result = produce(sender.clone()) => result,
            () = sender.closed() => Ok(()),
        };
        if let Err(error) = result {
            tracing::error!(%error, "export failed");
            let _ = sender.send(Err(error)).await;
        }
    });
    ReceiverStream::new(receiver)
}

/// Sends a chunk; false when the client has gone away (nothing more to do).
async fn send(sender: &Sender, chunk: Vec<u8>) -> bool {
    sender.send(Ok(chunk)).await.is_ok()
}

fn csv_chunk<'a, R, I>(rows: I) -> Result<Vec<u8>, AppError>
where
    I: IntoIterator<Item = R>,
    R: IntoIterator<Item = Cow<'a, str>>,
{
    let mut writer = csv::Writer::from_writer(Vec::new());
    for row in rows {
        writer.write_record(row.into_iter().map(|cell| cell.into_owned())).map_err(|e| AppError::Internal(e.to_string()))?;
    }
    writer.into_inner().map_err(|e| AppError::Internal(e.to_string()))
}

/// Neutralises a text cell that a spreadsheet would run as a formula (`=`, `+`, `-`, `@`,
/// tab, CR first) by prefixing `'`. Plain numbers such as `-300.00` stay numbers.
pub fn spreadsheet_safe(text: &str) -> Cow<'_, str> {
    let risky = text.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let plain_number = text.strip_prefix('-').is_some_and(|rest| {
        !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit() || b == b'.') && rest.bytes().filter(|&b| b == b'.').count() <= 1
    });
    if risky && !plain_number {
        Cow::Owned(format!("'{text}"))
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_numbers_kept() {
        assert_eq!(spreadsheet_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(spreadsheet_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(spreadsheet_safe("+1"), "'+1");
        assert_eq!(spreadsheet_safe("-2+3"), "'-2+3");
        assert_eq!(spreadsheet_safe("\tx"), "'\tx");
        assert_eq!(spreadsheet_safe("-300.00"), "-300.00");
        assert_eq!(spreadsheet_safe("ORD-1"), "ORD-1");
    }
}

/// Which report the back office asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportKind {
    /// Collections per day received, by source and employer.
    Collections,
    /// Late remittances by employer: lines, amount, average days late.
    Late,
    /// Open suspense by age bucket.
    SuspenseAge,
    /// Money waiting: undistributed, in suspense, unapplied credit.
    Totals,
}

pub const COLLECTIONS_REPORT_COLUMNS: [&str; 5] = ["day", "source", "employer_fein", "collections", "amount"];
pub const LATE_REPORT_COLUMNS: [&str; 4] = ["employer_fein", "late_lines", "amount", "average_days_late"];
pub const SUSPENSE_AGE_COLUMNS: [&str; 3] = ["age_days", "items", "amount"];
pub const TOTALS_COLUMNS: [&str; 2] = ["figure", "amount"];

/// A report as CSV, header first. Reports are aggregates (a row per day, employer or bucket),
/// so each is computed whole and sent in one chunk.
pub fn report(store: Arc<dyn Store>, kind: ReportKind, today: NaiveDate, from: Option<NaiveDate>, to: Option<NaiveDate>) -> ExportStream {
    use crate::domain::reports::{late_by_employer, suspense_by_age};
    spawn_export(move |sender| async move {
        let owned = |text: String| Cow::Owned(text);
        let csv = match kind {
            ReportKind::Collections => {
                let rows = store.collections_by_day(from, to).await?;
                let header = [COLLECTIONS_REPORT_COLUMNS.map(Cow::Borrowed)];
                let body = rows.into_iter().map(|r| {
                    [owned(r.day), owned(r.source), owned(r.employer_fein), owned(r.collections.to_string()), owned(r.amount.to_string())]
                });
                csv_chunk(header.into_iter().chain(body))?
            }
            ReportKind::Late => {
                let lines = store.late_lines(from, to).await?;
                let employers = late_by_employer(lines.into_iter().map(|l| (l.employer_fein, l.pay_date, l.received_on, l.amount)));
                let header = [LATE_REPORT_COLUMNS.map(Cow::Borrowed)];
                let body = employers.into_iter().map(|e| {
                    let average = e.average_days_late();
                    [owned(e.employer_fein), owned(e.lines.to_string()), owned(e.amount.to_string()), owned(average)]
                });
                csv_chunk(header.into_iter().chain(body))?
            }
            ReportKind::SuspenseAge => {
                let days = store.open_suspense_by_day().await?;
                let buckets = suspense_by_age(today, days.into_iter().map(|d| (d.received_on, d.items, d.amount)));
                let header = [SUSPENSE_AGE_COLUMNS.map(Cow::Borrowed)];
                let body = buckets.into_iter().map(|(name, items, amount)| [Cow::Borrowed(name), owned(items.to_string()), owned(amount.to_string())]);
                csv_chunk(header.into_iter().chain(body))?
            }
            ReportKind::Totals => {
                let open = store.open_totals().await?;
                let pending = store.pending_total().await?;
                let header = [TOTALS_COLUMNS.map(Cow::Borrowed)];
                let body = [("undistributed", pending), ("suspense", open.suspense), ("unapplied", open.unapplied)]
                    .map(|(figure, amount)| [Cow::Borrowed(figure), owned(amount.to_string())]);
                csv_chunk(header.into_iter().chain(body))?
            }
        };
        send(&sender, csv).await;
        Ok(())
    })
}
