//! The API gateway of the microservice deployment. One address for clients; behind it each
//! request goes to the service that owns it ([`routes`]). On the way it:
//!
//! - checks access tokens against the user service's keys ([`RemoteKeys`]; cached, fetched again
//!   for an unknown `kid`), so a bad token never reaches a service;
//! - limits requests per client address and per user, and password attempts per address
//!   ([`RateLimits`], shared with the single server; 429 with `Retry-After`);
//! - gives every request an `X-Request-Id` (the client's when sane) and a W3C `traceparent`
//!   (continuing the client's trace when it sent a valid one) and passes them on, from a server
//!   span of its own; drops a client's `X-Correlation-Id` and `X-Causation-Id`; counts and times requests
//!   per upstream (`msa_gateway_http_requests_total`, `…_duration_seconds`);
//! - refuses bodies over the limit (413), and answers upstream time-outs (504) and unreachable
//!   services (503) as problem+json;
//! - tunnels the chat WebSocket (`/v1/stream`) byte for byte;
//! - serves the web client at `/` (`msa_web`), the merged API reference at `/docs` and `/openapi.json`, the
//!   merged AsyncAPI document (the stream's frames, the topics' events) at `/asyncapi.json`, `/healthz`
//!   and `/readyz` (every service ready).

pub mod path;
pub mod proxy;
pub mod routes;
pub mod tunnels;
pub mod upstreams;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use msa_http::auth::TokenError;
use msa_http::telemetry::{self, RouteMetrics, ServerSpan};
use msa_http::{Problem, RemoteKeys, TrustedProxies};
use serde_json::{json, Value};
use tracing::Instrument;

use msa_http::rate_limits::{RateLimitSettings, RateLimits};
use path::RoutedPath;
use routes::{owner, Owner};
pub use upstreams::Upstreams;

/// The services' base URLs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub upstreams: Upstreams,
    pub rate_limits: RateLimitSettings,
    pub max_body_bytes: usize,
    pub upstream_timeout: Duration,
    /// Origins browsers may call from (`*` for any).
    pub cors_origins: Vec<String>,
    /// Proxies in front of the gateway whose `X-Forwarded-For` names the client (none: the
    /// gateway is the edge and its peer is the client).
    pub trusted_proxies: TrustedProxies,
    /// How the web client at `/` is served (which payment window it may open).
    pub web_client: msa_web::WebClient,
}

struct Gateway {
    config: GatewayConfig,
    client: reqwest::Client,
    keys: Arc<RemoteKeys>,
    limits: RateLimits,
    tunnels: Arc<tunnels::Tunnels>,
    /// Requests per upstream: `msa_gateway_http_requests_total`, `…_duration_seconds`.
    metrics: RouteMetrics,
}

/// The gateway's app. Serve it with `msa_http::server::serve` (handlers see the peer's address:
/// rate limits key on the client's address). Waits until the user service's deny list is loaded (see
/// [`msa_http::revocations`]), then polls it, so a revoked token is refused at the edge too.
pub async fn app(config: GatewayConfig) -> Result<Router, String> {
    // A service must answer, and go on sending, within the upstream timeout; a long answer
    // that keeps coming (a streamed export) is not cut off as a whole.
    let client = reqwest::Client::builder()
        .read_timeout(config.upstream_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| e.to_string())?;
    let cors = msa_http::cors::policy(&config.cors_origins)?;
    let web_client = config.web_client.clone();
    let gateway = Arc::new(Gateway {
        keys: RemoteKeys::new(config.upstreams.user.first(), client.clone()),
        limits: RateLimits::new(config.rate_limits),
        tunnels: tunnels::Tunnels::new(config.rate_limits.streams_per_address),
        metrics: RouteMetrics::new("gateway"),
        client,
        config,
    });
    let revocations = msa_http::RemoteRevocations::new(
        gateway.config.upstreams.user.first(),
        gateway.client.clone(),
        gateway.keys.verifier().revocations().clone(),
    );
    let mut warned = false;
    while let Err(error) = revocations.fetch().await {
        if !warned {
            tracing::warn!(url = revocations.url(), error = %error.without_url(), "waiting for the user service's deny list");
            warned = true;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::spawn(async move { revocations.follow().await });
    tokio::spawn(
        gateway
            .config
            .upstreams
            .clone()
            .check_forever(gateway.client.clone()),
    );
    let shrinking = Arc::downgrade(&gateway);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            match shrinking.upgrade() {
                Some(gateway) => gateway.limits.shrink(),
                None => return,
            }
        }
    });
    Ok(Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readiness))
        .route("/openapi.json", get(api_document))
        .route("/asyncapi.json", get(events_document))
        .fallback(proxy)
        .with_state(gateway)
        .merge(msa_http::api_reference())
        .merge(msa_web::router(web_client))
        .layer(cors))
}

