//! Changing a posted message: edit its body, redact it, react to it. Each names the post by its
//! id, found in the room's stream.

use msa_kernel::repository::decode;
use msa_kernel::{Repository, StoreError};
use uuid::Uuid;

use super::{metadata, ChatError, ChatService};
use crate::domain::{
    Earlier, Emoji, Message, MessageBody, MessageCommand, MessageId, Posted, Role, Room, RoomEvent,
};

impl ChatService {
    /// The post of `message_id` in `room_id`, from the room's stream: the event at the version
    /// the id names (ids name their room and seq: `MessageId`). A message from before ids did
    /// is placed by history (long applied), which also says what happened to it then, as
    /// [`Earlier`] facts for `reaction` (the caller's reaction a command is about).
    pub(super) async fn posted(
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
}
