//! Serving the console: HTTP/1.1 connections with the same kind of bounds the gRPC side has —
//! connections at once, a deadline to send the request's head, requests in flight, a deadline
//! per request, and each signed-in key's request rate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use super::error::ConsoleError;
use super::Console;

/// Accepts connections until `stopping` turns true; then closes idle connections, lets each
/// request in flight finish, and returns when every connection has ended.
pub async fn accept(listener: TcpListener, router: Router, console: &Console, mut stopping: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(console.settings.max_connections));
    let mut connections = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "console: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stopping) => break,
        };
        // Ended connections are forgotten as new ones come, so the set stays as small as the
        // connections open.
        while connections.try_join_next().is_some() {}
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "console: too many connections; closing a new one");
            continue;
        };
        let service = TowerToHyperService::new(router.clone().layer(Extension(ConnectInfo(peer))));
        let header_timeout = console.settings.header_read_timeout;
        let mut stop = stopping.clone();
        connections.spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            let served = tokio::select! {
                served = connection.as_mut() => served,
                () = stopped(&mut stop) => {
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(error) = served {
                tracing::debug!(%error, "console: connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// Completes when `stopping` turns true (or its sender is gone).
async fn stopped(stopping: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, before any await of the caller.
    let _ = stopping.wait_for(|stop| *stop).await.map(|_| ());
}

/// The longest a sign-in may take, its form included.
const SIGN_IN_DEADLINE: Duration = Duration::from_secs(10);

/// Every request: at most so many in flight (more are answered 503 at once), each within its
/// deadline (an upload's is longer).
pub async fn admit(State(console): State<Console>, request: Request, next: Next) -> Response {
    let Ok(_in_flight) = console.in_flight.clone().try_acquire_owned() else {
        return ConsoleError::Unavailable("the console is busy; try again in a moment".to_owned()).into_response();
    };
    // Sign-in reads a form from someone not yet known: it gets a short deadline, so slow
    // bodies cannot hold the console's permits.
    let deadline = match request.uri().path() {
        "/upload" => console.settings.upload_deadline,
        "/sign-in" => SIGN_IN_DEADLINE,
        _ => console.settings.request_deadline,
    };
    match tokio::time::timeout(deadline, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ConsoleError::Unavailable(format!("the request took longer than {} seconds and was stopped", deadline.as_secs())).into_response(),
    }
}

/// A POST must come from the console's own pages: a browser says where a form came from
/// (`Sec-Fetch-Site`, `Origin`), and another site's form — the sign-in form included, which
/// has no session to carry a CSRF token yet — is refused.
pub async fn same_origin_posts(request: Request, next: Next) -> Response {
    if request.method() == Method::POST && !from_same_origin(request.headers()) {
        return ConsoleError::Forbidden("this form did not come from the console's own pages".to_owned()).into_response();
    }
    next.run(request).await
}

fn from_same_origin(headers: &header::HeaderMap) -> bool {
    let site_ok = headers.get("sec-fetch-site").is_none_or(|site| matches!(site.as_bytes(), b"same-origin" | b"none"));
    let origin_ok = match headers.get(header::ORIGIN) {
        None => true,
        Some(origin) => {
            let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
            let origin_host = origin.to_str().ok().and_then(|o| o.split_once("://")).map(|(_, rest)| rest);
            matches!((origin_host, host), (Some(origin), Some(host)) if origin == host)
        }
    };
    site_ok && origin_ok
}

/// The address failed sign-ins are counted against: an IPv6 client's /64 (one subscriber's
/// whole block), an IPv4 client's own address.
pub fn sign_in_key(peer: SocketAddr) -> std::net::IpAddr {
    match peer.ip() {
        std::net::IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let mut segments = v6.segments();
            segments[4..].fill(0);
            std::net::IpAddr::V6(segments.into())
        }
        std::net::IpAddr::V6(v6) => std::net::IpAddr::V4(v6.to_ipv4_mapped().expect("checked")),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> header::HeaderMap {
        pairs.iter().map(|(name, value)| (header::HeaderName::from_static(name), header::HeaderValue::from_static(value))).collect()
    }

    #[test]
    fn only_forms_of_the_consoles_own_pages_are_taken() {
        assert!(from_same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080"), ("sec-fetch-site", "same-origin")])));
        assert!(from_same_origin(&headers(&[("host", "127.0.0.1:8080")])), "an old browser or a script says nothing: the CSRF token decides");
        assert!(!from_same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "https://evil.example")])));
        assert!(!from_same_origin(&headers(&[("host", "127.0.0.1:8080"), ("origin", "null")])));
        assert!(!from_same_origin(&headers(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")])));
        assert!(!from_same_origin(&headers(&[("host", "127.0.0.1:8080"), ("sec-fetch-site", "same-site")])));
    }

    #[test]
    fn failed_sign_ins_count_against_an_ipv6_clients_whole_64() {
        let a: SocketAddr = "[2001:db8:1:2:aaaa::1]:5000".parse().unwrap();
        let b: SocketAddr = "[2001:db8:1:2:bbbb::9]:6000".parse().unwrap();
        let other: SocketAddr = "[2001:db8:1:3::1]:5000".parse().unwrap();
        assert_eq!(sign_in_key(a), sign_in_key(b));
        assert_ne!(sign_in_key(a), sign_in_key(other));
        let mapped: SocketAddr = "[::ffff:192.0.2.7]:1".parse().unwrap();
        assert_eq!(sign_in_key(mapped), "192.0.2.7".parse::<std::net::IpAddr>().unwrap());
    }
}
