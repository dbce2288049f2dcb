//! The kill-anywhere harness (#13, item 2), on both databases, and replicas on PostgreSQL
//! (#13, item 4): three servers on one database, killed in turn, clients spreading their
//! calls (and their retries) across them.
//!
//! A real `gateway serve` process takes files of every format, online payments with
//! idempotency keys, returns of those payments and distribution runs from several clients
//! at once, and is killed (SIGKILL) over and over: after a random delay, or by itself at a
//! named point inside a transaction (`GATEWAY_CRASH_AT`, see `gateway::crash_points`). After
//! each kill it is restarted on the same database, and every client retries what it did not
//! see acknowledged, with the same batch id or idempotency key, until it is.
//!
//! Then: every file and payment sent once more is answered with its first acknowledgment;
//! the database holds each acknowledged file, line, payment and return exactly once and
//! nothing else; a last distribution run and `gateway verify` find the ledger whole.
//!
//! Seeded and printing its seed: `KILL_ANYWHERE_SEED=… KILL_ANYWHERE_KILLS=200 cargo test
//! --test kill_anywhere -- --nocapture` replays a run, or runs a longer one.
//! `KILL_ANYWHERE_CLIENTS` sets the number of clients per server.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{cli, Keys, Server};
use common::{Backend, Short, TestDb, SPEC_REGISTRY};
use gateway::domain::remittance::RawLine;
use gateway::domain::Money;
use gateway::grpc::client::{remittance_upload, with_key, GatewayChannel};
use gateway::grpc::proto;
use proto::distribution_service_client::DistributionServiceClient;
use proto::payment_service_client::PaymentServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;
use tonic::transport::Channel;
use tonic::Code;

/// splitmix64: small, seedable, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The obligors of the spec's registry a line or a payment can be for: (case, SSN).
const PEOPLE: [(&str, &str); 3] = [("12345678", "123-45-6789"), ("12345679", "123-45-6789"), ("22345678", "223-45-6789")];

