//! Upgrading a database that holds money: the SQLite migrations that rebuild
//! `distribution_runs` and `allocations` (0010), `collections` (0018) and `payments` (0019),
//! and the PostgreSQL ones that move a collection's fate into the queue and the claims (0015)
//! and number trace numbers from the payments' own sequence (0018), keep every row, id, link
//! and guard, and the gateway carries on from where it was.

mod common;

use std::str::FromStr;

use chrono::NaiveDate;
use gateway::domain::distribution::plan_obligors;
use gateway::domain::{CaseNumber, CollectionSource, Money, ObligorId};
use gateway::storage::payment::NewPayment;
use gateway::storage::{AuditEntry, NewCollection, PostgresStore, SqliteStore, Store};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

/// Money as an earlier version wrote it (migrations 0001 to 0009), the same SQL on both
/// databases: two runs (a distribution and a reversal), a pool of two collections and its
/// allocations, one of them reversed, and a collection still pending.
const BEFORE_0010: &str = "
    INSERT INTO obligors (obligor_id, ssn_hmac, ssn_last4, last_name, first_name) VALUES ('OB-1', 'hmac', '6789', 'Smith', 'John');
    INSERT INTO cases (case_number, obligor_id) VALUES ('12345678', 'OB-1');
    INSERT INTO orders (order_id, case_number, obligor_id, monthly_amount_cents, start_month, opening_arrears_cents, end_date)
        VALUES ('A', '12345678', 'OB-1', 30000, '2026-09', 5000, '2026-12-31');
    INSERT INTO distribution_runs (started_at, collections, pools, total_cents, unapplied_cents) VALUES ('2026-10-01T00:00:00Z', 2, 1, 40000, 5000);
    INSERT INTO pools (run_id, obligor_id, effective_date, amount_cents) VALUES (1, 'OB-1', '2026-09-15', 40000);
    INSERT INTO collections (obligor_id, case_number, source, amount_cents, effective_date, status, pool_id, received_at)
        VALUES ('OB-1', '12345678', 'MANUAL', 30000, '2026-09-15', 'DISTRIBUTED', 1, 't'),
               ('OB-1', '12345678', 'ONLINE', 10000, '2026-09-15', 'REVERSED', 1, 't'),
               ('OB-1', '12345678', 'ONLINE', 2500, '2026-10-01', 'PENDING', NULL, 't');
    INSERT INTO allocations (run_id, pool_id, obligor_id, order_id, bucket, month, effective_date, amount_cents)
        VALUES (1, 1, 'OB-1', 'A', 'CURRENT', '2026-09', '2026-09-15', 30000),
               (1, 1, 'OB-1', 'A', 'ARREARS', NULL, '2026-09-15', 5000),
               (1, 1, 'OB-1', NULL, 'UNAPPLIED', NULL, '2026-09-15', 5000);
    INSERT INTO distribution_runs (started_at, collections, pools, total_cents, unapplied_cents, kind) VALUES ('2026-10-02T00:00:00Z', 1, 0, -10000, -1250, 'REVERSAL');
    INSERT INTO allocations (run_id, pool_id, obligor_id, order_id, bucket, month, effective_date, amount_cents, reversal_of)
        VALUES (2, 1, 'OB-1', 'A', 'CURRENT', '2026-09', '2026-09-15', -7500, 2),
               (2, 1, 'OB-1', 'A', 'ARREARS', NULL, '2026-09-15', -1250, 2),
               (2, 1, 'OB-1', NULL, 'UNAPPLIED', NULL, '2026-09-15', -1250, 2);
    INSERT INTO payers (name, address, ssn_hmac, ssn_last4, telephone, email, case_number, created_at)
        VALUES ('John Smith', '1 Main St', 'hmac', '6789', '5735550100', 'john@example.com', '12345678', 't');
    INSERT INTO bank_accounts (payer_id, routing_number, account_cipher, account_last4, account_type, added_on, active)
        VALUES (1, '091000019', 'sealed', '6789', 'CHECKING', '2026-09-01', TRUE);
    INSERT INTO payments (payer_id, account_id, case_number, obligor_id, amount_cents, channel, accepted_on, accepted_at,
                          idempotency_key, request_sha256, collection_id, trace_number, return_code, returned_at)
        VALUES (1, 1, '12345678', 'OB-1', 10000, 'WEB', '2026-09-15', 't', 'k1', 'h', 2, '091000010000002', 'R01', 't'),
               (1, 1, '12345678', 'OB-1', 2500, 'WEB', '2026-10-01', 't', 'k2', 'h', 3, '091000010000003', NULL, NULL);
