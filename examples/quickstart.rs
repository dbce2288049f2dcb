//! The gateway in one command: `cargo run --example quickstart`.
//!
//! Starts a real gateway server on an embedded SQLite database (in a temporary folder) and,
//! as a client over gRPC, imports a small case registry, records collections, runs
//! distribution and prints what each order received.

use std::sync::Arc;

use futures::StreamExt;
use gateway::app::{Caller, Clock, NewKey, SystemClock};
use gateway::domain::access::Role;
use gateway::domain::YearMonth;
use gateway::grpc::client::with_key;
use gateway::grpc::proto;
use gateway::startup::{Application, ServerConfig};
use proto::collection_service_client::CollectionServiceClient;
use proto::distribution_service_client::DistributionServiceClient;
use proto::export_service_client::ExportServiceClient;
use proto::registry_service_client::RegistryServiceClient;
use tonic::transport::Channel;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let folder = tempfile::tempdir()?;
    let database_url = format!("sqlite://{}", folder.path().join("gateway.db").display());
    let today = SystemClock.today();
    let month = YearMonth::of(today);

    // `--serve` keeps the server and its web console running after the walk-through.
    let keep_serving = std::env::args().any(|a| a == "--serve");
    let mut config = ServerConfig::standard("127.0.0.1:0".parse()?, database_url.clone(), Arc::new(SystemClock));
    let console_port = if keep_serving { 8080 } else { 0 };
    config.console_listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], console_port)));
    let application = Application::build(config).await?;
    let address = application.local_addr();
    let console = application.console_addr().expect("the console was asked for");
    // A back-office key, made as `gateway admin key create --role back-office` makes one.
    let operator = Caller::local_operator();
    let key = NewKey { role: Role::BackOffice, name: "back-office".into(), feins: Vec::new(), client_cert_sha256: None };
    let back_office = application.app().create_key(&operator, key).await?.token;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(application.run_until(async {
        let _ = stopped.await;
    }));
    println!("Gateway server on {address}, web console on http://{console}/, database {database_url}");
    println!("A back-office API key was made, as `gateway admin key create --role back-office` makes one.\n");
    let channel = Channel::from_shared(format!("http://{address}"))?.connect().await?;
    let channel = with_key(channel, &back_office).expect("a key is ASCII");

    // 1. The case registry: Jordan Smith pays two orders, Ana Lopez one.
    let registry = format!(
        "obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears\n\
         OB-1001,123-45-6789,Smith,Jordan,12345678,ORD-A,300.00,{month},100.00\n\
         OB-1001,123-45-6789,Smith,Jordan,12345679,ORD-B,200.00,{month},300.00\n\
         OB-2002,234-56-7890,Lopez,Ana,23456789,ORD-C,150.00,{month},0.00\n"
    );
    let imported = RegistryServiceClient::new(channel.clone())
        .import_registry(futures::stream::iter(gateway::grpc::client::registry_upload(registry.as_bytes(), 1 << 16)))
        .await?
        .into_inner();
    println!("1. Registry imported: {} orders ({} added).", imported.rows, imported.added);
    println!("   ORD-A 300.00/month + 100.00 arrears, ORD-B 200.00/month + 300.00 arrears (Jordan Smith);");
    println!("   ORD-C 150.00/month (Ana Lopez).\n");

    // 2. Money received today: a payroll-sized amount and a smaller one.
    let mut collections = CollectionServiceClient::new(channel.clone());
    for (case, amount) in [("12345678", "600.00"), ("23456789", "100.01")] {
        let request = proto::AddCollectionRequest { case_number: case.into(), amount: amount.into(), effective_date: today.to_string() };
        let collection = collections.add_collection(request).await?.into_inner().collection.expect("a collection");
        println!(
            "2. Collection {}: {} for case {} (obligor {}).",
            collection.collection_id, collection.amount, case, collection.obligor_id
        );
    }

    // 3. Distribution: current support first, then arrears, then unapplied credit.
    let run = DistributionServiceClient::new(channel.clone()).run_distribution(proto::RunDistributionRequest {}).await?.into_inner();
    println!(
        "\n3. Distribution run {}: {} = current {} + arrears {} + unapplied {}\n",
        run.run_id.as_deref().unwrap_or("(none)"),
        run.total,
        run.current,
        run.arrears,
        run.unapplied
    );

    // 4. What each order received, from the allocation export.
    let mut export = ExportServiceClient::new(channel.clone()).export_allocations(proto::ExportAllocationsRequest {}).await?.into_inner();
    let mut csv = Vec::new();
    while let Some(chunk) = export.next().await {
        csv.extend(chunk?.data);
    }
    let csv = String::from_utf8(csv)?;
    println!("4. Allocations:");
    println!("   {:<8} {:<9} {:<6} {:<10} {:<8} {:>9}", "obligor", "case", "order", "bucket", "month", "amount");
    let mut allocated_cents = 0i64;
    for line in csv.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').collect();
        let [_run, obligor, case, order, bucket, month, _date, amount] = cells[..] else { anyhow::bail!("unexpected export row {line}") };
        println!("   {obligor:<8} {case:<9} {order:<6} {bucket:<10} {month:<8} {amount:>9}");
        allocated_cents += gateway::domain::Money::parse_signed(amount)?.cents();
    }
    // The run's own conservation check, seen from the outside: allocations = money received.
    anyhow::ensure!(allocated_cents == 700_01, "allocations add up to {allocated_cents} cents, not 70001");
    println!("\n   Every cent accounted for: 600.00 + 100.01 = 700.01 allocated.");
    println!("   Ana Lopez paid 100.01 of 150.00 due: 49.99 of this month's current support is still owed.");

    // 5. The ledger re-checked from the stored rows alone (`gateway verify`).
    let verified = proto::ledger_service_client::LedgerServiceClient::new(channel.clone())
        .verify_ledger(proto::VerifyLedgerRequest {})
        .await?
        .into_inner();
    let checked: Vec<String> = verified.checks.iter().map(|c| format!("{} ({})", c.name, c.checked)).collect();
    anyhow::ensure!(verified.ok, "the ledger has breaches: {:?}", verified.checks);
    println!("\n5. Ledger verified: {}.", checked.join(", "));

    if keep_serving {
        println!("\nThe web console is at http://{console}/ — sign in with this back-office key:\n  {back_office}");
        println!("Ctrl-C stops the server (its database is temporary).");
        gateway::startup::shutdown_signal().await;
    } else {
        println!("\n(`cargo run --example quickstart -- --serve` keeps the server running and opens its web console.)");
    }
    let _ = stop.send(());
    server.await??;
    Ok(())
}
