//! A limit on everything, each tested through the real server: message size, lines and
//! record length per file, the call and upload deadlines, the idle stream, load shedding,
//! and the per-sender rate limits (one sender flooded and refused while another is served);
//! and the metrics that show it all.

mod common;

use common::Short;

use std::num::NonZeroU32;
use std::time::Duration;

use common::{Authed, Backend, TestApp, SPEC_REGISTRY};
use futures::StreamExt;
use gateway::grpc::proto::{self, submit_remittance_request::Part};
use gateway::grpc::RETRY_PUSHBACK_METADATA;
use gateway::startup::ServerConfig;
use proto::collection_service_client::CollectionServiceClient;
use proto::distribution_service_client::DistributionServiceClient;
use proto::registry_service_client::RegistryServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;
use tonic::Code;

const HEADER: &str = "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n";

/// A CSV of `lines` payments for OB-1, each of a different amount.
fn csv(lines: usize) -> Vec<u8> {
    let mut csv = HEADER.to_owned();
    for line in 0..lines {
        csv.push_str(&format!("43-1234567,12345678,123-45-6789,Smith,2026-11-13,{}.00\n", line + 1));
    }
    csv.into_bytes()
}

fn header(batch_id: &str) -> proto::SubmitRemittanceRequest {
    let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: batch_id.into(), ..Default::default() };
    proto::SubmitRemittanceRequest { part: Some(Part::Header(header)) }
}

fn chunk(bytes: Vec<u8>) -> proto::SubmitRemittanceRequest {
    proto::SubmitRemittanceRequest { part: Some(Part::Chunk(bytes)) }
}

fn end(file: &[u8]) -> proto::SubmitRemittanceRequest {
    proto::SubmitRemittanceRequest { part: Some(Part::End(gateway::grpc::client::upload_end(file))) }
}

async fn submit(channel: &Authed, batch_id: &str, file: Vec<u8>) -> Result<proto::RemittanceAcknowledgment, tonic::Status> {
    let messages = [header(batch_id), chunk(file.clone()), end(&file)];
    RemittanceServiceClient::new(channel.clone()).submit_remittance(futures::stream::iter(messages)).await.map(|r| r.into_inner().acknowledgment.unwrap())
}

async fn spawn(configure: impl FnOnce(&mut ServerConfig)) -> TestApp {
    let app = TestApp::spawn_configured(Backend::Sqlite, configure).await;
    let chunks = gateway::grpc::client::registry_upload(SPEC_REGISTRY.as_bytes(), 1 << 16);
    let imported = RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(chunks)).await.unwrap();
    assert!(imported.into_inner().applied);
    app
}

async fn listed(channel: &Authed) -> Vec<String> {
    let mut client = RemittanceServiceClient::new(channel.clone());
    let listed = client.list_remittances(proto::ListRemittancesRequest { page_size: 0, ..Default::default() }).await.unwrap().into_inner();
    listed.remittances.into_iter().map(|r| r.batch_id).collect()
}

fn non_zero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap()
}

#[tokio::test]
async fn a_message_over_the_size_limit_is_refused() {
    let app = spawn(|config| config.max_message_bytes = 1024).await;
    let request = proto::AddCollectionRequest { case_number: "1".repeat(2000), amount: "1.00".into(), effective_date: "2026-11-13".into() };
    let status = CollectionServiceClient::new(app.channel.clone()).add_collection(request).await.unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("1024"), "{}", status.message());
    // An upload is many messages: a file far larger than one message still goes through.
    let vendor = app.vendor("acme-payroll").await;
    let file = csv(100);
    assert!(file.len() > 2048);
    let messages = std::iter::once(header("SMALL-PIECES"))
        .chain(file.chunks(512).map(|c| chunk(c.to_vec())))
        .chain([end(&file)])
        .collect::<Vec<_>>();
    let ack = RemittanceServiceClient::new(vendor).submit_remittance(futures::stream::iter(messages)).await.unwrap().into_inner().acknowledgment.unwrap();
    assert_eq!((ack.status().short(), ack.line_count), ("ACCEPTED", 100));
    app.stop().await;
}

