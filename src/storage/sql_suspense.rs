//! The suspense-queue SQL both backends run, written once (see `sql_store.rs` for why a macro).
//!
//! An item is worked once: the change is an `UPDATE … WHERE state = 'OPEN'`, so of two clerks
//! at once the second finds no OPEN row (PostgreSQL re-checks the condition after the first
//! commits; SQLite has one writer) and changes nothing.

use super::suspense::SuspenseItem;
use super::sql_store::{corrupt, date, obligor_id};
use super::StoreError;

/// The columns of [`SuspenseItem`], in this order, from `suspense_items s JOIN remittances r`.
pub(super) const ITEM_COLUMNS: &str = "s.suspense_id, r.sender, r.batch_id, s.line, s.employer_fein, s.case_number, s.ssn_last4, \
     s.amount_cents, s.pay_date, s.reason, s.state, s.created_at, s.resolved_obligor_id, s.collection_id, s.return_reason, \
     s.return_reference, s.worked_by, s.worked_at";

pub(super) const ITEM_FROM: &str = "suspense_items s JOIN remittances r ON r.remittance_id = s.remittance_id";

/// A row selected with [`ITEM_COLUMNS`].
#[derive(sqlx::FromRow)]
pub(super) struct ItemRow {
    suspense_id: i64,
    sender: String,
    batch_id: String,
    line: i64,
    employer_fein: Option<String>,
    case_number: Option<String>,
    ssn_last4: Option<String>,
    amount_cents: i64,
    pay_date: String,
    reason: String,
    state: String,
    created_at: String,
    resolved_obligor_id: Option<String>,
    collection_id: Option<i64>,
    return_reason: Option<String>,
    return_reference: Option<String>,
    worked_by: Option<String>,
    worked_at: Option<String>,
}

pub(super) fn item(row: ItemRow) -> Result<SuspenseItem, StoreError> {
    Ok(SuspenseItem {
        suspense_id: row.suspense_id,
        sender: row.sender,
        batch_id: row.batch_id,
        line: u64::try_from(row.line).map_err(corrupt("line"))?,
        employer_fein: row.employer_fein,
        case_number: row.case_number,
        ssn_last4: row.ssn_last4,
        amount: crate::domain::Money::from_cents(row.amount_cents),
        pay_date: date(&row.pay_date)?,
        reason: row.reason,
        state: row.state,
        created_at: row.created_at,
        resolved_obligor_id: row.resolved_obligor_id.as_deref().map(obligor_id).transpose()?,
        collection_id: row.collection_id,
        return_reason: row.return_reason,
        return_reference: row.return_reference,
        worked_by: row.worked_by,
        worked_at: row.worked_at,
    })
}

