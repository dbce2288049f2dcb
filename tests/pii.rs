//! Personal data stays in: a whole scenario runs with every log at TRACE level captured, and
//! then the logs, every answer, every export and the database's own files are searched for
//! each SSN and bank account number used. None may appear in full.
//!
//! One test in its own binary: it installs the process's tracing subscriber.

mod common;

use common::Short;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{Authed, Backend, Export, TestApp};
use futures::StreamExt;
use gateway::formats::ach_returns::write_returns;
use gateway::grpc::proto;
use proto::payment_service_client::PaymentServiceClient;
use proto::registry_service_client::RegistryServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;
use proto::withholding_service_client::WithholdingServiceClient;

/// The obligor's SSN (in the registry and on payroll lines), an employee the registry does
/// not know (suspense), the payer's, and two bank accounts.
const OBLIGOR_SSN: &str = "234-56-7812";
// Chosen so that no stored neighbours (a FEIN followed by last-4 digits) spell it by chance.
const STRANGER_SSN: &str = "512-84-3396";
const PAYER_SSN: &str = "456-78-9134";
const ACCOUNT: &str = "98765432101";
const NEW_ACCOUNT: &str = "55566677788";

/// Every form a secret could leak in.
fn secrets() -> Vec<String> {
    let mut forms = Vec::new();
    for ssn in [OBLIGOR_SSN, STRANGER_SSN, PAYER_SSN] {
        forms.push(ssn.to_owned());
        forms.push(ssn.replace('-', ""));
    }
    forms.extend([ACCOUNT.to_owned(), NEW_ACCOUNT.to_owned()]);
    forms
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn registry_csv() -> String {
    format!(
        "obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears,employer_fein\n\
         OB-1,{OBLIGOR_SSN},Smith,John,12345678,A,300.00,2026-11,100.00,43-1234567\n"
    )
}

async fn submit(channel: &Authed, format: proto::RemittanceFormat, batch_id: &str, file: String) -> proto::RemittanceAcknowledgment {
    let header = proto::RemittanceHeader { format: format as i32, batch_id: batch_id.into(), ..Default::default() };
    let messages = gateway::grpc::client::remittance_upload(header, file.as_bytes(), 1 << 16);
    RemittanceServiceClient::new(channel.clone()).submit_remittance(futures::stream::iter(messages)).await.unwrap().into_inner().acknowledgment.unwrap()
}

fn account(number: &str) -> Option<proto::BankAccountInput> {
    Some(proto::BankAccountInput { routing_number: "091000019".into(), account_number: number.into(), account_type: proto::AccountType::Checking as i32 })
}

#[tokio::test]
async fn no_ssn_or_account_number_is_found_in_logs_answers_exports_or_the_database() {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_ansi(false).with_writer(move || writer.clone()).init();

    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut answers: Vec<String> = Vec::new();
    let vendor = app.vendor("acme-payroll").await;
    let mut registry = RegistryServiceClient::new(app.channel.clone());
    let mut payments = PaymentServiceClient::new(app.payment_site.clone());
    let mut office = PaymentServiceClient::new(app.channel.clone());

    // A registry refused for a bad row (its SSN must not be echoed), then the good one.
    let bad = format!("{}OB-2,{STRANGER_SSN},Doe,Jane,1234,B,10.00,2026-11,0.00,\n", registry_csv());
    let refused = registry.import_registry(futures::stream::iter(gateway::grpc::client::registry_upload(bad.as_bytes(), 1 << 16))).await;
    answers.push(format!("{refused:?}"));
    let imported =
        registry.import_registry(futures::stream::iter(gateway::grpc::client::registry_upload(registry_csv().as_bytes(), 1 << 16))).await;
    assert!(imported.as_ref().unwrap().get_ref().applied);
    answers.push(format!("{imported:?}"));

    // The withholding calculator: the employee's own case, a stranger's SSN on it (NOT_FOUND),
    // an SSN typed into the earnings field, and a payroll run of the same.
    let pay_period = |ssn: &str, earnings: &str| proto::EmployeePayPeriod {
        frequency: proto::PayFrequency::Weekly as i32,
        pay_date: "2026-11-20".into(),
        disposable_earnings: earnings.into(),
        employee_ssn: ssn.into(),
        case_numbers: vec!["12345678".into()],
        ..Default::default()
    };
    let mut calculator = WithholdingServiceClient::new(vendor.clone());
    for (ssn, earnings) in [(OBLIGOR_SSN, "600.00"), (STRANGER_SSN, "600.00"), (OBLIGOR_SSN, STRANGER_SSN)] {
        let answer = calculator.calculate_withholding(proto::CalculateWithholdingRequest { pay_period: Some(pay_period(ssn, earnings)) }).await;
        answers.push(format!("{answer:?}"));
    }
    let run = [(OBLIGOR_SSN, "600.00"), (STRANGER_SSN, "600.00"), (OBLIGOR_SSN, STRANGER_SSN)].map(|(ssn, earnings)| {
        proto::CalculatePayrollWithholdingRequest { employee_reference: "E-1".into(), pay_period: Some(pay_period(ssn, earnings)) }
    });
    let mut run = calculator.calculate_payroll_withholding(futures::stream::iter(run)).await.unwrap().into_inner();
    let mut computed = 0;
    while let Some(answer) = run.next().await {
        let answer = answer.unwrap();
        computed += usize::from(matches!(answer.result, Some(proto::calculate_payroll_withholding_response::Result::Withholding(_))));
        answers.push(format!("{answer:?}"));
    }
    assert_eq!(computed, 1, "only the employee's own SSN gets an answer");

    // Payroll money: identified, matched by SSN, unknown (suspense), an SSN typed into the
    // case number field, and a malformed SSN.
    let stranger_digits = STRANGER_SSN.replace('-', "");
    let csv = format!(
        "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n\
         43-1234567,12345678,{OBLIGOR_SSN},Smith,2026-11-13,400.00\n\
         43-1234567,,{OBLIGOR_SSN},Smith,2026-11-13,50.00\n\
         43-1234567,,{STRANGER_SSN},Nobody,2026-11-13,25.00\n\
         43-1234567,{stranger_digits},{STRANGER_SSN},Nobody,2026-11-13,10.00\n\
         43-1234567,12345678,{stranger_digits}0,Nobody,2026-11-13,10.00\n"
    );
    let ack = submit(&vendor, proto::RemittanceFormat::Csv, "PII-1", csv).await;
    assert_eq!(ack.status().short(), "ACCEPTED");
    answers.push(format!("{ack:?}"));
    let obligor_digits = OBLIGOR_SSN.replace('-', "");
    let xml = format!(
        r#"<Remittance xmlns="urn:mo-fspc:remittance:1">
  <Header><BatchId>PII-2</BatchId><LineCount>1</LineCount><TotalAmount>30.00</TotalAmount></Header>
  <Employer fein="431234567" name="Acme">
    <Payment><CaseNumber>12345678</CaseNumber><EmployeeSSN>{obligor_digits}</EmployeeSSN><LastName>Smith</LastName>
      <PayDate>2026-11-13</PayDate><Amount>30.00</Amount></Payment>
  </Employer>
</Remittance>"#
    );
    answers.push(format!("{:?}", submit(&vendor, proto::RemittanceFormat::Xml, "PII-2", xml).await));
    let mut remittances = RemittanceServiceClient::new(vendor.clone());
    let mut lines =
        remittances.stream_remittance_lines(proto::StreamRemittanceLinesRequest { batch_id: "PII-1".into(), ..Default::default() }).await.unwrap().into_inner();
    while let Some(line) = lines.next().await {
        answers.push(format!("{line:?}"));
    }
    answers.push(format!("{:?}", remittances.get_remittance(proto::GetRemittanceRequest { batch_id: "PII-1".into(), ..Default::default() }).await));

    // A payer: refused once (the message names the field, not the number), then registered.
    let registration = proto::RegisterPayerRequest {
        name: "John Smith".into(),
        address: "1 Main St".into(),
        ssn: PAYER_SSN.into(),
        telephone: "573-555-0100".into(),
        case_number: "12345678".into(),
        email: "john@example.com".into(),
        bank_account: account(ACCOUNT),
    };
    let wrong = proto::RegisterPayerRequest { email: "john@".into(), ..registration.clone() };
    answers.push(format!("{:?}", payments.register_payer(wrong).await));
    let payer = payments.register_payer(registration).await.unwrap().into_inner().payer.unwrap();
    answers.push(format!("{payer:?}"));
    let payer_id = payer.payer_id;
    answers.push(format!("{:?}", office.confirm_bank_account(proto::ConfirmBankAccountRequest { payer_id }).await));
    let second = proto::AddBankAccountRequest { payer_id, bank_account: account(NEW_ACCOUNT) };
    answers.push(format!("{:?}", payments.add_bank_account(second).await));
    let pay = |key: &str| proto::SubmitPaymentRequest {
        payer_id,
        case_number: "12345678".into(),
        amount: "75.00".into(),
        channel: proto::PaymentChannel::Web as i32,
        idempotency_key: key.into(),
    };
    let receipt = payments.submit_payment(pay("pii-1")).await.unwrap().into_inner().receipt.unwrap();
    answers.push(format!("{receipt:?}"));
    answers.push(format!("{:?}", common::distribute(&app.channel).await));
    let returned = office.record_return(proto::RecordReturnRequest { payment_id: receipt.payment_id, return_code: "R01".into() }).await;
    answers.push(format!("{returned:?}"));
    let second_receipt = payments.submit_payment(pay("pii-2")).await.unwrap().into_inner().receipt.unwrap();
    let file = write_returns(&[("R03", &second_receipt.trace_number, 75_00)]);
    answers.push(format!("{:?}", office.import_returns(futures::stream::iter(gateway::grpc::client::returns_upload(&file, 1 << 16))).await));
    let replaced = payments.replace_bank_account(proto::ReplaceBankAccountRequest { payer_id, bank_account: account(NEW_ACCOUNT) }).await;
    answers.push(format!("{replaced:?}"));
    answers.push(format!("{:?}", office.get_payer(proto::GetPayerRequest { payer_id }).await));

    let mut exports = Vec::new();
    for what in [Export::Allocations, Export::Balances { as_of: "2026-11-30" }, Export::Suspense, Export::Audit] {
        exports.push(common::export(&app.channel, what).await);
    }
    assert!(exports[2].contains("***-**-3396"), "the suspense export shows the SSN masked: {}", exports[2]);
    assert!(exports[2].contains("*****3396"), "a case number that is an SSN is masked: {}", exports[2]);
    // The database's own files, as a copy or a stolen disk would show them.
    let database_path = app.db.url.trim_start_matches("sqlite://").to_owned();
    let mut database = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(bytes) = std::fs::read(format!("{database_path}{suffix}")) {
            database.extend(bytes);
        }
    }
    assert!(database.len() > 10_000, "the database files were read");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;

    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(logs.contains("TRACE") && logs.contains("remittance accepted"), "the logs were captured at every level");
    let database = String::from_utf8_lossy(&database);

    let mut found = Vec::new();
    for secret in secrets() {
        if logs.contains(&secret) {
            found.push(format!("{secret} in the logs"));
        }
        for answer in answers.iter().filter(|a| a.contains(&secret)) {
            found.push(format!("{secret} in an answer: {answer}"));
        }
        for export in exports.iter().filter(|e| e.contains(&secret)) {
            found.push(format!("{secret} in an export: {export}"));
        }
        if database.contains(&secret) {
            found.push(format!("{secret} in the database files"));
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}
