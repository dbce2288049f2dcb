//! Building and running the server: configuration → store → application → gRPC.
//!
//! Binding is separate from serving so tests can ask for port 0 and learn the real address.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::app::{App, Clock, PiiKey, UploadLimits};
use crate::grpc::{ConnectionSettings, GuardLayer, GuardSettings, TransportSettings};
use crate::storage;

/// Everything the server needs to start. Secrets are redacted in `Debug`.
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub database_url: String,
    /// The SSN HMAC key (64 hex digits). Without one, a key is generated on first start
    /// and kept in the database — fine for the embedded default, not for production.
    pub pii_key: Option<String>,
    pub upload_limits: UploadLimits,
    pub clock: Arc<dyn Clock>,
    /// Where Prometheus scrapes the metrics (plain HTTP); none when `None`.
    pub metrics_listen: Option<SocketAddr>,
    /// Where the web console is served; none when `None`.
    pub console_listen: Option<SocketAddr>,
    pub console: crate::console::ConsoleSettings,
    pub guard: GuardSettings,
    /// The largest gRPC message a client may send.
    pub max_message_bytes: usize,
    pub tls: Option<TlsFiles>,
    pub connections: ConnectionSettings,
}

/// The largest message a client may send by default: gRPC's usual 4 MiB.
pub const STANDARD_MAX_MESSAGE_BYTES: usize = 4 << 20;

impl ServerConfig {
    /// A server on `listen` over `database_url` with every limit at its standard value, no
    /// TLS and no metrics port.
    pub fn standard(listen: SocketAddr, database_url: impl Into<String>, clock: Arc<dyn Clock>) -> ServerConfig {
        ServerConfig {
            listen,
            database_url: database_url.into(),
            pii_key: None,
            upload_limits: UploadLimits::STANDARD,
            clock,
            metrics_listen: None,
            console_listen: None,
            console: crate::console::ConsoleSettings::STANDARD,
            guard: GuardSettings::STANDARD,
            max_message_bytes: STANDARD_MAX_MESSAGE_BYTES,
            tls: None,
            connections: ConnectionSettings::STANDARD,
        }
    }
}

