//! Remittance files end to end through the real gRPC server: each format acknowledged,
//! resends changing nothing, refusals recording nothing, distribution afterwards.

mod common;

use common::Short;

use common::{distribute, export, Authed, Backend, Export, TestApp, SPEC_REGISTRY};
use futures::StreamExt;
use gateway::formats::nacha::writer::{write_file, EntryToWrite};
use gateway::grpc::proto::{self, submit_remittance_request::Part};
use proto::registry_service_client::RegistryServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;
use tonic::Code;

/// A remittance client of the vendor `sender`.
async fn as_vendor(app: &TestApp, sender: &str) -> RemittanceServiceClient<Authed> {
    RemittanceServiceClient::new(app.vendor(sender).await)
}

async fn submit(
    app: &TestApp,
    sender: &str,
    format: proto::RemittanceFormat,
    batch_id: &str,
    file: &[u8],
) -> Result<proto::RemittanceAcknowledgment, tonic::Status> {
    let header = proto::RemittanceHeader { format: format as i32, batch_id: batch_id.into(), ..Default::default() };
    let messages = gateway::grpc::client::remittance_upload(header, file, 1000);
    as_vendor(app, sender).await.submit_remittance(futures::stream::iter(messages)).await.map(|r| r.into_inner().acknowledgment.unwrap())
}

async fn setup() -> TestApp {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let chunks = gateway::grpc::client::registry_upload(SPEC_REGISTRY.as_bytes(), 1 << 16);
    assert!(
        RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner().applied
    );
    app
}

fn statuses(ack: &proto::RemittanceAcknowledgment) -> Vec<(u64, String, Vec<String>)> {
    ack.lines.iter().map(|l| (l.line, l.status().short().to_owned(), l.problems.iter().map(|p| p.code.clone()).collect())).collect()
}

// The test server's today is 2026-11-20. OB-1 (SSN 123-45-6789) has cases 12345678 (order A)
// and 12345679 (order B); OB-2 (223-45-6789) has case 22345678.
const CSV: &str = "\
employer_fein,employer_name,case_number,employee_ssn,employee_last_name,pay_date,amount,fips_code,employment_terminated
43-1234567,Acme,12345678,123-45-6789,Smith,2026-11-13,400.00,29051,N
43-1234567,Acme,,123-45-6789,Smith,11/13/2026,200.00,,N
43-1234567,Acme,99999999,423-45-6789,Nobody,2026-11-13,50.00,,N
43-1234567,Acme,22345678,123-45-6789,Smith,2026-11-13,10.00,,
43-1234567,Acme,22345678,223-45-6789,Doe,2026-11-13,25.00,36001,
43-1234567,Acme,22345678,223-45-6789,Doe,2026-11-13,0.00,,Y
";

