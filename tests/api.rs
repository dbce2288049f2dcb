//! End to end through the real gRPC server (tonic over HTTP/2 on a free port).

mod common;

use common::Short;

use common::{distribute, export, Authed, Backend, Export, TestApp, SPEC_REGISTRY};
use futures::StreamExt;
use gateway::app::UploadLimits;
use gateway::grpc::proto;
use proto::collection_service_client::CollectionServiceClient;
use proto::registry_service_client::RegistryServiceClient;
use tonic::Code;

async fn import(channel: &Authed, csv: &str) -> Result<proto::ImportRegistryResponse, tonic::Status> {
    // Small chunks that split lines, as a real upload may.
    let chunks = gateway::grpc::client::registry_upload(csv.as_bytes(), 7);
    RegistryServiceClient::new(channel.clone()).import_registry(futures::stream::iter(chunks)).await.map(|r| r.into_inner())
}

async fn add(channel: &Authed, case: &str, amount: &str, date: &str) -> Result<proto::Collection, tonic::Status> {
    let request = proto::AddCollectionRequest { case_number: case.into(), amount: amount.into(), effective_date: date.into() };
    let response = CollectionServiceClient::new(channel.clone()).add_collection(request).await?;
    Ok(response.into_inner().collection.expect("a collection"))
}

#[tokio::test]
async fn every_worked_example_of_the_spec_comes_out_of_the_allocation_export() {
    // distribution.md: orders A (300.00, arrears 100.00) and B (200.00, arrears 300.00).
    let examples = [
        ("250.00", vec!["A,CURRENT,2026-11,150.00", "B,CURRENT,2026-11,100.00"]),
        ("600.00", vec!["A,CURRENT,2026-11,300.00", "B,CURRENT,2026-11,200.00", "A,ARREARS,,25.00", "B,ARREARS,,75.00"]),
        (
            "1000.00",
            vec!["A,CURRENT,2026-11,300.00", "B,CURRENT,2026-11,200.00", "A,ARREARS,,100.00", "B,ARREARS,,300.00", ",UNAPPLIED,,100.00"],
        ),
        ("100.01", vec!["A,CURRENT,2026-11,60.01", "B,CURRENT,2026-11,40.00"]),
    ];
    for (pool, expected) in examples {
        let app = TestApp::spawn(Backend::Sqlite).await;
        assert!(import(&app.channel, SPEC_REGISTRY).await.unwrap().applied);
        add(&app.channel, "12345678", pool, "2026-11-13").await.unwrap();
        let run = distribute(&app.channel).await;
        assert_eq!(run.total, pool);
        let csv = export(&app.channel, Export::Allocations).await;
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("run_id,obligor_id,case_number,order_id,bucket,month,effective_date,amount"));
        let rows: Vec<String> = lines
            .map(|line| {
                let cells: Vec<&str> = line.split(',').collect();
                assert_eq!((cells[0], cells[1], cells[6]), (run.run_id.as_deref().unwrap(), "OB-1", "2026-11-13"));
                format!("{},{},{},{}", cells[3], cells[4], cells[5], cells[7])
            })
            .collect();
        assert_eq!(rows, expected, "pool {pool}");
        common::assert_ledger_whole(&app.channel).await;
        app.stop().await;
    }
}

