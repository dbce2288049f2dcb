//! `VerifyLedger` / `gateway verify`: a ledger that went through every kind of money movement
//! verifies clean on both databases, and a row changed behind the gateway's back (its
//! immutability trigger disabled) is found and named.

mod common;

use common::{distribute, Backend, TestApp, TestClock, SPEC_REGISTRY};
use gateway::grpc::proto;
use proto::ledger_service_client::LedgerServiceClient;
use proto::payment_service_client::PaymentServiceClient;
use proto::registry_service_client::RegistryServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;
use proto::suspense_service_client::SuspenseServiceClient;

async fn verify(app: &TestApp) -> proto::VerifyLedgerResponse {
    LedgerServiceClient::new(app.channel.clone()).verify_ledger(proto::VerifyLedgerRequest {}).await.unwrap().into_inner()
}

fn breaches(response: &proto::VerifyLedgerResponse) -> Vec<String> {
    response.checks.iter().flat_map(|c| c.breaches.iter().map(move |b| format!("{}: {b}", c.name))).collect()
}

/// A CSV payroll file sent by the vendor, and its acknowledgment.
async fn submit_payroll(app: &TestApp, batch_id: &str, csv: &str) -> proto::RemittanceAcknowledgment {
    let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: batch_id.into(), ..Default::default() };
    let upload = gateway::grpc::client::remittance_upload(header, csv.as_bytes(), 1 << 16);
    let vendor = app.vendor("acme-payroll").await;
    RemittanceServiceClient::new(vendor).submit_remittance(futures::stream::iter(upload)).await.unwrap().into_inner().acknowledgment.unwrap()
}

/// A ledger with payroll (applied, suspense resolved, rejected), a payment returned after its
/// distribution, an end after the money and its correction, and credit refunded.
async fn busy_ledger(backend: Backend) -> (TestApp, std::sync::Arc<TestClock>) {
    let clock = TestClock::new("2026-12-20");
    let app = TestApp::spawn_with_clock(backend, clock.clone()).await;
    app.import_spec_registry().await;
    let payroll = "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n\
                   43-1234567,12345678,123-45-6789,Smith,2026-11-13,700.00\n\
                   43-1234567,,234-56-7890,Nobody,2026-11-13,90.00\n\
                   43-1234567,22345678,223-45-6789,Doe,2026-11-13,-5.00\n\
                   43-1234567,22345678,223-45-6789,Doe,2026-11-13,400.00\n\
                   43-1234567,22345678,223-45-6789,Doe,2026-12-13,150.00\n";
    let ack = submit_payroll(&app, "V-1", payroll).await;
    assert_eq!((ack.applied, ack.suspense, ack.rejected), (3, 1, 1), "{ack:?}");
    let mut suspense = SuspenseServiceClient::new(app.channel.clone());
    let items = suspense.list_suspense_items(proto::ListSuspenseItemsRequest::default()).await.unwrap().into_inner().suspense_items;
    use proto::resolve_suspense_item_request::Target;
    let request = proto::ResolveSuspenseItemRequest { suspense_id: items[0].suspense_id, target: Some(Target::CaseNumber("12345679".into())) };
    suspense.resolve_suspense_item(request).await.unwrap();

    let payer_id = app.confirmed_payer().await;
    let mut payments = PaymentServiceClient::new(app.payment_site.clone());
    let payment = proto::SubmitPaymentRequest {
        payer_id,
        case_number: "12345678".into(),
        amount: "250.00".into(),
        channel: proto::PaymentChannel::Web as i32,
        idempotency_key: "k".into(),
    };
    let receipt = payments.submit_payment(payment).await.unwrap().into_inner().receipt.unwrap();
    distribute(&app.channel).await;
    PaymentServiceClient::new(app.channel.clone())
        .record_return(proto::RecordReturnRequest { payment_id: receipt.payment_id, return_code: "R01".into() })
        .await
        .unwrap();
    // C (150.00 a month from November) is paid for December too; it ends in November.
    let end = proto::RecordOrderEndRequest { order_id: "C".into(), reason: proto::EndReason::Military as i32, end_date: "2026-11-30".into() };
    let ended = proto::order_service_client::OrderServiceClient::new(app.channel.clone()).record_order_end(end).await.unwrap().into_inner();
    assert_eq!(ended.end.unwrap().corrected, "150.00");
    distribute(&app.channel).await;
    let refund = proto::RefundCreditRequest { obligor_id: "OB-2".into(), amount: "10.00".into(), reference: "CHK-1".into() };
    proto::credit_service_client::CreditServiceClient::new(app.channel.clone()).refund_credit(refund).await.unwrap();
    (app, clock)
}

