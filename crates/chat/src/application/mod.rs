//! The chat context's use cases. They take the caller's user id (from the access token, or from
//! user-chat in-process) and domain values, so HTTP is only one way in.

pub mod ports;
pub mod sends;
pub mod views;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use msa_kernel::repository::decode;
use msa_kernel::repository::IdempotencyKey;
use msa_kernel::{CommandError, EventMetadata, EventStore, FieldError, Repository, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use self::ports::{MessageIndex, OpenInvitations, RoomHistory};
use self::views::{
    EarlierBody, Invitation, MessageSearch, MessageView, RoomCursor, RoomSummary, Searched, Window,
};
use crate::domain::{
    DirectPair, DirectPairCommand, Earlier, Emoji, Message, MessageBody, MessageCommand, MessageId,
    Posted, Role, Room, RoomCommand, RoomError, RoomEvent, RoomKind,
};

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

/// A room as its members see it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoomView {
    pub id: Uuid,
    pub kind: RoomKind,
    pub name: Option<String>,
    /// A group's topic (admins set it with the name).
    #[serde(default)]
    pub topic: Option<String>,
    pub members: Vec<MemberView>,
    /// Users invited and not yet joined.
    #[serde(default)]
    pub invited: Vec<Uuid>,
    pub last_seq: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MemberView {
    pub user_id: Uuid,
    pub role: Role,
}

impl RoomView {
    fn of(id: Uuid, room: &Room) -> Self {
        Self {
            id,
            kind: room.kind.unwrap_or(RoomKind::Group),
            name: room.name.clone(),
            topic: room.topic.clone(),
            members: room
                .members
                .iter()
                .map(|(user_id, role)| MemberView {
                    user_id: *user_id,
                    role: *role,
                })
                .collect(),
            invited: room.invited.iter().copied().collect(),
            last_seq: room.last_seq,
        }
    }
}

/// A page of my rooms, and where the next one starts (`None`: this was the last).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoomPage {
    pub items: Vec<RoomSummary>,
    pub next_cursor: Option<String>,
}

