//! Who may call what, through the real server: every RPC × every role × an own and a
//! foreign object, generated from the policy's list of actions; and the audit trail, one row
//! per call, denied calls included, that nobody can alter.

mod common;

use common::Short;

use std::collections::HashMap;

use common::{make_key, Authed, Backend, TestApp, SPEC_REGISTRY};
use futures::StreamExt;
use gateway::domain::access::{Action, Role};
use gateway::formats::ach_returns::write_returns;
use gateway::grpc::proto;
use gateway::grpc::REQUEST_ID_METADATA;
use proto::admin_service_client::AdminServiceClient;
use proto::collection_service_client::CollectionServiceClient;
use proto::credit_service_client::CreditServiceClient;
use proto::explain_service_client::ExplainServiceClient;
use proto::ledger_service_client::LedgerServiceClient;
use proto::distribution_service_client::DistributionServiceClient;
use proto::export_service_client::ExportServiceClient;
use proto::payment_service_client::PaymentServiceClient;
use proto::registry_service_client::RegistryServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;
use proto::suspense_service_client::SuspenseServiceClient;
use proto::termination_service_client::TerminationServiceClient;
use proto::order_service_client::OrderServiceClient;
use proto::withholding_service_client::WithholdingServiceClient;
use tonic::{Code, Status};

const EMPLOYER_FEIN: &str = "43-1234567";

/// A remittance CSV of one payment of `dollars` for OB-1 by the employer `fein` (files of
/// the same bytes are duplicates: the amount tells them apart).
fn remittance_csv(fein: &str, dollars: usize) -> Vec<u8> {
    format!(
        "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n{fein},12345678,123-45-6789,Smith,2026-11-13,{dollars}.00\n"
    )
    .into_bytes()
}

fn submission(batch_id: &str, csv: Vec<u8>) -> impl futures::Stream<Item = proto::SubmitRemittanceRequest> {
    let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: batch_id.into(), ..Default::default() };
    futures::stream::iter(gateway::grpc::client::remittance_upload(header, &csv, 1 << 16))
}

fn registration() -> proto::RegisterPayerRequest {
    proto::RegisterPayerRequest {
        name: "John Smith".into(),
        address: "1 Main St".into(),
        ssn: "123-45-6789".into(),
        telephone: "573-555-0100".into(),
        case_number: "12345678".into(),
        email: "john@example.com".into(),
        bank_account: Some(proto::BankAccountInput {
            routing_number: "091000019".into(),
            account_number: "000123456789".into(),
            account_type: proto::AccountType::Checking as i32,
        }),
    }
}

fn payment(payer_id: i64, amount: &str, channel: proto::PaymentChannel, idempotency_key: &str) -> proto::SubmitPaymentRequest {
    proto::SubmitPaymentRequest {
        payer_id,
        case_number: "12345678".into(),
        amount: amount.into(),
        channel: channel as i32,
        idempotency_key: idempotency_key.into(),
    }
}

/// What the matrix calls with: objects that exist, owned by the tenants of the test.
struct World {
    app: TestApp,
    channels: HashMap<Role, Authed>,
    payer_id: i64,
    payment_id: i64,
    /// Each role's own batch (vendor and employer), and a batch of another vendor's.
    own_batch: HashMap<Role, String>,
    foreign_batch: String,
}

