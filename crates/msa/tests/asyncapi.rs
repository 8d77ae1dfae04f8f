//! `/asyncapi.json` (issue 27 item 12): the stream's frames and the topics' events, described next
//! to `/openapi.json` by every `msa serve` process and merged by the gateway. Every frame a real
//! stream delivers has its message in the document. (That every `RoomEvent` variant and every
//! other frame type has one, and matches it field by field, is `live_frames`' unit tests in chat.)

mod common;

use std::collections::BTreeSet;

use common::api::Api;
use common::live;
use common::microservices::Microservices;
use futures::SinkExt;
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const TOPICS: [&str; 6] = [
    "user.events",
    "user.events.dlq",
    "chat.events",
    "chat.events.dlq",
    "payment.events",
    "payment.events.dlq",
];

async fn document(base: &str) -> Value {
    let answer = reqwest::get(format!("{base}/asyncapi.json")).await.unwrap();
    assert_eq!(answer.status(), 200);
    let text = answer.text().await.unwrap();
    let document: Value = serde_json::from_str(&text).expect("the document is JSON");
    assert_eq!(document["asyncapi"], "3.0.0", "{document}");
    every_reference_resolves(&document, &document);
    for (id, message) in document["components"]["messages"].as_object().unwrap() {
        assert!(
            message["name"].is_string() && message["summary"].is_string(),
            "{id}: {message}"
        );
        assert!(message["payload"].is_object(), "{id}");
    }
    // A schema is an object (a variant without fields once left `null` here).
    for (id, schema) in document["components"]["schemas"].as_object().unwrap() {
        assert!(schema.is_object(), "{id}: {schema}");
    }
    for (id, operation) in document["operations"].as_object().unwrap() {
        assert!(
            ["send", "receive"].contains(&operation["action"].as_str().unwrap()),
            "{id}"
        );
    }
    document
}

/// Every `$ref` inside the document points at something in it.
fn every_reference_resolves(document: &Value, at: &Value) {
    match at {
        Value::Object(fields) => {
            if let Some(target) = fields.get("$ref").and_then(Value::as_str) {
                let pointer = target.strip_prefix('#').expect("a local reference");
                assert!(
                    document.pointer(pointer).is_some(),
                    "{target} resolves to nothing"
                );
            }
            fields
                .values()
                .for_each(|v| every_reference_resolves(document, v));
        }
        Value::Array(items) => items
            .iter()
            .for_each(|v| every_reference_resolves(document, v)),
        _ => {}
    }
}

