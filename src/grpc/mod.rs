//! The gRPC transport: thin handlers over [`App`], behind one guard layer (authentication,
//! rate limits, load shedding, deadlines, request ids, metrics), with the standard health
//! service and server reflection (v1 and v1alpha, since Python grpcio and older grpcurl speak
//! only v1alpha).

mod admin;
pub mod client;
mod convert;
mod credit;
mod explain;
pub mod ledger;
pub mod guard;
pub mod incoming;
mod payments;
mod services;
mod orders;
mod status;
mod suspense;
mod terminations;
mod withholding;

use std::time::Duration;

use tonic::transport::server::Router;
use tonic::transport::{Server, ServerTlsConfig};
use tower::layer::util::{Identity, Stack};

use crate::app::App;
pub use admin::api_key as admin_api_key;
pub use guard::{GuardLayer, GuardSettings, RateSettings, REQUEST_ID_METADATA};
pub use incoming::ConnectionSettings;
pub use status::RETRY_PUSHBACK_METADATA;

/// The generated messages, servers and clients of `proto/fspc/gateway/v1`.
pub mod proto {
    tonic::include_proto!("fspc.gateway.v1");

    /// The encoded descriptors of the API, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gateway_descriptor.bin"));
}

use proto::admin_service_server::AdminServiceServer;
use proto::collection_service_server::CollectionServiceServer;
use proto::credit_service_server::CreditServiceServer;
use proto::explain_service_server::ExplainServiceServer;
use proto::ledger_service_server::LedgerServiceServer;
use proto::distribution_service_server::DistributionServiceServer;
use proto::export_service_server::ExportServiceServer;
use proto::payment_service_server::PaymentServiceServer;
use proto::registry_service_server::RegistryServiceServer;
use proto::remittance_service_server::RemittanceServiceServer;
use proto::order_service_server::OrderServiceServer;
use proto::suspense_service_server::SuspenseServiceServer;
use proto::termination_service_server::TerminationServiceServer;
use proto::withholding_service_server::WithholdingServiceServer;

/// The gRPC server with every service, ready to serve.
pub type GatewayRouter = Router<Stack<GuardLayer, Identity>>;

/// How the transport itself is set up.
#[derive(Clone, Debug)]
pub struct TransportSettings {
    /// The largest message a client may send (an upload is many messages).
    pub max_message_bytes: usize,
    pub tls: Option<ServerTlsConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error(transparent)]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("TLS: {0}")]
    Tls(#[from] tonic::transport::Error),
}

/// Sets a service's message limit, the same on every service.
macro_rules! limited {
    ($server:ident, $service:expr, $max:expr) => {
        $server::new($service).max_decoding_message_size($max)
    };
}

/// The gateway's services, health and reflection, behind the guard.
pub async fn router(app: App, guard: GuardLayer, settings: TransportSettings) -> Result<GatewayRouter, RouterError> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<RegistryServiceServer<services::Registry>>().await;
    health_reporter.set_serving::<CollectionServiceServer<services::Collections>>().await;
    health_reporter.set_serving::<DistributionServiceServer<services::Distribution>>().await;
    health_reporter.set_serving::<ExportServiceServer<services::Exports>>().await;
    health_reporter.set_serving::<RemittanceServiceServer<services::Remittances>>().await;
    health_reporter.set_serving::<PaymentServiceServer<payments::Payments>>().await;
    health_reporter.set_serving::<AdminServiceServer<admin::Admin>>().await;
    health_reporter.set_serving::<WithholdingServiceServer<withholding::Withholdings>>().await;
    health_reporter.set_serving::<SuspenseServiceServer<suspense::Suspense>>().await;
    health_reporter.set_serving::<TerminationServiceServer<terminations::Terminations>>().await;
    health_reporter.set_serving::<OrderServiceServer<orders::Orders>>().await;
    health_reporter.set_serving::<CreditServiceServer<credit::Credit>>().await;
    health_reporter.set_serving::<ExplainServiceServer<explain::Explain>>().await;
    health_reporter.set_serving::<LedgerServiceServer<ledger::Ledger>>().await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let mut server = Server::builder()
        // A peer that stops answering is noticed and its calls released.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)))
        .tcp_keepalive(Some(Duration::from_secs(60)));
    if let Some(tls) = settings.tls {
        server = server.tls_config(tls)?;
    }
    let max = settings.max_message_bytes;
    Ok(server
        .layer(guard)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(limited!(RegistryServiceServer, services::Registry(app.clone()), max))
        .add_service(limited!(CollectionServiceServer, services::Collections(app.clone()), max))
        .add_service(limited!(DistributionServiceServer, services::Distribution(app.clone()), max))
        .add_service(limited!(RemittanceServiceServer, services::Remittances(app.clone()), max))
        .add_service(limited!(PaymentServiceServer, payments::Payments(app.clone()), max))
        .add_service(limited!(AdminServiceServer, admin::Admin(app.clone()), max))
        .add_service(limited!(WithholdingServiceServer, withholding::Withholdings(app.clone()), max))
        .add_service(limited!(SuspenseServiceServer, suspense::Suspense(app.clone()), max))
        .add_service(limited!(TerminationServiceServer, terminations::Terminations(app.clone()), max))
        .add_service(limited!(OrderServiceServer, orders::Orders(app.clone()), max))
        .add_service(limited!(CreditServiceServer, credit::Credit(app.clone()), max))
        .add_service(limited!(ExplainServiceServer, explain::Explain(app.clone()), max))
        .add_service(limited!(LedgerServiceServer, ledger::Ledger(app.clone()), max))
        .add_service(limited!(ExportServiceServer, services::Exports(app), max)))
}
