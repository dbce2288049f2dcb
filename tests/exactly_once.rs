//! Exactly once under concurrency (#13, item 3), on both databases: the same file sent 100
//! times by 16 clients at once is one file with one set of collections and one
//! acknowledgment, whatever each client was answered; one payment idempotency key from 50
//! calls at once is one payment. Each client retries what the server shed for load, as a
//! real client does, and every retry gets the first answer. The ledger verifies whole.

mod common;

use std::time::Duration;

use common::{distribute, Authed, Backend, Short, TestApp};
use gateway::grpc::client::remittance_upload;
use gateway::grpc::proto;
use proto::payment_service_client::PaymentServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;
use tonic::Code;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Calls until the server answers with something other than "busy, retry": the retry a
/// well-behaved client makes. ABORTED is not retried: an idempotent call must never meet a
/// conflict.
/// `retried` counts the busy answers, for the figures each test prints.
async fn until_answered<T, F, Fut>(retried: &AtomicU64, mut call: F) -> Result<T, tonic::Status>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tonic::Status>>,
{
    for attempt in 0..200u64 {
        match call().await {
            Err(status) if matches!(status.code(), Code::Unavailable | Code::ResourceExhausted) => {
                retried.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20 + attempt * 5)).await;
            }
            answer => return answer,
        }
    }
    panic!("no answer after 200 attempts");
}

async fn send(vendor: &Authed, file: &[u8], retried: &AtomicU64) -> proto::RemittanceAcknowledgment {
    let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: "ONCE-1".into(), ..Default::default() };
    until_answered(retried, || {
        let messages = remittance_upload(header.clone(), file, 1 << 12);
        let mut client = RemittanceServiceClient::new(vendor.clone());
        async move { client.submit_remittance(futures::stream::iter(messages)).await.map(|r| r.into_inner()) }
    })
    .await
    .expect("the file is answered")
    .acknowledgment
    .expect("an acknowledgment")
}

async fn one_file_sent_a_hundred_times_at_once_is_one_file(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.import_spec_registry().await;
    let vendor = app.vendor("busy-payroll").await;
    let mut file = String::from("employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n");
    for cents in 1..=200u32 {
        file.push_str(&format!("43-1234567,12345678,123-45-6789,Smith,2026-11-13,{}.{:02}\n", cents / 100, cents % 100));
    }
    let file = file.into_bytes();

    // 16 clients, each sending the file 6 or 7 times: 100 sends.
    let retried = Arc::new(AtomicU64::new(0));
    let clients = (0..16).map(|client| {
        let (vendor, file, retried) = (vendor.clone(), file.clone(), retried.clone());
        tokio::spawn(async move {
            let sends = if client < 4 { 7 } else { 6 };
            let mut acks = Vec::new();
            for _ in 0..sends {
                acks.push(send(&vendor, &file, &retried).await);
            }
            acks
        })
    });
    let acks: Vec<proto::RemittanceAcknowledgment> =
        futures::future::join_all(clients).await.into_iter().flat_map(Result::unwrap).collect();
    assert_eq!(acks.len(), 100);
    let first = acks.iter().find(|a| !a.replayed).expect("one send was the first");
    assert_eq!((first.status().short(), first.applied, first.total_amount.as_str()), ("ACCEPTED", 200, "201.00"));
    assert_eq!(acks.iter().filter(|a| !a.replayed).count(), 1, "exactly one send recorded the file");
    for ack in &acks {
        let same = proto::RemittanceAcknowledgment { replayed: first.replayed, ..ack.clone() };
        assert_eq!(&same, first, "every answer is the first acknowledgment");
    }
    println!("100 sends from 16 clients: 1 recorded the file, 99 answered with its acknowledgment, {} busy answers retried", retried.load(Ordering::Relaxed));
    let listed = RemittanceServiceClient::new(vendor.clone()).list_remittances(proto::ListRemittancesRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.remittances.len(), 1);
    let run = distribute(&app.channel).await;
    assert_eq!((run.collections, run.total.as_str()), (200, "201.00"), "one set of collections");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn one_file_sent_a_hundred_times_at_once_is_one_file_on_sqlite() {
    one_file_sent_a_hundred_times_at_once_is_one_file(Backend::Sqlite).await;
}

#[tokio::test]
async fn one_file_sent_a_hundred_times_at_once_is_one_file_on_postgres() {
    one_file_sent_a_hundred_times_at_once_is_one_file(Backend::Postgres).await;
}

async fn one_payment_key_from_fifty_calls_at_once_is_one_payment(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.import_spec_registry().await;
    let payer_id = app.confirmed_payer().await;
    let request = proto::SubmitPaymentRequest {
        payer_id,
        case_number: "12345678".into(),
        amount: "125.00".into(),
        channel: proto::PaymentChannel::Web as i32,
        idempotency_key: "checkout-7f3a".into(),
    };
    let retried = Arc::new(AtomicU64::new(0));
    let calls = (0..50).map(|_| {
        let (site, request, retried) = (app.payment_site.clone(), request.clone(), retried.clone());
        tokio::spawn(async move {
            until_answered(&retried, || {
                let (mut client, request) = (PaymentServiceClient::new(site.clone()), request.clone());
                async move { client.submit_payment(request).await.map(|r| r.into_inner()) }
            })
            .await
            .expect("the payment is answered")
            .receipt
            .expect("a receipt")
        })
    });
    let receipts: Vec<proto::PaymentReceipt> = futures::future::join_all(calls).await.into_iter().map(Result::unwrap).collect();
    let ids: std::collections::BTreeSet<i64> = receipts.iter().map(|r| r.payment_id).collect();
    assert_eq!(ids.len(), 1, "one payment: {ids:?}");
    let first = receipts.iter().find(|r| !r.replayed).expect("one call made the payment");
    assert_eq!(receipts.iter().filter(|r| !r.replayed).count(), 1, "exactly one call made the payment");
    for receipt in &receipts {
        let same = proto::PaymentReceipt { replayed: first.replayed, ..receipt.clone() };
        assert_eq!(&same, first, "every call is answered with the one receipt");
    }
    println!("50 calls with one key: 1 payment ({}), {} busy answers retried", first.payment_id, retried.load(Ordering::Relaxed));
    let run = distribute(&app.channel).await;
    assert_eq!((run.collections, run.total.as_str()), (1, "125.00"), "125.00 collected once");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn one_payment_key_from_fifty_calls_at_once_is_one_payment_on_sqlite() {
    one_payment_key_from_fifty_calls_at_once_is_one_payment(Backend::Sqlite).await;
}

#[tokio::test]
async fn one_payment_key_from_fifty_calls_at_once_is_one_payment_on_postgres() {
    one_payment_key_from_fifty_calls_at_once_is_one_payment(Backend::Postgres).await;
}
