//! Lists come a page at a time (AIP-158): `page_size`, `page_token`, `next_page_token`.

mod common;

use common::{Backend, TestApp};
use gateway::domain::access::Role;
use gateway::grpc::client::remittance_upload;
use gateway::grpc::proto;
use proto::admin_service_client::AdminServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;
use tonic::Code;

#[tokio::test]
async fn two_hundred_fifty_files_come_in_pages_of_a_hundred_newest_first_then_no_token() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut client = RemittanceServiceClient::new(app.vendor("paging-vendor").await);
    for index in 0..250 {
        let header = proto::RemittanceHeader {
            format: proto::RemittanceFormat::Csv as i32,
            batch_id: format!("P-{index:03}"),
            ..Default::default()
        };
        // An unknown case: each file is one suspense line, its bytes its own.
        let csv = format!(
            "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n43-1234567,,423-45-6789,Nobody,2026-11-13,{}.00\n",
            index + 1
        );
        let ack = client.submit_remittance(futures::stream::iter(remittance_upload(header, csv.as_bytes(), 1 << 16))).await.unwrap();
        assert_eq!(ack.into_inner().acknowledgment.unwrap().status(), proto::AcknowledgmentStatus::Accepted);
    }

    let mut listed = Vec::new();
    let mut pages = 0;
    let mut token = String::new();
    loop {
        let request = proto::ListRemittancesRequest { page_size: 100, page_token: token.clone(), ..Default::default() };
        let page = client.list_remittances(request).await.unwrap().into_inner();
        pages += 1;
        assert!(page.remittances.len() <= 100);
        listed.extend(page.remittances.into_iter().map(|r| r.batch_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..250).rev().map(|index| format!("P-{index:03}")).collect();
    assert_eq!(listed, expected, "every file once, newest first");

    // A token is opaque and belongs to its list; a negative size is refused.
    let status = client.list_remittances(proto::ListRemittancesRequest { page_size: 10, page_token: "bogus".into(), ..Default::default() }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = client.list_remittances(proto::ListRemittancesRequest { page_size: -1, ..Default::default() }).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    // The page size is capped.
    let big = client.list_remittances(proto::ListRemittancesRequest { page_size: 100_000, ..Default::default() }).await.unwrap();
    assert_eq!(big.into_inner().remittances.len(), 250);
    app.stop().await;
}

#[tokio::test]
async fn keys_come_in_pages_too() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let admin = app.as_key(Role::Admin, "security-officer", &[]).await;
    for index in 0..5 {
        app.vendor(&format!("vendor-{index}")).await;
    }
    let mut client = AdminServiceClient::new(admin);
    let mut names = Vec::new();
    let mut token = String::new();
    loop {
        let page = client.list_api_keys(proto::ListApiKeysRequest { page_size: 3, page_token: token.clone() }).await.unwrap().into_inner();
        assert!(page.keys.len() <= 3);
        names.extend(page.keys.into_iter().map(|k| k.key_id));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    // back-office, payment-site, the admin and five vendors: each once.
    assert_eq!(names.len(), 8);
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique, names, "in key id order, none twice");
    app.stop().await;
}
