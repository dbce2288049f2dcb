//! Group commit of online payments on SQLite.
//!
//! Each payment must be durable before it is acknowledged, and SQLite makes a commit durable
//! with an fsync of its log: one payment a commit is one fsync a payment, behind one writer,
//! which caps payments at a few hundred a second whatever the cores. Here one task owns the
//! payments' commits (`payment_groups.rs`): it takes every payment waiting, writes each in a
//! savepoint of one transaction, commits once, and only then answers each.
//!
//! Each payment stays its own: one refused by the database (its idempotency key used meanwhile)
//! is rolled back to its savepoint and answered alone, and the others commit; one whose caller
//! went away while it waited is not written. A failed commit fails every payment of its group,
//! none of which was acknowledged; their clients' retries (same idempotency keys) find nothing
//! and pay once.
//!
//! The group is written on the SQLite writer thread (`sqlite_files.rs`), its statements
//! prepared once: through sqlx each of a payment's statements crossed to sqlx's worker thread
//! and back, and at 2,000 payments a second those crossings were most of the server's CPU.
//! Now a group crosses once, and each payment is answered from the writer thread once the
//! commit is durable.

use std::sync::Arc;

use rusqlite::{params, Connection};
use sqlx::SqlitePool;
use tokio::sync::{mpsc, oneshot};

use super::payment_groups::{fail, GroupCommit, Pending, MOST_PER_COMMIT};
use super::payment::{NewPayment, PaymentRecord};
use super::sql_payment::{payment, trace_number, PAYMENT_COLUMNS};
use super::sqlite_lookups::payment_row;
use super::sqlite_files::{insert_audit, is_unique_violation, roll_back, stopped, WriterThread};
use super::{AuditEntry, StoreError, StoreResult};

/// Starts the committer, which takes the database's one writer (`writer`, the token) for
/// each group and has `thread` write it; it ends when the queue is dropped.
pub(super) fn start(writer: SqlitePool, thread: WriterThread) -> GroupCommit {
    GroupCommit::start(move |waiting| commit_in_groups(writer, thread, waiting))
}

async fn commit_in_groups(writer: SqlitePool, thread: WriterThread, mut waiting: mpsc::Receiver<Pending>) {
    let mut group = Vec::with_capacity(MOST_PER_COMMIT);
    while waiting.recv_many(&mut group, MOST_PER_COMMIT).await > 0 {
        let token = match writer.acquire().await {
            Ok(token) => token,
            Err(error) => {
                fail(std::mem::take(&mut group), error.into());
                continue;
            }
        };
        let (done, committed) = oneshot::channel::<()>();
        let payments = std::mem::replace(&mut group, Vec::with_capacity(MOST_PER_COMMIT));
        // A stopped thread drops the group: each caller is told the writer stopped.
        let _ = thread.run(token, move |connection, _| {
            commit_group(connection, payments);
            // The next group then waits for the token, which the thread gives back next.
            let _ = done.send(());
        });
        // Payments arriving meanwhile wait in the queue and make the next group.
        let _ = committed.await;
    }
}

/// Writes `group` in one transaction and answers each payment once it is durable.
fn commit_group(connection: &Connection, group: Vec<Pending>) {
    match write_group(connection, &group) {
        Ok(outcomes) => {
            for (pending, outcome) in group.into_iter().zip(outcomes) {
                pending.answer(outcome);
            }
        }
        Err(error) => {
            roll_back(connection);
            fail(group, error);
        }
    }
}

/// One transaction holding each of `group`'s payments in a savepoint; the outcome of each,
/// in order, once the transaction is committed.
fn write_group(connection: &Connection, group: &[Pending]) -> StoreResult<Vec<StoreResult<PaymentRecord>>> {
    connection.execute_batch("BEGIN IMMEDIATE")?;
    let mut outcomes = Vec::with_capacity(group.len());
    for pending in group {
        if pending.caller_gone() {
            outcomes.push(Err(StoreError::Shared(Arc::new(stopped()))));
            continue;
        }
        connection.execute_batch("SAVEPOINT payment")?;
        match insert_payment(connection, &pending.new, &pending.audit) {
            Ok(record) => {
                connection.execute_batch("RELEASE payment")?;
                outcomes.push(Ok(record));
            }
            Err(error) => {
                connection.execute_batch("ROLLBACK TO payment; RELEASE payment")?;
                outcomes.push(Err(error));
            }
        }
    }
    crate::crash_points::reached("payment.before_commit");
    connection.execute_batch("COMMIT")?;
    crate::crash_points::reached("payment.after_commit");
    Ok(outcomes)
}

