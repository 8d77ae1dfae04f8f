//! The frames of `GET /v1/stream` as types: the server sends exactly these, and the AsyncAPI
//! document (`/asyncapi.json`, [`asyncapi`]) is made from their schemas and [`RoomEvent`]'s, so
//! the document and the wire cannot drift.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::RoomEvent;

/// Close code: the client read too slowly for its buffer; reconnect with `?since=<last cursor>`.
pub const TOO_SLOW: u16 = 4000;
/// Close code: no valid token (in the `Authorization` header or a first `auth` frame within 5 s).
pub const UNAUTHORIZED: u16 = 4001;
/// Close code: the user has too many streams open.
pub use crate::adapters::live_limits::TOO_MANY_SOCKETS;
/// Close code: the token was revoked (the user's sessions were revoked, or the account closed):
/// log in again.
pub const REVOKED: u16 = 4401;

/// Every close code the server sends, with what it means (the document lists them).
pub const CLOSE_CODES: &[(u16, &str)] = &[
    (1001, "the server is shutting down, or the client sent nothing (not even a pong) for 60 s: reconnect with `?since=<last cursor>`"),
    (1013, "history is behind (rare): try again later with the same cursor"),
    (TOO_SLOW, "too slow: the client did not read its frames fast enough; reconnect with `?since=<last cursor>`"),
    (UNAUTHORIZED, "unauthorized: no valid token in the `Authorization` header, and no `auth` frame with one within 5 s"),
    (TOO_MANY_SOCKETS, "too many streams open for this user (after a first-frame `auth`; with the header the upgrade is refused with 429)"),
    (REVOKED, "revoked: the token's sessions were revoked or the account closed; log in again"),
];

/// A room event as it goes out: the event's `type` and `data` (its fields but `seq`, which is the
/// frame's), the room, and the cursor to resume after it.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventFrame {
    pub room_id: Uuid,
    /// The room's sequence number of the event (orders a room's events).
    pub seq: u64,
    /// The event's name (`MessagePosted`, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Opaque: resume after this frame with `GET /v1/stream?since=<cursor>`.
    pub cursor: String,
    pub occurred_at: DateTime<Utc>,
    /// The event's fields but `seq`. A message deleted since, sent again while catching up, has
    /// an empty `body` and `redacted: true`.
    #[schema(value_type = Object)]
    pub data: Map<String, Value>,
}

/// The field a catch-up frame of a deleted message carries in its `data`.
pub const REDACTED: &str = "redacted";

impl EventFrame {
    pub fn new(
        room_id: Uuid,
        cursor: String,
        occurred_at: DateTime<Utc>,
        event: &RoomEvent,
    ) -> EventFrame {
        let (kind, data) = match serde_json::to_value(event) {
            Ok(Value::Object(mut tagged)) => (
                match tagged.remove("type") {
                    Some(Value::String(kind)) => kind,
                    _ => String::new(),
                },
                match tagged.remove("data") {
                    Some(Value::Object(mut data)) => {
                        data.remove("seq");
                        data
                    }
                    _ => Map::new(),
                },
            ),
            _ => (String::new(), Map::new()),
        };
        EventFrame {
            room_id,
            seq: event.seq(),
            kind,
            cursor,
            occurred_at,
            data,
        }
    }