#[tokio::test]
async fn a_csv_file_is_acknowledged_line_by_line_and_distributed() {
    let app = setup().await;
    let ack = submit(&app, "acme-payroll", proto::RemittanceFormat::Csv, "ACME-1", CSV.as_bytes()).await.unwrap();
    assert_eq!((ack.status().short(), ack.line_count, ack.total_amount.as_str()), ("ACCEPTED", 6, "660.00"), "the rejected 25.00 is not recorded");
    assert_eq!((ack.applied, ack.applied_by_ssn, ack.suspense, ack.rejected), (2, 1, 2, 1));
    assert_eq!(
        statuses(&ack),
        [
            (2, "APPLIED_BY_SSN".into(), vec!["IDENTIFIED_BY_SSN".into()]),
            (3, "SUSPENSE".into(), vec!["CASE_NUMBER_UNKNOWN".into(), "OBLIGOR_NOT_IDENTIFIED".into()]),
            (4, "SUSPENSE".into(), vec!["SSN_MISMATCH".into()]),
            (5, "REJECTED".into(), vec!["FIPS_OTHER_STATE".into()]),
            (6, "APPLIED".into(), vec!["EMPLOYMENT_TERMINATED".into()]),
        ]
    );

    // Every line, in order, from the stored outcomes.
    let request = proto::StreamRemittanceLinesRequest { batch_id: "ACME-1".into(), ..Default::default() };
    let mut lines = as_vendor(&app, "acme-payroll").await.stream_remittance_lines(request).await.unwrap().into_inner();
    let mut all = Vec::new();
    while let Some(answer) = lines.next().await {
        all.push(answer.unwrap().line.unwrap());
    }
    assert_eq!(all.iter().map(|l| l.line).collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6]);
    assert_eq!(all[0].status().short(), "APPLIED");

    // Suspense holds lines 3 and 4 with the case as received and a masked SSN.
    let suspense = export(&app.channel, Export::Suspense).await;
    assert_eq!(
        suspense,
        "batch_id,line,case_number,ssn,amount,pay_date,reason,state,suspense_id\n\
         ACME-1,3,99999999,***-**-6789,50.00,2026-11-13,OBLIGOR_NOT_IDENTIFIED,OPEN,1\n\
         ACME-1,4,22345678,***-**-6789,10.00,2026-11-13,SSN_MISMATCH,OPEN,2\n"
    );

    // 400.00 + 200.00 for OB-1 on the pay date: one pool of 600.00, the spec's second row.
    let run = distribute(&app.channel).await;
    assert_eq!((run.collections, run.pools, run.total.as_str()), (2, 1, "600.00"));
    let allocations = export(&app.channel, Export::Allocations).await;
    let rows: Vec<&str> = allocations.lines().skip(1).map(|l| l.split_once(",OB-1,").unwrap().1).collect();
    assert_eq!(
        rows,
        [
            "12345678,A,CURRENT,2026-11,2026-11-13,300.00",
            "12345679,B,CURRENT,2026-11,2026-11-13,200.00",
            "12345678,A,ARREARS,,2026-11-13,25.00",
            "12345679,B,ARREARS,,2026-11-13,75.00",
        ]
    );
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn a_resend_changes_nothing_and_a_batch_id_cannot_be_reused() {
    let app = setup().await;
    let first = submit(&app, "acme-payroll", proto::RemittanceFormat::Csv, "ACME-1", CSV.as_bytes()).await.unwrap();
    let again = submit(&app, "acme-payroll", proto::RemittanceFormat::Csv, "ACME-1", CSV.as_bytes()).await.unwrap();
    assert!(again.replayed && !first.replayed);
    assert_eq!(proto::RemittanceAcknowledgment { replayed: false, ..again }, first);

    let other = CSV.replace("400.00", "401.00");
    let status = submit(&app, "acme-payroll", proto::RemittanceFormat::Csv, "ACME-1", other.as_bytes()).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);

    let duplicate = submit(&app, "acme-payroll", proto::RemittanceFormat::Csv, "ACME-2", CSV.as_bytes()).await.unwrap();
    assert_eq!((duplicate.status().short(), duplicate.duplicate_of.as_deref().unwrap_or_default(), duplicate.line_count), ("DUPLICATE", "ACME-1", 0));

    // Another sender's batch ids and files are its own.
    let theirs = submit(&app, "other-vendor", proto::RemittanceFormat::Csv, "ACME-1", CSV.as_bytes()).await.unwrap();
    assert_eq!((theirs.status().short(), theirs.replayed), ("ACCEPTED", false));
    let mut nobody = as_vendor(&app, "nobody").await;
    let hidden = nobody.get_remittance(proto::GetRemittanceRequest { batch_id: "ACME-1".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let mut client = as_vendor(&app, "acme-payroll").await;
    let shown = client.get_remittance(proto::GetRemittanceRequest { batch_id: "ACME-1".into(), ..Default::default() }).await.unwrap();
    assert_eq!(proto::RemittanceAcknowledgment { replayed: false, ..shown.into_inner().acknowledgment.unwrap() }, first);
    let listed = client.list_remittances(proto::ListRemittancesRequest { page_size: 0, ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(listed.remittances.len(), 1);

    // Two senders' money, distributed once each: 2 × 600.00 for OB-1.
    let run = distribute(&app.channel).await;
    assert_eq!((run.collections, run.total.as_str()), (4, "1200.00"));
    assert_eq!(distribute(&app.channel).await.collections, 0);
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn a_refused_file_records_nothing_and_can_be_sent_again_corrected() {
    let app = setup().await;
    let broken = CSV.replace("employee_last_name", "employee_surname");
    let ack = submit(&app, "acme-payroll", proto::RemittanceFormat::Csv, "ACME-1", broken.as_bytes()).await.unwrap();
    assert_eq!(ack.status().short(), "REFUSED");
    assert_eq!(ack.file_problem.as_ref().map(|p| p.code.as_str()), Some("HEADER_UNKNOWN_COLUMN"));

    // Control totals that disagree, declared by the sender, refuse the file too.
    let header = proto::RemittanceHeader {
        format: proto::RemittanceFormat::Csv as i32,
        batch_id: "ACME-1".into(),
        declared_line_count: Some(7),
        declared_total: Some("685.00".into()),
    };
    let messages = gateway::grpc::client::remittance_upload(header, CSV.as_bytes(), 1 << 16);
    let ack = as_vendor(&app, "acme-payroll").await.submit_remittance(futures::stream::iter(messages)).await.unwrap().into_inner().acknowledgment.unwrap();
    assert_eq!(ack.file_problem.as_ref().map(|p| p.code.as_str()), Some("CONTROL_TOTAL_MISMATCH"));
    assert_eq!(distribute(&app.channel).await.collections, 0, "nothing of a refused file is recorded");
    assert_eq!(export(&app.channel, Export::Suspense).await.lines().count(), 1);

    let ack = submit(&app, "acme-payroll", proto::RemittanceFormat::Csv, "ACME-1", CSV.as_bytes()).await.unwrap();
    assert_eq!(ack.status().short(), "ACCEPTED");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn xml_and_nacha_files_are_acknowledged_and_distributed() {
    let app = setup().await;
    let xml = r#"<Remittance xmlns="urn:mo-fspc:remittance:1">
  <Header><BatchId>X-1</BatchId><LineCount>2</LineCount><TotalAmount>600.00</TotalAmount></Header>
  <Employer fein="431234567" name="Acme">
    <Payment><CaseNumber>12345678</CaseNumber><EmployeeSSN>123456789</EmployeeSSN><LastName>Smith</LastName>
      <PayDate>2026-11-13</PayDate><Amount>400.00</Amount></Payment>
    <Payment><CaseNumber>1234</CaseNumber><EmployeeSSN>123456789</EmployeeSSN><LastName>Smith</LastName>
      <PayDate>2026-11-13</PayDate><Amount>200.00</Amount></Payment>
  </Employer>
</Remittance>"#;
    let ack = submit(&app, "acme-payroll", proto::RemittanceFormat::Xml, "X-1", xml.as_bytes()).await.unwrap();
    assert_eq!((ack.status().short(), ack.applied, ack.applied_by_ssn), ("ACCEPTED", 1, 1));
    assert_eq!(statuses(&ack), [(2, "APPLIED_BY_SSN".into(), vec!["CASE_NUMBER_INVALID".into(), "IDENTIFIED_BY_SSN".into()])]);

    let doctype = xml.replace("<Remittance", "<!DOCTYPE x [<!ENTITY e \"e\">]><Remittance").replace("X-1", "X-2");
    let refused = submit(&app, "acme-payroll", proto::RemittanceFormat::Xml, "X-2", doctype.as_bytes()).await.unwrap();
    assert_eq!(refused.file_problem.map(|p| p.code), Some("XML_DOCTYPE_FORBIDDEN".into()));

    // A CTX entry with two DED segments for OB-2 (case 22345678), and a prenote.
    let ctx = write_file(
        "CTX",
        "ACME",
        "431234567",
        &[
            EntryToWrite {
                routing: 91_000_019,
                amount_cents: 150_00,
                prenote: false,
                segments: vec!["DED*CS*22345678*20261113*10000*223456789*N\\".into(), "DED*CS*22345678*20261113*5000*223456789*N\\".into()],
            },
            EntryToWrite {
                routing: 91_000_019,
                amount_cents: 0,
                prenote: true,
                segments: vec!["DED*CS*22345678*20261113*0*223456789*N\\".into()],
            },
        ],
    );
    let ack = submit(&app, "acme-payroll", proto::RemittanceFormat::Nacha, "N-1", &ctx).await.unwrap();
    assert_eq!((ack.status().short(), ack.line_count, ack.applied, ack.total_amount.as_str()), ("ACCEPTED", 3, 3, "150.00"));
    assert_eq!(statuses(&ack), [(3, "APPLIED".into(), vec!["PRENOTE".into()])]);

    // Resending either file changes nothing.
    let resent = submit(&app, "acme-payroll", proto::RemittanceFormat::Nacha, "N-1", &ctx).await.unwrap();
    assert!(resent.replayed && resent.applied == 3);
    assert!(submit(&app, "acme-payroll", proto::RemittanceFormat::Xml, "X-1", xml.as_bytes()).await.unwrap().replayed);

    let run = distribute(&app.channel).await;
    // OB-1: one 600.00 pool; OB-2: one 150.00 pool (the prenote brings no money).
    assert_eq!((run.collections, run.pools, run.total.as_str()), (4, 2, "750.00"));
    let allocations = export(&app.channel, Export::Allocations).await;
    assert!(allocations.contains(",OB-2,22345678,C,CURRENT,2026-11,2026-11-13,150.00"), "{allocations}");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn the_first_message_must_be_the_header() {
    let app = setup().await;
    let messages = [proto::SubmitRemittanceRequest { part: Some(Part::Chunk(CSV.as_bytes().to_vec())) }];
    let status = as_vendor(&app, "acme-payroll").await.submit_remittance(futures::stream::iter(messages)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = submit(&app, "acme-payroll", proto::RemittanceFormat::Unspecified, "B", CSV.as_bytes()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = submit(&app, "acme-payroll", proto::RemittanceFormat::Csv, "", CSV.as_bytes()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

/// A CSV line of OB-1's, for generated files.
fn generated_line(index: u64) -> String {
    format!("43-1234567,Acme,12345678,123-45-6789,Smith,2026-11-13,{}.{:02},,N\n", 1 + index % 500, index % 100)
}

#[tokio::test]
async fn a_large_file_streams_through_with_the_servers_memory_bounded() {
    let app = setup().await;
    let header =
        "employer_fein,employer_name,case_number,employee_ssn,employee_last_name,pay_date,amount,fips_code,employment_terminated\n";
    let upload = |batch: &'static str, lines: u64, offset: u64| {
        // The file is generated as it is sent: the test does not hold it either.
        let first = proto::SubmitRemittanceRequest {
            part: Some(Part::Header(proto::RemittanceHeader {
                format: proto::RemittanceFormat::Csv as i32,
                batch_id: batch.into(),
                ..Default::default()
            })),
        };
        let piece = move |start: u64| {
            let mut chunk = if start == 0 { header.to_owned() } else { String::new() };
            for index in start..(start + 1000).min(lines) {
                chunk.push_str(&generated_line(index + offset));
            }
            chunk.into_bytes()
        };
        // The end message's SHA-256, from the same pieces generated once more.
        let mut sha256 = <sha2::Sha256 as sha2::Digest>::new();
        let mut byte_count = 0;
        for start in (0..lines).step_by(1000) {
            let bytes = piece(start);
            byte_count += bytes.len() as u64;
            sha2::Digest::update(&mut sha256, &bytes);
        }
        let end = proto::UploadEnd { byte_count, sha256: hex::encode(sha2::Digest::finalize(sha256)) };
        let chunks = futures::stream::iter((0..lines).step_by(1000))
            .map(move |start| proto::SubmitRemittanceRequest { part: Some(Part::Chunk(piece(start))) });
        futures::stream::iter([first]).chain(chunks).chain(futures::stream::iter([proto::SubmitRemittanceRequest { part: Some(Part::End(end)) }]))
    };
    let mut client = as_vendor(&app, "big-vendor").await;
    // A first file of the same size warms every cache up to its bound (the SQLite writer's
    // page cache alone holds 32 MiB), so what the second one adds is what scales with a file.
    let warm = client.submit_remittance(upload("WARM", 200_000, 1)).await.unwrap().into_inner().acknowledgment.unwrap();
    assert_eq!(warm.applied, 200_000);
    let peak_before = peak_resident_bytes();

    let lines = 400_000;
    let file_bytes: usize = header.len() + (0..lines).map(|i| generated_line(i).len()).sum::<usize>();
    let started = std::time::Instant::now();
    let ack = client.submit_remittance(upload("BIG", lines, 0)).await.unwrap().into_inner().acknowledgment.unwrap();
    let elapsed = started.elapsed();
    assert_eq!((ack.status().short(), ack.line_count, ack.applied), ("ACCEPTED", lines, lines));
    assert!(ack.lines.is_empty());
    let growth = peak_resident_bytes().saturating_sub(peak_before);
    println!(
        "{lines} lines ({} MB) in {:.1} s ({:.0} lines/s, debug build); peak memory grew by {:.1} MB",
        file_bytes / 1_000_000,
        elapsed.as_secs_f64(),
        lines as f64 / elapsed.as_secs_f64(),
        growth as f64 / 1e6
    );
    // Holding the file (or its lines) would grow the peak by at least the file's size.
    assert!(growth < file_bytes as u64 / 2, "peak memory grew by {growth} bytes for a {file_bytes}-byte file");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

/// The process's peak resident memory (the test runs the server in-process).
fn peak_resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM");
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[tokio::test]
async fn a_client_that_dies_mid_upload_leaves_nothing_and_can_resend() {
    let app = setup().await;
    let channel = app.vendor("acme-payroll").await;
    let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: "CUT-1".into(), ..Default::default() };
    let first_half = [
        proto::SubmitRemittanceRequest { part: Some(Part::Header(header)) },
        proto::SubmitRemittanceRequest { part: Some(Part::Chunk(CSV.as_bytes()[..200].to_vec())) },
    ];
    // The rest never comes: the client process dies while sending.
    let upload = futures::stream::iter(first_half).chain(futures::stream::pending());
    let client = tokio::spawn(async move { RemittanceServiceClient::new(channel).submit_remittance(upload).await });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    client.abort();
    let _ = client.await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let mut remittances = as_vendor(&app, "acme-payroll").await;
    let missing = remittances.get_remittance(proto::GetRemittanceRequest { batch_id: "CUT-1".into(), ..Default::default() }).await;
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);
    assert_eq!(distribute(&app.channel).await.collections, 0);
    let ack = submit(&app, "acme-payroll", proto::RemittanceFormat::Csv, "CUT-1", CSV.as_bytes()).await.unwrap();
    assert_eq!((ack.status().short(), ack.line_count), ("ACCEPTED", 6));
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn a_file_over_the_size_limit_is_resource_exhausted_and_records_nothing() {
    let app =
        TestApp::spawn_with_limits(Backend::Sqlite, gateway::app::UploadLimits { max_bytes: 300, ..gateway::app::UploadLimits::STANDARD })
            .await;
    let status = submit(&app, "acme-payroll", proto::RemittanceFormat::Csv, "BIG", CSV.as_bytes()).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains("300 bytes"), "{}", status.message());
    let mut client = as_vendor(&app, "acme-payroll").await;
    let listed = client.list_remittances(proto::ListRemittancesRequest { page_size: 10, ..Default::default() }).await.unwrap();
    assert!(listed.into_inner().remittances.is_empty());
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn the_back_office_reads_every_senders_files_with_filters_and_senders_only_their_own() {
    let app = setup().await;
    let acme = "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n\
                43-1234567,12345678,123-45-6789,Smith,2026-11-13,100.00\n\
                43-1234567,,234-56-7801,Nobody,2026-11-13,20.00\n\
                43-1234567,12345678,123-45-6789,Smith,2026-11-13,abc\n";
    let zenith = "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n\
                  12-3456789,22345678,223-45-6789,Doe,2026-11-13,50.00\n";
    submit(&app, "acme-payroll", proto::RemittanceFormat::Csv, "B-1", acme.as_bytes()).await.unwrap();
    submit(&app, "zenith-payroll", proto::RemittanceFormat::Csv, "B-1", zenith.as_bytes()).await.unwrap();
    let mut office = RemittanceServiceClient::new(app.channel.clone());
    let list = |request: proto::ListRemittancesRequest| {
        let mut client = office.clone();
        async move {
            let page = client.list_remittances(request).await.unwrap().into_inner();
            page.remittances.into_iter().map(|r| format!("{}/{}", r.sender, r.batch_id)).collect::<Vec<_>>()
        }
    };
    assert_eq!(list(Default::default()).await, ["zenith-payroll/B-1", "acme-payroll/B-1"], "every sender's, newest first");
    assert_eq!(list(proto::ListRemittancesRequest { sender: "acme-payroll".into(), ..Default::default() }).await, ["acme-payroll/B-1"]);
    assert_eq!(list(proto::ListRemittancesRequest { employer_fein: "123456789".into(), ..Default::default() }).await, ["zenith-payroll/B-1"]);
    let today = common::test_today().to_string();
    assert_eq!(list(proto::ListRemittancesRequest { received_from: today.clone(), received_to: today, ..Default::default() }).await.len(), 2);
    assert!(list(proto::ListRemittancesRequest { received_to: "2026-01-01".into(), ..Default::default() }).await.is_empty());
    let wrong = office
        .list_remittances(proto::ListRemittancesRequest { employer_fein: "12".into(), received_from: "someday".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::InvalidArgument);

    // A file is named by its sender and batch id: the same batch id is two files.
    let missing_sender = office.get_remittance(proto::GetRemittanceRequest { batch_id: "B-1".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(missing_sender.code(), Code::InvalidArgument);
    let zenith_file = office
        .get_remittance(proto::GetRemittanceRequest { batch_id: "B-1".into(), sender: "zenith-payroll".into() })
        .await
        .unwrap()
        .into_inner()
        .acknowledgment
        .unwrap();
    assert_eq!((zenith_file.line_count, zenith_file.total_amount.as_str()), (1, "50.00"));

    // Lines filtered by outcome and by problem code.
    let lines = |request: proto::StreamRemittanceLinesRequest| {
        let mut client = office.clone();
        async move {
            let mut stream = client.stream_remittance_lines(request).await.unwrap().into_inner();
            let mut numbers = Vec::new();
            while let Some(line) = stream.next().await {
                numbers.push(line.unwrap().line.unwrap().line);
            }
            numbers
        }
    };
    let acme_lines = proto::StreamRemittanceLinesRequest { batch_id: "B-1".into(), sender: "acme-payroll".into(), ..Default::default() };
    assert_eq!(lines(acme_lines.clone()).await, [1, 2, 3]);
    let suspense = proto::StreamRemittanceLinesRequest { statuses: vec![proto::LineStatus::Suspense as i32, proto::LineStatus::Rejected as i32], ..acme_lines.clone() };
    assert_eq!(lines(suspense).await, [2, 3]);
    let amount = proto::StreamRemittanceLinesRequest { problem_code: "AMOUNT_INVALID".into(), ..acme_lines };
    assert_eq!(lines(amount).await, [3]);

    // A sender sees only its own: naming another sender finds nothing, and its list is its own.
    let mut acme_client = as_vendor(&app, "acme-payroll").await;
    let other = acme_client.get_remittance(proto::GetRemittanceRequest { batch_id: "B-1".into(), sender: "zenith-payroll".into() }).await;
    assert_eq!(other.unwrap_err().code(), Code::NotFound);
    let own = acme_client.list_remittances(proto::ListRemittancesRequest { sender: "zenith-payroll".into(), ..Default::default() }).await.unwrap();
    assert_eq!(own.into_inner().remittances.iter().map(|r| r.sender.as_str()).collect::<Vec<_>>(), ["acme-payroll"]);
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

/// The lines of [`CSV`] under another employer name, so that each copy is a file of its own
/// (the same bytes again would be a resend).
fn csv_copy(copy: usize) -> String {
    CSV.replace("Acme,", &format!("Acme {copy},"))
}

/// The batches of lines matched so far from the registry in memory, and from the database.
fn batches_matched(app: &TestApp) -> (u64, u64) {
    let text = app.app.metrics().encode();
    let count = |from: &str| {
        let name = format!("gateway_remittance_line_batches_matched_total{{matched_from=\"{from}\"}} ");
        text.lines().find_map(|line| line.strip_prefix(name.as_str())).map_or(0, |n| n.parse().unwrap())
    };
    (count("memory"), count("database"))
}

/// Waits for the server to hold the registry in memory as the database now has it.
async fn registry_held_in_memory(app: &TestApp) {
    let generation = app.app.store().registry_generation().await.unwrap();
    for _ in 0..1000 {
        let text = app.app.metrics().encode();
        let held = text.lines().find_map(|l| l.strip_prefix("gateway_registry_index_generation ")).map(|n| n.parse::<i64>().unwrap());
        if held == Some(generation) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the registry index was never read at generation {generation}");
}

/// A file's lines are matched alike from the registry held in memory and from the database,
/// and a change to the registry, even one written by hand outside the gateway, is seen by the
/// next file at once: the index it made stale is not used again.
async fn lines_are_matched_alike_from_memory_and_from_the_database(backend: common::Backend) {
    let app = TestApp::spawn(backend).await;
    // An import is followed by reading the registry into memory.
    app.import_spec_registry().await;
    registry_held_in_memory(&app).await;
    let from_memory = submit(&app, "acme-payroll", proto::RemittanceFormat::Csv, "COPY-1", csv_copy(1).as_bytes()).await.unwrap();
    assert_eq!(batches_matched(&app), (1, 0));
    assert_eq!((from_memory.applied, from_memory.applied_by_ssn, from_memory.suspense, from_memory.rejected), (2, 1, 2, 1));
    assert_eq!(
        statuses(&from_memory),
        [
            (2, "APPLIED_BY_SSN".into(), vec!["IDENTIFIED_BY_SSN".into()]),
            (3, "SUSPENSE".into(), vec!["CASE_NUMBER_UNKNOWN".into(), "OBLIGOR_NOT_IDENTIFIED".into()]),
            (4, "SUSPENSE".into(), vec!["SSN_MISMATCH".into()]),
            (5, "REJECTED".into(), vec!["FIPS_OTHER_STATE".into()]),
            (6, "APPLIED".into(), vec!["EMPLOYMENT_TERMINATED".into()]),
        ]
    );

    // Case 22345678 given to OB-1 by hand: line 4 (OB-1's SSN) now matches it, line 6
    // (OB-2's SSN) no longer does. The index is stale, so the next file is matched from the
    // database.
    app.db.execute_by_hand("UPDATE cases SET obligor_id = 'OB-1' WHERE case_number = '22345678'").await;
    let from_database = submit(&app, "acme-payroll", proto::RemittanceFormat::Csv, "COPY-2", csv_copy(2).as_bytes()).await.unwrap();
    assert_eq!(batches_matched(&app), (1, 1));
    assert_eq!(
        statuses(&from_database),
        [
            (2, "APPLIED_BY_SSN".into(), vec!["IDENTIFIED_BY_SSN".into()]),
            (3, "SUSPENSE".into(), vec!["CASE_NUMBER_UNKNOWN".into(), "OBLIGOR_NOT_IDENTIFIED".into()]),
            (5, "REJECTED".into(), vec!["FIPS_OTHER_STATE".into()]),
            (6, "SUSPENSE".into(), vec!["SSN_MISMATCH".into(), "EMPLOYMENT_TERMINATED".into()]),
        ]
    );

    // That batch started reading the registry again; once read, it answers the same.
    registry_held_in_memory(&app).await;
    let from_new_index = submit(&app, "acme-payroll", proto::RemittanceFormat::Csv, "COPY-3", csv_copy(3).as_bytes()).await.unwrap();
    assert_eq!(batches_matched(&app), (2, 1));
    assert_eq!(statuses(&from_new_index), statuses(&from_database));
    assert_eq!(
        (from_new_index.applied, from_new_index.applied_by_ssn, from_new_index.suspense, from_new_index.rejected),
        (from_database.applied, from_database.applied_by_ssn, from_database.suspense, from_database.rejected)
    );
    app.stop().await;
}

#[tokio::test]
async fn lines_are_matched_alike_from_memory_and_from_the_database_on_sqlite() {
    lines_are_matched_alike_from_memory_and_from_the_database(common::Backend::Sqlite).await;
}

#[tokio::test]
async fn lines_are_matched_alike_from_memory_and_from_the_database_on_postgres() {
    lines_are_matched_alike_from_memory_and_from_the_database(common::Backend::Postgres).await;
}