#[tokio::test]
async fn a_file_over_the_line_limit_is_refused_whole() {
    let app = spawn(|config| config.upload_limits.file.max_lines = 3).await;
    let vendor = app.vendor("acme-payroll").await;
    let ack = submit(&vendor, "MANY", csv(4)).await.unwrap();
    assert_eq!(ack.status().short(), "REFUSED");
    let problem = ack.file_problem.unwrap();
    assert_eq!((problem.code.as_str(), problem.position.as_str()), ("TOO_MANY_LINES", "line 4"), "{}", problem.message);
    assert!(listed(&vendor).await.is_empty(), "nothing of a refused file is kept");
    assert_eq!(submit(&vendor, "FEW", csv(3)).await.unwrap().status().short(), "ACCEPTED");

    // The registry too: its rows are lines.
    let four_rows = format!("{SPEC_REGISTRY}OB-3,323-45-6789,Roe,Rita,32345678,D,100.00,2026-11,0.00,\n");
    let chunks = gateway::grpc::client::registry_upload(four_rows.as_bytes(), 1 << 16);
    let refused =
        RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner();
    assert!(!refused.applied);
    assert_eq!(refused.problems[0].code, "TOO_MANY_LINES");
    app.stop().await;
}

#[tokio::test]
async fn a_record_over_the_length_limit_refuses_the_file() {
    let app = spawn(|config| config.upload_limits.file.max_record_bytes = 200).await;
    let vendor = app.vendor("acme-payroll").await;
    let long = format!("{HEADER}43-1234567,12345678,123-45-6789,{},2026-11-13,1.00\n", "S".repeat(200));
    let ack = submit(&vendor, "LONG", long.into_bytes()).await.unwrap();
    assert_eq!(ack.status().short(), "REFUSED");
    assert_eq!(ack.file_problem.unwrap().code, "RECORD_TOO_LONG");
    assert_eq!(submit(&vendor, "SHORT", csv(2)).await.unwrap().status().short(), "ACCEPTED");
    app.stop().await;
}