/// Expands the [`SuspenseStore`](super::suspense::SuspenseStore) implementation for one backend.
macro_rules! impl_sql_suspense {
    ($store:ty, $db:ty) => {
        /// The item, read inside `tx`.
        async fn suspense_item_in(
            tx: &mut sqlx::Transaction<'_, $db>,
            suspense_id: i64,
        ) -> $crate::storage::StoreResult<Option<$crate::storage::suspense::SuspenseItem>> {
            use $crate::storage::sql_suspense::{item, ItemRow, ITEM_COLUMNS, ITEM_FROM};
            let row: Option<ItemRow> = sqlx::query_as(&format!("SELECT {ITEM_COLUMNS} FROM {ITEM_FROM} WHERE s.suspense_id = $1"))
                .bind(suspense_id)
                .fetch_optional(&mut **tx)
                .await?;
            row.map(item).transpose()
        }

        /// Marks an OPEN item worked; false when it was not OPEN any more.
        async fn mark_worked(
            tx: &mut sqlx::Transaction<'_, $db>,
            suspense_id: i64,
            state: &str,
            set: &str,
            values: [Option<&str>; 2],
            worker: &$crate::storage::suspense::Worker,
        ) -> $crate::storage::StoreResult<bool> {
            let sql = format!(
                "UPDATE suspense_items SET state = $1, worked_by = $2, worked_at = $3, {set} \
                 WHERE suspense_id = $6 AND state = 'OPEN'"
            );
            let done = sqlx::query(&sql)
                .bind(state)
                .bind(&worker.name)
                .bind(&worker.at)
                .bind(values[0])
                .bind(values[1])
                .bind(suspense_id)
                .execute(&mut **tx)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        #[async_trait::async_trait]
        impl $crate::storage::suspense::SuspenseStore for $store {
            async fn suspense_item(&self, suspense_id: i64) -> $crate::storage::StoreResult<Option<$crate::storage::suspense::SuspenseItem>> {
                let mut tx = self.reader().begin().await?;
                let found = suspense_item_in(&mut tx, suspense_id).await?;
                tx.commit().await?;
                Ok(found)
            }

            async fn suspense_items(
                &self,
                filter: &$crate::storage::suspense::SuspenseFilter,
                after: Option<$crate::storage::suspense::SuspenseCursor>,
                limit: u32,
            ) -> $crate::storage::StoreResult<Vec<$crate::storage::suspense::SuspenseItem>> {
                use $crate::storage::sql_suspense::{item, ItemRow, ITEM_COLUMNS, ITEM_FROM};
                use $crate::storage::suspense::SuspenseOrder;
                // Keyset paging in each order: the page after `after` starts past its last item
                // (an amount order compares the amount, then the id).
                let by_amount = matches!(filter.order, SuspenseOrder::LargestFirst | SuspenseOrder::SmallestFirst);
                let (cursor, order_by) = match filter.order {
                    SuspenseOrder::OldestFirst => ("s.suspense_id > $2", "s.suspense_id"),
                    SuspenseOrder::NewestFirst => ("s.suspense_id < $2", "s.suspense_id DESC"),
                    SuspenseOrder::LargestFirst => {
                        ("(s.amount_cents < $2 OR (s.amount_cents = $2 AND s.suspense_id > $3))", "s.amount_cents DESC, s.suspense_id")
                    }
                    SuspenseOrder::SmallestFirst => {
                        ("(s.amount_cents > $2 OR (s.amount_cents = $2 AND s.suspense_id > $3))", "s.amount_cents, s.suspense_id")
                    }
                };
                // Every filter is a bound parameter; an absent one is NULL and holds for all.
                let first = if by_amount { 4 } else { 3 };
                let p = |offset: usize| format!("${}", first + offset);
                let sql = format!(
                    "SELECT {ITEM_COLUMNS} FROM {ITEM_FROM} WHERE s.state = $1 AND {cursor} \
                     AND ({a} IS NULL OR r.sender = {a}) AND ({b} IS NULL OR s.employer_fein = {b}) \
                     AND ({c} IS NULL OR r.batch_id = {c}) AND ({d} IS NULL OR s.reason = {d}) \
                     AND ({e} IS NULL OR s.amount_cents >= {e}) AND ({f} IS NULL OR s.amount_cents <= {f}) \
                     AND ({g} IS NULL OR r.received_on < {g}) \
                     ORDER BY {order_by} LIMIT {h}",
                    a = p(0),
                    b = p(1),
                    c = p(2),
                    d = p(3),
                    e = p(4),
                    f = p(5),
                    g = p(6),
                    h = p(7),
                );
                let mut query = sqlx::query_as::<_, ItemRow>(&sql).bind(&filter.state);
                query = match (filter.order, after) {
                    (SuspenseOrder::OldestFirst, after) => query.bind(after.map_or(0, |a| a.suspense_id)),
                    (SuspenseOrder::NewestFirst, after) => query.bind(after.map_or(i64::MAX, |a| a.suspense_id)),
                    (SuspenseOrder::LargestFirst, after) => {
                        query.bind(after.map_or(i64::MAX, |a| a.amount_cents)).bind(after.map_or(0, |a| a.suspense_id))
                    }
                    (SuspenseOrder::SmallestFirst, after) => {
                        query.bind(after.map_or(i64::MIN, |a| a.amount_cents)).bind(after.map_or(0, |a| a.suspense_id))
                    }
                };
                let rows: Vec<ItemRow> = query
                    .bind(filter.sender.as_deref())
                    .bind(filter.employer_fein.as_deref())
                    .bind(filter.batch_id.as_deref())
                    .bind(filter.reason.as_deref())
                    .bind(filter.min_amount.map(|m| m.cents()))
                    .bind(filter.max_amount.map(|m| m.cents()))
                    .bind(filter.received_before.map(|d| d.to_string()))
                    .bind(i64::from(limit))
                    .fetch_all(self.reader())
                    .await?;
                rows.into_iter().map(item).collect()
            }

            async fn resolve_suspense(
                &self,
                suspense_id: i64,
                obligor: &$crate::domain::ObligorId,
                case_number: Option<&$crate::domain::CaseNumber>,
                worker: &$crate::storage::suspense::Worker,
                audit: &$crate::storage::AuditEntry,
            ) -> $crate::storage::StoreResult<
                $crate::storage::suspense::Worked<($crate::storage::suspense::SuspenseItem, $crate::storage::CollectionRecord)>,
            > {
                use $crate::storage::suspense::Worked;
                let mut tx = self.begin_writing().await?;
                let Some(item) = suspense_item_in(&mut tx, suspense_id).await? else { return Ok(Worked::Missing) };
                if item.state != "OPEN" {
                    return Ok(Worked::NotOpen(Box::new(item)));
                }
                let known: Option<String> = sqlx::query_scalar("SELECT obligor_id FROM obligors WHERE obligor_id = $1")
                    .bind(obligor.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                if known.is_none() {
                    return Ok(Worked::UnknownObligor);
                }
                let values = [Some(obligor.as_str()), None];
                if !mark_worked(&mut tx, suspense_id, "RESOLVED", "resolved_obligor_id = $4, return_reason = $5", values, worker).await? {
                    let now = suspense_item_in(&mut tx, suspense_id).await?;
                    return Ok(now.map_or(Worked::Missing, |item| Worked::NotOpen(Box::new(item))));
                }
                let (remittance_id, line): (i64, i64) =
                    sqlx::query_as("SELECT remittance_id, line FROM suspense_items WHERE suspense_id = $1")
                        .bind(suspense_id)
                        .fetch_one(&mut *tx)
                        .await?;
                let collection_id: i64 = sqlx::query_scalar(
                    "INSERT INTO collections (obligor_id, case_number, source, amount_cents, effective_date, received_at, \
                     remittance_id, remittance_line) VALUES ($1, $2, 'PAYROLL', $3, $4, $5, $6, $7) RETURNING collection_id",
                )
                .bind(obligor.as_str())
                .bind(case_number.map(|c| c.as_str()))
                .bind(item.amount.cents())
                .bind(item.pay_date.to_string())
                .bind(&worker.at)
                .bind(remittance_id)
                .bind(line)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query("UPDATE suspense_items SET collection_id = $1 WHERE suspense_id = $2")
                    .bind(collection_id)
                    .bind(suspense_id)
                    .execute(&mut *tx)
                    .await?;
                let worked = suspense_item_in(&mut tx, suspense_id).await?.ok_or_else(|| {
                    $crate::storage::StoreError::Corrupt(format!("suspense item {suspense_id} vanished"))
                })?;
                $crate::storage::sql_access::insert_audit!(&mut *tx, audit)?;
                tx.commit().await?;
                let collection = $crate::storage::CollectionRecord {
                    collection_id,
                    obligor_id: obligor.clone(),
                    case_number: case_number.cloned(),
                    source: $crate::domain::CollectionSource::Payroll,
                    amount: item.amount,
                    effective_date: item.pay_date,
                    status: "PENDING".to_owned(),
                };
                Ok(Worked::Done((worked, collection)))
            }

            async fn return_suspense(
                &self,
                suspense_id: i64,
                reason: &str,
                reference: &str,
                worker: &$crate::storage::suspense::Worker,
                audit: &$crate::storage::AuditEntry,
            ) -> $crate::storage::StoreResult<$crate::storage::suspense::Worked<$crate::storage::suspense::SuspenseItem>> {
                use $crate::storage::suspense::Worked;
                let mut tx = self.begin_writing().await?;
                let Some(item) = suspense_item_in(&mut tx, suspense_id).await? else { return Ok(Worked::Missing) };
                if item.state != "OPEN" {
                    return Ok(Worked::NotOpen(Box::new(item)));
                }
                let values = [Some(reason), Some(reference)];
                if !mark_worked(&mut tx, suspense_id, "RETURNED", "return_reason = $4, return_reference = $5", values, worker).await? {
                    let now = suspense_item_in(&mut tx, suspense_id).await?;
                    return Ok(now.map_or(Worked::Missing, |item| Worked::NotOpen(Box::new(item))));
                }
                let worked = suspense_item_in(&mut tx, suspense_id).await?.ok_or_else(|| {
                    $crate::storage::StoreError::Corrupt(format!("suspense item {suspense_id} vanished"))
                })?;
                $crate::storage::sql_access::insert_audit!(&mut *tx, audit)?;
                tx.commit().await?;
                Ok(Worked::Done(worked))
            }
        }
    };
}

pub(super) use impl_sql_suspense;
