//! Group commit of online payments on PostgreSQL.
//!
//! A payment written alone is a statement (its collection, its row and its audit row) and a
//! durable commit, and at 2,000 payments a second on two cores the server's fixed share of
//! each (opening the three tables and their indexes, the collections' statement triggers,
//! the commit) was what limited the rate. Here a task takes every payment
//! waiting (`payment_groups.rs`) and writes the group as one statement over arrays of their
//! fields, so the statement's fixed cost and its commit are shared by the group. Up to
//! [`GROUPS_IN_FLIGHT`] groups are written at once, each on a connection of its own, so a
//! group's commit does not hold the next one back (PostgreSQL shares their WAL flushes).
//!
//! Each payment keeps its own outcome. A payment whose idempotency key is stored, or written
//! meanwhile by another group or replica (which the statement waits for), or repeated in its
//! own group, is left out and answered `Conflict`: its caller replays the first. Any failure
//! of the statement fails the whole group, of which nothing was written or acknowledged.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, Semaphore};

use super::payment::NewPayment;
#[cfg(test)]
use super::payment::PaymentRecord;
use super::payment_groups::{fail, GroupCommit, Pending, MOST_PER_COMMIT};
use super::postgres_shelf::Shelf;
use super::sql_payment::{payment, PaymentRow, PAYMENT_COLUMNS, TRACE_CYCLE, TRACE_PREFIX};
use super::sqlite_files::stopped;
use super::{AuditEntry, StoreError, StoreResult};

/// Groups being written at once, each holding a connection until it commits.
pub(super) const GROUPS_IN_FLIGHT: usize = 4;

/// How long a group's statement may take before its payments are answered UNAVAILABLE. A
/// statement that never answers (a primary cut off without resetting its connections, which
/// sets no keepalive) would otherwise hold its slot for good, and four of them every payment.
const GROUP_ANSWERED_WITHIN: std::time::Duration = std::time::Duration::from_secs(30);

/// Starts the committer on the shelf's connections; it ends when the queue is dropped.
pub(super) fn start(shelf: Shelf) -> GroupCommit {
    GroupCommit::start(move |waiting| commit_in_groups(Arc::new(shelf), waiting))
}

async fn commit_in_groups(shelf: Arc<Shelf>, mut waiting: mpsc::Receiver<Pending>) {
    let slots = Arc::new(Semaphore::new(GROUPS_IN_FLIGHT));
    loop {
        // While every slot is taken, payments gather in the queue and make the next group.
        let slot = slots.clone().acquire_owned().await.expect("the slots are never closed");
        let mut group = Vec::with_capacity(MOST_PER_COMMIT);
        if waiting.recv_many(&mut group, MOST_PER_COMMIT).await == 0 {
            return;
        }
        let shelf = shelf.clone();
        tokio::spawn(async move {
            commit_group(&shelf, group).await;
            drop(slot);
        });
    }
}

/// Writes `group` and answers each payment once the statement that wrote it has committed.
async fn commit_group(shelf: &Shelf, group: Vec<Pending>) {
    let (group, gone): (Vec<Pending>, Vec<Pending>) = group.into_iter().partition(|pending| !pending.caller_gone());
    for pending in gone {
        pending.answer(Err(StoreError::Shared(Arc::new(stopped()))));
    }
    if group.is_empty() {
        return;
    }
    // Nothing of the group is written before the one statement that writes and commits it.
    crate::crash_points::reached("payment.before_commit");
    let written = match tokio::time::timeout(GROUP_ANSWERED_WITHIN, write_group(shelf, &group)).await {
        Ok(written) => written,
        Err(_) => Err(unanswered()),
    };
    match written {
        Ok(mut written) => {
            crate::crash_points::reached("payment.after_commit");
            for (index, pending) in group.into_iter().enumerate() {
                let outcome = match written.remove(&index) {
                    Some(row) => payment(row),
                    None => Err(key_used_meanwhile()),
                };
                pending.answer(outcome);
            }
        }
        Err(error) => fail(group, error),
    }
}

