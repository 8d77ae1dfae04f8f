//! The envelope: what travels with every event besides its payload.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The id of one aggregate's stream: `<aggregate kind>-<aggregate id>` (`chat.room-0192…`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamId(String);

impl StreamId {
    pub fn new(kind: &str, id: impl fmt::Display) -> Self {
        Self(format!("{kind}-{id}"))
    }

    /// A stream id read back from storage.
    pub fn from_stored(raw: impl Into<String>) -> Self {
        Self(raw.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The aggregate kind (`chat.room`): everything before the first `-` (kinds have none).
    pub fn category(&self) -> &str {
        self.0
            .split_once('-')
            .map_or(self.0.as_str(), |(kind, _)| kind)
    }

    /// The aggregate id: everything after the first `-`.
    pub fn id(&self) -> &str {
        self.0.split_once('-').map_or("", |(_, id)| id)
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where an event sits in a store's global log.
///
/// PostgreSQL orders its log by the writing transaction's id, then by the row's sequence number, so
/// that a reader never passes a transaction that has not committed yet (see `msa-postgres`). SQLite
/// has a single writer, so `commit` is always 0 there and `position` alone orders the log.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct LogPosition {
    pub commit: i64,
    pub position: i64,
}

impl LogPosition {
    pub const START: LogPosition = LogPosition {
        commit: 0,
        position: 0,
    };
}

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.commit, self.position)
    }
}

/// Who caused an event and in which conversation: copied onto every event a command produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventMetadata {
    /// The id shared by everything one user request set off.
    pub correlation_id: Uuid,
    /// The event or request that directly caused this one.
    pub causation_id: Option<Uuid>,
    /// The user (or `system:<component>`) on whose behalf the command ran.
    pub actor: Option<String>,
    /// W3C trace context of the request, so a trace spans the bus.
    pub traceparent: Option<String>,
}

impl EventMetadata {
    /// Metadata for work that starts here, with a fresh correlation id.
    pub fn new_conversation(actor: Option<String>) -> Self {
        Self {
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            actor,
            traceparent: None,
        }
    }

    /// Metadata for a command run now: the conversation this task runs in (the request's, or
    /// the event's being handled; see [`Conversation`](crate::Conversation)), else a new one.
    pub fn current(actor: Option<String>) -> Self {
        match crate::Conversation::current() {
            Some(conversation) => Self {
                correlation_id: conversation.correlation_id,
                causation_id: conversation.causation_id,
                actor,
                traceparent: conversation.traceparent,
            },
            None => Self::new_conversation(actor),
        }
    }
}

/// An event ready to be appended: its stream and version are given by the append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: Value,
    pub occurred_at: DateTime<Utc>,
    pub metadata: EventMetadata,
}

impl NewEvent {
    /// The event as the store recorded it, at `version` of `stream_id` and `position` in the log.
    pub fn recorded(
        self,
        stream_id: StreamId,
        version: u64,
        position: LogPosition,
    ) -> RecordedEvent {
        RecordedEvent {
            position,
            stream_id,
            version,
            event_id: self.event_id,
            event_type: self.event_type,
            schema_version: self.schema_version,
            payload: self.payload,
            occurred_at: self.occurred_at,
            metadata: self.metadata,
        }
    }
}

/// An event as stored: the full envelope plus its place in the global log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub position: LogPosition,
    pub stream_id: StreamId,
    pub version: u64,
    pub event_id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    pub payload: Value,
    pub occurred_at: DateTime<Utc>,
    pub metadata: EventMetadata,
}
