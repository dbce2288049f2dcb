//! The client commands: each makes one gRPC call and prints its answer.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use super::output;
use super::{CollectionCommand, Command, ConnectArgs, ExportKind, RegistryCommand, ReportName, WithholdingCommand};
use crate::grpc::proto;

/// Bytes per upload message: well under gRPC's default 4 MiB message limit.
const UPLOAD_CHUNK_BYTES: usize = 256 * 1024;

/// The exit code of a command whose file was refused.
const REFUSED: u8 = 3;

use crate::grpc::client::BearerToken;
pub use crate::grpc::client::GatewayChannel;

pub async fn run(connection: &ConnectArgs, json: bool, command: Command) -> anyhow::Result<ExitCode> {
    let channel = connect(connection).await?;
    match command {
        Command::Remit(command) => super::remit::run(channel, json, command).await,
        Command::Admin(_) => unreachable!("admin commands work on the database"),
        Command::Payer(command) => super::payments::payer(channel, json, command).await,
        Command::Pay(args) => super::payments::pay(channel, json, args).await,
        Command::Returns(command) => super::payments::returns(channel, json, command).await,
        Command::Withholding(WithholdingCommand::Calc(args)) => super::withholding::calc(channel, json, *args).await,
        Command::Suspense(command) => super::suspense::run(channel, json, command).await,
        Command::Terminations(command) => super::terminations::run(channel, json, command).await,
        Command::Review(command) => super::reviews::run(channel, json, command).await,
        Command::Order(command) => super::orders::run(channel, json, command).await,
        Command::Credit(command) => super::credit::run(channel, json, command).await,
        Command::Explain(command) => super::explain::run(channel, json, command).await,
        Command::Report(args) => {
            let kind = match args.what {
                ReportName::Collections => proto::ReportKind::Collections,
                ReportName::Late => proto::ReportKind::Late,
                ReportName::SuspenseAge => proto::ReportKind::SuspenseAge,
                ReportName::Totals => proto::ReportKind::Totals,
            };
            let request = proto::ExportReportRequest { kind: kind as i32, from_date: args.from, to_date: args.to };
            let mut client = proto::export_service_client::ExportServiceClient::new(channel);
            let stream = client.export_report(request).await.map_err(status_error)?;
            let pieces: Pieces = Box::pin(stream.into_inner().map(|piece| piece.map(|p| p.data)));
            write_export_to(pieces, args.out.as_deref()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(_) | Command::Completions { .. } => unreachable!("not a client command"),
        Command::Registry(RegistryCommand::Import { file }) => {
            use proto::import_registry_request::Part;
            let upload = file_upload(
                &file,
                |chunk| proto::ImportRegistryRequest { part: Some(Part::Chunk(chunk)) },
                |end| proto::ImportRegistryRequest { part: Some(Part::End(end)) },
            )
            .await?;
            let mut client = proto::registry_service_client::RegistryServiceClient::new(channel);
            let response = upload_call(client.import_registry(upload.messages), upload.failed).await?;
            output::print(json, &response, output::registry_import(&response))?;
            Ok(if response.applied { ExitCode::SUCCESS } else { ExitCode::from(REFUSED) })
        }
        Command::Collection(CollectionCommand::Add { case_number, amount, effective_date }) => {
            let mut client = proto::collection_service_client::CollectionServiceClient::new(channel);
            let request = proto::AddCollectionRequest { case_number, amount, effective_date };
            let response = client.add_collection(request).await.map_err(status_error)?.into_inner();
            output::print(json, &response, output::collection(&response))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify => super::verify::run(channel, json).await,
        Command::Distribute => {
            let mut client = proto::distribution_service_client::DistributionServiceClient::new(channel);
            let response = client.run_distribution(proto::RunDistributionRequest {}).await.map_err(status_error)?.into_inner();
            output::print(json, &response, output::distribution(&response))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(args) => {
            let mut client = proto::export_service_client::ExportServiceClient::new(channel);
            let pieces: Pieces = match args.what {
                ExportKind::Allocations => {
                    let stream = client.export_allocations(proto::ExportAllocationsRequest {}).await.map_err(status_error)?;
                    Box::pin(stream.into_inner().map(|piece| piece.map(|p| p.data)))
                }
                ExportKind::Suspense => {
                    let stream = client.export_suspense(proto::ExportSuspenseRequest {}).await.map_err(status_error)?;
                    Box::pin(stream.into_inner().map(|piece| piece.map(|p| p.data)))
                }
                ExportKind::Audit => {
                    let stream = client.export_audit(proto::ExportAuditRequest {}).await.map_err(status_error)?;
                    Box::pin(stream.into_inner().map(|piece| piece.map(|p| p.data)))
                }
                ExportKind::Balances => {
                    let stream =
                        client.export_balances(proto::ExportBalancesRequest { as_of: args.as_of }).await.map_err(status_error)?;
                    Box::pin(stream.into_inner().map(|piece| piece.map(|p| p.data)))
                }
            };
            write_export_to(pieces, args.out.as_deref()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Writes an export to `out`, or to standard output when it is absent or `-`.
async fn write_export_to(pieces: Pieces, out: Option<&Path>) -> anyhow::Result<()> {
    match out.filter(|path| path.as_os_str() != "-") {
        Some(path) => {
            let file = tokio::fs::File::create(path).await.with_context(|| format!("cannot create {}", path.display()))?;
            write_export(pieces, file).await
        }
        None => write_export(pieces, tokio::io::stdout()).await,
    }
}

/// Connects to the gateway: TLS for an `https://` server (trusting `--tls-ca`, presenting
/// `--tls-cert` for mTLS), and the API key on every call.
pub async fn connect(connection: &ConnectArgs) -> anyhow::Result<GatewayChannel> {
    let server = &connection.server;
    let mut endpoint = Channel::from_shared(server.clone()).with_context(|| format!("`{server}` is not a server URL"))?;
    if server.starts_with("https://") {
        let read = |path: &Path| std::fs::read(path).with_context(|| format!("cannot read {}", path.display()));
        let ca = connection.tls_ca.as_deref().context("an https:// server needs --tls-ca (the CA that signed its certificate)")?;
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?));
        match (&connection.tls_cert, &connection.tls_key) {
            (Some(cert), Some(key)) => tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?)),
            (None, None) => {}
            _ => anyhow::bail!("--tls-cert and --tls-key go together"),
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    let bearer = match connection.token.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        Some(token) => BearerToken::new(token).context("the API key is not printable ASCII")?,
        None => BearerToken::none(),
    };
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach the gateway at {server} (is `gateway serve` running? see --server)"))?;
    Ok(InterceptedService::new(channel, bearer))
}

/// A server's refusal, as a person reads it (and, with `--json`, as a program reads it); or,
/// when the connection itself failed during the call, what that means for the call.
pub(super) fn status_error(status: tonic::Status) -> anyhow::Error {
    if connection_lost(&status) {
        return anyhow::anyhow!(
            "the connection to the gateway was lost before its answer arrived ({}): the call may or may not have \
             been applied. Check (e.g. `gateway remit show BATCH`) or send it again: a file resent with the same \
             batch id, or a payment with the same --idempotency-key, is never applied twice",
            status.message()
        );
    }
    anyhow::Error::new(CallError(status))
}

/// A call the server refused, with the google.rpc details it sent.
#[derive(Debug)]
pub struct CallError(pub tonic::Status);

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use tonic_types::StatusExt;
        let status = &self.0;
        write!(f, "{:?}: {}", status.code(), status.message())?;
        let details = status.get_error_details();
        if let Some(bad) = details.bad_request() {
            for violation in &bad.field_violations {
                write!(f, "\n  {}: {}", violation.field, violation.description)?;
            }
        }
        if let Some(retry) = details.retry_info().and_then(|r| r.retry_delay) {
            write!(f, "\n  retry after {} ms", retry.as_millis())?;
        }
        if let Some(info) = details.error_info() {
            write!(f, "\n  (reason {})", info.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for CallError {}

impl CallError {
    /// The refusal as JSON: the code, the message and every detail, with the proto's names.
    pub fn to_json(&self) -> serde_json::Value {
        use tonic_types::StatusExt;
        let status = &self.0;
        let details = status.get_error_details();
        let mut error = serde_json::json!({ "code": format!("{:?}", status.code()), "message": status.message() });
        if let Some(info) = details.error_info() {
            error["error_info"] = serde_json::json!({ "reason": info.reason, "domain": info.domain, "metadata": info.metadata });
        }
        if let Some(bad) = details.bad_request() {
            let violations: Vec<_> =
                bad.field_violations.iter().map(|v| serde_json::json!({ "field": v.field, "description": v.description })).collect();
            error["bad_request"] = serde_json::json!({ "field_violations": violations });
        }
        if let Some(failure) = details.precondition_failure() {
            let violations: Vec<_> = failure
                .violations
                .iter()
                .map(|v| serde_json::json!({ "type": v.r#type, "subject": v.subject, "description": v.description }))
                .collect();
            error["precondition_failure"] = serde_json::json!({ "violations": violations });
        }
        if let Some(retry) = details.retry_info().and_then(|r| r.retry_delay) {
            error["retry_info"] = serde_json::json!({ "retry_delay_ms": retry.as_millis() as u64 });
        }
        serde_json::json!({ "error": error })
    }
}

/// True for a status the client's transport made up because the connection failed, as
/// opposed to an answer the server sent (which never carries a source error).
fn connection_lost(status: &tonic::Status) -> bool {
    use std::error::Error;
    matches!(status.code(), tonic::Code::Unknown | tonic::Code::Unavailable | tonic::Code::Internal | tonic::Code::Cancelled)
        && (status.source().is_some() || status.message().contains("transport error"))
}

/// A file on its way to the server: the upload's messages (the file's chunks, then its end
/// with the length and SHA-256 of what was read), and word of a failure to read it.
pub struct FileUpload<S> {
    pub messages: S,
    /// Fires if reading the file fails part-way: the call must then be abandoned, never
    /// finished as if the file had ended there.
    pub failed: tokio::sync::oneshot::Receiver<std::io::Error>,
}

/// Streams `file` (of `size` bytes, for the progress line) in chunks, each wrapped in the
/// upload's message type, then its end message. On a terminal, a progress line on standard
/// error shows how much has been sent.
pub fn upload<M: Send + 'static, R: tokio::io::AsyncRead + Send + Unpin + 'static>(
    file: R,
    size: u64,
    chunk: fn(Vec<u8>) -> M,
    end: fn(proto::UploadEnd) -> M,
) -> FileUpload<impl futures::Stream<Item = M> + Send + 'static> {
    use sha2::Digest;
    use std::io::IsTerminal;
    let progress = std::io::stderr().is_terminal() && size > 8 * UPLOAD_CHUNK_BYTES as u64;
    let (report, failed) = tokio::sync::oneshot::channel();
    struct State<R> {
        file: Option<R>,
        sha256: sha2::Sha256,
        sent: u64,
        report: Option<tokio::sync::oneshot::Sender<std::io::Error>>,
    }
    let start = State { file: Some(file), sha256: sha2::Sha256::new(), sent: 0, report: Some(report) };
    let messages = futures::stream::unfold(start, move |mut state| async move {
        let mut file = state.file.take()?;
        let mut buffer = vec![0; UPLOAD_CHUNK_BYTES];
        match file.read(&mut buffer).await {
            Ok(0) => {
                if progress {
                    eprintln!("\rsent {} of {} bytes (100%)", state.sent, size);
                }
                let sha256 = hex::encode(std::mem::take(&mut state.sha256).finalize());
                // The end goes last; with `file` gone the stream ends after it.
                Some((end(proto::UploadEnd { byte_count: state.sent, sha256 }), state))
            }
            Ok(count) => {
                buffer.truncate(count);
                state.sha256.update(&buffer);
                state.sent += count as u64;
                if progress {
                    eprint!("\rsending… {} of {} bytes ({}%)", state.sent, size, state.sent * 100 / size.max(1));
                }
                state.file = Some(file);
                Some((chunk(buffer), state))
            }
            Err(error) => {
                if let Some(report) = state.report.take() {
                    let _ = report.send(error);
                }
                // Never end the stream: a stream that ended here would look like a whole
                // (short) file. The caller abandons the call instead.
                futures::future::pending::<Option<(M, State<R>)>>().await
            }
        }
    });
    FileUpload { messages, failed }
}

/// Opens `path` as an upload (see [`upload`]).
pub(super) async fn file_upload<M: Send + 'static>(
    path: &Path,
    chunk: fn(Vec<u8>) -> M,
    end: fn(proto::UploadEnd) -> M,
) -> anyhow::Result<FileUpload<impl futures::Stream<Item = M> + Send + 'static>> {
    let file = tokio::fs::File::open(path).await.with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    Ok(upload(file, size, chunk, end))
}

/// Runs an upload's call; if reading the file fails, the call is abandoned (cancelled on
/// the wire, so the server keeps nothing of it) and that failure is the error.
pub async fn upload_call<T>(
    call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    failed: tokio::sync::oneshot::Receiver<std::io::Error>,
) -> anyhow::Result<T> {
    tokio::select! {
        Ok(error) = failed => Err(anyhow::anyhow!(
            "reading the file failed: {error}; the upload was cancelled and nothing of it was recorded"
        )),
        answer = call => answer.map(tonic::Response::into_inner).map_err(status_error),
    }
}

/// The pieces of an export, whichever RPC streams them.
type Pieces = std::pin::Pin<Box<dyn futures::Stream<Item = Result<Vec<u8>, tonic::Status>> + Send>>;

async fn write_export(mut pieces: Pieces, mut out: impl AsyncWrite + Unpin) -> anyhow::Result<()> {
    while let Some(piece) = pieces.next().await {
        out.write_all(&piece.map_err(status_error)?).await?;
    }
    out.flush().await?;
    Ok(())
}
