//! Sustained load (#13, item 8): `cargo run --release --example sustained_load -- [--seconds 600]
//! [--rate 20] [--database URL]`.
//!
//! Starts the real `gateway serve` process (built beside this example) on a fresh database,
//! imports a registry of 2,000 obligors, registers 20 payers, then drives mixed traffic over
//! loopback at a fixed offered rate, open loop (a slow server does not slow the load down):
//! remittance files of every format and size (1 to 50 lines, and one in a hundred of 2,000
//! lines), online payments, returns of them, reads (a file's acknowledgment, a page of files,
//! a payer), balance exports, and a distribution run every 5 seconds. It samples the
//! server's resident memory every 5 seconds.
//!
//! It prints each RPC's calls, errors and latencies (p50, p99, max), the memory over time,
//! and what `VerifyLedger` finds at the end, and exits non-zero if any call failed, if the
//! ledger does not verify (or holds a file or payment more or fewer than were acknowledged),
//! or if memory kept growing (the last third's peak above the first third's by half plus
//! 32 MiB). CI runs it for 60 seconds.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures::StreamExt;
use gateway::domain::remittance::RawLine;
use gateway::domain::Money;
use gateway::grpc::client::{registry_upload, remittance_upload, with_key, GatewayChannel};
use gateway::grpc::proto;
use support::{gateway_binary, make_key, percentile, ssn, Rng, Server};
use tonic::transport::Channel;

const OBLIGORS: u64 = 2_000;
const PAYERS: u64 = 20;

struct Settings {
    seconds: u64,
    rate: u64,
    database: Option<String>,
}

fn settings() -> anyhow::Result<Settings> {
    let mut settings = Settings { seconds: 600, rate: 20, database: None };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => settings.seconds = value()?.parse()?,
            "--rate" => settings.rate = value()?.parse()?,
            "--database" => settings.database = Some(value()?),
            other => bail!("unknown argument {other}: use --seconds N, --rate PER_SECOND, --database URL"),
        }
    }
    Ok(settings)
}

fn registry() -> String {
    let mut csv = String::from(
        "obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears,employer_fein\n",
    );
    for n in 0..OBLIGORS {
        csv.push_str(&format!("OB-{n},{},Smith,John,{},ORD-{n},250.00,2026-01,1000.00,\n", ssn(n), 30_000_000 + n));
    }
    csv
}

/// A remittance file of `lines` lines in one of the three formats; `serial` makes its
/// bytes unlike any other file's.
fn a_file(rng: &mut Rng, serial: u64, lines: u64) -> (proto::RemittanceFormat, Vec<u8>) {
    let format = [proto::RemittanceFormat::Csv, proto::RemittanceFormat::Xml, proto::RemittanceFormat::Nacha][rng.below(3) as usize];
    let nacha = format == proto::RemittanceFormat::Nacha;
    let raw: Vec<RawLine> = (0..lines)
        .map(|line| {
            let n = rng.below(OBLIGORS);
            let cents = if line == 0 { 100 * (serial as i64 + 1) } else { 1 + rng.below(40_000) as i64 };
            RawLine {
                line: line + 1,
                employer_fein: Some("431234567".into()),
                employer_name: Some("Acme".into()),
                case_number: Some((30_000_000 + n).to_string()),
                employee_ssn: Some(ssn(n).replace('-', "")),
                last_name: Some("Smith".into()),
                pay_date: Some(if nacha { "261113" } else { "2026-11-13" }.into()),
                amount: Some(Money::from_cents(cents).to_string()),
                ..RawLine::default()
            }
        })
        .collect();
    let bytes = match format {
        proto::RemittanceFormat::Csv => gateway::formats::csv_remittance::write_csv(&raw),
        proto::RemittanceFormat::Xml => gateway::formats::xml_remittance::write_xml(&format!("S-{serial}"), &raw),
        _ => gateway::formats::nacha::writer::write_lines("ACME", "431234567", &raw),
    };
    (format, bytes)
}

/// What the traffic saw, per RPC.
#[derive(Default)]
struct Observed {
    latencies_ms: BTreeMap<&'static str, Vec<f64>>,
    errors: BTreeMap<&'static str, Vec<String>>,
    files: Vec<String>,
    payments: Vec<i64>,
    returned: u64,
}

