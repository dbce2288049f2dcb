//! The unapplied-credit SQL both backends run, written once (see `sql_store.rs` for why a macro).

/// Expands the [`CreditStore`](super::credit::CreditStore) implementation for one backend.
macro_rules! impl_sql_credit {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl $crate::storage::credit::CreditStore for $store {
            async fn unapplied_credit(
                &self,
                obligor: Option<&$crate::domain::ObligorId>,
                after: Option<&$crate::domain::ObligorId>,
                limit: u32,
            ) -> $crate::storage::StoreResult<Vec<$crate::storage::credit::CreditBalance>> {
                use $crate::storage::sql_store as sql;
                let rows: Vec<(String, String, String, i64)> = sqlx::query_as(
                    "SELECT a.obligor_id, b.last_name, b.first_name, CAST(SUM(a.amount_cents) AS BIGINT) FROM allocations a \
                     JOIN obligors b ON b.obligor_id = a.obligor_id \
                     WHERE a.bucket = 'UNAPPLIED' AND a.obligor_id > $1 AND ($2 IS NULL OR a.obligor_id = $2) \
                     GROUP BY a.obligor_id, b.last_name, b.first_name HAVING SUM(a.amount_cents) > 0 \
                     ORDER BY a.obligor_id LIMIT $3",
                )
                .bind(after.map(|o| o.as_str()).unwrap_or(""))
                .bind(obligor.map(|o| o.as_str()))
                .bind(i64::from(limit))
                .fetch_all(self.reader())
                .await?;
                rows.into_iter()
                    .map(|(obligor, last_name, first_name, cents)| {
                        Ok($crate::storage::credit::CreditBalance {
                            obligor_id: sql::obligor_id(&obligor)?,
                            last_name,
                            first_name,
                            credit: $crate::domain::Money::from_cents(cents),
                        })
                    })
                    .collect()
            }

            async fn move_credit(
                &self,
                request: &$crate::storage::credit::CreditMove,
                audit: &$crate::storage::AuditEntry,
            ) -> $crate::storage::StoreResult<$crate::storage::credit::CreditOutcome> {
                use $crate::domain::credit::{credit_entries, CreditUse, HeldCredit};
                use $crate::domain::distribution::OrderLedger;
                use $crate::domain::Money;
                use $crate::storage::credit::{CreditAction, CreditOutcome};
                use $crate::storage::sql_store::{self as sql, ORDER_COLUMNS};

                let mut tx = self.begin_writing().await?;
                // Credit actions, returns and runs write the same pools one at a time.
                Self::lock_distribution(&mut tx).await?;
                let known: Option<String> = sqlx::query_scalar("SELECT obligor_id FROM obligors WHERE obligor_id = $1")
                    .bind(request.obligor_id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                if known.is_none() {
                    return Ok(CreditOutcome::UnknownObligor);
                }
                let held: Vec<(i64, i64)> = sqlx::query_as(
                    "SELECT pool_id, CAST(SUM(amount_cents) AS BIGINT) FROM allocations WHERE obligor_id = $1 AND bucket = 'UNAPPLIED' \
                     GROUP BY pool_id HAVING SUM(amount_cents) > 0 ORDER BY pool_id",
                )
                .bind(request.obligor_id.as_str())
                .fetch_all(&mut *tx)
                .await?;
                let held: Vec<HeldCredit> =
                    held.into_iter().map(|(pool_id, cents)| HeldCredit { pool_id, remaining: Money::from_cents(cents) }).collect();
                let ledger = match &request.order_id {
                    None => None,
                    Some(order_id) => {
                        let order: Option<$crate::storage::sql_store::OrderRow> = sqlx::query_as(&format!(
                            "SELECT {ORDER_COLUMNS} FROM orders WHERE order_id = $1 AND obligor_id = $2"
                        ))
                        .bind(order_id.as_str())
                        .bind(request.obligor_id.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                        let Some((id, case, monthly, start, arrears, end, _)) = order else { return Ok(CreditOutcome::UnknownOrder) };
                        let mut ledger = OrderLedger::new(sql::order_from_columns(&id, &case, monthly, &start, arrears, end)?);
                        let paid: Vec<(String, String, i64)> =
                            sqlx::query_as("SELECT bucket, month, paid_cents FROM order_balances WHERE order_id = $1")
                                .bind(order_id.as_str())
                                .fetch_all(&mut *tx)
                                .await?;
                        for (bucket, month, cents) in paid {
                            ledger.record(sql::bucket(&bucket)?, sql::balance_month(&month)?, Money::from_cents(cents));
                        }
                        Some(ledger)
                    }
                };
                let moves = match credit_entries(&held, request.amount, &request.target, ledger.as_ref(), request.this_month) {
                    Ok(moves) => moves,
                    Err(refusal) => return Ok(CreditOutcome::Refused(refusal)),
                };
                let (kind, month) = match request.target {
                    CreditUse::Refund => ("REFUND", None),
                    CreditUse::Current(month) => ("APPLY", Some(month)),
                    CreditUse::Arrears => ("APPLY", None),
                };
                let credit_id: i64 = sqlx::query_scalar(
                    "INSERT INTO credit_actions (obligor_id, kind, amount_cents, reference, order_id, month, recorded_by, recorded_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING credit_id",
                )
                .bind(request.obligor_id.as_str())
                .bind(kind)
                .bind(request.amount.cents())
                .bind(request.reference.as_deref())
                .bind(request.order_id.as_ref().map(|o| o.as_str()))
                .bind(month.map(|m| m.to_string()))
                .bind(&request.recorded_by)
                .bind(&request.recorded_at)
                .fetch_one(&mut *tx)
                .await?;
                let run_id: i64 = sqlx::query_scalar(
                    "INSERT INTO distribution_runs (started_at, collections, pools, total_cents, unapplied_cents, kind) \
                     VALUES ($1, 0, $2, $3, $4, 'CREDIT') RETURNING run_id",
                )
                .bind(&request.recorded_at)
                .bind(moves.len() as i64)
                .bind(request.amount.cents())
                .bind(-request.amount.cents())
                .fetch_one(&mut *tx)
                .await?;
                for (pool_id, entries) in &moves {
                    let effective_date: String = sqlx::query_scalar("SELECT effective_date FROM pools WHERE pool_id = $1")
                        .bind(*pool_id)
                        .fetch_one(&mut *tx)
                        .await?;
                    for entry in entries {
                        sqlx::query(
                            "INSERT INTO allocations (run_id, pool_id, obligor_id, order_id, bucket, month, effective_date, amount_cents, credit_id) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                        )
                        .bind(run_id)
                        .bind(*pool_id)
                        .bind(request.obligor_id.as_str())
                        .bind(entry.order_id.as_ref().map(|o| o.as_str()))
                        .bind(entry.bucket.as_str())
                        .bind(entry.month.map(|m| m.to_string()))
                        .bind(&effective_date)
                        .bind(entry.amount.cents())
                        .bind(credit_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                let left: i64 = sqlx::query_scalar(
                    "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM allocations WHERE obligor_id = $1 AND bucket = 'UNAPPLIED'",
                )
                .bind(request.obligor_id.as_str())
                .fetch_one(&mut *tx)
                .await?;
                if left < 0 {
                    return Err($crate::storage::StoreError::Corrupt(format!("obligor {} would have {left} cents of credit", request.obligor_id)));
                }
                $crate::storage::sql_access::insert_audit!(&mut *tx, audit)?;
                tx.commit().await?;
                Ok(CreditOutcome::Done(CreditAction {
                    credit_id,
                    obligor_id: request.obligor_id.clone(),
                    kind: kind.to_owned(),
                    amount: request.amount,
                    reference: request.reference.clone(),
                    order_id: request.order_id.clone(),
                    month,
                    recorded_by: request.recorded_by.clone(),
                    recorded_at: request.recorded_at.clone(),
                    credit_left: Money::from_cents(left),
                }))
            }
        }
    };
}

pub(super) use impl_sql_credit;
