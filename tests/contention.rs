//! The databases under contention (#13, item 6, in part): 25 vendors submitting files and 25
//! payment-site sessions paying, all at once, each call answered on its first try: no
//! "database is locked", no busy answer, nothing shed. On SQLite the writes queue in-process
//! for its one writer instead of failing; on PostgreSQL open files are bounded to half the
//! connection pool.

mod common;

use std::time::{Duration, Instant};

use common::{distribute, Backend, Short, TestApp};
use gateway::grpc::client::remittance_upload;
use gateway::grpc::proto;
use proto::payment_service_client::PaymentServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;

const ROUNDS: usize = 4;

#[tokio::test]
async fn fifty_concurrent_submitters_and_payers_on_sqlite_are_each_answered_first_time() {
    fifty_concurrent_clients(Backend::Sqlite).await;
}

/// On PostgreSQL each open file holds a connection and borrows another for its lookups: more
/// files at once than half the pool must wait for a slot, not starve each other's lookups
/// (which deadlocked until the pool's acquire timeout).
#[tokio::test]
async fn fifty_concurrent_submitters_and_payers_on_postgres_are_each_answered_first_time() {
    fifty_concurrent_clients(Backend::Postgres).await;
}

async fn fifty_concurrent_clients(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.import_spec_registry().await;
    let payer_id = app.confirmed_payer().await;

    let started = Instant::now();
    let mut tasks = Vec::new();
    for vendor in 0..25usize {
        let channel = app.vendor(&format!("vendor-{vendor}")).await;
        tasks.push(tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            for round in 0..ROUNDS {
                let mut file = String::from("employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n");
                for line in 0..20 {
                    let cents = 100 + vendor * 1_000 + round * 100 + line;
                    file.push_str(&format!("43-1234567,12345678,123-45-6789,Smith,2026-11-13,{}.{:02}\n", cents / 100, cents % 100));
                }
                let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: format!("C-{round}"), ..Default::default() };
                let call = Instant::now();
                let messages = remittance_upload(header, file.as_bytes(), 1 << 12);
                let answer = RemittanceServiceClient::new(channel.clone()).submit_remittance(futures::stream::iter(messages)).await;
                slowest = slowest.max(call.elapsed());
                let ack = answer.unwrap_or_else(|status| panic!("vendor {vendor}, file {round}: {status:?}")).into_inner().acknowledgment.unwrap();
                assert_eq!((ack.status().short(), ack.applied), ("ACCEPTED", 20));
            }
            slowest
        }));
    }
    for session in 0..25usize {
        let site = app.payment_site.clone();
        tasks.push(tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            for round in 0..ROUNDS {
                let request = proto::SubmitPaymentRequest {
                    payer_id,
                    case_number: "12345678".into(),
                    amount: "10.00".into(),
                    channel: proto::PaymentChannel::Web as i32,
                    idempotency_key: format!("session-{session}-{round}"),
                };
                let call = Instant::now();
                let answer = PaymentServiceClient::new(site.clone()).submit_payment(request).await;
                slowest = slowest.max(call.elapsed());
                assert!(!answer.unwrap_or_else(|status| panic!("session {session}, payment {round}: {status:?}")).into_inner().receipt.unwrap().replayed);
            }
            slowest
        }));
    }
    let slowest = futures::future::join_all(tasks).await.into_iter().map(Result::unwrap).max().unwrap();
    println!(
        "50 clients at once on {backend:?}: {} files and {} payments, each answered first time, in {:.1} s; slowest call {} ms",
        25 * ROUNDS,
        25 * ROUNDS,
        started.elapsed().as_secs_f64(),
        slowest.as_millis()
    );

    let run = distribute(&app.channel).await;
    let files_total: usize = (0..25).flat_map(|v| (0..ROUNDS).flat_map(move |r| (0..20).map(move |l| 100 + v * 1_000 + r * 100 + l))).sum();
    let expected = gateway::domain::Money::from_cents((files_total + 25 * ROUNDS * 1_000) as i64);
    assert_eq!((run.collections, run.total.clone()), ((25 * ROUNDS * 21) as u64, expected.to_string()), "every line and payment once");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

