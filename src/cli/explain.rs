//! `gateway explain …`: where a collection went, and an order's statement; every figure adds
//! up to the amounts.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Subcommand;

use super::client::{status_error, GatewayChannel};
use super::output::{named, print};
use crate::grpc::proto;
use crate::grpc::proto::explain_service_client::ExplainServiceClient;

#[derive(Debug, Subcommand)]
pub enum ExplainCommand {
    /// Where a collection went: its pool, each row with the rule's step and its share, the
    /// orders' balances before and after, and what later moved the pool's money.
    Collection { collection_id: i64 },
    /// An order's statement: support fallen due, money allocated and taken back, ends, and
    /// the running balance owed.
    Order {
        order_id: String,
        /// The first day (YYYY-MM-DD); the order's first month when absent.
        #[arg(long)]
        from: Option<String>,
        /// The last day (YYYY-MM-DD); today when absent.
        #[arg(long)]
        to: Option<String>,
    },
}

fn where_to(entry: &proto::LedgerEntry) -> String {
    let bucket = named!(proto::Bucket, "BUCKET_", entry.bucket);
    match (entry.order_id.is_empty(), entry.month.is_empty()) {
        (true, _) => bucket,
        (false, true) => format!("{} {bucket}", entry.order_id),
        (false, false) => format!("{} {bucket} {}", entry.order_id, entry.month),
    }
}

fn entry_line(entry: &proto::LedgerEntry) -> String {
    let mut why = named!(proto::EntryKind, "ENTRY_KIND_", entry.kind);
    if entry.reversal_of_collection_id != 0 {
        why.push_str(&format!(" of collection {}", entry.reversal_of_collection_id));
    }
    if entry.end_id != 0 {
        why.push_str(&format!(" after end {}", entry.end_id));
    }
    if entry.credit_id != 0 {
        why.push_str(&format!(" by credit action {}", entry.credit_id));
    }
    format!("{}  {:<28} {:>12}  {why} (run {})", entry.write_date, where_to(entry), entry.amount, entry.run_id)
}

fn collection_text(response: &proto::ExplainCollectionResponse) -> String {
    let mut text = String::new();
    if let Some(c) = &response.collection {
        let _ = writeln!(
            text,
            "Collection {} for obligor {}: {} {} effective {}, {}; reversed {}.",
            c.collection_id,
            c.obligor_id,
            named!(proto::CollectionSource, "COLLECTION_SOURCE_", c.source),
            c.amount,
            c.effective_date,
            named!(proto::CollectionStatus, "COLLECTION_STATUS_", c.status),
            response.reversed
        );
    }
    let Some(pool) = &response.pool else {
        text.push_str("Not distributed: it is in no pool.\n");
        return text;
    };
    let members: Vec<String> = pool.collections.iter().map(|c| format!("{} ({})", c.collection_id, c.amount)).collect();
    let _ = writeln!(text, "Pool {} of {}, {}: collections {}.", pool.pool_id, pool.effective_date, pool.amount, members.join(", "));
    let _ = writeln!(text, "\nWhat the rule wrote (this collection's share in proportion):");
    let _ = writeln!(text, "  {:<28} {:>12} {:>12}  step", "to", "row", "share");
    for row in &pool.rows {
        if let Some(entry) = &row.entry {
            let step = named!(proto::RuleStep, "RULE_STEP_", entry.step);
            let _ = writeln!(text, "  {:<28} {:>12} {:>12}  {step}", where_to(entry), entry.amount, row.share);
        }
    }
    let _ = writeln!(text, "\nBalances at the pool's month (the orders' terms as they stand now):");
    let _ = writeln!(text, "  {:<12} {:>14} {:>14} {:>14} {:>14}", "order", "current before", "after", "arrears before", "after");
    for b in &pool.balances {
        let _ = writeln!(
            text,
            "  {:<12} {:>14} {:>14} {:>14} {:>14}",
            b.order_id, b.current_due_before, b.current_due_after, b.arrears_before, b.arrears_after
        );
    }
    if !pool.later_entries.is_empty() {
        let _ = writeln!(text, "\nLater entries about the pool's money:");
        for entry in &pool.later_entries {
            let _ = writeln!(text, "  {}", entry_line(entry));
        }
    }
    let _ = writeln!(text, "\nThe pool's rows hold {} now.", pool.holds);
    text
}

fn order_text(response: &proto::ExplainOrderResponse) -> String {
    let mut text = String::new();
    let ended = if response.end_date.is_empty() { String::new() } else { format!(", ended {}", response.end_date) };
    let _ = writeln!(
        text,
        "Order {} (case {}, obligor {}): {} a month{ended}. Statement {} to {}.",
        response.order_id, response.case_number, response.obligor_id, response.monthly_amount, response.from_date, response.to_date
    );
    let _ = writeln!(text, "  {:<10}  {:<60} {:>12} {:>12}", "date", "", "change", "owed");
    let _ = writeln!(text, "  {:<10}  {:<60} {:>12} {:>12}", response.from_date, "opening balance", "", response.opening);
    for line in &response.lines {
        let what = match line.kind() {
            proto::StatementLineKind::Accrual => format!("support for {} due", line.month),
            proto::StatementLineKind::Entry => line.entry.as_ref().map(entry_line).map(|l| l[12..].to_owned()).unwrap_or_default(),
            proto::StatementLineKind::EndRecorded => line.end.as_ref().map(|e| format!("end recorded: {}", super::orders::end_line(e))).unwrap_or_default(),
            proto::StatementLineKind::EndWithdrawn => line.end.as_ref().map(|e| format!("end withdrawn: {}", super::orders::end_line(e))).unwrap_or_default(),
            proto::StatementLineKind::Unspecified => String::new(),
        };
        let _ = writeln!(text, "  {:<10}  {:<60} {:>12} {:>12}", line.date, what, line.change, line.balance);
    }
    let _ = writeln!(
        text,
        "  closing: {} = opening {} + due {} - allocated {}",
        response.closing, response.opening, response.accrued, response.allocated
    );
    text
}

pub async fn run(channel: GatewayChannel, json: bool, command: ExplainCommand) -> anyhow::Result<ExitCode> {
    let mut client = ExplainServiceClient::new(channel);
    match command {
        ExplainCommand::Collection { collection_id } => {
            let response = client.explain_collection(proto::ExplainCollectionRequest { collection_id }).await.map_err(status_error)?.into_inner();
            let text = collection_text(&response);
            print(json, &response, text)?;
        }
        ExplainCommand::Order { order_id, from, to } => {
            let request = proto::ExplainOrderRequest { order_id, from_date: from.unwrap_or_default(), to_date: to.unwrap_or_default() };
            let response = client.explain_order(request).await.map_err(status_error)?.into_inner();
            let text = order_text(&response);
            print(json, &response, text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
