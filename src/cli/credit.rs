//! `gateway credit …`: the back office lists obligors' unapplied credit, refunds it, or applies
//! it by hand to an order.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Subcommand;

use super::client::{status_error, GatewayChannel};
use super::output::{instant, named, print};
use crate::grpc::proto;
use crate::grpc::proto::credit_service_client::CreditServiceClient;

#[derive(Debug, Subcommand)]
pub enum CreditCommand {
    /// Obligors with unapplied credit left, by obligor id.
    List {
        /// Only this obligor.
        #[arg(long)]
        obligor: Option<String>,
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Refund credit to the obligor (at most what is left).
    Refund {
        obligor_id: String,
        /// The amount (e.g. 125.00).
        #[arg(long)]
        amount: String,
        /// The refund's reference: a check number, an EFT trace.
        #[arg(long)]
        reference: String,
    },
    /// Apply credit by hand to one of the obligor's orders: to a month's current support
    /// (--month), or to its arrears; never beyond what is due there.
    Apply {
        obligor_id: String,
        #[arg(long)]
        order: String,
        #[arg(long)]
        amount: String,
        /// A month of current support (YYYY-MM), due and not after this month; arrears when absent.
        #[arg(long)]
        month: Option<String>,
    },
}

fn action_text(action: &proto::CreditAction) -> String {
    let what = match action.kind() {
        proto::CreditActionKind::Refund => format!("refunded {} (reference {})", action.amount, action.reference),
        _ if action.month.is_empty() => format!("applied {} to order {}'s arrears", action.amount, action.order_id),
        _ => format!("applied {} to order {}'s current support of {}", action.amount, action.order_id, action.month),
    };
    format!(
        "Credit action {} ({}): obligor {} {what}, by {} at {}. Credit left: {}.\n",
        action.credit_id,
        named!(proto::CreditActionKind, "CREDIT_ACTION_KIND_", action.kind),
        action.obligor_id,
        action.recorded_by,
        instant(action.record_time),
        action.credit_left
    )
}

pub async fn run(channel: GatewayChannel, json: bool, command: CreditCommand) -> anyhow::Result<ExitCode> {
    let mut client = CreditServiceClient::new(channel);
    match command {
        CreditCommand::List { obligor, page_size, page_token } => {
            let request = proto::ListUnappliedCreditRequest { page_size, page_token, obligor_id: obligor.unwrap_or_default() };
            let response = client.list_unapplied_credit(request).await.map_err(status_error)?.into_inner();
            let mut text = String::new();
            if response.balances.is_empty() {
                text.push_str("No unapplied credit.\n");
            } else {
                let _ = writeln!(text, "{:<14} {:<30} {:>14}", "obligor", "name", "credit");
            }
            for balance in &response.balances {
                let name = format!("{}, {}", balance.last_name, balance.first_name);
                let _ = writeln!(text, "{:<14} {:<30} {:>14}", balance.obligor_id, name, balance.credit);
            }
            if !response.next_page_token.is_empty() {
                let _ = writeln!(text, "More: --page-token {}", response.next_page_token);
            }
            print(json, &response, text)?;
        }
        CreditCommand::Refund { obligor_id, amount, reference } => {
            let response =
                client.refund_credit(proto::RefundCreditRequest { obligor_id, amount, reference }).await.map_err(status_error)?.into_inner();
            let text = response.action.as_ref().map(action_text).unwrap_or_default();
            print(json, &response, text)?;
        }
        CreditCommand::Apply { obligor_id, order, amount, month } => {
            let request = proto::ApplyCreditRequest { obligor_id, order_id: order, amount, month: month.unwrap_or_default() };
            let response = client.apply_credit(request).await.map_err(status_error)?.into_inner();
            let text = response.action.as_ref().map(action_text).unwrap_or_default();
            print(json, &response, text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
