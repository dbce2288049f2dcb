//! The service handlers: each converts the request, calls one `App` method, converts back.

use futures::{Stream, StreamExt};
use std::pin::Pin;
use tonic::{Request, Response, Status, Streaming};

use super::convert;
use super::proto;
use crate::app::paging::PageRequest;
use crate::app::{App, AppError, AuthError, Caller, ExportStream, ReportKind, UploadPart, REMITTANCE_LIST};
use crate::domain::access::Action;

pub struct Registry(pub App);
pub struct Collections(pub App);
pub struct Distribution(pub App);
pub struct Exports(pub App);
pub struct Remittances(pub App);

/// A request's fields, converted; a malformed one is audited and answered as refused.
pub(super) async fn understood<T>(app: &App, caller: &Caller, action: Action, converted: Result<T, AppError>) -> Result<T, Status> {
    match converted {
        Ok(value) => Ok(value),
        Err(error) => Err(app.refuse(caller, action, error).await.into()),
    }
}

/// The authenticated caller the guard layer put in the request's extensions.
pub(super) fn caller_of<T>(request: &Request<T>) -> Result<Caller, Status> {
    // Absent only if a service were served without the guard: refuse rather than guess.
    request.extensions().get::<Caller>().cloned().ok_or_else(|| AppError::Unauthenticated(AuthError::Missing).into())
}

#[tonic::async_trait]
impl proto::remittance_service_server::RemittanceService for Remittances {
    async fn submit_remittance(
        &self,
        request: Request<Streaming<proto::SubmitRemittanceRequest>>,
    ) -> Result<Response<proto::SubmitRemittanceResponse>, Status> {
        let caller = caller_of(&request)?;
        let mut stream = request.into_inner();
        let first = match stream.message().await {
            Ok(first) => first.and_then(|m| m.part),
            Err(status) => return Err(self.0.refuse(&caller, Action::SubmitRemittance, upload_error(status)).await.into()),
        };
        let header = match first {
            Some(proto::submit_remittance_request::Part::Header(header)) => Ok(header),
            _ => Err(AppError::invalid("header", "the first message carries the header (format, batch id)")),
        };
        let submission = understood(&self.0, &caller, Action::SubmitRemittance, header.and_then(convert::submission)).await?;
        use proto::submit_remittance_request::Part;
        let upload = parts(stream, |message| match message.part {
            Some(Part::Chunk(chunk)) => Ok(UploadPart::Chunk(chunk)),
            Some(Part::End(end)) => Ok(UploadPart::End(convert::upload_end(end))),
            _ => Err(AppError::invalid("chunk", "only the first message carries a header; the others carry the file's bytes, then its end")),
        });
        let acknowledgment = self.0.submit_remittance(&caller, submission, upload).await?;
        Ok(Response::new(proto::SubmitRemittanceResponse { acknowledgment: Some(acknowledgment.into()) }))
    }

    async fn get_remittance(
        &self,
        request: Request<proto::GetRemittanceRequest>,
    ) -> Result<Response<proto::GetRemittanceResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let acknowledgment = self.0.get_remittance(&caller, &request.sender, &request.batch_id).await?;
        Ok(Response::new(proto::GetRemittanceResponse { acknowledgment: Some(acknowledgment.into()) }))
    }

    type StreamRemittanceLinesStream = Pin<Box<dyn Stream<Item = Result<proto::StreamRemittanceLinesResponse, Status>> + Send>>;

    async fn stream_remittance_lines(
        &self,
        request: Request<proto::StreamRemittanceLinesRequest>,
    ) -> Result<Response<Self::StreamRemittanceLinesStream>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let filter = understood(&self.0, &caller, Action::StreamRemittanceLines, convert::line_filter(&request)).await?;
        let lines = self.0.remittance_lines(&caller, &request.sender, &request.batch_id, filter).await?;
        let answers = lines.map(|line| {
            line.map(|line| proto::StreamRemittanceLinesResponse { line: Some(convert::remittance_line(line)) }).map_err(Status::from)
        });
        Ok(Response::new(Box::pin(answers)))
    }

    async fn list_remittances(
        &self,
        request: Request<proto::ListRemittancesRequest>,
    ) -> Result<Response<proto::ListRemittancesResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let converted = PageRequest::parse(REMITTANCE_LIST, request.page_size, &request.page_token)
            .and_then(|page| convert::file_query(&request).map(|query| (query, page)));
        let (query, page) = understood(&self.0, &caller, Action::ListRemittances, converted).await?;
        let page = self.0.list_remittances(&caller, query, page).await?;
        Ok(Response::new(proto::ListRemittancesResponse {
            remittances: page.items.into_iter().map(convert::remittance_summary).collect(),
            next_page_token: page.next_page_token,
        }))
    }
}

