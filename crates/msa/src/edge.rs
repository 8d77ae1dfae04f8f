//! The single server is its own edge: it limits requests per client address and per user, and
//! password attempts per address, with the gateway's limiter ([`RateLimits`]), so one address
//! cannot slow everyone's log-in down in either deployment. (A service behind the gateway leaves
//! this to the gateway: every request reaches it from the gateway's address.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use msa_http::auth::{bearer_token, TokenVerifier};
use msa_http::rate_limits::{RateLimitSettings, RateLimits};
use msa_http::TrustedProxies;

struct Edge {
    limits: RateLimits,
    verifier: Arc<TokenVerifier>,
    /// A reverse proxy in front whose `X-Forwarded-For` names the client.
    proxies: TrustedProxies,
}

/// `app` behind the rate limits. Serve it with connect info (the client's address).
pub fn limited(
    app: Router,
    settings: RateLimitSettings,
    verifier: Arc<TokenVerifier>,
    proxies: TrustedProxies,
) -> Router {
    let edge = Arc::new(Edge {
        limits: RateLimits::new(settings),
        verifier,
        proxies,
    });
    let shrinking = Arc::downgrade(&edge);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            match shrinking.upgrade() {
                Some(edge) => edge.limits.shrink(),
                None => return,
            }
        }
    });
    app.layer(axum::middleware::from_fn_with_state(edge, limit))
}

async fn limit(
    State(edge): State<Arc<Edge>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    // The API only: probes and the web client's files are cheap and not per user.
    if !request.uri().path().starts_with("/v1/") {
        return next.run(request).await;
    }
    // A user is counted only by a token that checks out: a forged `sub` cannot spend someone
    // else's allowance.
    let user = bearer_token(request.headers())
        .and_then(|token| edge.verifier.verify(token).ok())
        .map(|claims| claims.sub);
    let client = edge
        .proxies
        .client(Some(client.ip()), request.headers())
        .unwrap_or(client.ip());
    if let Err(limited) =
        edge.limits
            .check_request(request.method(), request.uri().path(), client, user)
    {
        return limited.into_response();
    }
    next.run(request).await
}