/// One thing a client does, retried until it is acknowledged.
#[derive(Clone, Debug)]
enum Work {
    File { batch_id: String, format: proto::RemittanceFormat, bytes: Arc<Vec<u8>>, lines: u64, cents: i64 },
    Payment { payer_id: i64, case_number: &'static str, key: String, cents: i64 },
    Return { key: String, payment_id: i64 },
    Distribute,
}

/// What the server acknowledged.
#[derive(Clone, Debug)]
enum Answer {
    File(proto::RemittanceAcknowledgment),
    Payment(proto::PaymentReceipt),
    Return(proto::RecordReturnResponse),
    Distribute,
}

/// What the clients saw acknowledged, and how often they had to retry.
#[derive(Default)]
struct Seen {
    files: BTreeMap<String, (Work, proto::RemittanceAcknowledgment)>,
    payments: BTreeMap<String, (Work, proto::PaymentReceipt)>,
    returns: BTreeMap<String, proto::RecordReturnResponse>,
    distributions: u64,
    retried_calls: u64,
    answered_by_replay: u64,
}

/// The servers of the moment: each restarted on a new port after it is killed.
struct Shared {
    urls: Mutex<Vec<String>>,
    seen: Mutex<Seen>,
    stop: AtomicBool,
    keys: Keys,
    seed: u64,
    payers: Vec<(i64, &'static str)>,
}

fn a_file(rng: &mut Rng, batch_id: &str, index: u64) -> Work {
    let count = 1 + rng.below(12);
    let format = [proto::RemittanceFormat::Csv, proto::RemittanceFormat::Xml, proto::RemittanceFormat::Nacha][rng.below(3) as usize];
    // The first line's dollars are the file's index: no two files' bytes are the same, so
    // no file is refused as a duplicate of another.
    let lines: Vec<RawLine> = (0..count)
        .map(|line| {
            let (case, ssn) = PEOPLE[rng.below(PEOPLE.len() as u64) as usize];
            let cents = if line == 0 { (index as i64 + 1) * 100 } else { 1 + rng.below(50_000) as i64 };
            let nacha = format == proto::RemittanceFormat::Nacha;
            RawLine {
                line: line + 1,
                employer_fein: Some("431234567".into()),
                employer_name: Some("Acme".into()),
                case_number: Some(case.into()),
                employee_ssn: Some(ssn.replace('-', "")),
                last_name: Some("Smith".into()),
                pay_date: Some(if nacha { "261113" } else { "2026-11-13" }.into()),
                amount: Some(Money::from_cents(cents).to_string()),
                ..RawLine::default()
            }
        })
        .collect();
    let cents = lines.iter().map(|l| Money::parse(l.amount.as_deref().unwrap()).unwrap().cents()).sum();
    let bytes = match format {
        proto::RemittanceFormat::Csv => gateway::formats::csv_remittance::write_csv(&lines),
        proto::RemittanceFormat::Xml => gateway::formats::xml_remittance::write_xml(batch_id, &lines),
        _ => gateway::formats::nacha::writer::write_lines("ACME", "431234567", &lines),
    };
    Work::File { batch_id: batch_id.to_owned(), format, bytes: Arc::new(bytes), lines: count, cents }
}

async fn connect(url: &str, token: &str) -> Result<GatewayChannel, tonic::Status> {
    let endpoint = Channel::from_shared(url.to_owned()).unwrap().connect_timeout(Duration::from_secs(2)).timeout(Duration::from_secs(60));
    let channel = endpoint.connect().await.map_err(|e| tonic::Status::unavailable(format!("connect: {e}")))?;
    Ok(with_key(channel, token).unwrap())
}

/// One attempt at `work` on server `replica` (of those there are) as it is at the moment.
async fn attempt(shared: &Shared, work: &Work, replica: usize) -> Result<Answer, tonic::Status> {
    let url = {
        let urls = shared.urls.lock().unwrap();
        urls[replica % urls.len()].clone()
    };
    match work {
        Work::File { batch_id, format, bytes, .. } => {
            let channel = connect(&url, &shared.keys.vendor).await?;
            let header = proto::RemittanceHeader { format: *format as i32, batch_id: batch_id.clone(), ..Default::default() };
            let messages = remittance_upload(header, bytes, 1 << 12);
            let response = RemittanceServiceClient::new(channel).submit_remittance(futures::stream::iter(messages)).await?;
            Ok(Answer::File(response.into_inner().acknowledgment.expect("an acknowledgment")))
        }
        Work::Payment { payer_id, case_number, key, cents } => {
            let channel = connect(&url, &shared.keys.payment_site).await?;
            let request = proto::SubmitPaymentRequest {
                payer_id: *payer_id,
                case_number: (*case_number).into(),
                amount: Money::from_cents(*cents).to_string(),
                channel: proto::PaymentChannel::Web as i32,
                idempotency_key: key.clone(),
            };
            let response = PaymentServiceClient::new(channel).submit_payment(request).await?;
            Ok(Answer::Payment(response.into_inner().receipt.expect("a receipt")))
        }
        Work::Return { payment_id, .. } => {
            let channel = connect(&url, &shared.keys.back_office).await?;
            let request = proto::RecordReturnRequest { payment_id: *payment_id, return_code: "R01".into() };
            Ok(Answer::Return(PaymentServiceClient::new(channel).record_return(request).await?.into_inner()))
        }
        Work::Distribute => {
            let channel = connect(&url, &shared.keys.back_office).await?;
            DistributionServiceClient::new(channel).run_distribution(proto::RunDistributionRequest {}).await?;
            Ok(Answer::Distribute)
        }
    }
}

/// What a killed server, a restarting one or a busy one answers: the call may or may not
/// have been applied, and a retry with the same id is the way to learn which.
/// (A panic would also answer UNKNOWN: the harness fails on any panic in a server's log.)
fn worth_retrying(status: &tonic::Status) -> bool {
    use tonic_types::StatusExt;
    match status.code() {
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::Aborted | Code::DeadlineExceeded => true,
        // Rate limits say when to retry; a limit the request itself is over does not.
        Code::ResourceExhausted => status.get_details_retry_info().is_some(),
        _ => false,
    }
}

/// Calls until acknowledged, each attempt on the next replica; returns the answer and how
/// many attempts it took.
async fn until_acknowledged(shared: &Shared, work: &Work, first_replica: usize) -> (Answer, u64) {
    let started = Instant::now();
    for attempts in 1.. {
        match attempt(shared, work, first_replica + attempts as usize - 1).await {
            Ok(answer) => return (answer, attempts),
            Err(status) if worth_retrying(&status) && started.elapsed() < Duration::from_secs(120) => {
                tokio::time::sleep(Duration::from_millis(10 + 10 * attempts.min(20))).await;
            }
            Err(status) => panic!("seed {}: {work:?} was refused: {status:?}", shared.seed),
        }
    }
    unreachable!()
}

/// One client: draws work at random until told to stop, each piece retried until acknowledged.
async fn client(shared: Arc<Shared>, number: u64) {
    let mut rng = Rng(shared.seed ^ (number + 1).wrapping_mul(0xA24B_AED4_963E_E407));
    let mut own_payments: Vec<(String, i64)> = Vec::new();
    let mut index = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        index += 1;
        let work = match rng.below(20) {
            0..=7 => a_file(&mut rng, &format!("K{number}-{index}"), number * 1_000_000 + index),
            8..=14 => {
                let (payer_id, case_number) = shared.payers[rng.below(shared.payers.len() as u64) as usize];
                Work::Payment { payer_id, case_number, key: format!("P{number}-{index}"), cents: 100 + rng.below(20_000) as i64 }
            }
            15..=16 if !own_payments.is_empty() => {
                let (key, payment_id) = own_payments.swap_remove(rng.below(own_payments.len() as u64) as usize);
                Work::Return { key, payment_id }
            }
            _ => Work::Distribute,
        };
        let (answer, attempts) = until_acknowledged(&shared, &work, rng.below(1 << 16) as usize).await;
        let mut seen = shared.seen.lock().unwrap();
        seen.retried_calls += attempts - 1;
        match (&work, answer) {
            (Work::File { batch_id, lines, cents, .. }, Answer::File(ack)) => {
                assert_eq!(ack.status().short(), "ACCEPTED", "seed {}: {batch_id}: {ack:?}", shared.seed);
                assert_eq!((ack.applied, ack.total_amount.clone()), (*lines, Money::from_cents(*cents).to_string()), "seed {}", shared.seed);
                assert!(!ack.replayed || attempts > 1, "seed {}: a first send is never a replay", shared.seed);
                seen.answered_by_replay += u64::from(ack.replayed);
                seen.files.insert(batch_id.clone(), (work.clone(), ack));
            }
            (Work::Payment { key, cents, .. }, Answer::Payment(receipt)) => {
                assert_eq!(receipt.amount, Money::from_cents(*cents).to_string(), "seed {}", shared.seed);
                own_payments.push((key.clone(), receipt.payment_id));
                seen.payments.insert(key.clone(), (work.clone(), receipt));
            }
            (Work::Return { key, .. }, Answer::Return(response)) => {
                let outcome = response.outcome().short();
                let first_time = matches!(outcome, "REVERSED" | "CANCELLED");
                assert!(first_time || (outcome == "ALREADY_RETURNED" && attempts > 1), "seed {}: {key}: {response:?}", shared.seed);
                seen.answered_by_replay += u64::from(!first_time);
                seen.returns.insert(key.clone(), response);
            }
            (Work::Distribute, Answer::Distribute) => seen.distributions += 1,
            (work, answer) => panic!("{work:?} answered with {answer:?}"),
        }
    }
}

/// The count and sum of `sql` (two integer columns) read directly from the database.
async fn count_and_sum(url: &str, sql: &str) -> (i64, i64) {
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_one(&pool).await.unwrap()
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query_as(sql).fetch_one(&pool).await.unwrap()
    }
}

