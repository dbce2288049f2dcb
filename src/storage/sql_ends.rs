//! The order-end SQL both backends run, written once (see `sql_store.rs` for why a macro).

use super::ends::EndRecord;
use super::sql_store::{corrupt, date, order_id};
use super::StoreError;
use crate::domain::lifecycle::EndReason;
use crate::domain::Money;

/// An end's columns, with what its correction freed (from the rows that name it).
pub(super) const END_SELECT: &str = "SELECT e.end_id, e.order_id, e.reason, e.end_date, e.recorded_by, e.recorded_at, \
     e.withdrawn_by, e.withdrawn_at, \
     CAST(COALESCE((SELECT SUM(a.amount_cents) FROM allocations a WHERE a.end_id = e.end_id AND a.bucket = 'CORRECTION'), 0) AS BIGINT), \
     (SELECT COUNT(*) FROM allocations a WHERE a.end_id = e.end_id AND a.bucket = 'CORRECTION') \
     FROM order_ends e";

pub(super) type EndRow = (i64, String, String, String, String, String, Option<String>, Option<String>, i64, i64);

pub(super) fn end(row: EndRow) -> Result<EndRecord, StoreError> {
    let (end_id, order, reason, end_date, recorded_by, recorded_at, withdrawn_by, withdrawn_at, corrected, pools) = row;
    Ok(EndRecord {
        end_id,
        order_id: order_id(&order)?,
        reason: EndReason::parse(&reason).ok_or_else(|| StoreError::Corrupt(format!("end reason `{reason}`")))?,
        end_date: date(&end_date)?,
        recorded_by,
        recorded_at,
        withdrawn_by,
        withdrawn_at,
        corrected: Money::from_cents(corrected),
        corrected_pools: u64::try_from(pools).map_err(corrupt("corrected pools"))?,
    })
}