async fn world() -> World {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let chunks = gateway::grpc::client::registry_upload(SPEC_REGISTRY.as_bytes(), 1 << 16);
    assert!(
        RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner().applied
    );

    let mut channels = HashMap::new();
    channels.insert(Role::Vendor, app.vendor("acme-payroll").await);
    channels.insert(Role::Employer, app.as_key(Role::Employer, "acme-hr", &[EMPLOYER_FEIN]).await);
    channels.insert(Role::PaymentSite, app.payment_site.clone());
    channels.insert(Role::BackOffice, app.channel.clone());
    channels.insert(Role::Admin, app.as_key(Role::Admin, "security-officer", &[]).await);

    let mut own_batch = HashMap::new();
    for (role, batch) in [(Role::Vendor, "ACME-1"), (Role::Employer, "HR-1")] {
        let mut client = RemittanceServiceClient::new(channels[&role].clone());
        let ack = client.submit_remittance(submission(batch, remittance_csv(EMPLOYER_FEIN, batch.len()))).await.unwrap().into_inner().acknowledgment.unwrap();
        assert_eq!(ack.status().short(), "ACCEPTED");
        own_batch.insert(role, batch.to_owned());
    }
    let other = app.vendor("other-payroll").await;
    RemittanceServiceClient::new(other.clone()).submit_remittance(submission("OTHER-1", remittance_csv("43-7654321", 1))).await.unwrap();
    // Lines nobody can identify: the suspense items the back office works in the matrix (two
    // resolved, two returned, and one each for the calls without a key, which are refused).
    // The employees also left: each line is a termination notice too.
    let unknown = (1..=6).map(|i| format!("43-7654321,,234-56-78{i:02},Nobody,2026-11-13,{i}.00,Y\n")).collect::<String>();
    let csv = format!("employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount,employment_terminated\n{unknown}").into_bytes();
    RemittanceServiceClient::new(other).submit_remittance(submission("OTHER-2", csv)).await.unwrap();

    let mut payments = PaymentServiceClient::new(app.payment_site.clone());
    let payer_id = payments.register_payer(registration()).await.unwrap().into_inner().payer.unwrap().payer_id;
    PaymentServiceClient::new(app.channel.clone()).confirm_bank_account(proto::ConfirmBankAccountRequest { payer_id }).await.unwrap();
    let request = payment(payer_id, "20.00", proto::PaymentChannel::Web, "setup");
    let payment_id = payments.submit_payment(request).await.unwrap().into_inner().receipt.unwrap().payment_id;
    // Money for OB-2 before its order starts: all unapplied credit, which the matrix refunds
    // and applies by hand (to November, due in full).
    let money = proto::AddCollectionRequest { case_number: "22345678".into(), amount: "1000.00".into(), effective_date: "2026-10-15".into() };
    CollectionServiceClient::new(app.channel.clone()).add_collection(money).await.unwrap();
    DistributionServiceClient::new(app.channel.clone()).run_distribution(proto::RunDistributionRequest {}).await.unwrap();
    World { app, channels, payer_id, payment_id, own_batch, foreign_batch: "OTHER-1".to_owned() }
}

/// The sender a role names when it reads a file: the back office names the other vendor (the
/// only sender whose batch it is given), a sender nobody (its own files).
fn sender_of(role: Role) -> String {
    if role == Role::BackOffice { "other-payroll".into() } else { String::new() }
}

/// The oldest OPEN suspense item, read from the store (so that any role can be tried on it).
async fn first_open_item(world: &World) -> i64 {
    let filter = gateway::storage::suspense::SuspenseFilter { state: "OPEN".into(), ..Default::default() };
    let open = world.app.app.store().suspense_items(&filter, None, 1).await.unwrap();
    open.first().expect("an OPEN suspense item is left for the matrix").suspense_id
}

/// Whether the RPC's object belongs to a tenant: only then is there a foreign object to try.
fn tenant_scoped(action: Action) -> bool {
    matches!(
        action,
        Action::GetRemittance
            | Action::StreamRemittanceLines
            | Action::ListRemittances
            | Action::SubmitRemittance
            | Action::CalculateWithholding
            | Action::CalculatePayrollWithholding
    )
}

/// A pay period of OB-1 (case 12345678, whose order the employer of the test holds); the
/// foreign one names OB-2's case with OB-1's SSN.
fn pay_period(foreign: bool) -> proto::EmployeePayPeriod {
    proto::EmployeePayPeriod {
        frequency: proto::PayFrequency::Biweekly as i32,
        pay_date: "2026-11-20".into(),
        disposable_earnings: "900.00".into(),
        supports_other_family: Some(false),
        medical_premium: String::new(),
        employee_ssn: "123-45-6789".into(),
        case_numbers: vec![if foreign { "22345678" } else { "12345678" }.into()],
        external_orders: Vec::new(),
    }
}

/// What an allowed call answers. AddBankAccount always refuses a second account: that is
/// its answer once allowed, never PERMISSION_DENIED.
fn allowed_answer(action: Action) -> Code {
    match action {
        Action::AddBankAccount => Code::FailedPrecondition,
        _ => Code::Ok,
    }
}