fn from_environment(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name} is a number")))
}

fn kill_anywhere(backend: Backend, replicas: usize) {
    let seed = from_environment("KILL_ANYWHERE_SEED").unwrap_or_else(|| {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).unwrap();
        u64::from_le_bytes(bytes)
    });
    let kills = from_environment("KILL_ANYWHERE_KILLS").unwrap_or(20);
    let clients = from_environment("KILL_ANYWHERE_CLIENTS").unwrap_or(4) * replicas as u64;
    println!("kill-anywhere on {backend:?}, {replicas} server(s): seed {seed}, {kills} kills, {clients} clients");
    let started = Instant::now();
    let mut rng = Rng(seed);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let db = runtime.block_on(TestDb::new(backend));
    let keys = Keys::make(&db.url);
    let mut servers: Vec<Server> = (0..replicas).map(|_| Server::start_with(&db.url, keys.clone())).collect();
    // The notable log lines of every server started, to fail on any panic.
    let mut logs: Vec<_> = servers.iter().map(|s| s.notable.clone()).collect();
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.csv");
    std::fs::write(&registry, SPEC_REGISTRY).unwrap();
    assert_eq!(cli(&servers[0], &keys.back_office, &["registry", "import", registry.to_str().unwrap()]).0, 0);
    let payers = runtime.block_on(register_payers(&servers[0].url, &keys));

    let shared = Arc::new(Shared {
        urls: Mutex::new(servers.iter().map(|s| s.url.clone()).collect()),
        seen: Mutex::new(Seen::default()),
        stop: AtomicBool::new(false),
        keys: keys.clone(),
        seed,
        payers,
    });
    let tasks: Vec<_> = (0..clients).map(|number| runtime.spawn(client(shared.clone(), number))).collect();

    // The killer: one server at a time, at a random moment, or at a named point inside a
    // transaction it reaches itself (armed on about half the restarts, at its 1st to 3rd
    // time there). The others keep serving meanwhile.
    let mut at_points: BTreeMap<&str, u64> = BTreeMap::new();
    let (mut at_random, mut armed_but_not_reached) = (0u64, 0u64);
    let mut armed: Option<(usize, &str)> = None;
    for _ in 0..kills {
        let victim = armed.map_or_else(|| rng.below(replicas as u64) as usize, |(replica, _)| replica);
        let server = &mut servers[victim];
        let deadline = Instant::now() + Duration::from_millis(if armed.is_some() { 5_000 } else { 20 + rng.below(400) });
        while Instant::now() < deadline && server.child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(2));
        }
        match (server.child.try_wait().unwrap(), armed) {
            (Some(status), Some((_, point))) => {
                use std::os::unix::process::ExitStatusExt;
                // Killed by itself at that point, not dead of anything else.
                let reached = format!("crash point {point} reached");
                assert_eq!(status.signal(), Some(9), "seed {seed}: SIGKILL at {point}, not {status:?}");
                // The log's last line may still be on its way through the pipe.
                let logged = || server.notable.lock().unwrap().iter().any(|l| l.contains(&reached));
                let waited = Instant::now();
                while !logged() && waited.elapsed() < Duration::from_secs(5) {
                    std::thread::sleep(Duration::from_millis(10));
                }
                assert!(logged(), "seed {seed}: {reached}");
                *at_points.entry(point).or_default() += 1;
            }
            (Some(status), None) => panic!("seed {seed}: the server died by itself: {status:?}"),
            (None, point) => {
                server.kill();
                at_random += 1;
                armed_but_not_reached += u64::from(point.is_some());
            }
        }
        armed = (rng.below(2) == 0).then(|| (victim, gateway::crash_points::POINTS[rng.below(gateway::crash_points::POINTS.len() as u64) as usize]));
        let crash_at = armed.map(|(_, point)| format!("{point}:{}", 1 + rng.below(3)));
        let env: Vec<(&str, &str)> = crash_at.iter().map(|value| (gateway::crash_points::VARIABLE, value.as_str())).collect();
        *server = Server::start_with_env(&db.url, keys.clone(), &[], &env);
        logs.push(server.notable.clone());
        shared.urls.lock().unwrap()[victim] = server.url.clone();
    }
    // Servers no one kills: every client finishes what it started.
    if let Some((replica, _)) = armed {
        servers[replica].kill();
        servers[replica] = Server::start_with(&db.url, keys.clone());
        logs.push(servers[replica].notable.clone());
        shared.urls.lock().unwrap()[replica] = servers[replica].url.clone();
    }
    shared.stop.store(true, Ordering::SeqCst);
    for task in tasks {
        runtime.block_on(task).expect("a client finished");
    }

    let seen = std::mem::take(&mut *shared.seen.lock().unwrap());
    runtime.block_on(every_resend_gets_the_first_acknowledgment(&shared, &seen));
    runtime.block_on(the_database_holds_what_was_acknowledged_once(&db.url, &seen));
    let (code, out, err) = cli(&servers[0], &keys.back_office, &["distribute"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(&servers[replicas - 1], &keys.back_office, &["verify"]);
    assert_eq!(code, 0, "seed {seed}: {out}{err}");
    assert!(out.contains("The ledger is whole."), "{out}");

    let named: u64 = at_points.values().sum();
    println!(
        "kill-anywhere on {backend:?}, {replicas} server(s), seed {seed}: {} kills ({at_random} at a random moment, of which \
         {armed_but_not_reached} armed but not reached; {named} at named points: {at_points:?}) in {:.1} s",
        at_random + named,
        started.elapsed().as_secs_f64()
    );
    println!(
        "  acknowledged: {} files ({} lines), {} payments, {} returns, {} distribution runs; {} calls retried, {} answered by a replay \
         of a commit the client had not seen; every resend answered with the first acknowledgment; verify clean",
        seen.files.len(),
        seen.files.values().map(|(_, ack)| ack.applied).sum::<u64>(),
        seen.payments.len(),
        seen.returns.len(),
        seen.distributions,
        seen.retried_calls,
        seen.answered_by_replay
    );
    assert!(at_random + named == kills);
    assert!(kills < 10 || named > 0, "seed {seed}: some kills were at named points");
    let panics: Vec<String> = logs.iter().flat_map(|log| log.lock().unwrap().clone()).filter(|l| l.contains("panicked")).collect();
    assert!(panics.is_empty(), "seed {seed}: a server panicked: {panics:?}");
    assert!(!seen.files.is_empty() && !seen.payments.is_empty(), "seed {seed}: the clients did work");
}

/// OB-1 and OB-2 register as payers, their accounts confirmed by the back office.
async fn register_payers(url: &str, keys: &Keys) -> Vec<(i64, &'static str)> {
    let site = connect(url, &keys.payment_site).await.unwrap();
    let office = connect(url, &keys.back_office).await.unwrap();
    let mut payers = Vec::new();
    for (case, ssn) in [PEOPLE[0], PEOPLE[2]] {
        let mut request = common::registration_with_account("000123456789");
        (request.case_number, request.ssn) = (case.into(), ssn.into());
        let payer = PaymentServiceClient::new(site.clone()).register_payer(request).await.unwrap().into_inner().payer.unwrap();
        let confirm = proto::ConfirmBankAccountRequest { payer_id: payer.payer_id };
        PaymentServiceClient::new(office.clone()).confirm_bank_account(confirm).await.unwrap();
        payers.push((payer.payer_id, case));
    }
    payers
}

async fn every_resend_gets_the_first_acknowledgment(shared: &Shared, seen: &Seen) {
    for (batch_id, (work, first)) in &seen.files {
        let Answer::File(again) = until_acknowledged(shared, work, batch_id.len()).await.0 else { unreachable!() };
        assert!(again.replayed, "{batch_id}");
        assert_eq!(proto::RemittanceAcknowledgment { replayed: first.replayed, ..again }, *first, "seed {}: {batch_id}", shared.seed);
    }
    for (key, (work, first)) in &seen.payments {
        let Answer::Payment(again) = until_acknowledged(shared, work, key.len()).await.0 else { unreachable!() };
        // Its status may have changed since (a return), never what was taken.
        assert_eq!((again.payment_id, &again.amount, &again.effective_date), (first.payment_id, &first.amount, &first.effective_date), "{key}");
    }
}

async fn the_database_holds_what_was_acknowledged_once(url: &str, seen: &Seen) {
    let files = count_and_sum(url, "SELECT COUNT(*), CAST(COALESCE(SUM(total_cents), 0) AS BIGINT) FROM remittances").await;
    let expected_cents: i64 = seen.files.values().map(|(work, _)| if let Work::File { cents, .. } = work { *cents } else { 0 }).sum();
    assert_eq!(files, (seen.files.len() as i64, expected_cents), "each acknowledged file once, and no other");
    let lines = count_and_sum(url, "SELECT COUNT(*), CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM collections WHERE source = 'PAYROLL'").await;
    let expected_lines: u64 = seen.files.values().map(|(_, ack)| ack.applied).sum();
    assert_eq!(lines, (expected_lines as i64, expected_cents), "one collection per acknowledged line");
    let payments = count_and_sum(url, "SELECT COUNT(*), CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM payments").await;
    let paid: i64 = seen.payments.values().map(|(work, _)| if let Work::Payment { cents, .. } = work { *cents } else { 0 }).sum();
    assert_eq!(payments, (seen.payments.len() as i64, paid), "each acknowledged payment once, and no other");
    let online = count_and_sum(url, "SELECT COUNT(*), CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM collections WHERE source = 'ONLINE'").await;
    assert_eq!(online, payments, "one collection per payment");
    let returned = count_and_sum(url, "SELECT COUNT(*), CAST(COALESCE(SUM(payment_id), 0) AS BIGINT) FROM payments WHERE return_code IS NOT NULL").await;
    let ids: i64 = seen.returns.values().map(|r| r.payment_id).sum();
    assert_eq!(returned, (seen.returns.len() as i64, ids), "the acknowledged returns' payments returned, and no other");
}

#[test]
fn a_server_killed_anywhere_loses_nothing_acknowledged_and_applies_nothing_twice_on_sqlite() {
    kill_anywhere(Backend::Sqlite, 1);
}

#[test]
fn a_server_killed_anywhere_loses_nothing_acknowledged_and_applies_nothing_twice_on_postgres() {
    kill_anywhere(Backend::Postgres, 1);
}

#[test]
fn three_replicas_on_one_postgres_killed_in_turn_distribute_nothing_twice_and_lose_nothing() {
    kill_anywhere(Backend::Postgres, 3);
}

/// A PostgreSQL cluster of its own, run as the `postgres` user, stopped when dropped.
struct Cluster {
    dir: std::path::PathBuf,
    port: u16,
}

/// A server program of the installed PostgreSQL, where `pg_config` says they are.
fn postgres_program(name: &str) -> std::path::PathBuf {
    let output = std::process::Command::new("pg_config").arg("--bindir").output().expect("pg_config (PostgreSQL's server package)");
    std::path::PathBuf::from(String::from_utf8(output.stdout).unwrap().trim()).join(name)
}

fn running_as_root() -> bool {
    std::process::Command::new("id").arg("-u").output().unwrap().stdout == b"0\n"
}

/// A PostgreSQL program, run as the `postgres` user when we are root (PostgreSQL refuses
/// to run as root).
fn postgres_command(program: &str) -> std::process::Command {
    let program = postgres_program(program);
    if running_as_root() {
        let mut command = std::process::Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(&program);
        command
    } else {
        std::process::Command::new(&program)
    }
}

fn as_postgres(program: &str, args: &[&str]) {
    let output = postgres_command(program).args(args).output().unwrap();
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Cluster {
    fn start(&self) {
        let log = self.dir.with_extension("log");
        as_postgres("pg_ctl", &["-D", self.dir.to_str().unwrap(), "-l", log.to_str().unwrap(), "-w", "start"]);
    }

    fn append_settings(&self, settings: &str) {
        use std::io::Write;
        let mut conf = std::fs::OpenOptions::new().append(true).open(self.dir.join("postgresql.conf")).unwrap();
        writeln!(conf, "{settings}").unwrap();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = postgres_command("pg_ctl").args(["-D", self.dir.to_str().unwrap(), "-m", "immediate", "stop"]).output();
    }
}

/// A primary and a synchronous standby streaming from it, in `base`.
fn primary_and_standby(base: &std::path::Path) -> (Cluster, Cluster) {
    let primary = Cluster { dir: base.join("primary"), port: free_port() };
    as_postgres("initdb", &["-D", primary.dir.to_str().unwrap(), "-U", "postgres", "-A", "trust", "--no-sync"]);
    // synchronous_standby_names: a commit is acknowledged only once the standby has it, so
    // the standby holds every acknowledged file and payment when it is promoted.
    primary.append_settings(&format!(
        "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nwal_level = replica\nmax_wal_senders = 4\n\
         synchronous_standby_names = '*'\nsynchronous_commit = on",
        primary.port,
        base.display()
    ));
    primary.start();
    let standby = Cluster { dir: base.join("standby"), port: free_port() };
    let port = primary.port.to_string();
    as_postgres("pg_basebackup", &["-h", "127.0.0.1", "-p", &port, "-U", "postgres", "-D", standby.dir.to_str().unwrap(), "-R", "-X", "stream"]);
    // Promoted, the standby is a primary without a standby of its own: it must not wait for one.
    standby.append_settings(&format!("port = {}\nsynchronous_standby_names = ''", standby.port));
    standby.start();
    (primary, standby)
}

/// Database failover (#13, item 5): the gateway's URL lists a primary and its synchronous
/// standby; while four clients send files, payments, returns and runs, the primary is
/// stopped (immediate: as a crash) and the standby promoted. The gateway moves to the new
/// primary by itself, the clients' retries succeed, and the new primary holds every
/// acknowledged file and payment exactly once; verify is clean.
#[test]
fn a_failover_to_the_synchronous_standby_loses_nothing_acknowledged() {
    let base = tempfile::tempdir().unwrap();
    if running_as_root() {
        // The clusters run as the postgres user, in a folder of theirs.
        let owner = std::process::Command::new("chown").args(["postgres:postgres", base.path().to_str().unwrap()]).status().unwrap();
        assert!(owner.success());
    }
    let (primary, standby) = primary_and_standby(base.path());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write", primary.port, standby.port);
    runtime.block_on(async {
        // Synchronous from the start: the primary lists the standby as its sync standby.
        let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&format!("postgres://postgres@127.0.0.1:{}/postgres", primary.port)).await.unwrap();
        for _ in 0..100 {
            let state: Option<String> = sqlx::query_scalar("SELECT sync_state FROM pg_stat_replication").fetch_optional(&mut connection).await.unwrap();
            if state.as_deref() == Some("sync") {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the standby never became synchronous");
    });

    let seed = 5;
    let keys = Keys::make(&url);
    let server = Server::start_with(&url, keys.clone());
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.csv");
    std::fs::write(&registry, SPEC_REGISTRY).unwrap();
    assert_eq!(cli(&server, &keys.back_office, &["registry", "import", registry.to_str().unwrap()]).0, 0);
    let payers = runtime.block_on(register_payers(&server.url, &keys));
    let shared = Arc::new(Shared {
        urls: Mutex::new(vec![server.url.clone()]),
        seen: Mutex::new(Seen::default()),
        stop: AtomicBool::new(false),
        keys: keys.clone(),
        seed,
        payers,
    });
    let tasks: Vec<_> = (0..4).map(|number| runtime.spawn(client(shared.clone(), number))).collect();
    std::thread::sleep(Duration::from_secs(2));
    let count = |seen: &Seen| seen.files.len() + seen.payments.len();
    let before = count(&shared.seen.lock().unwrap());

    // The primary crashes; a moment later the standby is promoted.
    as_postgres("pg_ctl", &["-D", primary.dir.to_str().unwrap(), "-m", "immediate", "stop"]);
    let failed_at = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    as_postgres("pg_ctl", &["-D", standby.dir.to_str().unwrap(), "-w", "promote"]);
    // The gateway finds the new primary by itself; traffic goes on a while there.
    let moved = || server.notable.lock().unwrap().iter().any(|l| l.contains("moved to the new primary"));
    while !moved() {
        assert!(failed_at.elapsed() < Duration::from_secs(60), "the gateway never moved to the new primary");
        std::thread::sleep(Duration::from_millis(20));
    }
    let resumed = failed_at.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    assert!(count(&shared.seen.lock().unwrap()) > before, "work was acknowledged around the failover");
    shared.stop.store(true, Ordering::SeqCst);
    for task in tasks {
        runtime.block_on(task).expect("a client finished");
    }

    let seen = std::mem::take(&mut *shared.seen.lock().unwrap());
    runtime.block_on(every_resend_gets_the_first_acknowledgment(&shared, &seen));
    let new_primary = format!("postgres://postgres@127.0.0.1:{}/postgres", standby.port);
    runtime.block_on(the_database_holds_what_was_acknowledged_once(&new_primary, &seen));
    let (code, out, err) = cli(&server, &keys.back_office, &["distribute"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = cli(&server, &keys.back_office, &["verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("The ledger is whole."), "{out}");
    let panics: Vec<String> = server.notable.lock().unwrap().iter().filter(|l| l.contains("panicked")).cloned().collect();
    assert!(panics.is_empty(), "{panics:?}");
    println!(
        "failover: {before} files and payments acknowledged before the primary stopped, {} in all; the gateway moved to the \
         new primary {:.1} s after the crash (the standby promoted after 0.5 s); {} calls retried; every acknowledged file \
         and payment on the new primary, once; verify clean",
        count(&seen),
        resumed.as_secs_f64(),
        seen.retried_calls
    );
    drop((primary, standby));
}
