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
pub struct Remittances(pub App);

/// The metadata key naming the sender until authentication arrives.
pub const SENDER_METADATA: &str = "x-gateway-sender";

/// The sender of a request: the `x-gateway-sender` metadata, else "anonymous".
fn sender_of<T>(request: &Request<T>) -> Result<String, Status> {
    match request.metadata().get(SENDER_METADATA) {
        None => Ok("anonymous".to_owned()),
        Some(value) => value
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|s| (1..=64).contains(&s.len()))
            .map(str::to_owned)
            .ok_or_else(|| Status::invalid_argument(format!("{SENDER_METADATA} is 1 to 64 printable characters"))),
    }
}

#[tonic::async_trait]
impl proto::remittance_service_server::RemittanceService for Remittances {
    async fn submit_remittance(
        &self,
        request: Request<Streaming<proto::SubmitRemittanceRequest>>,
    ) -> Result<Response<proto::RemittanceAcknowledgment>, Status> {
        let sender = sender_of(&request)?;
        let mut stream = request.into_inner();
        let first = stream.message().await?.and_then(|m| m.part);
        let Some(proto::submit_remittance_request::Part::Header(header)) = first else {
            return Err(Status::invalid_argument("the first message carries the header (format, batch id)"));
        };
        let submission = convert::submission(sender, header)?;
        let upload = stream.map(|message| match message {
            Ok(proto::SubmitRemittanceRequest { part: Some(proto::submit_remittance_request::Part::Chunk(chunk)) }) => Ok(chunk),
            Ok(_) => Err(AppError::invalid("chunk", "only the first message carries a header; the others carry the file's bytes")),
            Err(status) => Err(AppError::UploadInterrupted(status.message().to_owned())),
        });
        let acknowledgment = self.0.submit_remittance(submission, upload).await?;
        Ok(Response::new(acknowledgment.into()))
    }

    async fn get_remittance(
        &self,
        request: Request<proto::GetRemittanceRequest>,
    ) -> Result<Response<proto::RemittanceAcknowledgment>, Status> {
        let sender = sender_of(&request)?;
        let acknowledgment = self.0.get_remittance(&sender, &request.into_inner().batch_id).await?;
        Ok(Response::new(acknowledgment.into()))
    }

    type ListRemittanceLinesStream = Pin<Box<dyn Stream<Item = Result<proto::RemittanceLine, Status>> + Send>>;

    async fn list_remittance_lines(
        &self,
        request: Request<proto::ListRemittanceLinesRequest>,
    ) -> Result<Response<Self::ListRemittanceLinesStream>, Status> {
        let sender = sender_of(&request)?;
        let lines = self.0.remittance_lines(&sender, &request.into_inner().batch_id).await?;
        Ok(Response::new(Box::pin(lines.map(|line| line.map(convert::remittance_line).map_err(Status::from)))))
    }

    async fn list_remittances(
        &self,
        request: Request<proto::ListRemittancesRequest>,
    ) -> Result<Response<proto::ListRemittancesResponse>, Status> {
        let sender = sender_of(&request)?;
        let limit = match request.into_inner().limit {
            0 => 100,
            limit => limit,
        };
        let summaries = self.0.list_remittances(&sender, limit).await?;
        Ok(Response::new(proto::ListRemittancesResponse { remittances: summaries.into_iter().map(convert::remittance_summary).collect() }))
    }
}

/// A client stream of file chunks, as the application reads uploads.
pub(super) fn chunks<M: Send + 'static>(
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
    type ExportSuspenseStream = ChunkResponse;

    async fn export_suspense(&self, _request: Request<proto::ExportSuspenseRequest>) -> Result<Response<ChunkResponse>, Status> {
        Ok(export_response(self.0.export_suspense()))
    }

    async fn export_allocations(&self, _request: Request<proto::ExportAllocationsRequest>) -> Result<Response<ChunkResponse>, Status> {
        Ok(export_response(self.0.export_allocations()))
    }

    async fn export_balances(&self, request: Request<proto::ExportBalancesRequest>) -> Result<Response<ChunkResponse>, Status> {
        let as_of = convert::optional_date("as_of", &request.into_inner().as_of)?;
        Ok(export_response(self.0.export_balances(as_of)))
    }
}
