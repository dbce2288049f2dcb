//! The connections the server takes, and how long it waits for them to speak.
//!
//! tonic serves whatever stream of connections it is given and waits on each for ever:
//! thousands of sockets that never send a byte would each hold a file descriptor and a task
//! (and, at shutdown, keep the server waiting for them). This accept loop caps the
//! connections open at once, gives each new one a deadline for its first byte (the HTTP/2
//! preface or a TLS ClientHello), and only then hands it to tonic. Once a peer has spoken,
//! HTTP/2 keepalive pings (set on the server) drop it when it stops answering.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Limits on connections, whatever they carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionSettings {
    /// Connections open at once; past it a new connection is closed at once.
    pub max_connections: usize,
    /// How long a new connection may stay silent before it is closed; also the TLS
    /// handshake's deadline.
    pub handshake_timeout: Duration,
    /// After a shutdown signal, how long calls in flight may take to finish before the
    /// server stops anyway.
    pub shutdown_grace: Duration,
}

impl ConnectionSettings {
    /// 1,024 connections open at once, 10 s to speak, 30 s to finish at shutdown.
    pub const STANDARD: ConnectionSettings = ConnectionSettings {
        max_connections: 1024,
        handshake_timeout: Duration::from_secs(10),
        shutdown_grace: Duration::from_secs(30),
    };
}

/// An accepted connection that has spoken; it frees its place under the cap when dropped.
pub struct Connection {
    stream: TcpStream,
    _place: OwnedSemaphorePermit,
}

/// The connections accepted on `listener` under `settings`, for tonic to serve. The accept
/// loop ends when the stream is dropped (tonic drops it when shutdown starts).
pub fn incoming(listener: TcpListener, settings: ConnectionSettings) -> ReceiverStream<io::Result<Connection>> {
    let (ready, connections) = mpsc::channel(settings.max_connections.max(1));
    let places = Arc::new(Semaphore::new(settings.max_connections));
    tokio::spawn(async move {
        let mut refused_at_cap: u64 = 0;
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = ready.closed() => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before it was taken:
                    // pause briefly instead of spinning on the error.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(place) = places.clone().try_acquire_owned() else {
                refused_at_cap += 1;
                if refused_at_cap.is_power_of_two() {
                    tracing::warn!(refused = refused_at_cap, max = settings.max_connections, "at the connection limit: closing new connections");
                }
                continue; // Dropping the stream closes it.
            };
            let _ = stream.set_nodelay(true);
            let ready = ready.clone();
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                match tokio::time::timeout(settings.handshake_timeout, stream.peek(&mut first)).await {
                    Ok(Ok(read)) if read > 0 => {
                        let _ = ready.send(Ok(Connection { stream, _place: place })).await;
                    }
                    // Silent past the deadline, closed, or failed: dropped, which closes it.
                    _ => tracing::debug!("a connection closed before speaking"),
                }
            });
        }
    });
    ReceiverStream::new(connections)
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Connection {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buffer: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buffer)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, bytes)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buffers: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, buffers)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
