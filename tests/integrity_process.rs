//! Regressions for the integrity issue's findings about the server as a process: its memory
//! under hostile files, connections that never speak, shutdown, and the command line. The
//! server runs as `gateway serve`, so its own peak memory can be read and it can be signalled.

mod common;

use common::Short;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::process::{cli, server_with_registry, Keys, Server, GATEWAY};
use common::{TestDb, SPEC_REGISTRY};
use gateway::grpc::client::{registry_upload, remittance_upload, with_key};
use gateway::grpc::proto;
use proto::registry_service_client::RegistryServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;
use tonic::transport::Channel;

const CSV_HEADER: &str = "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n";
const MIB: usize = 1 << 20;

async fn channel(server: &Server, token: &str) -> gateway::grpc::client::GatewayChannel {
    let channel = Channel::from_shared(server.url.clone()).unwrap().connect().await.expect("connect");
    with_key(channel, token).unwrap()
}

async fn submit(server: &Server, format: proto::RemittanceFormat, batch_id: &str, file: &[u8]) -> proto::RemittanceAcknowledgment {
    let header = proto::RemittanceHeader { format: format as i32, batch_id: batch_id.into(), ..Default::default() };
    let messages = remittance_upload(header, file, MIB);
    let mut client = RemittanceServiceClient::new(channel(server, &server.keys.vendor).await);
    client.submit_remittance(futures::stream::iter(messages)).await.expect("an acknowledgment").into_inner().acknowledgment.unwrap()
}

/// A refused acknowledgment's problem: its code and its message.
fn refusal(ack: &proto::RemittanceAcknowledgment) -> (String, String) {
    assert_eq!(ack.status().short(), "REFUSED");
    let problem = ack.file_problem.clone().expect("a reason");
    (problem.code, problem.message)
}

// 3. One vendor or employer key can push the server to gigabytes.

#[tokio::test]
async fn hostile_records_are_stopped_at_their_limit_with_the_servers_memory_bounded() {
    let db = TestDb::new_blocking();
    let server = Server::start(&db.url);
    let ordinary = format!("{CSV_HEADER}43-1234567,12345678,123-45-6789,Smith,2026-11-13,5.00\n");
    assert_eq!(submit(&server, proto::RemittanceFormat::Csv, "WARM", ordinary.as_bytes()).await.status().short(), "ACCEPTED");
    let baseline = server.peak_resident_bytes();

    let huge = "x".repeat(64 * MIB);
    let namespace = "<Remittance xmlns=\"urn:mo-fspc:remittance:1\">";
    let csv = proto::RemittanceFormat::Csv;
    let xml = proto::RemittanceFormat::Xml;
    let cases = [
        ("a 64 MiB CSV header", csv, huge.clone()),
        ("a 64 MiB unclosed CSV quote", csv, format!("{CSV_HEADER}43-1234567,\"{huge}")),
        ("a 64 MiB XML text node", xml, format!("{namespace}<Header><BatchId>{huge}")),
        ("a 64 MiB XML attribute", xml, format!("<Remittance xmlns=\"urn:mo-fspc:remittance:1\" note=\"{huge}\">")),
        ("a 64 MiB XML comment", xml, format!("{namespace}<!--{huge}-->")),
        ("a 64 MiB XML element name", xml, format!("{namespace}<{huge}>")),
    ];
    for (index, (what, format, file)) in cases.iter().enumerate() {
        let ack = submit(&server, *format, &format!("HOSTILE-{index}"), file.as_bytes()).await;
        let (code, message) = refusal(&ack);
        assert_eq!(code, "RECORD_TOO_LONG", "{what}: {message}");
        assert!(message.len() < 200, "{what}: the answer quotes nothing long: {} bytes", message.len());
    }

    // Under the limit, an unknown name is refused by name, cut to a few dozen characters.
    let long_name = "N".repeat(60_000);
    let ack = submit(&server, xml, "LONG-NAME", format!("{namespace}<{long_name}>").as_bytes()).await;
    let (code, message) = refusal(&ack);
    assert_eq!(code, "XML_UNKNOWN_ELEMENT");
    assert!(message.len() < 200 && message.contains('…'), "{message}");
    let ack = submit(&server, csv, "LONG-COLUMN", format!("{long_name}\n1\n").as_bytes()).await;
    let (code, message) = refusal(&ack);
    assert_eq!(code, "HEADER_UNKNOWN_COLUMN");
    assert!(message.len() < 400 && message.contains('…'), "{message}");

    // The registry import parses as the file streams in: the same bound.
    let registry = format!("{}\"{huge}", SPEC_REGISTRY);
    let mut registry_client = RegistryServiceClient::new(channel(&server, &server.keys.back_office).await);
    let answer = registry_client.import_registry(futures::stream::iter(registry_upload(registry.as_bytes(), MIB))).await;
    let answer = answer.expect("an answer").into_inner();
    assert!(!answer.applied);
    assert_eq!(answer.problems.iter().map(|p| p.code.as_str()).collect::<Vec<_>>(), ["RECORD_TOO_LONG"]);

    let growth = server.peak_resident_bytes().saturating_sub(baseline);
    println!("server peak memory grew by {:.1} MiB over 7 files of 64 MiB", growth as f64 / MIB as f64);
    assert!(growth < 40 * MIB as u64, "holding one of the files would grow the peak by 64 MiB; it grew by {growth} bytes");
}

