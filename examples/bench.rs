//! The benchmark suite (#12): `cargo run --release --example bench -- [--quick]
//! [--lines N] [--seconds N] [ingest|distribute|payments|all] [--database sqlite|postgres://…]…`.
//!
//! It generates its own data — a registry of obligors with one to three orders each, remittance
//! files in every format, payers with confirmed bank accounts — starts the real `gateway serve`
//! process on a fresh database for each part, drives it over gRPC on loopback and prints a
//! table of figures for the machine it runs on, each with what was measured:
//!
//! - **ingest**: lines/s of a file of each format end to end (first byte sent → acknowledgment
//!   received), the parse-only lines/s of the same bytes in this process (no database), their
//!   ratio, and the server's peak resident memory during the file;
//! - **distribute**: collections/s of one run over the pending collections of a whole file;
//! - **payments**: p50 / p99 / max latency of online payments at fixed offered rates, open loop
//!   (each call's latency counts from when it was due, so a slow server cannot slow the load
//!   down and hide its queue), every payment durably committed before it is acknowledged; and
//!   health checks at the same rate beside them, the floor of what the transport costs.
//!
//! Full size: 300,000 obligors, 1,000,000-line files, 1,000,000 collections, payments at 500/s
//! and 2,000/s for 30 s each. `--quick` runs a reduced size in under a minute; CI runs it so
//! the benchmark never rots (it checks every file's acknowledgment, every run and the ledger, and
//! counts refused payments; not the speed); `--lines N` sets the size of
//! the files and of the run, `--seconds N` how long each payment rate is offered. Without `--database` it
//! runs on a fresh SQLite file and, when it answers, on a fresh schema of the local PostgreSQL
//! (`GATEWAY_BENCH_POSTGRES_URL`, default postgres://postgres@127.0.0.1:5432/test). The figures
//! measured on the CI machine are in docs/performance.md.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use gateway::domain::remittance::RawLine;
use gateway::domain::Money;
use gateway::formats::{remittance_lines, DeclaredTotals, FileLimits, RemittanceFormat};
use gateway::grpc::client::{registry_upload, remittance_upload, with_key, GatewayChannel};
use gateway::grpc::proto;
use support::{gateway_binary, make_key, percentile, ssn, Rng, Server};
use tonic::transport::Channel;

/// How big a run is.
#[derive(Clone, Copy, Debug)]
struct Sizes {
    obligors: u64,
    /// Lines of each ingested file.
    lines: u64,
    /// Pending collections one distribution run takes.
    collections: u64,
    payment_rates: [u64; 2],
    payment_seconds: u64,
    payers: u64,
}

const FULL: Sizes =
    Sizes { obligors: 300_000, lines: 1_000_000, collections: 1_000_000, payment_rates: [500, 2_000], payment_seconds: 30, payers: 500 };
const QUICK: Sizes =
    Sizes { obligors: 10_000, lines: 30_000, collections: 30_000, payment_rates: [500, 2_000], payment_seconds: 2, payers: 50 };

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Ingest,
    Distribute,
    Payments,
}

/// Where a part runs: each part gets a fresh database of this kind.
#[derive(Clone, Debug)]
enum Backend {
    Sqlite,
    /// The URL of a database on a PostgreSQL server; the bench makes a schema there and drops it.
    Postgres(String),
}

impl Backend {
    fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres(_) => "PostgreSQL",
        }
    }
}

struct Options {
    sizes: Sizes,
    parts: Vec<Part>,
    backends: Vec<Backend>,
}

const USAGE: &str = "bench [--quick] [--lines N] [--seconds N] [ingest|distribute|payments|all] [--database sqlite|postgres://…]…";

