//! Every request observed: a server span after OpenTelemetry's HTTP conventions, the
//! conversation its commands run in, and RED metrics per route.
//!
//! - The span continues the caller's W3C `traceparent` (the gateway's, another service's) and
//!   carries the request id, correlation id, trace id and span id, so every log line inside it
//!   does too.
//! - The [`Conversation`]: a new correlation id per request, except on `/internal/…` calls (made
//!   only by services, with service tokens), which continue the caller's `X-Correlation-Id` and
//!   `X-Causation-Id`. A client cannot put its requests into someone else's conversation.
//! - Metrics: `msa_<context>_http_requests_total{method, route, status}` and
//!   `msa_<context>_http_request_duration_seconds{method, route}`; `route` is the route's
//!   template (`/v1/rooms/{room_id}/messages`), never the raw path, so a client cannot grow the
//!   label set.
//!
//! [`outgoing`] gives the headers a service call passes on.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use msa_kernel::conversation::{
    continue_trace, exporting, is_traceparent, trace_id_of, traceparent_of,
};
use msa_kernel::{metric, Conversation};
use tracing::Instrument;
use uuid::Uuid;

pub const REQUEST_ID: &str = "x-request-id";
pub const CORRELATION_ID: &str = "x-correlation-id";
pub const CAUSATION_ID: &str = "x-causation-id";
pub const TRACEPARENT: &str = "traceparent";

/// The RED metrics of one context's HTTP API (or the gateway's).
pub struct RouteMetrics {
    requests: &'static str,
    duration: &'static str,
}

impl RouteMetrics {
    pub fn new(context: &str) -> Self {
        Self {
            requests: metric::name(context, "http_requests_total"),
            duration: metric::name(context, "http_request_duration_seconds"),
        }
    }
}

/// `router`'s requests observed as `context`'s. Answers carry `X-Request-Id` and the
/// conversation's `X-Correlation-Id`.
pub fn observed(context: &str, router: Router) -> Router {
    let metrics = Arc::new(RouteMetrics::new(context));
    router.layer(axum::middleware::from_fn_with_state(metrics, observe))
}

/// A request's server span (OpenTelemetry's HTTP conventions), continuing the caller's trace.
pub struct ServerSpan {
    pub span: tracing::Span,
    /// The trace context to pass on: see [`traceparent_for`].
    pub traceparent: String,
    method: &'static str,
    route: &'static str,
    started: Instant,
}

/// The method as a label: one of HTTP's own, or `_OTHER` (OpenTelemetry's convention), so a
/// client inventing methods cannot grow the label set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

impl ServerSpan {
    /// `route` is a route's template or another name from a fixed set, never a raw path.
    ///
    /// Every field is given at creation (a log formatter formats a span's fields as it is made
    /// and again at each later record): without an exporter the ids are made here first.
    pub fn start(
        method: &Method,
        route: &str,
        request_id: &str,
        correlation_id: Option<&str>,
        incoming: Option<&str>,
    ) -> Self {
        let method = method_label(method);
        let route = metric::intern(route);
        let exporting = exporting();
        let own = (!exporting).then(|| traceparent_for(&tracing::Span::none(), incoming));
        let mut ids = own.as_deref().map(|own| own.split('-').skip(1));
        let (trace_id, span_id) = match ids.as_mut() {
            Some(ids) => (ids.next(), ids.next()),
            None => (None, None),
        };
        let name = exporting.then(|| format!("{method} {route}"));
        let span = tracing::info_span!(
            "request",
            otel.name = name.as_deref(),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            http.request.method = method,
            http.route = route,
            http.response.status_code = tracing::field::Empty,
            request_id = request_id,
            correlation_id = correlation_id,
            trace_id = trace_id,
            span_id = span_id,
        );
        let traceparent = match own {
            Some(own) => own,
            None => {
                continue_trace(&span, incoming);
                let exported = traceparent_for(&span, incoming);
                let mut ids = exported.split('-').skip(1);
                span.record("trace_id", ids.next());
                span.record("span_id", ids.next());
                exported
            }
        };
        Self {
            span,
            traceparent,
            method,
            route,
            started: Instant::now(),
        }
    }