/// A client stream of upload messages, as the application reads uploads.
pub(super) fn parts<M: Send + 'static>(
    stream: Streaming<M>,
    part: fn(M) -> Result<UploadPart, AppError>,
) -> impl futures::Stream<Item = Result<UploadPart, AppError>> + Send + Unpin + 'static {
    stream.map(move |message| message.map_err(upload_error).and_then(part))
}

/// The upload messages of the registry and return files: a chunk or the end.
macro_rules! chunk_or_end {
    ($module:ident) => {
        |message| match message.part {
            Some(proto::$module::Part::Chunk(chunk)) => Ok(UploadPart::Chunk(chunk)),
            Some(proto::$module::Part::End(end)) => Ok(UploadPart::End(convert::upload_end(end))),
            None => Err(AppError::invalid("part", "each message carries a chunk of the file or its end")),
        }
    };
}
pub(super) use chunk_or_end;

/// Why an upload stream stopped. The guard's own refusals (byte rate, idle stream) keep
/// their meaning; anything else is the client's stream failing.
fn upload_error(status: Status) -> AppError {
    match status.code() {
        tonic::Code::ResourceExhausted => {
            let retry_after = status
                .metadata()
                .get(super::status::RETRY_PUSHBACK_METADATA)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .map(std::time::Duration::from_millis);
            match retry_after {
                Some(retry_after) => AppError::RateLimited { what: "the upload went over this sender's byte rate", retry_after },
                None => AppError::ResourceExhausted(status.message().to_owned()),
            }
        }
        tonic::Code::DeadlineExceeded => AppError::DeadlineExceeded(status.message().to_owned()),
        _ => AppError::UploadInterrupted(status.message().to_owned()),
    }
}

#[tonic::async_trait]
impl proto::registry_service_server::RegistryService for Registry {
    async fn import_registry(
        &self,
        request: Request<Streaming<proto::ImportRegistryRequest>>,
    ) -> Result<Response<proto::ImportRegistryResponse>, Status> {
        let caller = caller_of(&request)?;
        let upload = parts(request.into_inner(), chunk_or_end!(import_registry_request));
        let outcome = self.0.import_registry(&caller, upload).await?;
        Ok(Response::new(outcome.into()))
    }
}

#[tonic::async_trait]
impl proto::collection_service_server::CollectionService for Collections {
    async fn add_collection(
        &self,
        request: Request<proto::AddCollectionRequest>,
    ) -> Result<Response<proto::AddCollectionResponse>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let converted = (|| {
            let case_number = convert::case_number("case_number", &request.case_number)?;
            let amount = convert::amount("amount", &request.amount)?;
            Ok((case_number, amount, convert::date("effective_date", &request.effective_date)?))
        })();
        let (case_number, amount, effective_date) = understood(&self.0, &caller, Action::AddCollection, converted).await?;
        let record = self.0.add_manual_collection(&caller, case_number, amount, effective_date).await?;
        Ok(Response::new(proto::AddCollectionResponse { collection: Some(record.into()) }))
    }
}

#[tonic::async_trait]
impl proto::distribution_service_server::DistributionService for Distribution {
    async fn run_distribution(
        &self,
        request: Request<proto::RunDistributionRequest>,
    ) -> Result<Response<proto::RunDistributionResponse>, Status> {
        let summary = self.0.distribute(&caller_of(&request)?).await?;
        Ok(Response::new(summary.into()))
    }
}

