//! `gateway serve`: the server's settings, layered. Each setting is taken from the command
//! line, else its `GATEWAY_…` environment variable, else the configuration file
//! (`--config`, TOML, the same names with `_` for `-`), else its standard value.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Deserialize;

use crate::app::{SystemClock, UploadLimits};
use crate::formats::FileLimits;
use crate::grpc::GuardSettings;
use crate::startup::{shutdown_signal, Application, ServerConfig, TlsFiles, STANDARD_MAX_MESSAGE_BYTES};

/// Declares the server's settings once: the command-line arguments (each with its
/// environment variable) and the configuration file's keys, which share their names.
macro_rules! settings {
    ($( $(#[doc = $doc:literal])* $name:ident : $type:ty = $env:literal; )*) => {
        #[derive(Debug, Args)]
        pub struct ServeArgs {
            /// A TOML file of settings (any of the options below, `_` for `-`). Command-line
            /// options and environment variables override it.
            #[arg(long, env = "GATEWAY_CONFIG")]
            pub config: Option<PathBuf>,
            $( $(#[doc = $doc])* #[arg(long, env = $env)] pub $name: Option<$type>, )*
        }

        /// The configuration file: every setting optional.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileSettings {
            $( $name: Option<$type>, )*
        }

        impl ServeArgs {
            /// The arguments, with what they leave unset taken from the file.
            fn over(self, file: FileSettings) -> ServeArgs {
                ServeArgs { config: self.config, $( $name: self.$name.or(file.$name), )* }
            }
        }
    };
}

settings! {
    /// The address to listen on [default: 127.0.0.1:50051].
    listen: SocketAddr = "GATEWAY_LISTEN";
    /// The database: `sqlite://FILE` (created if missing) or `postgres://USER@HOST/DB`
    /// [default: sqlite://gateway.db].
    database: String = "GATEWAY_DATABASE_URL";
    /// The key of the SSN HMAC and of bank account encryption, 64 hex digits. Without it a
    /// key is generated and kept in the database (fine for the embedded default; set one in
    /// production).
    pii_key: String = "GATEWAY_PII_KEY";
    /// Log format, text or json. The level is set with RUST_LOG [default: text, level info].
    log_format: LogFormat = "GATEWAY_LOG_FORMAT";
    /// Serve Prometheus metrics at http://ADDRESS/metrics [default: not served].
    metrics_listen: SocketAddr = "GATEWAY_METRICS_LISTEN";
    /// Serve the web console at http://ADDRESS/ (e.g. 127.0.0.1:8080) [default: not served].
    console_listen: SocketAddr = "GATEWAY_CONSOLE_LISTEN";
    /// The console is served behind a TLS-terminating proxy: its cookie is then `Secure`
    /// (`__Host-` named) and browsers are told to use HTTPS only [default: false].
    console_behind_tls: bool = "GATEWAY_CONSOLE_BEHIND_TLS";
    /// The largest upload, in bytes [default: 2147483648].
    max_upload_bytes: u64 = "GATEWAY_MAX_UPLOAD_BYTES";
    /// The most lines (payments, registry rows) in one file [default: 5000000].
    max_upload_lines: u64 = "GATEWAY_MAX_UPLOAD_LINES";
    /// The longest CSV record, in bytes [default: 65536].
    max_record_bytes: usize = "GATEWAY_MAX_RECORD_BYTES";
    /// The largest gRPC message a client may send, in bytes [default: 4194304].
    max_message_bytes: usize = "GATEWAY_MAX_MESSAGE_BYTES";
    /// Calls per second allowed to each sender (API key name) [default: 200].
    rate_limit_per_second: u32 = "GATEWAY_RATE_LIMIT_PER_SECOND";
    /// Calls a sender may make at once above its rate [default: 400].
    rate_limit_burst: u32 = "GATEWAY_RATE_LIMIT_BURST";
    /// Request bytes per second allowed to each sender [default: 67108864].
    upload_bytes_per_second: u32 = "GATEWAY_UPLOAD_BYTES_PER_SECOND";
    /// Request bytes a sender may send at once above its rate [default: 4294967295].
    upload_burst_bytes: u32 = "GATEWAY_UPLOAD_BURST_BYTES";
    /// Calls in flight at once, all senders together; more are shed with UNAVAILABLE
    /// [default: 256].
    max_concurrent_calls: usize = "GATEWAY_MAX_CONCURRENT_CALLS";
    /// Calls in flight at once from one sender, streams held open included; more get
    /// RESOURCE_EXHAUSTED [default: 32].
    max_concurrent_calls_per_sender: usize = "GATEWAY_MAX_CONCURRENT_CALLS_PER_SENDER";
    /// The longest a call may take, in seconds [default: 120].
    call_deadline_seconds: u64 = "GATEWAY_CALL_DEADLINE_SECONDS";
    /// The longest an upload (a file streamed in) may take, in seconds [default: 3600].
    upload_deadline_seconds: u64 = "GATEWAY_UPLOAD_DEADLINE_SECONDS";
    /// How long the server waits for the next piece of a request stream, and how long a
    /// piece of a streamed answer (an export) may wait for the client to take it, in
    /// seconds; at least 1 [default: 60].
    idle_stream_timeout_seconds: u64 = "GATEWAY_IDLE_STREAM_TIMEOUT_SECONDS";
    /// Connections open at once; past it new connections are closed at once [default: 1024].
    max_connections: usize = "GATEWAY_MAX_CONNECTIONS";
    /// How long a new connection may stay silent (no HTTP/2 preface, no TLS handshake)
    /// before it is closed, in seconds [default: 10].
    handshake_timeout_seconds: u64 = "GATEWAY_HANDSHAKE_TIMEOUT_SECONDS";
    /// On SIGTERM or Ctrl-C, how long calls in flight may take to finish, in seconds; idle
    /// connections are closed at once [default: 30].
    shutdown_grace_seconds: u64 = "GATEWAY_SHUTDOWN_GRACE_SECONDS";
    /// TLS: the server's certificate chain (PEM) [default: no TLS].
    tls_cert: PathBuf = "GATEWAY_TLS_CERT";
    /// TLS: the server's private key (PEM).
    tls_key: PathBuf = "GATEWAY_TLS_KEY";
    /// mTLS: the CA (PEM) whose client certificates are accepted; a certificate registered
    /// with an API key (`admin key create --client-cert`) then authenticates as that key.
    tls_client_ca: PathBuf = "GATEWAY_TLS_CLIENT_CA";
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("the configuration file {} is not valid", path.display()))
}

fn non_zero(name: &str, value: u32) -> anyhow::Result<NonZeroU32> {
    NonZeroU32::new(value).with_context(|| format!("{name} must be above 0"))
}

/// The server's configuration from the layered settings.
pub fn server_config(args: ServeArgs) -> anyhow::Result<(ServerConfig, LogFormat)> {
    let args = match &args.config {
        Some(path) => {
            let file = read_file(path)?;
            args.over(file)
        }
        None => args,
    };
    let standard = GuardSettings::STANDARD;
    let listen = args.listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 50051)));
    let database = args.database.unwrap_or_else(|| "sqlite://gateway.db".to_owned());
    let mut config = ServerConfig::standard(listen, database, Arc::new(SystemClock));
    config.pii_key = args.pii_key;
    config.metrics_listen = args.metrics_listen;
    config.console_listen = args.console_listen;
    config.console.behind_tls = args.console_behind_tls.unwrap_or(false);
    let standard_file = FileLimits::STANDARD;
    config.upload_limits = UploadLimits {
        max_bytes: args.max_upload_bytes.unwrap_or(UploadLimits::STANDARD.max_bytes),
        file: FileLimits {
            max_lines: args.max_upload_lines.unwrap_or(standard_file.max_lines),
            max_record_bytes: args.max_record_bytes.unwrap_or(standard_file.max_record_bytes),
        },
    };
    config.max_message_bytes = args.max_message_bytes.unwrap_or(STANDARD_MAX_MESSAGE_BYTES);
    let seconds = |value: Option<u64>, standard: Duration| value.map(Duration::from_secs).unwrap_or(standard);
    config.guard = GuardSettings {
        rate: crate::grpc::RateSettings {
            requests_per_second: args
                .rate_limit_per_second
                .map(|v| non_zero("rate-limit-per-second", v))
                .transpose()?
                .unwrap_or(standard.rate.requests_per_second),
            request_burst: args
                .rate_limit_burst
                .map(|v| non_zero("rate-limit-burst", v))
                .transpose()?
                .unwrap_or(standard.rate.request_burst),
            bytes_per_second: args
                .upload_bytes_per_second
                .map(|v| non_zero("upload-bytes-per-second", v))
                .transpose()?
                .unwrap_or(standard.rate.bytes_per_second),
            byte_burst: args.upload_burst_bytes.map(|v| non_zero("upload-burst-bytes", v)).transpose()?.unwrap_or(standard.rate.byte_burst),
        },
        max_concurrent_calls: args.max_concurrent_calls.unwrap_or(standard.max_concurrent_calls).max(1),
        max_concurrent_calls_per_sender: args.max_concurrent_calls_per_sender.unwrap_or(standard.max_concurrent_calls_per_sender).max(1),
        call_deadline: seconds(args.call_deadline_seconds, standard.call_deadline),
        upload_deadline: seconds(args.upload_deadline_seconds, standard.upload_deadline),
        idle_stream_timeout: seconds(args.idle_stream_timeout_seconds, standard.idle_stream_timeout).max(Duration::from_secs(1)),
    };
    // The console's pages and uploads get the same deadlines as calls and uploads over gRPC.
    config.console.request_deadline = config.guard.call_deadline;
    config.console.upload_deadline = config.guard.upload_deadline;
    let connections = crate::grpc::ConnectionSettings::STANDARD;
    config.connections = crate::grpc::ConnectionSettings {
        max_connections: args.max_connections.unwrap_or(connections.max_connections).max(1),
        handshake_timeout: seconds(args.handshake_timeout_seconds, connections.handshake_timeout).max(Duration::from_secs(1)),
        shutdown_grace: seconds(args.shutdown_grace_seconds, connections.shutdown_grace),
    };
    config.tls = match (args.tls_cert, args.tls_key, args.tls_client_ca) {
        (Some(certificate), Some(key), client_ca) => Some(TlsFiles { certificate, key, client_ca }),
        (None, None, None) => None,
        _ => anyhow::bail!("TLS needs both --tls-cert and --tls-key (and --tls-client-ca only with them)"),
    };
    Ok((config, args.log_format.unwrap_or(LogFormat::Text)))
}

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let (config, log_format) = server_config(args)?;
    init_tracing(log_format, "info");
    crate::crash_points::arm_from_environment().map_err(anyhow::Error::msg)?;
    tracing::info!(?config, "starting");
    let application = Application::build(config).await?;
    application.run_until(shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// Logs go to standard error, so that command output on standard out stays clean.
pub fn init_tracing(format: LogFormat, default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> ServeArgs {
        #[derive(Parser)]
        struct Wrapper {
            #[command(flatten)]
            serve: ServeArgs,
        }
        Wrapper::parse_from(std::iter::once("serve").chain(args.iter().copied())).serve
    }

    #[test]
    fn the_command_line_overrides_the_file_which_overrides_the_standard() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:6000\"\nrate_limit_per_second = 7\nidle_stream_timeout_seconds = 9\n").unwrap();
        let config = file.to_str().unwrap();
        let (server, _) = server_config(parse(&["--config", config, "--rate-limit-per-second", "11"])).unwrap();
        assert_eq!(server.listen.port(), 6000, "from the file");
        assert_eq!(server.guard.rate.requests_per_second.get(), 11, "the command line wins");
        assert_eq!(server.guard.idle_stream_timeout, Duration::from_secs(9));
        assert_eq!(server.guard.call_deadline, GuardSettings::STANDARD.call_deadline, "standard when unset");
        assert_eq!(server.database_url, "sqlite://gateway.db");
    }

    #[test]
    fn a_file_with_an_unknown_setting_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gateway.toml");
        std::fs::write(&file, "listn = \"127.0.0.1:6000\"\n").unwrap();
        let error = server_config(parse(&["--config", file.to_str().unwrap()])).unwrap_err();
        assert!(format!("{error:#}").contains("listn"), "{error:#}");
    }

    #[test]
    fn zero_rates_and_half_tls_are_refused() {
        assert!(server_config(parse(&["--rate-limit-per-second", "0"])).is_err());
        assert!(server_config(parse(&["--tls-cert", "server.pem"])).is_err());
    }
}
