//! Finding an obligor through gRPC (`OrderService/SearchObligors`), on both databases: by case
//! number, by the start of the last name in any case, by the SSN's last four; filters combine;
//! pages follow each other; a search with nothing to search by is refused field by field.

mod common;

use common::{Backend, TestApp};
use gateway::grpc::proto;
use proto::order_service_client::OrderServiceClient;
use proto::registry_service_client::RegistryServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

const REGISTRY: &str = "\
obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears,end_date
OB-1,123-45-6789,Smith,John,12345678,A,300.00,2026-09,50.00,
OB-1,123-45-6789,Smith,John,12345679,B,200.00,2026-09,100.00,
OB-2,223-45-6789,Doe,Jane,22345678,C,150.00,2026-09,0.00,2027-03-31
OB-3,323-45-6789,smithers,Wayland,32345678,D,100.00,2026-10,0.00,
OB-4,423-45-1111,O'Brien,Pat,42345678,E,120.00,2026-10,0.00,
OB-5,523-45-6789,Sm_th,Underscore,52345678,F,90.00,2026-10,0.00,
";

async fn search(app: &TestApp, request: proto::SearchObligorsRequest) -> Result<proto::SearchObligorsResponse, tonic::Status> {
    OrderServiceClient::new(app.channel.clone()).search_obligors(request).await.map(|r| r.into_inner())
}

fn ids(found: &proto::SearchObligorsResponse) -> Vec<&str> {
    found.obligors.iter().map(|o| o.obligor_id.as_str()).collect()
}

async fn obligors_are_found_by_case_name_and_ssn_last4(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let chunks = gateway::grpc::client::registry_upload(REGISTRY.as_bytes(), 1 << 16);
    assert!(RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner().applied);

    let by_case = search(&app, proto::SearchObligorsRequest { case_number: "1234-5679".into(), ..Default::default() }).await.unwrap();
    assert_eq!(ids(&by_case), ["OB-1"], "any of its case numbers finds the obligor");
    let smith = &by_case.obligors[0];
    assert_eq!((smith.last_name.as_str(), smith.first_name.as_str(), smith.ssn_last4.as_str()), ("Smith", "John", "6789"));
    let orders: Vec<(&str, &str, &str, &str)> =
        smith.orders.iter().map(|o| (o.order_id.as_str(), o.case_number.as_str(), o.monthly_amount.as_str(), o.opening_arrears.as_str())).collect();
    assert_eq!(orders, [("A", "12345678", "300.00", "50.00"), ("B", "12345679", "200.00", "100.00")]);

    let by_name = search(&app, proto::SearchObligorsRequest { last_name: "SMI".into(), ..Default::default() }).await.unwrap();
    assert_eq!(ids(&by_name), ["OB-1", "OB-3"], "the start of the name, in any case");
    let literal = search(&app, proto::SearchObligorsRequest { last_name: "sm_".into(), ..Default::default() }).await.unwrap();
    assert_eq!(ids(&literal), ["OB-5"], "an underscore is a character, not a wildcard");
    let apostrophe = search(&app, proto::SearchObligorsRequest { last_name: "o'b".into(), ..Default::default() }).await.unwrap();
    assert_eq!(ids(&apostrophe), ["OB-4"]);

    let by_last4 = search(&app, proto::SearchObligorsRequest { ssn_last4: "6789".into(), ..Default::default() }).await.unwrap();
    assert_eq!(ids(&by_last4), ["OB-1", "OB-2", "OB-3", "OB-5"]);
    let doe = &by_last4.obligors[1];
    assert_eq!(doe.orders[0].end_date, "2027-03-31");
    let both = search(&app, proto::SearchObligorsRequest { last_name: "smith".into(), ssn_last4: "6789".into(), ..Default::default() }).await.unwrap();
    assert_eq!(ids(&both), ["OB-1", "OB-3"], "every filter given holds");
    let none = search(&app, proto::SearchObligorsRequest { case_number: "99999999".into(), ..Default::default() }).await.unwrap();
    assert!(none.obligors.is_empty() && none.next_page_token.is_empty());

    // Pages of two follow each other.
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = search(&app, proto::SearchObligorsRequest { ssn_last4: "6789".into(), page_size: 2, page_token: token.clone(), ..Default::default() }).await.unwrap();
        seen.extend(page.obligors.iter().map(|o| o.obligor_id.clone()));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(seen, ["OB-1", "OB-2", "OB-3", "OB-5"]);

    // Nothing to search by, or wrong fields: every wrong field is named.
    let status = search(&app, proto::SearchObligorsRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = search(&app, proto::SearchObligorsRequest { case_number: "12".into(), ssn_last4: "67".into(), ..Default::default() }).await.unwrap_err();
    let fields: Vec<String> = status.get_details_bad_request().unwrap().field_violations.into_iter().map(|v| v.field).collect();
    assert_eq!(fields, ["case_number", "ssn_last4"]);
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn obligors_are_found_by_case_name_and_ssn_last4_on_sqlite() {
    obligors_are_found_by_case_name_and_ssn_last4(Backend::Sqlite).await;
}

#[tokio::test]
async fn obligors_are_found_by_case_name_and_ssn_last4_on_postgres() {
    obligors_are_found_by_case_name_and_ssn_last4(Backend::Postgres).await;
}
