//! The gRPC transport: thin handlers over [`App`], the standard health service, and server
//! reflection (v1 and v1alpha, since Python grpcio and older grpcurl speak only v1alpha).

mod convert;
mod payments;
mod services;
mod status;

use tonic::transport::server::Router;
use tonic::transport::Server;

use crate::app::App;

/// The generated messages, servers and clients of `proto/fspc/gateway/v1`.
pub mod proto {
    tonic::include_proto!("fspc.gateway.v1");

    /// The encoded descriptors of the API, for reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/gateway_descriptor.bin"));
}

use proto::collection_service_server::CollectionServiceServer;
use proto::distribution_service_server::DistributionServiceServer;
use proto::export_service_server::ExportServiceServer;
use proto::payment_service_server::PaymentServiceServer;
use proto::registry_service_server::RegistryServiceServer;
use proto::remittance_service_server::RemittanceServiceServer;

pub use services::SENDER_METADATA;

/// The gateway's services, health and reflection, ready to serve.
pub async fn router(app: App) -> Result<Router, tonic_reflection::server::Error> {
    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<RegistryServiceServer<services::Registry>>().await;
    health_reporter.set_serving::<CollectionServiceServer<services::Collections>>().await;
    health_reporter.set_serving::<DistributionServiceServer<services::Distribution>>().await;
    health_reporter.set_serving::<ExportServiceServer<services::Exports>>().await;
    health_reporter.set_serving::<RemittanceServiceServer<services::Remittances>>().await;
    health_reporter.set_serving::<PaymentServiceServer<payments::Payments>>().await;

    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    Ok(Server::builder()
        .trace_fn(|request| tracing::info_span!("rpc", path = %request.uri().path()))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(RegistryServiceServer::new(services::Registry(app.clone())))
        .add_service(CollectionServiceServer::new(services::Collections(app.clone())))
        .add_service(DistributionServiceServer::new(services::Distribution(app.clone())))
        .add_service(RemittanceServiceServer::new(services::Remittances(app.clone())))
        .add_service(PaymentServiceServer::new(payments::Payments(app.clone())))
        .add_service(ExportServiceServer::new(services::Exports(app))))
}
