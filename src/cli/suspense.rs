//! `gateway suspense …`: the back office works the suspense queue.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};

use super::client::{status_error, GatewayChannel};
use super::output::{instant, named, print};
use crate::grpc::proto::suspense_service_client::SuspenseServiceClient;
use crate::grpc::proto::{self, resolve_suspense_item_request::Target};

#[derive(Debug, Subcommand)]
pub enum SuspenseCommand {
    /// List suspense items, oldest first (OPEN ones unless --state says otherwise).
    List(Box<ListArgs>),
    /// Show one item, with how it was worked.
    Show { suspense_id: i64 },
    /// Resolve an OPEN item to an obligor or a case: it becomes a collection effective on the
    /// line's pay date, distributed by the next run.
    Resolve {
        suspense_id: i64,
        /// The obligor the money belongs to.
        #[arg(long, conflicts_with = "case_number", required_unless_present = "case_number")]
        obligor: Option<String>,
        /// A case of the obligor the money belongs to (the collection keeps it).
        #[arg(long)]
        case_number: Option<String>,
    },
    /// Return an OPEN item to its sender: no collection is made.
    Return {
        suspense_id: i64,
        /// Why, for the sender.
        #[arg(long)]
        reason: String,
        /// The return's reference (a check number, an ACH trace).
        #[arg(long)]
        reference: String,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_enum, default_value_t = State::Open)]
    state: State,
    /// Only items from this sender's files (a key name).
    #[arg(long)]
    sender: Option<String>,
    #[arg(long)]
    employer_fein: Option<String>,
    #[arg(long)]
    batch_id: Option<String>,
    /// Only items in suspense for this reason (a problem code).
    #[arg(long)]
    reason: Option<String>,
    #[arg(long)]
    min_amount: Option<String>,
    #[arg(long)]
    max_amount: Option<String>,
    /// Only items received at least this many days ago.
    #[arg(long)]
    min_age_days: Option<u32>,
    /// The order of the items.
    #[arg(long, value_enum, default_value = "oldest-first")]
    order: Order,
    /// Items per page (at most 1000).
    #[arg(long, default_value_t = 50)]
    page_size: i32,
    /// The page after the one that printed this token.
    #[arg(long, default_value = "")]
    page_token: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Order {
    OldestFirst,
    NewestFirst,
    LargestFirst,
    SmallestFirst,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum State {
    Open,
    Resolved,
    Returned,
}

fn item_line(item: &proto::SuspenseItem) -> String {
    let case = if item.case_number.is_empty() { "-" } else { item.case_number.as_str() };
    let mut line = format!(
        "{:>6}  {:<16} {:<20} {:>5}  {:<9}  {:<10} ***-**-{}  {:>12}  {}",
        item.suspense_id, item.sender, item.batch_id, item.line, item.employer_fein, case, item.ssn_last4, item.amount, item.pay_date
    );
    let _ = write!(line, "  {}", item.reason);
    match named!(proto::SuspenseState, "SUSPENSE_STATE_", item.state).as_str() {
        "RESOLVED" => {
            let _ = write!(
                line,
                "  → {} (collection {})",
                item.resolved_obligor_id.as_deref().unwrap_or("?"),
                item.collection_id.map_or("?".to_owned(), |id| id.to_string())
            );
        }
        "RETURNED" => {
            let _ = write!(line, "  returned ({}: {})", item.return_reference.as_deref().unwrap_or(""), item.return_reason.as_deref().unwrap_or(""));
        }
        _ => {}
    }
    line
}

fn item_text(item: &proto::SuspenseItem) -> String {
    let state = named!(proto::SuspenseState, "SUSPENSE_STATE_", item.state);
    let mut text = format!(
        "Suspense item {} ({state}): {} from line {} of {}'s batch {}, pay date {}, employer {}, case {}, SSN ***-**-{}\n  reason {}, received {}\n",
        item.suspense_id,
        item.amount,
        item.line,
        item.sender,
        item.batch_id,
        item.pay_date,
        item.employer_fein,
        if item.case_number.is_empty() { "-" } else { &item.case_number },
        item.ssn_last4,
        item.reason,
        instant(item.create_time)
    );
    if !item.worked_by.is_empty() {
        let _ = writeln!(text, "  {state} by {} at {}", item.worked_by, instant(item.work_time));
    }
    if let (Some(obligor), Some(collection)) = (&item.resolved_obligor_id, item.collection_id) {
        let _ = writeln!(text, "  resolved to obligor {obligor}: collection {collection}");
    }
    if let Some(reference) = &item.return_reference {
        let _ = writeln!(text, "  returned to the sender, reference {reference}: {}", item.return_reason.as_deref().unwrap_or(""));
    }
    text
}

pub async fn run(channel: GatewayChannel, json: bool, command: SuspenseCommand) -> anyhow::Result<ExitCode> {
    let mut client = SuspenseServiceClient::new(channel);
    match command {
        SuspenseCommand::List(args) => {
            let state = match args.state {
                State::Open => proto::SuspenseState::Open,
                State::Resolved => proto::SuspenseState::Resolved,
                State::Returned => proto::SuspenseState::Returned,
            };
            let request = proto::ListSuspenseItemsRequest {
                page_size: args.page_size,
                page_token: args.page_token,
                state: state as i32,
                sender: args.sender.unwrap_or_default(),
                employer_fein: args.employer_fein.unwrap_or_default(),
                batch_id: args.batch_id.unwrap_or_default(),
                reason: args.reason.unwrap_or_default(),
                min_amount: args.min_amount,
                max_amount: args.max_amount,
                min_age_days: args.min_age_days,
                order: match args.order {
                    Order::OldestFirst => proto::SuspenseOrder::OldestFirst,
                    Order::NewestFirst => proto::SuspenseOrder::NewestFirst,
                    Order::LargestFirst => proto::SuspenseOrder::LargestFirst,
                    Order::SmallestFirst => proto::SuspenseOrder::SmallestFirst,
                }
                .into(),
            };
            let response = client.list_suspense_items(request).await.map_err(status_error)?.into_inner();
            let mut text = String::new();
            if response.suspense_items.is_empty() {
                text.push_str("No suspense items match.\n");
            } else {
                let _ = writeln!(
                    text,
                    "{:>6}  {:<16} {:<20} {:>5}  {:<9}  {:<10} {:<11}  {:>12}  {:<10}  reason",
                    "item", "sender", "batch", "line", "employer", "case", "SSN", "amount", "pay date"
                );
                for item in &response.suspense_items {
                    let _ = writeln!(text, "{}", item_line(item));
                }
            }
            if !response.next_page_token.is_empty() {
                let _ = writeln!(text, "More: --page-token {}", response.next_page_token);
            }
            print(json, &response, text)?;
        }
        SuspenseCommand::Show { suspense_id } => {
            let response = client.get_suspense_item(proto::GetSuspenseItemRequest { suspense_id }).await.map_err(status_error)?.into_inner();
            let text = response.suspense_item.as_ref().map(item_text).unwrap_or_default();
            print(json, &response, text)?;
        }
        SuspenseCommand::Resolve { suspense_id, obligor, case_number } => {
            let target = match (obligor, case_number) {
                (Some(obligor), _) => Target::ObligorId(obligor),
                (None, Some(case)) => Target::CaseNumber(case),
                (None, None) => anyhow::bail!("--obligor or --case-number names whose money it is"),
            };
            let request = proto::ResolveSuspenseItemRequest { suspense_id, target: Some(target) };
            let response = client.resolve_suspense_item(request).await.map_err(status_error)?.into_inner();
            let mut text = response.suspense_item.as_ref().map(item_text).unwrap_or_default();
            if let Some(collection) = &response.collection {
                let _ = writeln!(
                    text,
                    "Collection {}: {} for obligor {}, effective {}, distributed by the next run.",
                    collection.collection_id, collection.amount, collection.obligor_id, collection.effective_date
                );
            }
            print(json, &response, text)?;
        }
        SuspenseCommand::Return { suspense_id, reason, reference } => {
            let request = proto::ReturnSuspenseItemRequest { suspense_id, reason, reference };
            let response = client.return_suspense_item(request).await.map_err(status_error)?.into_inner();
            let text = response.suspense_item.as_ref().map(item_text).unwrap_or_default();
            print(json, &response, text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
