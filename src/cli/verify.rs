//! `gateway verify` (over gRPC) and `gateway admin verify` (on the database): the ledger's
//! checks, printed with their counts and every breach; a breach makes the exit status 5.

use std::fmt::Write as _;
use std::process::ExitCode;

use super::client::{status_error, GatewayChannel};
use super::output::print;
use crate::grpc::proto;

/// The exit status when the ledger has a breach.
pub const BREACHED: u8 = 5;

pub fn report_text(response: &proto::VerifyLedgerResponse) -> String {
    let mut text = String::new();
    for check in &response.checks {
        let verdict = if check.breach_count == 0 { "ok".to_owned() } else { format!("{} BREACH(ES)", check.breach_count) };
        let _ = writeln!(text, "{:<32} {:>10} checked  {verdict}  ({})", check.name, check.checked, check.description);
        for breach in &check.breaches {
            let _ = writeln!(text, "    {breach}");
        }
    }
    text.push_str(if response.ok { "The ledger is whole.\n" } else { "The ledger has breaches: see above.\n" });
    text
}

pub fn exit_code(response: &proto::VerifyLedgerResponse) -> ExitCode {
    if response.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(BREACHED)
    }
}

pub async fn run(channel: GatewayChannel, json: bool) -> anyhow::Result<ExitCode> {
    let mut client = proto::ledger_service_client::LedgerServiceClient::new(channel);
    let response = client.verify_ledger(proto::VerifyLedgerRequest {}).await.map_err(status_error)?.into_inner();
    print(json, &response, report_text(&response))?;
    Ok(exit_code(&response))
}
