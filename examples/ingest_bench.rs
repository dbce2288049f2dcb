//! Ingestion benchmark: `cargo run --release --example ingest_bench [LINES]`.
//!
//! Starts a gateway on a fresh embedded SQLite database, imports a registry of 1,000 obligors,
//! streams a generated remittance CSV of LINES lines (default 200,000) through gRPC, and
//! prints the throughput and the process's peak memory. The target set for later work is
//! 250,000 lines/s for a 1,000,000-line file on 2 cores with the server under 200 MB.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use gateway::app::{Caller, NewKey, SystemClock};
use gateway::domain::access::Role;
use gateway::grpc::client::with_key;
use gateway::grpc::proto::{self, submit_remittance_request::Part};
use gateway::startup::{Application, ServerConfig};
use tonic::transport::Channel;

const OBLIGORS: usize = 1_000;
const LINES_PER_CHUNK: usize = 5_000;

fn registry() -> String {
    let mut csv = String::from(
        "obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears\n",
    );
    for i in 0..OBLIGORS {
        csv.push_str(&format!("OB{i:05},{},Last,First,{},ORD{i:05},300.00,2026-01,0\n", ssn(i), case(i)));
    }
    csv
}

fn ssn(i: usize) -> String {
    format!("{:09}", 100_000_000 + i)
}

fn case(i: usize) -> String {
    format!("{:08}", 10_000_000 + i)
}

fn line(index: usize) -> String {
    let i = index % OBLIGORS;
    format!("43-1234567,{},{},Last,2026-11-13,{}.{:02}\n", case(i), ssn(i), 1 + index % 400, index % 100)
}

fn peak_resident_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let lines: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(200_000);
    let folder = tempfile::tempdir()?;
    let mut config = ServerConfig::standard(
        "127.0.0.1:0".parse()?,
        format!("sqlite://{}", folder.path().join("bench.db").display()),
        Arc::new(SystemClock),
    );
    config.pii_key = Some("ab".repeat(32));
    let application = Application::build(config).await?;
    let address = application.local_addr();
    // A back-office key, made as `gateway admin key create --role back-office` makes one.
    let operator = Caller::local_operator();
    let key = NewKey { role: Role::BackOffice, name: "back-office".into(), feins: Vec::new(), client_cert_sha256: None };
    let back_office = application.app().create_key(&operator, key).await?.token;
    let key = NewKey { role: Role::Vendor, name: "bench-vendor".into(), feins: Vec::new(), client_cert_sha256: None };
    let vendor = application.app().create_key(&operator, key).await?.token;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    let channel = Channel::from_shared(format!("http://{address}"))?.connect().await?;
    let vendor_channel = with_key(channel.clone(), &vendor).expect("a key is ASCII");
    let channel = with_key(channel, &back_office).expect("a key is ASCII");

    let chunks = gateway::grpc::client::registry_upload(registry().as_bytes(), 1 << 16);
    proto::registry_service_client::RegistryServiceClient::new(channel.clone()).import_registry(futures::stream::iter(chunks)).await?;

    let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: "BENCH-1".into(), ..Default::default() };
    let first = proto::SubmitRemittanceRequest { part: Some(Part::Header(header)) };
    let piece = move |start: usize| {
        let mut chunk = if start == 0 {
            "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n".to_owned()
        } else {
            String::new()
        };
        for index in start..(start + LINES_PER_CHUNK).min(lines) {
            chunk.push_str(&line(index));
        }
        chunk.into_bytes()
    };
    // The file is generated as it is sent (the client does not hold it); its end message's
    // SHA-256 comes from generating it once before.
    let mut sha256 = <sha2::Sha256 as sha2::Digest>::new();
    let mut byte_count = 0;
    for start in (0..lines).step_by(LINES_PER_CHUNK) {
        let bytes = piece(start);
        byte_count += bytes.len() as u64;
        sha2::Digest::update(&mut sha256, &bytes);
    }
    let end = proto::SubmitRemittanceRequest {
        part: Some(Part::End(proto::UploadEnd { byte_count, sha256: hex::encode(sha2::Digest::finalize(sha256)) })),
    };
    let body = futures::stream::iter((0..lines).step_by(LINES_PER_CHUNK))
        .map(move |start| proto::SubmitRemittanceRequest { part: Some(Part::Chunk(piece(start))) });
    let started = Instant::now();
    let ack = proto::remittance_service_client::RemittanceServiceClient::new(vendor_channel)
        .submit_remittance(futures::stream::iter([first]).chain(body).chain(futures::stream::iter([end])))
        .await?
        .into_inner()
        .acknowledgment
        .unwrap_or_default();
    let elapsed = started.elapsed().as_secs_f64();
    let accepted = ack.status() == proto::AcknowledgmentStatus::Accepted;
    anyhow::ensure!(accepted && ack.applied == lines as u64, "unexpected acknowledgment: {:?} {}", ack.status(), ack.applied);
    println!("ingested {lines} lines in {elapsed:.2} s: {:.0} lines/s", lines as f64 / elapsed);

    let started = Instant::now();
    let run = proto::distribution_service_client::DistributionServiceClient::new(channel)
        .run_distribution(proto::RunDistributionRequest {})
        .await?
        .into_inner();
    println!("distributed {} collections in {:.2} s", run.collections, started.elapsed().as_secs_f64());
    println!("peak memory of the process (server and client): {:.0} MB", peak_resident_mb());
    let _ = stop.send(());
    server.await??;
    Ok(())
}
