//! The service handlers: each converts the request, calls one `App` method, converts back.

use futures::{Stream, StreamExt};
use std::pin::Pin;
use tonic::{Request, Response, Status, Streaming};

use super::convert;
use super::proto;
use crate::app::{App, AppError, ExportStream};

pub struct Registry(pub App);
pub struct Collections(pub App);
pub struct Distribution(pub App);
pub struct Exports(pub App);

/// A client stream of file chunks, as the application reads uploads.
fn chunks<M: Send + 'static>(
    stream: Streaming<M>,
    chunk: fn(M) -> Vec<u8>,
) -> impl futures::Stream<Item = Result<Vec<u8>, AppError>> + Send + Unpin + 'static {
    stream.map(move |message| message.map(chunk).map_err(|status| AppError::UploadInterrupted(status.message().to_owned())))
}

#[tonic::async_trait]
impl proto::registry_service_server::RegistryService for Registry {
    async fn import_registry(
        &self,
        request: Request<Streaming<proto::ImportRegistryRequest>>,
    ) -> Result<Response<proto::ImportRegistryResponse>, Status> {
        let upload = chunks(request.into_inner(), |m| m.chunk);
        let outcome = self.0.import_registry(upload).await?;
        Ok(Response::new(outcome.into()))
    }
}

#[tonic::async_trait]
impl proto::collection_service_server::CollectionService for Collections {
    async fn add_collection(
        &self,
        request: Request<proto::AddCollectionRequest>,
    ) -> Result<Response<proto::AddCollectionResponse>, Status> {
        let request = request.into_inner();
        let case_number = convert::case_number("case_number", &request.case_number)?;
        let amount = convert::amount("amount", &request.amount)?;
        let effective_date = convert::date("effective_date", &request.effective_date)?;
        let record = self.0.add_manual_collection(case_number, amount, effective_date).await?;
        Ok(Response::new(proto::AddCollectionResponse { collection: Some(record.into()) }))
    }
}

#[tonic::async_trait]
impl proto::distribution_service_server::DistributionService for Distribution {
    async fn run_distribution(
        &self,
        _request: Request<proto::RunDistributionRequest>,
    ) -> Result<Response<proto::RunDistributionResponse>, Status> {
        let summary = self.0.distribute().await?;
        Ok(Response::new(summary.into()))
    }
}

type ChunkResponse = Pin<Box<dyn Stream<Item = Result<proto::ExportChunk, Status>> + Send>>;

fn export_response(export: ExportStream) -> Response<ChunkResponse> {
    let stream = export.map(|chunk| chunk.map(|data| proto::ExportChunk { data }).map_err(Status::from));
    Response::new(Box::pin(stream))
}

#[tonic::async_trait]
impl proto::export_service_server::ExportService for Exports {
    type ExportAllocationsStream = ChunkResponse;
    type ExportBalancesStream = ChunkResponse;

    async fn export_allocations(
        &self,
        _request: Request<proto::ExportAllocationsRequest>,
    ) -> Result<Response<ChunkResponse>, Status> {
        Ok(export_response(self.0.export_allocations()))
    }

    async fn export_balances(
        &self,
        request: Request<proto::ExportBalancesRequest>,
    ) -> Result<Response<ChunkResponse>, Status> {
        let as_of = convert::optional_date("as_of", &request.into_inner().as_of)?;
        Ok(export_response(self.0.export_balances(as_of)))
    }
}