#[tokio::test]
async fn a_stalled_upload_is_stopped_by_the_idle_timeout_and_keeps_nothing() {
    let app = spawn(|config| config.guard.idle_stream_timeout = Duration::from_secs(1)).await;
    let vendor = app.vendor("acme-payroll").await;
    // The header and half a file, then nothing: a client hung mid-upload.
    let half = csv(6)[..150].to_vec();
    let stalled = futures::stream::iter([header("STALLED"), chunk(half)]).chain(futures::stream::pending());
    let started = std::time::Instant::now();
    let status = RemittanceServiceClient::new(vendor.clone()).submit_remittance(stalled).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(status.message().contains("sent nothing for 1 s"), "{}", status.message());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(listed(&vendor).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn an_upload_past_its_deadline_is_stopped_and_keeps_nothing() {
    let app = spawn(|config| config.guard.upload_deadline = Duration::from_secs(1)).await;
    let vendor = app.vendor("acme-payroll").await;
    // A client that keeps sending, slowly: never idle, but over the deadline.
    let file = csv(20);
    let pieces: Vec<Vec<u8>> = file.chunks(file.len() / 10 + 1).map(<[u8]>::to_vec).collect();
    let slow = futures::stream::iter([header("SLOW")]).chain(futures::stream::iter(pieces).then(|piece| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        chunk(piece)
    }));
    let status = RemittanceServiceClient::new(vendor.clone()).submit_remittance(slow).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(listed(&vendor).await.is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_call_past_its_deadline_is_stopped_and_changes_nothing() {
    // 1 ms: no distribution of thousands of collections is that quick.
    let app = spawn(|config| config.guard.call_deadline = Duration::from_millis(1)).await;
    let vendor = app.vendor("acme-payroll").await;
    assert_eq!(submit(&vendor, "BIG", csv(5000)).await.unwrap().status().short(), "ACCEPTED", "an upload has a deadline of its own");
    let status = DistributionServiceClient::new(app.channel.clone()).run_distribution(proto::RunDistributionRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    // The run's transaction was dropped with the call: nothing was distributed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.app.store().allocations_after(0, 10).await.unwrap().is_empty());
    app.stop().await;
}

/// An upload that never ends, holding its call's slot until the task is aborted.
async fn hold_a_call(channel: &Authed) -> tokio::task::JoinHandle<Result<tonic::Response<proto::SubmitRemittanceResponse>, tonic::Status>> {
    let holder = channel.clone();
    let held = tokio::spawn(async move {
        let forever = futures::stream::iter([header("HELD")]).chain(futures::stream::pending());
        RemittanceServiceClient::new(holder).submit_remittance(forever).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    held
}

/// Whether a call is served again within 5 seconds.
async fn served_soon(channel: &Authed) -> bool {
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if RemittanceServiceClient::new(channel.clone()).list_remittances(proto::ListRemittancesRequest { page_size: 0, ..Default::default() }).await.is_ok() {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn when_every_slot_is_taken_calls_are_shed_but_health_answers() {
    let app = spawn(|config| config.guard.max_concurrent_calls = 1).await;
    let vendor = app.vendor("acme-payroll").await;
    let held = hold_a_call(&vendor).await;
    let mut client = RemittanceServiceClient::new(vendor.clone());
    let shed = client.list_remittances(proto::ListRemittancesRequest { page_size: 0, ..Default::default() }).await.unwrap_err();
    assert_eq!(shed.code(), Code::Unavailable, "{shed:?}");
    assert!(shed.metadata().get(RETRY_PUSHBACK_METADATA).is_some(), "a retry hint");
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.raw.clone());
    assert!(health.check(tonic_health::pb::HealthCheckRequest { service: String::new() }).await.is_ok());

    held.abort();
    let _ = held.await;
    assert!(served_soon(&vendor).await, "the slot is free again once the held call ends");
    app.stop().await;
}

#[tokio::test]
async fn one_sender_cannot_hold_every_slot() {
    let app = spawn(|config| config.guard.max_concurrent_calls_per_sender = 1).await;
    let greedy = app.vendor("greedy").await;
    let held = hold_a_call(&greedy).await;
    let refused = RemittanceServiceClient::new(greedy.clone()).list_remittances(proto::ListRemittancesRequest { page_size: 0, ..Default::default() }).await;
    let refused = refused.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("in flight"), "{}", refused.message());
    // Everyone else is served meanwhile.
    let other = app.vendor("patient").await;
    assert!(listed(&other).await.is_empty());
    held.abort();
    let _ = held.await;
    assert!(served_soon(&greedy).await, "the sender's slot is given back when its call ends");
    app.stop().await;
}

/// A registry of `orders` orders, one obligor each: a balances export of about 60 bytes
/// an order.
fn large_registry(orders: u32) -> Vec<u8> {
    let mut csv = String::from(
        "obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears,employer_fein\n",
    );
    for n in 0..orders {
        let ssn = format!("{:03}-{:02}-{:04}", 100 + n / 9_999 % 500, 45, n % 9_999 + 1);
        csv.push_str(&format!("OB-{n},{ssn},Smith,John,{},ORD-{n},100.00,2026-11,25.00,\n", 30_000_000 + n));
    }
    csv.into_bytes()
}

#[tokio::test]
async fn an_export_whose_client_stops_reading_is_cut_off_and_frees_its_slot() {
    let app = TestApp::spawn_configured(Backend::Sqlite, |config| {
        config.guard.idle_stream_timeout = Duration::from_secs(1);
        config.guard.max_concurrent_calls_per_sender = 1;
    })
    .await;
    let chunks = gateway::grpc::client::registry_upload(&large_registry(40_000), 1 << 16);
    assert!(RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner().applied);

    // A client with a small HTTP/2 window that takes the first piece of a 2.4 MB export and
    // then stops reading: the server's buffers fill and the export waits for it.
    let token = common::make_key(&app.app, gateway::domain::access::Role::BackOffice, "slow-reader", &[]).await;
    let endpoint = tonic::transport::Channel::from_shared(format!("http://{}", app.address)).unwrap();
    let small_window = endpoint.initial_stream_window_size(65_535).initial_connection_window_size(65_535).connect().await.unwrap();
    let reader = common::authed(&small_window, &token);
    let request = proto::ExportBalancesRequest { as_of: Some("2026-11-30".into()) };
    let mut export = proto::export_service_client::ExportServiceClient::new(reader.clone()).export_balances(request).await.unwrap().into_inner();
    assert!(export.message().await.unwrap().unwrap().data.starts_with(b"order_id,"));
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The stalled export holds the sender's one slot...
    let other_channel = common::authed(&app.raw, &token);
    let mut client = RemittanceServiceClient::new(other_channel.clone());
    let refused = client.list_remittances(proto::ListRemittancesRequest { page_size: 0, ..Default::default() }).await.unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    // ...until it has gone unread for the idle timeout: then it is cut off and the slot is
    // free, though the client still holds the stream open.
    assert!(served_soon(&other_channel).await, "the slot is given back once the export is cut off");
    assert!(started.elapsed() >= Duration::from_secs(1), "not before the idle timeout");

    // Reading on, the client gets what was already sent, then DEADLINE_EXCEEDED: never a
    // silently truncated export.
    let mut received = 0usize;
    let ended = loop {
        match export.next().await {
            Some(Ok(piece)) => received += piece.data.len(),
            Some(Err(status)) => break status,
            None => panic!("the export ended as if whole after {received} bytes"),
        }
    };
    assert_eq!(ended.code(), Code::DeadlineExceeded, "{ended:?}");
    assert!(ended.message().contains("not read for"), "{}", ended.message());
    assert!(received < 2_000_000, "the export stopped where the client stopped: {received} bytes");
    drop(export);
    app.stop().await;
}

#[tokio::test]
async fn one_sender_flooded_is_refused_while_another_is_served() {
    let app = spawn(|config| {
        config.guard.rate.requests_per_second = non_zero(1);
        config.guard.rate.request_burst = non_zero(3);
    })
    .await;
    let flooder = app.vendor("flooder").await;
    let mut client = RemittanceServiceClient::new(flooder.clone());
    let mut refused = Vec::new();
    for _ in 0..10 {
        if let Err(status) = client.list_remittances(proto::ListRemittancesRequest { page_size: 0, ..Default::default() }).await {
            refused.push(status);
        }
    }
    assert!(refused.len() >= 6, "the burst is 3: {} of 10 refused", refused.len());
    for status in &refused {
        assert_eq!(status.code(), Code::ResourceExhausted);
        let pushback: u64 = status.metadata().get(RETRY_PUSHBACK_METADATA).unwrap().to_str().unwrap().parse().unwrap();
        assert!((1..=1000).contains(&pushback), "retry after {pushback} ms");
        assert!(status.message().contains("retry after"), "{}", status.message());
    }
    // Another sender, at the same moment, is served in full.
    let other = app.vendor("quiet-vendor").await;
    let mut other = RemittanceServiceClient::new(other);
    for _ in 0..3 {
        other.list_remittances(proto::ListRemittancesRequest { page_size: 0, ..Default::default() }).await.unwrap();
    }
    // And the flooder is served again once it waits.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.list_remittances(proto::ListRemittancesRequest { page_size: 0, ..Default::default() }).await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn upload_bytes_over_a_senders_rate_are_refused_while_another_sender_uploads() {
    let app = spawn(|config| {
        config.guard.rate.bytes_per_second = non_zero(1000);
        config.guard.rate.byte_burst = non_zero(4096);
    })
    .await;
    let big = app.vendor("big-sender").await;
    let file = csv(300);
    assert!(file.len() > 8000);
    let messages =
        std::iter::once(header("HUGE")).chain(file.chunks(1024).map(|c| chunk(c.to_vec()))).chain([end(&file)]).collect::<Vec<_>>();
    let status = RemittanceServiceClient::new(big.clone()).submit_remittance(futures::stream::iter(messages)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.metadata().get(RETRY_PUSHBACK_METADATA).is_some(), "a retry hint");
    let small = app.vendor("small-sender").await;
    assert_eq!(submit(&small, "SMALL", csv(5)).await.unwrap().status().short(), "ACCEPTED");
    assert!(!listed(&big).await.contains(&"HUGE".to_owned()), "nothing of the refused upload is kept");
    app.stop().await;
}

/// `GET /metrics` over plain HTTP/1.1.
async fn scrape(app: &TestApp) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(app.metrics_address.expect("a metrics port")).await.unwrap();
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response
}

#[tokio::test]
async fn the_metrics_show_calls_lines_runs_and_money_waiting() {
    let app = spawn(|_| {}).await;
    let vendor = app.vendor("acme-payroll").await;
    let file = format!("{HEADER}43-1234567,12345678,123-45-6789,Smith,2026-11-13,700.00\n43-1234567,,423-45-6789,Nobody,2026-11-13,5.00\n");
    submit(&vendor, "M-1", file.into_bytes()).await.unwrap();
    DistributionServiceClient::new(app.channel.clone()).run_distribution(proto::RunDistributionRequest {}).await.unwrap();
    let denied = DistributionServiceClient::new(vendor).run_distribution(proto::RunDistributionRequest {}).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let text = scrape(&app).await;
    for expected in [
        r#"gateway_rpc_requests_total{rpc="RemittanceService/SubmitRemittance",code="Ok"} 1"#,
        r#"gateway_rpc_requests_total{rpc="DistributionService/RunDistribution",code="Ok"} 1"#,
        r#"gateway_rpc_requests_total{rpc="DistributionService/RunDistribution",code="PermissionDenied"} 1"#,
        r#"gateway_rpc_duration_seconds_count{rpc="RegistryService/ImportRegistry",code="Ok"} 1"#,
        r#"gateway_remittance_lines_total{status="APPLIED"} 1"#,
        r#"gateway_remittance_lines_total{status="SUSPENSE"} 1"#,
        "gateway_distribution_run_duration_seconds_count 1",
        "gateway_suspense_open_dollars 5.0",
        // 700.00 covers 500.00 of current support and 200.00 of 400.00 arrears: nothing unapplied.
        "gateway_unapplied_dollars 0.0",
    ] {
        assert!(text.contains(expected), "{expected} in:\n{text}");
    }
    assert!(!text.contains("123456789") && !text.contains("423456789"), "no SSN in the metrics");
    app.stop().await;
}
