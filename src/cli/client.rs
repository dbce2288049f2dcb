//! The client commands: each makes one gRPC call and prints its answer.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use super::output;
use super::{CollectionCommand, Command, ConnectArgs, ExportKind, RegistryCommand};
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
        Command::Serve(_) => unreachable!("serve is not a client command"),
        Command::Registry(RegistryCommand::Import { file }) => {
            let upload = file_chunks(&file, |chunk| proto::ImportRegistryRequest { chunk }).await?;
            let mut client = proto::registry_service_client::RegistryServiceClient::new(channel);
            let response = client.import_registry(upload).await.map_err(status_error)?.into_inner();
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
        Command::Distribute => {
            let mut client = proto::distribution_service_client::DistributionServiceClient::new(channel);
            let response = client.run_distribution(proto::RunDistributionRequest {}).await.map_err(status_error)?.into_inner();
            output::print(json, &response, output::distribution(&response))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Export(args) => {
            let mut client = proto::export_service_client::ExportServiceClient::new(channel);
            let stream = match args.what {
                ExportKind::Allocations => client.export_allocations(proto::ExportAllocationsRequest {}).await,
                ExportKind::Suspense => client.export_suspense(proto::ExportSuspenseRequest {}).await,
                ExportKind::Audit => client.export_audit(proto::ExportAuditRequest {}).await,
                ExportKind::Balances => {
                    let as_of = args.as_of.unwrap_or_default();
                    client.export_balances(proto::ExportBalancesRequest { as_of }).await
                }
            }
            .map_err(status_error)?
            .into_inner();
            match &args.out {
                Some(path) => {
                    let file = tokio::fs::File::create(path).await.with_context(|| format!("cannot create {}", path.display()))?;
                    write_export(stream, file).await?;
                }
                None => write_export(stream, tokio::io::stdout()).await?,
            }
            Ok(ExitCode::SUCCESS)
        }
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

/// A server's refusal, as a person reads it.
pub(super) fn status_error(status: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", status.code(), status.message())
}

/// Streams a file in chunks, each wrapped in the upload's message type. On a terminal, a
/// progress line on standard error shows how much has been sent.
pub(super) async fn file_chunks<M: Send + 'static>(
    path: &Path,
    wrap: fn(Vec<u8>) -> M,
) -> anyhow::Result<impl futures::Stream<Item = M> + Send + 'static> {
    use std::io::IsTerminal;
    let file = tokio::fs::File::open(path).await.with_context(|| format!("cannot open {}", path.display()))?;
    let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    let progress = std::io::stderr().is_terminal() && size > 8 * UPLOAD_CHUNK_BYTES as u64;
    Ok(futures::stream::unfold((Some(file), 0u64), move |(file, sent)| async move {
        let mut file = file?;
        let mut chunk = vec![0; UPLOAD_CHUNK_BYTES];
        match file.read(&mut chunk).await {
            Ok(0) => {
                if progress {
                    eprintln!("\rsent {} of {} bytes (100%)", sent, size);
                }
                None
            }
            Ok(count) => {
                chunk.truncate(count);
                let sent = sent + count as u64;
                if progress {
                    eprint!("\rsending… {} of {} bytes ({}%)", sent, size, sent * 100 / size.max(1));
                }
                Some((wrap(chunk), (Some(file), sent)))
            }
            Err(error) => {
                // Ending the stream early makes the server see a short file: say why here.
                eprintln!("error: reading the file failed: {error}");
                None
            }
        }
    }))
}

async fn write_export(mut stream: tonic::Streaming<proto::ExportChunk>, mut out: impl AsyncWrite + Unpin) -> anyhow::Result<()> {
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(status_error)?;
        out.write_all(&chunk.data).await?;
    }
    out.flush().await?;
    Ok(())
}