/// Reads a server stream to its end; its first error is the call's.
async fn drain<T>(stream: Result<tonic::Response<tonic::Streaming<T>>, Status>) -> Result<Vec<T>, Status> {
    let mut stream = stream?.into_inner();
    let mut items = Vec::new();
    while let Some(item) = stream.next().await {
        items.push(item?);
    }
    Ok(items)
}

/// Calls the RPC of `action` as `role` on an own or a foreign object; `cell` makes what
/// must be unique (batch ids, idempotency keys, key names) unique to the call.
async fn call(world: &World, channel: &Authed, role: Role, action: Action, foreign: bool, cell: usize) -> Result<(), Status> {
    let batch = match (foreign, world.own_batch.get(&role)) {
        (false, Some(own)) => own.clone(),
        _ => world.foreign_batch.clone(),
    };
    let payer_id = world.payer_id;
    let mut remittances = RemittanceServiceClient::new(channel.clone());
    let mut payments = PaymentServiceClient::new(channel.clone());
    let mut exports = ExportServiceClient::new(channel.clone());
    let mut admin = AdminServiceClient::new(channel.clone());
    match action {
        Action::ImportRegistry => {
            let chunks = gateway::grpc::client::registry_upload(SPEC_REGISTRY.as_bytes(), 1 << 16);
            RegistryServiceClient::new(channel.clone()).import_registry(futures::stream::iter(chunks)).await.map(drop)
        }
        Action::AddCollection => {
            let request =
                proto::AddCollectionRequest { case_number: "12345678".into(), amount: "1.00".into(), effective_date: "2026-11-13".into() };
            CollectionServiceClient::new(channel.clone()).add_collection(request).await.map(drop)
        }
        Action::RunDistribution => {
            DistributionServiceClient::new(channel.clone()).run_distribution(proto::RunDistributionRequest {}).await.map(drop)
        }
        Action::SubmitRemittance => {
            // Foreign: a line of another employer's (an employer key may not remit it).
            let fein = if foreign { "43-7654321" } else { EMPLOYER_FEIN };
            let ack =
                remittances.submit_remittance(submission(&format!("CELL-{cell}"), remittance_csv(fein, 100 + cell))).await?.into_inner().acknowledgment.unwrap();
            assert_eq!(ack.status().short(), "ACCEPTED", "{role} {action:?}");
            let rejected = ack.lines.iter().any(|l| l.problems.iter().any(|p| p.code == "FEIN_NOT_AUTHORIZED"));
            assert_eq!(rejected, foreign && role == Role::Employer, "{role} foreign={foreign}: {:?}", ack.lines);
            Ok(())
        }
        Action::GetRemittance => remittances.get_remittance(proto::GetRemittanceRequest { batch_id: batch, sender: sender_of(role) }).await.map(drop),
        Action::StreamRemittanceLines => {
            let request = proto::StreamRemittanceLinesRequest { batch_id: batch, sender: sender_of(role), ..Default::default() };
            drain(remittances.stream_remittance_lines(request).await).await.map(drop)
        }
        Action::ListRemittances => {
            let listed = remittances.list_remittances(proto::ListRemittancesRequest { page_size: 0, ..Default::default() }).await?.into_inner();
            // Another tenant's files never appear in a sender's list; the back office sees them all.
            let foreign_listed = listed.remittances.iter().any(|r| r.batch_id == world.foreign_batch);
            assert_eq!(foreign_listed, role == Role::BackOffice, "{role}: {listed:?}");
            Ok(())
        }
        Action::RegisterPayer => payments.register_payer(registration()).await.map(drop),
        Action::GetPayer => payments.get_payer(proto::GetPayerRequest { payer_id }).await.map(drop),
        Action::AddBankAccount => {
            let request = proto::AddBankAccountRequest { payer_id, bank_account: registration().bank_account };
            payments.add_bank_account(request).await.map(drop)
        }
        Action::ReplaceBankAccount => {
            let request = proto::ReplaceBankAccountRequest { payer_id, bank_account: registration().bank_account };
            payments.replace_bank_account(request).await.map(drop)
        }
        Action::ConfirmBankAccount => payments.confirm_bank_account(proto::ConfirmBankAccountRequest { payer_id }).await.map(drop),
        Action::ReturnPrenote => {
            let result = payments.return_prenote(proto::ReturnPrenoteRequest { payer_id, return_code: "R03".into() }).await.map(drop);
            // Confirm again, so later payments in the matrix are possible.
            if result.is_ok() {
                payments.confirm_bank_account(proto::ConfirmBankAccountRequest { payer_id }).await?;
            }
            result
        }
        Action::SubmitPayment => {
            let mut office = PaymentServiceClient::new(world.channels[&Role::BackOffice].clone());
            office.confirm_bank_account(proto::ConfirmBankAccountRequest { payer_id }).await?;
            let request = payment(payer_id, "5.00", proto::PaymentChannel::Web, &format!("cell-{cell}"));
            payments.submit_payment(request).await.map(drop)
        }
        Action::RecordReturn => {
            let request = proto::RecordReturnRequest { payment_id: world.payment_id, return_code: "R01".into() };
            payments.record_return(request).await.map(drop)
        }
        Action::ImportReturns => {
            let file = write_returns(&[("R01", "091000019999999", 100)]);
            payments.import_returns(futures::stream::iter(gateway::grpc::client::returns_upload(&file, 1 << 16))).await.map(drop)
        }
        Action::ExportAllocations => drain(exports.export_allocations(proto::ExportAllocationsRequest {}).await).await.map(drop),
        Action::ExportBalances => {
            drain(exports.export_balances(proto::ExportBalancesRequest { as_of: None }).await).await.map(drop)
        }
        Action::ExportSuspense => drain(exports.export_suspense(proto::ExportSuspenseRequest {}).await).await.map(drop),
        Action::ExportAudit => drain(exports.export_audit(proto::ExportAuditRequest {}).await).await.map(drop),
        Action::ExportReport => {
            let request = proto::ExportReportRequest { kind: proto::ReportKind::Totals as i32, ..Default::default() };
            drain(exports.export_report(request).await).await.map(drop)
        }
        Action::CreateApiKey => {
            let request = proto::CreateApiKeyRequest { role: proto::Role::Vendor as i32, name: format!("made-in-cell-{cell}"), ..Default::default() };
            admin.create_api_key(request).await.map(drop)
        }
        Action::ListApiKeys => admin.list_api_keys(proto::ListApiKeysRequest::default()).await.map(drop),
        Action::RevokeApiKey => {
            let token = make_key(&world.app.app, Role::Vendor, &format!("revoked-in-cell-{cell}"), &[]).await;
            let key_id = token.split('_').nth(1).unwrap().to_owned();
            admin.revoke_api_key(proto::RevokeApiKeyRequest { key_id }).await.map(drop)
        }
        Action::CalculateWithholding => {
            let request = proto::CalculateWithholdingRequest { pay_period: Some(pay_period(foreign)) };
            let answer = WithholdingServiceClient::new(channel.clone()).calculate_withholding(request).await?.into_inner();
            assert_eq!(answer.withholding.unwrap().total_withheld, "138.46", "{role}: 300.00 a month, biweekly");
            Ok(())
        }
        Action::CalculatePayrollWithholding => {
            use proto::calculate_payroll_withholding_response::Result as Answer;
            let request = proto::CalculatePayrollWithholdingRequest { employee_reference: "E1".into(), pay_period: Some(pay_period(foreign)) };
            let calls = WithholdingServiceClient::new(channel.clone()).calculate_payroll_withholding(futures::stream::iter([request])).await;
            let answers = drain(calls).await?;
            // Another person's case is that employee's NOT_FOUND, not the run's.
            match &answers[..] {
                [proto::CalculatePayrollWithholdingResponse { result: Some(Answer::Failure(failure)), .. }] if foreign => {
                    assert_eq!(failure.reason(), proto::WithholdingFailureReason::NotFound, "{role}");
                }
                [proto::CalculatePayrollWithholdingResponse { result: Some(Answer::Withholding(_)), .. }] if !foreign => {}
                other => panic!("{role} foreign={foreign}: {other:?}"),
            }
            Ok(())
        }
        Action::ListSuspenseItems => {
            SuspenseServiceClient::new(channel.clone()).list_suspense_items(proto::ListSuspenseItemsRequest::default()).await.map(drop)
        }
        Action::GetSuspenseItem => {
            SuspenseServiceClient::new(channel.clone()).get_suspense_item(proto::GetSuspenseItemRequest { suspense_id: 1 }).await.map(drop)
        }
        Action::ResolveSuspenseItem => {
            use proto::resolve_suspense_item_request::Target;
            let suspense_id = first_open_item(world).await;
            let request = proto::ResolveSuspenseItemRequest { suspense_id, target: Some(Target::CaseNumber("12345678".into())) };
            SuspenseServiceClient::new(channel.clone()).resolve_suspense_item(request).await.map(drop)
        }
        Action::ReturnSuspenseItem => {
            let suspense_id = first_open_item(world).await;
            let request = proto::ReturnSuspenseItemRequest { suspense_id, reason: "not our employee".into(), reference: format!("CHK-{cell}") };
            SuspenseServiceClient::new(channel.clone()).return_suspense_item(request).await.map(drop)
        }
        Action::ListTerminationNotices => {
            let request = proto::ListTerminationNoticesRequest::default();
            TerminationServiceClient::new(channel.clone()).list_termination_notices(request).await.map(drop)
        }
        Action::MarkTerminationNoticeHandled => {
            let filter = gateway::storage::terminations::NoticeFilter { handled: Some(false), ..Default::default() };
            let open = world.app.app.store().termination_notices(&filter, None, 1).await.unwrap();
            let notice_id = open.first().expect("a notice is left for the matrix").notice_id;
            let request = proto::MarkTerminationNoticeHandledRequest { notice_id };
            TerminationServiceClient::new(channel.clone()).mark_termination_notice_handled(request).await.map(drop)
        }
        Action::RequestOrderReview => {
            let request = proto::RequestOrderReviewRequest {
                order_id: "A".into(),
                request_date: "2026-11-20".into(),
                channel: proto::ReviewChannel::Mail as i32,
                reason: format!("a change of circumstance ({cell})"),
            };
            OrderServiceClient::new(channel.clone()).request_order_review(request).await.map(drop)
        }
        Action::ListProjectedEnds => {
            OrderServiceClient::new(channel.clone()).list_projected_ends(proto::ListProjectedEndsRequest::default()).await.map(drop)
        }
        Action::ListOrderReviews => {
            OrderServiceClient::new(channel.clone()).list_order_reviews(proto::ListOrderReviewsRequest::default()).await.map(drop)
        }
        Action::RecordOrderEnd => {
            let request = proto::RecordOrderEndRequest {
                order_id: if foreign { "C" } else { "A" }.into(),
                reason: proto::EndReason::ChildMarried as i32,
                end_date: "2026-12-15".into(),
            };
            OrderServiceClient::new(channel.clone()).record_order_end(request).await.map(drop)
        }
        Action::WithdrawOrderEnd => {
            let request = proto::WithdrawOrderEndRequest { order_id: if foreign { "C" } else { "A" }.into() };
            OrderServiceClient::new(channel.clone()).withdraw_order_end(request).await.map(drop)
        }
        Action::SearchObligors => {
            let request = proto::SearchObligorsRequest { case_number: if foreign { "22345678" } else { "12345678" }.into(), ..Default::default() };
            OrderServiceClient::new(channel.clone()).search_obligors(request).await.map(drop)
        }
        Action::ExplainCollection => {
            ExplainServiceClient::new(channel.clone()).explain_collection(proto::ExplainCollectionRequest { collection_id: 1 }).await.map(drop)
        }
        Action::ExplainOrder => {
            let request = proto::ExplainOrderRequest { order_id: "A".into(), ..Default::default() };
            ExplainServiceClient::new(channel.clone()).explain_order(request).await.map(drop)
        }
        Action::ListUnappliedCredit => {
            CreditServiceClient::new(channel.clone()).list_unapplied_credit(proto::ListUnappliedCreditRequest::default()).await.map(drop)
        }
        Action::RefundCredit => {
            let request = proto::RefundCreditRequest { obligor_id: "OB-2".into(), amount: "1.00".into(), reference: format!("CHK-{cell}") };
            CreditServiceClient::new(channel.clone()).refund_credit(request).await.map(drop)
        }
        Action::VerifyLedger => LedgerServiceClient::new(channel.clone()).verify_ledger(proto::VerifyLedgerRequest {}).await.map(drop),
        Action::ApplyCredit => {
            let request =
                proto::ApplyCreditRequest { obligor_id: "OB-2".into(), order_id: "C".into(), amount: "1.00".into(), month: "2026-11".into() };
            CreditServiceClient::new(channel.clone()).apply_credit(request).await.map(drop)
        }
        Action::Reflection => {
            use tonic_reflection::pb::v1::{server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest};
            let request = tonic_reflection::pb::v1::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            drain(ServerReflectionClient::new(channel.clone()).server_reflection_info(futures::stream::iter([request])).await)
                .await
                .map(drop)
        }
    }
}