async fn tamper(app: &TestApp, statements: &[&str]) {
    for statement in statements {
        app.db.execute_by_hand(statement).await;
    }
}

async fn a_busy_ledger_verifies_clean_and_a_changed_row_is_found(backend: Backend) {
    let (app, clock) = busy_ledger(backend).await;
    let first = verify(&app).await;
    assert!(first.ok, "{:?}", breaches(&first));
    let pools = first.checks.iter().find(|c| c.name == "pools_conserved").unwrap();
    assert!(pools.checked >= 3, "{pools:?}");
    assert_eq!(first.checks.len(), 14);
    // Verified again, the sealed rows are checked against their seal.
    let second = verify(&app).await;
    assert!(second.ok, "{:?}", breaches(&second));

    // Someone changes an allocation behind the gateway's back, in a way no sum shows: only
    // the seal finds it.
    let disable = match backend {
        Backend::Sqlite => "DROP TRIGGER allocations_no_update",
        Backend::Postgres => "ALTER TABLE allocations DISABLE TRIGGER allocations_no_update_or_delete",
    };
    tamper(&app, &[disable, "UPDATE allocations SET effective_date = '2026-01-01' WHERE allocation_id = 1"]).await;
    let found = verify(&app).await;
    assert!(!found.ok);
    let named = breaches(&found);
    assert_eq!(named.len(), 1, "{named:?}");
    assert!(named[0].starts_with("allocations_unchanged: allocations rows 1 to"), "{named:?}");
    // The breach stays visible: a changed table is not sealed again.
    assert!(!verify(&app).await.ok);

    // Audit rows are sealed once older than any call can last: the next day, all of today's.
    clock.set("2026-12-21");
    assert_eq!(breaches(&verify(&app).await).len(), 1, "still only the allocation");
    let audit = found.checks.iter().find(|c| c.name == "audit_unchanged").unwrap();
    assert!(audit.breach_count == 0);
    let disable = match backend {
        Backend::Sqlite => "DROP TRIGGER audit_log_no_delete",
        Backend::Postgres => "ALTER TABLE audit_log DISABLE TRIGGER USER",
    };
    tamper(&app, &[disable, "DELETE FROM audit_log WHERE audit_id = 2"]).await;
    let named = breaches(&verify(&app).await);
    assert!(named.iter().any(|b| b.starts_with("audit_unchanged: audit_log rows 1 to")), "{named:?}");
    app.stop().await;
}

/// Distribution plans from `order_balances`, kept by a trigger: a balance that no longer
/// matches its allocations (or one with none behind it) is named.
async fn an_order_balance_that_does_not_match_its_allocations_is_found(backend: Backend) {
    let (app, _clock) = busy_ledger(backend).await;
    let clean = verify(&app).await;
    assert!(clean.ok, "{:?}", breaches(&clean));
    let balances = clean.checks.iter().find(|c| c.name == "order_balances_match").unwrap();
    assert!(balances.checked >= 3, "{balances:?}");

    tamper(
        &app,
        &[
            "UPDATE order_balances SET paid_cents = paid_cents + 1 WHERE order_id = 'A' AND bucket = 'CURRENT' AND month = '2026-11'",
            "INSERT INTO order_balances (order_id, bucket, month, paid_cents) VALUES ('A', 'CURRENT', '2020-01', 500)",
        ],
    )
    .await;
    let found = verify(&app).await;
    let named = breaches(&found);
    assert_eq!(
        named,
        ["order_balances_match: order A CURRENT 2020-01", "order_balances_match: order A CURRENT 2026-11"],
        "{named:?}"
    );
    app.stop().await;
}

