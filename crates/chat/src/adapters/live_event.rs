//! A room event as the stream sends it, its frame, and the cursor a client resumes from.

use axum::extract::ws::Utf8Bytes;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use msa_kernel::repository::decode;
use msa_kernel::{LogPosition, RecordedEvent};
use uuid::Uuid;

use crate::adapters::live_frames::EventFrame;
use crate::domain::{room_of, RoomEvent};

/// A room event as it goes out.
#[derive(Debug, Clone)]
pub struct LiveEvent {
    pub position: LogPosition,
    pub room_id: Uuid,
    pub event: RoomEvent,
    pub occurred_at: chrono::DateTime<chrono::Utc>,
    /// The W3C trace context of the request that caused it, which its delivery links to.
    pub traceparent: Option<String>,
    /// Its frame, serialized by the first connection that sends it, for every other one.
    text: std::sync::OnceLock<Utf8Bytes>,
}

impl LiveEvent {
    /// `recorded` as it goes out, if it is a room's event.
    pub(crate) fn of(recorded: &RecordedEvent) -> Option<LiveEvent> {
        Some(LiveEvent {
            position: recorded.position,
            room_id: room_of(&recorded.stream_id)?,
            event: decode::<RoomEvent>(recorded).ok()?,
            occurred_at: recorded.occurred_at,
            traceparent: recorded.metadata.traceparent.clone(),
            text: std::sync::OnceLock::new(),
        })
    }

    /// The event's frame.
    pub(crate) fn frame(&self) -> EventFrame {
        EventFrame::new(
            self.room_id,
            encode_cursor(self.position),
            self.occurred_at,
            &self.event,
        )
    }

    /// The event's frame as sent.
    pub(crate) fn text(&self) -> Utf8Bytes {
        self.text
            .get_or_init(|| self.frame().to_text().into())
            .clone()
    }
}

/// An ephemeral notice (typing): never stored.
#[derive(Debug, Clone)]
pub struct Typing {
    pub room_id: Uuid,
    pub user_id: Uuid,
}

/// A cursor: a position in the chat log, opaque to clients.
pub fn encode_cursor(position: LogPosition) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{}", position.commit, position.position))
}

pub(crate) fn decode_cursor(cursor: &str) -> Option<LogPosition> {
    let text = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (commit, position) = text.split_once(':')?;
    Some(LogPosition {
        commit: commit.parse().ok()?,
        position: position.parse().ok()?,
    })
}