";

type AllocationRow = (i64, i64, i64, Option<String>, String, Option<String>, i64, Option<i64>);

async fn allocation_rows(pool: &sqlx::SqlitePool) -> Vec<AllocationRow> {
    sqlx::query_as(
        "SELECT allocation_id, run_id, pool_id, order_id, bucket, month, amount_cents, reversal_of FROM allocations ORDER BY allocation_id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// A directory holding the migrations of `backend` (`sqlite` or `postgres`) as an earlier
/// version shipped them: 0001 to 0009.
fn migrations_before_0010(backend: &str) -> tempfile::TempDir {
    let earlier = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(format!("migrations/{backend}")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        if name.as_str() < "0010" {
            std::fs::copy(&path, earlier.path().join(&name)).unwrap();
        }
    }
    earlier
}

/// What became of each collection (SQLite 0018, PostgreSQL 0015), read on either database:
/// the pool's two claimed, one of them reversed, and the pending one queued with its amount
/// and date; every id kept, and the claims append-only.
macro_rules! assert_collections_kept {
    ($pool:expr) => {{
        let pool = $pool;
        let collections: Vec<(i64, i64, bool)> =
            sqlx::query_as("SELECT collection_id, amount_cents, reversed FROM collections ORDER BY collection_id").fetch_all(pool).await.unwrap();
        assert_eq!(collections, [(1, 30000, false), (2, 10000, true), (3, 2500, false)]);
        let claims: Vec<(String, i64, i64, i64)> =
            sqlx::query_as("SELECT obligor_id, collection_id, pool_id, amount_cents FROM collection_claims ORDER BY collection_id")
                .fetch_all(pool)
                .await
                .unwrap();
        assert_eq!(claims, [("OB-1".into(), 1, 1, 30000), ("OB-1".into(), 2, 1, 10000)]);
        let queued: Vec<(String, i64, i64, String)> =
            sqlx::query_as("SELECT obligor_id, collection_id, amount_cents, effective_date FROM pending_collections").fetch_all(pool).await.unwrap();
        assert_eq!(queued, [("OB-1".into(), 3, 2500, "2026-10-01".into())]);
        let reclaimed = sqlx::query("UPDATE collection_claims SET pool_id = 1").execute(pool).await.unwrap_err();
        assert!(reclaimed.to_string().contains("append-only"), "{reclaimed}");
    }};
}

/// The upgraded gateway carries on: a collection received now is queued, and the next run
/// takes it with the one pending before the upgrade; the ledger verifies whole.
async fn carries_on<S: Store + gateway::storage::verify::VerifyStore>(store: &S) -> gateway::storage::RunSummary {
    let audit = AuditEntry {
        at: "2026-10-03T00:00:00Z".into(),
        request_id: "r".into(),
        actor: "tester".into(),
        key_id: None,
        role: "back-office".into(),
        action: "test".into(),
        object: String::new(),
        outcome: "OK".into(),
    };
    let collection = NewCollection {
        obligor_id: ObligorId::parse("OB-1").unwrap(),
        case_number: None,
        source: CollectionSource::Manual,
        amount: Money::from_cents(100_00),
        effective_date: NaiveDate::from_ymd_opt(2026, 10, 15).unwrap(),
        received_at: "2026-10-15T00:00:00Z".into(),
    };
    store.add_collection(collection, &audit).await.unwrap();
    let run = store.distribute("2026-10-16T00:00:00Z", &plan_obligors, &audit).await.unwrap().expect("a run");
    assert_eq!((run.run_id, run.collections), (3, 2), "the collection pending before the upgrade and the one received after");
    assert_eq!(run.total, Money::from_cents(125_00));
    // The payments' trace numbers (SQLite 0019, PostgreSQL 0018): those issued before are
    // kept and still name their payments; the next one follows every collection id issued
    // before the upgrade (there were 3), not the collection of its own.
    let payment = NewPayment {
        payer_id: 1,
        account_id: 1,
        case_number: CaseNumber::parse("12345678").unwrap(),
        obligor_id: ObligorId::parse("OB-1").unwrap(),
        amount: Money::from_cents(5_00),
        channel: "WEB",
        accepted_on: NaiveDate::from_ymd_opt(2026, 10, 16).unwrap(),
        accepted_at: "2026-10-16T00:00:00Z".into(),
        idempotency_key: "k3".into(),
        request_sha256: "h".into(),
    };
    let paid = store.create_payment(payment, &audit).await.unwrap();
    assert_eq!((paid.payment_id, paid.collection_id, paid.trace_number.as_str()), (3, 5, "091000010000004"));
    let returned = store.payment_by_trace("091000010000002").await.unwrap().expect("the payment of an earlier trace number");
    assert_eq!((returned.payment_id, returned.return_code.as_deref()), (1, Some("R01")));
    let report = store.verify_ledger("2026-10-16T00:00:00.000Z").await.unwrap();
    assert!(report.is_clean(), "{:?}", report.checks);
    run
}

#[tokio::test]
async fn a_database_with_money_is_upgraded_whole_and_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let earlier = migrations_before_0010("sqlite");
    let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
    let options = SqliteConnectOptions::from_str(&url).unwrap().create_if_missing(true).foreign_keys(true);
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap();
    sqlx::migrate::Migrator::new(earlier.path()).await.unwrap().run(&pool).await.unwrap();
    sqlx::raw_sql(BEFORE_0010).execute(&pool).await.unwrap();
    let before = allocation_rows(&pool).await;
    pool.close().await;

    // The gateway of today opens it and applies what is new.
    let store = SqliteStore::connect(&url).await.unwrap();
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(SqliteConnectOptions::from_str(&url).unwrap()).await.unwrap();
    assert_eq!(allocation_rows(&pool).await, before, "every allocation, id and link kept");
    let runs: Vec<(i64, String, i64)> =
        sqlx::query_as("SELECT run_id, kind, unapplied_cents FROM distribution_runs ORDER BY run_id").fetch_all(&pool).await.unwrap();
    assert_eq!(runs, [(1, "DISTRIBUTION".to_owned(), 5000), (2, "REVERSAL".to_owned(), -1250)]);
    let (registry_end,): (Option<String>,) = sqlx::query_as("SELECT registry_end_date FROM orders").fetch_one(&pool).await.unwrap();
    assert_eq!(registry_end.as_deref(), Some("2026-12-31"), "the registry's end is kept as such");
    // What each order was paid (0013), summed from the rows already there, reversals included.
    let balances: Vec<(String, String, String, i64)> =
        sqlx::query_as("SELECT order_id, bucket, month, paid_cents FROM order_balances ORDER BY bucket").fetch_all(&pool).await.unwrap();
    assert_eq!(balances, [("A".into(), "ARREARS".into(), String::new(), 3750), ("A".into(), "CURRENT".into(), "2026-09".into(), 22500)]);
    assert_collections_kept!(&pool);
    let broken: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check").fetch_all(&pool).await.unwrap();
    assert!(broken.is_empty(), "{broken:?}");
    let altered = sqlx::query("UPDATE allocations SET amount_cents = 1 WHERE allocation_id = 1").execute(&pool).await.unwrap_err();
    assert!(altered.to_string().contains("immutable"), "{altered}");
    assert!(sqlx::query("DELETE FROM allocations").execute(&pool).await.is_err(), "allocations still cannot be deleted");
    pool.close().await;

    // And carries on: the next run and its rows are numbered after the old ones.
    let run = carries_on(&store).await;
    let written = store.allocations_after(6, 10).await.unwrap();
    assert!(!written.is_empty() && written.iter().all(|a| a.allocation_id > 6 && a.run_id == run.run_id));
    assert_eq!(written.iter().map(|a| a.amount).sum::<Money>(), Money::from_cents(125_00));
}

/// The same ledger on PostgreSQL, upgraded through 0010 to 0018 by the gateway of today.
#[tokio::test]
async fn a_postgresql_ledger_is_upgraded_to_the_queue_and_claims_whole() {
    let db = common::TestDb::new(common::Backend::Postgres).await;
    let earlier = migrations_before_0010("postgres");
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&db.url).await.unwrap();
    sqlx::migrate::Migrator::new(earlier.path()).await.unwrap().run(&pool).await.unwrap();
    sqlx::raw_sql(BEFORE_0010).execute(&pool).await.unwrap();
    pool.close().await;

    // The gateway of today opens it and applies what is new.
    let store = PostgresStore::connect(&db.url).await.unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new().max_connections(1).connect(&db.url).await.unwrap();
    assert_collections_kept!(&pool);
    pool.close().await;

    carries_on(&store).await;
}