/// Writes, in the transaction `$tx`, the corrections an end dated `$end_date` (id `$end_id`)
/// makes to order `$order` of obligor `$obligor`: every pool's current support for months
/// after the end month moved into that pool's CORRECTION row, in one CORRECTION run. The
/// caller holds the distribution lock.
macro_rules! write_end_corrections {
    ($tx:expr, $order:expr, $obligor:expr, $end_date:expr, $end_id:expr, $at:expr) => {{
        use $crate::domain::lifecycle::{end_corrections, HeldCurrent};
        use $crate::storage::sql_store as sql;
        let order: &$crate::domain::OrderId = $order;
        let end_date: chrono::NaiveDate = $end_date;
        let held: Vec<(i64, String, i64)> = sqlx::query_as(
            "SELECT pool_id, month, CAST(SUM(amount_cents) AS BIGINT) FROM allocations \
             WHERE order_id = $1 AND bucket = 'CURRENT' AND month > $2 GROUP BY pool_id, month",
        )
        .bind(order.as_str())
        .bind($crate::domain::YearMonth::of(end_date).to_string())
        .fetch_all(&mut *$tx)
        .await?;
        let mut rows = Vec::with_capacity(held.len());
        for (pool_id, month, cents) in held {
            let month = sql::month(Some(month))?.expect("a month was selected");
            rows.push(HeldCurrent { pool_id, month, remaining: $crate::domain::Money::from_cents(cents) });
        }
        let corrections = end_corrections(order, end_date, &rows);
        if !corrections.is_empty() {
            let freed: $crate::domain::Money = corrections.iter().map(|c| c.freed).sum();
            let run_id: i64 = sqlx::query_scalar(
                "INSERT INTO distribution_runs (started_at, collections, pools, total_cents, unapplied_cents, kind) \
                 VALUES ($1, 0, $2, $3, 0, 'CORRECTION') RETURNING run_id",
            )
            .bind($at)
            .bind(corrections.len() as i64)
            .bind(freed.cents())
            .fetch_one(&mut *$tx)
            .await?;
            for correction in &corrections {
                let effective_date: String = sqlx::query_scalar("SELECT effective_date FROM pools WHERE pool_id = $1")
                    .bind(correction.pool_id)
                    .fetch_one(&mut *$tx)
                    .await?;
                for entry in &correction.entries {
                    sqlx::query(
                        "INSERT INTO allocations (run_id, pool_id, obligor_id, order_id, bucket, month, effective_date, amount_cents, end_id) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(run_id)
                    .bind(correction.pool_id)
                    .bind($obligor)
                    .bind(entry.order_id.as_ref().map(|o| o.as_str()))
                    .bind(entry.bucket.as_str())
                    .bind(entry.month.map(|m| m.to_string()))
                    .bind(&effective_date)
                    .bind(entry.amount.cents())
                    .bind($end_id)
                    .execute(&mut *$tx)
                    .await?;
                }
            }
        }
        corrections
    }};
}

/// Expands the [`EndStore`](super::ends::EndStore) implementation for one backend.
macro_rules! impl_sql_ends {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::ends::EndStore for $store {
            async fn record_end(
                &self,
                new: &$crate::storage::ends::NewEnd,
                audit: &$crate::storage::AuditEntry,
            ) -> $crate::storage::StoreResult<$crate::storage::ends::EndOutcome> {
                use $crate::domain::lifecycle::{effective_end, may_end};
                use $crate::storage::ends::EndOutcome;
                use $crate::storage::sql_ends::{end, EndRow, END_SELECT};
                use $crate::storage::sql_store::{self as sql, ORDER_COLUMNS};

                let mut tx = self.begin_writing().await?;
                // Corrections and distribution runs must not interleave on the same pools.
                Self::lock_distribution(&mut tx).await?;
                let order: Option<(String, String, i64, String, i64, Option<String>, String, Option<String>)> = sqlx::query_as(&format!(
                    "SELECT {ORDER_COLUMNS}, registry_end_date FROM orders WHERE order_id = $1{}",
                    <$store>::FOR_UPDATE
                ))
                .bind(new.order_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some((id, case, monthly, start, arrears, end_date, obligor, registry_end)) = order else {
                    return Ok(EndOutcome::UnknownOrder);
                };
                let order = sql::order_from_columns(&id, &case, monthly, &start, arrears, end_date)?;
                let registry_end = sql::optional_date(registry_end)?;
                let active: Option<String> = sqlx::query_scalar(
                    "SELECT end_date FROM order_ends WHERE order_id = $1 AND withdrawn_at IS NULL AND reason <> 'REGISTRY_IMPORT'",
                )
                .bind(new.order_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if let Err(refusal) = may_end(&order, registry_end, sql::optional_date(active)?, new.end_date) {
                    return Ok(EndOutcome::Refused(refusal));
                }
                let end_id: i64 = sqlx::query_scalar(
                    "INSERT INTO order_ends (order_id, reason, end_date, recorded_by, recorded_at) VALUES ($1, $2, $3, $4, $5) RETURNING end_id",
                )
                .bind(new.order_id.as_str())
                .bind(new.reason.as_str())
                .bind(new.end_date.to_string())
                .bind(&new.recorded_by)
                .bind(&new.recorded_at)
                .fetch_one(&mut *tx)
                .await?;
                let effective = effective_end(registry_end, Some(new.end_date)).expect("an end is recorded");
                sqlx::query("UPDATE orders SET end_date = $1 WHERE order_id = $2")
                    .bind(effective.to_string())
                    .bind(new.order_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                $crate::storage::sql_ends::write_end_corrections!(tx, &order.id, &obligor, effective, end_id, &new.recorded_at);
                let row: EndRow = sqlx::query_as(&format!("{END_SELECT} WHERE e.end_id = $1")).bind(end_id).fetch_one(&mut *tx).await?;
                $crate::storage::sql_access::insert_audit!(&mut *tx, audit)?;
                tx.commit().await?;
                Ok(EndOutcome::Recorded(end(row)?))
            }

            async fn withdraw_end(
                &self,
                order_id: &$crate::domain::OrderId,
                by: &str,
                at: &str,
                audit: &$crate::storage::AuditEntry,
            ) -> $crate::storage::StoreResult<$crate::storage::ends::WithdrawOutcome> {
                use $crate::storage::ends::WithdrawOutcome;
                use $crate::storage::sql_ends::{end, EndRow, END_SELECT};

                let mut tx = self.begin_writing().await?;
                // Like every writer of ends: a registry import computing the order's end from
                // the ends in force must not interleave with a withdrawal.
                Self::lock_distribution(&mut tx).await?;
                let registry_end: Option<Option<String>> =
                    sqlx::query_scalar(&format!("SELECT registry_end_date FROM orders WHERE order_id = $1{}", <$store>::FOR_UPDATE))
                        .bind(order_id.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(registry_end) = registry_end else { return Ok(WithdrawOutcome::UnknownOrder) };
                let end_id: Option<i64> = sqlx::query_scalar(
                    "UPDATE order_ends SET withdrawn_by = $1, withdrawn_at = $2 \
                     WHERE order_id = $3 AND withdrawn_at IS NULL AND reason <> 'REGISTRY_IMPORT' RETURNING end_id",
                )
                .bind(by)
                .bind(at)
                .bind(order_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(end_id) = end_id else { return Ok(WithdrawOutcome::NothingToWithdraw) };
                sqlx::query("UPDATE orders SET end_date = $1 WHERE order_id = $2")
                    .bind(registry_end)
                    .bind(order_id.as_str())
                    .execute(&mut *tx)
                    .await?;
                let row: EndRow = sqlx::query_as(&format!("{END_SELECT} WHERE e.end_id = $1")).bind(end_id).fetch_one(&mut *tx).await?;
                $crate::storage::sql_access::insert_audit!(&mut *tx, audit)?;
                tx.commit().await?;
                Ok(WithdrawOutcome::Withdrawn(end(row)?))
            }

            async fn ends_of_order(
                &self,
                order_id: &$crate::domain::OrderId,
            ) -> $crate::storage::StoreResult<Vec<$crate::storage::ends::EndRecord>> {
                use $crate::storage::sql_ends::{end, EndRow, END_SELECT};
                let rows: Vec<EndRow> = sqlx::query_as(&format!("{END_SELECT} WHERE e.order_id = $1 ORDER BY e.end_id"))
                    .bind(order_id.as_str())
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter().map(end).collect()
            }
        }
    };
}

pub(super) use impl_sql_ends;
pub(super) use write_end_corrections;