/// A gibibyte of garbage, streamed (never held whole by the client either): the server spools
/// it to disk while hashing it, refuses it, and its memory stays bounded.
#[tokio::test]
async fn a_gibibyte_of_garbage_is_refused_with_the_servers_memory_bounded() {
    use sha2::{Digest, Sha256};
    let db = TestDb::new_blocking();
    let server = Server::start(&db.url);
    let ordinary = format!("{CSV_HEADER}43-1234567,12345678,123-45-6789,Smith,2026-11-13,5.00\n");
    assert_eq!(submit(&server, proto::RemittanceFormat::Csv, "WARM", ordinary.as_bytes()).await.status().short(), "ACCEPTED");
    let baseline = server.peak_resident_bytes();

    // 1 MiB of bytes of every value (line breaks and quotes included), 1,024 times.
    let piece: Vec<u8> = (0..MIB).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let pieces = 1024usize;
    let mut hasher = Sha256::new();
    for _ in 0..pieces {
        hasher.update(&piece);
    }
    let end = proto::UploadEnd { byte_count: (pieces * MIB) as u64, sha256: hex::encode(hasher.finalize()) };
    use proto::submit_remittance_request::Part;
    let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: "GARBAGE".into(), ..Default::default() };
    let messages = futures::stream::iter(
        std::iter::once(Part::Header(header))
            .chain(std::iter::repeat_with(move || Part::Chunk(piece.clone())).take(pieces))
            .chain(std::iter::once(Part::End(end)))
            .map(|part| proto::SubmitRemittanceRequest { part: Some(part) }),
    );
    let started = Instant::now();
    let mut client = RemittanceServiceClient::new(channel(&server, &server.keys.vendor).await);
    let ack = client.submit_remittance(messages).await.expect("an acknowledgment").into_inner().acknowledgment.unwrap();
    let (code, message) = refusal(&ack);
    assert!(message.len() < 200, "{code}: the answer quotes nothing long");
    let growth = server.peak_resident_bytes().saturating_sub(baseline);
    println!(
        "1 GiB of garbage refused ({code}) in {:.1} s; server peak memory grew by {:.1} MiB",
        started.elapsed().as_secs_f64(),
        growth as f64 / MIB as f64
    );
    assert!(growth < 40 * MIB as u64, "the server's peak grew by {growth} bytes");
    let (status, listed, _) = cli(&server, &server.keys.vendor, &["remit", "list"]);
    assert_eq!(status, 0);
    assert!(!listed.contains("GARBAGE"), "nothing of it is kept: {listed}");
}

// 4. Connections that never speak hold resources forever; SIGTERM waits for idle sockets.

