//! What both databases' group commits of online payments share: the queue a payment waits
//! in, the answer each gets once the commit that carried it is durable, and the answer of a
//! group that could not be written.
//!
//! One task per store takes every payment waiting (up to [`MOST_PER_COMMIT`]) and commits them
//! together. Nothing waits to fill a group: a payment arriving while the committer is idle is
//! committed alone at once, and those arriving during a commit make the next group, so groups
//! grow with the load. Each backend writes a group its own way (`sqlite_payments.rs`,
//! `postgres_payments.rs`); each payment keeps its own outcome.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::payment::{NewPayment, PaymentRecord};
use super::sqlite_files::stopped;
use super::{AuditEntry, StoreError, StoreResult};

/// The most payments one commit carries: enough to turn 2,000 a second into a few hundred
/// commits, few enough that one commit is never long.
pub(super) const MOST_PER_COMMIT: usize = 64;

/// Payments queued for the committer; past this, callers wait to queue (backpressure).
const QUEUE: usize = 1024;

/// A payment waiting for its group's commit, and where its outcome goes.
pub(super) struct Pending {
    pub(super) new: NewPayment,
    pub(super) audit: AuditEntry,
    pub(super) answer: oneshot::Sender<StoreResult<PaymentRecord>>,
}

impl Pending {
    /// A caller gone while its payment waited (cancelled, or past its deadline) was told
    /// nothing: its payment is not written, as a transaction of its own would have been
    /// rolled back. Its retry, with the same key, pays once.
    pub(super) fn caller_gone(&self) -> bool {
        self.answer.is_closed()
    }

    /// Answers the caller; one that gave up meanwhile is answered by its retry (its key replays).
    pub(super) fn answer(self, outcome: StoreResult<PaymentRecord>) {
        let _ = self.answer.send(outcome);
    }
}

/// The queue of the task that commits payments in groups.
pub(super) struct GroupCommit {
    queue: mpsc::Sender<Pending>,
}

impl GroupCommit {
    /// Starts `committer` on the receiving end of a new queue; it ends when this is dropped.
    pub(super) fn start<F, Fut>(committer: F) -> GroupCommit
    where
        F: FnOnce(mpsc::Receiver<Pending>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (queue, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(committer(waiting));
        GroupCommit { queue }
    }

    /// Writes `new` and answers once the commit that carried it is durable.
    pub(super) async fn commit(&self, new: NewPayment, audit: &AuditEntry) -> StoreResult<PaymentRecord> {
        let (answer, answered) = oneshot::channel();
        self.queue.send(Pending { new, audit: audit.clone(), answer }).await.map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    /// Queues `new` as [`GroupCommit::commit`] does, without waiting: the receiver of its answer.
    #[cfg(test)]
    pub(super) async fn queue_for_test(&self, new: NewPayment, audit: AuditEntry) -> oneshot::Receiver<StoreResult<PaymentRecord>> {
        let (answer, answered) = oneshot::channel();
        self.queue.send(Pending { new, audit, answer }).await.expect("the committer is running");
        answered
    }
}

/// Answers every payment of a group that could not be written with `error`.
pub(super) fn fail(group: Vec<Pending>, error: StoreError) {
    tracing::warn!(%error, payments = group.len(), "a group commit of payments failed; none of them was acknowledged");
    let error = Arc::new(error);
    for pending in group {
        pending.answer(Err(StoreError::Shared(error.clone())));
    }
}

/// One payer, with a usable bank account, of an obligor's case; its payments and audit rows.
#[cfg(test)]
pub(super) mod fixture {
    use super::{AuditEntry, NewPayment};
    use crate::domain::{CaseNumber, Money, ObligorId};

    pub(in crate::storage) const FIXTURE: &str = "
        INSERT INTO obligors (obligor_id, ssn_hmac, ssn_last4, last_name, first_name) VALUES ('OB-1', 'hmac', '6789', 'Smith', 'John');
        INSERT INTO cases (case_number, obligor_id) VALUES ('12345678', 'OB-1');
        INSERT INTO payers (name, address, ssn_hmac, ssn_last4, telephone, email, case_number, created_at)
            VALUES ('John Smith', '1 Main St', 'hmac', '6789', '555-0100', 'j@example.org', '12345678', 't');
        INSERT INTO bank_accounts (payer_id, routing_number, account_cipher, account_last4, account_type, added_on, active)
            VALUES (1, '011000015', 'cipher', '6789', 'CHECKING', '2026-12-01', TRUE);";

    pub(in crate::storage) fn payment(key: &str, cents: i64) -> NewPayment {
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

    pub(in crate::storage) fn audit() -> AuditEntry {
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
}