fn channels(document: &Value) -> BTreeSet<String> {
    document["channels"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// The stream's channel names the frame's type among its messages (a client frame under
/// `client.<type>`), and the message's payload fixes that type.
fn documents_frame(document: &Value, frame: &Value, client: bool) {
    let kind = frame["type"].as_str().expect("every frame has a type");
    let key = if client {
        format!("client.{kind}")
    } else {
        kind.to_owned()
    };
    let reference = document["channels"]["stream"]["messages"][&key]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("the frame {kind} is not in the stream's channel: {frame}"));
    let message = document
        .pointer(reference.strip_prefix('#').unwrap())
        .unwrap();
    let fixed = &message["payload"]["properties"]["type"];
    assert!(
        fixed["const"] == kind || fixed["enum"][0] == kind,
        "{key}: {message}"
    );
    for field in frame.as_object().unwrap().keys() {
        assert!(
            message["payload"]["properties"].get(field).is_some(),
            "{kind}.{field} is not in the document"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_single_server_documents_every_frame_it_sends() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(&[
        "--data-dir",
        data.path().to_str().unwrap(),
        "--free-messages-per-day",
        "1000",
    ]);
    let document = document(&api.server.base).await;
    let mut expected: BTreeSet<String> = TOPICS.iter().map(|t| t.to_string()).collect();
    expected.insert("stream".into());
    assert_eq!(channels(&document), expected);
    assert_eq!(document["channels"]["stream"]["address"], "/v1/stream");
    let description = document["channels"]["stream"]["description"]
        .as_str()
        .unwrap();
    for code in ["4000", "4001", "4029", "4401", "since="] {
        assert!(description.contains(code), "{code} in {description}");
    }
    let headers = &document["components"]["schemas"]["chat.Envelope"]["properties"];
    for header in ["event_id", "event_type", "correlation_id", "traceparent"] {
        assert!(headers.get(header).is_some(), "{header}");
    }
    for (topic, event) in [
        ("user.events", "user.UserRegistered"),
        ("chat.events", "chat.MessagePosted"),
        ("chat.events", "chat.DirectRoomAssigned"),
        ("payment.events", "payment.PaymentRequested"),
    ] {
        assert!(
            document["channels"][topic]["messages"][event].is_object(),
            "{event} on {topic}"
        );
    }

    // A real stream: what it delivers is documented, frame by frame.
    let (ada, bob) = (api.person("Ada").await, api.person("Bob").await);
    let mut watcher = live::connect(&api, &bob, None, true).await;
    let mut typist = live::connect(&api, &ada, None, false).await;
    let (status, room) = api
        .post(
            &ada,
            "/v1/rooms",
            json!({"kind": "group", "name": "Tea", "members": [bob.id]}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let room_id = room["id"].as_str().unwrap().to_owned();
    let joins = format!("/v1/rooms/{room_id}/members");
    assert_eq!(api.post(&bob, &joins, json!(null)).await.0, 204);
    let (status, message) = api.send(&ada, &room_id, "t1", "Tea?").await;
    assert_eq!(status, 201, "{message}");
    let message_path = format!(
        "/v1/rooms/{room_id}/messages/{}",
        message["id"].as_str().unwrap()
    );
    let (status, _) = api
        .call(
            Method::PATCH,
            &message_path,
            &ada.token,
            Some(json!({"body": "Tea now?"})),
        )
        .await;
    assert!(status < 300, "edit: {status}");
    let (status, _) = api
        .call(
            Method::PUT,
            &format!("{message_path}/reactions/%F0%9F%91%8D"),
            &bob.token,
            None,
        )
        .await;
    assert!(status < 300, "react: {status}");
    let typing = json!({"type": "typing", "room_id": room_id});
    documents_frame(&document, &typing, true);
    documents_frame(
        &document,
        &json!({"type": "auth", "token": bob.token}),
        true,
    );
    typist
        .send(Message::text(typing.to_string()))
        .await
        .unwrap();
    let (status, _) = api
        .call(Method::DELETE, &message_path, &ada.token, None)
        .await;
    assert!(status < 300, "delete: {status}");

    let mut seen = BTreeSet::new();
    while let Some(frame) = live::next_frame(&mut watcher).await {
        documents_frame(&document, &frame, false);
        seen.insert(frame["type"].as_str().unwrap().to_owned());
    }
    for kind in [
        "MemberInvited",
        "MemberJoined",
        "MessagePosted",
        "MessageEdited",
        "ReactionAdded",
        "MessageRedacted",
        "typing",
    ] {
        assert!(seen.contains(kind), "{kind} was not delivered: {seen:?}");
    }

    // A catch-up from the start sends the deleted message redacted: documented too.
    let mut resumed = live::connect(&api, &bob, Some("MDow"), false).await;
    let mut redacted = false;
    while let Some(frame) = live::next_frame(&mut resumed).await {
        documents_frame(&document, &frame, false);
        redacted |= frame["data"]["redacted"] == true;
    }
    assert!(redacted, "the catch-up sent the deleted message redacted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_service_serves_its_part_and_the_gateway_merges_them() {
    let Some((deployment, gateway)) = Microservices::start(&[]).await else {
        return;
    };
    let user = document(&deployment.user).await;
    assert_eq!(
        channels(&user),
        BTreeSet::from(["user.events".into(), "user.events.dlq".into()])
    );
    let chat = document(&deployment.chat).await;
    assert!(channels(&chat).contains("stream") && channels(&chat).contains("chat.events"));
    let payment = document(&deployment.payment).await;
    assert!(channels(&payment).contains("payment.events"));
    let user_chat = document(&deployment.user_chat).await;
    assert!(
        channels(&user_chat).is_empty(),
        "user-chat records no events"
    );

    let merged = document(&gateway.base).await;
    let mut expected: BTreeSet<String> = TOPICS.iter().map(|t| t.to_string()).collect();
    expected.insert("stream".into());
    assert_eq!(channels(&merged), expected);
    for part in [&user, &chat, &payment] {
        for (name, _) in part["components"]["messages"].as_object().unwrap() {
            assert!(
                merged["components"]["messages"].get(name).is_some(),
                "{name}"
            );
        }
    }
}