async fn options() -> anyhow::Result<Options> {
    let (mut sizes, mut lines, mut seconds, mut parts, mut backends) = (FULL, None, None, Vec::new(), Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => sizes = QUICK,
            "--lines" => lines = Some(args.next().context("--lines needs a number")?.parse::<u64>()?),
            "--seconds" => seconds = Some(args.next().context("--seconds needs a number")?.parse::<u64>()?),
            "ingest" => parts.push(Part::Ingest),
            "distribute" => parts.push(Part::Distribute),
            "payments" => parts.push(Part::Payments),
            "all" => parts.extend([Part::Ingest, Part::Distribute, Part::Payments]),
            "--database" => {
                let url = args.next().context("--database needs sqlite or a postgres:// URL")?;
                backends.push(match url.as_str() {
                    "sqlite" => Backend::Sqlite,
                    postgres if postgres.starts_with("postgres://") || postgres.starts_with("postgresql://") => {
                        Backend::Postgres(postgres.to_owned())
                    }
                    other => bail!("--database {other}: give sqlite (a fresh file) or a postgres:// URL (a fresh schema there)"),
                });
            }
            other => bail!("unknown argument {other}; usage: {USAGE}"),
        }
    }
    if let Some(lines) = lines {
        (sizes.lines, sizes.collections) = (lines, lines);
    }
    if let Some(seconds) = seconds {
        ensure!(seconds > 0, "--seconds must be at least 1");
        sizes.payment_seconds = seconds;
    }
    if parts.is_empty() {
        parts = vec![Part::Ingest, Part::Distribute, Part::Payments];
    }
    if backends.is_empty() {
        backends.push(Backend::Sqlite);
        let url = std::env::var("GATEWAY_BENCH_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        match <sqlx::PgConnection as sqlx::Connection>::connect(&url).await {
            Ok(_) => backends.push(Backend::Postgres(url)),
            Err(error) => println!("PostgreSQL at {url} does not answer ({error}): SQLite only"),
        }
    }
    Ok(Options { sizes, parts, backends })
}

/// A fresh database for one part, removed when dropped (the SQLite file with its folder; the
/// PostgreSQL schema by `drop_schema`).
struct Database {
    url: String,
    postgres: Option<(String, String)>,
    _folder: Option<tempfile::TempDir>,
}

impl Database {
    async fn fresh(backend: &Backend, serial: usize) -> anyhow::Result<Database> {
        match backend {
            Backend::Sqlite => {
                let folder = tempfile::tempdir()?;
                let url = format!("sqlite://{}", folder.path().join("bench.db").display());
                Ok(Database { url, postgres: None, _folder: Some(folder) })
            }
            Backend::Postgres(admin) => {
                let schema = format!("gw_bench_{}_{serial}", std::process::id());
                let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(admin).await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).execute(&mut connection).await?;
                sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut connection).await?;
                let separator = if admin.contains('?') { '&' } else { '?' };
                let url = format!("{admin}{separator}options=-c%20search_path%3D{schema}");
                Ok(Database { url, postgres: Some((admin.clone(), schema)), _folder: None })
            }
        }
    }

    async fn drop_schema(&self) -> anyhow::Result<()> {
        if let Some((admin, schema)) = &self.postgres {
            let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(admin).await?;
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&mut connection).await?;
        }
        Ok(())
    }
}

/// The generated registry: its CSV, and for each order its case number and its obligor.
struct Registry {
    csv: Vec<u8>,
    /// (case number, obligor serial) per order.
    orders: Vec<(u64, u64)>,
}

fn registry(obligors: u64) -> Registry {
    let mut rng = Rng(0x00C0_FFEE);
    let mut csv =
        String::from("obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears\n");
    let mut orders = Vec::new();
    for obligor in 0..obligors {
        for _ in 0..1 + rng.below(3) {
            let serial = orders.len() as u64;
            let case = 10_000_000 + serial;
            let monthly = Money::from_cents(100_00 + rng.below(600) as i64 * 100);
            let arrears = Money::from_cents(rng.below(4) as i64 * 1_500_00);
            csv.push_str(&format!("OB{obligor:07},{},Smith,Pat,{case},ORD{serial:08},{monthly},2026-01,{arrears}\n", ssn(obligor)));
            orders.push((case, obligor));
        }
    }
    Registry { csv: csv.into_bytes(), orders }
}

