//! The `Room` aggregate: who is in a room, with which role, and the room's sequence.
//!
//! Every room event gets the next per-room sequence number `seq`, which clients use to order and
//! resume. The state holds membership and the last `seq`, never the messages, so posting costs the
//! same in a room of ten messages as in one of a hundred thousand (the repository decides on a
//! cached state; snapshots every 100 events bound a cold load).

use std::collections::{BTreeMap, BTreeSet};

use msa_kernel::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Emoji, MessageBody, MessageId, RoomName, Topic};

mod details;
mod membership;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    Group,
    Direct,
}

impl RoomKind {
    /// The name in JSON and in read models.
    pub fn as_str(self) -> &'static str {
        match self {
            RoomKind::Group => "group",
            RoomKind::Direct => "direct",
        }
    }
}

/// Roles, weakest first: a role may act on roles below it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    /// The name in JSON and in read models.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

/// The room's events: stored, published on `chat.events`, and sent on the stream (the frames' `type`
/// and `data`; the AsyncAPI document at `/asyncapi.json` is made from this schema).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", content = "data")]
pub enum RoomEvent {
    RoomCreated {
        seq: u64,
        kind: RoomKind,
        name: Option<String>,
        creator: Uuid,
        /// Everyone in the room at creation, the creator included, with their roles.
        members: BTreeMap<Uuid, Role>,
    },
    MemberInvited {
        seq: u64,
        user_id: Uuid,
        by: Uuid,
    },
    MemberJoined {
        seq: u64,
        user_id: Uuid,
    },
    /// An invitee said no: no longer invited.
    InviteDeclined {
        seq: u64,
        user_id: Uuid,
    },
    MemberLeft {
        seq: u64,
        user_id: Uuid,
    },
    MemberKicked {
        seq: u64,
        user_id: Uuid,
        by: Uuid,
    },
    MemberBanned {
        seq: u64,
        user_id: Uuid,
        by: Uuid,
    },
    RoleChanged {
        seq: u64,
        user_id: Uuid,
        role: Role,
        by: Uuid,
    },
    /// A banned user may be invited (and join) again.
    MemberUnbanned {
        seq: u64,
        user_id: Uuid,
        by: Uuid,
    },
    /// A group's name and topic, as an admin set them (`None`: no topic).
    DetailsChanged {
        seq: u64,
        name: Option<String>,
        topic: Option<String>,
        by: Uuid,
    },
    MessagePosted {
        seq: u64,
        message_id: Uuid,
        sender_id: Uuid,
        body: MessageBody,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<Uuid>,
    },
    /// A new body for a message; earlier bodies stay in the history of edits. This and the
    /// message's other changes below are stored on the message's own stream (`Message`) with the
    /// message's `seq` (changes stored before messages had streams carry the room's next `seq`).
    MessageEdited {
        seq: u64,
        message_id: Uuid,
        body: MessageBody,
    },
    /// The message's body is gone from history, search and live clients; the fact stays.
    MessageRedacted {
        seq: u64,
        message_id: Uuid,
        by: Uuid,
    },
    ReactionAdded {
        seq: u64,
        message_id: Uuid,
        user_id: Uuid,
        emoji: Emoji,
    },
    ReactionRemoved {
        seq: u64,
        message_id: Uuid,
        user_id: Uuid,
        emoji: Emoji,
    },
}

impl RoomEvent {
    pub fn seq(&self) -> u64 {
        match self {
            RoomEvent::RoomCreated { seq, .. }
            | RoomEvent::MemberInvited { seq, .. }
            | RoomEvent::MemberJoined { seq, .. }
            | RoomEvent::InviteDeclined { seq, .. }
            | RoomEvent::MemberLeft { seq, .. }
            | RoomEvent::MemberKicked { seq, .. }
            | RoomEvent::MemberBanned { seq, .. }
            | RoomEvent::RoleChanged { seq, .. }
            | RoomEvent::MemberUnbanned { seq, .. }
            | RoomEvent::DetailsChanged { seq, .. }
            | RoomEvent::MessagePosted { seq, .. }
            | RoomEvent::MessageEdited { seq, .. }
            | RoomEvent::MessageRedacted { seq, .. }
            | RoomEvent::ReactionAdded { seq, .. }
            | RoomEvent::ReactionRemoved { seq, .. } => *seq,
        }
    }

    /// The users whose membership this event changes, and how; empty for the room's other events.
    pub fn membership_changes(&self) -> Vec<(Uuid, MembershipChange)> {
        match self {
            RoomEvent::RoomCreated { members, .. } => members
                .keys()
                .map(|user| (*user, MembershipChange::Joined))
                .collect(),
            RoomEvent::MemberJoined { user_id, .. } => vec![(*user_id, MembershipChange::Joined)],
            RoomEvent::MemberInvited { user_id, .. } => vec![(*user_id, MembershipChange::Invited)],
            RoomEvent::InviteDeclined { user_id, .. } => {
                vec![(*user_id, MembershipChange::Declined)]
            }
            RoomEvent::MemberLeft { user_id, .. }
            | RoomEvent::MemberKicked { user_id, .. }
            | RoomEvent::MemberBanned { user_id, .. } => vec![(*user_id, MembershipChange::Left)],
            _ => Vec::new(),
        }
    }
}