/// A pending collection lives in the queue a run reads (migration 0018): one taken out of it
/// without a claim has lost its money, and is named, though no sum of pools shows it; one
/// queued in a second segment as well (migrations 0020) would be distributed twice, and is
/// named too.
async fn a_collection_taken_out_of_the_queue_without_a_claim_is_found(backend: Backend) {
    let (app, _clock) = busy_ledger(backend).await;
    let payroll = "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n\
                   43-1234567,12345678,123-45-6789,Smith,2026-12-18,10.00\n";
    let ack = submit_payroll(&app, "V-2", payroll).await;
    assert_eq!(ack.applied, 1, "{ack:?}");
    let clean = verify(&app).await;
    assert!(clean.ok, "a pending collection in its queue is whole: {:?}", breaches(&clean));

    tamper(
        &app,
        &["INSERT INTO pending_collections (segment, obligor_id, collection_id, amount_cents, effective_date) \
           SELECT 999999999, obligor_id, collection_id, amount_cents, effective_date FROM pending_collections WHERE amount_cents = 1000"],
    )
    .await;
    let twice = verify(&app).await;
    let named = breaches(&twice);
    assert!(!twice.ok);
    assert_eq!(named.len(), 1, "{named:?}");
    assert!(named[0].starts_with("claims_and_queue_are_of_collections: collection queued twice "), "{named:?}");
    tamper(&app, &["DELETE FROM pending_collections WHERE segment = 999999999"]).await;

    tamper(&app, &["DELETE FROM pending_collections WHERE amount_cents = 1000"]).await;
    let found = verify(&app).await;
    assert!(!found.ok);
    let named = breaches(&found);
    assert_eq!(named.len(), 1, "{named:?}");
    assert!(named[0].starts_with("collections_conserved: collection "), "{named:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_collection_taken_out_of_the_queue_without_a_claim_is_found_on_sqlite() {
    a_collection_taken_out_of_the_queue_without_a_claim_is_found(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_collection_taken_out_of_the_queue_without_a_claim_is_found_on_postgres() {
    a_collection_taken_out_of_the_queue_without_a_claim_is_found(Backend::Postgres).await;
}

/// Runs `statements` with the database's foreign keys not enforced, as someone editing the
/// database by hand might.
async fn tamper_without_foreign_keys(app: &TestApp, backend: Backend, statements: &[&str]) {
    use sqlx::Connection;
    match backend {
        Backend::Sqlite => {
            let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&app.db.url).unwrap().foreign_keys(false);
            let mut connection = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
            for statement in statements {
                sqlx::query(statement).execute(&mut connection).await.unwrap();
            }
        }
        Backend::Postgres => {
            let mut connection = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
            sqlx::query("SET session_replication_role = replica").execute(&mut connection).await.unwrap();
            for statement in statements {
                sqlx::query(statement).execute(&mut connection).await.unwrap();
            }
        }
    }
}

/// On SQLite the file writer checks a file's references to the registry in bulk, not SQLite
/// row by row (`storage/sqlite_references.rs`); `verify` checks every stored reference again:
/// a collection or a line naming what the registry does not hold is named.
async fn a_row_naming_what_the_registry_does_not_hold_is_found(backend: Backend) {
    let (app, _clock) = busy_ledger(backend).await;
    let payroll = "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n\
                   43-1234567,12345678,123-45-6789,Smith,2026-12-18,10.00\n";
    assert_eq!(submit_payroll(&app, "V-2", payroll).await.applied, 1);
    let clean = verify(&app).await;
    assert!(clean.ok, "{:?}", breaches(&clean));
    let references = clean.checks.iter().find(|c| c.name == "references_in_the_registry").unwrap();
    assert!(references.checked >= 4, "{references:?}");

    tamper_without_foreign_keys(
        &app,
        backend,
        &[
            "UPDATE remittance_lines SET obligor_id = 'OB-GONE' \
             WHERE obligor_id IS NOT NULL AND remittance_id = (SELECT MAX(remittance_id) FROM remittances)",
            "UPDATE collections SET case_number = '99999999' \
             WHERE collection_id = (SELECT MAX(collection_id) FROM collections WHERE remittance_id IS NOT NULL)",
        ],
    )
    .await;
    let found = verify(&app).await;
    assert!(!found.ok);
    let mut named = breaches(&found);
    named.sort();
    assert_eq!(named.len(), 2, "{named:?}");
    assert!(named[0].starts_with("references_in_the_registry: collection "), "{named:?}");
    assert!(named[1].starts_with("references_in_the_registry: file "), "{named:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_row_naming_what_the_registry_does_not_hold_is_found_on_sqlite() {
    a_row_naming_what_the_registry_does_not_hold_is_found(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_row_naming_what_the_registry_does_not_hold_is_found_on_postgres() {
    a_row_naming_what_the_registry_does_not_hold_is_found(Backend::Postgres).await;
}

/// On SQLite a distribution chunk checks its rows' references itself, against what it loaded,
/// not SQLite row by row (`storage/sqlite_distribution.rs`); `verify` checks every stored one
/// again: a pool moved to an obligor the registry does not hold, and a balance of an order it
/// does not hold, are named, and so is each row that the pool's move left naming a pool of
/// another obligor.
async fn a_distribution_row_naming_what_is_not_there_is_found(backend: Backend) {
    let (app, _clock) = busy_ledger(backend).await;
    let clean = verify(&app).await;
    assert!(clean.ok, "{:?}", breaches(&clean));
    let references = clean.checks.iter().find(|c| c.name == "distribution_references").unwrap();
    assert!(references.checked >= 4, "{references:?}");

    tamper_without_foreign_keys(
        &app,
        backend,
        &[
            "UPDATE pools SET obligor_id = 'OB-GONE' WHERE pool_id = (SELECT MIN(pool_id) FROM pools)",
            "INSERT INTO order_balances (order_id, bucket, month, paid_cents) VALUES ('ORDER-GONE', 'CURRENT', '2026-11', 0)",
        ],
    )
    .await;
    let found = verify(&app).await;
    assert!(!found.ok);
    let named = breaches(&found);
    let of_references: Vec<&String> = named.iter().filter(|n| n.starts_with("distribution_references: ")).collect();
    assert_eq!(of_references.len(), named.len(), "only references are broken: {named:?}");
    for expected in ["pool ", "allocation ", "claimed collection ", "balance of order ORDER-GONE"] {
        assert!(
            of_references.iter().any(|n| n.starts_with(&format!("distribution_references: {expected}"))),
            "{expected} is named: {named:?}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_distribution_row_naming_what_is_not_there_is_found_on_sqlite() {
    a_distribution_row_naming_what_is_not_there_is_found(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_distribution_row_naming_what_is_not_there_is_found_on_postgres() {
    a_distribution_row_naming_what_is_not_there_is_found(Backend::Postgres).await;
}

#[tokio::test]
async fn an_order_balance_that_does_not_match_its_allocations_is_found_on_sqlite() {
    an_order_balance_that_does_not_match_its_allocations_is_found(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_order_balance_that_does_not_match_its_allocations_is_found_on_postgres() {
    an_order_balance_that_does_not_match_its_allocations_is_found(Backend::Postgres).await;
}

#[tokio::test]
async fn a_busy_ledger_verifies_clean_and_a_changed_row_is_found_on_sqlite() {
    a_busy_ledger_verifies_clean_and_a_changed_row_is_found(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_busy_ledger_verifies_clean_and_a_changed_row_is_found_on_postgres() {
    a_busy_ledger_verifies_clean_and_a_changed_row_is_found(Backend::Postgres).await;
}

#[tokio::test]
async fn months_paid_before_the_monthly_amount_was_lowered_stay_whole() {
    let app = TestApp::spawn_with_clock(Backend::Sqlite, TestClock::new("2026-11-20")).await;
    let import = |registry: String| {
        let channel = app.channel.clone();
        async move {
            let chunks = gateway::grpc::client::registry_upload(registry.as_bytes(), 1 << 16);
            assert!(RegistryServiceClient::new(channel).import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner().applied);
        }
    };
    import(SPEC_REGISTRY.to_owned()).await;
    let money = proto::AddCollectionRequest { case_number: "12345678".into(), amount: "500.00".into(), effective_date: "2026-11-13".into() };
    proto::collection_service_client::CollectionServiceClient::new(app.channel.clone()).add_collection(money).await.unwrap();
    distribute(&app.channel).await;
    // The court lowers A from 300.00 to 250.00: November stays paid 300.00.
    import(SPEC_REGISTRY.replace("A,300.00", "A,250.00")).await;
    let report = verify(&app).await;
    assert!(report.ok, "{:?}", breaches(&report));
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}
