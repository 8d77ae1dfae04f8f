//! Forwarding a request to its service, and a WebSocket to chat's stream.

use axum::body::Body;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use msa_http::Problem;
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

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

/// Sends the request to `url` (the service's base, the path and the query) and relays the answer.
pub async fn forward(
    client: &reqwest::Client,
    service: &str,
    url: String,
    parts: &Parts,
    extra: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut headers = end_to_end(&parts.headers);
    headers.extend(extra);
    let sent = client
        .request(parts.method.clone(), url)
        .headers(headers)
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(error) => return failed(service, &error),
    };
    let status = answer.status();
    let headers = end_to_end(answer.headers());
    match answer.bytes().await {
        Ok(bytes) => {
            let mut response = Response::new(Body::from(bytes));
            *response.status_mut() = status;
            *response.headers_mut() = headers;
            response
        }
        Err(error) => failed(service, &error),
    }
}

fn failed(service: &str, error: &reqwest::Error) -> Response {
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

/// Connects to the service's WebSocket first (so a refusal or an outage answers the client as
/// problem+json), then upgrades the client and relays frames both ways until either side closes.
pub async fn websocket(service: &str, url: String, mut parts: Parts, extra: HeaderMap) -> Response {
    let mut request = match url.into_client_request() {
        Ok(request) => request,
        Err(error) => return Problem::internal(&error).into_response(),
    };
    for name in [header::AUTHORIZATION, header::ORIGIN] {
        if let Some(value) = parts.headers.get(&name) {
            request.headers_mut().insert(name, value.clone());
        }
    }
    request.headers_mut().extend(extra);
    let config = tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(msa_http::WEBSOCKET_READ_BUFFER);
    let upstream =
        match tokio_tungstenite::connect_async_with_config(request, Some(config), true).await {
            Ok((upstream, _)) => upstream,
            Err(tungstenite::Error::Http(refusal)) => {
                let status = refusal.status();
                let body = refusal.body().clone().unwrap_or_default();
                let mut response = Response::new(Body::from(body));
                *response.status_mut() = status;
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/problem+json"),
                );
                return response;
            }
            Err(error) => {
                tracing::warn!(service, %error, "upstream WebSocket failed");
                return Problem::unavailable(
                    format!("the {service} service is unavailable; try again"),
                    2,
                )
                .into_response();
            }
        };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    upgrade
        .read_buffer_size(msa_http::WEBSOCKET_READ_BUFFER)
        .on_upgrade(move |client| relay(client, upstream))
}

type Upstream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn relay(client: WebSocket, upstream: Upstream) {
    let (mut to_client, mut from_client) = client.split();
    let (mut to_upstream, mut from_upstream) = upstream.split();
    let inbound = async {
        while let Some(Ok(message)) = from_client.next().await {
            let message = match message {
                ws::Message::Text(text) => tungstenite::Message::Text(text.as_str().into()),
                ws::Message::Binary(bytes) => tungstenite::Message::Binary(bytes),
                ws::Message::Ping(bytes) => tungstenite::Message::Ping(bytes),
                ws::Message::Pong(bytes) => tungstenite::Message::Pong(bytes),
                ws::Message::Close(frame) => {
                    let frame = frame.map(|f| tungstenite::protocol::CloseFrame {
                        code: f.code.into(),
                        reason: f.reason.as_str().into(),
                    });
                    let _ = to_upstream.send(tungstenite::Message::Close(frame)).await;
                    break;
                }
            };
            if to_upstream.send(message).await.is_err() {
                break;
            }
        }
    };
    let outbound = async {
        while let Some(Ok(message)) = from_upstream.next().await {
            let message = match message {
                tungstenite::Message::Text(text) => ws::Message::Text(text.as_str().into()),
                tungstenite::Message::Binary(bytes) => ws::Message::Binary(bytes),
                tungstenite::Message::Ping(bytes) => ws::Message::Ping(bytes),
                tungstenite::Message::Pong(bytes) => ws::Message::Pong(bytes),
                tungstenite::Message::Close(frame) => {
                    let frame = frame.map(|f| ws::CloseFrame {
                        code: f.code.into(),
                        reason: f.reason.as_str().into(),
                    });
                    let _ = to_client.send(ws::Message::Close(frame)).await;
                    break;
                }
                tungstenite::Message::Frame(_) => continue,
            };
            if to_client.send(message).await.is_err() {
                break;
            }
        }
    };
    // Either side ending ends the relay.
    tokio::select! {
        _ = inbound => {}
        _ = outbound => {}
    }
}

/// A header value from text we made (ids, trace context).
pub fn header_pair(name: &'static str, value: &str) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::from_static(name),
        HeaderValue::from_str(value).ok()?,
    ))
}
