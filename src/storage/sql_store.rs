//! The SQL both backends run, written once.
//!
//! SQLite and PostgreSQL accept the same `$1` placeholders, `ON CONFLICT`, `RETURNING` and
//! the queries below, so the one body of [`impl_sql_store!`] is expanded for each backend's
//! concrete sqlx types. A backend supplies `writer()`, `reader()`, `begin_writing()`,
//! `lock_distribution(&mut tx)` and `distribute_chunks` (its way of running a distribution
//! run's chunks, whose steps and SQL are `distribution_chunk.rs`'s); everything else is shared.

use std::fmt::Display;

use chrono::NaiveDate;

use super::StoreError;
use crate::domain::month::parse_iso_date;
use crate::domain::{Bucket, CaseNumber, Money, ObligorId, Order, OrderId, YearMonth};

/// A distribution run's first chunk's span of the registry (migrations 0020).
pub(super) const OBLIGORS_PER_BATCH: i64 = 500;

/// About how many collections a distribution chunk should carry: the next chunk's span is
/// sized from the chunk before. A chunk of few collections pays its fixed costs (listing,
/// conservation sums, a durable commit) for little; a chunk of very many holds the writer
/// long and files and payments wait. 30,000 collections take about half a second on SQLite.
pub(super) const COLLECTIONS_PER_CHUNK: u64 = 30_000;

/// About how many obligors with money a chunk should plan: each one's orders and balances are
/// loaded. Sizing aims at it; a chunk is read again smaller only past twice as many
/// ([`chunk_too_big`]).
pub(super) const PLANNED_PER_CHUNK: u64 = 5_000;

/// The bounds of a chunk's span of the registry (migrations 0020: a chunk covers the
/// registry's obligors from the first with money after the chunk before). The most keeps
/// the registry's read of the span cheap. A span sized across a sparse stretch of the queue
/// may meet a dense one: [`PENDING_READ_AT_MOST`] and [`chunk_too_big`] bound what it loads.
pub(super) const SPAN_PER_CHUNK: std::ops::RangeInclusive<i64> = 100..=100_000;

/// The most pending collections a chunk's read takes (its `LIMIT`): twice
/// [`COLLECTIONS_PER_CHUNK`], and one more to tell that there were more.
pub(super) const PENDING_READ_AT_MOST: u64 = 2 * COLLECTIONS_PER_CHUNK + 1;

/// Whether a chunk whose pending read took `collections` of `obligors` is too big to load
/// whole: more than twice [`COLLECTIONS_PER_CHUNK`] collections or [`PLANNED_PER_CHUNK`]
/// obligors. It is then read again with a quarter of its span ([`smaller_span`]); at the
/// least span it is taken whatever it holds (an obligor's collections are never split). So
/// what a chunk loads stays within about twice its aim, or the least span's obligors (plus
/// the few obligors with a correction pool and no collection, counted after this check).
pub(super) fn chunk_too_big(collections: u64, obligors: u64) -> bool {
    collections >= PENDING_READ_AT_MOST || obligors > 2 * PLANNED_PER_CHUNK
}

/// A quarter of `span`, never under the least; `None` if `span` is the least already.
pub(super) fn smaller_span(span: i64) -> Option<i64> {
    (span > *SPAN_PER_CHUNK.start()).then(|| (span / 4).max(*SPAN_PER_CHUNK.start()))
}

/// The next chunk's span of the registry, from the chunk before: its `span`, the obligors it
/// `planned` (those with money) and the `collections` it took. The span that would carry
/// about [`COLLECTIONS_PER_CHUNK`] collections and plan about [`PLANNED_PER_CHUNK`] obligors
/// at the same densities, whichever is less, at most four times `span`.
pub(super) fn next_chunk_span(span: u64, planned: u64, collections: u64) -> i64 {
    let span = span.max(1) as f64;
    let by_collections = COLLECTIONS_PER_CHUNK as f64 * span / collections.max(1) as f64;
    let by_planned = PLANNED_PER_CHUNK as f64 * span / planned.max(1) as f64;
    let wanted = by_collections.min(by_planned).min(4.0 * span);
    (wanted as i64).clamp(*SPAN_PER_CHUNK.start(), *SPAN_PER_CHUNK.end())
}

/// A collection with its claim, if any (migration 0018): `collections` keeps what was
/// received; the queue and the claims keep what became of it.
pub(super) const COLLECTION_WITH_CLAIM: &str =
    "collections c LEFT JOIN collection_claims k ON k.obligor_id = c.obligor_id AND k.collection_id = c.collection_id";