/// A posted message, as the sender gets it back (also on a retry with the same `txn_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PostedMessage {
    pub id: Uuid,
    pub room_id: Uuid,
    pub seq: u64,
    pub sender_id: Uuid,
    pub body: String,
    pub reply_to: Option<Uuid>,
    pub created_at: DateTime<Utc>,
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

    /// Creates a room. A direct room is unique per pair: asking again (or racing) answers the
    /// existing one, with `created` false.
    pub async fn create_room(
        &self,
        creator: Uuid,
        kind: RoomKind,
        name: Option<String>,
        members: Vec<Uuid>,
    ) -> Result<(RoomView, bool), ChatError> {
        let mut room_id = Uuid::now_v7();
        if kind == RoomKind::Direct {
            let others: Vec<_> = members.iter().filter(|m| **m != creator).collect();
            let [peer] = others.as_slice() else {
                return Err(RoomError::DirectNeedsOnePeer.into());
            };
            let pair = DirectPair::stream(creator, **peer);
            match self
                .pairs
                .execute(
                    &pair,
                    &DirectPairCommand::Assign { room_id },
                    &metadata(creator),
                )
                .await
            {
                Ok(_) => {}
                Err(CommandError::Domain(taken)) => {
                    room_id = taken.room_id;
                    // The room exists unless its creator failed right after taking the pair;
                    // then this request creates it with the pair's id.
                    if let Ok(room) = self.room(room_id).await {
                        return Ok((RoomView::of(room_id, &room), false));
                    }
                }
                Err(CommandError::Store(error)) => return Err(error.into()),
                Err(_) => return Err(ChatError::Busy),
            }
        }
        let command = RoomCommand::Create {
            kind,
            name,
            creator,
            members,
        };
        let executed = self
            .rooms
            .execute(
                &Repository::<Room>::stream_id(room_id),
                &command,
                &metadata(creator),
            )
            .await;
        match executed {
            Ok(executed) => Ok((RoomView::of(room_id, &executed.state), true)),
            // A racing request created the direct room with the pair's id first.
            Err(CommandError::Domain(RoomError::AlreadyExists)) => {
                Ok((RoomView::of(room_id, &self.room(room_id).await?), false))
            }
            Err(error) => Err(error.into()),
        }
    }

    pub async fn room_view(&self, caller: Uuid, room_id: Uuid) -> Result<RoomView, ChatError> {
        Ok(RoomView::of(
            room_id,
            &self.member_of(room_id, caller).await?,
        ))
    }

    /// Membership changes: invite, join, leave, kick, ban, set a role.
    pub async fn change_membership(
        &self,
        caller: Uuid,
        room_id: Uuid,
        command: RoomCommand,
    ) -> Result<(), ChatError> {
        self.room(room_id).await?;
        self.rooms
            .execute(
                &Repository::<Room>::stream_id(room_id),
                &command,
                &metadata(caller),
            )
            .await?;
        Ok(())
    }

    /// Posts a message. `txn_id` names the send: a retry with the same `txn_id` by the same sender
    /// returns the first answer and posts nothing (the store keeps the key with the event).
    /// Returns the message and whether this call posted it.
    pub async fn post(
        &self,
        sender_id: Uuid,
        room_id: Uuid,
        txn_id: &str,
        body: MessageBody,
        reply_to: Option<Uuid>,
    ) -> Result<(PostedMessage, bool), ChatError> {
        if let Some(original) = reply_to {
            // A reply names a message of the same room.
            match self.posted(room_id, original, None).await {
                Ok(_) => {}
                Err(ChatError::MessageNotFound) => {
                    return Err(ChatError::Invalid(vec![FieldError::new(
                        "reply_to",
                        "no such message in this room",
                    )]))
                }
                Err(other) => return Err(other),
            }
        }
        let fingerprint: String = Sha256::digest(
            format!(
                "{room_id}\n{}\n{}",
                body.as_str(),
                reply_to.map(|r| r.to_string()).unwrap_or_default()
            )
            .as_bytes(),
        )
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
        let key = IdempotencyKey {
            scope: sends::send_scope(sender_id),
            key: txn_id.to_owned(),
            fingerprint,
        };
        let command = RoomCommand::Post {
            room_id,
            sender_id,
            body: body.clone(),
            reply_to,
        };
        let created_at = Utc::now();
        let outcome = self
            .rooms
            .execute_idempotent(
                &Repository::<Room>::stream_id(room_id),
                &command,
                &metadata(sender_id),
                key,
                |state, events| {
                    // The id the room gave the post (it names the room and the seq).
                    let id = match events.first() {
                        Some(RoomEvent::MessagePosted { message_id, .. }) => *message_id,
                        _ => MessageId::of(room_id, state.last_seq),
                    };
                    serde_json::to_value(PostedMessage {
                        id,
                        room_id,
                        seq: state.last_seq,
                        sender_id,
                        body: body.as_str().to_owned(),
                        reply_to,
                        created_at,
                    })
                    .unwrap_or_default()
                },
            )
            .await
            .map_err(|error| match error {
                CommandError::Domain(RoomError::NotFound) => ChatError::Room(RoomError::NotFound),
                other => other.into(),
            })?;
        let message: PostedMessage =
            serde_json::from_value(outcome.result).map_err(StoreError::backend)?;
        Ok((message, !outcome.replayed))
    }

    /// A window of a room's history, for a member.
    pub async fn history(
        &self,
        caller: Uuid,
        room_id: Uuid,
        window: Window,
        limit: u32,
    ) -> Result<Vec<MessageView>, ChatError> {
        self.member_of(room_id, caller).await?;
        Ok(self.history.messages(room_id, window, limit).await?)
    }

    /// The post of `message_id` in `room_id`, from the room's stream: the event at the version
    /// the id names (ids name their room and seq: `MessageId`). A message from before ids did
    /// is placed by history (long applied), which also says what happened to it then, as
    /// [`Earlier`] facts for `reaction` (the caller's reaction a command is about).
    async fn posted(
        &self,
        room_id: Uuid,
        message_id: Uuid,
        reaction: Option<(Uuid, &Emoji)>,
    ) -> Result<Posted, ChatError> {
        let (seq, earlier) = match MessageId::seq_in(room_id, message_id) {
            Some(seq) => (seq, None),
            None => {
                let (seq, redacted) = self
                    .history
                    .message_place(room_id, message_id)
                    .await?
                    .ok_or(ChatError::MessageNotFound)?;
                let reacted = match reaction {
                    Some((user_id, emoji)) => {
                        self.history
                            .has_reaction(message_id, user_id, emoji.as_str())
                            .await?
                    }
                    None => false,
                };
                (seq, Some(Earlier { redacted, reacted }))
            }
        };
        let event = self
            .events
            .read_event(&Repository::<Room>::stream_id(room_id), seq)
            .await?
            .ok_or(ChatError::MessageNotFound)?;
        match decode::<RoomEvent>(&event).map_err(StoreError::from)? {
            RoomEvent::MessagePosted {
                message_id: id,
                sender_id,
                ..
            } if id == message_id => Ok(Posted {
                message_id,
                seq,
                sender_id,
                earlier,
            }),
            _ => Err(ChatError::MessageNotFound),
        }
    }

    async fn on_message(
        &self,
        caller: Uuid,
        room_id: Uuid,
        seq: u64,
        command: MessageCommand,
    ) -> Result<(), ChatError> {
        self.messages
            .execute(&Message::stream(room_id, seq), &command, &metadata(caller))
            .await?;
        Ok(())
    }

    /// Gives one's own message a new body.
    pub async fn edit(
        &self,
        caller: Uuid,
        room_id: Uuid,
        message_id: Uuid,
        body: MessageBody,
    ) -> Result<(), ChatError> {
        self.member_of(room_id, caller).await?;
        let posted = self.posted(room_id, message_id, None).await?;
        let command = MessageCommand::Edit {
            editor: caller,
            posted,
            body,
        };
        self.on_message(caller, room_id, posted.seq, command).await
    }

    /// Deletes a message's body (the sender, or a moderator).
    pub async fn redact(
        &self,
        caller: Uuid,
        room_id: Uuid,
        message_id: Uuid,
    ) -> Result<(), ChatError> {
        let room = self.member_of(room_id, caller).await?;
        let role = room.role_of(caller).unwrap_or(Role::Member);
        let posted = self.posted(room_id, message_id, None).await?;
        let command = MessageCommand::Redact {
            by: caller,
            role,
            posted,
        };
        self.on_message(caller, room_id, posted.seq, command).await
    }

    /// Adds (or removes) the caller's `emoji` reaction: at most one per user and emoji.
    pub async fn react(
        &self,
        caller: Uuid,
        room_id: Uuid,
        message_id: Uuid,
        emoji: Emoji,
        add: bool,
    ) -> Result<(), ChatError> {
        self.member_of(room_id, caller).await?;
        let posted = self
            .posted(room_id, message_id, Some((caller, &emoji)))
            .await?;
        let command = MessageCommand::React {
            user_id: caller,
            posted,
            emoji,
            add,
        };
        self.on_message(caller, room_id, posted.seq, command).await
    }

    /// A message's earlier bodies, oldest first.
    pub async fn edits(
        &self,
        caller: Uuid,
        room_id: Uuid,
        message_id: Uuid,
    ) -> Result<Vec<EarlierBody>, ChatError> {
        self.member_of(room_id, caller).await?;
        self.posted(room_id, message_id, None).await?;
        Ok(self.history.edits_of(message_id).await?)
    }

    /// Marks the room read up to `seq` (at most the room's last seq).
    pub async fn mark_read(&self, caller: Uuid, room_id: Uuid, seq: u64) -> Result<(), ChatError> {
        let room = self.member_of(room_id, caller).await?;
        let seq = seq.min(room.last_seq) as i64;
        Ok(self.history.mark_read(room_id, caller, seq).await?)
    }

    /// A page of the caller's rooms, most recently active first, after `after` (the
    /// `next_cursor` of the page before).
    pub async fn rooms_of(
        &self,
        caller: Uuid,
        after: Option<RoomCursor>,
        limit: u32,
    ) -> Result<RoomPage, ChatError> {
        let items = self.history.rooms_of(caller, after.as_ref(), limit).await?;
        let next_cursor = msa_kernel::page::next_cursor(&items, limit, |last| {
            RoomCursor::after(last).map(|cursor| cursor.to_string())
        });
        Ok(RoomPage { items, next_cursor })
    }

    /// Messages holding every word of `query`, in the rooms `caller` is a member of now (a
    /// former member's rooms are not searched), newest first; redacted messages are gone from
    /// the index and edited ones are found by their new body.
    pub async fn search(&self, caller: Uuid, query: &MessageSearch) -> Result<Searched, ChatError> {
        Ok(self.index.search(caller, query).await?)
    }

    /// How far each member has read the room (`(user id, seq)`); for members.
    pub async fn read_markers(
        &self,
        caller: Uuid,
        room_id: Uuid,
    ) -> Result<Vec<(String, i64)>, ChatError> {
        self.member_of(room_id, caller).await?;
        Ok(self.history.read_markers(room_id).await?)
    }

    /// The rooms the caller is invited to and has not answered, newest first.
    pub async fn invitations(&self, caller: Uuid) -> Result<Vec<Invitation>, ChatError> {
        Ok(self.invitations.invitations_of(caller).await?)
    }
}
