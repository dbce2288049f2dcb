//! Voluntary online payments end to end through gRPC: registration and its refusals, the
//! 5-business-day validation, idempotent payments, payroll deduction continuing, returns and
//! reversals to the cent, and the bank's return file.

mod common;

use common::Short;

use std::sync::Arc;

use common::{distribute, export, Authed, Backend, Export, TestApp, TestClock, SPEC_REGISTRY};
use gateway::formats::ach_returns::write_returns;
use gateway::grpc::proto;
use proto::payment_service_client::PaymentServiceClient;
use proto::registry_service_client::RegistryServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;
use tonic::Code;

const SSN: &str = "123-45-6789";
const ACCOUNT: &str = "000123456789";

async fn setup(today: &str) -> (TestApp, Arc<TestClock>) {
    let clock = TestClock::new(today);
    let app = TestApp::spawn_with_clock(Backend::Sqlite, clock.clone()).await;
    let chunks = gateway::grpc::client::registry_upload(SPEC_REGISTRY.as_bytes(), 1 << 16);
    assert!(
        RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner().applied
    );
    (app, clock)
}

fn payments(channel: &Authed) -> PaymentServiceClient<Authed> {
    PaymentServiceClient::new(channel.clone())
}

fn registration() -> proto::RegisterPayerRequest {
    proto::RegisterPayerRequest {
        name: "John Smith".into(),
        address: "1 Main St, Jefferson City, MO 65101".into(),
        ssn: SSN.into(),
        telephone: "(573) 555-0100".into(),
        case_number: "12345678".into(),
        email: "john.smith@example.com".into(),
        bank_account: Some(proto::BankAccountInput {
            routing_number: "091000019".into(),
            account_number: ACCOUNT.into(),
            account_type: proto::AccountType::Checking as i32,
        }),
    }
}

async fn register(channel: &Authed) -> proto::Payer {
    payments(channel).register_payer(registration()).await.unwrap().into_inner().payer.unwrap()
}

async fn pay(channel: &Authed, payer_id: i64, case: &str, amount: &str, key: &str) -> Result<proto::PaymentReceipt, tonic::Status> {
    let request = proto::SubmitPaymentRequest {
        payer_id,
        case_number: case.into(),
        amount: amount.into(),
        channel: proto::PaymentChannel::Web as i32,
        idempotency_key: key.into(),
    };
    payments(channel).submit_payment(request).await.map(|r| r.into_inner().receipt.unwrap())
}

/// The allocation rows of one run: (order, bucket, amount).
fn run_rows(csv: &str, run_id: &str) -> Vec<(String, String, String)> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').map(str::to_owned).collect::<Vec<_>>())
        .filter(|c| c[0] == run_id)
        .map(|c| (c[3].clone(), c[4].clone(), c[7].clone()))
        .collect()
}

async fn remit(channel: &Authed, batch_id: &str, amount: &str) -> proto::RemittanceAcknowledgment {
    let csv = format!(
        "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n43-1234567,12345678,{SSN},Smith,2026-11-13,{amount}\n"
    );
    let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: batch_id.into(), ..Default::default() };
    let messages = gateway::grpc::client::remittance_upload(header, csv.as_bytes(), 1 << 16);
    RemittanceServiceClient::new(channel.clone()).submit_remittance(futures::stream::iter(messages)).await.unwrap().into_inner().acknowledgment.unwrap()
}