/// A remittance file of `lines` lines for random orders of the registry; `seed` makes its
/// bytes its own.
fn remittance_file(format: RemittanceFormat, registry: &Registry, lines: u64, seed: u64, batch_id: &str) -> Vec<u8> {
    let mut rng = Rng(seed);
    // Paid a few days ago: on time whenever the bench runs.
    let paid_on = chrono::Utc::now().date_naive() - chrono::Days::new(3);
    let pay_date = paid_on.format(if format == RemittanceFormat::Nacha { "%y%m%d" } else { "%Y-%m-%d" }).to_string();
    let raw: Vec<RawLine> = (0..lines)
        .map(|line| {
            let (case, obligor) = registry.orders[rng.below(registry.orders.len() as u64) as usize];
            RawLine {
                line: line + 1,
                employer_fein: Some("431234567".into()),
                case_number: Some(case.to_string()),
                employee_ssn: Some(ssn(obligor).replace('-', "")),
                last_name: Some("Smith".into()),
                pay_date: Some(pay_date.clone()),
                amount: Some(Money::from_cents(1_00 + rng.below(40_000) as i64).to_string()),
                ..RawLine::default()
            }
        })
        .collect();
    match format {
        RemittanceFormat::Csv => gateway::formats::csv_remittance::write_csv(&raw),
        RemittanceFormat::Xml => gateway::formats::xml_remittance::write_xml(batch_id, &raw),
        RemittanceFormat::Nacha => gateway::formats::nacha::writer::write_lines("ACME PAYROLL", "431234567", &raw),
    }
}

fn proto_format(format: RemittanceFormat) -> proto::RemittanceFormat {
    match format {
        RemittanceFormat::Csv => proto::RemittanceFormat::Csv,
        RemittanceFormat::Xml => proto::RemittanceFormat::Xml,
        RemittanceFormat::Nacha => proto::RemittanceFormat::Nacha,
    }
}

/// One line of the table.
struct Figure {
    part: &'static str,
    what: String,
    database: String,
    value: String,
    measured: String,
}

/// What the bench changes of the standard settings: one payment site's key makes every
/// online payment, so its per-sender rate and concurrency are raised as an operator running
/// one would raise them (the standard 200 calls/s suits a payroll vendor, not a web site).
const SERVER_SETTINGS: &[(&str, &str)] = &[
    ("GATEWAY_RATE_LIMIT_PER_SECOND", "10000"),
    ("GATEWAY_RATE_LIMIT_BURST", "10000"),
    ("GATEWAY_MAX_CONCURRENT_CALLS_PER_SENDER", "256"),
];

/// A server on a fresh database with the keys the parts use, the registry imported.
struct Running {
    server: Server,
    office: GatewayChannel,
    vendor: GatewayChannel,
    site: GatewayChannel,
    channel: Channel,
    database: Database,
}

async fn start(backend: &Backend, serial: usize, registry: &Registry, figures: &mut Vec<Figure>) -> anyhow::Result<Running> {
    let binary = gateway_binary()?;
    let database = Database::fresh(backend, serial).await?;
    let keys: Vec<String> = [("back-office", "bench-clerk"), ("vendor", "bench-payroll"), ("payment-site", "bench-site")]
        .iter()
        .map(|(role, name)| make_key(&binary, &database.url, role, name))
        .collect::<anyhow::Result<_>>()?;
    let server = Server::start_with_env(&binary, &database.url, SERVER_SETTINGS)?;
    let channel = Channel::from_shared(format!("http://{}", server.address))?.connect().await?;
    let key = |token: &str| with_key(channel.clone(), token).context("a printable key");
    let (office, vendor, site) = (key(&keys[0])?, key(&keys[1])?, key(&keys[2])?);
    let started = Instant::now();
    let imported = proto::registry_service_client::RegistryServiceClient::new(office.clone())
        .import_registry(futures::stream::iter(registry_upload(&registry.csv, 1 << 16)))
        .await?
        .into_inner();
    ensure!(imported.applied, "the registry was not imported: {imported:?}");
    if serial == 0 {
        let rows = registry.orders.len() as f64;
        figures.push(Figure {
            part: "setup",
            what: format!("registry import, {} orders", thousands(rows as u64)),
            database: backend.name().into(),
            value: format!("{} rows/s", thousands((rows / started.elapsed().as_secs_f64()) as u64)),
            measured: "ImportRegistry, first byte → answer".into(),
        });
    }
    Ok(Running { server, office, vendor, site, channel, database })
}

