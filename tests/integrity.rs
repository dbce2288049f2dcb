//! Regressions for what an attacker's and a careless client's probe of the server found (the
//! integrity issue), through the real gRPC server. Each test names its finding; each failed
//! before its fix. The findings about memory, connections and the command line run the
//! server as a process of its own: `integrity_process.rs`.

mod common;

use common::Short;

use common::{distribute, export, Authed, Backend, Export, TestApp, SPEC_REGISTRY};
use gateway::grpc::client::{registry_upload, remittance_upload, upload_end};
use gateway::grpc::proto::{self, submit_remittance_request::Part};
use proto::payment_service_client::PaymentServiceClient;
use proto::registry_service_client::RegistryServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;
use tonic::Code;

async fn with_registry(backend: Backend) -> TestApp {
    let app = TestApp::spawn(backend).await;
    let upload = futures::stream::iter(registry_upload(SPEC_REGISTRY.as_bytes(), 1 << 16));
    assert!(RegistryServiceClient::new(app.channel.clone()).import_registry(upload).await.unwrap().into_inner().applied);
    app
}

fn header(format: proto::RemittanceFormat, batch_id: &str) -> proto::RemittanceHeader {
    proto::RemittanceHeader { format: format as i32, batch_id: batch_id.into(), ..Default::default() }
}

async fn submit(
    channel: &Authed,
    format: proto::RemittanceFormat,
    batch_id: &str,
    file: &[u8],
) -> Result<proto::RemittanceAcknowledgment, tonic::Status> {
    let messages = remittance_upload(header(format, batch_id), file, 1 << 16);
    RemittanceServiceClient::new(channel.clone()).submit_remittance(futures::stream::iter(messages)).await.map(|r| r.into_inner().acknowledgment.unwrap())
}

async fn submit_csv(channel: &Authed, batch_id: &str, file: &[u8]) -> proto::RemittanceAcknowledgment {
    submit(channel, proto::RemittanceFormat::Csv, batch_id, file).await.expect("an acknowledgment")
}

fn refusal_code(ack: &proto::RemittanceAcknowledgment) -> &str {
    assert_eq!(ack.status().short(), "REFUSED", "{ack:?}");
    ack.file_problem.as_ref().map(|p| p.code.as_str()).unwrap_or_default()
}

async fn shown(channel: &Authed, batch_id: &str) -> Result<proto::RemittanceAcknowledgment, tonic::Status> {
    let request = proto::GetRemittanceRequest { batch_id: batch_id.into(), ..Default::default() };
    RemittanceServiceClient::new(channel.clone()).get_remittance(request).await.map(|r| r.into_inner().acknowledgment.unwrap())
}

const CSV_HEADER: &str = "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n";

/// `count` lines of OB-1's case 12345678, the last one 29.99.
fn csv_lines(count: usize) -> String {
    let mut csv = CSV_HEADER.to_owned();
    for line in 1..=count {
        let amount = if line == count { "29.99".to_owned() } else { format!("{}.00", 1 + line % 50) };
        csv.push_str(&format!("43-1234567,12345678,123-45-6789,Smith,2026-11-13,{amount}\n"));
    }
    csv
}

// 1. The same bytes sent at the same moment under different batch ids are all accepted.

