//! The event envelope as Kafka headers: every field travels, so a consumer needs nothing else.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use msa_kernel::bus::BusError;
use msa_kernel::{EventMetadata, LogPosition, RecordedEvent, StreamId};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use uuid::Uuid;

/// Every header [`headers_of`] writes: its name, whether every event has it, and what it holds
/// (`/asyncapi.json` describes the topics' messages with it).
pub const HEADERS: &[(&str, bool, &str)] = &[
    (
        "event_id",
        true,
        "The event's id (UUIDv7); consumers' inboxes deduplicate on it.",
    ),
    (
        "stream_id",
        true,
        "The aggregate's stream, `<kind>-<id>` (`chat.room-0192…`); also the record's key.",
    ),
    (
        "version",
        true,
        "The event's version in its stream (1, 2, …).",
    ),
    (
        "event_type",
        true,
        "`<context>.<Variant>` (`chat.MessagePosted`): names the payload's schema.",
    ),
    (
        "schema_version",
        true,
        "The payload's schema version (upcasters turn older ones into the current).",
    ),
    ("occurred_at", true, "RFC 3339 UTC."),
    (
        "correlation_id",
        true,
        "Shared by everything one user request set off.",
    ),
    (
        "causation_id",
        false,
        "The event or request that directly caused this one.",
    ),
    (
        "actor",
        false,
        "The user id, or `system:<component>`, on whose behalf the command ran.",
    ),
    (
        "traceparent",
        false,
        "W3C trace context of the request, so a trace spans the bus.",
    ),
    (
        "log_position",
        true,
        "`<commit>:<position>` in the context's event log.",
    ),
];

/// What a dead letter carries besides [`HEADERS`] (see `dead_letters.rs`).
pub const DEAD_LETTER_HEADERS: &[(&str, bool, &str)] = &[
    ("dlq_consumer", true, "The consumer that gave up."),
    ("dlq_error", true, "Its last error."),
    ("dlq_attempts", true, "How many times it tried."),
    (
        "dlq_source",
        true,
        "`<topic>/<partition>/<offset>` of the event it gave up on.",
    ),
    ("dlq_dead_at", true, "When it gave up (RFC 3339 UTC)."),
];

/// The headers of one event.
pub fn headers_of(event: &RecordedEvent) -> OwnedHeaders {
    let fields = [
        ("event_id", Some(event.event_id.to_string())),
        ("stream_id", Some(event.stream_id.to_string())),
        ("version", Some(event.version.to_string())),
        ("event_type", Some(event.event_type.clone())),
        ("schema_version", Some(event.schema_version.to_string())),
        ("occurred_at", Some(event.occurred_at.to_rfc3339())),
        (
            "correlation_id",
            Some(event.metadata.correlation_id.to_string()),
        ),
        (
            "causation_id",
            event.metadata.causation_id.map(|id| id.to_string()),
        ),
        ("actor", event.metadata.actor.clone()),
        ("traceparent", event.metadata.traceparent.clone()),
        ("log_position", Some(event.position.to_string())),
    ];
    fields
        .iter()
        .filter_map(|(key, value)| value.as_ref().map(|value| (*key, value)))
        .fold(OwnedHeaders::new(), |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value.as_str()),
            })
        })
}

/// Rebuilds the event a message carries.
pub fn event_from_message(message: &impl Message) -> Result<RecordedEvent, BusError> {
    let malformed = |reason: String| BusError::Malformed {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        reason,
    };
    let header = |name: &str| -> Option<String> {
        message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        })
    };
    let required = |name: &str| header(name).ok_or_else(|| malformed(format!("no {name} header")));
    fn parse<T: FromStr>(name: &str, value: String) -> Result<T, String>
    where
        T::Err: std::fmt::Display,
    {
        value.parse().map_err(|e| format!("{name}: {e}"))
    }
    let uuid =
        |name: &str| -> Result<Uuid, BusError> { parse(name, required(name)?).map_err(malformed) };
    let position = required("log_position")?;
    let (commit, offset) = position
        .split_once(':')
        .ok_or_else(|| malformed("log_position is not commit:position".into()))?;
    let payload = message
        .payload()
        .ok_or_else(|| malformed("no payload".into()))?;
    Ok(RecordedEvent {
        position: LogPosition {
            commit: parse("log_position", commit.to_owned()).map_err(malformed)?,
            position: parse("log_position", offset.to_owned()).map_err(malformed)?,
        },
        stream_id: StreamId::from_stored(required("stream_id")?),
        version: parse("version", required("version")?).map_err(malformed)?,
        event_id: uuid("event_id")?,
        event_type: required("event_type")?,
        schema_version: parse("schema_version", required("schema_version")?).map_err(malformed)?,
        payload: serde_json::from_slice(payload).map_err(|e| malformed(format!("payload: {e}")))?,
        occurred_at: DateTime::parse_from_rfc3339(&required("occurred_at")?)
            .map_err(|e| malformed(format!("occurred_at: {e}")))?
            .with_timezone(&Utc),
        metadata: EventMetadata {
            correlation_id: uuid("correlation_id")?,
            causation_id: header("causation_id")
                .map(|v| parse("causation_id", v))
                .transpose()
                .map_err(malformed)?,
            actor: header("actor"),
            traceparent: header("traceparent"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The documented headers are the ones written: all, and the required ones on every event.
    #[test]
    fn the_documented_headers_are_the_written_ones() {
        let event = msa_kernel::NewEvent {
            event_id: Uuid::now_v7(),
            event_type: "chat.MessagePosted".into(),
            schema_version: 1,
            payload: serde_json::json!({}),
            occurred_at: Utc::now(),
            metadata: EventMetadata::new_conversation(None),
        }
        .recorded(StreamId::new("chat.room", 1), 1, LogPosition::START);
        let minimal: Vec<String> = headers_of(&event)
            .iter()
            .map(|h| h.key.to_owned())
            .collect();
        let mut full = event.clone();
        full.metadata.causation_id = Some(Uuid::now_v7());
        full.metadata.actor = Some("a".into());
        full.metadata.traceparent = Some("t".into());
        let all: Vec<String> = headers_of(&full).iter().map(|h| h.key.to_owned()).collect();
        let documented: Vec<&str> = HEADERS.iter().map(|(name, _, _)| *name).collect();
        let required: Vec<&str> = HEADERS
            .iter()
            .filter(|h| h.1)
            .map(|(name, _, _)| *name)
            .collect();
        assert_eq!(all, documented);
        assert_eq!(minimal, required);
        let dead_letters = include_str!("dead_letters.rs");
        for (name, _, _) in DEAD_LETTER_HEADERS {
            assert!(dead_letters.contains(&format!("key: \"{name}\"")), "{name}");
        }
        assert_eq!(
            dead_letters.matches("key: \"dlq_").count(),
            DEAD_LETTER_HEADERS.len()
        );
    }
}