/// The payment's ONLINE collection, the payment, and the call's audit row.
fn insert_payment(connection: &Connection, new: &NewPayment, audit: &AuditEntry) -> StoreResult<PaymentRecord> {
    let collection_id: i64 = connection
        .prepare_cached(
            "INSERT INTO collections (obligor_id, case_number, source, amount_cents, effective_date, received_at) \
             VALUES (?1, ?2, 'ONLINE', ?3, ?4, ?5) RETURNING collection_id",
        )?
        .query_row(
            params![new.obligor_id.as_str(), new.case_number.as_str(), new.amount.cents(), new.accepted_on.to_string(), new.accepted_at],
            |row| row.get(0),
        )?;
    let trace_sequence: i64 = connection
        .prepare_cached("UPDATE payment_trace_sequence SET next = next + 1 RETURNING next - 1")?
        .query_row([], |row| row.get(0))?;
    let trace_number = trace_number(trace_sequence);
    let inserted = connection
        .prepare_cached(&format!(
            "INSERT INTO payments (payer_id, account_id, case_number, obligor_id, amount_cents, channel, accepted_on, accepted_at, \
             idempotency_key, request_sha256, collection_id, trace_number) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
             RETURNING {PAYMENT_COLUMNS}"
        ))?
        .query_row(
            params![
                new.payer_id,
                new.account_id,
                new.case_number.as_str(),
                new.obligor_id.as_str(),
                new.amount.cents(),
                new.channel,
                new.accepted_on.to_string(),
                new.accepted_at,
                new.idempotency_key,
                new.request_sha256,
                collection_id,
                trace_number
            ],
            payment_row,
        );
    let row = match inserted {
        Ok(row) => row,
        Err(error) if is_unique_violation(&error) => return Err(StoreError::Conflict("the idempotency key was used meanwhile".into())),
        Err(error) => return Err(error.into()),
    };
    insert_audit(connection, audit)?;
    payment(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Money;
    use crate::storage::payment_groups::fixture::{audit, payment, FIXTURE};

    async fn queue(group: &GroupCommit, new: NewPayment) -> oneshot::Receiver<StoreResult<PaymentRecord>> {
        group.queue_for_test(new, audit()).await
    }

    async fn store_with_payer(dir: &tempfile::TempDir) -> super::super::SqliteStore {
        let store = super::super::SqliteStore::connect(&format!("sqlite://{}", dir.path().join("gateway.db").display())).await.unwrap();
        sqlx::raw_sql(FIXTURE).execute(&store.writer).await.unwrap();
        store
    }

    /// Payments queued while the writer is busy are committed together, each in its own
    /// savepoint: one the database refuses (its key already used in the same group) is
    /// answered alone, and the others commit with their collections and audit rows.
    #[tokio::test]
    async fn a_group_commits_together_and_a_refused_payment_leaves_the_others_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_payer(&dir).await;
        let group = super::start(store.writer.clone(), store.files.clone());

        let held = store.writer.acquire().await.unwrap(); // A long write: the payments queue up.
        let mut answers = Vec::new();
        for (key, cents) in [("a", 100), ("b", 200), ("a", 300), ("c", 400)] {
            answers.push(queue(&group, payment(key, cents)).await);
        }
        drop(held);
        let mut outcomes = Vec::new();
        for answer in answers {
            outcomes.push(answer.await.unwrap());
        }
        let amounts: Vec<Option<i64>> = outcomes.iter().map(|o| o.as_ref().ok().map(|p| p.amount.cents())).collect();
        assert_eq!(amounts, [Some(100), Some(200), None, Some(400)]);
        assert!(matches!(outcomes[2], Err(StoreError::Conflict(_))), "{:?}", outcomes[2]);

        let written: (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM payments), (SELECT SUM(amount_cents) FROM collections), \
             (SELECT COUNT(*) FROM audit_log WHERE action = 'SubmitPayment'), \
             (SELECT COUNT(DISTINCT collection_id) FROM payments)",
        )
        .fetch_one(&store.reader)
        .await
        .unwrap();
        assert_eq!(written, (3, 700, 3, 3), "three payments, their collections and audit rows; nothing of the refused one");
    }

    /// A caller that went away while its payment waited for the writer was told nothing: its
    /// payment is not written (its retry pays once), and the others of its group are.
    #[tokio::test]
    async fn a_payment_whose_caller_went_away_while_it_waited_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_payer(&dir).await;
        let group = super::start(store.writer.clone(), store.files.clone());

        let held = store.writer.acquire().await.unwrap();
        let gone = queue(&group, payment("gone", 100)).await;
        let stays = queue(&group, payment("stays", 200)).await;
        drop(gone); // The client cancels while the writer is busy.
        drop(held);
        assert_eq!(stays.await.unwrap().unwrap().amount, Money::from_cents(200));
        let keys: Vec<String> = sqlx::query_scalar("SELECT idempotency_key FROM payments").fetch_all(&store.reader).await.unwrap();
        assert_eq!(keys, ["stays"]);
    }
}
