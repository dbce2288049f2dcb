//! The ledger service: converts, calls one `App` method, converts back.

use tonic::{Request, Response, Status};

use super::proto;
use super::services::caller_of;
use crate::storage::verify::VerifyReport;

pub struct Ledger(pub crate::app::App);

/// A verification as the API answers it (also what `gateway admin verify` prints).
pub fn verify_response(report: VerifyReport) -> proto::VerifyLedgerResponse {
    proto::VerifyLedgerResponse {
        ok: report.is_clean(),
        checks: report
            .checks
            .into_iter()
            .map(|check| proto::LedgerCheck {
                name: check.name.to_owned(),
                description: check.what.to_owned(),
                checked: check.checked,
                breach_count: check.breach_count,
                breaches: check.breaches,
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl proto::ledger_service_server::LedgerService for Ledger {
    async fn verify_ledger(&self, request: Request<proto::VerifyLedgerRequest>) -> Result<Response<proto::VerifyLedgerResponse>, Status> {
        let caller = caller_of(&request)?;
        let report = self.0.verify_ledger(&caller).await?;
        Ok(Response::new(verify_response(report)))
    }
}