#[tokio::test]
async fn two_pools_in_one_month_give_the_same_as_one() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    import(&app.channel, SPEC_REGISTRY).await.unwrap();
    add(&app.channel, "12345678", "250.00", "2026-11-05").await.unwrap();
    add(&app.channel, "12345679", "250.00", "2026-11-19").await.unwrap();
    let run = distribute(&app.channel).await;
    assert_eq!((run.pools, run.current.as_str(), run.unapplied.as_str()), (2, "500.00", "0.00"));
    let balances = export(&app.channel, Export::Balances { as_of: "2026-11-30" }).await;
    assert_eq!(
        balances,
        "order_id,case_number,obligor_id,monthly_amount,current_due,arrears,status\n\
         A,12345678,OB-1,300.00,0.00,100.00,ACTIVE\n\
         B,12345679,OB-1,200.00,0.00,300.00,ACTIVE\n\
         C,22345678,OB-2,150.00,150.00,0.00,ACTIVE\n"
    );
    // Seen from December, C's unpaid November is arrears.
    let december = export(&app.channel, Export::Balances { as_of: "2026-12-01" }).await;
    assert!(december.contains("C,22345678,OB-2,150.00,150.00,150.00,ACTIVE"), "{december}");
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn a_refused_registry_lists_every_problem_and_changes_nothing() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let bad =
        "obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears\n\
               OB-1,123-45-6789,Smith,John,12345678,A,300.00,2026-11,100.00\n\
               OB-2,666-45-6789,Doe,Jane,2234567,C,1.234,2026-11,0\n";
    let response = import(&app.channel, bad).await.unwrap();
    assert!(!response.applied);
    let problems: Vec<_> = response.problems.iter().map(|p| (p.line, p.field.as_str(), p.code.as_str())).collect();
    assert_eq!(
        problems,
        [(3, "obligor_ssn", "SSN_INVALID"), (3, "case_number", "CASE_NUMBER_INVALID"), (3, "monthly_amount", "AMOUNT_INVALID")]
    );
    assert!(response.problems.iter().all(|p| !p.message.contains("666456789") && !p.message.contains("666-45-6789")));
    // Nothing was applied: the valid first row's case is unknown.
    let status = add(&app.channel, "12345678", "1.00", "2026-11-13").await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let unknown_column = import(&app.channel, "obligor_id,obligor_ssn,colour\n").await.unwrap();
    assert!(unknown_column.problems.iter().any(|p| p.code == "HEADER_UNKNOWN_COLUMN" && p.line == 1));

    let good = import(&app.channel, SPEC_REGISTRY).await.unwrap();
    assert_eq!((good.applied, good.rows, good.added), (true, 3, 3));
    let again = import(&app.channel, SPEC_REGISTRY).await.unwrap();
    assert_eq!((again.added, again.updated, again.unchanged), (0, 0, 3));
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn bad_collections_are_refused_with_the_field_named() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    import(&app.channel, SPEC_REGISTRY).await.unwrap();
    for (case, amount, date, field) in [
        ("1234567", "1.00", "2026-11-13", "case_number"),
        ("12345678", "1.005", "2026-11-13", "amount"),
        ("12345678", "0", "2026-11-13", "amount"),
        ("12345678", "-5.00", "2026-11-13", "amount"),
        ("12345678", "1.00", "2026-13-01", "effective_date"),
        ("12345678", "1.00", "2026-11-21", "effective_date"), // after the server's today
    ] {
        let status = add(&app.channel, case, amount, date).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{case} {amount} {date}");
        assert!(status.message().starts_with(field), "{}", status.message());
    }
    let collection = add(&app.channel, "1234-5678", "184.62", "2026-11-13").await.unwrap();
    assert_eq!((collection.source().short(), collection.status().short(), collection.obligor_id.as_str()), ("MANUAL", "PENDING", "OB-1"));
    let run = distribute(&app.channel).await;
    assert_eq!(run.collections, 1);
    let nothing = distribute(&app.channel).await;
    assert_eq!((nothing.run_id.as_deref(), nothing.collections), (None, 0));
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn an_upload_over_the_limit_is_resource_exhausted() {
    let app = TestApp::spawn_with_limits(Backend::Sqlite, UploadLimits { max_bytes: 100, ..UploadLimits::STANDARD }).await;
    let status = import(&app.channel, SPEC_REGISTRY).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(status.message().contains("100 bytes"), "{}", status.message());
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn health_and_reflection_v1_and_v1alpha_serve_any_client() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    // Health needs no key: a load balancer has none.
    let mut health = tonic_health::pb::health_client::HealthClient::new(app.raw.clone());
    for service in ["", "fspc.gateway.v1.RegistryService", "fspc.gateway.v1.ExportService"] {
        let request = tonic_health::pb::HealthCheckRequest { service: service.into() };
        let status = health.check(request).await.unwrap().into_inner().status;
        assert_eq!(status, tonic_health::pb::health_check_response::ServingStatus::Serving as i32, "{service}");
    }

    let expected = [
        "fspc.gateway.v1.CollectionService",
        "fspc.gateway.v1.DistributionService",
        "fspc.gateway.v1.ExportService",
        "fspc.gateway.v1.RegistryService",
        "fspc.gateway.v1.AdminService",
        "grpc.health.v1.Health",
    ];
    {
        use tonic_reflection::pb::v1::{
            server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
            server_reflection_response::MessageResponse, ServerReflectionRequest,
        };
        let request = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
        let mut client = ServerReflectionClient::new(app.channel.clone());
        let mut responses = client.server_reflection_info(futures::stream::iter([request])).await.unwrap().into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) = responses.next().await.unwrap().unwrap().message_response else {
            panic!("a list of services")
        };
        let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        for service in expected {
            assert!(names.iter().any(|n| n == service), "v1 lists {service}: {names:?}");
        }
        // Reflection, like every RPC but health, needs a key.
        let request = ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) };
        let refused = ServerReflectionClient::new(app.raw.clone()).server_reflection_info(futures::stream::iter([request])).await;
        assert_eq!(refused.unwrap_err().code(), tonic::Code::Unauthenticated);
    }
    {
        use tonic_reflection::pb::v1alpha::{
            server_reflection_client::ServerReflectionClient, server_reflection_request::MessageRequest,
            server_reflection_response::MessageResponse, ServerReflectionRequest,
        };
        let mut client = ServerReflectionClient::new(app.channel.clone());
        // A client that knows only reflection asks for the file defining a service.
        let requests = [
            ServerReflectionRequest { host: String::new(), message_request: Some(MessageRequest::ListServices(String::new())) },
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::FileContainingSymbol("fspc.gateway.v1.RegistryService".into())),
            },
        ];
        let mut responses = client.server_reflection_info(futures::stream::iter(requests)).await.unwrap().into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) = responses.next().await.unwrap().unwrap().message_response else {
            panic!("a list of services")
        };
        let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        for service in expected {
            assert!(names.iter().any(|n| n == service), "v1alpha lists {service}: {names:?}");
        }
        let Some(MessageResponse::FileDescriptorResponse(files)) = responses.next().await.unwrap().unwrap().message_response else {
            panic!("the file descriptor")
        };
        assert!(!files.file_descriptor_proto.is_empty());
    }
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}

#[tokio::test]
async fn the_server_works_on_postgres_too() {
    let app = TestApp::spawn(Backend::Postgres).await;
    assert!(import(&app.channel, SPEC_REGISTRY).await.unwrap().applied);
    add(&app.channel, "12345678", "1000.00", "2026-11-13").await.unwrap();
    let run = distribute(&app.channel).await;
    assert_eq!((run.current.as_str(), run.arrears.as_str(), run.unapplied.as_str()), ("500.00", "400.00", "100.00"));
    let csv = export(&app.channel, Export::Allocations).await;
    assert_eq!(csv.lines().count(), 6);
    common::assert_ledger_whole(&app.channel).await;
    app.stop().await;
}
