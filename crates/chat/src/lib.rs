//! The chat context (a core service): rooms, their members and roles, messages and history. It
//! knows users only by id (the access token's `sub`) and references no other context.
//!
//! - [`domain`]: the `Room` aggregate (membership, roles, bans, the per-room sequence) and the
//!   `DirectPair` claim that keeps one direct room per pair of users;
//! - [`application`]: the use cases ([`ChatService`]), callable in-process (user-chat) or over HTTP;
//! - [`adapters`]: HTTP (`/v1/rooms`) and the history projection.

pub mod adapters;
pub mod application;
pub mod domain;

pub use application::{ChatError, ChatService};

/// What other services may use of the chat context: its events, DTOs and the use cases they call
/// in-process (the architecture test holds application services to this module).
pub mod contract {
    pub use crate::adapters::export::{
        ChatRecords, ExportedInvitation, ExportedMessage, ExportedReaction, ExportedReadMarker,
        ExportedRoom, RecordPage,
    };
    pub use crate::adapters::history::{MessageView, RoomCursor, RoomSummary};
    pub use crate::adapters::http::{parse_new_message, parse_new_room, NewMessage, NewRoom};
    pub use crate::application::sends::{SendOutcome, SendRef, MAX_SENDS_ASKED};
    pub use crate::application::{PostedMessage, RoomPage, RoomView};
    pub use crate::domain::{MessageBody, Role, Room, RoomCommand, RoomEvent, RoomKind};
}

/// The chat context's own query-side tables (versions 3000 and up).
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}
