//! Test helpers: fresh databases on both backends, and a real server on a free port.
#![allow(dead_code)] // Each test binary uses its own subset of these helpers.

pub mod process;

use std::sync::Arc;

use chrono::NaiveDate;
use futures::StreamExt;
use gateway::app::{App, Caller, FixedClock, NewKey, UploadLimits};
use gateway::domain::access::Role;
use gateway::grpc::{proto, GuardSettings};
use gateway::startup::{Application, ServerConfig};
use gateway::storage::{self, Store};
use tonic::transport::Channel;

/// A channel that presents an API key on every call, as a real client does.
pub type Authed = gateway::grpc::client::GatewayChannel;

/// `channel` presenting `token`.
pub fn authed(channel: &Channel, token: &str) -> Authed {
    gateway::grpc::client::with_key(channel.clone(), token).expect("a token is ASCII")
}

/// Makes a key as `gateway admin key create` does, directly on the application.
pub async fn make_key(app: &App, role: Role, name: &str, feins: &[&str]) -> String {
    let feins = feins.iter().map(|f| gateway::domain::Fein::parse(f).unwrap()).collect();
    let new = NewKey { role, name: name.to_owned(), feins, client_cert_sha256: None };
    app.create_key(&Caller::local_operator(), new).await.expect("the key is made").token
}