/// What a room event means for one user's place in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipChange {
    /// Became a member (the room was made with them, or they joined).
    Joined,
    /// Was invited: told, not yet a member.
    Invited,
    /// Declined an invitation: told, never a member.
    Declined,
    /// Is no longer a member (left, kicked or banned).
    Left,
}

impl DomainEvent for RoomEvent {
    const CONTEXT: &'static str = "chat";
}

#[derive(Debug, Clone, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum RoomCommand {
    Create {
        kind: RoomKind,
        name: Option<RoomName>,
        creator: Uuid,
        members: Vec<Uuid>,
    },
    Invite {
        by: Uuid,
        user_id: Uuid,
    },
    Join {
        user_id: Uuid,
    },
    /// An invitee turns the invitation down.
    Decline {
        user_id: Uuid,
    },
    Leave {
        user_id: Uuid,
    },
    Kick {
        by: Uuid,
        user_id: Uuid,
    },
    Ban {
        by: Uuid,
        user_id: Uuid,
    },
    SetRole {
        by: Uuid,
        user_id: Uuid,
        role: Role,
    },
    Unban {
        by: Uuid,
        user_id: Uuid,
    },
    /// Sets a group's name and topic (admins); a part left `None` stays as it is, a topic of
    /// `Some(None)` is cleared.
    ChangeDetails {
        by: Uuid,
        name: Option<RoomName>,
        topic: Option<Option<Topic>>,
    },
    /// Posts a message; its id names the room and the post's `seq` ([`MessageId`]). Changes to
    /// a message after that are the `Message` aggregate's.
    Post {
        room_id: Uuid,
        sender_id: Uuid,
        body: MessageBody,
        reply_to: Option<Uuid>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomError {
    #[error("the room already exists")]
    AlreadyExists,
    #[error("no such room")]
    NotFound,
    #[error("only members may do this")]
    NotAMember,
    #[error("your role does not allow this")]
    Forbidden,
    #[error("banned from this room")]
    Banned,
    #[error("not invited to this room")]
    NotInvited,
    #[error("already a member")]
    AlreadyMember,
    #[error("the last owner cannot leave; make someone else owner first")]
    LastOwner,
    #[error("direct rooms have exactly two members and no roles to manage")]
    DirectRoom,
    #[error("a direct room is with exactly one other user")]
    DirectNeedsOnePeer,
    #[error("only the sender may edit a message")]
    NotTheSender,
    #[error("the message was deleted")]
    MessageGone,
    #[error(
        "at most {} different reactions per person on a message",
        super::message::MAX_REACTIONS_PER_USER
    )]
    TooManyReactions,
    #[error("a room holds at most {MAX_MEMBERS} members and pending invitations")]
    Full,
    #[error("moderate others; to go, leave the room")]
    NotYourself,
}

/// Members and pending invitations a room may hold together (the cost of a room's fan-out and
/// of its state grows with them).
pub const MAX_MEMBERS: usize = 1_000;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Room {
    pub kind: Option<RoomKind>,
    pub name: Option<String>,
    #[serde(default)]
    pub topic: Option<String>,
    pub members: BTreeMap<Uuid, Role>,
    pub invited: BTreeSet<Uuid>,
    pub banned: BTreeSet<Uuid>,
    pub last_seq: u64,
}

impl Room {
    pub fn exists(&self) -> bool {
        self.kind.is_some()
    }

    pub fn role_of(&self, user_id: Uuid) -> Option<Role> {
        self.members.get(&user_id).copied()
    }

    pub fn is_member(&self, user_id: Uuid) -> bool {
        self.members.contains_key(&user_id)
    }

    fn next(&self) -> u64 {
        self.last_seq + 1
    }

    fn member_role(&self, user_id: Uuid) -> Result<Role, RoomError> {
        if !self.exists() {
            return Err(RoomError::NotFound);
        }
        self.role_of(user_id).ok_or(RoomError::NotAMember)
    }

    fn group_only(&self) -> Result<(), RoomError> {
        match self.kind {
            Some(RoomKind::Direct) => Err(RoomError::DirectRoom),
            _ => Ok(()),
        }
    }