/// TLS: the server's certificate chain and key (PEM), and optionally the CA whose client
/// certificates are accepted (mTLS); a client certificate registered with an API key then
/// authenticates as that key.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub certificate: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl TlsFiles {
    fn load(&self, handshake_timeout: Duration) -> Result<ServerTlsConfig, StartupError> {
        let read = |path: &PathBuf| std::fs::read(path).map_err(|e| StartupError::Tls(format!("cannot read {}: {e}", path.display())));
        let mut config =
            ServerTlsConfig::new().identity(Identity::from_pem(read(&self.certificate)?, read(&self.key)?)).timeout(handshake_timeout);
        if let Some(ca) = &self.client_ca {
            // Optional: a client may still authenticate with an API key alone.
            config = config.client_ca_root(Certificate::from_pem(read(ca)?)).client_auth_optional(true);
        }
        Ok(config)
    }
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("database_url", &redact_password(&self.database_url))
            .field("pii_key", &self.pii_key.as_ref().map(|_| "redacted"))
            .field("upload_limits", &self.upload_limits)
            .field("metrics_listen", &self.metrics_listen)
            .field("console_listen", &self.console_listen)
            .field("guard", &self.guard)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("tls", &self.tls)
            .field("connections", &self.connections)
            .finish()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:***@host/db`.
pub fn redact_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The application over the database a URL names (migrated to the current schema), as the
/// server and the local admin commands use it.
pub async fn open_app(database_url: &str, pii_key: Option<&str>, clock: Arc<dyn Clock>, limits: UploadLimits) -> Result<App, StartupError> {
    let store = storage::connect(database_url).await?;
    let pii_key = match pii_key {
        Some(hex) => PiiKey::from_hex(hex)?,
        None => {
            tracing::warn!("no GATEWAY_PII_KEY set: using the key generated in the database (set one in production)");
            PiiKey::from_hex(&store.setting_or_insert("pii_hmac_key", &PiiKey::generate_hex()).await?)?
        }
    };
    Ok(App::new(store, pii_key, clock, limits))
}

/// The application for the local admin commands, which touch keys and the audit trail only:
/// its PII key is a throwaway that is never stored, so running them can never put a
/// generated key in a database whose server is configured with its own.
pub async fn open_admin_app(database_url: &str) -> Result<App, StartupError> {
    let store = storage::connect(database_url).await?;
    let unused = PiiKey::from_hex(&PiiKey::generate_hex())?;
    Ok(App::new(store, unused, Arc::new(crate::app::SystemClock), UploadLimits::STANDARD))
}

/// A server bound to its address, not yet serving.
pub struct Application {
    app: App,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    console_listener: Option<TcpListener>,
    console: crate::console::ConsoleSettings,
    guard: GuardLayer,
    transport: TransportSettings,
    connections: ConnectionSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Store(#[from] storage::StoreError),
    #[error(transparent)]
    PiiKey(#[from] crate::app::pii::PiiKeyError),
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    #[error(transparent)]
    Router(#[from] crate::grpc::RouterError),
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
    #[error("TLS: {0}")]
    Tls(String),
}

impl Application {
    pub async fn build(config: ServerConfig) -> Result<Application, StartupError> {
        let app = open_app(&config.database_url, config.pii_key.as_deref(), config.clock, config.upload_limits).await?;
        app.start_reading_registry().await;
        let listener = TcpListener::bind(config.listen).await.map_err(|e| StartupError::Bind(config.listen, e))?;
        let metrics_listener = match config.metrics_listen {
            Some(address) => Some(TcpListener::bind(address).await.map_err(|e| StartupError::Bind(address, e))?),
            None => None,
        };
        let console_listener = match config.console_listen {
            Some(address) => Some(TcpListener::bind(address).await.map_err(|e| StartupError::Bind(address, e))?),
            None => None,
        };
        let tls = config.tls.as_ref().map(|files| files.load(config.connections.handshake_timeout)).transpose()?;
        let guard = GuardLayer::new(app.clone(), config.guard);
        let transport = TransportSettings { max_message_bytes: config.max_message_bytes, tls };
        let console = config.console;
        Ok(Application { app, listener, metrics_listener, console_listener, console, guard, transport, connections: config.connections })
    }

    /// Where the metrics are served, when they are.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Where the web console is served, when it is.
    pub fn console_addr(&self) -> Option<SocketAddr> {
        self.console_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish within the
    /// grace period; idle connections are closed at once.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), StartupError> {
        let address = self.local_addr();
        let backend = self.app.store().backend();
        let tls = self.transport.tls.is_some();
        let router = crate::grpc::router(self.app.clone(), self.guard.clone(), self.transport).await?;
        let mut background = tokio::task::JoinSet::new();
        if let Some(listener) = self.metrics_listener {
            tracing::info!(address = %listener.local_addr().map_err(|e| StartupError::Bind(address, e))?, "metrics listening");
            background.spawn(crate::metrics_http::serve(listener, self.app.clone()));
        }
        // The console stops with the gRPC side: no new connections, idle ones closed at once,
        // requests in flight given the same grace.
        let (stop_console, console_stopping) = tokio::sync::watch::channel(false);
        let console = match self.console_listener {
            Some(listener) => {
                tracing::info!(address = %listener.local_addr().map_err(|e| StartupError::Bind(address, e))?, "console listening");
                let (app, settings) = (self.app.clone(), self.console);
                Some(tokio::spawn(crate::console::serve(listener, app, settings, console_stopping)))
            }
            None => None,
        };
        let guard = self.guard.clone();
        background.spawn(async move {
            let mut every_minute = tokio::time::interval(Duration::from_secs(60));
            loop {
                every_minute.tick().await;
                guard.forget_idle_senders();
            }
        });
        tracing::info!(%address, backend, tls, "gateway listening");
        let stopping = std::sync::Arc::new(tokio::sync::Notify::new());
        let signal = {
            let stopping = stopping.clone();
            async move {
                shutdown.await;
                stopping.notify_one();
                let _ = stop_console.send(true);
            }
        };
        let incoming = crate::grpc::incoming::incoming(self.listener, self.connections, tls);
        let serve = router.serve_with_incoming_shutdown(incoming, signal);
        let grace = self.connections.shutdown_grace;
        tokio::select! {
            served = serve => served?,
            () = async {
                stopping.notified().await;
                tokio::time::sleep(grace).await;
            } => tracing::warn!(grace_seconds = grace.as_secs(), "calls still in flight after the shutdown grace period: stopping anyway"),
        }
        if let Some(mut console) = console {
            if tokio::time::timeout(grace, &mut console).await.is_err() {
                tracing::warn!(grace_seconds = grace.as_secs(), "console requests still in flight after the shutdown grace period: stopping anyway");
                console.abort();
            }
        }
        background.abort_all();
        tracing::info!("gateway stopped");
        Ok(())
    }
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutdown requested");
}

#[cfg(test)]
mod tests {
    use super::redact_password;

    #[test]
    fn database_passwords_are_redacted() {
        assert_eq!(redact_password("postgres://gw:s3cret@db:5432/gw"), "postgres://gw:***@db:5432/gw");
        assert_eq!(redact_password("postgres://gw@db/gw"), "postgres://gw@db/gw");
        assert_eq!(redact_password("sqlite://gateway.db"), "sqlite://gateway.db");
    }
}
