//! Finding an obligor the way a clerk asks: by one of its case numbers, by the start of its
//! last name, or by its SSN's last four digits.

use async_trait::async_trait;

use super::StoreResult;
use crate::domain::{CaseNumber, Order, ObligorId};

/// Which obligors a search finds; every filter given must hold (at least one is given).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObligorFilter {
    pub case_number: Option<CaseNumber>,
    /// The last name starts with this, in any case.
    pub last_name_prefix: Option<String>,
    pub ssn_last4: Option<String>,
}

/// An obligor found, with its orders.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObligorSummary {
    pub obligor_id: ObligorId,
    pub last_name: String,
    pub first_name: String,
    pub ssn_last4: String,
    /// By order id.
    pub orders: Vec<Order>,
}

#[async_trait]
pub trait ObligorStore: Send + Sync {
    /// Obligors matching `filter`, by obligor id, after `after`, at most `limit`.
    async fn find_obligors(&self, filter: &ObligorFilter, after: Option<&ObligorId>, limit: u32) -> StoreResult<Vec<ObligorSummary>>;
}