/// Whether a statement given up on was written is unknown: UNAVAILABLE, and the client's
/// retry with the same idempotency key either replays it or pays once.
fn unanswered() -> StoreError {
    let message = format!("the database did not answer the payments' commit within {} s", GROUP_ANSWERED_WITHIN.as_secs());
    StoreError::Database(sqlx::Error::Io(std::io::Error::new(std::io::ErrorKind::TimedOut, message)))
}

fn key_used_meanwhile() -> StoreError {
    StoreError::Conflict("the idempotency key was used meanwhile".into())
}

/// Writes, in one statement and so one commit, each payment of `group` whose idempotency key
/// is not stored yet: its row, its ONLINE collection and its audit row. Answers the rows
/// written by their index in `group`.
///
/// The payments go in first, `ON CONFLICT DO NOTHING` on their key: a key already stored, or
/// twice in the group, leaves its payment out (the first sent is kept), and a key another
/// transaction is writing is waited for (left out if that one commits). They go in in key
/// order, so that two groups holding two same keys wait one for the other, not each for the
/// other (a deadlock, which fails one group). Only then are the collections and audit rows
/// of the payments written inserted. Each payment's collection id is drawn from the
/// collections' sequence beforehand, so that the payment can name it (the foreign key is
/// checked at the statement's end); its trace number is drawn from the payments' own trace
/// sequence, as [`trace_number`](super::sql_payment::trace_number) makes it on SQLite. A
/// lookup of the stored keys was tried instead: its plan, cached while the table was small,
/// read the whole table for each group.
async fn write_group(shelf: &Shelf, group: &[Pending]) -> StoreResult<HashMap<usize, PaymentRow>> {
    // Built once: the text is the key of each connection's prepared statement.
    static STATEMENT: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| format!(
        "WITH input AS MATERIALIZED ( \
             SELECT i.*, nextval('collections_collection_id_seq') AS collection_id, \
                    nextval('payment_trace_sequence') AS trace_sequence FROM unnest($1::bigint[], $2::bigint[], \
             $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], \
             $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::text[], $18::text[]) WITH ORDINALITY \
             AS i (payer_id, account_id, case_number, obligor_id, amount_cents, channel, accepted_on, accepted_at, \
             idempotency_key, request_sha256, at, request_id, actor, key_id, role, action, object, outcome, n)), \
         payment AS ( \
             INSERT INTO payments (payer_id, account_id, case_number, obligor_id, amount_cents, channel, accepted_on, \
             accepted_at, idempotency_key, request_sha256, collection_id, trace_number) \
             SELECT payer_id, account_id, case_number, obligor_id, amount_cents, channel, accepted_on, accepted_at, \
             idempotency_key, request_sha256, collection_id, '{TRACE_PREFIX}' || lpad((trace_sequence % {TRACE_CYCLE})::text, 7, '0') \
             FROM input ORDER BY payer_id, idempotency_key, n ON CONFLICT (payer_id, idempotency_key) DO NOTHING \
             RETURNING {PAYMENT_COLUMNS}), \
         written AS MATERIALIZED (SELECT i.* FROM input i JOIN payment p ON p.collection_id = i.collection_id), \
         collection AS ( \
             INSERT INTO collections (collection_id, obligor_id, case_number, source, amount_cents, effective_date, received_at) \
             SELECT collection_id, obligor_id, case_number, 'ONLINE', amount_cents, accepted_on, accepted_at FROM written ORDER BY n), \
         audit AS ( \
             INSERT INTO audit_log (at, request_id, actor, key_id, role, action, object, outcome) \
             SELECT at, request_id, actor, key_id, role, action, object, outcome FROM written ORDER BY n) \
         SELECT i.n, p.* FROM payment p JOIN input i ON i.collection_id = p.collection_id"
    ));
    let new = |field: fn(&NewPayment) -> &str| group.iter().map(|pending| field(&pending.new)).collect::<Vec<&str>>();
    let audit = |field: fn(&AuditEntry) -> &str| group.iter().map(|pending| field(&pending.audit)).collect::<Vec<&str>>();
    let mut connection = shelf.lend().await?;
    let rows: Result<Vec<(i64, i64, i64, String, String, i64, String, String, String, i64, String, Option<String>)>, sqlx::Error> =
        sqlx::query_as(&STATEMENT)
            .bind(group.iter().map(|pending| pending.new.payer_id).collect::<Vec<i64>>())
            .bind(group.iter().map(|pending| pending.new.account_id).collect::<Vec<i64>>())
            .bind(new(|new| new.case_number.as_str()))
            .bind(new(|new| new.obligor_id.as_str()))
            .bind(group.iter().map(|pending| pending.new.amount.cents()).collect::<Vec<i64>>())
            .bind(new(|new| new.channel))
            .bind(group.iter().map(|pending| pending.new.accepted_on.to_string()).collect::<Vec<String>>())
            .bind(new(|new| &new.accepted_at))
            .bind(new(|new| &new.idempotency_key))
            .bind(new(|new| &new.request_sha256))
            .bind(audit(|audit| &audit.at))
            .bind(audit(|audit| &audit.request_id))
            .bind(audit(|audit| &audit.actor))
            .bind(group.iter().map(|pending| pending.audit.key_id.as_deref()).collect::<Vec<Option<&str>>>())
            .bind(audit(|audit| &audit.role))
            .bind(audit(|audit| &audit.action))
            .bind(audit(|audit| &audit.object))
            .bind(audit(|audit| &audit.outcome))
            .fetch_all(&mut *connection)
            .await;
    let rows = rows?;
    connection.keep();
    Ok(rows
        .into_iter()
        .map(|(n, id, payer, case, obligor, cents, channel, on, sha, collection, trace, returned)| {
            let index = usize::try_from(n - 1).expect("ordinality counts from 1");
            (index, (id, payer, case, obligor, cents, channel, on, sha, collection, trace, returned))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::storage::payment_groups::fixture::{audit, payment, FIXTURE};
    use crate::storage::postgres::PostgresStore;

    use crate::storage::postgres::test_server_url as admin_url;

    /// A store on a schema of its own on the tests' PostgreSQL server (as `tests/common`),
    /// holding one payer with a usable account.
    async fn store_with_payer() -> PostgresStore {
        let store = crate::storage::postgres::test_store().await;
        sqlx::raw_sql(FIXTURE).execute(store.writer()).await.unwrap();
        store
    }

    /// A shelf of `store`'s pool, as the store's own committer has.
    fn shelf_of(store: &PostgresStore) -> Shelf {
        Shelf::new(store.writer().clone(), GROUPS_IN_FLIGHT, crate::storage::postgres_shelf::MovedAt::default())
    }

    /// Commits `keys_and_cents` as one group; each payment's amount, or its error.
    async fn commit_as_one_group(store: &PostgresStore, keys_and_cents: &[(&str, i64)]) -> Vec<StoreResult<PaymentRecord>> {
        let mut group = Vec::new();
        let mut answers = Vec::new();
        for (key, cents) in keys_and_cents {
            let (answer, answered) = tokio::sync::oneshot::channel();
            group.push(Pending { new: payment(key, *cents), audit: audit(), answer });
            answers.push(answered);
        }
        commit_group(&shelf_of(&store), group).await;
        let mut outcomes = Vec::new();
        for answered in answers {
            outcomes.push(answered.await.expect("every payment of a group is answered"));
        }
        outcomes
    }

    fn amounts(outcomes: &[StoreResult<PaymentRecord>]) -> Vec<Option<i64>> {
        outcomes.iter().map(|outcome| outcome.as_ref().ok().map(|payment| payment.amount.cents())).collect()
    }

    /// Payments, the sum of the collections, SubmitPayment audit rows, distinct collections paid.
    async fn written(store: &PostgresStore) -> (i64, i64, i64, i64) {
        sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM payments), (SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM collections), \
             (SELECT COUNT(*) FROM audit_log WHERE action = 'SubmitPayment'), (SELECT COUNT(DISTINCT collection_id) FROM payments)",
        )
        .fetch_one(store.writer())
        .await
        .unwrap()
    }

    /// One statement writes the group; a key the group holds twice is written once, and the
    /// repeat is answered `Conflict`. Each payment has its own collection and audit row.
    #[tokio::test]
    async fn a_key_repeated_in_a_group_is_written_once() {
        let store = store_with_payer().await;
        let outcomes = commit_as_one_group(&store, &[("a", 100), ("b", 200), ("a", 300), ("c", 400)]).await;
        assert_eq!(amounts(&outcomes), [Some(100), Some(200), None, Some(400)]);
        assert!(matches!(outcomes[2], Err(StoreError::Conflict(_))), "{:?}", outcomes[2]);
        assert_eq!(written(&store).await, (3, 700, 3, 3));
        let traces: Vec<String> = sqlx::query_scalar("SELECT trace_number FROM payments ORDER BY payment_id").fetch_all(store.writer()).await.unwrap();
        let next: i64 = sqlx::query_scalar("SELECT last_value FROM payment_trace_sequence").fetch_one(store.writer()).await.unwrap();
        // The repeated key drew a number too, which no payment carries.
        let expected: Vec<String> = [next - 3, next - 2, next].into_iter().map(crate::storage::sql_payment::trace_number).collect();
        assert_eq!(traces, expected, "each payment's trace number is drawn in the group's order from the payments' sequence");
    }

    /// A payment whose key is stored is left out of the group's statement and answered
    /// `Conflict` (its caller replays the first); the rest of the group commits at once.
    #[tokio::test]
    async fn a_stored_key_is_left_out_and_the_rest_of_the_group_commits() {
        let store = store_with_payer().await;
        assert_eq!(amounts(&commit_as_one_group(&store, &[("a", 100)]).await), [Some(100)]);
        let outcomes = commit_as_one_group(&store, &[("b", 200), ("a", 300), ("c", 400)]).await;
        assert_eq!(amounts(&outcomes), [Some(200), None, Some(400)]);
        assert!(matches!(outcomes[1], Err(StoreError::Conflict(_))), "{:?}", outcomes[1]);
        assert_eq!(written(&store).await, (3, 700, 3, 3));
        // Answered in the group's order, each with its own row.
        let keys: Vec<String> = sqlx::query_scalar("SELECT idempotency_key FROM payments ORDER BY payment_id").fetch_all(store.writer()).await.unwrap();
        assert_eq!(keys, ["a", "b", "c"]);
        assert!(outcomes[0].as_ref().unwrap().payment_id < outcomes[2].as_ref().unwrap().payment_id);
    }

    /// A key another transaction is writing (another replica, or another group of this one):
    /// the group's statement waits for it, and once it commits, that payment is left out and
    /// answered `Conflict`; the others commit.
    #[tokio::test]
    async fn a_key_committed_meanwhile_elsewhere_is_answered_conflict_and_the_others_commit() {
        let store = store_with_payer().await;
        let watcher = sqlx::PgPool::connect(&admin_url()).await.unwrap();
        let mut elsewhere = store.writer().begin().await.unwrap();
        sqlx::raw_sql(
            "WITH c AS (INSERT INTO collections (obligor_id, case_number, source, amount_cents, effective_date, received_at) \
                 VALUES ('OB-1', '12345678', 'ONLINE', 900, '2026-12-03', 't') RETURNING collection_id) \
             INSERT INTO payments (payer_id, account_id, case_number, obligor_id, amount_cents, channel, accepted_on, accepted_at, \
                 idempotency_key, request_sha256, collection_id, trace_number) \
             SELECT 1, 1, '12345678', 'OB-1', 900, 'WEB', '2026-12-03', 't', 'x', 'sha', collection_id, 'elsewhere' FROM c",
        )
        .execute(&mut *elsewhere)
        .await
        .unwrap();
        let group = tokio::spawn(async move {
            let outcomes = commit_as_one_group(&store, &[("x", 100), ("y", 200)]).await;
            (store, outcomes)
        });
        // The group's statement waits for the other transaction's key: a backend that the
        // other one blocks. Each poll is a statement of its own, on a connection outside that
        // transaction, so that it sees the server's activity as it is now.
        let elsewhere_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut *elsewhere).await.unwrap();
        let mut waits = 0;
        while waits < 500 {
            let blocked: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid))")
                .bind(elsewhere_pid)
                .fetch_one(&watcher)
                .await
                .unwrap();
            if blocked > 0 {
                break;
            }
            waits += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(waits < 500, "the group never waited for the other transaction's key");
        elsewhere.commit().await.unwrap();
        let (store, outcomes) = group.await.unwrap();
        assert_eq!(amounts(&outcomes), [None, Some(200)]);
        assert!(matches!(outcomes[0], Err(StoreError::Conflict(_))), "{:?}", outcomes[0]);
        assert_eq!(written(&store).await, (2, 1100, 1, 2), "the other's payment and y's; y's audit row alone");
    }

    /// A statement the database refuses (here a payment naming a bank account that does not
    /// exist) fails its whole group: nothing of it is written and no payment of it is
    /// acknowledged; each caller is told, and retries.
    #[tokio::test]
    async fn a_refused_statement_writes_nothing_of_its_group() {
        let store = store_with_payer().await;
        let mut answers = Vec::new();
        let mut group = Vec::new();
        for (key, account_id) in [("good", 1), ("no-such-account", 999)] {
            let (answer, answered) = tokio::sync::oneshot::channel();
            group.push(Pending { new: NewPayment { account_id, ..payment(key, 100) }, audit: audit(), answer });
            answers.push(answered);
        }
        commit_group(&shelf_of(&store), group).await;
        for answered in answers {
            let error = answered.await.unwrap().unwrap_err();
            assert!(error.to_string().contains("foreign key"), "{error}");
        }
        assert_eq!(written(&store).await, (0, 0, 0, 0));
    }

    /// A caller that went away while its payment waited was told nothing: its payment is not
    /// written (its retry pays once); the others of its group are.
    #[tokio::test]
    async fn a_payment_whose_caller_went_away_while_it_waited_is_not_written() {
        let store = store_with_payer().await;
        let (gone, _) = tokio::sync::oneshot::channel();
        let (stays, answered) = tokio::sync::oneshot::channel();
        let group = vec![
            Pending { new: payment("gone", 100), audit: audit(), answer: gone },
            Pending { new: payment("stays", 200), audit: audit(), answer: stays },
        ];
        commit_group(&shelf_of(&store), group).await;
        assert_eq!(answered.await.unwrap().unwrap().amount.cents(), 200);
        let keys: Vec<String> = sqlx::query_scalar("SELECT idempotency_key FROM payments").fetch_all(store.writer()).await.unwrap();
        assert_eq!(keys, ["stays"]);
    }

    /// Through the store's queue: payments sent at once are each answered with their own row.
    #[tokio::test]
    async fn payments_queued_at_once_are_each_answered_with_their_own_row() {
        let store = store_with_payer().await;
        let mut answers = Vec::new();
        for serial in 0..40 {
            answers.push(store.payments.queue_for_test(payment(&format!("k{serial}"), 100 + serial), audit()).await);
        }
        for (serial, answered) in answers.into_iter().enumerate() {
            let record = answered.await.unwrap().unwrap();
            assert_eq!(record.amount.cents(), 100 + serial as i64);
            assert_eq!(record.request_sha256, format!("sha-k{serial}-{}", 100 + serial));
        }
        assert_eq!(written(&store).await, (40, (100..140).sum::<i64>(), 40, 40));
    }
}
