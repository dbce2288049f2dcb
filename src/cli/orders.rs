//! `gateway order …`: the back office ends orders, withdraws ends, and lists the orders whose
//! projected end has passed.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use super::client::{status_error, GatewayChannel};
use super::output::{instant, named, print};
use crate::grpc::proto;
use crate::grpc::proto::order_service_client::OrderServiceClient;

#[derive(Debug, Subcommand)]
pub enum OrderCommand {
    /// Record an order's end: its months after the end month are no longer due (arrears stay).
    /// Current support already paid for those months is moved into correction pools, which
    /// the next `gateway distribute` applies again.
    End {
        order_id: String,
        #[arg(long, value_enum)]
        reason: EndReasonArg,
        /// The end date (YYYY-MM-DD): its month is owed in full.
        #[arg(long)]
        date: String,
    },
    /// Withdraw the order's end (the court's decision reversed): the later months are due
    /// again; money already moved stays where the correction put it.
    WithdrawEnd { order_id: String },
    /// Orders whose projected end (18th birthday; 21st with continuing education; none when
    /// impaired) has passed and that have no end yet.
    ProjectedEnds {
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        #[arg(long, default_value = "")]
        page_token: String,
    },
}

/// The six reasons an order ends (`order-lifecycle.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EndReasonArg {
    ChildMarried,
    ChildDied,
    Military,
    SelfSupporting,
    #[value(name = "age-18")]
    Age18,
    #[value(name = "age-21")]
    Age21,
}

impl EndReasonArg {
    fn proto(self) -> proto::EndReason {
        match self {
            EndReasonArg::ChildMarried => proto::EndReason::ChildMarried,
            EndReasonArg::ChildDied => proto::EndReason::ChildDied,
            EndReasonArg::Military => proto::EndReason::Military,
            EndReasonArg::SelfSupporting => proto::EndReason::SelfSupporting,
            EndReasonArg::Age18 => proto::EndReason::Age18,
            EndReasonArg::Age21 => proto::EndReason::Age21,
        }
    }
}

/// One end, as a line.
pub fn end_line(end: &proto::OrderEnd) -> String {
    let mut line = format!(
        "end {} of order {}: {} on {} (recorded by {} at {})",
        end.end_id,
        end.order_id,
        named!(proto::EndReason, "END_REASON_", end.reason),
        end.end_date,
        end.recorded_by,
        instant(end.record_time)
    );
    if !end.withdrawn_by.is_empty() {
        line.push_str(&format!(", withdrawn by {} at {}", end.withdrawn_by, instant(end.withdraw_time)));
    }
    line
}

pub async fn run(channel: GatewayChannel, json: bool, command: OrderCommand) -> anyhow::Result<ExitCode> {
    let mut client = OrderServiceClient::new(channel);
    match command {
        OrderCommand::End { order_id, reason, date } => {
            let request = proto::RecordOrderEndRequest { order_id, reason: reason.proto() as i32, end_date: date };
            let response = client.record_order_end(request).await.map_err(status_error)?.into_inner();
            let text = response.end.as_ref().map_or_else(String::new, |end| {
                let moved = if end.corrected_pools == 0 {
                    "No current support was paid for later months: nothing to correct.".to_owned()
                } else {
                    format!(
                        "{} of current support for later months moved from {} pool(s) into correction pools; \
                         the next `gateway distribute` applies it again.",
                        end.corrected, end.corrected_pools
                    )
                };
                format!("Recorded {}.\n{moved}\n", end_line(end))
            });
            print(json, &response, text)?;
        }
        OrderCommand::WithdrawEnd { order_id } => {
            let response = client.withdraw_order_end(proto::WithdrawOrderEndRequest { order_id }).await.map_err(status_error)?.into_inner();
            let text = response.end.as_ref().map(|end| format!("Withdrawn: {}.\n", end_line(end))).unwrap_or_default();
            print(json, &response, text)?;
        }
        OrderCommand::ProjectedEnds { page_size, page_token } => {
            let response = client
                .list_projected_ends(proto::ListProjectedEndsRequest { page_size, page_token })
                .await
                .map_err(status_error)?
                .into_inner();
            let mut text = String::new();
            if response.projected_ends.is_empty() {
                text.push_str("No order's projected end has passed without an end.\n");
            } else {
                let _ = writeln!(text, "{:<12} {:<9} {:<12} {:<10}  {:<10}  basis", "order", "case", "obligor", "born", "ends");
            }
            for end in &response.projected_ends {
                let basis = named!(proto::EndBasis, "END_BASIS_", end.basis);
                let _ = writeln!(
                    text,
                    "{:<12} {:<9} {:<12} {:<10}  {:<10}  {basis}",
                    end.order_id, end.case_number, end.obligor_id, end.child_birth_date, end.projected_end_date
                );
            }
            if !response.next_page_token.is_empty() {
                let _ = writeln!(text, "More: --page-token {}", response.next_page_token);
            }
            print(json, &response, text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
