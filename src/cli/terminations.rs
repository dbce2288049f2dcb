//! `gateway terminations …`: the back office works employers' termination notices.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Subcommand;

use super::client::{status_error, GatewayChannel};
use super::output::{instant, print};
use crate::grpc::proto::termination_service_client::TerminationServiceClient;
use crate::grpc::proto;

#[derive(Debug, Subcommand)]
pub enum TerminationsCommand {
    /// List termination notices, oldest first (those not yet handled unless --all).
    List {
        /// Only this employer's notices.
        #[arg(long)]
        employer_fein: Option<String>,
        /// Only this obligor's notices.
        #[arg(long)]
        obligor: Option<String>,
        /// Handled notices too.
        #[arg(long)]
        all: bool,
        /// Notices per page (at most 1000).
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        /// The page after the one that printed this token.
        #[arg(long, default_value = "")]
        page_token: String,
    },
    /// Mark a notice handled (the withholding order was sent on).
    Handled { notice_id: i64 },
}

fn notice_line(n: &proto::TerminationNotice) -> String {
    let obligor = if n.obligor_id.is_empty() { "(unidentified)" } else { n.obligor_id.as_str() };
    let mut line = format!(
        "{:>6}  {:<9}  {:<14} ***-**-{}  {:<10}  {}/{} line {}",
        n.notice_id, n.employer_fein, obligor, n.ssn_last4, n.pay_date, n.sender, n.batch_id, n.line
    );
    if !n.handled_by.is_empty() {
        let _ = write!(line, "  handled by {} at {}", n.handled_by, instant(n.handle_time));
    }
    line
}

pub async fn run(channel: GatewayChannel, json: bool, command: TerminationsCommand) -> anyhow::Result<ExitCode> {
    let mut client = TerminationServiceClient::new(channel);
    match command {
        TerminationsCommand::List { employer_fein, obligor, all, page_size, page_token } => {
            let request = proto::ListTerminationNoticesRequest {
                page_size,
                page_token,
                handled: if all { None } else { Some(false) },
                employer_fein: employer_fein.unwrap_or_default(),
                obligor_id: obligor.unwrap_or_default(),
            };
            let response = client.list_termination_notices(request).await.map_err(status_error)?.into_inner();
            let mut text = String::new();
            if response.termination_notices.is_empty() {
                text.push_str("No termination notices match.\n");
            } else {
                let _ = writeln!(text, "{:>6}  {:<9}  {:<14} {:<11}  {:<10}  from", "notice", "employer", "obligor", "SSN", "pay date");
                for notice in &response.termination_notices {
                    let _ = writeln!(text, "{}", notice_line(notice));
                }
            }
            if !response.next_page_token.is_empty() {
                let _ = writeln!(text, "More: --page-token {}", response.next_page_token);
            }
            print(json, &response, text)?;
        }
        TerminationsCommand::Handled { notice_id } => {
            let request = proto::MarkTerminationNoticeHandledRequest { notice_id };
            let response = client.mark_termination_notice_handled(request).await.map_err(status_error)?.into_inner();
            let text = response.termination_notice.as_ref().map(|n| format!("{}\n", notice_line(n))).unwrap_or_default();
            print(json, &response, text)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
