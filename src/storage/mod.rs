//! Storage behind one trait, [`Store`], with a SQLite implementation (the embedded default)
//! and a PostgreSQL one (production, several replicas).
//!
//! Both run the same SQL (written once in `sql_store.rs`); each backend file holds only what
//! differs: connecting, migrations, and how a distribution run takes its lock. Rows are
//! decoded into domain values here, so nothing above this layer sees SQL types.

pub mod access;
pub mod credit;
mod distribution_chunk;
pub mod ends;
pub mod explain;
mod file_references;
pub mod obligors;
pub mod payment;
mod payment_groups;
mod postgres;
mod postgres_distribution;
mod postgres_files;
mod postgres_payments;
mod postgres_shelf;
mod queue_segments;
pub mod remittance;
mod sql_access;
mod sql_credit;
mod sql_ends;
mod sql_explain;
mod sql_obligors;
mod sql_payment;
mod sql_remittance;
mod sql_store;
mod sql_reports;
mod sql_reviews;
mod sql_suspense;
mod sql_terminations;
mod sql_verify;
mod sqlite;
mod sqlite_checkpoints;
mod sqlite_distribution;
mod sqlite_files;
mod sqlite_journal;
mod sqlite_lookups;
mod sqlite_payments;
mod sqlite_references;
pub mod reports;
pub mod reviews;
pub mod suspense;
pub mod terminations;
pub mod verify;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::NaiveDate;

pub use crate::domain::distribution::RunSummary;
pub use crate::domain::CollectionSource;
use crate::domain::distribution::{ConservationError, ObligorInput, ObligorPlan};
use crate::domain::registry::{RegistryProblem, RegistryRow};
use crate::domain::{Bucket, CaseNumber, Fein, Money, ObligorId, Order, OrderId, OrderLedger, YearMonth};

pub use access::AuditEntry;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From the SQLite connection that writes remittance files (`sqlite_files.rs`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("unsupported database URL `{0}`: use sqlite://FILE or postgres://…")]
    UnsupportedUrl(String),
    /// A stored value that the domain refuses: the database was changed behind our back.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Another writer got there first (e.g. a replica distributed the same collection).
    #[error("concurrent update: {0}")]
    Conflict(String),
    #[error(transparent)]
    Conservation(#[from] ConservationError),
    /// One failure of a commit several calls shared (both backends' group commit of
    /// payments), answered to each of them.
    #[error("{0}")]
    Shared(Arc<StoreError>),
}

impl StoreError {
    /// The database is busy or out of reach for now: the same call may succeed if retried
    /// (a pool that timed out, a connection lost, SQLite's lock held past its timeout).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Shared(error) => error.is_unavailable(),
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)) => true,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(error, _)) => {
                matches!(error.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            }
            // PostgreSQL going away (a failover): a connection exception (08…), the server
            // shutting down or starting (57P01–57P03), or a write sent to a standby (25006).
            StoreError::Database(sqlx::Error::Database(error))
                if error.code().is_some_and(|code| code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "25006")) =>
            {
                true
            }
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6), and their extended codes; only SQLite's
            // (a PostgreSQL SQLSTATE such as 42501 is numeric too, and permanent).
            StoreError::Database(sqlx::Error::Database(error)) if error.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() => {
                error.code().and_then(|code| code.parse::<u32>().ok()).is_some_and(|code| matches!(code & 0xff, 5 | 6))
            }
            _ => false,
        }
    }

    /// The database undid the whole transaction because of another one: PostgreSQL's
    /// serialization failure (40001) or deadlock (40P01). Nothing of it was written; run
    /// again, it will most likely succeed.
    pub fn is_transient_conflict(&self) -> bool {
        match self {
            StoreError::Shared(error) => error.is_transient_conflict(),
            StoreError::Database(sqlx::Error::Database(error)) => matches!(error.code().as_deref(), Some("40001" | "40P01")),
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A registry row as stored: the SSN reduced to its keyed hash and last 4 digits.
#[derive(Clone, Debug)]
pub struct RegistryEntry {
    pub line: u64,
    pub obligor_id: ObligorId,
    pub ssn_hmac: String,
    pub ssn_last4: String,
    pub last_name: String,
    pub first_name: String,
    pub order: Order,
    pub employer_fein: Option<Fein>,
    pub arrears_payment_monthly: Money,
    pub child_birth_date: Option<NaiveDate>,
    pub continuing_education: Option<bool>,
    pub impaired: Option<bool>,
}

impl RegistryEntry {
    /// A parsed registry row, its SSN reduced to `ssn_hmac` and the last 4 digits.
    pub fn from_row(row: RegistryRow, ssn_hmac: String) -> RegistryEntry {
        RegistryEntry {
            line: row.line,
            ssn_hmac,
            ssn_last4: row.ssn.last4().to_owned(),
            obligor_id: row.obligor_id,
            last_name: row.last_name,
            first_name: row.first_name,
            order: row.order,
            employer_fein: row.employer_fein,
            arrears_payment_monthly: row.arrears_payment_monthly,
            child_birth_date: row.child_birth_date,
            continuing_education: row.continuing_education,
            impaired: row.impaired,
        }
    }
}

/// How many registry rows added, changed or left an order as it was.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportCounts {
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistryImport {
    Applied(ImportCounts),
    /// Nothing was written: rows that would move a stored case or order to another obligor,
    /// which would re-attribute money already distributed.
    Refused(Vec<RegistryProblem>),
}

#[derive(Clone, Debug)]
pub struct NewCollection {
    pub obligor_id: ObligorId,
    pub case_number: Option<CaseNumber>,
    pub source: CollectionSource,
    pub amount: Money,
    pub effective_date: NaiveDate,
    pub received_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectionRecord {
    pub collection_id: i64,
    pub obligor_id: ObligorId,
    pub case_number: Option<CaseNumber>,
    pub source: CollectionSource,
    pub amount: Money,
    pub effective_date: NaiveDate,
    pub status: String,
}

/// Money waiting on the back office.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenTotals {
    pub suspense: Money,
    pub unapplied: Money,
}

/// One allocation row as stored, with what the allocation export shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AllocationRecord {
    pub allocation_id: i64,
    pub run_id: i64,
    pub obligor_id: ObligorId,
    pub case_number: Option<CaseNumber>,
    pub order_id: Option<OrderId>,
    pub bucket: Bucket,
    pub month: Option<YearMonth>,
    pub effective_date: NaiveDate,
    pub amount: Money,
}

/// An order with its obligor and everything allocated to it so far.
#[derive(Clone, Debug)]
pub struct StoredOrder {
    pub obligor_id: ObligorId,
    pub ledger: OrderLedger,
}

/// A registry order as the withholding calculator needs it: whose it is, which employer holds
/// its withholding order, its arrears payment, and its ledger.
#[derive(Clone, Debug)]
pub struct WithholdingOrder {
    pub ssn_hmac: String,
    pub employer_fein: Option<Fein>,
    pub arrears_payment_monthly: Money,
    pub ledger: OrderLedger,
}

/// An order with what its projected end is computed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildOrder {
    pub order_id: OrderId,
    pub case_number: CaseNumber,
    pub obligor_id: ObligorId,
    pub child_birth_date: NaiveDate,
    pub continuing_education: Option<bool>,
    pub impaired: Option<bool>,
}