/// A CSV export streamed as the RPC's own response message, each carrying a piece.
type Export<M> = Pin<Box<dyn Stream<Item = Result<M, Status>> + Send>>;

fn export_response<M: Send + 'static>(export: ExportStream, piece: fn(Vec<u8>) -> M) -> Response<Export<M>> {
    let stream = export.map(move |chunk| chunk.map(piece).map_err(Status::from));
    Response::new(Box::pin(stream))
}

#[tonic::async_trait]
impl proto::export_service_server::ExportService for Exports {
    type ExportAllocationsStream = Export<proto::ExportAllocationsResponse>;
    type ExportBalancesStream = Export<proto::ExportBalancesResponse>;
    type ExportSuspenseStream = Export<proto::ExportSuspenseResponse>;
    type ExportAuditStream = Export<proto::ExportAuditResponse>;
    type ExportReportStream = Export<proto::ExportReportResponse>;

    async fn export_suspense(&self, request: Request<proto::ExportSuspenseRequest>) -> Result<Response<Self::ExportSuspenseStream>, Status> {
        let export = self.0.export_suspense(&caller_of(&request)?).await?;
        Ok(export_response(export, |data| proto::ExportSuspenseResponse { data }))
    }

    async fn export_allocations(
        &self,
        request: Request<proto::ExportAllocationsRequest>,
    ) -> Result<Response<Self::ExportAllocationsStream>, Status> {
        let export = self.0.export_allocations(&caller_of(&request)?).await?;
        Ok(export_response(export, |data| proto::ExportAllocationsResponse { data }))
    }

    async fn export_balances(&self, request: Request<proto::ExportBalancesRequest>) -> Result<Response<Self::ExportBalancesStream>, Status> {
        let caller = caller_of(&request)?;
        let as_of = request.into_inner().as_of.unwrap_or_default();
        let as_of = understood(&self.0, &caller, Action::ExportBalances, convert::optional_date("as_of", &as_of)).await?;
        let export = self.0.export_balances(&caller, as_of).await?;
        Ok(export_response(export, |data| proto::ExportBalancesResponse { data }))
    }

    async fn export_audit(&self, request: Request<proto::ExportAuditRequest>) -> Result<Response<Self::ExportAuditStream>, Status> {
        let export = self.0.export_audit(&caller_of(&request)?).await?;
        Ok(export_response(export, |data| proto::ExportAuditResponse { data }))
    }

    async fn export_report(&self, request: Request<proto::ExportReportRequest>) -> Result<Response<Self::ExportReportStream>, Status> {
        let caller = caller_of(&request)?;
        let request = request.into_inner();
        let converted = (|| {
            let kind = match proto::ReportKind::try_from(request.kind) {
                Ok(proto::ReportKind::Collections) => Ok(ReportKind::Collections),
                Ok(proto::ReportKind::Late) => Ok(ReportKind::Late),
                Ok(proto::ReportKind::SuspenseAge) => Ok(ReportKind::SuspenseAge),
                Ok(proto::ReportKind::Totals) => Ok(ReportKind::Totals),
                _ => Err(AppError::invalid("kind", "the kind is one of ReportKind's values but UNSPECIFIED")),
            };
            let from = convert::optional_date("from_date", request.from_date.as_deref().unwrap_or_default());
            let to = convert::optional_date("to_date", request.to_date.as_deref().unwrap_or_default());
            match (kind, from, to) {
                (Ok(kind), Ok(from), Ok(to)) => Ok((kind, from, to)),
                (kind, from, to) => Err(AppError::every_field([kind.err(), from.err(), to.err()])),
            }
        })();
        let (kind, from, to) = understood(&self.0, &caller, Action::ExportReport, converted).await?;
        let export = self.0.export_report(&caller, kind, from, to).await?;
        Ok(export_response(export, |data| proto::ExportReportResponse { data }))
    }
}
