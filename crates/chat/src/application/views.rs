//! What the chat context's queries answer: messages, rooms, earlier bodies, search hits and
//! invitations as the read models keep them (`crate::application::ports` reads them).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::SearchText;

/// A message as history shows it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MessageView {
    pub id: String,
    pub room_id: String,
    pub seq: i64,
    pub sender_id: String,
    pub body: String,
    pub reply_to: Option<String>,
    pub created_at: String,
    pub edited_at: Option<String>,
    /// Deleted: the body is empty, the message keeps its place.
    pub redacted: bool,
    pub reactions: Vec<ReactionCount>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: i64,
}

/// Which part of a room's history to read.
#[derive(Debug, Clone, Copy)]
pub enum Window {
    /// The newest messages before `seq` (or the newest of all), newest first.
    Before(Option<i64>),
    /// The oldest messages after `seq`, oldest first.
    After(i64),
}

/// A room in the caller's room list.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoomSummary {
    pub id: String,
    pub kind: String,
    pub name: Option<String>,
    pub role: String,
    pub last_seq: i64,
    pub last_message: Option<MessageView>,
    /// Messages from others after my read marker (which my own messages move), not deleted.
    pub unread: i64,
    /// When the room was last active: its last message not deleted, or its creation.
    pub active_at: String,
}

/// Where a page of the room list ended: the last room's activity and id (the list's order), so
/// the next page starts after it even while rooms become active meanwhile. Opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomCursor {
    pub(crate) active_at: String,
    pub(crate) room_id: Uuid,
}

impl RoomCursor {
    pub fn after(room: &RoomSummary) -> Option<Self> {
        Some(Self {
            active_at: room.active_at.clone(),
            room_id: room.id.parse().ok()?,
        })
    }
}

impl std::fmt::Display for RoomCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use base64::Engine;
        let text = format!("{}|{}", self.active_at, self.room_id);
        f.write_str(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text))
    }
}

impl std::str::FromStr for RoomCursor {
    type Err = ();

    fn from_str(raw: &str) -> Result<Self, ()> {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(raw)
            .map_err(|_| ())?;
        let text = String::from_utf8(bytes).map_err(|_| ())?;
        let (active_at, room_id) = text.split_once('|').ok_or(())?;
        chrono::DateTime::parse_from_rfc3339(active_at).map_err(|_| ())?;
        Ok(Self {
            active_at: active_at.to_owned(),
            room_id: room_id.parse().map_err(|_| ())?,
        })
    }
}

/// An earlier body of an edited message.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EarlierBody {
    pub body: String,
    /// When it was replaced.
    pub replaced_at: String,
}

/// What to look for and where: every word of `text`, in the caller's rooms (one of them with
/// `room`), by `sender`, posted before / after an instant (both exclusive), older than `cursor`.
#[derive(Debug, Clone)]
pub struct MessageSearch {
    pub text: SearchText,
    pub room: Option<Uuid>,
    pub sender: Option<Uuid>,
    pub before: Option<DateTime<Utc>>,
    pub after: Option<DateTime<Utc>>,
    /// The previous page's `next_cursor`: only hits after it (older).
    pub cursor: Option<i64>,
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    pub id: String,
    pub room_id: String,
    pub seq: i64,
    pub sender_id: String,
    pub body: String,
    pub created_at: String,
}

/// A page of hits, newest first, and where the next page starts (`None`: this was the last).
#[derive(Debug, Clone)]
pub struct Found {
    pub hits: Vec<SearchHit>,
    pub next_cursor: Option<i64>,
}

/// A search's outcome.
#[derive(Debug, Clone)]
pub enum Searched {
    Found(Found),
    /// The index is being built again after an upgrade (`crate::adapters::search::rebuild_if_due`); try again soon.
    Rebuilding,
}

/// An open invitation, as the invitee sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Invitation {
    pub room_id: String,
    pub room_name: Option<String>,
    pub kind: String,
    pub invited_by: String,
    pub invited_at: String,
}
