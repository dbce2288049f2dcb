//! What the back office's reports read: collections per day, late lines, open suspense by
//! day received, and the money waiting. Aggregated in SQL where the databases agree, the rest
//! (business days, age buckets) in the application.

use async_trait::async_trait;
use chrono::NaiveDate;

use super::StoreResult;
use crate::domain::Money;

/// Collections received on one day from one source (and, for payroll money, one employer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DailyCollections {
    /// YYYY-MM-DD (UTC), the day the money was received.
    pub day: String,
    /// PAYROLL, ONLINE or MANUAL.
    pub source: String,
    /// The employer of payroll lines; empty otherwise.
    pub employer_fein: String,
    pub collections: i64,
    pub amount: Money,
}

/// A line received after its remit-by date.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LateLine {
    pub employer_fein: String,
    pub pay_date: NaiveDate,
    pub received_on: NaiveDate,
    pub amount: Money,
}

/// Open suspense items of files received on one day.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuspenseDay {
    pub received_on: NaiveDate,
    pub items: i64,
    pub amount: Money,
}

/// A distribution run as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRecord {
    pub run_id: i64,
    /// RFC 3339.
    pub started_at: String,
    pub collections: i64,
    pub pools: i64,
    pub total: Money,
    pub unapplied: Money,
}

#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Collections by day received (within `from..=to` when given), source and employer.
    async fn collections_by_day(&self, from: Option<NaiveDate>, to: Option<NaiveDate>) -> StoreResult<Vec<DailyCollections>>;

    /// Lines flagged LATE_REMITTANCE and not rejected, of files received within `from..=to`.
    async fn late_lines(&self, from: Option<NaiveDate>, to: Option<NaiveDate>) -> StoreResult<Vec<LateLine>>;

    /// Open suspense items grouped by the day their file was received.
    async fn open_suspense_by_day(&self) -> StoreResult<Vec<SuspenseDay>>;

    /// Money received and not yet distributed: PENDING collections and correction pools.
    async fn pending_total(&self) -> StoreResult<Money>;

    /// The latest distribution run (reversals, corrections and credit are runs of other kinds).
    async fn last_distribution_run(&self) -> StoreResult<Option<RunRecord>>;
}