/// A collection's status over [`COLLECTION_WITH_CLAIM`]: reversed whether claimed or not;
/// otherwise distributed once claimed, and pending until then.
pub(super) const COLLECTION_STATUS: &str =
    "CASE WHEN c.reversed THEN 'REVERSED' WHEN k.pool_id IS NOT NULL THEN 'DISTRIBUTED' ELSE 'PENDING' END";

/// Rows per multi-row INSERT (at most 14 parameters a row: 7,000 a statement, far below both
/// databases' limits).
pub(super) const ROWS_PER_INSERT: usize = 500;

/// Values per IN (…) list: well under SQLite's and PostgreSQL's parameter limits.
pub(super) const LOOKUP_CHUNK: usize = 500;

/// `$1, $2, …, $n`.
pub(super) fn placeholders(count: usize) -> String {
    (1..=count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

pub(super) fn corrupt<E: Display>(what: &'static str) -> impl FnOnce(E) -> StoreError {
    move |error| StoreError::Corrupt(format!("{what}: {error}"))
}

pub(super) fn date(text: &str) -> Result<NaiveDate, StoreError> {
    parse_iso_date(text).ok_or_else(|| StoreError::Corrupt(format!("date `{text}`")))
}

pub(super) fn optional_date(text: Option<String>) -> Result<Option<NaiveDate>, StoreError> {
    text.as_deref().map(date).transpose()
}

pub(super) fn month(text: Option<String>) -> Result<Option<YearMonth>, StoreError> {
    text.as_deref().map(|m| YearMonth::parse(m).map_err(corrupt("month"))).transpose()
}

/// The month of an `order_balances` row: '' (arrears) is none.
pub(super) fn balance_month(text: &str) -> Result<Option<YearMonth>, StoreError> {
    match text {
        "" => Ok(None),
        month => YearMonth::parse(month).map(Some).map_err(corrupt("month")),
    }
}

pub(super) fn bucket(text: &str) -> Result<Bucket, StoreError> {
    Bucket::parse(text).ok_or_else(|| StoreError::Corrupt(format!("bucket `{text}`")))
}

pub(super) fn obligor_id(text: &str) -> Result<ObligorId, StoreError> {
    ObligorId::parse(text).map_err(corrupt("obligor id"))
}

pub(super) fn order_id(text: &str) -> Result<OrderId, StoreError> {
    OrderId::parse(text).map_err(corrupt("order id"))
}

pub(super) fn case_number(text: &str) -> Result<CaseNumber, StoreError> {
    CaseNumber::parse(text).map_err(corrupt("case number"))
}

/// The columns of `orders` that make an [`Order`], in this order.
pub(super) const ORDER_COLUMNS: &str =
    "order_id, case_number, monthly_amount_cents, start_month, opening_arrears_cents, end_date, obligor_id";

/// A row selected with [`ORDER_COLUMNS`].
pub(super) type OrderRow = (String, String, i64, String, i64, Option<String>, String);

/// The obligor a case number belongs to.
pub(super) const CASE_OWNER_QUERY: &str = "SELECT obligor_id FROM cases WHERE case_number = $1";

/// Decodes an order from a row selected with [`ORDER_COLUMNS`].
pub(super) fn order_from_columns(
    id: &str,
    case: &str,
    monthly_cents: i64,
    start: &str,
    arrears_cents: i64,
    end: Option<String>,
) -> Result<Order, StoreError> {
    Ok(Order {
        id: order_id(id)?,
        case_number: case_number(case)?,
        monthly_amount: Money::from_cents(monthly_cents),
        start_month: YearMonth::parse(start).map_err(corrupt("start month"))?,
        opening_arrears: Money::from_cents(arrears_cents),
        end_date: optional_date(end)?,
    })
}

/// Expands the [`Store`](super::Store) implementation for one backend.
macro_rules! impl_sql_store {
    ($store:ty, $db:ty, $backend:literal) => {
        #[async_trait::async_trait]
        impl $crate::storage::Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn setting_or_insert(&self, name: &str, value: &str) -> $crate::storage::StoreResult<String> {
                sqlx::query("INSERT INTO gateway_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                    .bind(name)
                    .bind(value)
                    .execute(self.writer())
                    .await?;
                let stored: String = sqlx::query_scalar("SELECT value FROM gateway_settings WHERE name = $1")
                    .bind(name)
                    .fetch_one(self.writer())
                    .await?;
                Ok(stored)
            }

            async fn import_registry(
                &self,
                entries: &[$crate::storage::RegistryEntry],
                audit: &$crate::storage::AuditEntry,
            ) -> $crate::storage::StoreResult<$crate::storage::RegistryImport> {
                use $crate::domain::codes::ProblemCode;
                use $crate::domain::registry::RegistryProblem;
                use $crate::storage::{ImportCounts, RegistryImport};

                let mut tx = self.begin_writing().await?;
                // A row that moves an end earlier corrects money already distributed: the
                // import waits for a running distribution chunk, and takes the lock before any
                // row lock, in the order every other writer of pools takes them.
                Self::lock_distribution(&mut tx).await?;
                // First read everything as it stood before this file (three statements per 500
                // rows), so that every row is compared with the stored registry, not with an
                // earlier row of the file.
                use std::collections::HashMap;
                use $crate::storage::sql_store::{placeholders, LOOKUP_CHUNK};
                use $crate::storage::sql_store::{StoredOrderRow, ROWS_PER_INSERT};
                type Obligor = (String, String, String, String);
                let mut problems = Vec::new();
                let mut previous = Vec::with_capacity(entries.len());
                for chunk in entries.chunks(LOOKUP_CHUNK) {
                    let mut case_owners: HashMap<String, String> = HashMap::with_capacity(chunk.len());
                    let mut stored_obligors: HashMap<String, Obligor> = HashMap::with_capacity(chunk.len());
                    // Each stored order as compared, and the end in force before this file.
                    let mut stored_orders: HashMap<String, (StoredOrderRow, Option<String>)> = HashMap::with_capacity(chunk.len());
                    let marks = placeholders(chunk.len());
                    let query = format!("SELECT case_number, obligor_id FROM cases WHERE case_number IN ({marks})");
                    let mut select = sqlx::query_as::<_, (String, String)>(&query);
                    for entry in chunk {
                        select = select.bind(entry.order.case_number.as_str());
                    }
                    case_owners.extend(select.fetch_all(&mut *tx).await?);
                    let query = format!("SELECT obligor_id, ssn_hmac, ssn_last4, last_name, first_name FROM obligors WHERE obligor_id IN ({marks})");
                    let mut select = sqlx::query_as::<_, (String, String, String, String, String)>(&query);
                    for entry in chunk {
                        select = select.bind(entry.obligor_id.as_str());
                    }
                    for (obligor_id, ssn_hmac, ssn_last4, last_name, first_name) in select.fetch_all(&mut *tx).await? {
                        stored_obligors.insert(obligor_id, (ssn_hmac, ssn_last4, last_name, first_name));
                    }
                    let query = format!(
                        "SELECT order_id, obligor_id, case_number, monthly_amount_cents, start_month, opening_arrears_cents, registry_end_date, \
                         employer_fein, child_birth_date, continuing_education, impaired, arrears_payment_monthly_cents, end_date \
                         FROM orders WHERE order_id IN ({marks})"
                    );
                    type Row = (String, String, String, i64, String, i64, Option<String>, Option<String>, Option<String>, Option<bool>, Option<bool>, i64, Option<String>);
                    let mut select = sqlx::query_as::<_, Row>(&query);
                    for entry in chunk {
                        select = select.bind(entry.order.id.as_str());
                    }
                    for (id, obligor, case, monthly, start, arrears, registry_end, fein, birth, education, impaired, arrears_monthly, end) in
                        select.fetch_all(&mut *tx).await?
                    {
                        let compared = (obligor, case, monthly, start, arrears, registry_end, fein, birth, education, impaired, arrears_monthly);
                        stored_orders.insert(id, (compared, end));
                    }
                    for entry in chunk {
                        if let Some(owner) = case_owners.get(entry.order.case_number.as_str()).filter(|o| o.as_str() != entry.obligor_id.as_str()) {
                            problems.push(RegistryProblem::new(
                                entry.line,
                                "case_number",
                                ProblemCode::CaseOwnerConflict,
                                format!("case {} belongs to obligor `{owner}` in the registry", entry.order.case_number),
                            ));
                        }
                        let order = stored_orders.remove(entry.order.id.as_str());
                        if let Some((stored, _)) = order.as_ref().filter(|(o, _)| o.0 != entry.obligor_id.as_str()) {
                            problems.push(RegistryProblem::new(
                                entry.line,
                                "order_id",
                                ProblemCode::OrderOwnerConflict,
                                format!("order `{}` belongs to obligor `{}` in the registry", entry.order.id, stored.0),
                            ));
                        }
                        previous.push((stored_obligors.get(entry.obligor_id.as_str()).cloned(), order));
                    }
                }
                if !problems.is_empty() {
                    tx.rollback().await?;
                    return Ok(RegistryImport::Refused(problems));
                }

                // The back office's ends in force: the end that counts is the earlier of theirs
                // and the registry's, whatever the registry says.
                let events: Vec<(String, String)> = sqlx::query_as(
                    "SELECT order_id, end_date FROM order_ends WHERE withdrawn_at IS NULL AND reason <> 'REGISTRY_IMPORT'",
                )
                .fetch_all(&mut *tx)
                .await?;
                let mut events_by_order = std::collections::HashMap::with_capacity(events.len());
                for (order, end_date) in events {
                    events_by_order.insert(order, $crate::storage::sql_store::date(&end_date)?);
                }
                let mut counts = ImportCounts::default();
                // The rows to write, many a statement: an obligor once, as its last row in the
                // file says (as one upsert a row would leave it); a case once, to its first
                // obligor (later ones did nothing); each order (ids are unique in a file) with
                // the end in force.
                let mut obligor_rows: Vec<(&str, Obligor)> = Vec::new();
                let mut obligor_at: HashMap<&str, usize> = HashMap::new();
                let mut case_rows: Vec<(&str, &str)> = Vec::new();
                let mut case_seen: std::collections::HashSet<&str> = std::collections::HashSet::new();
                // One upsert may not touch a row twice (PostgreSQL refuses it): the file's
                // checks (`formats::registry`) make order ids unique.
                debug_assert!(
                    entries.iter().map(|e| e.order.id.as_str()).collect::<std::collections::HashSet<_>>().len() == entries.len(),
                    "order ids are unique in a registry file"
                );
                let mut order_rows: Vec<(&str, StoredOrderRow, Option<String>)> = Vec::with_capacity(entries.len());
                // The rows whose registry end moved: (row, its end before this file, the end in force).
                let mut moved_ends = Vec::new();
                for (entry, (stored_obligor, stored_order)) in entries.iter().zip(previous) {
                    let obligor = (
                        entry.ssn_hmac.clone(),
                        entry.ssn_last4.clone(),
                        entry.last_name.clone(),
                        entry.first_name.clone(),
                    );
                    let order: StoredOrderRow = (
                        entry.obligor_id.to_string(),
                        entry.order.case_number.to_string(),
                        entry.order.monthly_amount.cents(),
                        entry.order.start_month.to_string(),
                        entry.order.opening_arrears.cents(),
                        entry.order.end_date.map(|d| d.to_string()),
                        entry.employer_fein.as_ref().map(|f| f.as_str().to_owned()),
                        entry.child_birth_date.map(|d| d.to_string()),
                        entry.continuing_education,
                        entry.impaired,
                        entry.arrears_payment_monthly.cents(),
                    );
                    match (&stored_order, &stored_obligor) {
                        (None, _) => counts.added += 1,
                        (Some((o, _)), Some(b)) if *o == order && *b == obligor => counts.unchanged += 1,
                        _ => counts.updated += 1,
                    }
                    let registry_end_moved = stored_order.as_ref().map_or(entry.order.end_date.is_some(), |(o, _)| o.5 != order.5);
                    let event_end = events_by_order.get(entry.order.id.as_str()).copied();
                    let effective_end = $crate::domain::lifecycle::effective_end(entry.order.end_date, event_end);
                    if registry_end_moved {
                        let previous_end = match &stored_order {
                            Some((_, end)) => $crate::storage::sql_store::optional_date(end.clone())?,
                            None => effective_end,
                        };
                        moved_ends.push((entry, previous_end, effective_end, stored_order.is_some()));
                    }
                    match obligor_at.get(entry.obligor_id.as_str()) {
                        Some(&at) => obligor_rows[at].1 = obligor,
                        None => {
                            obligor_at.insert(entry.obligor_id.as_str(), obligor_rows.len());
                            obligor_rows.push((entry.obligor_id.as_str(), obligor));
                        }
                    }
                    if case_seen.insert(entry.order.case_number.as_str()) {
                        case_rows.push((entry.order.case_number.as_str(), entry.obligor_id.as_str()));
                    }
                    order_rows.push((entry.order.id.as_str(), order, effective_end.map(|d| d.to_string())));
                }
                for chunk in obligor_rows.chunks(ROWS_PER_INSERT) {
                    let mut upsert = sqlx::QueryBuilder::<$db>::new("INSERT INTO obligors (obligor_id, ssn_hmac, ssn_last4, last_name, first_name) ");
                    upsert.push_values(chunk, |mut row, (obligor_id, (ssn_hmac, ssn_last4, last_name, first_name))| {
                        row.push_bind(*obligor_id).push_bind(ssn_hmac).push_bind(ssn_last4).push_bind(last_name).push_bind(first_name);
                    });
                    upsert.push(
                        " ON CONFLICT (obligor_id) DO UPDATE SET ssn_hmac = excluded.ssn_hmac, ssn_last4 = excluded.ssn_last4, \
                         last_name = excluded.last_name, first_name = excluded.first_name",
                    );
                    upsert.build().execute(&mut *tx).await?;
                }
                for chunk in case_rows.chunks(ROWS_PER_INSERT) {
                    let mut insert = sqlx::QueryBuilder::<$db>::new("INSERT INTO cases (case_number, obligor_id) ");
                    insert.push_values(chunk, |mut row, (case_number, obligor_id)| {
                        row.push_bind(*case_number).push_bind(*obligor_id);
                    });
                    insert.push(" ON CONFLICT (case_number) DO NOTHING");
                    insert.build().execute(&mut *tx).await?;
                }
                for chunk in order_rows.chunks(ROWS_PER_INSERT) {
                    let mut upsert = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO orders (order_id, obligor_id, case_number, monthly_amount_cents, start_month, \
                         opening_arrears_cents, registry_end_date, employer_fein, child_birth_date, continuing_education, impaired, \
                         arrears_payment_monthly_cents, end_date, max_monthly_amount_cents) ",
                    );
                    upsert.push_values(chunk, |mut row, (order_id, order, end_date)| {
                        row.push_bind(*order_id)
                            .push_bind(&order.0)
                            .push_bind(&order.1)
                            .push_bind(order.2)
                            .push_bind(&order.3)
                            .push_bind(order.4)
                            .push_bind(&order.5)
                            .push_bind(&order.6)
                            .push_bind(&order.7)
                            .push_bind(order.8)
                            .push_bind(order.9)
                            .push_bind(order.10)
                            .push_bind(end_date)
                            .push_bind(order.2);
                    });
                    upsert.push(
                        " ON CONFLICT (order_id) DO UPDATE SET case_number = excluded.case_number, \
                         monthly_amount_cents = excluded.monthly_amount_cents, start_month = excluded.start_month, \
                         max_monthly_amount_cents = CASE WHEN excluded.monthly_amount_cents > orders.max_monthly_amount_cents \
                         THEN excluded.monthly_amount_cents ELSE orders.max_monthly_amount_cents END, \
                         opening_arrears_cents = excluded.opening_arrears_cents, registry_end_date = excluded.registry_end_date, \
                         end_date = excluded.end_date, \
                         employer_fein = excluded.employer_fein, child_birth_date = excluded.child_birth_date, \
                         continuing_education = excluded.continuing_education, impaired = excluded.impaired, \
                         arrears_payment_monthly_cents = excluded.arrears_payment_monthly_cents",
                    );
                    upsert.build().execute(&mut *tx).await?;
                }
                // Ends moved by the registry, once every row is written (each concerns its own
                // order only: ids are unique in a file).
                for (entry, previous_end, effective_end, was_stored) in moved_ends {
                    // The registry's earlier end is superseded; its new one (if any) is recorded.
                    sqlx::query(
                        "UPDATE order_ends SET withdrawn_by = $1, withdrawn_at = $2 \
                         WHERE order_id = $3 AND reason = 'REGISTRY_IMPORT' AND withdrawn_at IS NULL",
                    )
                    .bind(&audit.actor)
                    .bind(&audit.at)
                    .bind(entry.order.id.as_str())
                    .execute(&mut *tx)
                    .await?;
                    if let Some(registry_end) = entry.order.end_date {
                        let end_id: i64 = sqlx::query_scalar(
                            "INSERT INTO order_ends (order_id, reason, end_date, recorded_by, recorded_at) \
                             VALUES ($1, 'REGISTRY_IMPORT', $2, $3, $4) RETURNING end_id",
                        )
                        .bind(entry.order.id.as_str())
                        .bind(registry_end.to_string())
                        .bind(&audit.actor)
                        .bind(&audit.at)
                        .fetch_one(&mut *tx)
                        .await?;
                        // An end moved earlier after the money: corrected like an end event.
                        let moved_earlier = previous_end.is_none_or(|previous| registry_end < previous);
                        if was_stored && effective_end == Some(registry_end) && moved_earlier {
                            $crate::storage::sql_ends::write_end_corrections!(
                                tx,
                                &entry.order.id,
                                entry.obligor_id.as_str(),
                                registry_end,
                                end_id,
                                &audit.at
                            );
                        }
                    }
                }
                $crate::storage::sql_access::insert_audit!(&mut *tx, audit)?;
                tx.commit().await?;
                // The import has committed: a failure here costs speed, not the import.
                if let Err(error) = self.registry_changed_in_bulk().await {
                    tracing::warn!(%error, "refreshing the registry's planner statistics after an import failed");
                }
                Ok(RegistryImport::Applied(counts))
            }

            async fn case_owner(
                &self,
                case_number: &$crate::domain::CaseNumber,
            ) -> $crate::storage::StoreResult<Option<$crate::domain::ObligorId>> {
                let owner = self.case_owner_row(case_number.as_str()).await?;
                owner.as_deref().map($crate::storage::sql_store::obligor_id).transpose()
            }

            async fn add_collection(
                &self,
                collection: $crate::storage::NewCollection,
                audit: &$crate::storage::AuditEntry,
            ) -> $crate::storage::StoreResult<$crate::storage::CollectionRecord> {
                let mut tx = self.writer().begin().await?;
                let collection_id: i64 = sqlx::query_scalar(
                    "INSERT INTO collections (obligor_id, case_number, source, amount_cents, effective_date, received_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING collection_id",
                )
                .bind(collection.obligor_id.as_str())
                .bind(collection.case_number.as_ref().map(|c| c.as_str()))
                .bind(collection.source.as_str())
                .bind(collection.amount.cents())
                .bind(collection.effective_date.to_string())
                .bind(&collection.received_at)
                .fetch_one(&mut *tx)
                .await?;
                $crate::storage::sql_access::insert_audit!(&mut *tx, audit)?;
                tx.commit().await?;
                Ok($crate::storage::CollectionRecord {
                    collection_id,
                    obligor_id: collection.obligor_id,
                    case_number: collection.case_number,
                    source: collection.source,
                    amount: collection.amount,
                    effective_date: collection.effective_date,
                    status: "PENDING".to_owned(),
                })
            }

            async fn distribute(
                &self,
                started_at: &str,
                planner: &'static $crate::storage::Planner,
                audit: &$crate::storage::AuditEntry,
            ) -> $crate::storage::StoreResult<Option<$crate::storage::RunSummary>> {
                // Each backend runs the chunks its own way (`distribution_chunk.rs`).
                let run = self.distribute_chunks(started_at, planner).await?;
                // The call's audit row, once the run is whole (a failed run's error is audited
                // by the caller instead; a crash leaves the chunks and their run row).
                $crate::storage::sql_access::insert_audit!(self.writer(), audit)?;
                Ok(run)
            }

            async fn open_totals(&self) -> $crate::storage::StoreResult<$crate::storage::OpenTotals> {
                // SUM of no rows is NULL on both databases; BIGINT keeps PostgreSQL's SUM an int8.
                let (suspense,): (Option<i64>,) =
                    sqlx::query_as("SELECT CAST(SUM(amount_cents) AS BIGINT) FROM suspense_items WHERE state = 'OPEN'")
                        .fetch_one(self.reader())
                        .await?;
                let (unapplied,): (Option<i64>,) =
                    sqlx::query_as("SELECT CAST(SUM(amount_cents) AS BIGINT) FROM allocations WHERE bucket = 'UNAPPLIED'")
                        .fetch_one(self.reader())
                        .await?;
                Ok($crate::storage::OpenTotals {
                    suspense: $crate::domain::Money::from_cents(suspense.unwrap_or(0)),
                    unapplied: $crate::domain::Money::from_cents(unapplied.unwrap_or(0)),
                })
            }

            async fn allocations_after(
                &self,
                after_id: i64,
                limit: u32,
            ) -> $crate::storage::StoreResult<Vec<$crate::storage::AllocationRecord>> {
                use $crate::storage::sql_store as sql;
                let rows: Vec<(i64, i64, String, Option<String>, Option<String>, String, Option<String>, String, i64)> = sqlx::query_as(
                    "SELECT a.allocation_id, a.run_id, a.obligor_id, o.case_number, a.order_id, a.bucket, a.month, \
                     a.effective_date, a.amount_cents FROM allocations a LEFT JOIN orders o ON o.order_id = a.order_id \
                     WHERE a.allocation_id > $1 ORDER BY a.allocation_id LIMIT $2",
                )
                .bind(after_id)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                rows.into_iter()
                    .map(|(allocation_id, run_id, obligor, case, order, bucket, month, effective_date, cents)| {
                        Ok($crate::storage::AllocationRecord {
                            allocation_id,
                            run_id,
                            obligor_id: sql::obligor_id(&obligor)?,
                            case_number: case.as_deref().map(sql::case_number).transpose()?,
                            order_id: order.as_deref().map(sql::order_id).transpose()?,
                            bucket: sql::bucket(&bucket)?,
                            month: sql::month(month)?,
                            effective_date: sql::date(&effective_date)?,
                            amount: $crate::domain::Money::from_cents(cents),
                        })
                    })
                    .collect()
            }

            async fn orders_after(
                &self,
                after: Option<&$crate::domain::OrderId>,
                limit: u32,
            ) -> $crate::storage::StoreResult<Vec<$crate::storage::StoredOrder>> {
                use $crate::domain::distribution::OrderLedger;
                use $crate::storage::sql_store::{self as sql, ORDER_COLUMNS};
                use $crate::storage::{StoreError, StoredOrder};

                let after = after.map(|id| id.as_str()).unwrap_or("");
                let orders: Vec<$crate::storage::sql_store::OrderRow> = sqlx::query_as(&format!(
                    "SELECT {ORDER_COLUMNS} FROM orders WHERE order_id > $1 ORDER BY order_id LIMIT $2"
                ))
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                let (Some(first), Some(last)) = (orders.first(), orders.last()) else { return Ok(Vec::new()) };
                let paid: Vec<(String, String, String, i64)> = sqlx::query_as(
                    "SELECT order_id, bucket, month, paid_cents FROM order_balances WHERE order_id BETWEEN $1 AND $2",
                )
                .bind(&first.0)
                .bind(&last.0)
                .fetch_all(self.reader())
                .await?;
                let mut stored = Vec::with_capacity(orders.len());
                let mut index = std::collections::HashMap::with_capacity(orders.len());
                for (id, case, monthly, start, arrears, end, obligor) in orders {
                    let order = sql::order_from_columns(&id, &case, monthly, &start, arrears, end)?;
                    index.insert(id, stored.len());
                    stored.push(StoredOrder { obligor_id: sql::obligor_id(&obligor)?, ledger: OrderLedger::new(order) });
                }
                for (order, bucket, month, cents) in paid {
                    let position = *index.get(&order).ok_or_else(|| StoreError::Corrupt(format!("balance of unknown order {order}")))?;
                    stored[position].ledger.record(sql::bucket(&bucket)?, sql::balance_month(&month)?, $crate::domain::Money::from_cents(cents));
                }
                Ok(stored)
            }

            async fn orders_of_cases(
                &self,
                cases: &[$crate::domain::CaseNumber],
                as_of: chrono::NaiveDate,
            ) -> $crate::storage::StoreResult<Vec<$crate::storage::WithholdingOrder>> {
                use $crate::domain::distribution::OrderLedger;
                use $crate::domain::{Fein, Money};
                use $crate::storage::sql_store::{self as sql, ORDER_COLUMNS};
                use $crate::storage::{StoreError, WithholdingOrder};

                if cases.is_empty() {
                    return Ok(Vec::new());
                }
                let placeholders = |count: usize| (1..=count).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ");
                let sql = format!(
                    "SELECT {ORDER_COLUMNS}, employer_fein, arrears_payment_monthly_cents, \
                     (SELECT ssn_hmac FROM obligors b WHERE b.obligor_id = orders.obligor_id) \
                     FROM orders WHERE case_number IN ({}) ORDER BY case_number, order_id",
                    placeholders(cases.len())
                );
                let mut query = sqlx::query_as::<_, sql::WithholdingOrderRow>(&sql);
                for case in cases {
                    query = query.bind(case.as_str());
                }
                let rows = query.fetch_all(self.reader()).await?;
                if rows.is_empty() {
                    return Ok(Vec::new());
                }
                let sql = format!(
                    "SELECT order_id, bucket, month, CAST(SUM(amount_cents) AS BIGINT) FROM allocations \
                     WHERE effective_date <= $1 AND order_id IN ({}) GROUP BY order_id, bucket, month",
                    (2..rows.len() + 2).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
                );
                let mut query = sqlx::query_as::<_, (String, String, Option<String>, i64)>(&sql).bind(as_of.to_string());
                for row in &rows {
                    query = query.bind(&row.0);
                }
                let paid = query.fetch_all(self.reader()).await?;
                let mut orders = Vec::with_capacity(rows.len());
                let mut index = std::collections::HashMap::with_capacity(rows.len());
                for (id, case, monthly, start, arrears, end, _obligor, fein, arrears_payment, ssn_hmac) in rows {
                    let order = sql::order_from_columns(&id, &case, monthly, &start, arrears, end)?;
                    index.insert(id, orders.len());
                    orders.push(WithholdingOrder {
                        ssn_hmac,
                        employer_fein: fein.as_deref().map(Fein::parse).transpose().map_err(sql::corrupt("employer FEIN"))?,
                        arrears_payment_monthly: Money::from_cents(arrears_payment),
                        ledger: OrderLedger::new(order),
                    });
                }
                for (order, bucket, month, cents) in paid {
                    let position = *index.get(&order).ok_or_else(|| StoreError::Corrupt(format!("allocation to unknown order {order}")))?;
                    orders[position].ledger.record(sql::bucket(&bucket)?, sql::month(month)?, Money::from_cents(cents));
                }
                Ok(orders)
            }

            async fn orders_without_end_born_by(
                &self,
                born_by: chrono::NaiveDate,
                after: Option<&$crate::domain::OrderId>,
                limit: u32,
            ) -> $crate::storage::StoreResult<Vec<$crate::storage::ChildOrder>> {
                use $crate::storage::sql_store::{self as sql};
                let rows: Vec<(String, String, String, String, Option<bool>, Option<bool>)> = sqlx::query_as(
                    "SELECT order_id, case_number, obligor_id, child_birth_date, continuing_education, impaired FROM orders \
                     WHERE end_date IS NULL AND child_birth_date IS NOT NULL AND child_birth_date <= $1 AND order_id > $2 \
                     ORDER BY order_id LIMIT $3",
                )
                .bind(born_by.to_string())
                .bind(after.map(|o| o.as_str()).unwrap_or(""))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                rows.into_iter()
                    .map(|(order, case, obligor, birth, continuing_education, impaired)| {
                        Ok($crate::storage::ChildOrder {
                            order_id: sql::order_id(&order)?,
                            case_number: sql::case_number(&case)?,
                            obligor_id: sql::obligor_id(&obligor)?,
                            child_birth_date: sql::date(&birth)?,
                            continuing_education,
                            impaired,
                        })
                    })
                    .collect()
            }
        }
    };
}

/// The order columns compared on re-import: obligor, case, terms, child details and the
/// arrears payment.
pub(super) type StoredOrderRow =
    (String, String, i64, String, i64, Option<String>, Option<String>, Option<String>, Option<bool>, Option<bool>, i64);

/// [`ORDER_COLUMNS`], then the employer, the arrears payment and the obligor's SSN hash.
pub(super) type WithholdingOrderRow =
    (String, String, i64, String, i64, Option<String>, String, Option<String>, i64, String);

pub(super) use impl_sql_store;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_sized_to_carry_about_the_chunk_collections_within_its_bounds() {
        // A whole state's payday: 3.3 collections a registry obligor, 0.9 of them with money:
        // a span planning about 5,000 obligors (18,000 collections).
        assert_eq!(next_chunk_span(5_000, 4_600, 16_600), 5_434);
        // 100 collections an obligor (a few large employers' files): about 30,000 collections.
        assert_eq!(next_chunk_span(500, 500, 50_000), 300);
        // 1,000 an obligor: never fewer than 100 of the registry.
        assert_eq!(next_chunk_span(100, 100, 100_000), 100);
        // A day's online payments across a large registry: the span grows fourfold a chunk,
        // up to its most.
        assert_eq!(next_chunk_span(500, 15, 17), 2_000);
        assert_eq!(next_chunk_span(64_000, 2_100, 2_200), 100_000);
        // A chunk of corrections only (no collections): grown fourfold.
        assert_eq!(next_chunk_span(5_000, 40, 0), 20_000);
    }

    #[test]
    fn a_chunk_too_big_to_load_is_read_again_with_a_quarter_of_its_span_down_to_the_least() {
        assert!(!chunk_too_big(60_000, 10_000));
        assert!(chunk_too_big(60_001, 100));
        assert!(chunk_too_big(20_000, 10_001));
        assert_eq!(smaller_span(100_000), Some(25_000));
        assert_eq!(smaller_span(300), Some(100));
        assert_eq!(smaller_span(100), None);
    }
}
