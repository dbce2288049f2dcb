//! The suspense queue worked through gRPC (`case-registry.md`): lines nobody could identify
//! are listed with filters, one is resolved weeks later and distributed to the month of its
//! pay date, one is returned and makes no collection, and neither can be worked twice.

mod common;

use common::{distribute, export, Authed, Backend, Export, TestApp, TestClock, SPEC_REGISTRY};
use gateway::grpc::proto;
use proto::registry_service_client::RegistryServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;
use proto::resolve_suspense_item_request::Target;
use proto::suspense_service_client::SuspenseServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

async fn setup() -> (TestApp, std::sync::Arc<TestClock>) {
    let clock = TestClock::new("2026-11-20");
    let app = TestApp::spawn_with_clock(Backend::Sqlite, clock.clone()).await;
    let chunks = gateway::grpc::client::registry_upload(SPEC_REGISTRY.as_bytes(), 1 << 16);
    assert!(RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner().applied);
    // Three lines nobody can identify (unknown case and SSN), from two employers.
    let csv = "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n\
               43-1234567,,234-56-7801,Nobody,2026-11-13,150.00\n\
               43-7654321,,234-56-7802,Nobody,2026-11-13,20.00\n\
               43-1234567,,234-56-7803,Nobody,2026-11-06,5.00\n";
    let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: "ACME-1".into(), ..Default::default() };
    let upload = gateway::grpc::client::remittance_upload(header, csv.as_bytes(), 1 << 16);
    let vendor = app.vendor("acme-payroll").await;
    let ack = RemittanceServiceClient::new(vendor).submit_remittance(futures::stream::iter(upload)).await.unwrap().into_inner();
    assert_eq!(ack.acknowledgment.unwrap().suspense, 3);
    (app, clock)
}

fn suspense(channel: &Authed) -> SuspenseServiceClient<Authed> {
    SuspenseServiceClient::new(channel.clone())
}

async fn list(channel: &Authed, request: proto::ListSuspenseItemsRequest) -> proto::ListSuspenseItemsResponse {
    suspense(channel).list_suspense_items(request).await.unwrap().into_inner()
}

fn amounts(items: &[proto::SuspenseItem]) -> Vec<&str> {
    items.iter().map(|i| i.amount.as_str()).collect()
}