#[tokio::test]
async fn registration_refuses_what_is_wrong_with_a_clear_message() {
    let (app, _) = setup("2026-11-02").await;
    let mut client = payments(&app.payment_site);
    let refusals: [(&str, fn(&mut proto::RegisterPayerRequest), Code); 7] = [
        ("email", |r| r.email = "john.smith@".into(), Code::InvalidArgument),
        ("case_number", |r| r.case_number = "99999999".into(), Code::InvalidArgument),
        ("bank_account.routing_number", |r| r.bank_account.as_mut().unwrap().routing_number = "091000018".into(), Code::InvalidArgument),
        ("bank_account.account_number", |r| r.bank_account.as_mut().unwrap().account_number = "4111 1111 1111 1111".into(), Code::InvalidArgument),
        ("bank_account.account_type", |r| r.bank_account.as_mut().unwrap().account_type = proto::AccountType::Unspecified as i32, Code::InvalidArgument),
        ("telephone", |r| r.telephone = "555-0100".into(), Code::InvalidArgument),
        ("bank_account", |r| r.bank_account = None, Code::InvalidArgument),
    ];
    for (field, change, code) in refusals {
        let mut request = registration();
        change(&mut request);
        let status = client.register_payer(request).await.unwrap_err();
        assert_eq!(status.code(), code, "{field}");
        assert!(status.message().starts_with(field), "{field}: {}", status.message());
        let violations = tonic_types::StatusExt::get_details_bad_request(&status).expect("a BadRequest").field_violations;
        assert_eq!(violations.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(), [field]);
        assert!(!status.message().contains("4111"), "a card number is never repeated");
    }
    let card = {
        let mut request = registration();
        request.bank_account.as_mut().unwrap().account_number = "4111111111111111".into();
        client.register_payer(request).await.unwrap_err()
    };
    assert!(card.message().contains("card"), "{}", card.message());

    let payer = register(&app.payment_site).await;
    // Answers show the SSN and the account number masked.
    assert_eq!(payer.ssn_last4, "6789");
    let account = payer.bank_account.clone().unwrap();
    assert_eq!(account.bank_account.as_ref().unwrap().account_number_last4, "6789");
    assert!(!format!("{payer:?}").contains("123456789") && !format!("{payer:?}").contains(ACCOUNT));
    // A second bank account is refused: exactly one per payer.
    let second = proto::AddBankAccountRequest { payer_id: payer.payer_id, bank_account: registration().bank_account };
    assert_eq!(client.add_bank_account(second).await.unwrap_err().code(), Code::FailedPrecondition);
    assert_eq!(client.get_payer(proto::GetPayerRequest { payer_id: 999 }).await.unwrap_err().code(), Code::NotFound);
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn a_new_account_pays_only_after_five_business_days_across_a_weekend_and_a_holiday() {
    // Registered Friday Nov 20, 2026; Thanksgiving is Thursday Nov 26.
    let (app, clock) = setup("2026-11-20").await;
    let payer = register(&app.payment_site).await;
    let account = payer.bank_account.unwrap();
    assert_eq!((account.state().short(), account.usable_from.as_deref()), ("PENDING", Some("2026-12-01")));

    clock.set("2026-11-30");
    let status = pay(&app.payment_site, payer.payer_id, "12345678", "50.00", "k1").await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("2026-12-01") && status.message().contains("no money was taken"), "{}", status.message());

    clock.set("2026-12-01");
    let receipt = pay(&app.payment_site, payer.payer_id, "12345678", "50.00", "k1").await.unwrap();
    assert_eq!((receipt.status().short(), receipt.effective_date.as_str()), ("ACCEPTED", "2026-12-01"));

    // The back office can confirm the prenote early.
    clock.set("2026-11-20");
    let mut client = payments(&app.payment_site);
    let mut office = payments(&app.channel);
    let replaced = client
        .replace_bank_account(proto::ReplaceBankAccountRequest { payer_id: payer.payer_id, bank_account: registration().bank_account })
        .await
        .unwrap()
        .into_inner()
        .payer
        .unwrap();
    assert_eq!(replaced.bank_account.unwrap().state().short(), "PENDING");
    let confirmed =
        office.confirm_bank_account(proto::ConfirmBankAccountRequest { payer_id: payer.payer_id }).await.unwrap().into_inner().payer.unwrap();
    assert_eq!(confirmed.bank_account.unwrap().state().short(), "USABLE");
    assert!(pay(&app.payment_site, payer.payer_id, "12345678", "50.00", "k2").await.is_ok());
    // A returned prenote makes the account unusable.
    let returned = office
        .return_prenote(proto::ReturnPrenoteRequest { payer_id: payer.payer_id, return_code: "R03".into() })
        .await
        .unwrap()
        .into_inner()
        .payer
        .unwrap()
        .bank_account
        .unwrap();
    assert_eq!((returned.state().short(), returned.return_code.as_deref()), ("UNUSABLE", Some("R03")));
    assert_eq!(pay(&app.payment_site, payer.payer_id, "12345678", "50.00", "k3").await.unwrap_err().code(), Code::FailedPrecondition);
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn payments_are_refused_without_a_known_case_and_retries_take_no_money_twice() {
    let (app, clock) = setup("2026-11-02").await;
    let payer = register(&app.payment_site).await;
    clock.set("2026-11-13");
    for (case, amount, code) in [
        ("", "50.00", Code::InvalidArgument),
        ("99999999", "50.00", Code::InvalidArgument),
        ("1234", "50.00", Code::InvalidArgument),
        ("12345678", "0.00", Code::InvalidArgument),
        ("12345678", "5.005", Code::InvalidArgument),
    ] {
        let status = pay(&app.payment_site, payer.payer_id, case, amount, &format!("{case}-{amount}")).await.unwrap_err();
        assert_eq!(status.code(), code, "{case} {amount}: {}", status.message());
    }
    assert!(pay(&app.payment_site, payer.payer_id, "", "50.00", "x").await.unwrap_err().message().contains("no money was taken"));

    let first = pay(&app.payment_site, payer.payer_id, "12345678", "100.00", "retry-1").await.unwrap();
    let again = pay(&app.payment_site, payer.payer_id, "12345678", "100.00", "retry-1").await.unwrap();
    assert!(!first.replayed && again.replayed);
    assert_eq!(proto::PaymentReceipt { replayed: false, ..again }, first);
    let different = pay(&app.payment_site, payer.payer_id, "12345678", "200.00", "retry-1").await.unwrap_err();
    assert_eq!(different.code(), Code::AlreadyExists);
    // Below the monthly current support of 500.00 (A 300 + B 200): the answer says so.
    assert_eq!(first.below_monthly_support.as_deref(), Some("500.00"));
    assert!(first.notices.iter().any(|n| n.contains("below the monthly current support")));
    let run = distribute(&app.channel).await;
    assert_eq!((run.collections, run.total.as_str()), (1, "100.00"), "one payment, one collection");

    // A payment for another case (OB-2's, no withholding order) by the same payer is the
    // other obligor's money, and the answer does not speak of payroll deduction.
    let other = pay(&app.payment_site, payer.payer_id, "22345678", "150.00", "other").await.unwrap();
    assert!(!other.payroll_deduction_continues && other.below_monthly_support.is_none());
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn an_online_payment_never_stops_payroll_deduction() {
    let (app, clock) = setup("2026-11-02").await;
    let payer = register(&app.payment_site).await;
    clock.set("2026-11-13");
    // Enough to cover everything OB-1 owes in November: 500.00 current + 400.00 arrears.
    let receipt = pay(&app.payment_site, payer.payer_id, "12345678", "1000.00", "all").await.unwrap();
    assert!(receipt.payroll_deduction_continues);
    assert!(receipt.notices.iter().any(|n| n.contains("Payroll deduction continues")), "{:?}", receipt.notices);
    let run = distribute(&app.channel).await;
    assert_eq!((run.current.as_str(), run.arrears.as_str(), run.unapplied.as_str()), ("500.00", "400.00", "100.00"));

    // The next payroll remittance is accepted and distributed as before: all of it is
    // unapplied credit, since nothing is owed for November any more.
    clock.set("2026-11-16");
    let ack = remit(&app.vendor("acme").await, "PAYROLL-1", "184.62").await;
    assert_eq!((ack.status().short(), ack.applied), ("ACCEPTED", 1));
    let run = distribute(&app.channel).await;
    assert_eq!((run.collections, run.unapplied.as_str()), (1, "184.62"));
    assert_eq!(
        run_rows(&export(&app.channel, Export::Allocations).await, run.run_id.as_deref().unwrap()),
        [(String::new(), "UNAPPLIED".to_owned(), "184.62".to_owned())]
    );

    // The order and its withholding are unchanged: the registry re-import finds nothing to
    // change, and the balances show the same monthly amounts.
    let chunks = gateway::grpc::client::registry_upload(SPEC_REGISTRY.as_bytes(), 1 << 16);
    let again = RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner();
    assert_eq!((again.unchanged, again.updated), (3, 0));
    let balances = export(&app.channel, Export::Balances { as_of: "2026-11-30" }).await;
    assert!(balances.contains("A,12345678,OB-1,300.00,0.00,0.00,ACTIVE"), "{balances}");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn a_returned_payment_pooled_with_payroll_reverses_only_its_own_share() {
    let (app, clock) = setup("2026-11-02").await;
    let payer = register(&app.payment_site).await;
    clock.set("2026-11-13");
    let payment = pay(&app.payment_site, payer.payer_id, "12345678", "100.00", "p1").await.unwrap();
    // Payroll withheld 200.00 the same day: one pool of 300.00, prorated 3:2 to A and B.
    assert_eq!(remit(&app.vendor("acme").await, "PAYROLL-1", "200.00").await.applied, 1);
    let run = distribute(&app.channel).await;
    assert_eq!((run.pools, run.current.as_str()), (1, "300.00"));
    let allocations = export(&app.channel, Export::Allocations).await;
    assert_eq!(
        run_rows(&allocations, run.run_id.as_deref().unwrap()),
        [("A".into(), "CURRENT".into(), "180.00".into()), ("B".into(), "CURRENT".into(), "120.00".into())]
    );

    let mut client = payments(&app.channel);
    let result = client
        .record_return(proto::RecordReturnRequest { payment_id: payment.payment_id, return_code: "R01".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((result.outcome().short(), result.account_unusable), ("REVERSED", false));
    // 100/300 of each row: exactly the payment's share.
    let entries: Vec<_> = result.entries.iter().map(|e| (e.order_id.as_str(), e.bucket().short(), e.amount.as_str())).collect();
    assert_eq!(entries, [("A", "CURRENT", "-60.00"), ("B", "CURRENT", "-40.00")]);
    let allocations = export(&app.channel, Export::Allocations).await;
    assert_eq!(
        run_rows(&allocations, result.reversal_run_id.as_deref().unwrap()),
        [("A".into(), "CURRENT".into(), "-60.00".into()), ("B".into(), "CURRENT".into(), "-40.00".into())]
    );
    // Balances rise by exactly the reversed amounts: the payroll share stays.
    let balances = export(&app.channel, Export::Balances { as_of: "2026-11-30" }).await;
    assert!(balances.contains("A,12345678,OB-1,300.00,180.00,100.00,ACTIVE"), "{balances}");
    assert!(balances.contains("B,12345679,OB-1,200.00,120.00,300.00,ACTIVE"), "{balances}");
    // Recording the same return again changes nothing.
    let again = client
        .record_return(proto::RecordReturnRequest { payment_id: payment.payment_id, return_code: "R01".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.outcome().short(), "ALREADY_RETURNED");
    assert_eq!(export(&app.channel, Export::Allocations).await, allocations);
    // R01 leaves the account usable.
    assert!(pay(&app.payment_site, payer.payer_id, "12345678", "10.00", "p2").await.is_ok());
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn a_return_file_with_several_returns_is_imported_in_one_go() {
    let (app, clock) = setup("2026-11-02").await;
    let payer = register(&app.payment_site).await;
    clock.set("2026-11-13");
    let distributed = pay(&app.payment_site, payer.payer_id, "12345678", "250.00", "a").await.unwrap();
    distribute(&app.channel).await;
    let pending = pay(&app.payment_site, payer.payer_id, "12345678", "40.00", "b").await.unwrap();

    let file = write_returns(&[
        ("R01", &distributed.trace_number, 250_00),
        ("R03", &pending.trace_number, 40_00),
        ("R01", "091000019999999", 1_00),
        ("X7", &distributed.trace_number, 1_00),
        // The number of a payment, the amount of another debit: not that payment's return.
        ("R02", &pending.trace_number, 39_99),
    ]);
    let chunks = gateway::grpc::client::returns_upload(&file, 100);
    let mut client = payments(&app.channel);
    let imported = client.import_returns(futures::stream::iter(chunks.clone())).await.unwrap().into_inner();
    let outcomes: Vec<_> = imported.returns.iter().map(|r| (r.return_code.as_str(), r.payment_id.unwrap_or_default(), r.outcome().short())).collect();
    assert_eq!(
        outcomes,
        [
            ("R01", distributed.payment_id, "REVERSED"),
            ("R03", pending.payment_id, "CANCELLED"),
            ("R01", 0, "UNKNOWN_TRACE"),
            ("X7", 0, "INVALID_CODE"),
            ("R02", pending.payment_id, "AMOUNT_MISMATCH"),
        ]
    );
    // The cancelled payment is never distributed; the reversed one is back to zero.
    assert_eq!(distribute(&app.channel).await.collections, 0);
    let allocations = export(&app.channel, Export::Allocations).await;
    let net: i64 =
        allocations.lines().skip(1).map(|l| gateway::domain::Money::parse_signed(l.rsplit(',').next().unwrap()).unwrap().cents()).sum();
    assert_eq!(net, 0);
    // R03: the account is unusable until replaced and validated again.
    let refused = pay(&app.payment_site, payer.payer_id, "12345678", "10.00", "c").await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("R03"), "{}", refused.message());
    let replaced = payments(&app.payment_site)
        .replace_bank_account(proto::ReplaceBankAccountRequest { payer_id: payer.payer_id, bank_account: registration().bank_account })
        .await
        .unwrap()
        .into_inner()
        .payer
        .unwrap();
    assert_eq!(replaced.bank_account.unwrap().state().short(), "PENDING");
    // Importing the same file again changes nothing.
    let again = client.import_returns(futures::stream::iter(chunks)).await.unwrap().into_inner();
    assert_eq!(again.returns[0].outcome().short(), "ALREADY_RETURNED");
    assert_eq!(export(&app.channel, Export::Allocations).await, allocations);
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}