impl Observed {
    fn record<T>(&mut self, rpc: &'static str, started: Instant, result: &Result<T, tonic::Status>) {
        self.latencies_ms.entry(rpc).or_default().push(started.elapsed().as_secs_f64() * 1000.0);
        if let Err(status) = result {
            self.errors.entry(rpc).or_default().push(format!("{:?}: {}", status.code(), status.message()));
        }
    }
}

struct Clients {
    vendor: GatewayChannel,
    site: GatewayChannel,
    office: GatewayChannel,
    payers: Vec<(i64, String)>,
}

/// One piece of traffic, chosen by `choice` (0–99).
async fn one_call(clients: &Clients, observed: &Mutex<Observed>, choice: u64, serial: u64, seed: u64) {
    let mut rng = Rng(seed);
    let started = Instant::now();
    match choice {
        0..=29 | 95 => {
            // One file in a hundred is a large one.
            let lines = if choice == 95 && rng.below(2) == 0 { 2_000 } else { 1 + rng.below(50) };
            let (format, bytes) = a_file(&mut rng, serial, lines);
            let started = Instant::now(); // the call, not the making of the file
            let batch_id = format!("S-{serial}");
            let header = proto::RemittanceHeader { format: format as i32, batch_id: batch_id.clone(), ..Default::default() };
            let messages = remittance_upload(header, &bytes, 1 << 16);
            let result = proto::remittance_service_client::RemittanceServiceClient::new(clients.vendor.clone())
                .submit_remittance(futures::stream::iter(messages))
                .await;
            let rpc = if lines >= 2_000 { "SubmitRemittance (2,000 lines)" } else { "SubmitRemittance" };
            let mut seen = observed.lock().unwrap();
            seen.record(rpc, started, &result);
            if let Ok(response) = result {
                let ack = response.into_inner().acknowledgment.unwrap_or_default();
                if ack.status() == proto::AcknowledgmentStatus::Accepted {
                    seen.files.push(batch_id);
                } else {
                    seen.errors.entry(rpc).or_default().push(format!("not accepted: {:?}", ack.status()));
                }
            }
        }
        30..=59 => {
            let (payer_id, case) = &clients.payers[rng.below(clients.payers.len() as u64) as usize];
            let request = proto::SubmitPaymentRequest {
                payer_id: *payer_id,
                case_number: case.clone(),
                amount: Money::from_cents(100 + rng.below(30_000) as i64).to_string(),
                channel: proto::PaymentChannel::Web as i32,
                idempotency_key: format!("L-{serial}"),
            };
            let result = proto::payment_service_client::PaymentServiceClient::new(clients.site.clone()).submit_payment(request).await;
            let mut seen = observed.lock().unwrap();
            seen.record("SubmitPayment", started, &result);
            if let Ok(response) = result {
                seen.payments.push(response.into_inner().receipt.map(|r| r.payment_id).unwrap_or_default());
            }
        }
        60..=64 => {
            let payment_id = {
                let mut seen = observed.lock().unwrap();
                let count = seen.payments.len();
                if count == 0 {
                    return;
                }
                seen.payments.swap_remove(rng.below(count as u64) as usize)
            };
            let request = proto::RecordReturnRequest { payment_id, return_code: "R01".into() };
            let result = proto::payment_service_client::PaymentServiceClient::new(clients.office.clone()).record_return(request).await;
            let mut seen = observed.lock().unwrap();
            seen.record("RecordReturn", started, &result);
            match result {
                Ok(_) => seen.returned += 1,
                Err(_) => seen.payments.push(payment_id), // not returned: still a payment
            }
        }
        65..=74 => {
            let batch_id = {
                let seen = observed.lock().unwrap();
                if seen.files.is_empty() {
                    return;
                }
                seen.files[rng.below(seen.files.len() as u64) as usize].clone()
            };
            let request = proto::GetRemittanceRequest { batch_id, sender: String::new() };
            let result = proto::remittance_service_client::RemittanceServiceClient::new(clients.vendor.clone()).get_remittance(request).await;
            observed.lock().unwrap().record("GetRemittance", started, &result);
        }
        75..=84 => {
            let request = proto::ListRemittancesRequest { page_size: 50, ..Default::default() };
            let result = proto::remittance_service_client::RemittanceServiceClient::new(clients.vendor.clone()).list_remittances(request).await;
            observed.lock().unwrap().record("ListRemittances", started, &result);
        }
        85..=92 => {
            let (payer_id, _) = &clients.payers[rng.below(clients.payers.len() as u64) as usize];
            let request = proto::GetPayerRequest { payer_id: *payer_id };
            let result = proto::payment_service_client::PaymentServiceClient::new(clients.site.clone()).get_payer(request).await;
            observed.lock().unwrap().record("GetPayer", started, &result);
        }
        _ => {
            let request = proto::ExportBalancesRequest { as_of: Some("2026-11-30".into()) };
            let client = proto::export_service_client::ExportServiceClient::new(clients.office.clone());
            let result = match client.clone().export_balances(request).await {
                Ok(stream) => stream.into_inner().fold(Ok(0usize), |size, piece| async move { Ok(size? + piece?.data.len()) }).await,
                Err(status) => Err(status),
            };
            observed.lock().unwrap().record("ExportBalances", started, &result);
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = settings()?;
    let binary = gateway_binary()?;
    let folder = tempfile::tempdir()?;
    let database = settings.database.clone().unwrap_or_else(|| format!("sqlite://{}", folder.path().join("gateway.db").display()));
    let tokens = [("back-office", "clerk"), ("vendor", "load-payroll"), ("payment-site", "load-site")]
        .map(|(role, name)| make_key(&binary, &database, role, name));
    let [office, vendor, site] = tokens;
    let (office, vendor, site) = (office?, vendor?, site?);
    let server = Server::start(&binary, &database)?;
    let channel = Channel::from_shared(format!("http://{}", server.address))?.connect().await?;
    let key = |token: &str| with_key(channel.clone(), token).context("a printable key");
    let (office, vendor, site) = (key(&office)?, key(&vendor)?, key(&site)?);

    let imported = proto::registry_service_client::RegistryServiceClient::new(office.clone())
        .import_registry(futures::stream::iter(registry_upload(registry().as_bytes(), 1 << 16)))
        .await?;
    anyhow::ensure!(imported.into_inner().applied, "the registry is imported");
    let mut payers = Vec::new();
    for n in 0..PAYERS {
        let request = proto::RegisterPayerRequest {
            name: "John Smith".into(),
            address: "1 Main St, Jefferson City, MO 65101".into(),
            ssn: ssn(n),
            telephone: "(573) 555-0100".into(),
            case_number: (30_000_000 + n).to_string(),
            email: "john.smith@example.com".into(),
            bank_account: Some(proto::BankAccountInput {
                routing_number: "091000019".into(),
                account_number: format!("{:012}", 123_456_789 + n),
                account_type: proto::AccountType::Checking as i32,
            }),
        };
        let payer = proto::payment_service_client::PaymentServiceClient::new(site.clone()).register_payer(request).await?.into_inner();
        let payer_id = payer.payer.context("a payer")?.payer_id;
        proto::payment_service_client::PaymentServiceClient::new(office.clone())
            .confirm_bank_account(proto::ConfirmBankAccountRequest { payer_id })
            .await?;
        payers.push((payer_id, (30_000_000 + n).to_string()));
    }
    let clients = Arc::new(Clients { vendor, site, office, payers });
    let observed = Arc::new(Mutex::new(Observed::default()));

    println!("sustained load: {} calls/s offered for {} s against {}", settings.rate, settings.seconds, database.split('?').next().unwrap_or(""));
    let mut memory: Vec<(u64, f64)> = vec![(0, server.resident_mib())];
    let started = Instant::now();
    let duration = Duration::from_secs(settings.seconds);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / settings.rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut calls = Vec::new();
    let mut rng = Rng(0x5EED);
    let (mut serial, mut next_sample, mut next_run) = (0u64, 5u64, Duration::from_secs(5));
    while started.elapsed() < duration {
        tick.tick().await;
        serial += 1;
        let (these, seen, choice, seed) = (clients.clone(), observed.clone(), rng.below(100), rng.below(u64::MAX));
        calls.push(tokio::spawn(async move { one_call(&these, &seen, choice, serial, seed).await }));
        if started.elapsed() >= next_run {
            next_run += Duration::from_secs(5);
            let (these, seen) = (clients.clone(), observed.clone());
            calls.push(tokio::spawn(async move {
                let at = Instant::now();
                let client = proto::distribution_service_client::DistributionServiceClient::new(these.office.clone());
                let result = client.clone().run_distribution(proto::RunDistributionRequest {}).await;
                seen.lock().unwrap().record("RunDistribution", at, &result);
            }));
        }
        if started.elapsed().as_secs() >= next_sample {
            memory.push((next_sample, server.resident_mib()));
            next_sample += 5;
        }
    }
    for call in calls {
        call.await?;
    }
    memory.push((started.elapsed().as_secs(), server.resident_mib()));

    // Everything distributed, then the ledger re-checked from its rows.
    proto::distribution_service_client::DistributionServiceClient::new(clients.office.clone())
        .run_distribution(proto::RunDistributionRequest {})
        .await?;
    let report = proto::ledger_service_client::LedgerServiceClient::new(clients.office.clone())
        .verify_ledger(proto::VerifyLedgerRequest {})
        .await?
        .into_inner();
    let checked = |name: &str| report.checks.iter().find(|c| c.name == name).map_or(0, |c| c.checked);

    let seen = observed.lock().unwrap();
    println!("\n{:<32} {:>8} {:>7} {:>9} {:>9} {:>9}", "RPC", "calls", "errors", "p50 ms", "p99 ms", "max ms");
    let mut errors = 0;
    for (rpc, latencies) in &seen.latencies_ms {
        let mut sorted = latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let failed = seen.errors.get(rpc).map_or(0, Vec::len);
        errors += failed;
        println!(
            "{rpc:<32} {:>8} {failed:>7} {:>9.1} {:>9.1} {:>9.1}",
            sorted.len(),
            percentile(&sorted, 0.5),
            percentile(&sorted, 0.99),
            sorted[sorted.len() - 1]
        );
    }
    for (rpc, messages) in &seen.errors {
        println!("  {rpc}: first error: {}", messages[0]);
    }
    let series: Vec<String> = memory.iter().map(|(at, mib)| format!("{at}s {mib:.0}")).collect();
    println!("\nserver resident memory (MiB) over time: {}", series.join(", "));
    let third = memory.len() / 3;
    let peak = |part: &[(u64, f64)]| part.iter().map(|(_, mib)| *mib).fold(0.0, f64::max);
    let (early, late) = (peak(&memory[..third.max(1)]), peak(&memory[memory.len() - third.max(1)..]));
    println!("peak in the first third {early:.0} MiB, in the last third {late:.0} MiB");
    let payments_made = seen.payments.len() as u64 + seen.returned;
    println!(
        "ledger: {} ({} files and {} payments acknowledged; {} and {} verified; {} returns)",
        if report.ok { "whole" } else { "BREACHED" },
        seen.files.len(),
        payments_made,
        checked("files_add_up"),
        checked("payments_match_collections"),
        seen.returned
    );
    let panics = server.panics.lock().unwrap().clone();
    drop(server);

    let mut failures = Vec::new();
    if errors > 0 {
        failures.push(format!("{errors} calls failed"));
    }
    if !report.ok {
        failures.push("the ledger does not verify".to_owned());
    }
    if checked("files_add_up") != seen.files.len() as u64 || checked("payments_match_collections") != payments_made {
        failures.push("the ledger holds other files or payments than were acknowledged".to_owned());
    }
    if late > early * 1.5 + 32.0 {
        failures.push(format!("memory kept growing: {early:.0} MiB then {late:.0} MiB"));
    }
    if !panics.is_empty() {
        failures.push(format!("the server panicked: {}", panics[0]));
    }
    if !failures.is_empty() {
        bail!("sustained load failed: {}", failures.join("; "));
    }
    println!("0 errors, nothing lost or doubled, memory bounded");
    Ok(())
}