    /// Records the answer on the span (and logs it, at debug) and in `metrics`.
    pub fn answered(self, status: StatusCode, metrics: &RouteMetrics) {
        let elapsed = self.started.elapsed();
        self.span
            .record("http.response.status_code", status.as_u16());
        if status.is_server_error() {
            self.span.record("otel.status_code", "ERROR");
        }
        self.span.in_scope(|| {
            tracing::debug!(
                status = status.as_u16(),
                elapsed_ms = elapsed.as_secs_f64() * 1e3,
                "answered"
            )
        });
        let status_label = metric::intern(status.as_str());
        metrics::counter!(metrics.requests, "method" => self.method, "route" => self.route, "status" => status_label)
            .increment(1);
        metrics::histogram!(metrics.duration, "method" => self.method, "route" => self.route)
            .record(elapsed.as_secs_f64());
    }
}

/// The client's request id if it is a sane one, else a new one.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| Uuid::now_v7().to_string())
}

/// The caller's `traceparent` if well formed.
pub fn incoming_traceparent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .filter(|value| is_traceparent(value))
}

/// The trace context to pass on from `span`: the exported span's own, or, when nothing is
/// exported, the caller's trace (or a new one) with a span id made here, so services still
/// share one trace id in their logs.
pub fn traceparent_for(span: &tracing::Span, incoming: Option<&str>) -> String {
    if let Some(own) = traceparent_of(span) {
        return own;
    }
    use rand::Rng;
    let mut rng = rand::thread_rng();
    let trace = match incoming.and_then(trace_id_of) {
        Some(trace) => trace.to_owned(),
        None => format!("{:032x}", rng.gen::<u128>() | 1),
    };
    format!("00-{trace}-{:016x}-01", rng.gen::<u64>() | 1)
}

fn header_uuid(headers: &HeaderMap, name: &str) -> Option<Uuid> {
    headers.get(name)?.to_str().ok()?.parse().ok()
}

async fn observe(
    State(metrics): State<Arc<RouteMetrics>>,
    request: Request,
    next: Next,
) -> Response {
    let route = metric::intern(
        request
            .extensions()
            .get::<MatchedPath>()
            .map_or("unmatched", MatchedPath::as_str),
    );
    let headers = request.headers();
    let request_id = request_id(headers);
    let internal = request.uri().path().starts_with("/internal/");
    let (correlation_id, causation_id) = match internal {
        true => (
            header_uuid(headers, CORRELATION_ID).unwrap_or_else(Uuid::now_v7),
            header_uuid(headers, CAUSATION_ID),
        ),
        false => (Uuid::now_v7(), None),
    };
    let correlation = correlation_id.to_string();
    let server = ServerSpan::start(
        request.method(),
        route,
        &request_id,
        Some(&correlation),
        incoming_traceparent(headers),
    );
    let conversation = Conversation {
        correlation_id,
        causation_id,
        request_id: Some(request_id.clone()),
        traceparent: Some(server.traceparent.clone()),
    };
    let mut response = conversation
        .scope(next.run(request).instrument(server.span.clone()))
        .await;
    server.answered(response.status(), &metrics);
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.entry(REQUEST_ID).or_insert(value);
    }
    // What an operator asks a client for: `msa trail <correlation id>`.
    if let Ok(value) = HeaderValue::from_str(&correlation) {
        headers.insert(CORRELATION_ID, value);
    }
    response
}

/// The headers a call to another service carries so its work joins this conversation and
/// trace: the request id, the correlation and causation ids, and `traceparent` (the calling
/// span's when exported, else the conversation's).
pub fn outgoing(span: &tracing::Span) -> Vec<(&'static str, String)> {
    let Some(conversation) = Conversation::current() else {
        return traceparent_of(span)
            .map(|trace| vec![(TRACEPARENT, trace)])
            .unwrap_or_default();
    };
    let mut headers = vec![(CORRELATION_ID, conversation.correlation_id.to_string())];
    if let Some(cause) = conversation.causation_id {
        headers.push((CAUSATION_ID, cause.to_string()));
    }
    if let Some(id) = conversation.request_id {
        headers.push((REQUEST_ID, id));
    }
    if let Some(trace) = traceparent_of(span).or(conversation.traceparent) {
        headers.push((TRACEPARENT, trace));
    }
    headers
}
