//! The gateway as a client meets it, in front of the real user service (tokens, keys) and a
//! stand-in for the other services that records what reaches it: routing, tokens checked at the
//! edge, request ids and trace context passed on, limits, time-outs and outages as problem+json.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{self, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use common::api::Api;
use common::{free_port, spawn_serving, Server};
use futures::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The stand-in's WebSocket: refuses without a token as chat does; once open, says which request
/// id reached it, echoes what it is sent, and says "late" after 1.5 s (longer than the gateway's
/// upstream time-out in these tests).
async fn stand_in_stream(
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !headers.contains_key("authorization") {
        return msa_http::Problem::unauthorized("no token").into_response();
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let id = headers
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    upgrade.on_upgrade(move |mut socket| async move {
        let _ = socket.send(ws::Message::Text(format!("id:{id}").into())).await;
        let late = tokio::time::sleep(Duration::from_millis(1500));
        tokio::pin!(late);
        loop {
            tokio::select! {
                _ = &mut late => {
                    let _ = socket.send(ws::Message::Text("late".into())).await;
                    late.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(3600));
                }
                message = socket.recv() => match message {
                    Some(Ok(ws::Message::Text(text))) => {
                        let _ = socket.send(ws::Message::Text(format!("echo:{}", text.as_str()).into())).await;
                    }
                    Some(Ok(ws::Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => {}
                }
            }
        }
    })
}

/// A service stand-in: answers every request with what it saw; `/v1/rooms/slow` takes 3 s.
async fn stand_in() -> (String, Arc<Mutex<Vec<HeaderMap>>>) {
    let seen: Arc<Mutex<Vec<HeaderMap>>> = Arc::default();
    let record = seen.clone();
    let app = Router::new()
        .route("/v1/stream", get(stand_in_stream))
        .fallback(any(move |uri: axum::http::Uri, headers: HeaderMap| {
            let record = record.clone();
            async move {
                if uri.path().ends_with("/slow") {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                record.lock().unwrap().push(headers);
                axum::Json(json!({"path": uri.path()}))
            }
        }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), seen)
}

struct Edge {
    _data: tempfile::TempDir,
    _user: Server,
    gateway: Api,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
    token: String,
}

async fn edge(extra: &[&str]) -> Edge {
    let data = tempfile::tempdir().unwrap();
    let user = Api::start(&["--data-dir", data.path().to_str().unwrap()]);
    let person = user.person("Ada").await;
    let (other, seen) = stand_in().await;
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let mut args = vec![
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--user",
        &user.server.base,
        "--chat",
        &other,
        "--payment",
        &nobody,
        "--user-chat",
        &other,
        "--upstream-timeout",
        "1s",
        "--max-body-bytes",
        "1000",
    ];
    args.extend(extra);
    let gateway = Api::at(spawn_serving(&args));
    Edge {
        _data: data,
        _user: user.server,
        gateway,
        seen,
        token: person.token,
    }
}

async fn send(request: reqwest::RequestBuilder) -> reqwest::Response {
    request.send().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_routes_checks_and_passes_on() {
    let edge = edge(&[]).await;
    let api = &edge.gateway;
    let url = |path: &str| format!("{}{path}", api.server.base);

    // Each path goes to its owner; /internal and unknown paths nowhere.
    let (status, answer) = api.call(Method::GET, "/v1/rooms", &edge.token, None).await;
    assert_eq!((status, answer["path"].as_str()), (200, Some("/v1/rooms")));
    let (status, me) = api
        .call(Method::GET, "/v1/users/me", &edge.token, None)
        .await;
    assert_eq!(
        (status, me["nickname"].as_str()),
        (200, Some("Ada")),
        "the real user service"
    );
    assert_eq!(
        api.call(
            Method::POST,
            "/internal/v1/rooms/x/messages",
            &edge.token,
            None
        )
        .await
        .0,
        404
    );
    assert_eq!(api.call(Method::GET, "/v1/nothing", "", None).await.0, 404);

    // A bad token stops at the edge.
    let before = edge.seen.lock().unwrap().len();
    let (status, problem) = api
        .call(Method::GET, "/v1/rooms", "not.a.token", None)
        .await;
    assert_eq!(status, 401, "{problem}");
    assert_eq!(
        edge.seen.lock().unwrap().len(),
        before,
        "nothing reached the service"
    );

    // A request id and a trace context reach the service and the id comes back.
    let response = send(api.client.get(url("/v1/rooms")).bearer_auth(&edge.token)).await;
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let seen = edge.seen.lock().unwrap().last().unwrap().clone();
    assert_eq!(seen["x-request-id"].to_str().unwrap(), id);
    let generated = seen["traceparent"].to_str().unwrap().to_owned();
    assert!(
        generated.starts_with("00-") && generated.len() == 55,
        "{generated}"
    );
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let response = send(
        api.client
            .get(url("/v1/rooms"))
            .bearer_auth(&edge.token)
            .header("x-request-id", "req-42")
            .header("traceparent", trace),
    )
    .await;
    assert_eq!(response.headers()["x-request-id"], "req-42");
    // The service's parent is the gateway's span, in the caller's trace.
    let seen = edge.seen.lock().unwrap().last().unwrap().clone();
    let passed = seen["traceparent"].to_str().unwrap();
    assert_eq!(seen["x-request-id"].to_str().unwrap(), "req-42");
    assert_eq!(passed.len(), trace.len(), "{passed}");
    assert_eq!(passed[..36], trace[..36], "the trace id is kept: {passed}");
    assert_ne!(passed[36..52], trace[36..52], "a new parent span: {passed}");

    // Too large a body: 413; a slow service: 504; a service down: 503 with Retry-After.
    let big = "x".repeat(2000);
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/rooms",
            &edge.token,
            Some(json!({"name": big})),
        )
        .await;
    assert_eq!(status, 413);
    let (status, problem) = api
        .call(Method::GET, "/v1/rooms/slow", &edge.token, None)
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (504, Some("urn:msa:problem:upstream-timeout"))
    );
    let response = send(api.client.get(url("/v1/wallet")).bearer_auth(&edge.token)).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );

    // CORS: a browser's preflight is answered.
    let response = send(
        api.client
            .request(Method::OPTIONS, url("/v1/rooms"))
            .header("origin", "https://app.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            ),
    )
    .await;
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(response.headers()["access-control-allow-origin"], "*");

    // Health, readiness (the payment service is down), the docs.
    assert_eq!(send(api.client.get(url("/healthz"))).await.status(), 200);
    let ready = send(api.client.get(url("/readyz"))).await;
    assert_eq!(ready.status(), 503);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["services"]["payment"], "unavailable");
    let docs = send(api.client.get(url("/docs/"))).await;
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_the_rate_limit_the_gateway_answers_429_with_retry_after() {
    let edge = edge(&["--rate-limit-per-address", "1"]).await;
    let api = &edge.gateway;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let response = send(
            api.client
                .get(format!("{}/v1/rooms", api.server.base))
                .bearer_auth(&edge.token),
        )
        .await;
        if response.status() == 429 {
            retry_after = response.headers().get("retry-after").cloned();
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
        }
        statuses.push(response.status().as_u16());
    }
    assert!(
        statuses.contains(&200) && statuses.contains(&429),
        "{statuses:?}"
    );
    assert!(retry_after.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_carries_the_stream_websocket_both_ways() {
    let edge = edge(&[]).await;
    let ws_url = format!(
        "{}/v1/stream",
        edge.gateway.server.base.replacen("http", "ws", 1)
    );

    // A refusal of the service comes back as its problem document.
    let refused = tokio_tungstenite::connect_async(ws_url.as_str()).await;
    match refused {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401);
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
            let body: Value = serde_json::from_slice(response.body().as_ref().unwrap()).unwrap();
            assert_eq!(body["detail"], "no token");
        }
        other => panic!("expected the service's 401, got {other:?}"),
    }

    // Open: the request id reached the service, messages go both ways, and the connection
    // outlives the upstream time-out (1 s here).
    let mut request = ws_url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", edge.token).parse().unwrap(),
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(next_text(&mut socket).await, format!("id:{id}"));
    for text in ["one", "two"] {
        socket
            .send(tungstenite::Message::Text(text.into()))
            .await
            .unwrap();
    }
    let mut heard = Vec::new();
    while heard.len() < 3 {
        heard.push(next_text(&mut socket).await);
    }
    assert_eq!(heard, ["echo:one", "echo:two", "late"]);
    socket.close(None).await.unwrap();
}

async fn next_text<S>(socket: &mut S) -> String
where
    S: futures::Stream<Item = Result<tungstenite::Message, tungstenite::Error>> + Unpin,
{
    let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("a frame within 5 s")
        .expect("the stream is open")
        .expect("a frame");
    message.into_text().unwrap().as_str().to_owned()
}
