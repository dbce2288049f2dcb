//! Group commit of online payments on SQLite.
//!
//! Each payment must be durable before it is acknowledged, and SQLite makes a commit durable
//! with an fsync of its log: one payment a commit is one fsync a payment, behind one writer,
//! which caps payments at a few hundred a second whatever the cores. Here one task owns the
//! payments' commits: it takes every payment waiting (up to `MOST_PER_COMMIT`), writes each in
//! a savepoint of one transaction, commits once, and only then answers each. Nothing waits to
//! fill a group: a payment arriving while the writer is idle is committed alone at once, and
//! those arriving during a commit make the next group, so groups grow with the load.
//!
//! Each payment stays its own: one refused by the database (its idempotency key used meanwhile)
//! is rolled back to its savepoint and answered alone, and the others commit; one whose caller
//! went away while it waited is not written. A failed commit fails every payment of its group,
//! none of which was acknowledged; their clients' retries (same idempotency keys) find nothing
//! and pay once.

use std::sync::Arc;

use sqlx::{Connection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::payment::{NewPayment, PaymentRecord};
use super::sql_payment::payment;
use super::{AuditEntry, StoreError, StoreResult};

/// The most payments one commit carries: enough to turn 2,000 a second into a few hundred
/// commits, few enough that the writer is never held long for the files waiting on it.
const MOST_PER_COMMIT: usize = 64;

/// Payments queued for the committer; past this, callers wait to queue (backpressure).
const QUEUE: usize = 1024;

struct Pending {
    new: NewPayment,
    audit: AuditEntry,
    answer: oneshot::Sender<StoreResult<PaymentRecord>>,
}

/// The queue of the task that commits payments in groups.
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
}

impl GroupCommit {
    /// Starts the committer on the database's one writer; it ends when this is dropped.
    pub(super) fn start(writer: SqlitePool) -> GroupCommit {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(commit_in_groups(writer, waiting));
        GroupCommit { queue }
    }

    /// Writes `new` and answers once the commit that carried it is durable.
    pub(super) async fn commit(&self, new: NewPayment, audit: &AuditEntry) -> StoreResult<PaymentRecord> {
        let (answer, answered) = oneshot::channel();
        let stopped = || StoreError::Database(sqlx::Error::PoolClosed);
        self.queue.send(Pending { new, audit: audit.clone(), answer }).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

async fn commit_in_groups(writer: SqlitePool, mut waiting: mpsc::Receiver<Pending>) {
    let mut group = Vec::with_capacity(MOST_PER_COMMIT);
    while waiting.recv_many(&mut group, MOST_PER_COMMIT).await > 0 {
        match commit_group(&writer, &group).await {
            Ok(outcomes) => {
                for (pending, outcome) in group.drain(..).zip(outcomes) {
                    // A caller that gave up is answered by its retry (its key replays).
                    let _ = pending.answer.send(outcome);
                }
            }
            Err(error) => {
                tracing::warn!(%error, payments = group.len(), "a group commit of payments failed; none of them was acknowledged");
                let error = Arc::new(error);
                for pending in group.drain(..) {
                    let _ = pending.answer.send(Err(StoreError::Shared(error.clone())));
                }
            }
        }
    }
}

/// One transaction holding each of `group`'s payments in a savepoint; the outcome of each,
/// in order, once the transaction is committed.
async fn commit_group(writer: &SqlitePool, group: &[Pending]) -> StoreResult<Vec<StoreResult<PaymentRecord>>> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let mut outcomes = Vec::with_capacity(group.len());
    for pending in group {
        // A caller gone while its payment waited (cancelled, or past its deadline) was told
        // nothing: its payment is not written, as a transaction of its own would have been
        // rolled back. Its retry, with the same key, pays once.
        if pending.answer.is_closed() {
            outcomes.push(Err(StoreError::Shared(Arc::new(StoreError::Database(sqlx::Error::PoolClosed)))));
            continue;
        }
        let mut savepoint = (*tx).begin().await?;
        match super::sqlite::insert_payment(&mut savepoint, &pending.new, &pending.audit).await {
            Ok(row) => {
                savepoint.commit().await?;
                outcomes.push(payment(row));
            }
            Err(error) => {
                savepoint.rollback().await?;
                outcomes.push(Err(error));
            }
        }
    }
    crate::crash_points::reached("payment.before_commit");
    tx.commit().await?;
    crate::crash_points::reached("payment.after_commit");
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CaseNumber, Money, ObligorId};

    const FIXTURE: &str = "
        INSERT INTO obligors (obligor_id, ssn_hmac, ssn_last4, last_name, first_name) VALUES ('OB-1', 'hmac', '6789', 'Smith', 'John');
        INSERT INTO cases (case_number, obligor_id) VALUES ('12345678', 'OB-1');
        INSERT INTO payers (name, address, ssn_hmac, ssn_last4, telephone, email, case_number, created_at)
            VALUES ('John Smith', '1 Main St', 'hmac', '6789', '555-0100', 'j@example.org', '12345678', 't');
        INSERT INTO bank_accounts (payer_id, routing_number, account_cipher, account_last4, account_type, added_on, active)
            VALUES (1, '011000015', 'cipher', '6789', 'CHECKING', '2026-12-01', TRUE);";

    fn payment(key: &str, cents: i64) -> NewPayment {
        NewPayment {
            payer_id: 1,
            account_id: 1,
            case_number: CaseNumber::parse("12345678").unwrap(),
            obligor_id: ObligorId::parse("OB-1").unwrap(),
            amount: Money::from_cents(cents),
            channel: "WEB",
            accepted_on: chrono::NaiveDate::from_ymd_opt(2026, 12, 3).unwrap(),
            accepted_at: "2026-12-03T10:00:00Z".into(),
            idempotency_key: key.into(),
            request_sha256: format!("sha-{key}-{cents}"),
        }
    }

    fn audit() -> AuditEntry {
        AuditEntry {
            at: "2026-12-03T10:00:00Z".into(),
            request_id: "r".into(),
            actor: "payment-site".into(),
            key_id: None,
            role: "payment-site".into(),
            action: "SubmitPayment".into(),
            object: String::new(),
            outcome: "OK".into(),
        }
    }

    /// Queues `new` as `GroupCommit::commit` does; the receiver of its answer.
    async fn queue(group: &GroupCommit, new: NewPayment) -> oneshot::Receiver<StoreResult<PaymentRecord>> {
        let (answer, answered) = oneshot::channel();
        group.queue.send(Pending { new, audit: audit(), answer }).await.unwrap();
        answered
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
        let group = GroupCommit::start(store.writer.clone());

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
        let group = GroupCommit::start(store.writer.clone());

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
