//! The back office's reports through gRPC: collections per day by source and employer, late
//! remittances by employer, open suspense by age, and the money waiting.

mod common;

use common::{Backend, TestApp, SPEC_REGISTRY};
use gateway::grpc::proto;
use proto::collection_service_client::CollectionServiceClient;
use proto::export_service_client::ExportServiceClient;
use proto::registry_service_client::RegistryServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;
use tonic::Code;

async fn report(app: &TestApp, kind: proto::ReportKind, from: Option<&str>, to: Option<&str>) -> Vec<String> {
    common::report(&app.channel, kind, from, to).await.lines().map(str::to_owned).collect()
}

#[tokio::test]
async fn reports_add_up_the_days_employers_ages_and_totals() {
    let app = TestApp::spawn(Backend::Sqlite).await; // today is 2026-11-20
    let chunks = gateway::grpc::client::registry_upload(SPEC_REGISTRY.as_bytes(), 1 << 16);
    assert!(RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner().applied);
    // On time, late (pay date 2026-10-01: remit by 2026-10-13, after Columbus Day; received
    // 2026-11-20, 38 days late), and unidentified (suspense), from two employers.
    let csv = "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount\n\
               43-1234567,12345678,123-45-6789,Smith,2026-11-13,100.00\n\
               43-1234567,12345678,123-45-6789,Smith,2026-10-01,40.00\n\
               12-3456789,22345678,223-45-6789,Doe,2026-11-13,25.00\n\
               12-3456789,,234-56-7801,Nobody,2026-11-13,7.50\n";
    let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: "R-1".into(), ..Default::default() };
    let upload = gateway::grpc::client::remittance_upload(header, csv.as_bytes(), 1 << 16);
    RemittanceServiceClient::new(app.vendor("acme-payroll").await).submit_remittance(futures::stream::iter(upload)).await.unwrap();
    let manual = proto::AddCollectionRequest { case_number: "22345678".into(), amount: "10.00".into(), effective_date: "2026-11-19".into() };
    CollectionServiceClient::new(app.channel.clone()).add_collection(manual).await.unwrap();

    let collections = report(&app, proto::ReportKind::Collections, None, None).await;
    assert_eq!(collections[0], "day,source,employer_fein,collections,amount");
    let rows: Vec<&str> = collections[1..].iter().map(|r| r.split_once(',').unwrap().1).collect();
    assert_eq!(rows, ["MANUAL,,1,10.00", "PAYROLL,123456789,1,25.00", "PAYROLL,431234567,2,140.00"], "{collections:?}");
    assert_eq!(report(&app, proto::ReportKind::Collections, None, Some("2000-01-01")).await.len(), 1, "only the header");

    let late = report(&app, proto::ReportKind::Late, None, None).await;
    assert_eq!(late, ["employer_fein,late_lines,amount,average_days_late", "431234567,1,40.00,38.0"]);
    assert_eq!(report(&app, proto::ReportKind::Late, Some("2026-11-21"), None).await.len(), 1);

    let ages = report(&app, proto::ReportKind::SuspenseAge, None, None).await;
    assert_eq!(ages, ["age_days,items,amount", "0-7,1,7.50", "8-30,0,0.00", "31-90,0,0.00", "91+,0,0.00"]);

    let totals = report(&app, proto::ReportKind::Totals, None, None).await;
    assert_eq!(totals, ["figure,amount", "undistributed,175.00", "suspense,7.50", "unapplied,0.00"]);
    common::distribute(&app.channel).await;
    let totals = report(&app, proto::ReportKind::Totals, None, None).await;
    assert_eq!(totals[1], "undistributed,0.00");

    // A report must be named; a vendor may not read them.
    let request = proto::ExportReportRequest { kind: 0, from_date: Some("soon".into()), to_date: None };
    let status = ExportServiceClient::new(app.channel.clone()).export_report(request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let vendor = app.vendor("acme-payroll").await;
    let request = proto::ExportReportRequest { kind: proto::ReportKind::Totals as i32, ..Default::default() };
    assert_eq!(ExportServiceClient::new(vendor).export_report(request).await.unwrap_err().code(), Code::PermissionDenied);
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}
