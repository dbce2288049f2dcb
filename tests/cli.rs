//! The `gateway` binary as people and scripts use it: the CLI against a running server, and
//! a server killed mid-file that loses nothing and applies nothing twice after a restart.

mod common;

use common::Short;

use std::process::Command;
use std::time::Duration;

use common::process::{cli, server_with_registry, Server, GATEWAY};
use chrono::Datelike;
use common::{TestDb, SPEC_REGISTRY};
use gateway::grpc::proto::{self, remittance_service_client::RemittanceServiceClient};
use tonic::transport::Channel;

const CSV: &str = "\
employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount
43-1234567,12345678,123-45-6789,Smith,2026-11-13,400.00
43-1234567,,123-45-6789,Smith,2026-11-13,200.00
43-1234567,12345678,123-45-6789,Smith,2026-11-13,1.005
";

#[test]
fn the_cli_imports_submits_distributes_and_exports() {
    let db = TestDb::new_blocking();
    let server = Server::start(&db.url);
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.csv");
    std::fs::write(&registry, SPEC_REGISTRY).unwrap();
    let remittance = dir.path().join("remit.csv");
    std::fs::write(&remittance, CSV).unwrap();

    let (code, out, err) = cli(&server, &server.keys.back_office, &["registry", "import", registry.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, "Registry imported: 3 rows (3 added, 0 updated, 0 unchanged).\n"), "{err}");

    let (code, out, err) = cli(
        &server,
        &server.keys.vendor,
        &["--json", "remit", "submit", "--format", "csv", "--batch-id", "ACME-7", remittance.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    let ack: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(ack["batch_id"], "ACME-7");
    // The proto's JSON mapping: enum values by their names, 64-bit integers as strings,
    // instants as RFC 3339.
    assert_eq!(ack["status"], "ACKNOWLEDGMENT_STATUS_ACCEPTED");
    assert_eq!(ack["format"], "REMITTANCE_FORMAT_CSV");
    assert_eq!(ack["line_count"], "3");
    assert_eq!(ack["total_amount"], "600.00");
    assert!(ack["receive_time"].as_str().unwrap().ends_with('Z'), "{}", ack["receive_time"]);
    let lines = ack["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 3, "one entry per line of the file");
    assert_eq!((lines[0]["line"].as_str(), lines[0]["status"].as_str()), (Some("1"), Some("LINE_STATUS_APPLIED")));
    assert_eq!(lines[1]["status"], "LINE_STATUS_APPLIED_BY_SSN");
    assert_eq!(lines[2]["status"], "LINE_STATUS_REJECTED");
    let problem = &lines[2]["problems"][0];
    assert_eq!((problem["code"].as_str(), problem["field"].as_str()), (Some("AMOUNT_INVALID"), Some("amount")));
    assert!(problem["message"].as_str().unwrap().contains("2 decimal places"));
    assert!(!out.contains("123456789") && !out.contains("123-45-6789"));

    let (code, out, _) = cli(&server, &server.keys.vendor, &["remit", "show", "ACME-7"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Batch ACME-7 ACCEPTED: 3 lines, total 600.00."), "{out}");
    assert!(out.contains("AMOUNT_INVALID           ERROR    1 line: 3\n"), "problems grouped by code: {out}");
    assert!(out.contains("IDENTIFIED_BY_SSN        WARNING  1 line: 2\n"), "{out}");
    let (_, out, _) = cli(&server, &server.keys.vendor, &["remit", "show", "ACME-7", "--verbose"]);
    assert!(out.contains("line 3 (REJECTED), amount: ERROR AMOUNT_INVALID"), "every line with --verbose: {out}");

    // A refusal with --json: the error and its details, as the proto names them.
    let (code, out, _) = cli(&server, &server.keys.vendor, &["--json", "remit", "show", "NO-SUCH-BATCH"]);
    assert_eq!(code, 1);
    let error: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!((error["error"]["code"].as_str(), error["error"]["error_info"]["reason"].as_str()), (Some("NotFound"), Some("NOT_FOUND")));

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, CSV.replace("amount", "amt")).unwrap();
    let (code, out, _) =
        cli(&server, &server.keys.vendor, &["remit", "submit", "--format", "csv", "--batch-id", "ACME-8", bad.to_str().unwrap()]);
    assert_eq!(code, 3, "a refused file exits with 3");
    assert!(out.contains("REFUSED") && out.contains("HEADER_UNKNOWN_COLUMN"), "{out}");

    let (code, out, _) = cli(&server, &server.keys.back_office, &["distribute"]);
    assert_eq!(code, 0);
    assert!(out.contains("total 600.00 = current 500.00 + arrears 100.00 + unapplied 0.00"), "{out}");
    let allocations = dir.path().join("allocations.csv");
    let (code, _, _) = cli(&server, &server.keys.back_office, &["export", "allocations", "--out", allocations.to_str().unwrap()]);
    assert_eq!(code, 0);
    let csv = std::fs::read_to_string(&allocations).unwrap();
    assert_eq!(csv.lines().count(), 5, "{csv}");
    let (code, out, _) = cli(&server, &server.keys.back_office, &["export", "balances", "--as-of", "2026-11-30"]);
    assert_eq!(code, 0);
    assert!(out.contains("A,12345678,OB-1,300.00,0.00,75.00,ACTIVE"), "{out}");

    let (code, _, err) = cli(
        &server,
        &server.keys.back_office,
        &["collection", "add", "--case-number", "12345678", "--amount", "1.001", "--effective-date", "2026-11-13"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("InvalidArgument") && err.contains("amount"), "{err}");
}

/// A CSV of `lines` payments of OB-1's, 1.00 each.
fn big_csv(lines: usize) -> Vec<u8> {
    let mut csv = String::from("employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n");
    for _ in 0..lines {
        csv.push_str("43-1234567,12345678,123-45-6789,Smith,2026-11-13,1.00\n");
    }
    csv.into_bytes()
}

async fn submit(url: &str, token: &str, batch_id: &str, file: Vec<u8>) -> Result<proto::RemittanceAcknowledgment, tonic::Status> {
    let channel = Channel::from_shared(url.to_owned()).unwrap().connect().await.map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let channel = gateway::grpc::client::with_key(channel, token).unwrap();
    let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: batch_id.into(), ..Default::default() };
    let messages = gateway::grpc::client::remittance_upload(header, &file, 64 * 1024);
    RemittanceServiceClient::new(channel).submit_remittance(futures::stream::iter(messages)).await.map(|r| r.into_inner().acknowledgment.unwrap())
}

#[test]
fn a_server_killed_mid_file_keeps_nothing_of_it_and_takes_the_resend() {
    let db = TestDb::new_blocking();
    let mut server = Server::start(&db.url);
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.csv");
    std::fs::write(&registry, SPEC_REGISTRY).unwrap();
    assert_eq!(cli(&server, &server.keys.back_office, &["registry", "import", registry.to_str().unwrap()]).0, 0);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let lines = 300_000;
    let (url, token) = (server.url.clone(), server.keys.vendor.clone());
    let upload = runtime.spawn(async move { submit(&url, &token, "BIG-1", big_csv(lines)).await });
    // Kill the server inside the file's transaction: once its write-ahead log holds a few
    // megabytes of the file's rows, none of them committed (the file commits whole, at its end).
    let wal = format!("{}-wal", db.url.trim_start_matches("sqlite://"));
    let wal_size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    let started = std::time::Instant::now();
    while wal_size() < 4_000_000 && !upload.is_finished() && started.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!upload.is_finished(), "the file must still be in its transaction when the server is killed");
    server.kill();
    let interrupted = runtime.block_on(upload).unwrap();
    assert!(interrupted.is_err(), "the client sees the failure: {interrupted:?}");

    let server = Server::start_with(&db.url, server.keys.clone());
    let (code, _, err) = cli(&server, &server.keys.vendor, &["remit", "show", "BIG-1"]);
    assert_eq!(code, 1);
    assert!(err.contains("NotFound"), "nothing of the file was kept: {err}");
    assert!(cli(&server, &server.keys.back_office, &["distribute"]).1.contains("Nothing to distribute"));

    let ack = runtime.block_on(submit(&server.url, &server.keys.vendor, "BIG-1", big_csv(lines))).unwrap();
    assert_eq!((ack.status().short(), ack.applied), ("ACCEPTED", lines as u64));
    let again = runtime.block_on(submit(&server.url, &server.keys.vendor, "BIG-1", big_csv(lines))).unwrap();
    assert!(again.replayed);
    let (_, out, _) = cli(&server, &server.keys.back_office, &["distribute"]);
    assert!(out.contains(&format!("{lines} collection(s)")), "{out}");
    assert!(out.contains("total 300000.00"), "{out}");
    // The ledger, re-checked from the stored rows: every line's collection, pool and cent.
    let (code, out, err) = cli(&server, &server.keys.back_office, &["verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("one_collection_per_line") && out.contains("300000 checked") && out.contains("The ledger is whole."), "{out}");
}

#[test]
fn the_cli_registers_a_payer_takes_a_payment_and_records_its_return() {
    let db = TestDb::new_blocking();
    let server = Server::start(&db.url);
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.csv");
    std::fs::write(&registry, SPEC_REGISTRY).unwrap();
    assert_eq!(cli(&server, &server.keys.back_office, &["registry", "import", registry.to_str().unwrap()]).0, 0);

    let (code, out, err) = cli(
        &server,
        &server.keys.payment_site,
        &[
            "payer",
            "register",
            "--name",
            "John Smith",
            "--address",
            "1 Main St",
            "--ssn",
            "123-45-6789",
            "--telephone",
            "573-555-0100",
            "--email",
            "john@example.com",
            "--case-number",
            "12345678",
            "--routing-number",
            "091000019",
            "--account-number",
            "000123456789",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Payer 1: John Smith"), "{out}");
    assert!(out.contains("SSN ***-**-6789") && out.contains("****6789") && out.contains("PENDING — can pay from"), "{out}");
    assert!(!out.contains("123456789") && !out.contains("000123456789"));

    let (code, _, err) =
        cli(&server, &server.keys.payment_site, &["pay", "--payer", "1", "--case-number", "12345678", "--amount", "25.00"]);
    assert_eq!(code, 1);
    assert!(err.contains("FailedPrecondition") && err.contains("can pay from"), "{err}");

    assert!(cli(&server, &server.keys.back_office, &["payer", "confirm-account", "1"]).1.contains(": USABLE"));
    let (code, out, err) = cli(
        &server,
        &server.keys.payment_site,
        &["pay", "--payer", "1", "--case-number", "12345678", "--amount", "25.00", "--idempotency-key", "k-1"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Payment 1 ACCEPTED (idempotency key k-1)."), "{out}");
    assert!(out.contains("Payroll deduction continues"), "{out}");
    let (_, again, _) = cli(
        &server,
        &server.keys.payment_site,
        &["--json", "pay", "--payer", "1", "--case-number", "12345678", "--amount", "25.00", "--idempotency-key", "k-1"],
    );
    let receipt: serde_json::Value = serde_json::from_str(&again).unwrap();
    let receipt = &receipt["receipt"];
    assert_eq!((receipt["payment_id"].as_str(), receipt["replayed"].as_bool()), (Some("1"), Some(true)));
    assert_eq!(receipt["status"], "PAYMENT_STATUS_ACCEPTED");

    let (code, out, _) = cli(&server, &server.keys.back_office, &["returns", "record", "--payment", "1", "--code", "R02"]);
    assert_eq!(code, 0);
    assert!(out.contains("Payment 1 returned (R02): CANCELLED.") && out.contains("unusable until it is replaced"), "{out}");
    assert!(cli(&server, &server.keys.payment_site, &["payer", "show", "1"]).1.contains("UNUSABLE — returned R02"));
}

/// Runs `gateway admin …` on the database directly.
fn admin(database_url: &str, args: &[&str]) -> (i32, String, String) {
    let output = Command::new(GATEWAY).arg("admin").args(args).args(["--database", database_url]).output().unwrap();
    (output.status.code().unwrap_or(-1), String::from_utf8(output.stdout).unwrap(), String::from_utf8(output.stderr).unwrap())
}

#[test]
fn keys_are_made_listed_and_revoked_on_the_database_and_a_revoked_key_is_refused_within_the_cache_ttl() {
    let db = TestDb::new_blocking();
    let server = Server::start(&db.url);

    let (code, out, err) = admin(&db.url, &["key", "list"]);
    assert_eq!(code, 0, "{err}");
    for name in ["back-office", "acme-payroll", "payment-site"] {
        assert!(out.contains(name), "{out}");
    }
    let vendor_secret = server.keys.vendor.rsplit('_').next().unwrap();
    assert!(!out.contains(vendor_secret), "a key's secret is never listed");

    // No key: refused, and told how to present one.
    let (code, _, err) = cli(&server, "", &["remit", "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("Unauthenticated") && err.contains("Bearer"), "{err}");
    assert_eq!(cli(&server, &server.keys.vendor, &["remit", "list"]).0, 0);

    let vendor_id = server.keys.vendor.split('_').nth(1).unwrap();
    let (code, out, err) = admin(&db.url, &["key", "revoke", vendor_id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("key {vendor_id} (acme-payroll) revoked")), "{out}");
    // The running server read the key on its last call: it refuses it once its cached copy
    // is older than the key cache's TTL, never later.
    let revoked = std::time::Instant::now();
    let refused = loop {
        let (code, _, err) = cli(&server, &server.keys.vendor, &["remit", "list"]);
        if code != 0 || revoked.elapsed() > Duration::from_secs(30) {
            break (code, err);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(refused.0, 1, "the running server refuses the revoked key");
    assert!(refused.1.contains("Unauthenticated"), "{}", refused.1);
    let bound = gateway::app::key_cache::KEY_CACHE_TTL + Duration::from_secs(2);
    assert!(revoked.elapsed() < bound, "refused within the key cache's TTL: {:?}", revoked.elapsed());
    assert_eq!(admin(&db.url, &["key", "revoke", vendor_id]).0, 1, "revoking twice is an error");

    // An employer key must name its FEINs; other keys may not.
    assert_eq!(admin(&db.url, &["key", "create", "--role", "employer", "--name", "hr"]).0, 1);
    assert_eq!(admin(&db.url, &["key", "create", "--role", "vendor", "--name", "v", "--fein", "43-1234567"]).0, 1);
    let (code, out, err) = admin(&db.url, &["key", "create", "--role", "employer", "--name", "hr", "--fein", "43-1234567"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().nth(1).unwrap().starts_with("gwk_"), "the token is printed once: {out}");

    // The local admin commands are in the audit trail, under the operating system's user.
    let (code, audit, err) = cli(&server, &server.keys.back_office, &["export", "audit"]);
    assert_eq!(code, 0, "{err}");
    assert!(audit.lines().any(|l| l.contains(",local:") && l.contains("RevokeApiKey") && l.ends_with(",OK")), "{audit}");
    assert!(audit.lines().any(|l| l.contains("ListRemittances") && l.ends_with(",UNAUTHENTICATED")), "{audit}");
}

#[test]
fn serve_help_documents_every_setting_and_its_environment_variable() {
    let output = Command::new(GATEWAY).args(["serve", "--help"]).output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for setting in [
        "--config",
        "GATEWAY_CONFIG",
        "--metrics-listen",
        "--rate-limit-per-second",
        "GATEWAY_RATE_LIMIT_PER_SECOND",
        "--upload-bytes-per-second",
        "--max-concurrent-calls",
        "--call-deadline-seconds",
        "--idle-stream-timeout-seconds",
        "--max-upload-lines",
        "--max-record-bytes",
        "--max-message-bytes",
        "--tls-cert",
        "--tls-client-ca",
    ] {
        assert!(help.contains(setting), "{setting} in:\n{help}");
    }
}

#[test]
fn a_file_with_many_warnings_is_acknowledged_by_code_and_line_by_line_only_when_asked() {
    let db = TestDb::new_blocking();
    let (server, dir) = server_with_registry(&db);
    // 600 lines identified by SSN (a warning each) and 3 late ones (a second warning).
    let mut csv = String::from("employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n");
    // The server runs on the real clock: yesterday is on time, two months ago is late.
    let today = chrono::Local::now().date_naive();
    let (on_time, late) = ((today - chrono::Days::new(1)).to_string(), (today - chrono::Days::new(60)).to_string());
    for line in 1..=600 {
        let date = if line % 200 == 0 { &late } else { &on_time };
        csv.push_str(&format!("43-1234567,,123-45-6789,Smith,{date},{line}.00\n"));
    }
    let file = dir.path().join("warnings.csv");
    std::fs::write(&file, csv).unwrap();
    let (code, out, err) = cli(&server, &server.keys.vendor, &["remit", "submit", "--format", "csv", "--batch-id", "W-1", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().count() < 10, "a few lines, not one per warning: {out}");
    assert!(out.contains("IDENTIFIED_BY_SSN        WARNING  600 lines: 1, 2, 3, 4, 5, …"), "{out}");
    assert!(out.contains("LATE_REMITTANCE          WARNING  3 lines: 200, 400, 600\n"), "{out}");
    let (_, verbose, _) = cli(&server, &server.keys.vendor, &["remit", "show", "W-1", "--verbose"]);
    assert_eq!(verbose.lines().filter(|l| l.contains("IDENTIFIED_BY_SSN")).count(), 600);
}

#[test]
fn database_commands_do_not_offer_client_options_and_completions_are_printed() {
    let help = Command::new(GATEWAY).args(["admin", "key", "create", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("--database") && help.contains("--create"), "{help}");
    for client_only in ["--server", "--token", "--tls-ca", "--tls-cert"] {
        assert!(!help.contains(client_only), "{client_only} in the help of a database command:\n{help}");
    }
    let top = String::from_utf8(Command::new(GATEWAY).arg("--help").output().unwrap().stdout).unwrap();
    assert!(top.contains("--server") && top.contains("completions"), "{top}");

    for shell in ["bash", "zsh", "fish"] {
        let output = Command::new(GATEWAY).args(["completions", shell]).output().unwrap();
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8(output.stdout).unwrap();
        assert!(script.contains("gateway") && script.contains("remit"), "{shell}: {script}");
    }
}

#[test]
fn the_back_office_works_the_suspense_queue_from_the_command_line() {
    let db = TestDb::new_blocking();
    let (server, dir) = server_with_registry(&db);
    let file = dir.path().join("unknown.csv");
    let yesterday = (chrono::Utc::now().date_naive() - chrono::Duration::days(1)).to_string();
    std::fs::write(
        &file,
        format!(
            "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n\
             43-1234567,,234-56-7801,Nobody,{yesterday},150.00\n\
             43-1234567,,234-56-7802,Nobody,{yesterday},20.00\n"
        ),
    )
    .unwrap();
    let (code, out, err) = cli(&server, &server.keys.vendor, &["remit", "submit", "--format", "csv", "--batch-id", "S-1", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let office = &server.keys.back_office;

    let (code, out, err) = cli(&server, office, &["suspense", "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("acme-payroll") && out.contains("***-**-7801") && out.contains("150.00") && out.contains("20.00"), "{out}");
    assert!(!out.contains("234-56-7801"), "{out}");
    let (_, json, _) = cli(&server, office, &["--json", "suspense", "list", "--min-amount", "100"]);
    let listed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let items = listed["suspense_items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{json}");
    let first = items[0]["suspense_id"].as_str().unwrap().to_owned(); // 64-bit integers are strings in proto JSON
    let (code, out, err) = cli(&server, office, &["suspense", "resolve", &first, "--case-number", "12345678"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("resolved to obligor OB-1") && out.contains(&format!("150.00 for obligor OB-1, effective {yesterday}")), "{out}");
    let (code, _, err) = cli(&server, office, &["suspense", "resolve", &first, "--obligor", "OB-2"]);
    assert_eq!(code, 1);
    assert!(err.contains("FailedPrecondition") && err.contains("already RESOLVED"), "{err}");

    let (_, json, _) = cli(&server, office, &["--json", "suspense", "list"]);
    let listed: serde_json::Value = serde_json::from_str(&json).unwrap();
    let second = listed["suspense_items"][0]["suspense_id"].as_str().unwrap().to_owned();
    let (code, out, err) = cli(&server, office, &["suspense", "return", &second, "--reason", "not our employee", "--reference", "CHK-1001"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("(RETURNED)") && out.contains("reference CHK-1001"), "{out}");
    let (_, out, _) = cli(&server, office, &["suspense", "list"]);
    assert!(out.contains("No suspense items match."), "{out}");
    let (_, out, _) = cli(&server, office, &["suspense", "list", "--state", "returned"]);
    assert!(out.contains("returned (CHK-1001: not our employee)"), "{out}");
    let (_, out, _) = cli(&server, office, &["suspense", "show", &first]);
    assert!(out.contains("RESOLVED by back-office"), "{out}");

    // Termination notices: listed, handled once.
    let left = dir.path().join("left.csv");
    std::fs::write(
        &left,
        format!("employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount,employment_terminated
43-1234567,12345678,123-45-6789,Smith,{yesterday},0,Y
"),
    )
    .unwrap();
    let (code, out, err) = cli(&server, &server.keys.vendor, &["remit", "submit", "--format", "csv", "--batch-id", "T-1", left.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, out, _) = cli(&server, office, &["terminations", "list", "--employer-fein", "43-1234567"]);
    assert!(out.contains("OB-1") && out.contains("acme-payroll/T-1 line 1"), "{out}");
    let notice = out.lines().nth(1).unwrap().split_whitespace().next().unwrap().to_owned();
    let (code, out, err) = cli(&server, office, &["terminations", "handled", &notice]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("handled by back-office"), "{out}");
    let (code, _, err) = cli(&server, office, &["terminations", "handled", &notice]);
    assert_eq!(code, 1);
    assert!(err.contains("NOTICE_ALREADY_HANDLED") || err.contains("already") || err.contains("handled by"), "{err}");
    let (_, out, _) = cli(&server, office, &["terminations", "list"]);
    assert!(out.contains("No termination notices match."), "{out}");
    let (_, out, _) = cli(&server, office, &["terminations", "list", "--all"]);
    assert!(out.contains("handled by back-office"), "{out}");

    // A review request: refused without a reason (naming the day), recorded with one.
    let (code, _, err) = cli(&server, office, &["review", "request", "A", "--date", &yesterday, "--channel", "mail"]);
    assert_eq!(code, 1);
    assert!(err.contains("REVIEW_NEEDS_REASON") || err.contains("needs a stated reason"), "{err}");
    let (code, out, err) = cli(&server, office, &["review", "request", "A", "--date", &yesterday, "--channel", "fax", "--reason", "new job"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Review request recorded") && out.contains("FAX") && out.contains("new job"), "{out}");
    let (_, out, _) = cli(&server, office, &["review", "list", "--order", "A"]);
    assert!(out.contains("12345678") && out.contains("new job"), "{out}");

    // The spec registry records no birth dates: no projected end has passed.
    let (code, out, err) = cli(&server, office, &["order", "projected-ends"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("No order's projected end has passed"), "{out}");

    // Reports, as CSV: the resolved 150.00 is still undistributed; nothing is left in suspense.
    let (code, out, err) = cli(&server, office, &["report", "totals"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "figure,amount\nundistributed,150.00\nsuspense,0.00\nunapplied,0.00\n");
    let report = dir.path().join("ages.csv");
    let (code, _, err) = cli(&server, office, &["report", "suspense-age", "--out", report.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(std::fs::read_to_string(&report).unwrap().starts_with("age_days,items,amount\n0-7,0,0.00\n"));
    // The vendor may not.
    let (code, _, err) = cli(&server, &server.keys.vendor, &["suspense", "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("PermissionDenied"), "{err}");

    // Money for OB-2 before its order starts is credit; with the resolved 150.00, distributed.
    let (code, json, err) =
        cli(&server, office, &["--json", "collection", "add", "--case-number", "22345678", "--amount", "500.00", "--effective-date", "2026-10-15"]);
    assert_eq!(code, 0, "{err}");
    let added: serde_json::Value = serde_json::from_str(&json).unwrap();
    let credit_collection = added["collection"]["collection_id"].as_str().unwrap().to_owned();
    let (_, out, _) = cli(&server, office, &["distribute"]);
    assert!(out.contains("total 650.00 = current 150.00 + arrears 0.00 + unapplied 500.00"), "{out}");
    let (code, out, err) = cli(&server, office, &["explain", "collection", &credit_collection]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("UNAPPLIED") && out.contains("500.00") && out.contains("hold 500.00 now"), "{out}");

    // Credit: listed, applied by hand to November, refunded; never more than is left.
    let (_, out, _) = cli(&server, office, &["credit", "list"]);
    assert!(out.contains("OB-2") && out.contains("Doe, Jane") && out.contains("500.00"), "{out}");
    let (code, out, err) = cli(&server, office, &["credit", "apply", "OB-2", "--order", "C", "--amount", "150.00", "--month", "2026-11"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("applied 150.00 to order C's current support of 2026-11") && out.contains("Credit left: 350.00"), "{out}");
    let (code, _, err) = cli(&server, office, &["credit", "refund", "OB-2", "--amount", "400.00", "--reference", "CHK-9"]);
    assert_eq!(code, 1);
    assert!(err.contains("CREDIT_NOT_AVAILABLE") || err.contains("350.00 of unapplied credit left"), "{err}");
    let (code, out, err) = cli(&server, office, &["credit", "refund", "OB-2", "--amount", "350.00", "--reference", "CHK-9"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("refunded 350.00 (reference CHK-9)") && out.contains("Credit left: 0.00"), "{out}");

    // An end in the month before the 150.00's: its share for A (90.00 of 300/500) is moved,
    // and the next run applies it again; the end is withdrawn; A's statement shows both.
    let money_month = chrono::NaiveDate::parse_from_str(&yesterday, "%Y-%m-%d").unwrap().with_day(1).unwrap();
    let end_date = (money_month - chrono::Days::new(1)).to_string();
    let (code, out, err) = cli(&server, office, &["order", "end", "A", "--reason", "age-18", "--date", &end_date]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("AGE_18") && out.contains("90.00 of current support for later months moved from 1 pool(s)"), "{out}");
    let (_, out, _) = cli(&server, office, &["distribute"]);
    assert!(out.contains("+ corrections 90.00"), "{out}");
    let (code, out, err) = cli(&server, office, &["order", "withdraw-end", "A"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Withdrawn") && out.contains("withdrawn by back-office"), "{out}");
    let (code, out, err) = cli(&server, office, &["explain", "order", "A"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("end recorded") && out.contains("end withdrawn") && out.contains("closing:"), "{out}");
    let (_, json, _) = cli(&server, office, &["--json", "explain", "order", "A"]);
    let statement: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(statement["lines"].as_array().unwrap().iter().any(|l| l["kind"] == "STATEMENT_LINE_KIND_END_RECORDED"), "{json}");

    // The ledger is whole, over gRPC and on the database with no server; a vendor may not ask.
    let (code, out, err) = cli(&server, office, &["verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("pools_conserved") && out.contains("The ledger is whole."), "{out}");
    let (code, out, err) = admin(&db.url, &["verify"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("allocations_unchanged"), "{out}");
    assert_eq!(cli(&server, &server.keys.vendor, &["verify"]).0, 1);
}