/// Sends one file and waits for its acknowledgment; the seconds it took.
async fn submit(vendor: &GatewayChannel, format: RemittanceFormat, bytes: &[u8], batch_id: &str, lines: u64) -> anyhow::Result<f64> {
    let header = proto::RemittanceHeader { format: proto_format(format) as i32, batch_id: batch_id.into(), ..Default::default() };
    let messages = remittance_upload(header, bytes, 1 << 16);
    let started = Instant::now();
    let ack = proto::remittance_service_client::RemittanceServiceClient::new(vendor.clone())
        .submit_remittance(futures::stream::iter(messages))
        .await?
        .into_inner()
        .acknowledgment
        .context("an acknowledgment")?;
    let elapsed = started.elapsed().as_secs_f64();
    ensure!(
        ack.status() == proto::AcknowledgmentStatus::Accepted && ack.line_count == lines && ack.applied == lines,
        "{batch_id}: {:?}, {} lines, {} applied; expected {lines} applied",
        ack.status(),
        ack.line_count,
        ack.applied
    );
    Ok(elapsed)
}

async fn ingest(backend: &Backend, sizes: Sizes, registry: &Registry, figures: &mut Vec<Figure>) -> anyhow::Result<()> {
    let running = start(backend, 0, registry, figures).await?;
    for (index, format) in [RemittanceFormat::Csv, RemittanceFormat::Xml, RemittanceFormat::Nacha].into_iter().enumerate() {
        let batch_id = format!("BENCH-{}", format.as_str());
        let bytes = remittance_file(format, registry, sizes.lines, 7 + index as u64, &batch_id);

        // Parse only: the same bytes through the same parser, in this process.
        let started = Instant::now();
        let input = std::io::Cursor::new(bytes.clone());
        let mut parsed = 0u64;
        for line in remittance_lines(format, input, DeclaredTotals::default(), &batch_id, FileLimits::STANDARD)? {
            line?;
            parsed += 1;
        }
        let parse_rate = parsed as f64 / started.elapsed().as_secs_f64();
        ensure!(parsed == sizes.lines, "{format:?}: parsed {parsed} lines of {}", sizes.lines);

        running.server.reset_peak();
        let cpu_before = running.server.cpu_seconds();
        let seconds = submit(&running.vendor, format, &bytes, &batch_id, sizes.lines).await?;
        let cpu_per_line = (running.server.cpu_seconds() - cpu_before) / sizes.lines as f64 * 1e6;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let rate = sizes.lines as f64 / seconds;
        let what = format!("{} {} lines ({} MB)", format.as_str(), thousands(sizes.lines), bytes.len() / 1_000_000);
        figures.push(Figure {
            part: "ingest",
            what: what.clone(),
            database: backend.name().into(),
            value: format!("{} lines/s", thousands(rate as u64)),
            measured: format!(
                "end to end, {seconds:.2} s first byte sent → acknowledgment; server CPU {cpu_per_line:.1} µs a line ({cores} cores: at most {} lines/s)",
                thousands((cores as f64 * 1e6 / cpu_per_line) as u64)
            ),
        });
        figures.push(Figure {
            part: "ingest",
            what: what.clone(),
            database: "-".into(),
            value: format!("{} lines/s", thousands(parse_rate as u64)),
            measured: format!("parse only, same bytes, no database; end to end is {:.1}× slower", parse_rate / rate),
        });
        figures.push(Figure {
            part: "ingest",
            what,
            database: backend.name().into(),
            value: format!("{:.0} MiB", running.server.peak_mib()),
            measured: "server's peak resident memory during the file".into(),
        });
    }
    verify(&running).await?;
    finish(running).await
}

async fn distribute(backend: &Backend, sizes: Sizes, registry: &Registry, figures: &mut Vec<Figure>) -> anyhow::Result<()> {
    let running = start(backend, 1, registry, figures).await?;
    let bytes = remittance_file(RemittanceFormat::Csv, registry, sizes.collections, 99, "BENCH-RUN");
    submit(&running.vendor, RemittanceFormat::Csv, &bytes, "BENCH-RUN", sizes.collections).await?;
    running.server.reset_peak();
    let started = Instant::now();
    let run = proto::distribution_service_client::DistributionServiceClient::new(running.office.clone())
        .run_distribution(proto::RunDistributionRequest {})
        .await?
        .into_inner();
    let seconds = started.elapsed().as_secs_f64();
    ensure!(run.collections == sizes.collections, "the run took {} collections of {}", run.collections, sizes.collections);
    figures.push(Figure {
        part: "distribute",
        what: format!("{} collections of {} obligors", thousands(run.collections), thousands(run.obligors)),
        database: backend.name().into(),
        value: format!("{} collections/s", thousands((run.collections as f64 / seconds) as u64)),
        measured: format!("one RunDistribution, {seconds:.2} s; {} allocations written; peak {:.0} MiB", thousands(run.allocations), running.server.peak_mib()),
    });
    verify(&running).await?;
    finish(running).await
}