/// Plans a chunk of obligors: a pure function of the balances and pending collections the
/// store loaded, and it must stay one. A run takes it as `&'static` (a plain function), and a
/// backend may call it on any thread, outside the chunk's transaction (SQLite plans the next
/// chunk ahead on a read connection), more than once for a chunk, or for a chunk it then
/// does not write.
pub type Planner = dyn Fn(Vec<ObligorInput>) -> Result<Vec<ObligorPlan>, ConservationError> + Send + Sync;

#[async_trait]
pub trait Store:
    remittance::RemittanceStore + payment::PaymentStore + access::AccessStore + suspense::SuspenseStore
        + terminations::TerminationStore
        + reviews::ReviewStore
        + ends::EndStore
        + credit::CreditStore
        + explain::ExplainStore
        + obligors::ObligorStore
        + verify::VerifyStore
        + reports::ReportStore
        + Send
        + Sync
        + 'static
{
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// A setting stored on first use; returns the value already there when another
    /// process stored one first.
    async fn setting_or_insert(&self, name: &str, value: &str) -> StoreResult<String>;

    /// Upserts registry rows in one transaction; refuses the whole file, writing nothing,
    /// when a row gives a stored case or order to another obligor.
    /// The audit row is written with the rows, in the same transaction.
    async fn import_registry(&self, entries: &[RegistryEntry], audit: &AuditEntry) -> StoreResult<RegistryImport>;

    async fn case_owner(&self, case_number: &CaseNumber) -> StoreResult<Option<ObligorId>>;

    /// Records a collection and its audit row in one transaction.
    async fn add_collection(&self, collection: NewCollection, audit: &AuditEntry) -> StoreResult<CollectionRecord>;

    /// Distributes every pending collection, a chunk of obligors at a time, each chunk its
    /// own transaction: loaded, planned by `planner`, written, checked and committed whole.
    /// On an error the failing chunk is rolled back and the run stops; the chunks before it
    /// stay, and the next run distributes the rest. Returns `None`, writing nothing but the
    /// audit row, when nothing was pending.
    async fn distribute(&self, started_at: &str, planner: &'static Planner, audit: &AuditEntry) -> StoreResult<Option<RunSummary>>;

    /// Allocation rows in the order written, after `after_id`, at most `limit`.
    async fn allocations_after(&self, after_id: i64, limit: u32) -> StoreResult<Vec<AllocationRecord>>;

    /// The money the back office has to work: held in suspense (open items) and allocated as
    /// unapplied credit (reversals netted), for the metrics.
    async fn open_totals(&self) -> StoreResult<OpenTotals>;

    /// Orders by id, after `after` (from the first when `None`), at most `limit`, each
    /// with its ledger of allocations.
    async fn orders_after(&self, after: Option<&OrderId>, limit: u32) -> StoreResult<Vec<StoredOrder>>;

    /// Every order of these cases (at most a few dozen), by case number then order id, each
    /// with its obligor's SSN hash, its employer and its ledger as of `as_of` (the allocations
    /// effective on or before it).
    async fn orders_of_cases(&self, cases: &[CaseNumber], as_of: NaiveDate) -> StoreResult<Vec<WithholdingOrder>>;

    /// Orders without an end date whose child was born on or before `born_by`, by order id,
    /// after `after`, at most `limit`: those whose projected end may have passed.
    async fn orders_without_end_born_by(&self, born_by: NaiveDate, after: Option<&OrderId>, limit: u32) -> StoreResult<Vec<ChildOrder>>;
}

/// The file a `sqlite:` URL names; `None` for another database or an in-memory one.
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    use std::str::FromStr;
    if !url.starts_with("sqlite:") {
        return None;
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url).ok()?;
    let path = options.get_filename();
    (path.as_os_str() != ":memory:" && !path.as_os_str().is_empty()).then(|| path.to_path_buf())
}

/// Opens the database a URL names, creating a SQLite file if it is missing, and brings its
/// schema up to date.
pub async fn connect(url: &str) -> StoreResult<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}