async fn health(server: &Server) -> Result<(), String> {
    let channel = Channel::from_shared(server.url.clone()).unwrap().connect_timeout(Duration::from_secs(2));
    let channel = channel.connect().await.map_err(|e| e.to_string())?;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let request = tonic_health::pb::HealthCheckRequest { service: String::new() };
    tokio::time::timeout(Duration::from_secs(3), client.check(request))
        .await
        .map_err(|_| "no answer".to_owned())?
        .map(drop)
        .map_err(|e| e.to_string())
}

/// Reads until the peer closes (or 5 s pass): true when the server closed the connection.
fn closed_by_peer(mut socket: std::net::TcpStream) -> bool {
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut byte = [0u8; 1];
    match socket.read(&mut byte) {
        Ok(0) => true,
        Err(error) => error.kind() == std::io::ErrorKind::ConnectionReset,
        Ok(_) => false,
    }
}

#[tokio::test]
async fn silent_connections_are_closed_at_their_deadline_and_past_the_cap_at_once() {
    let db = TestDb::new_blocking();
    let args = ["--handshake-timeout-seconds", "3", "--max-connections", "50"];
    let server = Server::start_with_args(&db.url, Keys::make(&db.url), &args);
    let mut silent: Vec<std::net::TcpStream> = (0..200).map(|_| std::net::TcpStream::connect(server.address()).unwrap()).collect();
    // Some start the HTTP/2 preface and stop: no better than silent.
    for socket in silent.iter_mut().take(20) {
        std::io::Write::write_all(socket, b"PRI * HTTP").unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(health(&server).await.is_err(), "with 50 silent connections open, a 51st is closed at once");

    let started = Instant::now();
    let closed = tokio::task::spawn_blocking(move || silent.into_iter().filter(|s| closed_by_peer(s.try_clone().unwrap())).count());
    assert_eq!(closed.await.unwrap(), 200, "every silent connection was closed by the server");
    assert!(started.elapsed() < Duration::from_secs(8), "within the 3 s deadline (and some slack)");
    health(&server).await.expect("once they are gone, a real call is served");
}

#[tokio::test]
async fn sigterm_closes_idle_connections_at_once_and_bounds_calls_in_flight() {
    let db = TestDb::new_blocking();
    let mut server = Server::start_with_args(&db.url, Keys::make(&db.url), &["--shutdown-grace-seconds", "2"]);
    // An HTTP/2 connection left idle after a call, sockets that never spoke, and an upload
    // that never ends.
    health(&server).await.unwrap();
    let idle = Channel::from_shared(server.url.clone()).unwrap().connect().await.unwrap();
    let _silent: Vec<std::net::TcpStream> = (0..5).map(|_| std::net::TcpStream::connect(server.address()).unwrap()).collect();
    let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: "HELD".into(), ..Default::default() };
    let held = futures::stream::iter(remittance_upload(header, CSV_HEADER.as_bytes(), MIB).into_iter().take(2))
        .chain(futures::stream::pending());
    let mut client = RemittanceServiceClient::new(with_key(idle.clone(), &server.keys.vendor).unwrap());
    let in_flight = tokio::spawn(async move { client.submit_remittance(held).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    assert!(Command::new("kill").args(["-TERM", &server.child.id().to_string()]).status().unwrap().success());
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the server is still waiting on its connections");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(6), "stopped within the 2 s grace: {:?}", started.elapsed());
    assert!(in_flight.await.unwrap().is_err(), "the held upload was not accepted");
    drop(idle);
}

use futures::StreamExt;

// 7. The command line.

/// Runs a client command, reads one line of its output and closes the pipe.
fn first_line_then_close(server: &Server, token: &str, args: &[&str]) -> (String, std::process::ExitStatus, String) {
    let mut child = Command::new(GATEWAY)
        .args(["--server", &server.url])
        .args(args)
        .env("GATEWAY_TOKEN", token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    // The reader is gone: the rest of the output has nowhere to go.
    let status = child.wait().unwrap();
    let mut errors = String::new();
    child.stderr.take().unwrap().read_to_string(&mut errors).unwrap();
    (first, status, errors)
}

fn ended_quietly(status: std::process::ExitStatus, errors: &str) -> bool {
    use std::os::unix::process::ExitStatusExt;
    let quiet_exit = status.success() || status.signal() == Some(13); // SIGPIPE, as `head` leaves `seq`
    quiet_exit && !errors.contains("panicked") && !errors.contains("Broken pipe")
}

#[test]
fn output_piped_into_a_reader_that_stops_early_ends_quietly() {
    let db = TestDb::new_blocking();
    let (server, dir) = server_with_registry(&db);
    // 3,000 lines identified by SSN: a warning each, hundreds of kilobytes of acknowledgment.
    let mut csv = CSV_HEADER.to_owned();
    for line in 0..3_000 {
        csv.push_str(&format!("43-1234567,,123-45-6789,Smith,2026-11-13,{}.00\n", 1 + line % 90));
    }
    let file = dir.path().join("warnings.csv");
    std::fs::write(&file, csv).unwrap();
    let (first, status, errors) = first_line_then_close(
        &server,
        &server.keys.vendor,
        &["remit", "submit", "--format", "csv", "--batch-id", "MANY-WARNINGS", file.to_str().unwrap()],
    );
    assert!(first.starts_with("Batch MANY-WARNINGS ACCEPTED"), "{first}");
    assert!(ended_quietly(status, &errors), "{status:?}: {errors}");

    assert_eq!(cli(&server, &server.keys.back_office, &["distribute"]).0, 0);
    let (first, status, errors) = first_line_then_close(&server, &server.keys.back_office, &["export", "allocations"]);
    assert!(first.starts_with("run_id,"), "{first}");
    assert!(ended_quietly(status, &errors), "{status:?}: {errors}");
}

#[test]
fn out_dash_is_standard_output_and_usage_errors_exit_2_as_documented() {
    let db = TestDb::new_blocking();
    let (server, dir) = server_with_registry(&db);
    let output = Command::new(GATEWAY)
        .current_dir(dir.path())
        .args(["--server", &server.url, "export", "suspense", "--out", "-"])
        .env("GATEWAY_TOKEN", &server.keys.back_office)
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8(output.stdout).unwrap().starts_with("batch_id,"));
    assert!(!dir.path().join("-").exists(), "no file named `-`");

    let usage = Command::new(GATEWAY).args(["remit", "submit", "--format", "csv"]).output().unwrap();
    assert_eq!(usage.status.code(), Some(2));
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains("`2` the command line itself is wrong"), "the README documents exit code 2");
}

#[test]
fn admin_commands_refuse_a_database_that_does_not_exist_unless_told_to_create_it() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(GATEWAY).current_dir(dir.path()).args(["admin", "key", "list"]).env_remove("GATEWAY_DATABASE_URL").output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("does not exist"), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!dir.path().join("gateway.db").exists(), "no database was made in the working directory");

    let output = Command::new(GATEWAY)
        .current_dir(dir.path())
        .args(["admin", "key", "create", "--create", "--role", "admin", "--name", "first"])
        .env_remove("GATEWAY_DATABASE_URL")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(dir.path().join("gateway.db").exists());
}