async fn same_bytes_at_once_under_many_batch_ids_are_accepted_once(backend: Backend) {
    let app = with_registry(backend).await;
    let vendor = app.vendor("tiny-sender").await;
    let file = format!("{CSV_HEADER}43-1234567,12345678,123-45-6789,Smith,2026-11-13,6.66\n").into_bytes();
    let sends = (0..16).map(|i| {
        let (vendor, file) = (vendor.clone(), file.clone());
        tokio::spawn(async move { submit_csv(&vendor, &format!("TINYDUP-{i}"), &file).await })
    });
    let acks: Vec<_> = futures::future::join_all(sends).await.into_iter().map(Result::unwrap).collect();
    let accepted: Vec<&str> = acks.iter().filter(|a| a.status().short() == "ACCEPTED").map(|a| a.batch_id.as_str()).collect();
    assert_eq!(accepted.len(), 1, "one copy accepted: {acks:?}");
    for duplicate in acks.iter().filter(|a| a.status().short() != "ACCEPTED") {
        assert_eq!((duplicate.status().short(), duplicate.duplicate_of.as_deref().unwrap_or_default()), ("DUPLICATE", accepted[0]));
    }
    let run = distribute(&app.channel).await;
    assert_eq!((run.collections, run.total.as_str()), (1, "6.66"), "6.66 recorded once");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn same_bytes_at_once_are_accepted_once_on_sqlite() {
    same_bytes_at_once_under_many_batch_ids_are_accepted_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn same_bytes_at_once_are_accepted_once_on_postgres() {
    same_bytes_at_once_under_many_batch_ids_are_accepted_once(Backend::Postgres).await;
}

// 2. A client that fails to read its file mid-way gets the truncated file accepted.

/// A file that cannot be read past `readable` bytes, as a failing disk gives it.
struct FailsPartWay {
    bytes: std::io::Cursor<Vec<u8>>,
    readable: u64,
}

impl tokio::io::AsyncRead for FailsPartWay {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buffer: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::io::Read;
        let left = self.readable.saturating_sub(self.bytes.position());
        if left == 0 {
            return std::task::Poll::Ready(Err(std::io::Error::other("Input/output error")));
        }
        let mut piece = vec![0; buffer.remaining().min(left as usize).min(1000)];
        let read = self.bytes.read(&mut piece)?;
        buffer.put_slice(&piece[..read]);
        std::task::Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn a_file_that_fails_to_read_mid_way_is_cancelled_and_the_server_keeps_nothing() {
    let app = with_registry(Backend::Sqlite).await;
    let vendor = app.vendor("careless-vendor").await;
    let file = csv_lines(3_000).into_bytes();
    let cut_at = CSV_HEADER.len() + 1_100 * 54 + 17; // about line 1,100: lines are 54 to 55 bytes
    let reader = FailsPartWay { bytes: std::io::Cursor::new(file.clone()), readable: cut_at as u64 };
    let mut client = RemittanceServiceClient::new(vendor.clone());
    let header = header(proto::RemittanceFormat::Csv, "CUT-1");
    let error = gateway::cli::remit::submit_file(&mut client, header, reader, file.len() as u64).await.unwrap_err();
    assert!(error.to_string().contains("reading the file failed"), "{error}");
    assert_eq!(shown(&vendor, "CUT-1").await.unwrap_err().code(), Code::NotFound, "nothing of the cut file is kept");

    // The whole file, resent under the same batch id, is taken with its last line's 29.99.
    let ack = submit_csv(&vendor, "CUT-1", &file).await;
    assert_eq!((ack.status().short(), ack.line_count, ack.applied), ("ACCEPTED", 3_000, 3_000));
    let expected: u64 = (1..3_000).map(|line| 100 * (1 + line % 50)).sum::<u64>() + 29_99;
    assert_eq!(ack.total_amount, format!("{}.{:02}", expected / 100, expected % 100));
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn an_upload_without_its_end_or_with_another_end_is_refused_and_changes_nothing() {
    let app = with_registry(Backend::Sqlite).await;
    let vendor = app.vendor("acme-payroll").await;
    let file = csv_lines(3_000).into_bytes();
    let cut = &file[..file.len() / 3];
    let mut client = RemittanceServiceClient::new(vendor.clone());

    // The stream ends normally, but before the file did: no end message.
    let mut messages = remittance_upload(header(proto::RemittanceFormat::Csv, "CUT-2"), cut, 4096);
    messages.pop();
    let status = client.submit_remittance(futures::stream::iter(messages)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("without its end message"), "{}", status.message());

    // An end message that names the whole file while only a third of it came.
    let mut messages = remittance_upload(header(proto::RemittanceFormat::Csv, "CUT-2"), cut, 4096);
    *messages.last_mut().unwrap() = proto::SubmitRemittanceRequest { part: Some(Part::End(upload_end(&file))) };
    let status = client.submit_remittance(futures::stream::iter(messages)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("cut short"), "{}", status.message());

    assert_eq!(shown(&vendor, "CUT-2").await.unwrap_err().code(), Code::NotFound);
    assert_eq!(submit_csv(&vendor, "CUT-2", &file).await.applied, 3_000, "the batch id is still free for the whole file");

    // The registry import: a cut registry applies none of its rows.
    let mut registry = String::from(
        "obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears\n",
    );
    for i in 0..2_000 {
        registry.push_str(&format!("NEW{i:05},{:09},Last,First,{:08},NORD{i:05},123.45,2026-11,0\n", 200_000_000 + i, 30_000_000 + i));
    }
    let mut messages = registry_upload(&registry.as_bytes()[..registry.len() * 7 / 20], 4096);
    messages.pop();
    let status = RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(messages)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let first_case = gateway::domain::CaseNumber::parse("30000000").unwrap();
    assert_eq!(app.app.store().case_owner(&first_case).await.unwrap(), None, "no row of the cut registry was applied");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

// 5. Control totals are defeated by overflow.

#[tokio::test]
async fn amounts_too_large_to_be_money_still_count_against_the_control_totals() {
    let app = with_registry(Backend::Sqlite).await;
    let vendor = app.vendor("acme-payroll").await;
    let csv = format!(
        "{CSV_HEADER}43-1234567,12345678,123-45-6789,Smith,2026-11-13,50000000000000000.00\n\
         43-1234567,12345678,123-45-6789,Smith,2026-11-13,50000000000000000.00\n\
         43-1234567,12345678,123-45-6789,Smith,2026-11-13,2.00\n"
    );
    let declared = proto::RemittanceHeader {
        declared_total: Some("50000000000000002.00".into()),
        ..header(proto::RemittanceFormat::Csv, "OVERFLOW-CSV")
    };
    let messages = remittance_upload(declared, csv.as_bytes(), 1 << 16);
    let ack = RemittanceServiceClient::new(vendor.clone()).submit_remittance(futures::stream::iter(messages)).await.unwrap().into_inner().acknowledgment.unwrap();
    assert_eq!(refusal_code(&ack), "CONTROL_TOTAL_MISMATCH");

    let xml = format!(
        "<Remittance xmlns=\"urn:mo-fspc:remittance:1\"><Header><BatchId>OVERFLOW-XML</BatchId><LineCount>3</LineCount>\
         <TotalAmount>92233720368547758.07</TotalAmount></Header><Employer fein=\"431234567\">{}{}{}</Employer></Remittance>",
        payment_xml("92233720368547758.07"),
        payment_xml("1.00"),
        payment_xml("7.00")
    );
    let ack = submit(&vendor, proto::RemittanceFormat::Xml, "OVERFLOW-XML", xml.as_bytes()).await.unwrap();
    assert_eq!(refusal_code(&ack), "CONTROL_TOTAL_MISMATCH");

    // An amount that cannot be read at all makes a declared total uncheckable.
    let unreadable = format!("{CSV_HEADER}43-1234567,12345678,123-45-6789,Smith,2026-11-13,12;50\n");
    let declared = proto::RemittanceHeader { declared_total: Some("0.00".into()), ..header(proto::RemittanceFormat::Csv, "UNREADABLE") };
    let messages = remittance_upload(declared, unreadable.as_bytes(), 1 << 16);
    let ack = RemittanceServiceClient::new(vendor).submit_remittance(futures::stream::iter(messages)).await.unwrap().into_inner().acknowledgment.unwrap();
    assert_eq!(refusal_code(&ack), "CONTROL_TOTAL_MISMATCH");
    assert!(ack.file_problem.unwrap().message.contains("line 1's amount cannot be read"));

    assert_eq!(distribute(&app.channel).await.collections, 0, "nothing of the refused files was recorded");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

fn payment_xml(amount: &str) -> String {
    format!(
        "<Payment><CaseNumber>12345678</CaseNumber><EmployeeSSN>123456789</EmployeeSSN><LastName>Smith</LastName>\
         <PayDate>2026-11-13</PayDate><Amount>{amount}</Amount></Payment>"
    )
}

// 6. Wrong or weak results.

fn nacha_with_ded_amounts(amounts: &[(u64, &str)]) -> Vec<u8> {
    use gateway::formats::nacha::writer::{write_file, EntryToWrite};
    let entries: Vec<EntryToWrite> = amounts
        .iter()
        .map(|(cents, ded_amount)| EntryToWrite {
            routing: 91_000_019,
            amount_cents: *cents,
            prenote: false,
            segments: vec![format!("DED*CS*12345678*261113*{ded_amount}*123456789*N\\")],
        })
        .collect();
    write_file("CCD", "ACME", "431234567", &entries)
}

#[tokio::test]
async fn a_ded_amount_with_a_decimal_point_is_rejected_and_the_total_is_what_was_recorded() {
    let app = with_registry(Backend::Sqlite).await;
    let vendor = app.vendor("ach-sender").await;
    let file = nacha_with_ded_amounts(&[(18462, "18462"), (1000, "10.00")]);
    let ack = submit(&vendor, proto::RemittanceFormat::Nacha, "ACH-1", &file).await.unwrap();
    assert_eq!((ack.status().short(), ack.applied, ack.rejected), ("ACCEPTED", 1, 1));
    let problems: Vec<&str> = ack.lines.iter().flat_map(|l| l.problems.iter().map(|p| p.code.as_str())).collect();
    assert!(problems.contains(&"DED_MALFORMED"), "{problems:?}");
    assert_eq!(ack.total_amount, "184.62", "the rejected line's amount is not in the total");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn files_that_are_not_what_they_claim_are_refused_and_say_why() {
    let app = with_registry(Backend::Sqlite).await;
    let vendor = app.vendor("acme-payroll").await;

    // A literal NUL in XML text.
    let xml = format!(
        "<Remittance xmlns=\"urn:mo-fspc:remittance:1\"><Header><BatchId>NUL</BatchId><LineCount>1</LineCount>\
         <TotalAmount>5.00</TotalAmount></Header><Employer fein=\"431234567\">{}</Employer></Remittance>",
        payment_xml("5.00").replace("Smith", "Sm\0ith")
    );
    let ack = submit(&vendor, proto::RemittanceFormat::Xml, "NUL", xml.as_bytes()).await.unwrap();
    assert_eq!(refusal_code(&ack), "XML_MALFORMED");
    assert!(ack.file_problem.unwrap().message.contains("U+0000"));

    // A row of 60,000 empty fields is a broken row, not a blank one.
    let wide = format!("{CSV_HEADER}{}\n43-1234567,12345678,123-45-6789,Smith,2026-11-13,5.00\n", ",".repeat(59_999));
    assert_eq!(refusal_code(&submit_csv(&vendor, "WIDE", wide.as_bytes()).await), "ROW_FIELD_COUNT");
    // A spreadsheet's trailing row of empty cells as wide as the header is still skipped.
    let trailing = format!("{CSV_HEADER}43-1234567,12345678,123-45-6789,Smith,2026-11-13,5.00\n,,,,,\n");
    assert_eq!(submit_csv(&vendor, "TRAILING", trailing.as_bytes()).await.line_count, 1);

    // A header and no line is not a remittance, and does not use up its batch id.
    assert_eq!(refusal_code(&submit_csv(&vendor, "EMPTY", CSV_HEADER.as_bytes()).await), "NO_LINES");
    let real = format!("{CSV_HEADER}43-1234567,12345678,123-45-6789,Smith,2026-11-13,5.01\n");
    assert_eq!(submit_csv(&vendor, "EMPTY", real.as_bytes()).await.status().short(), "ACCEPTED");

    // UTF-16 is named as such, not as an unknown column.
    let utf16: Vec<u8> = [0xFF, 0xFE].into_iter().chain(CSV_HEADER.encode_utf16().flat_map(u16::to_le_bytes)).collect();
    let ack = submit_csv(&vendor, "UTF16", &utf16).await;
    assert_eq!(refusal_code(&ack), "FILE_NOT_UTF8");
    assert!(ack.file_problem.unwrap().message.contains("UTF-16"));

    // A non-ASCII byte in a NACHA record: which byte of which record.
    let mut ach = nacha_with_ded_amounts(&[(500, "500")]);
    let third_record = 2 * 95;
    ach[third_record + 40] = 0xE9;
    let ack = submit(&vendor, proto::RemittanceFormat::Nacha, "ACH-BYTE", &ach).await.unwrap();
    assert_eq!(refusal_code(&ack), "NACHA_RECORD_CHARACTER");
    assert!(ack.file_problem.unwrap().message.starts_with("byte 41 of record 3 is 0xE9"));
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

fn payments(channel: &Authed) -> PaymentServiceClient<Authed> {
    PaymentServiceClient::new(channel.clone())
}

#[tokio::test]
async fn card_numbers_behind_zeros_and_undefined_return_codes_are_refused_and_a_second_return_names_the_first() {
    let app = with_registry(Backend::Sqlite).await;
    let status = payments(&app.payment_site).register_payer(common::registration_with_account("04111111111111111")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("card"), "{}", status.message());

    let payer = payments(&app.payment_site).register_payer(common::registration_with_account("000123456789")).await.unwrap().into_inner().payer.unwrap();
    payments(&app.channel).confirm_bank_account(proto::ConfirmBankAccountRequest { payer_id: payer.payer_id }).await.unwrap();
    let payment = proto::SubmitPaymentRequest {
        payer_id: payer.payer_id,
        case_number: "12345678".into(),
        amount: "40.00".into(),
        channel: proto::PaymentChannel::Web as i32,
        idempotency_key: "k-1".into(),
    };
    let receipt = payments(&app.payment_site).submit_payment(payment).await.unwrap().into_inner().receipt.unwrap();
    distribute(&app.channel).await;

    let record = |code: &str| proto::RecordReturnRequest { payment_id: receipt.payment_id, return_code: code.into() };
    let status = payments(&app.channel).record_return(record("R99")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "R99 is no NACHA return code");
    assert!(!export(&app.channel, Export::Allocations).await.contains(",-"), "nothing was reversed");

    let first = payments(&app.channel).record_return(record("R01")).await.unwrap().into_inner();
    assert_eq!((first.outcome().short(), first.return_code.as_str()), ("REVERSED", "R01"));
    let second = payments(&app.channel).record_return(record("R03")).await.unwrap().into_inner();
    assert_eq!((second.outcome().short(), second.return_code.as_str()), ("ALREADY_RETURNED", "R01"), "the return on record");
    assert!(!second.account_unusable, "R01 does not make the account unusable");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn a_mistyped_ssn_in_another_field_is_never_echoed() {
    let app = with_registry(Backend::Sqlite).await;
    let vendor = app.vendor("acme-payroll").await;
    // The SSN typed into the amount column, and into a registry's month column.
    let csv = format!("{CSV_HEADER}43-1234567,12345678,123-45-6789,Smith,2026-11-13,987-65-4321\n");
    let ack = submit_csv(&vendor, "SSN-IN-AMOUNT", csv.as_bytes()).await;
    assert_eq!((ack.status().short(), ack.rejected), ("ACCEPTED", 1));
    let answer = format!("{ack:?}");
    assert!(!answer.contains("987-65-4321") && !answer.contains("987654321"), "{answer}");

    let registry = "obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears\n\
                    OB-9,323-45-6789,Doe,Jo,32345678,Z,987-65-4321,987-65-4321,0\n";
    let upload = futures::stream::iter(registry_upload(registry.as_bytes(), 1 << 16));
    let refused = RegistryServiceClient::new(app.channel.clone()).import_registry(upload).await.unwrap().into_inner();
    assert!(!refused.applied);
    let answer = format!("{refused:?}");
    assert!(!answer.contains("987-65-4321") && !answer.contains("987654321"), "{answer}");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}
