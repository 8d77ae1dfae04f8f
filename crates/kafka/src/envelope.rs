//! The event envelope as Kafka headers: every field travels, so a consumer needs nothing else.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use msa_kernel::bus::BusError;
use msa_kernel::{EventMetadata, LogPosition, RecordedEvent, StreamId};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use uuid::Uuid;

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
