//! Unapplied credit through gRPC (`order-lifecycle.md`, "Unapplied credit"): listed by
//! obligor, applied by hand to an order never beyond what is due, refunded with a reference;
//! each action moves at most what is left, also when two clerks act at once.

mod common;

use common::{distribute, Backend, TestApp, TestClock, SPEC_REGISTRY};
use gateway::grpc::proto;
use proto::collection_service_client::CollectionServiceClient;
use proto::credit_service_client::CreditServiceClient;
use proto::explain_service_client::ExplainServiceClient;
use proto::registry_service_client::RegistryServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

fn refund(amount: &str, reference: &str) -> proto::RefundCreditRequest {
    proto::RefundCreditRequest { obligor_id: "OB-2".into(), amount: amount.into(), reference: reference.into() }
}

fn apply(amount: &str, month: &str) -> proto::ApplyCreditRequest {
    proto::ApplyCreditRequest { obligor_id: "OB-2".into(), order_id: "C".into(), amount: amount.into(), month: month.into() }
}

fn reason(status: &tonic::Status) -> String {
    status.get_error_details().error_info().map(|info| info.reason.clone()).unwrap_or_default()
}

async fn credit_is_applied_and_refunded_never_below_zero(backend: Backend) {
    let clock = TestClock::new("2026-11-20");
    let app = TestApp::spawn_with_clock(backend, clock).await;
    let chunks = gateway::grpc::client::registry_upload(SPEC_REGISTRY.as_bytes(), 1 << 16);
    assert!(RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner().applied);
    // OB-2's order C (150.00 a month) starts in November: October's money is all credit.
    let money = proto::AddCollectionRequest { case_number: "22345678".into(), amount: "1000.00".into(), effective_date: "2026-10-15".into() };
    let collection = CollectionServiceClient::new(app.channel.clone()).add_collection(money).await.unwrap().into_inner().collection.unwrap();
    assert_eq!(distribute(&app.channel).await.unapplied, "1000.00");
    let mut credit = CreditServiceClient::new(app.channel.clone());

    let listed = credit.list_unapplied_credit(proto::ListUnappliedCreditRequest::default()).await.unwrap().into_inner();
    let balances: Vec<(&str, &str, &str)> = listed.balances.iter().map(|b| (b.obligor_id.as_str(), b.last_name.as_str(), b.credit.as_str())).collect();
    assert_eq!(balances, [("OB-2", "Doe", "1000.00")]);

    // By hand to November's current support: never beyond the 150.00 due.
    let beyond = credit.apply_credit(apply("150.01", "2026-11")).await.unwrap_err();
    assert_eq!((beyond.code(), reason(&beyond)), (Code::FailedPrecondition, "CREDIT_BEYOND_DUE".to_owned()));
    let applied = credit.apply_credit(apply("150.00", "2026-11")).await.unwrap().into_inner().action.unwrap();
    assert_eq!((applied.kind(), applied.month.as_str(), applied.credit_left.as_str()), (proto::CreditActionKind::Apply, "2026-11", "850.00"));
    let paid = credit.apply_credit(apply("0.01", "2026-11")).await.unwrap_err();
    assert_eq!(reason(&paid), "CREDIT_BEYOND_DUE", "November is paid now");
    // A month not yet come (or before the order) is not due; C has no arrears.
    assert_eq!(credit.apply_credit(apply("1.00", "2026-12")).await.unwrap_err().code(), Code::InvalidArgument);
    assert_eq!(reason(&credit.apply_credit(apply("1.00", "")).await.unwrap_err()), "CREDIT_BEYOND_DUE");
    // Another obligor's order is not found.
    let foreign = proto::ApplyCreditRequest { order_id: "A".into(), ..apply("1.00", "2026-11") };
    assert_eq!(credit.apply_credit(foreign).await.unwrap_err().code(), Code::NotFound);

    // Two clerks refund 500.00 each at once from 850.00: one is refused, nothing goes below zero.
    let (mut clerk_1, mut clerk_2) = (credit.clone(), credit.clone());
    let (first, second) = tokio::join!(clerk_1.refund_credit(refund("500.00", "CHK-1")), clerk_2.refund_credit(refund("500.00", "CHK-2")));
    let outcomes = [first.map(|r| r.into_inner().action.unwrap().credit_left), second.map(|r| r.into_inner().action.unwrap().credit_left)];
    assert_eq!(outcomes.iter().filter(|o| o.as_ref().is_ok_and(|left| left == "350.00")).count(), 1, "{outcomes:?}");
    let refused = outcomes.iter().find_map(|o| o.as_ref().err()).expect("one refund refused");
    assert_eq!(reason(refused), "CREDIT_NOT_AVAILABLE");
    assert!(refused.message().contains("350.00"), "{}", refused.message());

    // A refund needs its reference; the rest of the credit is refunded; none is left.
    let status = credit.refund_credit(refund("350.00", " ")).await.unwrap_err();
    assert_eq!(status.get_error_details().bad_request().unwrap().field_violations[0].field, "reference");
    assert_eq!(credit.refund_credit(refund("-1.00", "CHK-3")).await.unwrap_err().code(), Code::InvalidArgument);
    let last = credit.refund_credit(refund("350.00", "CHK-3")).await.unwrap().into_inner().action.unwrap();
    assert_eq!((last.kind(), last.reference.as_str(), last.credit_left.as_str()), (proto::CreditActionKind::Refund, "CHK-3", "0.00"));
    assert_eq!(reason(&credit.refund_credit(refund("0.01", "CHK-4")).await.unwrap_err()), "CREDIT_NOT_AVAILABLE");
    assert!(credit.list_unapplied_credit(proto::ListUnappliedCreditRequest::default()).await.unwrap().into_inner().balances.is_empty());

    // The collection's explanation shows every move, and its pool still holds all 1000.00.
    let explained = ExplainServiceClient::new(app.channel.clone())
        .explain_collection(proto::ExplainCollectionRequest { collection_id: collection.collection_id })
        .await
        .unwrap()
        .into_inner();
    let pool = explained.pool.unwrap();
    assert_eq!(pool.holds, "1000.00");
    let refunded: Vec<&str> = pool
        .later_entries
        .iter()
        .filter(|e| e.kind() == proto::EntryKind::Credit && e.bucket() == proto::Bucket::Refunded)
        .map(|e| e.amount.as_str())
        .collect();
    assert_eq!(refunded, ["500.00", "350.00"]);
    // C's November is paid by hand: its statement shows it.
    let statement = ExplainServiceClient::new(app.channel.clone())
        .explain_order(proto::ExplainOrderRequest { order_id: "C".into(), to_date: "2026-11-30".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((statement.accrued.as_str(), statement.allocated.as_str(), statement.closing.as_str()), ("150.00", "150.00", "0.00"));
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn credit_is_applied_and_refunded_never_below_zero_on_sqlite() {
    credit_is_applied_and_refunded_never_below_zero(Backend::Sqlite).await;
}

#[tokio::test]
async fn credit_is_applied_and_refunded_never_below_zero_on_postgres() {
    credit_is_applied_and_refunded_never_below_zero(Backend::Postgres).await;
}