#[test]
fn a_server_that_dies_mid_call_is_reported_as_a_lost_connection_that_may_have_applied() {
    let db = TestDb::new_blocking();
    let (mut server, dir) = server_with_registry(&db);
    let mut csv = CSV_HEADER.to_owned();
    for line in 0..300_000 {
        csv.push_str(&format!("43-1234567,12345678,123-45-6789,Smith,2026-11-13,{}.00\n", 1 + line % 90));
    }
    let file = dir.path().join("big.csv");
    std::fs::write(&file, csv).unwrap();
    let submit = Command::new(GATEWAY)
        .args(["--server", &server.url, "remit", "submit", "--format", "csv", "--batch-id", "BIG", file.to_str().unwrap()])
        .env("GATEWAY_TOKEN", &server.keys.vendor)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the server once the file is being written (its write-ahead log grows).
    let wal = format!("{}-wal", db.url.trim_start_matches("sqlite://"));
    let started = Instant::now();
    while std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0) < 4_000_000 && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.kill();
    let output = submit.wait_with_output().unwrap();
    let errors = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{errors}");
    assert!(errors.contains("connection to the gateway was lost") && errors.contains("may or may not have been applied"), "{errors}");
    assert!(!errors.contains("Unknown: transport error"), "{errors}");
}