async fn proxy(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let id = telemetry::request_id(request.headers());
    let method = request.method().clone();
    let upstream = RoutedPath::parse(request.uri().path())
        .ok()
        .and_then(|path| owner(&method, &path))
        .map_or("none", Owner::name);
    let server = ServerSpan::start(
        &method,
        upstream,
        &id,
        None,
        telemetry::incoming_traceparent(request.headers()),
    );
    // Behind a load balancer or an ingress, the client is who they say it is.
    let client = gateway
        .config
        .trusted_proxies
        .client(Some(client.ip()), request.headers())
        .unwrap_or(client.ip());
    let mut response = route(&gateway, client, request, &id, &server.traceparent)
        .instrument(server.span.clone())
        .await;
    // The service's conversation, so the gateway's log lines name it too.
    if let Some(correlation) = response
        .headers()
        .get(telemetry::CORRELATION_ID)
        .and_then(|v| v.to_str().ok())
    {
        server.span.record("correlation_id", correlation);
    }
    server.answered(response.status(), &gateway.metrics);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

async fn route(
    gateway: &Gateway,
    client: IpAddr,
    request: Request,
    id: &str,
    trace: &str,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = match RoutedPath::parse(parts.uri.path()) {
        Ok(path) => path,
        Err(error) => {
            return Problem::new(StatusCode::BAD_REQUEST, "bad-path", error.to_string())
                .into_response()
        }
    };
    let Some(owner) = owner(&parts.method, &path) else {
        return Problem::not_found("no such resource").into_response();
    };
    let user = match msa_http::auth::bearer_token(&parts.headers) {
        None => None,
        Some(token) => match gateway.keys.verify(token).await {
            Ok(claims) => Some(claims.sub),
            Err(
                error @ (TokenError::Expired
                | TokenError::Invalid(_)
                | TokenError::UnknownKey(_)
                | TokenError::Revoked),
            ) => return Problem::unauthorized(error.to_string()).into_response(),
            Err(TokenError::Missing) => None,
        },
    };
    if let Err(limited) =
        gateway
            .limits
            .check_request(&parts.method, parts.uri.path(), client, user)
    {
        return limited.into_response();
    }
    let mut extra = HeaderMap::new();
    extra.extend(proxy::header_pair("x-request-id", id));
    extra.extend(proxy::header_pair("traceparent", trace));
    extra.extend(proxy::header_pair("x-forwarded-for", &client.to_string()));
    // What the browser addressed, for the user service's session cookie (its Secure flag and
    // its same-site check): a proxy in front of the gateway may have said already.
    if !parts.headers.contains_key("x-forwarded-host") {
        if let Some(host) = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
        {
            extra.extend(proxy::header_pair("x-forwarded-host", host));
        }
    }
    // The service gets the path that was routed, encoded again, never the raw one.
    let path_and_query = match parts.uri.query() {
        Some(query) => format!("{}?{query}", path.encoded()),
        None => path.encoded(),
    };
    let instances = gateway.config.upstreams.of(owner);
    if proxy::is_websocket(&parts.headers) {
        let Some(tunnel) = gateway.tunnels.open(client) else {
            return Problem::too_many_requests("too many streams open from this address", 5)
                .into_response();
        };
        let url = format!("{}{path_and_query}", instances.pick());
        return proxy::websocket(&gateway.client, owner.name(), url, parts, extra, tunnel).await;
    }
    let limit = gateway.config.max_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            format!("request bodies are limited to {limit} bytes"),
        )
        .into_response()
    };
    if declared.is_some_and(|length| length > limit) {
        return too_large();
    }
    let Ok(body) = axum::body::to_bytes(body, limit).await else {
        return too_large();
    };
    // An instance that cannot be reached never saw the request: the next one gets it.
    let mut tries = instances.count();
    loop {
        let base = instances.pick();
        let url = format!("{base}{path_and_query}");
        match proxy::send(&gateway.client, url, &parts, extra.clone(), body.clone()).await {
            Ok(answer) => return proxy::pass_on(answer),
            Err(error) if error.is_connect() => {
                instances.unreachable(base);
                tries -= 1;
                if tries == 0 {
                    return proxy::failed(owner.name(), &error);
                }
            }
            Err(error) => return proxy::failed(owner.name(), &error),
        }
    }
}

