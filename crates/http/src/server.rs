//! Serving a router on a listener, with the timeouts a public server needs.
//!
//! Hand-written over hyper-util rather than `axum::serve`: axum's server gives hyper no timer, so
//! hyper's header read timeout never applies and a client that sends a request's headers one
//! byte a minute (slowloris) holds a connection, its task and its buffers for as long as it
//! likes; 500 of them were 500 connections the server could not close. Here each connection gets
//! the timer, a connection whose request headers are not complete within [`ServerSettings`]'s
//! timeout is closed, and shutdown is graceful (requests under way finish, for a bounded time).

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

/// How the server treats its connections.
#[derive(Debug, Clone, Copy)]
pub struct ServerSettings {
    /// A connection must send a request's complete headers within this long (from its first
    /// byte, and again for each request on a kept-alive connection), or it is closed.
    pub header_read_timeout: Duration,
    /// At shutdown, how long requests under way may still take.
    pub drain: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(10),
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves; handlers see the peer's address as
/// `ConnectInfo<SocketAddr>` (what the per-address limits read).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    // HTTP/1.1 only: the edge speaks plain HTTP (TLS ends in front of it), where browsers use
    // HTTP/1.1, and hyper's header read timeout exists for HTTP/1 alone; HTTP/2 in the clear
    // (prior knowledge) would be a way around it.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, mostly: wait for some to close.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                let response = app
                    .oneshot(request.map(axum::body::Body::new))
                    .await
                    .unwrap_or_else(|never: Infallible| match never {});
                Ok::<_, Infallible>(response)
            }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(settings.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still under way at shutdown were cut off");
    }
    Ok(())
}