#[tokio::test]
async fn the_queue_is_listed_with_filters_and_pages() {
    let (app, clock) = setup().await;
    let all = list(&app.channel, proto::ListSuspenseItemsRequest::default()).await;
    assert_eq!(amounts(&all.suspense_items), ["150.00", "20.00", "5.00"], "OPEN items, oldest first");
    let first = &all.suspense_items[0];
    assert_eq!((first.sender.as_str(), first.batch_id.as_str(), first.line, first.ssn_last4.as_str()), ("acme-payroll", "ACME-1", 1, "7801"));
    assert_eq!((first.employer_fein.as_str(), first.pay_date.as_str(), first.state()), ("431234567", "2026-11-13", proto::SuspenseState::Open));
    assert!(!format!("{all:?}").contains("234-56-7801") && !format!("{all:?}").contains("234567801"), "the SSN shows as its last 4");

    let filtered = |request: proto::ListSuspenseItemsRequest| {
        let channel = app.channel.clone();
        async move { amounts(&list(&channel, request).await.suspense_items).into_iter().map(str::to_owned).collect::<Vec<_>>() }
    };
    assert_eq!(filtered(proto::ListSuspenseItemsRequest { employer_fein: "43-7654321".into(), ..Default::default() }).await, ["20.00"]);
    assert_eq!(filtered(proto::ListSuspenseItemsRequest { min_amount: Some("10".into()), ..Default::default() }).await, ["150.00", "20.00"]);
    assert_eq!(filtered(proto::ListSuspenseItemsRequest { max_amount: Some("20.00".into()), ..Default::default() }).await, ["20.00", "5.00"]);
    assert_eq!(filtered(proto::ListSuspenseItemsRequest { sender: "other".into(), ..Default::default() }).await, Vec::<String>::new());
    let reason = first.reason.clone();
    assert_eq!(filtered(proto::ListSuspenseItemsRequest { batch_id: "ACME-1".into(), reason, ..Default::default() }).await.len(), 3);
    assert!(filtered(proto::ListSuspenseItemsRequest { reason: "SSN_MISMATCH".into(), ..Default::default() }).await.is_empty());
    // Received today: not yet 7 days old; a week later they are.
    assert!(filtered(proto::ListSuspenseItemsRequest { min_age_days: Some(7), ..Default::default() }).await.is_empty());
    clock.set("2026-11-27");
    assert_eq!(filtered(proto::ListSuspenseItemsRequest { min_age_days: Some(7), ..Default::default() }).await.len(), 3);

    let page = list(&app.channel, proto::ListSuspenseItemsRequest { page_size: 2, ..Default::default() }).await;
    assert_eq!(amounts(&page.suspense_items), ["150.00", "20.00"]);
    let next = list(&app.channel, proto::ListSuspenseItemsRequest { page_size: 2, page_token: page.next_page_token, ..Default::default() }).await;
    assert_eq!((amounts(&next.suspense_items), next.next_page_token.as_str()), (vec!["5.00"], ""));

    // Wrong filters are named; a vendor may not look at the queue.
    let status = suspense(&app.channel)
        .list_suspense_items(proto::ListSuspenseItemsRequest { employer_fein: "12".into(), min_amount: Some("-1".into()), ..Default::default() })
        .await
        .unwrap_err();
    let fields: Vec<String> = status.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["employer_fein", "min_amount"]);
    let vendor = app.vendor("acme-payroll").await;
    assert_eq!(suspense(&vendor).list_suspense_items(proto::ListSuspenseItemsRequest::default()).await.unwrap_err().code(), Code::PermissionDenied);
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn an_item_resolved_weeks_later_pays_the_month_of_its_pay_date_and_is_worked_once() {
    let (app, clock) = setup().await;
    let items = list(&app.channel, proto::ListSuspenseItemsRequest::default()).await.suspense_items;
    let (big, small, tiny) = (items[0].suspense_id, items[1].suspense_id, items[2].suspense_id);

    // Five weeks later the back office finds whose the 150.00 was.
    clock.set("2026-12-28");
    let request = proto::ResolveSuspenseItemRequest { suspense_id: big, target: Some(Target::CaseNumber("12345678".into())) };
    let resolved = suspense(&app.channel).resolve_suspense_item(request.clone()).await.unwrap().into_inner();
    let (item, collection) = (resolved.suspense_item.unwrap(), resolved.collection.unwrap());
    assert_eq!((item.state(), item.resolved_obligor_id.as_deref(), item.worked_by.as_str()), (proto::SuspenseState::Resolved, Some("OB-1"), "back-office"));
    assert_eq!(item.collection_id, Some(collection.collection_id));
    assert_eq!((collection.amount.as_str(), collection.effective_date.as_str(), collection.case_number.as_str()), ("150.00", "2026-11-13", "12345678"));

    // Distributed to November, the month it was withheld in: A 300 and B 200 share it 3:2.
    let run = distribute(&app.channel).await;
    assert_eq!((run.collections, run.current.as_str()), (1, "150.00"));
    let allocations = export(&app.channel, Export::Allocations).await;
    for row in [",A,CURRENT,2026-11,2026-11-13,90.00", ",B,CURRENT,2026-11,2026-11-13,60.00"] {
        assert!(allocations.contains(row), "{row} in:\n{allocations}");
    }

    // Again: refused, naming its state; nothing more is collected.
    let again = suspense(&app.channel).resolve_suspense_item(request).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(again.get_error_details().error_info().unwrap().reason, "SUSPENSE_ITEM_NOT_OPEN");
    assert!(again.message().contains("already RESOLVED by back-office"), "{}", again.message());
    assert!(distribute(&app.channel).await.run_id.is_none(), "nothing new to distribute");

    // Sixteen clerks resolve the 20.00 at once: one collection.
    let clerks = (0..16).map(|_| {
        let mut client = suspense(&app.channel);
        async move {
            let request = proto::ResolveSuspenseItemRequest { suspense_id: small, target: Some(Target::ObligorId("OB-2".into())) };
            client.resolve_suspense_item(request).await.map(|r| r.into_inner().collection.unwrap().collection_id)
        }
    });
    let results = futures::future::join_all(clerks).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().filter_map(|r| r.as_ref().err()).all(|s| s.code() == Code::FailedPrecondition));
    assert_eq!(distribute(&app.channel).await.collections, 1);

    // The 5.00 goes back to its sender: no collection, and it cannot be resolved after.
    let returned = suspense(&app.channel)
        .return_suspense_item(proto::ReturnSuspenseItemRequest { suspense_id: tiny, reason: "not our employee".into(), reference: "CHK-1001".into() })
        .await
        .unwrap()
        .into_inner()
        .suspense_item
        .unwrap();
    assert_eq!((returned.state(), returned.return_reference.as_deref()), (proto::SuspenseState::Returned, Some("CHK-1001")));
    let request = proto::ResolveSuspenseItemRequest { suspense_id: tiny, target: Some(Target::ObligorId("OB-2".into())) };
    assert_eq!(suspense(&app.channel).resolve_suspense_item(request).await.unwrap_err().code(), Code::FailedPrecondition);
    assert!(distribute(&app.channel).await.run_id.is_none(), "a return makes no collection");
    assert!(list(&app.channel, proto::ListSuspenseItemsRequest::default()).await.suspense_items.is_empty());
    let worked = list(&app.channel, proto::ListSuspenseItemsRequest { state: proto::SuspenseState::Resolved as i32, ..Default::default() }).await;
    assert_eq!(amounts(&worked.suspense_items), ["150.00", "20.00"]);

    // Wrong requests change nothing and say why.
    let client = || suspense(&app.channel);
    let status = client().return_suspense_item(proto::ReturnSuspenseItemRequest { suspense_id: tiny, ..Default::default() }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let long = proto::ReturnSuspenseItemRequest { suspense_id: big, reason: "x".repeat(201), reference: "r".repeat(65) };
    let status = client().return_suspense_item(long).await.unwrap_err();
    let fields: Vec<String> = status.get_error_details().bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
    assert_eq!(fields, ["reason", "reference"], "a reason or reference too long is refused, not cut");
    let status = client().resolve_suspense_item(proto::ResolveSuspenseItemRequest { suspense_id: big, target: None }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let unknown_case = proto::ResolveSuspenseItemRequest { suspense_id: 999, target: Some(Target::CaseNumber("99999999".into())) };
    assert_eq!(client().resolve_suspense_item(unknown_case).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(client().get_suspense_item(proto::GetSuspenseItemRequest { suspense_id: 999 }).await.unwrap_err().code(), Code::NotFound);

    // Every attempt is in the audit trail with its outcome.
    let audit = export(&app.channel, Export::Audit).await;
    let resolves = audit.lines().filter(|l| l.contains("ResolveSuspenseItem")).collect::<Vec<_>>();
    assert_eq!(resolves.iter().filter(|l| l.ends_with(",OK")).count(), 2, "{audit}");
    assert!(resolves.iter().filter(|l| l.ends_with("FAILED_PRECONDITION")).count() >= 16, "{audit}");
    assert!(audit.contains(&format!("ReturnSuspenseItem,suspense:{tiny},OK")), "{audit}");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn the_queue_pages_in_each_order_and_a_token_keeps_its_order() {
    let (app, _clock) = setup().await;
    // With ACME-1's 150.00, 20.00 and 5.00: ACME-2's 20.00 (a tie across pages) and 75.00.
    let csv = "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n\
               43-1234567,,234-56-7804,Nobody,2026-11-13,20.00\n\
               43-1234567,,234-56-7805,Nobody,2026-11-13,75.00\n";
    let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: "ACME-2".into(), ..Default::default() };
    let upload = gateway::grpc::client::remittance_upload(header, csv.as_bytes(), 1 << 16);
    RemittanceServiceClient::new(app.vendor("acme-payroll").await).submit_remittance(futures::stream::iter(upload)).await.unwrap();
    let by = |order: proto::SuspenseOrder, page_token: String| proto::ListSuspenseItemsRequest {
        order: order.into(),
        page_size: 1,
        page_token,
        ..Default::default()
    };
    for (order, expected) in [
        (proto::SuspenseOrder::Unspecified, ["ACME-1/1", "ACME-1/2", "ACME-1/3", "ACME-2/1", "ACME-2/2"]),
        (proto::SuspenseOrder::NewestFirst, ["ACME-2/2", "ACME-2/1", "ACME-1/3", "ACME-1/2", "ACME-1/1"]),
        (proto::SuspenseOrder::LargestFirst, ["ACME-1/1", "ACME-2/2", "ACME-1/2", "ACME-2/1", "ACME-1/3"]),
        (proto::SuspenseOrder::SmallestFirst, ["ACME-1/3", "ACME-1/2", "ACME-2/1", "ACME-2/2", "ACME-1/1"]),
    ] {
        let (mut read, mut token) = (Vec::new(), String::new());
        for _ in 0..=expected.len() {
            let page = list(&app.channel, by(order, token)).await;
            read.extend(page.suspense_items.iter().map(|i| format!("{}/{}", i.batch_id, i.line)));
            token = page.next_page_token;
            if token.is_empty() {
                break;
            }
        }
        assert_eq!(read, expected, "{order:?}, one item a page");
    }
    // A token of the largest-first list cannot continue the oldest-first one.
    let largest = list(&app.channel, by(proto::SuspenseOrder::LargestFirst, String::new())).await;
    let status = suspense(&app.channel).list_suspense_items(by(proto::SuspenseOrder::OldestFirst, largest.next_page_token)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.get_details_bad_request().unwrap().field_violations[0].field, "page_token");
    app.stop().await;
}