/// A long file holds SQLite's one writer for as long as it takes to write. Reads need none of
/// it, and their audit rows (durable before each answer leaves) go meanwhile to the audit
/// journal, a file of its own: the back office's reads are answered while the file is still
/// being written, and their audit rows reach the log once it is.
#[tokio::test]
async fn reads_are_answered_while_a_long_file_holds_the_sqlite_writer() {
    use sqlx::Connection;
    let app = TestApp::spawn(Backend::Sqlite).await;
    app.import_spec_registry().await;
    let vendor = app.vendor("acme-payroll").await;
    let mut file = String::from("employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n");
    file.push_str("43-1234567,12345678,123-45-6789,Smith,2026-11-13,1.00\n");
    let small = remittance_upload(proto::RemittanceHeader { batch_id: "SMALL".into(), ..csv_header() }, file.as_bytes(), 1 << 12);
    RemittanceServiceClient::new(vendor.clone()).submit_remittance(futures::stream::iter(small)).await.unwrap();

    // Long enough that a fast machine does not write it before six reads are answered
    // (100,000 lines once did, on a host that writes SQLite files at 130,000 lines a second).
    const LONG_FILE_LINES: usize = 300_000;
    for _ in 1..LONG_FILE_LINES {
        file.push_str("43-1234567,12345678,123-45-6789,Smith,2026-11-13,1.00\n");
    }
    let long = remittance_upload(proto::RemittanceHeader { batch_id: "LONG".into(), ..csv_header() }, file.as_bytes(), 1 << 16);
    let upload = tokio::spawn(async move { RemittanceServiceClient::new(vendor).submit_remittance(futures::stream::iter(long)).await });

    // Wait until the file's transaction holds the database's write lock (the upload is
    // spooled first, then written): a writer of the test's own is refused at once.
    let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(&app.db.url).unwrap().busy_timeout(Duration::ZERO);
    let mut probe = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
    let waiting = Instant::now();
    while sqlx::query("BEGIN IMMEDIATE").execute(&mut probe).await.is_ok() {
        sqlx::query("ROLLBACK").execute(&mut probe).await.unwrap();
        assert!(waiting.elapsed() < Duration::from_secs(120) && !upload.is_finished(), "the long file never took the writer");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let mut office = RemittanceServiceClient::new(app.channel.clone());
    for _ in 0..3 {
        let small = proto::GetRemittanceRequest { batch_id: "SMALL".into(), sender: "acme-payroll".into() };
        assert_eq!(office.get_remittance(small).await.unwrap().into_inner().acknowledgment.unwrap().applied, 1);
        let page = office.list_remittances(proto::ListRemittancesRequest { page_size: 10, ..Default::default() }).await.unwrap();
        assert!(!page.into_inner().remittances.is_empty());
    }
    // Their audit rows wait in the journal, beside the database, for the file to end.
    let journal = sqlx::SqlitePool::connect(&format!("{}.audit", app.db.url)).await.unwrap();
    let journaled: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_journal").fetch_one(&journal).await.unwrap();
    assert!(!upload.is_finished(), "six reads answered while the long file was still being written");
    assert!(journaled >= 6, "the reads' audit rows went through the journal: {journaled}");

    let ack = upload.await.unwrap().unwrap().into_inner().acknowledgment.unwrap();
    assert_eq!((ack.status().short(), ack.applied), ("ACCEPTED", LONG_FILE_LINES as u64));
    let audit = common::export(&app.channel, common::Export::Audit).await;
    let reads = audit.lines().filter(|row| row.contains("GetRemittance") || row.contains("ListRemittances")).count();
    assert_eq!(reads, 6, "every read's audit row reached the log:\n{audit}");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

fn csv_header() -> proto::RemittanceHeader {
    proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, ..Default::default() }
}
