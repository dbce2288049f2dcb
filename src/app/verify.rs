//! Verifying the ledger (`gateway verify`): every check re-computed from the stored rows.

use super::{App, AppError, Caller};
use crate::domain::access::Action;
use crate::storage::verify::VerifyReport;

impl App {
    /// Re-checks conservation and the sealed rows; a breach is part of the answer, not an error.
    pub async fn verify_ledger(&self, caller: &Caller) -> Result<VerifyReport, AppError> {
        let audit = self.authorize(caller, Action::VerifyLedger, "ledger").await?;
        let result = async {
            let report = self.store.verify_ledger(&self.clock.now_rfc3339()).await?;
            if !report.is_clean() {
                let breached: Vec<&str> = report.checks.iter().filter(|c| c.breach_count > 0).map(|c| c.name).collect();
                tracing::error!(checks = ?breached, "the ledger verification found breaches");
            }
            Ok(report)
        }
        .await;
        self.audited_read(audit, result).await
    }
}
