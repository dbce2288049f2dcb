//! Review requests through gRPC (`order-lifecycle.md`): within 3 years of the order's start or
//! of its last review a request needs a stated reason, and the refusal names the day from
//! which none is needed; accepted requests are listed for the back office.

mod common;

use common::{Backend, TestApp, TestClock, SPEC_REGISTRY};
use gateway::grpc::proto;
use proto::order_service_client::OrderServiceClient;
use proto::registry_service_client::RegistryServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

fn request(order: &str, date: &str, reason: &str) -> proto::RequestOrderReviewRequest {
    proto::RequestOrderReviewRequest {
        order_id: order.into(),
        request_date: date.into(),
        channel: proto::ReviewChannel::Mail as i32,
        reason: reason.into(),
    }
}

#[tokio::test]
async fn a_review_is_refused_without_a_reason_within_three_years_then_accepted_with_one() {
    let clock = TestClock::new("2026-11-20");
    let app = TestApp::spawn_with_clock(Backend::Sqlite, clock.clone()).await;
    let chunks = gateway::grpc::client::registry_upload(SPEC_REGISTRY.as_bytes(), 1 << 16);
    assert!(RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner().applied);
    let mut orders = OrderServiceClient::new(app.channel.clone());

    // Order A started in November 2026: a request without a reason waits until November 2029.
    let refused = orders.request_order_review(request("A", "2026-11-20", "")).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(refused.get_error_details().error_info().unwrap().reason, "REVIEW_NEEDS_REASON");
    assert!(refused.message().contains("until 2029-11-01"), "{}", refused.message());

    let accepted = orders.request_order_review(request("A", "2026-11-20", "lost my job")).await.unwrap().into_inner().review.unwrap();
    assert_eq!((accepted.order_id.as_str(), accepted.case_number.as_str(), accepted.reason.as_str()), ("A", "12345678", "lost my job"));
    assert_eq!((accepted.channel(), accepted.recorded_by.as_str()), (proto::ReviewChannel::Mail, "back-office"));

    // Three years later they run from that review, not from the start (2029-11-01).
    clock.set("2029-11-20");
    let refused = orders.request_order_review(request("A", "2029-11-10", "")).await.unwrap_err();
    assert!(refused.message().contains("until 2029-11-20"), "{}", refused.message());
    let free = orders.request_order_review(request("A", "2029-11-20", "")).await.unwrap().into_inner().review.unwrap();
    assert_eq!(free.reason, "");

    // Wrong requests are named; an unknown order is not found; a date in the future is refused.
    let wrong = proto::RequestOrderReviewRequest { channel: 0, request_date: "someday".into(), ..request("A", "", "") };
    let status = orders.request_order_review(wrong).await.unwrap_err();
    let mut fields: Vec<String> = status.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    fields.sort();
    assert_eq!(fields, ["channel", "request_date"]);
    assert_eq!(orders.request_order_review(request("NOPE", "2029-11-20", "x")).await.unwrap_err().code(), Code::NotFound);
    let long = orders.request_order_review(request("A", "2029-11-20", &"x".repeat(501))).await.unwrap_err();
    assert_eq!(long.code(), Code::InvalidArgument, "a reason too long is refused, not cut");
    assert_eq!(orders.request_order_review(request("B", "2029-11-21", "x")).await.unwrap_err().code(), Code::InvalidArgument);

    let listed = orders.list_order_reviews(proto::ListOrderReviewsRequest { order_id: "A".into(), ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(listed.reviews.iter().map(|r| r.request_date.as_str()).collect::<Vec<_>>(), ["2026-11-20", "2029-11-20"]);
    let of_b = orders.list_order_reviews(proto::ListOrderReviewsRequest { order_id: "B".into(), ..Default::default() }).await.unwrap().into_inner();
    assert!(of_b.reviews.is_empty());
    // Refusals are in the audit trail, though not in the list.
    let audit = common::export(&app.channel, common::Export::Audit).await;
    assert_eq!(audit.lines().filter(|l| l.contains("RequestOrderReview") && l.ends_with("FAILED_PRECONDITION")).count(), 2, "{audit}");
    app.stop().await;
}

#[tokio::test]
async fn orders_whose_projected_end_has_passed_are_listed_until_they_end() {
    let clock = TestClock::new("2026-12-03");
    let app = TestApp::spawn_with_clock(Backend::Sqlite, clock.clone()).await;
    // P1 turned 18 today; P2 turned 18 but continues education (21 in 2029); P3 is impaired;
    // P4 turned 18 last year but the order has ended; P5 turned 18 in 2025; P6 is 17.
    let registry = "obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears,end_date,child_birth_date,continuing_education,impaired\n\
                    OB-1,123-45-6789,Smith,John,12345671,P1,100.00,2020-01,0,,2008-12-03,,\n\
                    OB-1,123-45-6789,Smith,John,12345672,P2,100.00,2020-01,0,,2008-06-01,Y,N\n\
                    OB-1,123-45-6789,Smith,John,12345673,P3,100.00,2020-01,0,,2000-01-01,N,Y\n\
                    OB-1,123-45-6789,Smith,John,12345674,P4,100.00,2020-01,0,2025-06-30,2007-06-01,,\n\
                    OB-2,223-45-6789,Doe,Jane,22345675,P5,100.00,2020-01,0,,2007-05-05,N,\n\
                    OB-2,223-45-6789,Doe,Jane,22345676,P6,100.00,2020-01,0,,2008-12-04,,\n";
    let chunks = gateway::grpc::client::registry_upload(registry.as_bytes(), 1 << 16);
    let imported = RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner();
    assert!(imported.applied, "{:?}", imported.problems);
    let mut orders = OrderServiceClient::new(app.channel.clone());
    let listed = orders.list_projected_ends(proto::ListProjectedEndsRequest::default()).await.unwrap().into_inner();
    let due: Vec<(&str, &str, proto::EndBasis)> =
        listed.projected_ends.iter().map(|e| (e.order_id.as_str(), e.projected_end_date.as_str(), e.basis())).collect();
    assert_eq!(due, [("P1", "2026-12-03", proto::EndBasis::Age18), ("P5", "2025-05-05", proto::EndBasis::Age18)]);
    // A page at a time.
    let first = orders.list_projected_ends(proto::ListProjectedEndsRequest { page_size: 1, ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(first.projected_ends[0].order_id, "P1");
    let second = orders
        .list_projected_ends(proto::ListProjectedEndsRequest { page_size: 1, page_token: first.next_page_token })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((second.projected_ends[0].order_id.as_str(), second.next_page_token.as_str()), ("P5", ""));
    // Tomorrow P6 joins; in 2029 P2 does.
    clock.set("2026-12-04");
    let listed = orders.list_projected_ends(proto::ListProjectedEndsRequest::default()).await.unwrap().into_inner();
    assert_eq!(listed.projected_ends.len(), 3);
    clock.set("2029-06-01");
    let listed = orders.list_projected_ends(proto::ListProjectedEndsRequest::default()).await.unwrap().into_inner();
    assert!(listed.projected_ends.iter().any(|e| e.order_id == "P2" && e.basis() == proto::EndBasis::Age21));
    app.stop().await;
}
