//! The payment SQL both backends run, written once (see `sql_store.rs` for why a macro).

/// The agency's (fictional) ODFI routing prefix of the ACH debits' trace numbers.
pub(super) const TRACE_PREFIX: &str = "09100001";

/// The trace numbers' 7-digit sequence comes round after this many numbers.
pub(super) const TRACE_CYCLE: i64 = 10_000_000;

/// The trace number made from `sequence`, a value of the payments' own trace sequence
/// (SQLite migration 0019, PostgreSQL 0018): the prefix and the sequence's last 7 digits.
/// PostgreSQL makes the same text in SQL (`postgres_payments.rs`), in the statement that
/// draws the value.
pub(super) fn trace_number(sequence: i64) -> String {
    format!("{TRACE_PREFIX}{:07}", sequence.rem_euclid(TRACE_CYCLE))
}

pub(super) const PAYMENT_COLUMNS: &str = "payment_id, payer_id, case_number, obligor_id, amount_cents, channel, accepted_on, \
     request_sha256, collection_id, trace_number, return_code";

pub(super) type PaymentRow = (i64, i64, String, String, i64, String, String, String, i64, String, Option<String>);

/// One payment by its payer's idempotency key. Made once: every payment reads it, and the
/// text is the key of each connection's prepared statement.
pub(super) static PAYMENT_BY_KEY_QUERY: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE payer_id = $1 AND idempotency_key = $2"));

/// A payer with their active bank account, if any.
pub(super) const PAYER_QUERY: &str = "SELECT p.payer_id, p.name, p.address, p.ssn_last4, p.telephone, p.email, p.case_number, \
     a.account_id, a.routing_number, a.account_last4, a.account_type, a.added_on, a.prenote_result, a.prenote_return_code, \
     a.unusable_code \
     FROM payers p LEFT JOIN bank_accounts a ON a.payer_id = p.payer_id AND a.active WHERE p.payer_id = $1";

/// The rows of a [`PaymentContext`](super::payment::PaymentContext): the key's payment, the
/// payer's row, the case's owner and the owner's orders.
pub(super) type PaymentContextRows = (Option<PaymentRow>, Option<PayerRow>, Option<String>, Vec<ObligorOrderRow>);

/// A row of [`PAYER_QUERY`].
pub(super) type PayerRow = (
    i64,
    String,
    String,
    String,
    String,
    String,
    String,
    Option<i64>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

pub(super) fn payer(row: PayerRow) -> Result<super::payment::PayerRecord, super::StoreError> {
    use super::payment::{BankAccountRecord, PayerRecord};
    let (payer_id, name, address, ssn_last4, telephone, email, case_number, account_id, routing, last4, kind, added, prenote, prenote_code, unusable) =
        row;
    let account = match (account_id, routing, last4, kind, added) {
        (Some(account_id), Some(routing_number), Some(account_last4), Some(account_type), Some(added_on)) => Some(BankAccountRecord {
            account_id,
            routing_number,
            account_last4,
            account_type,
            added_on: super::sql_store::date(&added_on)?,
            prenote_result: prenote,
            prenote_return_code: prenote_code,
            unusable_code: unusable,
        }),
        _ => None,
    };
    Ok(PayerRecord { payer_id, name, address, ssn_last4, telephone, email, case_number, account })
}

/// An obligor's orders, each with the FEIN of the employer holding its withholding order.
/// Made once, as [`PAYMENT_BY_KEY_QUERY`].
pub(super) static OBLIGOR_ORDERS_QUERY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {}, employer_fein FROM orders WHERE obligor_id = $1 ORDER BY order_id", super::sql_store::ORDER_COLUMNS)
});

/// A row of [`OBLIGOR_ORDERS_QUERY`]: an [`OrderRow`](super::sql_store::OrderRow) and the FEIN.
pub(super) type ObligorOrderRow = (String, String, i64, String, i64, Option<String>, String, Option<String>);

/// An order and its withholding employer's FEIN, from a row of [`OBLIGOR_ORDERS_QUERY`].
pub(super) fn obligor_order(row: ObligorOrderRow) -> Result<(crate::domain::Order, Option<String>), super::StoreError> {
    let (id, case, monthly, start, arrears, end, _, fein) = row;
    Ok((super::sql_store::order_from_columns(&id, &case, monthly, &start, arrears, end)?, fein))
}

pub(super) fn payment(row: PaymentRow) -> Result<super::payment::PaymentRecord, super::StoreError> {
    let (
        payment_id,
        payer_id,
        case_number,
        obligor_id,
        cents,
        channel,
        accepted_on,
        request_sha256,
        collection_id,
        trace_number,
        return_code,
    ) = row;
    Ok(super::payment::PaymentRecord {
        payment_id,
        payer_id,
        case_number,
        obligor_id,
        amount: crate::domain::Money::from_cents(cents),
        channel,
        accepted_on: super::sql_store::date(&accepted_on)?,
        request_sha256,
        collection_id,
        trace_number,
        return_code,
    })
}