/// Where the calls over p99 fell: the seconds of the run that held most of them.
fn slowest_seconds(by_second: &[(u64, usize)]) -> String {
    if by_second.is_empty() {
        return String::new();
    }
    let seconds: Vec<String> = by_second.iter().take(4).map(|(second, calls)| format!("{second}s {calls}")).collect();
    format!("; calls over p99 by second due: {}", seconds.join(", "))
}

/// Latencies in ms of the calls answered, made at a fixed rate for a time, and the errors of
/// those refused (a fast refusal must not make the latencies look better).
struct Observed {
    latencies: Vec<f64>,
    errors: Vec<String>,
    /// For each second of the run, how many of its calls were among the slowest 1 %: a tail
    /// spread over the run is the machine's queue, one bunched in a few seconds is a stall.
    slowest_by_second: Vec<(u64, usize)>,
}

/// Calls `call(serial)` `rate` times a second for `seconds`, open loop: call n is due at
/// n / rate seconds, is started then (or at once if the client itself fell behind) and its
/// latency counts from when it was due.
async fn open_loop<F, Fut>(rate: u64, seconds: u64, call: F) -> Observed
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let started = tokio::time::Instant::now();
    let mut calls = Vec::new();
    for serial in 0..rate * seconds {
        let due = started + Duration::from_secs_f64(serial as f64 / rate as f64);
        tokio::time::sleep_until(due).await;
        let call = call(serial);
        calls.push(tokio::spawn(async move {
            let result = call.await;
            (due.elapsed().as_secs_f64() * 1000.0, result)
        }));
    }
    let mut observed = Observed { latencies: Vec::new(), errors: Vec::new(), slowest_by_second: Vec::new() };
    let mut due_seconds = Vec::new();
    for (serial, call) in calls.into_iter().enumerate() {
        let (latency, result) = call.await.expect("a call does not panic");
        match result {
            Ok(()) => {
                observed.latencies.push(latency);
                due_seconds.push(serial as u64 / rate);
            }
            Err(error) => observed.errors.push(error),
        }
    }
    if !observed.latencies.is_empty() {
        let mut sorted = observed.latencies.clone();
        sorted.sort_by(f64::total_cmp);
        let p99 = percentile(&sorted, 0.99);
        let mut by_second = std::collections::BTreeMap::<u64, usize>::new();
        for (latency, second) in observed.latencies.iter().zip(&due_seconds) {
            if *latency > p99 {
                *by_second.entry(*second).or_default() += 1;
            }
        }
        observed.slowest_by_second = by_second.into_iter().collect();
        observed.slowest_by_second.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        observed.latencies = sorted;
    }
    observed
}

