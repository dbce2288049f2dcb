//! Use cases: what the gateway does for its users, over the domain and the store.
//!
//! Each public method of [`App`] is one thing a user asks for (import the registry, record a
//! collection, run distribution, export). The gRPC handlers and the CLI call exactly one of
//! them; rules live in `domain`, persistence in `storage`.

pub mod access;
mod clock;
pub mod console;
mod error;
mod export;
pub mod key_cache;
pub mod payments;
pub mod pii;
pub mod paging;
mod remittance;
pub mod retry;
mod upload;
pub mod credit;
pub mod ends;
pub mod explain;
pub mod obligors;
pub mod reviews;
mod registry_cache;
mod verify;
pub mod suspense;
pub mod terminations;
pub mod withholding;

use std::sync::Arc;

use chrono::NaiveDate;

use crate::domain::access::Action;
use crate::domain::distribution::plan_obligors;
use crate::domain::registry::RegistryProblem;
use crate::domain::{CaseNumber, Money};
use crate::formats::registry::read_registry;
use crate::metrics::Metrics;
use crate::storage::{AuditEntry, CollectionRecord, CollectionSource, NewCollection, RegistryEntry, RegistryImport, RunSummary, Store};
use crate::domain::ObligorId;

pub use access::{AuthError, Caller, CreatedKey, Credentials, NewKey};
pub use clock::{Clock, FixedClock, SystemClock};
pub use error::{date_field, optional_date_field, AppError, FieldViolation};
pub use export::{spreadsheet_safe, ExportStream, ReportKind};
pub use pii::PiiKey;
pub use remittance::{AckStatus, Acknowledgment, FileQuery, FileSummary, LineFilter, LineOutcome, LineProblemView, Submission, REMITTANCE_LIST};
pub use upload::{UploadCheck, UploadEnd, UploadLimits, UploadPart, UploadStream};
pub use withholding::{OrderAnswer, PayrollRun, WithholdingAnswer, WithholdingRequest};

/// The gateway's use cases, shared by every request.
#[derive(Clone)]
pub struct App {
    store: Arc<dyn Store>,
    pii: Arc<PiiKey>,
    clock: Arc<dyn Clock>,
    limits: UploadLimits,
    metrics: Arc<Metrics>,
    /// How many "not found" answers the withholding calculator gives each sender.
    lookups: Arc<withholding::LookupBudget>,
    /// Keys recently read, so a call costs no database read to authenticate.
    keys: Arc<key_cache::KeyCache>,
    /// The registry in memory, for matching files' lines. See [`registry_cache`].
    registry: Arc<registry_cache::RegistryCache>,
}

/// The answer to a registry import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryOutcome {
    pub applied: bool,
    pub rows: u64,
    pub added: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub problems: Vec<RegistryProblem>,
}

/// A collection as the application reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CollectionView {
    pub collection_id: i64,
    pub obligor_id: ObligorId,
    pub case_number: Option<CaseNumber>,
    pub source: CollectionSource,
    pub amount: Money,
    pub effective_date: NaiveDate,
    /// PENDING, DISTRIBUTED or REVERSED.
    pub status: String,
}

impl From<CollectionRecord> for CollectionView {
    fn from(record: CollectionRecord) -> CollectionView {
        CollectionView {
            collection_id: record.collection_id,
            obligor_id: record.obligor_id,
            case_number: record.case_number,
            source: record.source,
            amount: record.amount,
            effective_date: record.effective_date,
            status: record.status,
        }
    }
}

impl App {
    pub fn new(store: Arc<dyn Store>, pii: PiiKey, clock: Arc<dyn Clock>, limits: UploadLimits) -> App {
        let metrics = Arc::new(Metrics::default());
        App {
            store,
            pii: Arc::new(pii),
            clock,
            limits,
            metrics: metrics.clone(),
            lookups: Arc::new(withholding::LookupBudget::standard()),
            keys: Arc::new(key_cache::KeyCache::new(key_cache::KEY_CACHE_TTL)),
            registry: Arc::new(registry_cache::RegistryCache::new(metrics)),
        }
    }