/// Expands the [`PaymentStore`](super::payment::PaymentStore) implementation for one backend.
macro_rules! impl_sql_payments {
    ($store:ty, $db:ty) => {
        /// Adds a bank account as the payer's active one.
        async fn insert_account(
            tx: &mut sqlx::Transaction<'_, $db>,
            payer_id: i64,
            account: &$crate::storage::payment::NewBankAccount,
        ) -> $crate::storage::StoreResult<()> {
            sqlx::query(
                "INSERT INTO bank_accounts (payer_id, routing_number, account_cipher, account_last4, account_type, added_on, active) \
                 VALUES ($1, $2, $3, $4, $5, $6, TRUE)",
            )
            .bind(payer_id)
            .bind(&account.routing_number)
            .bind(&account.account_cipher)
            .bind(&account.account_last4)
            .bind(account.account_type)
            .bind(account.added_on.to_string())
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::storage::payment::PaymentStore for $store {
            async fn create_payer(
                &self,
                payer: $crate::storage::payment::NewPayer,
                account: $crate::storage::payment::NewBankAccount,
                audit: &$crate::storage::AuditEntry,
            ) -> $crate::storage::StoreResult<i64> {
                let mut tx = self.writer().begin().await?;
                let payer_id: i64 = sqlx::query_scalar(
                    "INSERT INTO payers (name, address, ssn_hmac, ssn_last4, telephone, email, case_number, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING payer_id",
                )
                .bind(&payer.name)
                .bind(&payer.address)
                .bind(&payer.ssn_hmac)
                .bind(&payer.ssn_last4)
                .bind(&payer.telephone)
                .bind(&payer.email)
                .bind(payer.case_number.as_str())
                .bind(&payer.created_at)
                .fetch_one(&mut *tx)
                .await?;
                insert_account(&mut tx, payer_id, &account).await?;
                $crate::storage::sql_access::insert_audit!(&mut *tx, audit)?;
                tx.commit().await?;
                Ok(payer_id)
            }

            async fn payer(&self, payer_id: i64) -> $crate::storage::StoreResult<Option<$crate::storage::payment::PayerRecord>> {
                self.payer_row(payer_id).await?.map($crate::storage::sql_payment::payer).transpose()
            }

            async fn add_bank_account(
                &self,
                payer_id: i64,
                account: $crate::storage::payment::NewBankAccount,
                audit: &$crate::storage::AuditEntry,
            ) -> $crate::storage::StoreResult<bool> {
                let mut tx = self.writer().begin().await?;
                let existing: Option<i64> = sqlx::query_scalar("SELECT account_id FROM bank_accounts WHERE payer_id = $1 AND active")
                    .bind(payer_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                if existing.is_some() {
                    return Ok(false);
                }
                insert_account(&mut tx, payer_id, &account).await?;
                $crate::storage::sql_access::insert_audit!(&mut *tx, audit)?;
                tx.commit().await?;
                Ok(true)
            }

            async fn replace_bank_account(
                &self,
                payer_id: i64,
                account: $crate::storage::payment::NewBankAccount,
                audit: &$crate::storage::AuditEntry,
            ) -> $crate::storage::StoreResult<()> {
                let mut tx = self.writer().begin().await?;
                sqlx::query("UPDATE bank_accounts SET active = FALSE WHERE payer_id = $1 AND active").bind(payer_id).execute(&mut *tx).await?;
                insert_account(&mut tx, payer_id, &account).await?;
                $crate::storage::sql_access::insert_audit!(&mut *tx, audit)?;
                tx.commit().await?;
                Ok(())
            }

            async fn record_prenote(
                &self,
                payer_id: i64,
                returned: Option<String>,
                audit: &$crate::storage::AuditEntry,
            ) -> $crate::storage::StoreResult<()> {
                let result = if returned.is_some() { "RETURNED" } else { "CONFIRMED" };
                let mut tx = self.writer().begin().await?;
                sqlx::query("UPDATE bank_accounts SET prenote_result = $1, prenote_return_code = $2 WHERE payer_id = $3 AND active")
                    .bind(result)
                    .bind(returned)
                    .bind(payer_id)
                    .execute(&mut *tx)
                    .await?;
                $crate::storage::sql_access::insert_audit!(&mut *tx, audit)?;
                tx.commit().await?;
                Ok(())
            }

            async fn orders_of_obligor(
                &self,
                obligor_id: &$crate::domain::ObligorId,
            ) -> $crate::storage::StoreResult<Vec<($crate::domain::Order, Option<String>)>> {
                self.obligor_order_rows(obligor_id.as_str()).await?.into_iter().map($crate::storage::sql_payment::obligor_order).collect()
            }

            async fn payment_by_key(
                &self,
                payer_id: i64,
                idempotency_key: &str,
            ) -> $crate::storage::StoreResult<Option<$crate::storage::payment::PaymentRecord>> {
                self.payment_row_by_key(payer_id, idempotency_key).await?.map($crate::storage::sql_payment::payment).transpose()
            }

            async fn payment_context(
                &self,
                payer_id: i64,
                idempotency_key: &str,
                case_number: Option<&$crate::domain::CaseNumber>,
            ) -> $crate::storage::StoreResult<$crate::storage::payment::PaymentContext> {
                use $crate::storage::sql_payment as sql;
                let (first, payer, owner, orders) =
                    self.payment_context_rows(payer_id, idempotency_key, case_number.map(|case| case.as_str())).await?;
                Ok($crate::storage::payment::PaymentContext {
                    first: first.map(sql::payment).transpose()?,
                    payer: payer.map(sql::payer).transpose()?,
                    case_owner: owner.as_deref().map($crate::storage::sql_store::obligor_id).transpose()?,
                    owner_orders: orders.into_iter().map(sql::obligor_order).collect::<Result<_, _>>()?,
                })
            }

            async fn create_payment(
                &self,
                new: $crate::storage::payment::NewPayment,
                audit: &$crate::storage::AuditEntry,
            ) -> $crate::storage::StoreResult<$crate::storage::payment::PaymentRecord> {
                self.commit_payment(new, audit).await
            }

            async fn payment(&self, payment_id: i64) -> $crate::storage::StoreResult<Option<$crate::storage::payment::PaymentRecord>> {
                use $crate::storage::sql_payment::{payment, PaymentRow, PAYMENT_COLUMNS};
                let row: Option<PaymentRow> = sqlx::query_as(&format!("SELECT {PAYMENT_COLUMNS} FROM payments WHERE payment_id = $1"))
                    .bind(payment_id)
                    .fetch_optional(self.reader())
                    .await?;
                row.map(payment).transpose()
            }

            async fn payment_by_trace(&self, trace_number: &str) -> $crate::storage::StoreResult<Option<$crate::storage::payment::PaymentRecord>> {
                use $crate::storage::sql_payment::{payment, PaymentRow, PAYMENT_COLUMNS};
                // A number is issued again 10,000,000 numbers later, far beyond any return window: a
                // return is of the newest payment that carries it.
                let row: Option<PaymentRow> = sqlx::query_as(&format!(
                    "SELECT {PAYMENT_COLUMNS} FROM payments WHERE trace_number = $1 ORDER BY payment_id DESC LIMIT 1"
                ))
                .bind(trace_number)
                .fetch_optional(self.reader())
                .await?;
                row.map(payment).transpose()
            }

            async fn return_payment(
                &self,
                payment_id: i64,
                code: &str,
                returned_at: &str,
                makes_account_unusable: bool,
                planner: &$crate::storage::payment::ReversalPlanner,
                audit: Option<&$crate::storage::AuditEntry>,
            ) -> $crate::storage::StoreResult<$crate::storage::payment::ReturnOutcome> {
                use $crate::domain::distribution::PoolRow;
                use $crate::domain::Money;
                use $crate::storage::payment::ReturnOutcome;
                use $crate::storage::sql_store as sql;
                use $crate::storage::StoreError;

                let mut tx = self.begin_writing().await?;
                // A return and a distribution run must not interleave on the same collection.
                Self::lock_distribution(&mut tx).await?;
                let payment: Option<(Option<String>, i64, i64)> =
                    sqlx::query_as("SELECT return_code, collection_id, account_id FROM payments WHERE payment_id = $1")
                        .bind(payment_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((previous, collection_id, account_id)) = payment else {
                    return Err(StoreError::Corrupt(format!("payment {payment_id} vanished")));
                };
                if let Some(previous) = previous {
                    if let Some(audit) = audit {
                        $crate::storage::sql_access::insert_audit!(&mut *tx, audit)?;
                        tx.commit().await?;
                    }
                    return Ok(ReturnOutcome::AlreadyReturned(previous));
                }
                use $crate::storage::sql_store::{COLLECTION_STATUS, COLLECTION_WITH_CLAIM};
                let (status, pool_id, cents, obligor): (String, Option<i64>, i64, String) = sqlx::query_as(&format!(
                    "SELECT {COLLECTION_STATUS}, k.pool_id, c.amount_cents, c.obligor_id FROM {COLLECTION_WITH_CLAIM} WHERE c.collection_id = $1"
                ))
                .bind(collection_id)
                .fetch_one(&mut *tx)
                .await?;
                let outcome = match (status.as_str(), pool_id) {
                    ("PENDING", _) => {
                        // Out of the queue, so no run takes it. Runs hold the distribution lock
                        // this return holds too, so a pending collection missing from the queue
                        // is a broken ledger, not a race.
                        // Its segment is not known: each is looked in (a seek each).
                        let segments = $crate::storage::distribution_chunk::Segments::new(
                            sqlx::query_scalar($crate::storage::distribution_chunk::QUEUE_SEGMENTS).fetch_all(&mut *tx).await?,
                        );
                        let dequeued = sqlx::query(&format!(
                            "DELETE FROM pending_collections WHERE segment IN {} AND obligor_id = $1 AND collection_id = $2",
                            segments.sql_list()
                        ))
                        .bind(&obligor)
                        .bind(collection_id)
                        .execute(&mut *tx)
                        .await?;
                        if dequeued.rows_affected() != 1 {
                            return Err(StoreError::Corrupt(format!("collection {collection_id} is neither queued, claimed nor reversed")));
                        }
                        ReturnOutcome::CancelledBeforeDistribution
                    }
                    ("DISTRIBUTED", Some(pool_id)) => {
                        let (effective_date,): (String,) =
                            sqlx::query_as("SELECT effective_date FROM pools WHERE pool_id = $1").bind(pool_id).fetch_one(&mut *tx).await?;
                        let held: Vec<(Option<String>, String, Option<String>, i64)> = sqlx::query_as(
                            "SELECT order_id, bucket, month, CAST(SUM(amount_cents) AS BIGINT) FROM allocations WHERE pool_id = $1 \
                             GROUP BY order_id, bucket, month",
                        )
                        .bind(pool_id)
                        .fetch_all(&mut *tx)
                        .await?;
                        let mut rows = Vec::with_capacity(held.len());
                        for (order, bucket, month, remaining) in held {
                            rows.push(PoolRow {
                                order_id: order.as_deref().map(sql::order_id).transpose()?,
                                bucket: sql::bucket(&bucket)?,
                                month: sql::month(month)?,
                                remaining: Money::from_cents(remaining),
                            });
                        }
                        let amount = Money::from_cents(cents);
                        let entries = planner(&rows, amount);
                        let reversed: Money = entries.iter().map(|e| e.amount).sum();
                        if reversed != -amount {
                            return Err(StoreError::Corrupt(format!("a reversal of {amount} wrote {reversed}")));
                        }
                        let run_id: i64 = sqlx::query_scalar(
                            "INSERT INTO distribution_runs (started_at, collections, pools, total_cents, unapplied_cents, kind) \
                             VALUES ($1, 1, 0, $2, $3, 'REVERSAL') RETURNING run_id",
                        )
                        .bind(returned_at)
                        .bind(reversed.cents())
                        .bind(entries.iter().filter(|e| e.bucket == $crate::domain::Bucket::Unapplied).map(|e| e.amount.cents()).sum::<i64>())
                        .fetch_one(&mut *tx)
                        .await?;
                        for entry in &entries {
                            sqlx::query(
                                "INSERT INTO allocations (run_id, pool_id, obligor_id, order_id, bucket, month, effective_date, amount_cents, reversal_of) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                            )
                            .bind(run_id)
                            .bind(pool_id)
                            .bind(&obligor)
                            .bind(entry.order_id.as_ref().map(|o| o.as_str()))
                            .bind(entry.bucket.as_str())
                            .bind(entry.month.map(|m| m.to_string()))
                            .bind(&effective_date)
                            .bind(entry.amount.cents())
                            .bind(collection_id)
                            .execute(&mut *tx)
                            .await?;
                        }
                        ReturnOutcome::Reversed { run_id, entries }
                    }
                    (other, _) => return Err(StoreError::Conflict(format!("collection {collection_id} is {other}"))),
                };
                sqlx::query("UPDATE collections SET reversed = TRUE WHERE collection_id = $1").bind(collection_id).execute(&mut *tx).await?;
                sqlx::query("UPDATE payments SET return_code = $1, returned_at = $2 WHERE payment_id = $3")
                    .bind(code)
                    .bind(returned_at)
                    .bind(payment_id)
                    .execute(&mut *tx)
                    .await?;
                if makes_account_unusable {
                    sqlx::query("UPDATE bank_accounts SET unusable_code = $1 WHERE account_id = $2").bind(code).bind(account_id).execute(&mut *tx).await?;
                }
                if let Some(audit) = audit {
                    $crate::storage::sql_access::insert_audit!(&mut *tx, audit)?;
                }
                $crate::crash_points::reached("return.before_commit");
                tx.commit().await?;
                $crate::crash_points::reached("return.after_commit");
                Ok(outcome)
            }
        }
    };
}

pub(super) use impl_sql_payments;
