//! Termination notices through gRPC: an employer's lines saying employees left are listed by
//! employer and by obligor, and each is marked handled once; a sender reads its own.

mod common;

use common::{Backend, TestApp, SPEC_REGISTRY};
use gateway::grpc::proto;
use proto::registry_service_client::RegistryServiceClient;
use proto::remittance_service_client::RemittanceServiceClient;
use proto::termination_service_client::TerminationServiceClient;
use tonic::Code;
use tonic_types::StatusExt;

#[tokio::test]
async fn notices_are_listed_by_employer_and_obligor_and_handled_once() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let chunks = gateway::grpc::client::registry_upload(SPEC_REGISTRY.as_bytes(), 1 << 16);
    assert!(RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner().applied);
    // Three employees left: OB-1 from two employers (one line without money), OB-2 from one.
    let csv = "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount,employment_terminated\n\
               43-1234567,12345678,123-45-6789,Smith,2026-11-13,100.00,Y\n\
               12-3456789,12345678,123-45-6789,Smith,2026-11-13,0,Y\n\
               43-1234567,22345678,223-45-6789,Doe,2026-11-13,50.00,Y\n\
               43-1234567,22345678,223-45-6789,Doe,2026-11-13,50.00,N\n";
    let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: "T-1".into(), ..Default::default() };
    let upload = gateway::grpc::client::remittance_upload(header, csv.as_bytes(), 1 << 16);
    let vendor = app.vendor("acme-payroll").await;
    RemittanceServiceClient::new(vendor.clone()).submit_remittance(futures::stream::iter(upload)).await.unwrap();

    let mut office = TerminationServiceClient::new(app.channel.clone());
    let lister = office.clone();
    let list = |request: proto::ListTerminationNoticesRequest| {
        let mut client = lister.clone();
        async move {
            let notices = client.list_termination_notices(request).await.unwrap().into_inner().termination_notices;
            notices.into_iter().map(|n| (n.line, n.employer_fein, n.obligor_id)).collect::<Vec<_>>()
        }
    };
    let all = list(Default::default()).await;
    assert_eq!(
        all,
        [(1, "431234567".into(), "OB-1".into()), (2, "123456789".into(), "OB-1".into()), (3, "431234567".into(), "OB-2".into())]
    );
    assert_eq!(list(proto::ListTerminationNoticesRequest { employer_fein: "43-1234567".into(), ..Default::default() }).await.len(), 2);
    assert_eq!(list(proto::ListTerminationNoticesRequest { obligor_id: "OB-1".into(), ..Default::default() }).await.len(), 2);

    let first = office.list_termination_notices(proto::ListTerminationNoticesRequest::default()).await.unwrap().into_inner().termination_notices[0].clone();
    assert_eq!((first.sender.as_str(), first.batch_id.as_str(), first.ssn_last4.as_str()), ("acme-payroll", "T-1", "6789"));
    let handled = office
        .mark_termination_notice_handled(proto::MarkTerminationNoticeHandledRequest { notice_id: first.notice_id })
        .await
        .unwrap()
        .into_inner()
        .termination_notice
        .unwrap();
    assert_eq!(handled.handled_by, "back-office");
    assert!(handled.handle_time.is_some());
    let again = office.mark_termination_notice_handled(proto::MarkTerminationNoticeHandledRequest { notice_id: first.notice_id }).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(again.get_error_details().error_info().unwrap().reason, "NOTICE_ALREADY_HANDLED");
    let missing = office.mark_termination_notice_handled(proto::MarkTerminationNoticeHandledRequest { notice_id: 999 }).await.unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);

    assert_eq!(list(proto::ListTerminationNoticesRequest { handled: Some(false), ..Default::default() }).await.len(), 2);
    assert_eq!(list(proto::ListTerminationNoticesRequest { handled: Some(true), ..Default::default() }).await.len(), 1);
    let page = office.list_termination_notices(proto::ListTerminationNoticesRequest { page_size: 2, ..Default::default() }).await.unwrap().into_inner();
    assert_eq!(page.termination_notices.len(), 2);
    let rest = office
        .list_termination_notices(proto::ListTerminationNoticesRequest { page_size: 2, page_token: page.next_page_token, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((rest.termination_notices.len(), rest.next_page_token.as_str()), (1, ""));
    // The vendor reads the notices of its own file, without the agency's obligor ids.
    let own = TerminationServiceClient::new(vendor).list_termination_notices(proto::ListTerminationNoticesRequest::default()).await.unwrap();
    let own = own.into_inner().termination_notices;
    assert_eq!(own.len(), 3);
    assert!(own.iter().all(|n| n.sender == "acme-payroll" && n.obligor_id.is_empty()), "{own:?}");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn a_sender_lists_the_notices_of_its_own_files_without_obligor_ids() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let chunks = gateway::grpc::client::registry_upload(SPEC_REGISTRY.as_bytes(), 1 << 16);
    assert!(RegistryServiceClient::new(app.channel.clone()).import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner().applied);
    let file = |amount: &str| {
        format!(
            "employer_fein,case_number,employee_ssn,employee_last_name,pay_date,amount,employment_terminated\n\
             43-1234567,12345678,123-45-6789,Smith,2026-11-13,{amount},Y\n"
        )
    };
    for (sender, amount) in [("acme-payroll", "100.00"), ("other-payroll", "101.00")] {
        let header = proto::RemittanceHeader { format: proto::RemittanceFormat::Csv as i32, batch_id: "T-1".into(), ..Default::default() };
        let upload = gateway::grpc::client::remittance_upload(header, file(amount).as_bytes(), 1 << 16);
        let vendor = app.vendor(sender).await;
        RemittanceServiceClient::new(vendor).submit_remittance(futures::stream::iter(upload)).await.unwrap();
    }
    let acme = app.vendor("acme-payroll").await;
    let own = TerminationServiceClient::new(acme.clone()).list_termination_notices(proto::ListTerminationNoticesRequest::default()).await.unwrap();
    let own = own.into_inner().termination_notices;
    assert_eq!(own.len(), 1, "only its own file's notice: {own:?}");
    assert_eq!((own[0].sender.as_str(), own[0].obligor_id.as_str()), ("acme-payroll", ""), "no obligor id for a sender");
    let all = TerminationServiceClient::new(app.channel.clone()).list_termination_notices(proto::ListTerminationNoticesRequest::default()).await.unwrap();
    assert_eq!(all.into_inner().termination_notices.len(), 2, "the back office sees both");
    let by_obligor = proto::ListTerminationNoticesRequest { obligor_id: "OB-1".into(), ..Default::default() };
    let status = TerminationServiceClient::new(acme.clone()).list_termination_notices(by_obligor).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let handled = TerminationServiceClient::new(acme).mark_termination_notice_handled(proto::MarkTerminationNoticeHandledRequest { notice_id: 1 }).await;
    assert_eq!(handled.unwrap_err().code(), Code::PermissionDenied, "working a notice is the back office's");
    app.stop().await;
}