    /// The frame of a message deleted since: no body, marked redacted.
    pub fn redacted(mut self) -> EventFrame {
        self.data.insert("body".into(), json!(""));
        self.data.insert(REDACTED.into(), json!(true));
        self
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The server's other frames.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// Sent once the stream is set up, before catch-up: room events follow, from `cursor` on.
    Ready { cursor: String },
    /// A member of one of the client's rooms is typing (ephemeral, never stored).
    Typing { room_id: Uuid, user_id: Uuid },
}

impl ServerFrame {
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a client may send. Anything else is ignored.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// The first frame, when the upgrade carried no `Authorization` header (browsers cannot set
    /// it): within 5 s, or the stream closes with 4001.
    Auth { token: String },
    /// "I am typing in this room": passed on to the room's other members, at most once per room
    /// every 2 s.
    Typing { room_id: Uuid },
}

impl ClientFrame {
    /// The frame in `text`, if it is one the server knows.
    pub fn parse(text: &str) -> Option<ClientFrame> {
        serde_json::from_str(text).ok()
    }
}

/// The part of the AsyncAPI document about `/v1/stream`: its channel, what the server sends
/// and receives there, every frame as a message (one per [`RoomEvent`] variant, per
/// [`ServerFrame`] and per [`ClientFrame`]), and the close codes.
pub fn asyncapi() -> Value {
    use msa_http::asyncapi::{reference, schema_of, tagged_variants, without_field};
    let mut part =
        json!({"channels": {}, "operations": {}, "components": {"messages": {}, "schemas": {}}});
    let envelope = schema_of::<EventFrame>(&mut part);
    let events = schema_of::<RoomEvent>(&mut part);
    let server = schema_of::<ServerFrame>(&mut part);
    let client = schema_of::<ClientFrame>(&mut part);
    let mut channel_messages = Map::new();
    let (mut sent, mut received) = (Vec::new(), Vec::new());
    let mut add = |key: String, title: String, summary: Value, payload: Value, outgoing: bool| {
        let id = format!("stream.{key}");
        part["components"]["messages"][&id] = json!({
            "name": key,
            "title": title,
            "summary": summary,
            "contentType": "application/json",
            "payload": payload,
        });
        channel_messages.insert(
            key.clone(),
            reference(&format!("#/components/messages/{id}")),
        );
        let in_channel = reference(&format!("#/channels/stream/messages/{key}"));
        if outgoing {
            sent.push(in_channel)
        } else {
            received.push(in_channel)
        }
    };
    for (kind, variant) in tagged_variants(&events) {
        let mut data = without_field(variant["properties"]["data"].clone(), "seq");
        if data["properties"].get("body").is_some() {
            data["properties"][REDACTED] = json!({
                "type": "boolean",
                "description": "Present (true) on a catch-up frame of a message deleted since; its body is then empty.",
            });
        }
        let mut payload = envelope.clone();
        payload["properties"]["type"] = json!({"type": "string", "const": kind});
        payload["properties"]["data"] = data;
        let summary = variant
            .get("description")
            .cloned()
            .unwrap_or(json!(format!("The room event {kind}.")));
        add(kind.clone(), kind, summary, payload, true);
    }
    for (kind, variant) in tagged_variants(&server) {
        let summary = variant
            .get("description")
            .cloned()
            .unwrap_or(json!(format!("The {kind} frame.")));
        add(kind.clone(), kind, summary, variant, true);
    }
    for (kind, variant) in tagged_variants(&client) {
        let summary = variant
            .get("description")
            .cloned()
            .unwrap_or(json!(format!("The {kind} frame.")));
        add(
            format!("client.{kind}"),
            format!("client {kind}"),
            summary,
            variant,
            false,
        );
    }
    let close_codes: Vec<String> = CLOSE_CODES
        .iter()
        .map(|(code, meaning)| format!("- `{code}`: {meaning}"))
        .collect();
    part["channels"]["stream"] = json!({
        "address": "/v1/stream",
        "title": "The chat stream (WebSocket)",
        "description": format!(
            "One WebSocket per client (`GET /v1/stream`, JSON text frames) carrying the events of \
             all the client's rooms. Authenticate with `Authorization: Bearer <access token>` on \
             the upgrade or, from a browser, with a first `auth` frame within 5 s. The server \
             sends `ready` (with the cursor the stream starts from), then each room event as a \
             frame `{{room_id, seq, type, cursor, occurred_at, data}}`, and `typing` notices; \
             it pings every 20 s.\n\n\
             Resuming: `?since=<cursor>` (a frame's `cursor`) first sends what happened after \
             that frame, then live events, with no gap and no duplicate. Without `since` the \
             stream starts at the end of the log. A cursor this stream never handed out, or one \
             after the end of the log, is refused before the upgrade with 400 \
             (problem+json). A catch-up from an old cursor admits only rooms the user is in now, \
             and sends messages deleted since with an empty body and `redacted: true`.\n\n\
             Limits: a client's frame is at most 16 KiB; sockets per address and per user are \
             bounded (429 before the upgrade).\n\nClose codes:\n{}",
            close_codes.join("\n")
        ),
        "messages": channel_messages,
        "bindings": {"ws": {
            "method": "GET",
            "query": {"type": "object", "properties": {"since": {
                "type": "string",
                "description": "Resume after this cursor (a frame's `cursor`).",
            }}},
            "headers": {"type": "object", "properties": {"Authorization": {
                "type": "string",
                "description": "`Bearer <access token>`; or send an `auth` frame first.",
            }}},
            "bindingVersion": "0.1.0",
        }},
    });
    part["operations"]["sendStreamFrames"] = json!({
        "action": "send",
        "channel": reference("#/channels/stream"),
        "summary": "Room events, `ready` and `typing` frames to a client.",
        "messages": sent,
    });
    part["operations"]["receiveClientFrames"] = json!({
        "action": "receive",
        "channel": reference("#/channels/stream"),
        "summary": "What a client sends: `auth` (first, without the header) and `typing`.",
        "messages": received,
    });
    part
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::domain::{Emoji, MessageBody, Role, RoomKind};

    /// One of each room event. A new variant shows in the document by itself (it is made from
    /// the enum's schema); `every_room_event_frame_matches_its_message` fails until it is here.
    fn one_of_each() -> Vec<RoomEvent> {
        let (a, b, m) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let body = MessageBody::parse("hello").unwrap();
        let emoji = Emoji::parse("👍").unwrap();
        vec![
            RoomEvent::RoomCreated {
                seq: 1,
                kind: RoomKind::Group,
                name: Some("g".into()),
                creator: a,
                members: BTreeMap::from([(a, Role::Owner)]),
            },
            RoomEvent::MemberInvited {
                seq: 2,
                user_id: b,
                by: a,
            },
            RoomEvent::MemberJoined { seq: 3, user_id: b },
            RoomEvent::InviteDeclined { seq: 4, user_id: b },
            RoomEvent::MemberLeft { seq: 5, user_id: b },
            RoomEvent::MemberKicked {
                seq: 6,
                user_id: b,
                by: a,
            },
            RoomEvent::MemberBanned {
                seq: 7,
                user_id: b,
                by: a,
            },
            RoomEvent::RoleChanged {
                seq: 8,
                user_id: b,
                role: Role::Admin,
                by: a,
            },
            RoomEvent::MemberUnbanned {
                seq: 9,
                user_id: b,
                by: a,
            },
            RoomEvent::DetailsChanged {
                seq: 10,
                name: Some("n".into()),
                topic: None,
                by: a,
            },
            RoomEvent::MessagePosted {
                seq: 11,
                message_id: m,
                sender_id: a,
                body: body.clone(),
                reply_to: Some(m),
            },
            RoomEvent::MessageEdited {
                seq: 12,
                message_id: m,
                body,
            },
            RoomEvent::MessageRedacted {
                seq: 13,
                message_id: m,
                by: a,
            },
            RoomEvent::ReactionAdded {
                seq: 14,
                message_id: m,
                user_id: b,
                emoji: emoji.clone(),
            },
            RoomEvent::ReactionRemoved {
                seq: 15,
                message_id: m,
                user_id: b,
                emoji,
            },
        ]
    }

    /// `frame` has exactly the schema's properties that it requires, and no others it does not
    /// know (one level into `data`).
    fn conforms(frame: &Value, schema: &Value) {
        let keys = |v: &Value| -> BTreeSet<String> {
            v.as_object()
                .map(|o| o.keys().cloned().collect())
                .unwrap_or_default()
        };
        let names = |v: &Value| -> BTreeSet<String> {
            v.as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        };
        for (value, schema) in [
            (frame, schema),
            (&frame["data"], &schema["properties"]["data"]),
        ] {
            if schema.is_null() || !value.is_object() {
                continue;
            }
            let (present, known) = (keys(value), keys(&schema["properties"]));
            assert!(
                present.is_subset(&known),
                "{value} has fields the document lacks: {:?}",
                present.difference(&known).collect::<Vec<_>>()
            );
            let required = names(&schema["required"]);
            assert!(
                required.is_subset(&present),
                "{value} lacks required {:?}",
                required.difference(&present).collect::<Vec<_>>()
            );
        }
        if let Some(kind) = schema["properties"]["type"]["const"].as_str() {
            assert_eq!(frame["type"], kind);
        }
    }

    fn message(document: &Value, key: &str) -> Value {
        let message = &document["components"]["messages"][format!("stream.{key}")];
        assert!(message.is_object(), "no message for the frame {key}");
        assert!(
            document["channels"]["stream"]["messages"][key].is_object(),
            "{key} not in the channel"
        );
        message["payload"].clone()
    }

    #[test]
    fn every_room_event_frame_matches_its_message() {
        let document = asyncapi();
        let events = one_of_each();
        let mut sent = BTreeSet::new();
        for event in &events {
            let frame = EventFrame::new(Uuid::now_v7(), "MDox".into(), Utc::now(), event);
            let value: Value = serde_json::from_str(&frame.to_text()).unwrap();
            assert!(value["data"].get("seq").is_none(), "seq is the frame's");
            conforms(&value, &message(&document, &frame.kind));
            if value["data"].get("body").is_some() {
                let redacted: Value = serde_json::from_str(&frame.redacted().to_text()).unwrap();
                conforms(
                    &redacted,
                    &message(&document, redacted["type"].as_str().unwrap()),
                );
            }
            sent.insert(value["type"].as_str().unwrap().to_owned());
        }
        let documented: BTreeSet<String> = msa_http::asyncapi::tagged_variants(
            &serde_json::to_value(<RoomEvent as utoipa::PartialSchema>::schema()).unwrap(),
        )
        .into_iter()
        .map(|(kind, _)| kind)
        .collect();
        assert_eq!(
            sent, documented,
            "one_of_each covers every RoomEvent variant"
        );
    }

    #[test]
    fn the_other_frames_are_documented() {
        let document = asyncapi();
        let ready = ServerFrame::Ready {
            cursor: "MDox".into(),
        };
        let typing = ServerFrame::Typing {
            room_id: Uuid::now_v7(),
            user_id: Uuid::now_v7(),
        };
        for frame in [ready, typing] {
            let value: Value = serde_json::from_str(&frame.to_text()).unwrap();
            conforms(&value, &message(&document, value["type"].as_str().unwrap()));
        }
        for (text, key) in [
            (r#"{"type":"auth","token":"t"}"#, "client.auth"),
            (
                json!({"type": "typing", "room_id": Uuid::now_v7()})
                    .to_string()
                    .as_str(),
                "client.typing",
            ),
        ] {
            assert!(ClientFrame::parse(text).is_some(), "{text}");
            conforms(
                &serde_json::from_str(text).unwrap(),
                &message(&document, key),
            );
        }
        assert!(ClientFrame::parse(r#"{"type":"typing","room_id":"not-an-id"}"#).is_none());
        assert_eq!(document["operations"]["sendStreamFrames"]["action"], "send");
    }

    /// Every close code `stream.rs` sends is in [`CLOSE_CODES`], so in the channel's description.
    #[test]
    fn every_close_code_is_documented() {
        let source = include_str!("stream.rs");
        let documented: BTreeMap<&str, u16> = [
            ("TOO_SLOW", TOO_SLOW),
            ("UNAUTHORIZED", UNAUTHORIZED),
            ("TOO_MANY_SOCKETS", TOO_MANY_SOCKETS),
            ("REVOKED", REVOKED),
        ]
        .into();
        let description = asyncapi()["channels"]["stream"]["description"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut found = 0;
        for sent in source.split("close(").skip(1) {
            let Some(code) = sent.split(',').nth(1) else {
                continue;
            };
            let code = code.trim();
            let number = match code.parse::<u16>() {
                Ok(number) => number,
                Err(_) => match documented.get(code) {
                    Some(number) => *number,
                    None => continue,
                },
            };
            found += 1;
            assert!(
                CLOSE_CODES.iter().any(|(c, _)| *c == number),
                "close code {code} is not documented"
            );
            assert!(description.contains(&format!("`{number}`")));
        }
        assert!(found >= 5, "found {found} close calls in stream.rs");
    }
}
