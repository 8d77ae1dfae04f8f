//! `/asyncapi.json`: the AsyncAPI 3.0 document of what a process sends besides HTTP answers. The
//! chat stream's frames (`msa_chat::adapters::live_frames::asyncapi`) where chat runs, and each
//! context's Kafka topics: `<context>.events` (every domain event, the envelope in headers) and
//! `<context>.events.dlq`. Payload schemas are the event enums' own (utoipa `ToSchema`); the
//! gateway merges the services' documents as it does their OpenAPI documents.

use msa_http::asyncapi::{self, headers_schema, merge, reference};
use msa_kernel::bus::{dead_letter_topic, events_topic};
use serde_json::{json, Value};

const DESCRIPTION: &str = "What msa sends besides HTTP answers: the chat stream's WebSocket frames \
    (`/v1/stream`), and each context's events on Kafka (`<context>.events`, keyed by stream id, \
    the envelope in headers, the payload as JSON; `<context>.events.dlq` holds what a consumer gave \
    up on). The single server runs the bus in-process: the topics exist only with \
    `--kafka-brokers`.";

/// The document of the contexts this process serves (by name), from their descriptors.
pub fn document(contexts: &[&str]) -> Value {
    let mut document = asyncapi::document(DESCRIPTION);
    for name in contexts {
        let Some(context) = crate::contexts::named(name) else {
            continue;
        };
        if *name == "chat" {
            merge(&mut document, &msa_chat::adapters::live_frames::asyncapi());
        }
        // user-chat keeps read models and calls the others: it records no events.
        if !context.records_events() {
            continue;
        }
        let events = context.events(&mut document);
        let part = topics(name, &events);
        merge(&mut document, &part);
    }
    document
}

/// The channels, operations and messages of one context's topics.
fn topics(context: &str, events: &[(String, Value)]) -> Value {
    let topic = events_topic(context);
    let dlq = dead_letter_topic(&topic);
    let mut part =
        json!({"channels": {}, "operations": {}, "components": {"messages": {}, "schemas": {}}});
    let envelope = format!("{context}.Envelope");
    let dead_envelope = format!("{context}.DeadLetterEnvelope");
    part["components"]["schemas"][&envelope] = headers_schema(msa_kafka::HEADERS);
    let mut dead = msa_kafka::HEADERS.to_vec();
    dead.extend_from_slice(msa_kafka::DEAD_LETTER_HEADERS);
    part["components"]["schemas"][&dead_envelope] = headers_schema(&dead);
    let personal = if context == "user" {
        " Personal data (email, nickname, bio, avatar URL, Kakao id) travels encrypted with the \
         user's own key (`pd1:…`), so erasing the user makes it unreadable everywhere."
    } else {
        ""
    };
    let mut messages = serde_json::Map::new();
    let mut payloads = Vec::new();
    for (event_type, payload) in events {
        let id = event_type.clone();
        let schema_id = format!("{event_type}.payload");
        part["components"]["schemas"][&schema_id] = payload.clone();
        payloads.push(reference(&format!("#/components/schemas/{schema_id}")));
        part["components"]["messages"][&id] = json!({
            "name": event_type,
            "title": event_type,
            "summary": payload.get("description").cloned().unwrap_or(json!(format!("The event {event_type}."))),
            "contentType": "application/json",
            "headers": reference(&format!("#/components/schemas/{envelope}")),
            "payload": reference(&format!("#/components/schemas/{schema_id}")),
            "bindings": {"kafka": {
                "key": {"type": "string", "description": "The stream id (`<kind>-<id>`): a stream's events stay in order on one partition."},
                "bindingVersion": "0.5.0",
            }},
        });
        messages.insert(
            id.clone(),
            reference(&format!("#/components/messages/{id}")),
        );
    }
    let dead_id = format!("{context}.DeadLetter");
    part["components"]["messages"][&dead_id] = json!({
        "name": dead_id,
        "title": format!("A dead letter of {topic}"),
        "summary": "An event a consumer gave up on after its retries, as it was, with why in the `dlq_*` headers (`msa dlq list|replay`).",
        "contentType": "application/json",
        "headers": reference(&format!("#/components/schemas/{dead_envelope}")),
        "payload": {"oneOf": payloads},
    });
    let in_channel: Vec<Value> = messages
        .keys()
        .map(|id| reference(&format!("#/channels/{topic}/messages/{id}")))
        .collect();
    part["channels"][&topic] = json!({
        "address": topic,
        "title": format!("The {context} context's events"),
        "description": format!(
            "Every event of the {context} context, published by its outbox relay in log order \
             (at least once: consumers deduplicate on `event_id`). The `event_type` header names \
             the message.{personal}"
        ),
        "messages": messages,
        "bindings": {"kafka": {"topic": topic, "bindingVersion": "0.5.0"}},
    });
    part["channels"][&dlq] = json!({
        "address": dlq,
        "title": format!("Dead letters of {topic}"),
        "messages": {"DeadLetter": reference(&format!("#/components/messages/{dead_id}"))},
        "bindings": {"kafka": {"topic": dlq, "bindingVersion": "0.5.0"}},
    });
    let operation = |name: &str| name.replace(['.', '-'], "_");
    part["operations"][operation(&format!("publish_{topic}"))] = json!({
        "action": "send",
        "channel": reference(&format!("#/channels/{topic}")),
        "summary": format!("The {context} context's relay publishes its events."),
        "messages": in_channel,
    });
    part["operations"][operation(&format!("dead_letter_{topic}"))] = json!({
        "action": "send",
        "channel": reference(&format!("#/channels/{dlq}")),
        "summary": "A consumer puts an event it gave up on here.",
        "messages": [reference(&format!("#/channels/{dlq}/messages/DeadLetter"))],
    });
    part
}
