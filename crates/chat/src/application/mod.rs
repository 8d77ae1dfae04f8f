//! The chat context's use cases, a file each (rooms, membership, post, message changes,
//! reading). They take the caller's user id (from the access token, or from user-chat
//! in-process) and domain values, so HTTP is only one way in.

mod membership;
mod message_changes;
pub mod ports;
mod post;
mod reading;
mod rooms;
pub mod sends;
pub mod views;

use std::sync::Arc;

use msa_kernel::{CommandError, EventMetadata, EventStore, FieldError, Repository, StoreError};
use uuid::Uuid;

use self::ports::{MessageIndex, OpenInvitations, RoomHistory};
pub use self::post::PostedMessage;
pub use self::rooms::{MemberView, RoomPage, RoomView};
use crate::domain::{DirectPair, Message, Room, RoomError};

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Room(#[from] RoomError),
    #[error("no such message in this room")]
    MessageNotFound,
    #[error("txn_id {0} was already used for another message")]
    TxnIdReused(String),
    #[error("the room is busy; try again")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CommandError<RoomError>> for ChatError {
    fn from(error: CommandError<RoomError>) -> Self {
        match error {
            CommandError::Domain(refusal) => ChatError::Room(refusal),
            CommandError::Conflict(_) => ChatError::Busy,
            CommandError::IdempotencyKeyReused { key } => ChatError::TxnIdReused(key),
            CommandError::Store(error) => ChatError::Store(error),
        }
    }
}

pub struct ChatService {
    events: Arc<dyn EventStore>,
    rooms: Repository<Room>,
    messages: Repository<Message>,
    pairs: Repository<DirectPair>,
    history: Arc<dyn RoomHistory>,
    index: Arc<dyn MessageIndex>,
    invitations: Arc<dyn OpenInvitations>,
}

fn metadata(actor: Uuid) -> EventMetadata {
    EventMetadata::current(Some(actor.to_string()))
}

impl ChatService {
    /// The use cases over a context's event store and its read models (one store answering
    /// every query port).
    pub fn new<R>(events: Arc<dyn EventStore>, read_models: Arc<R>) -> Self
    where
        R: RoomHistory + MessageIndex + OpenInvitations + 'static,
    {
        Self {
            rooms: Repository::new(events.clone()),
            messages: Repository::new(events.clone()),
            pairs: Repository::new(events.clone()),
            events,
            history: read_models.clone(),
            index: read_models.clone(),
            invitations: read_models,
        }
    }

    async fn room(&self, room_id: Uuid) -> Result<Room, ChatError> {
        let room = self
            .rooms
            .load(&Repository::<Room>::stream_id(room_id))
            .await?
            .state;
        if !room.exists() {
            return Err(RoomError::NotFound.into());
        }
        Ok(room)
    }

    async fn member_of(&self, room_id: Uuid, user_id: Uuid) -> Result<Room, ChatError> {
        let room = self.room(room_id).await?;
        if !room.is_member(user_id) {
            return Err(RoomError::NotAMember.into());
        }
        Ok(room)
    }
}
