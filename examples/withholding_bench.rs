//! Payroll-run benchmark: `cargo run --release --example withholding_bench [EMPLOYEES]`.
//!
//! Starts a gateway on a fresh embedded SQLite database, imports a registry of EMPLOYEES
//! obligors (default 100,000; every third with a second case, and arrears payments), writes a
//! payroll CSV of one row per employee, and runs `gateway withholding calc --file … --out …`
//! (the CLI's own code, in this process) against the server: every employee is streamed to
//! the server and answered as computed. Prints the time and the rate, and checks the results
//! file has a row per order.

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use gateway::app::{Caller, Clock, NewKey, SystemClock};
use gateway::domain::access::Role;
use gateway::grpc::client::with_key;
use gateway::grpc::proto;
use gateway::startup::{Application, ServerConfig};
use tonic::transport::Channel;

fn ssn(i: usize) -> String {
    format!("{:09}", 100_000_000 + i)
}

fn case(i: usize, second: bool) -> String {
    format!("{:08}", if second { 50_000_000 } else { 10_000_000 } + i)
}

/// Whether employee `i` has a second order (another case).
fn two_orders(i: usize) -> bool {
    i % 3 == 0
}

fn registry(employees: usize) -> String {
    let mut csv = String::from(
        "obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,\
         opening_arrears,employer_fein,arrears_payment_monthly\n",
    );
    for i in 0..employees {
        let monthly = 200 + i % 700;
        csv.push_str(&format!("OB{i:07},{},Last,First,{},ORD{i:07},{monthly}.00,2026-01,{}.00,43-1234567,{}.00\n", ssn(i), case(i, false), i % 5 * 400, i % 4 * 50));
        if two_orders(i) {
            csv.push_str(&format!("OB{i:07},{},Last,First,{},ORDB{i:07},150.00,2026-06,0.00,,25.00\n", ssn(i), case(i, true)));
        }
    }
    csv
}

fn payroll(employees: usize, pay_date: &str) -> String {
    let mut csv = String::from(
        "employee_id,employee_ssn,employee_last_name,employer_fein,case_numbers,pay_frequency,pay_date,disposable_earnings,supports_other_family\n",
    );
    let frequencies = ["weekly", "biweekly", "semimonthly", "monthly"];
    for i in 0..employees {
        let cases = if two_orders(i) { format!("{};{}", case(i, false), case(i, true)) } else { case(i, false) };
        let earnings = 300 + (i * 37) % 2_500;
        let other = if i % 2 == 0 { "Y" } else { "N" };
        csv.push_str(&format!("E{i:07},{},Last,43-1234567,{cases},{},{pay_date},{earnings}.00,{other}\n", ssn(i), frequencies[i % 4]));
    }
    csv
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let employees: usize = std::env::args().nth(1).map(|a| a.parse()).transpose()?.unwrap_or(100_000);
    let folder = tempfile::tempdir()?;
    let mut config = ServerConfig::standard(
        "127.0.0.1:0".parse()?,
        format!("sqlite://{}", folder.path().join("bench.db").display()),
        Arc::new(SystemClock),
    );
    config.pii_key = Some("ab".repeat(32));
    let application = Application::build(config).await?;
    let address = application.local_addr();
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
    let channel = with_key(channel, &back_office).expect("a key is ASCII");

    let started = Instant::now();
    let chunks = gateway::grpc::client::registry_upload(registry(employees).as_bytes(), 1 << 16);
    let imported = proto::registry_service_client::RegistryServiceClient::new(channel)
        .import_registry(futures::stream::iter(chunks))
        .await?
        .into_inner();
    anyhow::ensure!(imported.applied, "the registry was refused: {:?}", imported.problems.first());
    println!("registry: {} orders of {employees} obligors imported in {:.1} s", imported.rows, started.elapsed().as_secs_f64());

    let pay_date = SystemClock.today().to_string();
    let payroll_path = folder.path().join("payroll.csv");
    let result_path = folder.path().join("result.csv");
    std::fs::write(&payroll_path, payroll(employees, &pay_date))?;
    let command = gateway::cli::Cli::try_parse_from([
        "gateway",
        "--server",
        &format!("http://{address}"),
        "--token",
        &vendor,
        "withholding",
        "calc",
        "--file",
        payroll_path.to_str().expect("a UTF-8 path"),
        "--out",
        result_path.to_str().expect("a UTF-8 path"),
    ])?;
    let started = Instant::now();
    let exit = gateway::cli::run(command).await?;
    let elapsed = started.elapsed().as_secs_f64();
    anyhow::ensure!(exit == std::process::ExitCode::SUCCESS, "some employees had problems");
    let rows = std::fs::read_to_string(&result_path)?.lines().count() - 1;
    let orders = employees + employees.div_ceil(3);
    anyhow::ensure!(rows == orders, "{rows} result rows for {orders} orders");

    println!("payroll run: {employees} employees ({orders} orders) computed by `gateway withholding calc --file` in {elapsed:.2} s");
    println!("             {:.0} employees/s, streamed over one gRPC call, results written to CSV", employees as f64 / elapsed);
    let _ = stop.send(());
    server.await??;
    Ok(())
}
