//! Errors a client program can act on without reading English: every refusal carries the
//! google.rpc `ErrorInfo` (a stable reason in the domain `gateway.fspc`), a wrong request a
//! `BadRequest` naming every wrong field, a throttled call `RetryInfo`, and a state that
//! refuses the call a `PreconditionFailure`.

mod common;

use std::num::NonZeroU32;
use std::sync::Arc;

use common::{Authed, Backend, TestApp, TestClock, SPEC_REGISTRY};
use gateway::grpc::client::{registry_upload, remittance_upload};
use gateway::grpc::proto;
use proto::payment_service_client::PaymentServiceClient;
use proto::registry_service_client::RegistryServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

/// The status's `ErrorInfo`: (reason, domain, metadata).
fn error_info(status: &tonic::Status) -> (String, String, std::collections::HashMap<String, String>) {
    let info = status.get_details_error_info().unwrap_or_else(|| panic!("an ErrorInfo in {status:?}"));
    (info.reason, info.domain, info.metadata)
}

async fn with_registry(app: &TestApp) {
    let upload = futures::stream::iter(registry_upload(SPEC_REGISTRY.as_bytes(), 1 << 16));
    assert!(RegistryServiceClient::new(app.channel.clone()).import_registry(upload).await.unwrap().into_inner().applied);
}

fn payments(channel: &Authed) -> PaymentServiceClient<Authed> {
    PaymentServiceClient::new(channel.clone())
}

fn registration() -> proto::RegisterPayerRequest {
    common::registration_with_account("000123456789")
}

#[tokio::test]
async fn an_invalid_registration_names_every_wrong_field_at_once() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    with_registry(&app).await;
    let mut request = registration();
    request.name = " ".into();
    request.ssn = "666-45-6789".into();
    request.email = "john.smith@".into();
    request.bank_account.as_mut().unwrap().routing_number = "091000018".into();
    request.bank_account.as_mut().unwrap().account_type = proto::AccountType::Unspecified as i32;
    let status = payments(&app.payment_site).register_payer(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let violations = status.get_details_bad_request().expect("a BadRequest").field_violations;
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["name", "ssn", "email", "bank_account.routing_number", "bank_account.account_type"]);
    assert!(violations.iter().all(|v| !v.description.is_empty()));
    assert!(!format!("{status:?}").contains("666-45-6789") && !format!("{status:?}").contains("666456789"), "the SSN is never echoed");
    let (reason, domain, _) = error_info(&status);
    assert_eq!((reason.as_str(), domain.as_str()), ("INVALID_FIELD", "gateway.fspc"));
    app.stop().await;
}

#[tokio::test]
async fn a_payment_from_an_account_still_being_validated_says_which_precondition_failed() {
    let clock = TestClock::new("2026-11-02");
    let app = TestApp::spawn_with_clock(Backend::Sqlite, clock.clone() as Arc<dyn gateway::app::Clock>).await;
    with_registry(&app).await;
    let payer = payments(&app.payment_site).register_payer(registration()).await.unwrap().into_inner().payer.unwrap();
    let payment = proto::SubmitPaymentRequest {
        payer_id: payer.payer_id,
        case_number: "12345678".into(),
        amount: "25.00".into(),
        channel: proto::PaymentChannel::Web as i32,
        idempotency_key: "k-1".into(),
    };
    let status = payments(&app.payment_site).submit_payment(payment).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let failure = status.get_details_precondition_failure().expect("a PreconditionFailure");
    let violation = &failure.violations[0];
    assert_eq!((violation.r#type.as_str(), violation.subject.as_str()), ("BANK_ACCOUNT_PENDING", format!("payer:{}", payer.payer_id).as_str()));
    assert!(violation.description.contains("can pay from"), "{}", violation.description);
    let (reason, domain, metadata) = error_info(&status);
    assert_eq!((reason.as_str(), domain.as_str()), ("BANK_ACCOUNT_PENDING", "gateway.fspc"));
    assert_eq!(metadata.get("subject").map(String::as_str), Some(format!("payer:{}", payer.payer_id).as_str()));
    app.stop().await;
}

#[tokio::test]
async fn a_throttled_call_says_when_to_retry() {
    let app = TestApp::spawn_configured(Backend::Sqlite, |config| {
        config.guard.rate.requests_per_second = NonZeroU32::new(1).unwrap();
        config.guard.rate.request_burst = NonZeroU32::new(2).unwrap();
    })
    .await;
    let vendor = app.vendor("busy-vendor").await;
    let mut client = RemittanceServiceClient::new(vendor);
    let mut throttled = None;
    for _ in 0..5 {
        if let Err(status) = client.list_remittances(proto::ListRemittancesRequest { page_size: 10, ..Default::default() }).await {
            throttled = Some(status);
            break;
        }
    }
    let status = throttled.expect("the third call within a second is over the rate");
    assert_eq!(status.code(), Code::ResourceExhausted);
    let retry = status.get_details_retry_info().expect("a RetryInfo").retry_delay.expect("a delay");
    assert!(retry > std::time::Duration::ZERO && retry <= std::time::Duration::from_secs(1), "{retry:?}");
    let (reason, _, metadata) = error_info(&status);
    assert_eq!(reason, "RATE_LIMITED");
    assert!(metadata.contains_key("retry_after_ms"));
    app.stop().await;
}

#[tokio::test]
async fn refusals_carry_stable_reasons() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    with_registry(&app).await;
    // No key at all.
    let status = RemittanceServiceClient::new(app.raw.clone()).list_remittances(proto::ListRemittancesRequest { page_size: 1, ..Default::default() }).await.unwrap_err();
    assert_eq!((status.code(), error_info(&status).0.as_str()), (Code::Unauthenticated, "API_KEY_REQUIRED"));
    // A role that may not.
    let status = payments(&app.payment_site).record_return(proto::RecordReturnRequest { payment_id: 1, return_code: "R01".into() }).await;
    let status = status.unwrap_err();
    assert_eq!((status.code(), error_info(&status).0.as_str()), (Code::PermissionDenied, "ROLE_NOT_ALLOWED"));
    // A batch id used again for other bytes: the batch is named.
    let vendor = app.vendor("acme-payroll").await;
    let header = |batch: &str| proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: batch.into(), ..Default::default() };
    let csv = |amount: &str| {
        format!("employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n43-1234567,12345678,123-45-6789,Smith,2026-11-13,{amount}\n")
    };
    let mut client = RemittanceServiceClient::new(vendor);
    client.submit_remittance(futures::stream::iter(remittance_upload(header("B-1"), csv("1.00").as_bytes(), 1 << 16))).await.unwrap();
    let status =
        client.submit_remittance(futures::stream::iter(remittance_upload(header("B-1"), csv("2.00").as_bytes(), 1 << 16))).await.unwrap_err();
    let (reason, _, metadata) = error_info(&status);
    assert_eq!((status.code(), reason.as_str()), (Code::AlreadyExists, "BATCH_ID_REUSED"));
    assert_eq!(metadata.get("subject").map(String::as_str), Some("batch:B-1"));
    // Something that does not exist.
    let status = client.get_remittance(proto::GetRemittanceRequest { batch_id: "NOPE".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!((status.code(), error_info(&status).0.as_str()), (Code::NotFound, "NOT_FOUND"));
    app.stop().await;
}