/// Every service's API document, merged (their `/internal` paths left out).
async fn api_document(State(gateway): State<Arc<Gateway>>) -> Response {
    let mut merged = json!({
        "openapi": "3.1.0",
        "info": {"title": "msa", "version": env!("CARGO_PKG_VERSION"),
                 "description": "A chat platform with user accounts and paid message credits, behind one gateway. Errors are RFC 9457 application/problem+json; ids are UUIDv7 (a message id is a UUIDv8 naming its room and seq); times RFC 3339 UTC. The WebSocket stream (`GET /v1/stream`: its frames, close codes, resuming) and the Kafka topics' events are described by the AsyncAPI document at `/asyncapi.json`."},
        "paths": {}, "components": {"schemas": {}, "securitySchemes": {}}, "tags": [],
    });
    for owner in Owner::ALL {
        let url = format!("{}/openapi.json", gateway.config.upstreams.of(owner).pick());
        let document: Value = match gateway.client.get(&url).send().await {
            Ok(answer) if answer.status().is_success() => match answer.json().await {
                Ok(document) => document,
                Err(error) => return Problem::internal(&error).into_response(),
            },
            _ => {
                return Problem::unavailable(
                    format!("the {} service's API document is unavailable", owner.name()),
                    2,
                )
                .into_response()
            }
        };
        if let Some(paths) = document["paths"].as_object() {
            for (path, item) in paths {
                if path.starts_with("/internal") {
                    continue;
                }
                let entry = merged["paths"][path]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                let mut entry = entry;
                if let Some(operations) = item.as_object() {
                    entry.extend(operations.clone());
                }
                merged["paths"][path] = Value::Object(entry);
            }
        }
        for section in ["schemas", "securitySchemes"] {
            if let Some(items) = document["components"][section].as_object() {
                for (name, item) in items {
                    merged["components"][section][name] = item.clone();
                }
            }
        }
        if let (Some(tags), Some(all)) =
            (document["tags"].as_array(), merged["tags"].as_array_mut())
        {
            all.extend(tags.iter().cloned());
        }
    }
    Json(merged).into_response()
}

/// Every service's AsyncAPI document (the chat stream's frames, each context's topics), merged.
async fn events_document(State(gateway): State<Arc<Gateway>>) -> Response {
    let mut merged = msa_http::asyncapi::document(
        "What msa sends besides HTTP answers, behind one gateway: the chat stream's WebSocket \
         frames (`/v1/stream`, tunnelled by the gateway) and each context's events on Kafka \
         (`<context>.events`, the envelope in headers; `<context>.events.dlq`).",
    );
    for owner in Owner::ALL {
        let url = format!(
            "{}/asyncapi.json",
            gateway.config.upstreams.of(owner).pick()
        );
        let document: Value = match gateway.client.get(&url).send().await {
            Ok(answer) if answer.status().is_success() => match answer.json().await {
                Ok(document) => document,
                Err(error) => return Problem::internal(&error).into_response(),
            },
            _ => {
                return Problem::unavailable(
                    format!(
                        "the {} service's AsyncAPI document is unavailable",
                        owner.name()
                    ),
                    2,
                )
                .into_response()
            }
        };
        msa_http::asyncapi::merge(&mut merged, &document);
    }
    Json(merged).into_response()
}

/// Ready when every service has an instance that said it is ready (its stores answer) at the
/// last readiness check (`Upstreams::check_forever`), not asked again here.
async fn readiness(State(gateway): State<Arc<Gateway>>) -> Response {
    let mut ready = true;
    let mut services = serde_json::Map::new();
    for owner in Owner::ALL {
        let ok = gateway.config.upstreams.of(owner).any_ready();
        ready &= ok;
        services.insert(
            owner.name().into(),
            json!(if ok { "ok" } else { "unavailable" }),
        );
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut response = Json(json!({
        "status": if ready { "ready" } else { "unavailable" },
        "services": services,
    }))
    .into_response();
    *response.status_mut() = status;
    if !ready {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    response
}
