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
pub fn incoming(listener: TcpListener, settings: ConnectionSettings, tls: bool) -> ReceiverStream<io::Result<Connection>> {
    // In plain text the whole HTTP/2 preface must arrive in time, so one byte sent and then
    // silence does not hold a place; under TLS the first record's header must, and tonic's
    // handshake deadline covers the rest of the handshake.
    let first_bytes = if tls { TLS_RECORD_HEADER_BYTES } else { HTTP2_PREFACE.len() };
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
                if spoke_in_time(&stream, settings.handshake_timeout, first_bytes).await {
                    let _ = ready.send(Ok(Connection { stream, _place: place })).await;
                } else {
                    // Silent past the deadline, closed, or failed: dropped, which closes it.
                    tracing::debug!("a connection closed before speaking");
                }
            });
        }
    });
    ReceiverStream::new(connections)
}

/// What every HTTP/2 connection starts with (RFC 9113 §3.4).
const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// A TLS record's header: type, version, length.
const TLS_RECORD_HEADER_BYTES: usize = 5;

/// True when `stream` has sent its first `bytes` bytes before `deadline` passes.
async fn spoke_in_time(stream: &TcpStream, deadline: Duration, bytes: usize) -> bool {
    let waited = tokio::time::timeout(deadline, async {
        let mut first = vec![0u8; bytes];
        loop {
            match stream.peek(&mut first).await {
                Ok(0) | Err(_) => return false,
                Ok(read) if read >= bytes => return true,
                // Part of it: the rest is on its way (peek would return at once again).
                Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    });
    waited.await.unwrap_or(false)
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