    /// This application with keys trusted for `ttl` after they are read (zero: read on
    /// every call). See [`key_cache`].
    pub fn with_key_cache_ttl(mut self, ttl: std::time::Duration) -> App {
        self.keys = Arc::new(key_cache::KeyCache::new(ttl));
        self
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn today(&self) -> NaiveDate {
        self.clock.today()
    }

    /// Imports a registry CSV streamed in chunks. All-or-nothing: any invalid row, or a row
    /// that would move a stored case or order to another obligor, refuses the file whole.
    pub async fn import_registry(&self, caller: &Caller, upload: impl UploadStream) -> Result<RegistryOutcome, AppError> {
        let audit = self.authorize(caller, Action::ImportRegistry, "registry").await?;
        let result = self.import_registry_audited(upload, &audit).await;
        // Every row of the file was held at once, and is now freed.
        crate::memory::release_freed_memory().await;
        if matches!(&result, Ok(outcome) if !outcome.applied) {
            self.audit_outcome(audit, "REFUSED").await?;
            return result;
        }
        let outcome = self.audited_write(audit, result).await?;
        // Files usually follow an import: the registry is read into memory now, not by the
        // first batch of lines that finds it changed.
        self.start_reading_registry().await;
        Ok(outcome)
    }

    /// Starts reading the registry into memory for matching files' lines, unless the index
    /// held is already the database's (see [`registry_cache`]).
    pub async fn start_reading_registry(&self) {
        match self.store.registry_generation().await {
            Ok(generation) => drop(self.registry.index_at(&self.store, generation)),
            Err(error) => tracing::warn!(%error, "reading the registry's generation failed; the first file reads the registry"),
        }
    }

    async fn import_registry_audited(&self, upload: impl UploadStream, audit: &AuditEntry) -> Result<RegistryOutcome, AppError> {
        let file_limits = self.limits.file;
        let parsed = upload::parse_upload(upload, self.limits, move |input| read_registry(input, file_limits)).await?;
        let rows = match parsed {
            Ok(rows) => rows,
            Err(problems) => return Ok(RegistryOutcome::refused(0, problems)),
        };
        let entries: Vec<RegistryEntry> = rows
            .into_iter()
            .map(|row| {
                let ssn_hmac = self.pii.ssn_hmac(&row.ssn);
                RegistryEntry::from_row(row, ssn_hmac)
            })
            .collect();
        let row_count = entries.len() as u64;
        match self.store.import_registry(&entries, audit).await? {
            RegistryImport::Applied(counts) => {
                tracing::info!(
                    rows = row_count,
                    added = counts.added,
                    updated = counts.updated,
                    unchanged = counts.unchanged,
                    "registry imported"
                );
                Ok(RegistryOutcome {
                    applied: true,
                    rows: row_count,
                    added: counts.added,
                    updated: counts.updated,
                    unchanged: counts.unchanged,
                    problems: Vec::new(),
                })
            }
            RegistryImport::Refused(problems) => Ok(RegistryOutcome::refused(row_count, problems)),
        }
    }

    /// Records money received for the obligor of `case_number`, entered by the back office.
    pub async fn add_manual_collection(
        &self,
        caller: &Caller,
        case_number: CaseNumber,
        amount: Money,
        effective_date: NaiveDate,
    ) -> Result<CollectionView, AppError> {
        let audit = self.authorize(caller, Action::AddCollection, format!("case:{case_number}")).await?;
        let result = self.add_manual_collection_audited(case_number, amount, effective_date, &audit).await;
        self.audited_write(audit, result).await.map(CollectionView::from)
    }

    async fn add_manual_collection_audited(
        &self,
        case_number: CaseNumber,
        amount: Money,
        effective_date: NaiveDate,
        audit: &AuditEntry,
    ) -> Result<CollectionRecord, AppError> {
        if !amount.is_positive() || amount > Money::MAX_LINE_AMOUNT {
            return Err(AppError::invalid("amount", "the amount must be above 0.00 and at most 99999999.99"));
        }
        if effective_date > self.today() {
            return Err(AppError::invalid("effective_date", "money cannot be received in the future"));
        }
        let obligor_id = self
            .store
            .case_owner(&case_number)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("case {case_number} is not in the registry")))?;
        let record = self
            .store
            .add_collection(
                NewCollection {
                    obligor_id,
                    case_number: Some(case_number),
                    source: CollectionSource::Manual,
                    amount,
                    effective_date,
                    received_at: self.clock.now_rfc3339(),
                },
                audit,
            )
            .await?;
        tracing::info!(collection_id = record.collection_id, amount = %record.amount, "manual collection recorded");
        Ok(record)
    }

    /// Distributes every pending collection. `None` when there was nothing to distribute.
    pub async fn distribute(&self, caller: &Caller) -> Result<Option<RunSummary>, AppError> {
        let audit = self.authorize(caller, Action::RunDistribution, "distribution").await?;
        let result = self.distribute_audited(&audit).await;
        self.audited_write(audit, result).await
    }

    async fn distribute_audited(&self, audit: &AuditEntry) -> Result<Option<RunSummary>, AppError> {
        let started = std::time::Instant::now();
        // Not retried here on a conflict: the run commits chunk by chunk, so a retry would
        // answer with the later chunks only. The client is answered ABORTED with a retry
        // hint, and its next run distributes what is still pending.
        let summary = self.store.distribute(&self.clock.now_rfc3339(), &plan_obligors, audit).await?;
        self.metrics.observe_distribution(started.elapsed());
        match &summary {
            Some(run) => tracing::info!(
                run_id = run.run_id,
                collections = run.collections,
                pools = run.pools,
                total = %run.total,
                unapplied = %run.unapplied,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "distribution run committed"
            ),
            None => tracing::info!("distribution run: nothing pending"),
        }
        Ok(summary)
    }

    /// The allocation export, as CSV chunks.
    pub async fn export_allocations(&self, caller: &Caller) -> Result<ExportStream, AppError> {
        let audit = self.authorize(caller, Action::ExportAllocations, "export:allocations").await?;
        self.audited_read(audit, Ok(())).await?;
        Ok(export::allocations(self.store.clone()))
    }

    /// The suspense queue, as CSV chunks.
    pub async fn export_suspense(&self, caller: &Caller) -> Result<ExportStream, AppError> {
        let audit = self.authorize(caller, Action::ExportSuspense, "export:suspense").await?;
        self.audited_read(audit, Ok(())).await?;
        Ok(export::suspense(self.store.clone()))
    }

    /// A back-office report as CSV (`from`/`to` bound the days of the collections and late
    /// reports).
    pub async fn export_report(
        &self,
        caller: &Caller,
        kind: ReportKind,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<ExportStream, AppError> {
        let audit = self.authorize(caller, Action::ExportReport, format!("report:{kind:?}")).await?;
        self.audited_read(audit, Ok(())).await?;
        Ok(export::report(self.store.clone(), kind, self.today(), from, to))
    }

    /// The balance export as of a date (today when `None`), as CSV chunks.
    pub async fn export_balances(&self, caller: &Caller, as_of: Option<NaiveDate>) -> Result<ExportStream, AppError> {
        let as_of = as_of.unwrap_or_else(|| self.today());
        let audit = self.authorize(caller, Action::ExportBalances, format!("export:balances:{as_of}")).await?;
        self.audited_read(audit, Ok(())).await?;
        Ok(export::balances(self.store.clone(), as_of))
    }
}

impl RegistryOutcome {
    fn refused(rows: u64, problems: Vec<RegistryProblem>) -> RegistryOutcome {
        RegistryOutcome { applied: false, rows, added: 0, updated: 0, unchanged: 0, problems }
    }
}
