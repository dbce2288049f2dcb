//! Building and running the server: configuration → store → application → gRPC.
//!
//! Binding is separate from serving so tests can ask for port 0 and learn the real address.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

use crate::app::{App, Clock, PiiKey, UploadLimits};
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
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("database_url", &redact_password(&self.database_url))
            .field("pii_key", &self.pii_key.as_ref().map(|_| "redacted"))
            .field("upload_limits", &self.upload_limits)
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

/// A server bound to its address, not yet serving.
pub struct Application {
    app: App,
    listener: TcpListener,
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
    Reflection(#[from] tonic_reflection::server::Error),
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

impl Application {
    pub async fn build(config: ServerConfig) -> Result<Application, StartupError> {
        let store = storage::connect(&config.database_url).await?;
        let pii_key = match &config.pii_key {
            Some(hex) => PiiKey::from_hex(hex)?,
            None => {
                tracing::warn!("no GATEWAY_PII_KEY set: using the key generated in the database (set one in production)");
                PiiKey::from_hex(&store.setting_or_insert("pii_hmac_key", &PiiKey::generate_hex()).await?)?
            }
        };
        let listener = TcpListener::bind(config.listen).await.map_err(|e| StartupError::Bind(config.listen, e))?;
        let app = App::new(store, pii_key, config.clock, config.upload_limits);
        Ok(Application { app, listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    /// Serves until `shutdown` completes, then lets requests in flight finish.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), StartupError> {
        let address = self.local_addr();
        let backend = self.app.store().backend();
        let router = crate::grpc::router(self.app).await?;
        tracing::info!(%address, backend, "gateway listening");
        router.serve_with_incoming_shutdown(TcpListenerStream::new(self.listener), shutdown).await?;
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
