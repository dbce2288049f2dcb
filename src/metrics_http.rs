//! The metrics endpoint: `GET /metrics` in Prometheus' text format, over plain HTTP/1.1 on
//! its own port. The money totals are read from the database at each scrape.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::app::App;

/// Serves until the task is dropped.
pub async fn serve(listener: TcpListener, app: App) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "metrics: accept failed");
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(answer(&app, request).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(error) = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await {
                tracing::debug!(%error, "metrics: connection ended");
            }
        });
    }
}

async fn answer(app: &App, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, text: String| {
        Response::builder()
            .status(status)
            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
            .body(Full::new(Bytes::from(text)))
            .expect("a static response is valid")
    };
    if request.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "the metrics are at /metrics\n".to_owned());
    }
    match app.store().open_totals().await {
        Ok(totals) => app.metrics().set_open_totals(totals),
        // The rest of the metrics are still worth serving; the totals keep their last value.
        Err(error) => tracing::warn!(%error, "metrics: reading the money totals failed"),
    }
    reply(StatusCode::OK, app.metrics().encode())
}