fn code_of(result: &Result<(), Status>) -> Code {
    result.as_ref().err().map(Status::code).unwrap_or(Code::Ok)
}

#[tokio::test]
async fn only_the_allowed_cells_of_every_rpc_role_and_object_succeed() {
    let world = world().await;
    let mut cell = 0;
    let mut failures = Vec::new();
    for action in Action::ALL {
        for role in Role::ALL {
            for foreign in [false, true] {
                cell += 1;
                let result = call(&world, &world.channels[&role], role, action, foreign, cell).await;
                // The back office reads every sender's files: no object is foreign to it.
                let expected = match (action.allows(role), foreign && tenant_scoped(action) && role != Role::BackOffice) {
                    (false, _) => Code::PermissionDenied,
                    // Another tenant's object is answered as if it did not exist.
                    (true, true) if matches!(action, Action::GetRemittance | Action::StreamRemittanceLines | Action::CalculateWithholding) => {
                        Code::NotFound
                    }
                    (true, _) => allowed_answer(action),
                };
                if code_of(&result) != expected {
                    failures.push(format!("{action:?} as {role} (foreign: {foreign}): expected {expected:?}, got {result:?}"));
                }
                if let Err(status) = &result {
                    // A refusal says nothing about the object asked for.
                    if expected == Code::PermissionDenied {
                        assert!(!status.message().contains("OTHER-1") && !status.message().contains("ACME-1"), "{}", status.message());
                    }
                }
            }
        }
        // Without a key, or with a revoked one, nothing but health answers.
        let result = call(&world, &no_key(&world.app.raw), Role::Vendor, action, false, 0).await;
        if code_of(&result) != Code::Unauthenticated {
            failures.push(format!("{action:?} without a key: {result:?}"));
        }
    }
    let token = make_key(&world.app.app, Role::BackOffice, "soon-revoked", &[]).await;
    let key_id = token.split('_').nth(1).unwrap().to_owned();
    AdminServiceClient::new(world.channels[&Role::Admin].clone()).revoke_api_key(proto::RevokeApiKeyRequest { key_id }).await.unwrap();
    let revoked = common::authed(&world.app.raw, &token);
    let result = call(&world, &revoked, Role::BackOffice, Action::ExportAllocations, false, 0).await;
    assert_eq!(code_of(&result), Code::Unauthenticated, "a revoked key: {result:?}");
    let forged = common::authed(&world.app.raw, &format!("{}0", &token[..token.len() - 1]));
    let result = call(&world, &forged, Role::BackOffice, Action::ExportAllocations, false, 0).await;
    assert_eq!(code_of(&result), Code::Unauthenticated, "a wrong secret: {result:?}");
    assert!(failures.is_empty(), "{} cells wrong:\n{}", failures.len(), failures.join("\n"));
    world.app.stop().await;
}

