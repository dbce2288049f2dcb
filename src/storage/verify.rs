//! Re-checking the ledger from the stored rows alone (`gateway verify`): conservation of
//! every collection and pool, every file's totals and collections, current support within
//! each month's amount, and that rows already sealed were never changed.

use async_trait::async_trait;

use super::StoreResult;

/// The most breaches a check lists by id (it still counts them all).
pub const BREACHES_LISTED: usize = 100;

/// One check: what it verified, over how many rows, and what broke it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// A stable name: `collections_conserved`, `pools_conserved`, …
    pub name: &'static str,
    /// What it verifies, in a sentence.
    pub what: &'static str,
    /// Rows checked.
    pub checked: u64,
    /// Breaches found.
    pub breach_count: u64,
    /// The first breaches, each naming its ids.
    pub breaches: Vec<String>,
}

/// What a verification found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub checks: Vec<Check>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.checks.iter().all(|check| check.breach_count == 0)
    }
}

#[async_trait]
pub trait VerifyStore: Send + Sync {
    /// Runs every check from the stored rows, and seals the allocations and the audit trail
    /// as they now are (a digest of every row up to the last id), after checking that the
    /// rows an earlier verification sealed are unchanged.
    async fn verify_ledger(&self, sealed_at: &str) -> StoreResult<VerifyReport>;
}
