//! Seeing one message through every process: the spans every process of the gateway deployment
//! exports over OTLP (to a receiver in this test, on loopback), and `msa trail`, which finds the
//! same story in the stores, on both deployments.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::routing::post;
use common::api::{within, Api, Person};
use common::microservices::Microservices;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use reqwest::Method;
use serde_json::{json, Value};

/// A span as received, with the `service.name` of the process that sent it.
#[derive(Clone)]
struct Received {
    service: String,
    span: Span,
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a str> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| {
        match kv.value.as_ref()?.value.as_ref()? {
            AnyValue::StringValue(value) => Some(value.as_str()),
            _ => None,
        }
    })
}

impl Received {
    fn attribute(&self, key: &str) -> Option<&str> {
        attribute(&self.span.attributes, key)
    }

    fn in_trace(&self, trace: &[u8]) -> bool {
        self.span.trace_id == trace
    }

    fn linked_to(&self, trace: &[u8]) -> bool {
        self.span.links.iter().any(|link| link.trace_id == trace)
    }
}

/// An OTLP/HTTP receiver (protobuf), keeping every span it is sent.
async fn receiver() -> (String, Arc<Mutex<Vec<Received>>>) {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: Bytes| {
            let kept = kept.clone();
            async move {
                let request = ExportTraceServiceRequest::decode(body).expect("an OTLP request");
                let mut kept = kept.lock().unwrap();
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .as_ref()
                        .and_then(|r| attribute(&r.attributes, "service.name"))
                        .unwrap_or_default()
                        .to_owned();
                    for scope in resource.scope_spans {
                        kept.extend(scope.spans.into_iter().map(|span| Received {
                            service: service.clone(),
                            span,
                        }));
                    }
                }
                (
                    [("content-type", "application/x-protobuf")],
                    Vec::<u8>::new(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, spans)
}

/// Ada and Bob in a direct chat; Ada's id and the room's.
async fn direct_chat(api: &Api) -> (Person, String) {
    let ada = api.person("Ada").await;
    api.person("Bob").await;
    let (status, room) = api
        .post(&ada, "/v1/direct-chats", json!({"nickname": "bob"}))
        .await;
    assert_eq!(status, 201, "{room}");
    (ada, room["id"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_message_is_traced_through_every_process_of_the_gateway_deployment() {
    let (otlp, spans) = receiver().await;
    let flags = ["--otlp-endpoint", otlp.as_str()];
    let every = ["user", "chat", "payment", "user-chat", "gateway"].map(|p| (p, &flags[..]));
    let Some((_services, gateway)) = Microservices::start(&every).await else {
        return;
    };
    let api = Api::at(gateway);
    let (ada, room) = direct_chat(&api).await;

    // The client starts the trace: the gateway continues it, and so does everything after.
    let trace_hex = "5e1f00ddc0ffee00aa55aa55aa55aa55";
    let trace: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let request = api
        .client
        .post(format!("{}/v1/rooms/{room}/messages", api.server.base))
        .bearer_auth(&ada.token)
        .header("traceparent", format!("00-{trace_hex}-00f067aa0ba902b7-01"))
        .json(&json!({"txn_id": "traced-1", "body": "follow me"}));
    let (status, sent) = api.answer(request).await;
    assert_eq!(status, 201, "{sent}");

    let server_span = |service: &'static str| {
        let trace = trace.clone();
        move |span: &Received| {
            span.service == service
                && span.in_trace(&trace)
                && span.attribute("http.request.method").is_some()
        }
    };
    let published = |span: &Received| {
        span.attribute("messaging.operation.type") == Some("send")
            && span.attribute("messaging.system") == Some("kafka")
            && span.attribute("messaging.destination.name").is_some()
    };
    let processed = |span: &Received| {
        span.attribute("messaging.operation.type") == Some("process")
            && span.attribute("messaging.system") == Some("kafka")
            && span.attribute("messaging.destination.name").is_some()
            && span.attribute("messaging.consumer.group.name").is_some()
            && span.attribute("messaging.message.id").is_some()
    };
    let everything_seen = || {
        let spans = spans.lock().unwrap().clone();
        let trace = trace.clone();
        async move {
            let missing: Vec<&str> = [
                (
                    "the gateway's request",
                    spans.iter().any(server_span("msa-gateway")),
                ),
                (
                    "user-chat's request",
                    spans.iter().any(server_span("msa-user-chat")),
                ),
                (
                    "payment's spend",
                    spans.iter().any(server_span("msa-payment")),
                ),
                ("chat's post", spans.iter().any(server_span("msa-chat"))),
                (
                    "a relay publishing the message's events",
                    spans.iter().any(|s| published(s) && s.linked_to(&trace)),
                ),
                (
                    "a consumer handling one of them",
                    spans.iter().any(|s| processed(s) && s.linked_to(&trace)),
                ),
            ]
            .into_iter()
            .filter(|(_, seen)| !seen)
            .map(|(what, _)| what)
            .collect();
            if !missing.is_empty() {
                eprintln!("not exported yet: {missing:?}");
            }
            missing.is_empty()
        }
    };
    within(
        Duration::from_secs(60),
        "every process's spans of the send",
        everything_seen,
    )
    .await;

    // The services' request spans are children, not new roots: each names a parent.
    let spans = spans.lock().unwrap().clone();
    for service in ["msa-user-chat", "msa-payment", "msa-chat"] {
        assert!(
            spans
                .iter()
                .filter(|s| server_span(service)(s))
                .all(|s| !s.span.parent_span_id.is_empty()),
            "{service}'s request span has no parent"
        );
    }
}

/// `msa trail <id> --json <storage flags>`, one JSON object per step.
fn trail(id: &str, storage: &[&str]) -> Vec<Value> {
    let output = common::msa()
        .args(["trail", id, "--json"])
        .args(storage)
        .output()
        .unwrap();
    common::succeeded(&output);
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn place(steps: &[Value], what: impl Fn(&Value) -> bool) -> Option<usize> {
    steps.iter().position(what)
}

/// Sends one message and waits until its trail shows the spend, the post, (with Kafka) both
/// published, and the spend handled by user-chat; then checks their order. Returns the message's
/// id and its trail.
async fn a_sent_message_has_its_trail(
    api: &Api,
    storage: &[&str],
    relayed: bool,
) -> (String, Vec<Value>) {
    let (ada, room) = direct_chat(api).await;
    let (status, sent) = api.send(&ada, &room, "trail-1", "where did I go").await;
    assert_eq!(status, 201, "{sent}");
    let message_id = sent["id"].as_str().unwrap().to_owned();
    let event = |event_type: &'static str| {
        move |step: &Value| step["step"] == "event" && step["event_type"] == event_type
    };
    let complete = |steps: &[Value]| {
        let spend = steps.iter().find(|s| event("payment.MessageSpent")(s));
        let handled = spend.is_some_and(|spend| {
            steps.iter().any(|s| {
                s["step"] == "handled"
                    && s["consumer"] == "user-chat.open-spends"
                    && s["event_id"] == spend["event_id"]
            })
        });
        let published = steps.iter().filter(|s| s["step"] == "published").count();
        handled
            && steps.iter().any(|s| event("chat.MessagePosted")(s))
            && (!relayed || published >= 2)
    };
    within(Duration::from_secs(60), "the message's whole trail", || {
        let done = complete(&trail(&message_id, storage));
        async move { done }
    })
    .await;
    let steps = trail(&message_id, storage);
    let spend = place(&steps, event("payment.MessageSpent")).unwrap();
    let post = place(&steps, event("chat.MessagePosted")).unwrap();
    assert!(spend < post, "the spend comes before the post: {steps:#?}");
    let correlation = &steps[spend]["correlation_id"];
    assert_eq!(
        &steps[post]["correlation_id"], correlation,
        "one conversation"
    );
    let spend_id = &steps[spend]["event_id"];
    let handled = place(&steps, |s| {
        s["step"] == "handled" && s["event_id"] == *spend_id
    })
    .unwrap();
    assert!(spend < handled, "handled after it happened: {steps:#?}");
    if relayed {
        let published = place(&steps, |s| {
            s["step"] == "published" && s["event_id"] == *spend_id
        })
        .unwrap();
        assert!(spend < published && published < handled, "{steps:#?}");
        assert_eq!(steps[published]["topic"], "payment.events");
    }
    // The trail of the conversation is the same trail.
    assert_eq!(trail(correlation.as_str().unwrap(), storage), steps);
    (message_id, steps)
}

/// The conversation of a trail's first event.
fn correlation_of(steps: &[Value]) -> String {
    events_of(steps)[0]["correlation_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn events_of(steps: &[Value]) -> Vec<&Value> {
    steps.iter().filter(|s| s["step"] == "event").collect()
}

/// `GET path` (a trail): 401 without a token, 403 for a user, and for an admin (made so with
/// `msa users grant-admin` on `storage`) the same events as `msa trail` found. Returns the admin.
/// `encoded_separator`: what a trail id holding `%2f` gets (the gateway refuses such a path
/// itself; the single server refuses it as an id).
async fn the_trail_is_served_to_admins_only(
    api: &Api,
    path: &str,
    storage: &[&str],
    steps: &[Value],
    encoded_separator: u16,
) -> Person {
    let eve = api.person("Eve").await;
    assert_eq!(api.get(&eve, path).await.0, 403);
    assert_eq!(api.call(Method::GET, path, "", None).await.0, 401);
    let granted = common::msa()
        .args(["users", "grant-admin", "eve@example.com"])
        .args(storage)
        .output()
        .unwrap();
    common::succeeded(&granted);
    let body = json!({"email": "eve@example.com", "password": "correct horse battery"});
    let (_, tokens) = api
        .call(Method::POST, "/v1/auth/token", "", Some(body))
        .await;
    let admin = Person {
        id: eve.id,
        nickname: eve.nickname,
        token: tokens["access_token"].as_str().unwrap().to_owned(),
    };
    let (status, answer) = api.get(&admin, path).await;
    assert_eq!(status, 200, "{answer}");
    let items = answer["items"].as_array().unwrap();
    assert_eq!(events_of(items), events_of(steps));
    assert_eq!(answer["truncated"], false);
    let (status, problem) = api.get(&admin, "/v1/admin/trail/not-a-uuid").await;
    assert_eq!(
        (status, &problem["errors"][0]["field"]),
        (422, &json!("id"))
    );
    let (status, problem) = api.get(&admin, "/v1/admin/trail/..%2f..%2fetc").await;
    assert_eq!(status, encoded_separator, "{problem}");
    admin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn msa_trail_follows_a_message_on_the_single_server() {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().to_str().unwrap();
    let api = Api::start(&["--data-dir", data_dir]);
    let (message_id, steps) =
        a_sent_message_has_its_trail(&api, &["--data-dir", data_dir], false).await;

    // The same trail over HTTP, for admins only.
    let path = format!("/v1/admin/trail/{message_id}");
    the_trail_is_served_to_admins_only(&api, &path, &["--data-dir", data_dir], &steps, 422).await;
    let refused = common::msa()
        .args(["trail", &message_id, "--data-dir", data_dir])
        .args(["--context-database", "billing=postgres://x/y"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--context-database billing="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn msa_trail_follows_a_message_through_the_microservices() {
    let Some((services, gateway)) = Microservices::start(&[]).await else {
        return;
    };
    let api = Api::at(gateway);
    // Each context named with its database, as with a database per service.
    let chat = format!("chat={}", services.database);
    let storage = [
        "--database-url",
        services.database.as_str(),
        "--context-database",
        chat.as_str(),
    ];
    let (message_id, steps) = a_sent_message_has_its_trail(&api, &storage, true).await;

    // Through the gateway, user-chat composes it from every service's part, for admins only.
    let path = format!("/v1/admin/trail/{message_id}");
    let admin = the_trail_is_served_to_admins_only(&api, &path, &storage[..2], &steps, 400).await;
    let (_, answer) = api.get(&admin, &path).await;
    let published = answer["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|step| step["step"] == "published")
        .count();
    assert!(published >= 2, "the relays' steps too: {answer:#}");
    // The parts are the services' own: not through the gateway, and for admins only.
    let held = json!({"id": correlation_of(&steps), "naming": null});
    let through_gateway = api
        .client
        .post(format!(
            "{}/v1/admin/trail-parts/conversations",
            api.server.base
        ))
        .bearer_auth(&admin.token)
        .json(&held)
        .send()
        .await
        .unwrap();
    assert_eq!(through_gateway.status(), 404);
    let user = api.person("Mallory").await;
    let many: Vec<String> = (0..=20_000)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    for base in [&services.user, &services.chat, &services.payment] {
        let part = |name: &str, token: &str, body: &Value| {
            let mut request = api
                .client
                .post(format!("{base}/v1/admin/trail-parts/{name}"))
                .json(body);
            if !token.is_empty() {
                request = request.bearer_auth(token);
            }
            request.send()
        };
        let status = |response: reqwest::Response| response.status().as_u16();
        assert_eq!(status(part("conversations", "", &held).await.unwrap()), 401);
        assert_eq!(
            status(part("conversations", &user.token, &held).await.unwrap()),
            403
        );
        let answer = part("conversations", &admin.token, &held).await.unwrap();
        assert_eq!(answer.status(), 200, "{base}");
        let refused = [
            (
                "conversations",
                json!({"id": message_id, "naming": 1_000_000}),
            ),
            ("events", json!({"conversations": many[..21], "most": 10})),
            ("events", json!({"conversations": [], "most": 1_000_000})),
            ("handlings", json!({"event_ids": many})),
        ];
        for (name, body) in refused {
            assert_eq!(
                status(part(name, &admin.token, &body).await.unwrap()),
                422,
                "{base} {name}"
            );
        }
    }
}