/// A channel that presents no key at all.
fn no_key(channel: &tonic::transport::Channel) -> Authed {
    tonic::service::interceptor::InterceptedService::new(channel.clone(), gateway::grpc::client::BearerToken::none())
}

/// The request id of an answer, from its metadata (an error's too).
fn request_id_of<T>(result: &Result<tonic::Response<T>, Status>) -> String {
    let metadata = match result {
        Ok(response) => response.metadata(),
        Err(status) => status.metadata(),
    };
    metadata.get(REQUEST_ID_METADATA).expect("every answer has a request id").to_str().unwrap().to_owned()
}

#[tokio::test]
async fn every_call_writes_one_audit_row_denied_ones_included_and_no_row_can_be_altered() {
    let world = world().await;
    let store = world.app.app.store().clone();
    let before = store.audit_after(0, 100_000).await.unwrap().last().map(|r| r.audit_id).unwrap_or(0);
    let vendor = &world.channels[&Role::Vendor];
    let office = &world.channels[&Role::BackOffice];
    let site = &world.channels[&Role::PaymentSite];
    let payer_id = world.payer_id;

    let mut calls: Vec<(String, &str, &str)> = Vec::new(); // (request id, action, outcome)
    let result = PaymentServiceClient::new(site.clone()).get_payer(proto::GetPayerRequest { payer_id }).await;
    calls.push((request_id_of(&result), "GetPayer", "OK"));
    let result = PaymentServiceClient::new(vendor.clone()).get_payer(proto::GetPayerRequest { payer_id }).await;
    calls.push((request_id_of(&result), "GetPayer", "PERMISSION_DENIED"));
    let result = PaymentServiceClient::new(no_key(&world.app.raw)).get_payer(proto::GetPayerRequest { payer_id }).await;
    calls.push((request_id_of(&result), "GetPayer", "UNAUTHENTICATED"));
    let result = PaymentServiceClient::new(site.clone()).get_payer(proto::GetPayerRequest { payer_id: 999 }).await;
    calls.push((request_id_of(&result), "GetPayer", "NOT_FOUND"));
    let request = payment(payer_id, "12.00", proto::PaymentChannel::Phone, "audited");
    let result = PaymentServiceClient::new(site.clone()).submit_payment(request.clone()).await;
    calls.push((request_id_of(&result), "SubmitPayment", "OK"));
    let result = PaymentServiceClient::new(site.clone()).submit_payment(request.clone()).await;
    calls.push((request_id_of(&result), "SubmitPayment", "REPLAYED"));
    let malformed = proto::SubmitPaymentRequest { amount: "12.001".into(), idempotency_key: "bad".into(), ..request };
    let result = PaymentServiceClient::new(site.clone()).submit_payment(malformed).await;
    calls.push((request_id_of(&result), "SubmitPayment", "INVALID_ARGUMENT"));
    let result = DistributionServiceClient::new(office.clone()).run_distribution(proto::RunDistributionRequest {}).await;
    calls.push((request_id_of(&result), "RunDistribution", "OK"));
    let result =
        RemittanceServiceClient::new(vendor.clone()).submit_remittance(submission("AUDIT-1", remittance_csv(EMPLOYER_FEIN, 7))).await;
    calls.push((request_id_of(&result), "SubmitRemittance", "OK"));
    let result =
        RemittanceServiceClient::new(vendor.clone()).submit_remittance(submission("AUDIT-1", remittance_csv(EMPLOYER_FEIN, 7))).await;
    calls.push((request_id_of(&result), "SubmitRemittance", "REPLAYED"));
    let result =
        RemittanceServiceClient::new(vendor.clone()).submit_remittance(submission("AUDIT-2", b"not,a,remittance\n".to_vec())).await;
    calls.push((request_id_of(&result), "SubmitRemittance", "REFUSED"));
    let result =
        RemittanceServiceClient::new(vendor.clone()).get_remittance(proto::GetRemittanceRequest { batch_id: "OTHER-1".into(), ..Default::default() }).await;
    calls.push((request_id_of(&result), "GetRemittance", "NOT_FOUND"));
    let result = ExportServiceClient::new(office.clone()).export_suspense(proto::ExportSuspenseRequest {}).await;
    calls.push((request_id_of(&result), "ExportSuspense", "OK"));
    drain(result).await.unwrap();
    let result = AdminServiceClient::new(office.clone()).list_api_keys(proto::ListApiKeysRequest::default()).await;
    calls.push((request_id_of(&result), "ListApiKeys", "PERMISSION_DENIED"));

    let rows: Vec<_> = store.audit_after(before, 100_000).await.unwrap().into_iter().map(|r| r.entry).collect();
    assert_eq!(rows.len(), calls.len(), "one row per call: {rows:#?}");
    for (request_id, action, outcome) in &calls {
        let matching: Vec<_> = rows.iter().filter(|r| &r.request_id == request_id).collect();
        assert_eq!(matching.len(), 1, "one row for {action} {outcome}: {rows:#?}");
        assert_eq!((matching[0].action.as_str(), matching[0].outcome.as_str()), (*action, *outcome), "{request_id}");
    }
    // Who: the key's name and role, or `-` for nobody.
    let unauthenticated = rows.iter().find(|r| r.outcome.as_str() == "UNAUTHENTICATED").unwrap();
    assert_eq!((unauthenticated.actor.as_str(), unauthenticated.role.as_str()), ("-", "-"));
    let payment = rows.iter().find(|r| r.action == "SubmitPayment" && r.outcome.as_str() == "OK").unwrap();
    assert_eq!(
        (payment.actor.as_str(), payment.role.as_str(), payment.object.as_str()),
        ("payment-site", "payment-site", &*format!("payer:{payer_id}"))
    );

    // The export shows the same rows; and no row can be changed or removed.
    let csv = common::export(office, common::Export::Audit).await;
    assert!(csv.starts_with("audit_id,at,request_id,actor,key_id,role,action,object,outcome\n"), "{csv}");
    for (request_id, _, _) in &calls {
        assert!(csv.contains(request_id.as_str()), "{request_id} in the export");
    }
    let mut connection = <sqlx::SqliteConnection as sqlx::Connection>::connect(&world.app.db.url).await.unwrap();
    assert!(sqlx::query("UPDATE audit_log SET outcome = 'OK'").execute(&mut connection).await.is_err());
    assert!(sqlx::query("DELETE FROM audit_log").execute(&mut connection).await.is_err());
    world.app.stop().await;
}

