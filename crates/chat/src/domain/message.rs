//! The `Message` aggregate: what changes about a message after it was posted (its body, whether
//! it is deleted, who reacted with what), on the message's own stream.
//!
//! The post itself is the room's event (`MessagePosted`, at the room's `seq`), so a send costs
//! one append to the room whatever the room's history. Changes are decided here, on the
//! command side: the post's facts (sender, seq) are read from the room's stream at the version
//! the message id names ([`super::MessageId`]), and the message's own stream holds the rest, so
//! no command is decided on a read model and a change right after a deletion is refused
//! however soon it comes. The stream is `chat.message-<room id>.<seq>`: its events are room
//! events (the same frames and types as always) that readers route by the room in the name.

use std::collections::BTreeMap;

use msa_kernel::{Aggregate, StreamId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Emoji, MessageBody, Role, RoomError, RoomEvent};

/// Different reactions one user may put on one message.
pub const MAX_REACTIONS_PER_USER: usize = 20;

/// The post a command is about, as the room's stream holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posted {
    pub message_id: Uuid,
    pub seq: u64,
    pub sender_id: Uuid,
    /// For a message posted before messages had their own streams: what happened to it before,
    /// on the room's stream (as history applied it, long settled). `None` for newer messages.
    pub earlier: Option<Earlier>,
}

/// A message's changes from before it had its own stream, for one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Earlier {
    pub redacted: bool,
    /// Whether the command's user had the command's reaction on the message.
    pub reacted: bool,
}

#[derive(Debug, Clone, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum MessageCommand {
    /// The sender gives the message a new body.
    Edit {
        editor: Uuid,
        posted: Posted,
        body: MessageBody,
    },
    /// The sender, or a moderator (the caller's role in the room), deletes the message's body.
    Redact {
        by: Uuid,
        role: Role,
        posted: Posted,
    },
    /// Adds or removes the user's `emoji` reaction: at most one per user and emoji.
    React {
        user_id: Uuid,
        posted: Posted,
        emoji: Emoji,
        add: bool,
    },
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub redacted: bool,
    /// Each user's reactions this stream changed: emoji → whether it is on the message now.
    pub reactions: BTreeMap<Uuid, BTreeMap<Emoji, bool>>,
}

impl Message {
    /// The stream of the message posted in `room_id` at `seq`.
    pub fn stream(room_id: Uuid, seq: u64) -> StreamId {
        StreamId::new(Self::KIND, format!("{room_id}.{seq}"))
    }

    fn is_gone(&self, posted: &Posted) -> bool {
        self.redacted || posted.earlier.is_some_and(|earlier| earlier.redacted)
    }

    fn has_reaction(&self, user_id: Uuid, emoji: &Emoji, posted: &Posted) -> bool {
        self.reactions
            .get(&user_id)
            .and_then(|mine| mine.get(emoji).copied())
            .unwrap_or_else(|| posted.earlier.is_some_and(|earlier| earlier.reacted))
    }

    fn reactions_of(&self, user_id: Uuid) -> usize {
        self.reactions
            .get(&user_id)
            .map_or(0, |mine| mine.values().filter(|on| **on).count())
    }
}

/// The room a chat stream's event belongs to: a room's own stream, or one of its messages'.
pub fn room_of(stream_id: &StreamId) -> Option<Uuid> {
    match stream_id.category() {
        super::Room::KIND => stream_id.id().parse().ok(),
        Message::KIND => stream_id.id().split_once('.')?.0.parse().ok(),
        _ => None,
    }
}

impl Aggregate for Message {
    const KIND: &'static str = "chat.message";

    type Command = MessageCommand;
    type Event = RoomEvent;
    type Error = RoomError;

    fn weight(&self) -> usize {
        1 + self.reactions.values().map(BTreeMap::len).sum::<usize>() / 16
    }

    fn apply(&mut self, event: &RoomEvent) {
        match event {
            RoomEvent::MessageRedacted { .. } => self.redacted = true,
            RoomEvent::ReactionAdded { user_id, emoji, .. } => {
                self.reactions
                    .entry(*user_id)
                    .or_default()
                    .insert(emoji.clone(), true);
            }
            RoomEvent::ReactionRemoved { user_id, emoji, .. } => {
                self.reactions
                    .entry(*user_id)
                    .or_default()
                    .insert(emoji.clone(), false);
            }
            _ => {}
        }
    }

    fn command_name(command: &Self::Command) -> &'static str {
        command.into()
    }

    fn decide(&self, command: &MessageCommand) -> Result<Vec<RoomEvent>, RoomError> {
        let event = match command {
            MessageCommand::Edit {
                editor,
                posted,
                body,
            } => {
                if self.is_gone(posted) {
                    return Err(RoomError::MessageGone);
                }
                if posted.sender_id != *editor {
                    return Err(RoomError::NotTheSender);
                }
                RoomEvent::MessageEdited {
                    seq: posted.seq,
                    message_id: posted.message_id,
                    body: body.clone(),
                }
            }
            MessageCommand::Redact { by, role, posted } => {
                if self.is_gone(posted) {
                    return Ok(vec![]);
                }
                if posted.sender_id != *by && *role < Role::Admin {
                    return Err(RoomError::Forbidden);
                }
                RoomEvent::MessageRedacted {
                    seq: posted.seq,
                    message_id: posted.message_id,
                    by: *by,
                }
            }
            MessageCommand::React {
                user_id,
                posted,
                emoji,
                add,
            } => {
                if self.is_gone(posted) {
                    return Err(RoomError::MessageGone);
                }
                let (seq, message_id, user_id, emoji) =
                    (posted.seq, posted.message_id, *user_id, emoji.clone());
                match (*add, self.has_reaction(user_id, &emoji, posted)) {
                    (true, true) | (false, false) => return Ok(vec![]),
                    (true, false) if self.reactions_of(user_id) >= MAX_REACTIONS_PER_USER => {
                        return Err(RoomError::TooManyReactions)
                    }
                    (true, false) => RoomEvent::ReactionAdded {
                        seq,
                        message_id,
                        user_id,
                        emoji,
                    },
                    (false, true) => RoomEvent::ReactionRemoved {
                        seq,
                        message_id,
                        user_id,
                        emoji,
                    },
                }
            }
        };
        Ok(vec![event])
    }
}
