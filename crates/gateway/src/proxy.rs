//! Forwarding a request to its service, and a WebSocket to chat's stream.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use msa_http::Problem;

/// Headers that belong to one connection, not to the request (RFC 9110 §7.6.1), and what the
/// client library sets itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    headers
        .iter()
        .filter(|(name, _)| !HOP_BY_HOP.contains(&name.as_str()))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// Sends the request to `url` (the service's base, the path and the query).
pub async fn send(
    client: &reqwest::Client,
    url: String,
    parts: &Parts,
    extra: HeaderMap,
    body: axum::body::Bytes,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut headers = end_to_end(&parts.headers);
    // A client's conversation ids would put its request into someone else's trail.
    headers.remove(msa_http::telemetry::CORRELATION_ID);
    headers.remove(msa_http::telemetry::CAUSATION_ID);
    headers.extend(extra);
    client
        .request(parts.method.clone(), url)
        .headers(headers)
        .body(body)
        .send()
        .await
}

/// The service's answer as the client gets it: its status, its end-to-end headers, its body
/// passed on as it arrives (a streamed answer, a person's export, is never held whole here).
pub fn pass_on(answer: reqwest::Response) -> Response {
    let status = answer.status();
    let mut headers = end_to_end(answer.headers());
    // The body goes on unchanged: a length the service declared still holds.
    if let Some(length) = answer.headers().get(header::CONTENT_LENGTH) {
        headers.insert(header::CONTENT_LENGTH, length.clone());
    }
    let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

pub fn failed(service: &str, error: &reqwest::Error) -> Response {
    tracing::warn!(service, error = %error, "upstream call failed");
    if error.is_timeout() {
        Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream-timeout",
            format!("the {service} service did not answer in time"),
        )
        .into_response()
    } else {
        Problem::unavailable(
            format!("the {service} service is unavailable; try again"),
            2,
        )
        .into_response()
    }
}

pub fn is_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Opens the service's WebSocket first (so a refusal or an outage answers the client as the
/// service's problem+json, or a 503), then answers the client's upgrade with the service's and
/// joins the two connections byte for byte until either side closes.
///
/// A tunnel, as HTTP proxies carry WebSockets, rather than a relay of messages: frames pass
/// unparsed (the client's stay masked, as the service expects), so a live event costs the
/// gateway a copy instead of decoding, validating and encoding it again, and whatever the two
/// ends agree on (subprotocols, extensions) passes through.
pub async fn websocket(
    client: &reqwest::Client,
    service: &str,
    url: String,
    mut parts: Parts,
    extra: HeaderMap,
    held_while_open: impl Send + 'static,
) -> Response {
    let Some(client_side) = parts.extensions.remove::<OnUpgrade>() else {
        return Problem::new(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade-required",
            "a WebSocket needs an HTTP/1.1 upgrade",
        )
        .into_response();
    };
    let mut headers = end_to_end(&parts.headers);
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.extend(extra);
    let answer = match client.get(url).headers(headers).send().await {
        Ok(answer) => answer,
        Err(error) => return failed(service, &error),
    };
    if answer.status() != StatusCode::SWITCHING_PROTOCOLS {
        return pass_on(answer);
    }
    // The service's 101 (its Sec-WebSocket-Accept answers the client's own key), as it is.
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *response.headers_mut() = answer.headers().clone();
    let mut upstream = match answer.upgrade().await {
        Ok(upstream) => upstream,
        Err(error) => return failed(service, &error),
    };
    let service = service.to_owned();
    tokio::spawn(async move {
        let _held = held_while_open;
        let mut client = match client_side.await {
            Ok(upgraded) => TokioIo::new(upgraded),
            Err(error) => {
                tracing::debug!(service, %error, "client left before its WebSocket opened");
                return;
            }
        };
        // Either side closing (or failing) ends both: the copy shuts the other side down.
        if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(service, %error, "WebSocket tunnel ended");
        }
    });
    response
}

/// A header value from text we made (ids, trace context).
pub fn header_pair(name: &'static str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::from_static(name),
        HeaderValue::from_str(value).ok()?,
    ))
}