/// Two replicas on one database, each with its key cache (a short TTL for the test): a key
/// revoked on one is refused there at once and on the other once its cached copy is older
/// than the TTL.
async fn a_key_revoked_on_one_replica_is_refused_by_every_replica_within_the_ttl(backend: Backend) {
    use gateway::app::{Caller, Credentials, FixedClock, UploadLimits};
    let db = common::TestDb::new(backend).await;
    let ttl = std::time::Duration::from_secs(2);
    let replica = || async {
        let clock = std::sync::Arc::new(FixedClock(common::test_today()));
        let app = gateway::startup::open_app(&db.url, Some(common::TEST_PII_KEY), clock, UploadLimits::STANDARD).await.unwrap();
        app.with_key_cache_ttl(ttl)
    };
    let (first, second) = (replica().await, replica().await);
    let token = make_key(&first, Role::Vendor, "acme-payroll", &[]).await;
    let presented = Credentials { token: Some(&token), client_cert_sha256: None };
    assert!(first.authenticate(presented).await.is_ok() && second.authenticate(presented).await.is_ok());

    let key_id = token.split('_').nth(1).unwrap();
    first.revoke_key(&Caller::local_operator(), key_id).await.unwrap();
    let revoked = std::time::Instant::now();
    assert!(first.authenticate(presented).await.is_err(), "refused at once where it was revoked");
    // The other replica read the key a moment ago: it trusts that copy for the TTL (the
    // documented bound), and reads the key again after.
    assert!(second.authenticate(presented).await.is_ok(), "the other replica answers from its cache, without a read");
    while second.authenticate(presented).await.is_ok() {
        assert!(revoked.elapsed() < ttl, "the other replica accepted the revoked key past the TTL");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(second.authenticate(presented).await.is_err(), "refused for good");
}

#[tokio::test]
async fn a_key_revoked_on_one_replica_is_refused_by_every_replica_within_the_ttl_on_sqlite() {
    a_key_revoked_on_one_replica_is_refused_by_every_replica_within_the_ttl(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_key_revoked_on_one_replica_is_refused_by_every_replica_within_the_ttl_on_postgres() {
    a_key_revoked_on_one_replica_is_refused_by_every_replica_within_the_ttl(Backend::Postgres).await;
}