    /// `by` may act on `target`: at least admin, above the target's role, and not on themself
    /// (an owner banning themself would leave the room without an owner).
    fn may_moderate(&self, by: Uuid, target: Uuid) -> Result<(), RoomError> {
        let actor = self.member_role(by)?;
        self.group_only()?;
        if by == target {
            return Err(RoomError::NotYourself);
        }
        let target = self.role_of(target).unwrap_or(Role::Member);
        if actor < Role::Admin || (actor != Role::Owner && actor <= target) {
            return Err(RoomError::Forbidden);
        }
        Ok(())
    }

    /// `by`'s role, when they are an admin or owner of this group. Membership is checked first:
    /// an outsider learns nothing of the room, not even its kind.
    fn admin_of_group(&self, by: Uuid) -> Result<Role, RoomError> {
        let role = self.member_role(by)?;
        self.group_only()?;
        if role < Role::Admin {
            return Err(RoomError::Forbidden);
        }
        Ok(role)
    }

    fn owners(&self) -> usize {
        self.members.values().filter(|r| **r == Role::Owner).count()
    }

    fn is_full(&self) -> bool {
        self.members.len() + self.invited.len() >= MAX_MEMBERS
    }
}

impl Aggregate for Room {
    const KIND: &'static str = "chat.room";
    const SNAPSHOT_EVERY: Option<u64> = Some(100);

    type Command = RoomCommand;
    type Event = RoomEvent;
    type Error = RoomError;

    /// A room's state grows with its members, invitations and bans (up to [`MAX_MEMBERS`] of
    /// the first two): one unit per 16 of them.
    fn weight(&self) -> usize {
        1 + (self.members.len() + self.invited.len() + self.banned.len()) / 16
    }

    fn apply(&mut self, event: &RoomEvent) {
        self.last_seq = event.seq();
        match event {
            RoomEvent::RoomCreated {
                kind,
                name,
                members,
                ..
            } => {
                self.kind = Some(*kind);
                self.name = name.clone();
                self.members = members.clone();
            }
            RoomEvent::MemberInvited { user_id, .. } => {
                self.invited.insert(*user_id);
            }
            RoomEvent::MemberJoined { user_id, .. } => {
                self.invited.remove(user_id);
                self.members.insert(*user_id, Role::Member);
            }
            RoomEvent::InviteDeclined { user_id, .. } => {
                self.invited.remove(user_id);
            }
            RoomEvent::MemberLeft { user_id, .. } | RoomEvent::MemberKicked { user_id, .. } => {
                self.members.remove(user_id);
            }
            RoomEvent::MemberBanned { user_id, .. } => {
                self.members.remove(user_id);
                self.invited.remove(user_id);
                self.banned.insert(*user_id);
            }
            RoomEvent::RoleChanged { user_id, role, .. } => {
                self.members.insert(*user_id, *role);
            }
            RoomEvent::MemberUnbanned { user_id, .. } => {
                self.banned.remove(user_id);
            }
            RoomEvent::DetailsChanged { name, topic, .. } => {
                self.name = name.clone();
                self.topic = topic.clone();
            }
            RoomEvent::MessagePosted { .. }
            | RoomEvent::MessageEdited { .. }
            | RoomEvent::MessageRedacted { .. }
            | RoomEvent::ReactionAdded { .. }
            | RoomEvent::ReactionRemoved { .. } => {}
        }
    }

    fn command_name(command: &Self::Command) -> &'static str {
        command.into()
    }

    fn decide(&self, command: &RoomCommand) -> Result<Vec<RoomEvent>, RoomError> {
        let seq = self.next();
        match command {
            RoomCommand::Create {
                kind,
                name,
                creator,
                members,
            } => self.create(seq, *kind, name.as_ref(), *creator, members),
            RoomCommand::Invite { by, user_id } => self.invite(seq, *by, *user_id),
            RoomCommand::Join { user_id } => self.join(seq, *user_id),
            RoomCommand::Decline { user_id } => self.decline(seq, *user_id),
            RoomCommand::Leave { user_id } => self.leave(seq, *user_id),
            RoomCommand::Kick { by, user_id } => self.kick(seq, *by, *user_id),
            RoomCommand::Ban { by, user_id } => self.ban(seq, *by, *user_id),
            RoomCommand::Unban { by, user_id } => self.unban(seq, *by, *user_id),
            RoomCommand::SetRole { by, user_id, role } => self.set_role(seq, *by, *user_id, *role),
            RoomCommand::ChangeDetails { by, name, topic } => {
                self.change_details(seq, *by, name.as_ref(), topic.as_ref())
            }
            RoomCommand::Post {
                room_id,
                sender_id,
                body,
                reply_to,
            } => {
                self.member_role(*sender_id)?;
                Ok(vec![RoomEvent::MessagePosted {
                    seq,
                    message_id: MessageId::of(*room_id, seq),
                    sender_id: *sender_id,
                    body: body.clone(),
                    reply_to: *reply_to,
                }])
            }
        }
    }
}
