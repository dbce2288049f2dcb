//! The explanation SQL both backends run, written once (see `sql_store.rs` for why a macro).

use chrono::NaiveDate;

use super::sql_store::{bucket, date, month, optional_date, order_id};
use super::StoreError;
use crate::domain::explain::{EndFact, Entry, EntryKind};
use crate::domain::lifecycle::EndReason;
use crate::domain::{Money, RuleStep};

/// An entry's columns: the row, its run's kind and day, and its pool's run.
pub(super) const ENTRY_SELECT: &str = "SELECT a.allocation_id, a.run_id, a.pool_id, r.kind, r.started_at, p.run_id, a.effective_date, \
     a.order_id, a.bucket, a.month, a.amount_cents, a.step, a.reversal_of, a.end_id, a.credit_id \
     FROM allocations a JOIN distribution_runs r ON r.run_id = a.run_id JOIN pools p ON p.pool_id = a.pool_id";

pub(super) type EntryRow = (
    i64,
    i64,
    i64,
    String,
    String,
    i64,
    String,
    Option<String>,
    String,
    Option<String>,
    i64,
    Option<String>,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// The day of an RFC 3339 instant.
pub(super) fn day_of(instant: &str) -> Result<NaiveDate, StoreError> {
    date(instant.get(..10).unwrap_or(instant))
}

pub(super) fn entry(row: EntryRow) -> Result<Entry, StoreError> {
    let (allocation_id, run_id, pool_id, run_kind, started_at, pool_run, effective_date, order, bucket_text, month_text, cents, step, reversal_of, end_id, credit_id) =
        row;
    let kind = match run_kind.as_str() {
        "DISTRIBUTION" if run_id == pool_run => EntryKind::Distribution,
        "DISTRIBUTION" => EntryKind::CorrectionApplied,
        "REVERSAL" => EntryKind::Reversal,
        "CORRECTION" => EntryKind::Correction,
        "CREDIT" => EntryKind::Credit,
        other => return Err(StoreError::Corrupt(format!("run kind `{other}`"))),
    };
    Ok(Entry {
        allocation_id,
        run_id,
        pool_id,
        kind,
        written_on: day_of(&started_at)?,
        effective_date: date(&effective_date)?,
        order_id: order.as_deref().map(order_id).transpose()?,
        bucket: bucket(&bucket_text)?,
        month: month(month_text)?,
        amount: Money::from_cents(cents),
        step: step.map(|s| RuleStep::parse(&s).ok_or_else(|| StoreError::Corrupt(format!("rule step `{s}`")))).transpose()?,
        reversal_of,
        end_id,
        credit_id,
    })
}

pub(super) type EndFactRow = (i64, String, String, String, String, Option<String>, Option<String>);

pub(super) fn end_fact(row: EndFactRow) -> Result<EndFact, StoreError> {
    let (end_id, reason, end_date, recorded_by, recorded_at, withdrawn_by, withdrawn_at) = row;
    let withdrawn = match (withdrawn_by, optional_date(withdrawn_at.map(|at| at.chars().take(10).collect()))?) {
        (Some(by), Some(on)) => Some((by, on)),
        _ => None,
    };
    Ok(EndFact {
        end_id,
        reason: EndReason::parse(&reason).ok_or_else(|| StoreError::Corrupt(format!("end reason `{reason}`")))?,
        end_date: date(&end_date)?,
        recorded_by,
        recorded_on: day_of(&recorded_at)?,
        withdrawn,
    })
}

/// Expands the [`ExplainStore`](super::explain::ExplainStore) implementation for one backend.
macro_rules! impl_sql_explain {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::explain::ExplainStore for $store {
            async fn collection_facts(
                &self,
                collection_id: i64,
            ) -> $crate::storage::StoreResult<Option<$crate::storage::explain::CollectionFacts>> {
                use $crate::domain::{CollectionSource, Money};
                use $crate::storage::explain::{CollectionFacts, PoolFacts};
                use $crate::storage::sql_explain::{entry, EntryRow, ENTRY_SELECT};
                use $crate::storage::sql_store::{self as sql, COLLECTION_STATUS, COLLECTION_WITH_CLAIM, ORDER_COLUMNS};
                use $crate::storage::{CollectionRecord, StoreError};

                type CollectionRow = (i64, String, Option<String>, String, i64, String, String, Option<i64>, String);
                let collection_columns = format!(
                    "c.collection_id, c.obligor_id, c.case_number, c.source, c.amount_cents, c.effective_date, {COLLECTION_STATUS}, \
                     k.pool_id, c.received_at"
                );
                fn record(row: CollectionRow) -> Result<(CollectionRecord, Option<i64>, String), StoreError> {
                    let (id, obligor, case, source, cents, effective_date, status, pool_id, received_at) = row;
                    let collection = CollectionRecord {
                        collection_id: id,
                        obligor_id: sql::obligor_id(&obligor)?,
                        case_number: case.as_deref().map(sql::case_number).transpose()?,
                        source: CollectionSource::parse(&source).ok_or_else(|| StoreError::Corrupt(format!("source `{source}`")))?,
                        amount: Money::from_cents(cents),
                        effective_date: sql::date(&effective_date)?,
                        status,
                    };
                    Ok((collection, pool_id, received_at))
                }

                // One snapshot for every statement, so the figures agree with each other.
                let mut tx = self.begin_snapshot().await?;
                let row: Option<CollectionRow> = sqlx::query_as(&format!("SELECT {collection_columns} FROM {COLLECTION_WITH_CLAIM} WHERE c.collection_id = $1"))
                    .bind(collection_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                let Some(row) = row else { return Ok(None) };
                let (collection, pool_id, received_at) = record(row)?;
                let reversed: i64 = sqlx::query_scalar(
                    "SELECT CAST(COALESCE(-SUM(amount_cents), 0) AS BIGINT) FROM allocations WHERE reversal_of = $1",
                )
                .bind(collection_id)
                .fetch_one(&mut *tx)
                .await?;
                let pool = match pool_id {
                    None => None,
                    Some(pool_id) => {
                        let (run_id, effective_date, cents): (i64, String, i64) =
                            sqlx::query_as("SELECT run_id, effective_date, amount_cents FROM pools WHERE pool_id = $1")
                                .bind(pool_id)
                                .fetch_one(&mut *tx)
                                .await?;
                        let members: Vec<CollectionRow> = sqlx::query_as(&format!(
                            "SELECT {collection_columns} FROM collection_claims k JOIN collections c ON c.collection_id = k.collection_id \
                             WHERE k.pool_id = $1 ORDER BY c.collection_id"
                        ))
                        .bind(pool_id)
                        .fetch_all(&mut *tx)
                        .await?;
                        let collections = members.into_iter().map(|row| record(row).map(|r| r.0)).collect::<Result<Vec<_>, _>>()?;
                        let rows: Vec<EntryRow> = sqlx::query_as(&format!("{ENTRY_SELECT} WHERE a.pool_id = $1 ORDER BY a.allocation_id"))
                            .bind(pool_id)
                            .fetch_all(&mut *tx)
                            .await?;
                        let entries = rows.into_iter().map(entry).collect::<Result<Vec<_>, _>>()?;
                        let mut order_ids: Vec<String> = entries.iter().filter_map(|e| e.order_id.as_ref().map(|o| o.to_string())).collect();
                        order_ids.sort();
                        order_ids.dedup();
                        let mut orders = Vec::with_capacity(order_ids.len());
                        for order_id in order_ids {
                            let (id, case, monthly, start, arrears, end, _obligor): $crate::storage::sql_store::OrderRow =
                                sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1"))
                                    .bind(&order_id)
                                    .fetch_one(&mut *tx)
                                    .await?;
                            let order = sql::order_from_columns(&id, &case, monthly, &start, arrears, end)?;
                            let paid: Vec<(i64, String, Option<String>, i64)> = sqlx::query_as(
                                "SELECT allocation_id, bucket, month, amount_cents FROM allocations WHERE order_id = $1 ORDER BY allocation_id",
                            )
                            .bind(&order_id)
                            .fetch_all(&mut *tx)
                            .await?;
                            let mut rows = Vec::with_capacity(paid.len());
                            for (allocation_id, bucket, month, cents) in paid {
                                rows.push((allocation_id, sql::bucket(&bucket)?, sql::month(month)?, Money::from_cents(cents)));
                            }
                            orders.push((order, rows));
                        }
                        Some(PoolFacts {
                            pool_id,
                            run_id,
                            effective_date: sql::date(&effective_date)?,
                            amount: Money::from_cents(cents),
                            collections,
                            entries,
                            orders,
                        })
                    }
                };
                tx.commit().await?;
                Ok(Some(CollectionFacts { collection, received_at, pool, reversed: Money::from_cents(reversed) }))
            }

            async fn order_facts(
                &self,
                order_id: &$crate::domain::OrderId,
            ) -> $crate::storage::StoreResult<Option<$crate::storage::explain::OrderFacts>> {
                use $crate::storage::explain::OrderFacts;
                use $crate::storage::sql_explain::{end_fact, entry, EndFactRow, EntryRow, ENTRY_SELECT};
                use $crate::storage::sql_store::{self as sql, ORDER_COLUMNS};

                let mut tx = self.begin_snapshot().await?;
                let row: Option<$crate::storage::sql_store::OrderRow> =
                    sqlx::query_as(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1"))
                        .bind(order_id.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((id, case, monthly, start, arrears, end, obligor)) = row else { return Ok(None) };
                let order = sql::order_from_columns(&id, &case, monthly, &start, arrears, end)?;
                let rows: Vec<EntryRow> = sqlx::query_as(&format!("{ENTRY_SELECT} WHERE a.order_id = $1 ORDER BY a.allocation_id"))
                    .bind(order_id.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
                let entries = rows.into_iter().map(entry).collect::<Result<Vec<_>, _>>()?;
                let ends: Vec<EndFactRow> = sqlx::query_as(
                    "SELECT end_id, reason, end_date, recorded_by, recorded_at, withdrawn_by, withdrawn_at FROM order_ends \
                     WHERE order_id = $1 ORDER BY end_id",
                )
                .bind(order_id.as_str())
                .fetch_all(&mut *tx)
                .await?;
                let ends = ends.into_iter().map(end_fact).collect::<Result<Vec<_>, _>>()?;
                tx.commit().await?;
                Ok(Some(OrderFacts { obligor_id: sql::obligor_id(&obligor)?, order, entries, ends }))
            }
        }
    };
}

pub(super) use impl_sql_explain;