/// The PostgreSQL server the tests use: CI starts it on 127.0.0.1:5432 (trust auth).
pub fn postgres_admin_url() -> String {
    std::env::var("GATEWAY_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database of its own for one test. Dropping it removes the SQLite file; PostgreSQL
/// schemas are left for inspection (each has a unique name).
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
                TestDb { url, _dir: Some(dir) }
            }
            Backend::Postgres => {
                let admin = postgres_admin_url();
                let schema = format!("gw_test_{}", unique_suffix());
                let mut connection = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await.unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL is required for these tests ({admin}): {e}. Start it with \
                         `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
                    )
                });
                sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(&mut connection).await.expect("create schema");
                let separator = if admin.contains('?') { '&' } else { '?' };
                TestDb { url: format!("{admin}{separator}options=-c%20search_path%3D{schema}"), _dir: None }
            }
        }
    }

    pub async fn store(&self) -> Arc<dyn Store> {
        storage::connect(&self.url).await.expect("connect to the test database")
    }

    /// Runs one statement written by hand, outside the gateway, as an operator might.
    pub async fn execute_by_hand(&self, statement: &str) {
        if self.url.starts_with("sqlite:") {
            let pool = sqlx::SqlitePool::connect(&self.url).await.unwrap();
            sqlx::query(statement).execute(&pool).await.unwrap();
            pool.close().await;
        } else {
            let pool = sqlx::PgPool::connect(&self.url).await.unwrap();
            sqlx::query(statement).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

fn unique_suffix() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    let mut random = [0u8; 4];
    getrandom::fill(&mut random).unwrap();
    format!("{nanos:x}{}", hex::encode(random))
}

/// The day the tests' server believes it is.
pub fn test_today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, 20).unwrap()
}

/// A clock the test moves forward by hand.
pub struct TestClock(std::sync::Mutex<NaiveDate>);

impl TestClock {
    pub fn new(today: &str) -> Arc<TestClock> {
        Arc::new(TestClock(std::sync::Mutex::new(NaiveDate::parse_from_str(today, "%Y-%m-%d").unwrap())))
    }

    pub fn set(&self, today: &str) {
        *self.0.lock().unwrap() = NaiveDate::parse_from_str(today, "%Y-%m-%d").unwrap();
    }
}

impl gateway::app::Clock for TestClock {
    fn today(&self) -> NaiveDate {
        *self.0.lock().unwrap()
    }

    /// The test's day at the real time of day: what is recorded agrees with "today".
    fn now_rfc3339(&self) -> String {
        let time = chrono::Utc::now().time().format("%H:%M:%S%.3f");
        format!("{}T{time}Z", self.today())
    }
}

/// A running server on a free port, its database, and channels to it: `channel` presents
/// a back-office key, `payment_site` a payment-site key, `raw` nothing.
pub struct TestApp {
    pub address: std::net::SocketAddr,
    pub channel: Authed,
    pub payment_site: Authed,
    pub raw: Channel,
    pub app: App,
    pub db: TestDb,
    pub metrics_address: Option<std::net::SocketAddr>,
    pub console_address: Option<std::net::SocketAddr>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with_limits(backend, UploadLimits::STANDARD).await
    }

    pub async fn spawn_with_limits(backend: Backend, upload_limits: UploadLimits) -> TestApp {
        Self::spawn_with(backend, upload_limits, Arc::new(FixedClock(test_today()))).await
    }

    pub async fn spawn_with_clock(backend: Backend, clock: Arc<dyn gateway::app::Clock>) -> TestApp {
        Self::spawn_with(backend, UploadLimits::STANDARD, clock).await
    }

    async fn spawn_with(backend: Backend, upload_limits: UploadLimits, clock: Arc<dyn gateway::app::Clock>) -> TestApp {
        Self::spawn_configured(backend, |config| {
            config.upload_limits = upload_limits;
            config.clock = clock;
        })
        .await
    }

    /// A server whose configuration `configure` sets, from the standard one with a metrics
    /// port and the tests' PII key and clock.
    pub async fn spawn_configured(backend: Backend, configure: impl FnOnce(&mut ServerConfig)) -> TestApp {
        let db = TestDb::new(backend).await;
        let mut config = ServerConfig::standard("127.0.0.1:0".parse().unwrap(), db.url.clone(), Arc::new(FixedClock(test_today())));
        config.pii_key = Some(TEST_PII_KEY.to_owned());
        config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
        config.guard = GuardSettings::STANDARD;
        configure(&mut config);
        let tls = config.tls.is_some();
        let application = Application::build(config).await.expect("the server starts");
        let address = application.local_addr();
        let metrics_address = application.metrics_addr();
        let console_address = application.console_addr();
        let app = application.app().clone();
        let (shutdown, signal) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            application
                .run_until(async {
                    let _ = signal.await;
                })
                .await
                .expect("the server runs");
        });
        // Over TLS the tests connect with their own client configuration: this plain
        // channel is then only a placeholder that never connects.
        let endpoint = Channel::from_shared(format!("http://{address}")).unwrap();
        let raw = if tls { endpoint.connect_lazy() } else { endpoint.connect().await.expect("connect") };
        let back_office = make_key(&app, Role::BackOffice, "back-office", &[]).await;
        let payment_site = make_key(&app, Role::PaymentSite, "payment-site", &[]).await;
        TestApp {
            address,
            channel: authed(&raw, &back_office),
            payment_site: authed(&raw, &payment_site),
            raw,
            app,
            db,
            metrics_address,
            console_address,
            shutdown: Some(shutdown),
            server: Some(server),
        }
    }

    /// A server that speaks only TLS, with `files`.
    pub async fn spawn_tls(backend: Backend, files: gateway::startup::TlsFiles) -> TestApp {
        Self::spawn_configured(backend, |config| config.tls = Some(files)).await
    }

    /// A channel with a new key of `role` named `name`.
    pub async fn as_key(&self, role: Role, name: &str, feins: &[&str]) -> Authed {
        authed(&self.raw, &make_key(&self.app, role, name, feins).await)
    }

    /// A channel of the payroll vendor `name` (a key made on first use of each name is fine:
    /// keys of one name are one sender).
    pub async fn vendor(&self, name: &str) -> Authed {
        self.as_key(Role::Vendor, name, &[]).await
    }

    /// Imports the spec's registry (`SPEC_REGISTRY`) as the back office.
    pub async fn import_spec_registry(&self) {
        let chunks = gateway::grpc::client::registry_upload(SPEC_REGISTRY.as_bytes(), 1 << 16);
        let mut registry = proto::registry_service_client::RegistryServiceClient::new(self.channel.clone());
        assert!(registry.import_registry(futures::stream::iter(chunks)).await.unwrap().into_inner().applied);
    }

    /// The spec registry's OB-1 registered by the payment site as a payer of case 12345678
    /// (account 000123456789), its account confirmed by the back office; the payer's id.
    pub async fn confirmed_payer(&self) -> i64 {
        let mut site = proto::payment_service_client::PaymentServiceClient::new(self.payment_site.clone());
        let payer_id = site.register_payer(registration_with_account("000123456789")).await.unwrap().into_inner().payer.unwrap().payer_id;
        let mut office = proto::payment_service_client::PaymentServiceClient::new(self.channel.clone());
        office.confirm_bank_account(proto::ConfirmBankAccountRequest { payer_id }).await.unwrap();
        payer_id
    }

    /// Stops the server and waits until it has finished.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("the server stops cleanly");
        }
    }
}

/// The PII key of the tests' servers.
pub const TEST_PII_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// The registry of the spec's worked examples: orders A (300.00 a month, 100.00 arrears)
/// and B (200.00 a month, 300.00 arrears) of one obligor, from November 2026.
pub const SPEC_REGISTRY: &str = "\
obligor_id,obligor_ssn,obligor_last_name,obligor_first_name,case_number,order_id,monthly_amount,start_month,opening_arrears,employer_fein
OB-1,123-45-6789,Smith,John,12345678,A,300.00,2026-11,100.00,43-1234567
OB-1,123-45-6789,Smith,John,12345679,B,200.00,2026-11,300.00,
OB-2,223-45-6789,Doe,Jane,22345678,C,150.00,2026-11,0.00,
";

impl TestDb {
    /// A fresh SQLite database, for tests that run the `gateway` binary.
    pub fn new_blocking() -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("gateway.db").display());
        TestDb { url, _dir: Some(dir) }
    }
}

/// Which CSV export to read.
pub enum Export<'a> {
    Allocations,
    Balances { as_of: &'a str },
    Suspense,
    Audit,
}

/// Reads a whole export through gRPC.
pub async fn export(channel: &Authed, what: Export<'_>) -> String {
    let mut client = proto::export_service_client::ExportServiceClient::new(channel.clone());
    type Pieces = std::pin::Pin<Box<dyn futures::Stream<Item = Result<Vec<u8>, tonic::Status>> + Send>>;
    let pieces: Pieces = match what {
        Export::Allocations => {
            let stream = client.export_allocations(proto::ExportAllocationsRequest {}).await.expect("the export starts").into_inner();
            Box::pin(stream.map(|piece| piece.map(|p| p.data)))
        }
        Export::Balances { as_of } => {
            let request = proto::ExportBalancesRequest { as_of: Some(as_of.into()) };
            Box::pin(client.export_balances(request).await.expect("the export starts").into_inner().map(|piece| piece.map(|p| p.data)))
        }
        Export::Suspense => {
            let stream = client.export_suspense(proto::ExportSuspenseRequest {}).await.expect("the export starts").into_inner();
            Box::pin(stream.map(|piece| piece.map(|p| p.data)))
        }
        Export::Audit => {
            let stream = client.export_audit(proto::ExportAuditRequest {}).await.expect("the export starts").into_inner();
            Box::pin(stream.map(|piece| piece.map(|p| p.data)))
        }
    };
    let csv: Vec<u8> = pieces.map(|piece| piece.expect("the export completes")).concat().await;
    String::from_utf8(csv).expect("exports are UTF-8")
}

/// An enum value's name without its type's prefix, as tests compare it: `ack.status().short()`
/// is `"ACCEPTED"` for ACKNOWLEDGMENT_STATUS_ACCEPTED.
pub trait Short {
    fn short(self) -> &'static str;
}

macro_rules! short_names {
    ($($enum:ty => $prefix:literal),* $(,)?) => {
        $(impl Short for $enum {
            fn short(self) -> &'static str {
                let name = self.as_str_name();
                name.strip_prefix($prefix).unwrap_or(name)
            }
        })*
    };
}

short_names!(
    proto::AcknowledgmentStatus => "ACKNOWLEDGMENT_STATUS_",
    proto::LineStatus => "LINE_STATUS_",
    proto::Severity => "SEVERITY_",
    proto::CollectionStatus => "COLLECTION_STATUS_",
    proto::CollectionSource => "COLLECTION_SOURCE_",
    proto::Bucket => "BUCKET_",
    proto::AccountState => "ACCOUNT_STATE_",
    proto::AccountType => "ACCOUNT_TYPE_",
    proto::PaymentStatus => "PAYMENT_STATUS_",
    proto::ReturnOutcome => "RETURN_OUTCOME_",
    proto::RemittanceFormat => "REMITTANCE_FORMAT_",
    proto::Role => "ROLE_",
);

/// A back-office report's CSV through gRPC, over an optional date range.
pub async fn report(channel: &Authed, kind: proto::ReportKind, from: Option<&str>, to: Option<&str>) -> String {
    let request = proto::ExportReportRequest { kind: kind as i32, from_date: from.map(str::to_owned), to_date: to.map(str::to_owned) };
    let stream = proto::export_service_client::ExportServiceClient::new(channel.clone()).export_report(request).await.unwrap().into_inner();
    let csv: Vec<u8> = stream.map(|piece| piece.expect("the report completes").data).concat().await;
    String::from_utf8(csv).expect("reports are UTF-8")
}

/// Ends an end-to-end test: `VerifyLedger` finds every collection, pool, run, file and
/// payment whole.
pub async fn assert_ledger_whole(channel: &Authed) {
    let mut client = proto::ledger_service_client::LedgerServiceClient::new(channel.clone());
    let report = client.verify_ledger(proto::VerifyLedgerRequest {}).await.expect("the ledger is verified").into_inner();
    let breaches: Vec<String> = report.checks.iter().flat_map(|c| c.breaches.iter().map(move |b| format!("{}: {b}", c.name))).collect();
    assert!(report.ok, "the ledger has breaches: {breaches:?}");
}

/// Runs distribution through gRPC.
pub async fn distribute(channel: &Authed) -> proto::RunDistributionResponse {
    let mut client = proto::distribution_service_client::DistributionServiceClient::new(channel.clone());
    client.run_distribution(proto::RunDistributionRequest {}).await.expect("distribution runs").into_inner()
}

/// The spec registry's OB-1 registering as a payer of case 12345678 with a checking account
/// of number `account_number`.
pub fn registration_with_account(account_number: &str) -> proto::RegisterPayerRequest {
    proto::RegisterPayerRequest {
        name: "John Smith".into(),
        address: "1 Main St, Jefferson City, MO 65101".into(),
        ssn: "123-45-6789".into(),
        telephone: "(573) 555-0100".into(),
        case_number: "12345678".into(),
        email: "john.smith@example.com".into(),
        bank_account: Some(proto::BankAccountInput {
            routing_number: "091000019".into(),
            account_number: account_number.into(),
            account_type: proto::AccountType::Checking as i32,
        }),
    }
}