async fn payments(backend: &Backend, sizes: Sizes, registry: &Registry, figures: &mut Vec<Figure>) -> anyhow::Result<()> {
    let running = start(backend, 2, registry, figures).await?;
    let mut payers = Vec::new();
    for n in 0..sizes.payers {
        let (case, obligor) = registry.orders[(n * 7) as usize % registry.orders.len()];
        let request = proto::RegisterPayerRequest {
            name: "Pat Smith".into(),
            address: "1 Main St, Jefferson City, MO 65101".into(),
            ssn: ssn(obligor),
            telephone: "(573) 555-0100".into(),
            case_number: case.to_string(),
            email: "pat.smith@example.com".into(),
            bank_account: Some(proto::BankAccountInput {
                routing_number: "091000019".into(),
                account_number: format!("{:012}", 100_000_000 + n),
                account_type: proto::AccountType::Checking as i32,
            }),
        };
        let payer = proto::payment_service_client::PaymentServiceClient::new(running.site.clone()).register_payer(request).await?.into_inner();
        let payer_id = payer.payer.context("a payer")?.payer_id;
        proto::payment_service_client::PaymentServiceClient::new(running.office.clone())
            .confirm_bank_account(proto::ConfirmBankAccountRequest { payer_id })
            .await?;
        payers.push((payer_id, case.to_string()));
    }
    let payers = Arc::new(payers);
    for (round, rate) in sizes.payment_rates.into_iter().enumerate() {
        let (site, chosen) = (running.site.clone(), payers.clone());
        let paying = open_loop(rate, sizes.payment_seconds, move |serial| {
            let mut client = proto::payment_service_client::PaymentServiceClient::new(site.clone());
            let (payer_id, case) = chosen[serial as usize % chosen.len()].clone();
            let request = proto::SubmitPaymentRequest {
                payer_id,
                case_number: case,
                amount: Money::from_cents(25_00 + (serial % 500) as i64).to_string(),
                channel: proto::PaymentChannel::Web as i32,
                idempotency_key: format!("bench-{round}-{serial}"),
            };
            async move { client.submit_payment(request).await.map(drop).map_err(|status| format!("{:?}: {}", status.code(), status.message())) }
        });
        let channel = running.channel.clone();
        let checking = open_loop(rate, sizes.payment_seconds, move |_| {
            let mut client = tonic_health::pb::health_client::HealthClient::new(channel.clone());
            async move {
                client
                    .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
                    .await
                    .map(drop)
                    .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
            }
        });
        let (paid, checked) = tokio::join!(paying, checking);
        for (what, observed) in [("SubmitPayment", &paid), ("Health/Check (the transport's floor)", &checked)] {
            let latencies = &observed.latencies;
            if latencies.is_empty() {
                bail!("{what} at {rate}/s: no call was answered ({})", observed.errors.first().map_or("", String::as_str));
            }
            figures.push(Figure {
                part: "payments",
                what: format!("{what} at {rate}/s for {} s", sizes.payment_seconds),
                database: backend.name().into(),
                value: format!("p99 {:.1} ms", percentile(latencies, 0.99)),
                measured: format!(
                    "p50 {:.1} ms, max {:.1} ms, {} calls answered, {} refused{}{}",
                    percentile(latencies, 0.5),
                    latencies[latencies.len() - 1],
                    latencies.len(),
                    observed.errors.len(),
                    observed.errors.first().map(|e| format!(" (first: {e})")).unwrap_or_default(),
                    slowest_seconds(&observed.slowest_by_second)
                ),
            });
        }
    }
    verify(&running).await?;
    finish(running).await
}

/// The ledger re-checked from its rows: a benchmark that lost or doubled money measured nothing.
async fn verify(running: &Running) -> anyhow::Result<()> {
    let report = proto::ledger_service_client::LedgerServiceClient::new(running.office.clone())
        .verify_ledger(proto::VerifyLedgerRequest {})
        .await?
        .into_inner();
    ensure!(report.ok, "the ledger does not verify after the run: {report:?}");
    let panics = running.server.panics.lock().unwrap().clone();
    ensure!(panics.is_empty(), "the server panicked: {}", panics[0]);
    Ok(())
}

async fn finish(running: Running) -> anyhow::Result<()> {
    let Running { server, database, .. } = running;
    drop(server);
    database.drop_schema().await
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The machine, as the figures depend on it.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo.lines().find(|l| l.starts_with("model name")).and_then(|l| l.split(':').nth(1)).unwrap_or("unknown CPU").trim().to_owned();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores ({model})")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options().await?;
    let sizes = options.sizes;
    println!("bench on {}, {}: {sizes:?}", machine(), if sizes.obligors == QUICK.obligors { "--quick" } else { "full size" });
    let started = Instant::now();
    let registry = registry(sizes.obligors);
    let mut figures = Vec::new();
    for backend in &options.backends {
        for part in &options.parts {
            match part {
                Part::Ingest => ingest(backend, sizes, &registry, &mut figures).await,
                Part::Distribute => distribute(backend, sizes, &registry, &mut figures).await,
                Part::Payments => payments(backend, sizes, &registry, &mut figures).await,
            }
            .with_context(|| format!("on {}", backend.name()))?;
        }
    }
    let width = |column: fn(&Figure) -> &str| figures.iter().map(|f| column(f).chars().count()).max().unwrap_or(0);
    let (w_part, w_what, w_db, w_value) = (width(|f| f.part), width(|f| &f.what), width(|f| &f.database), width(|f| &f.value));
    println!();
    for figure in &figures {
        println!(
            "{:<w_part$}  {:<w_what$}  {:<w_db$}  {:>w_value$}  {}",
            figure.part, figure.what, figure.database, figure.value, figure.measured
        );
    }
    println!("\nbench done in {:.0} s", started.elapsed().as_secs_f64());
    Ok(())
}
