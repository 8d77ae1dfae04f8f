//! Rooms: create one (a direct room once per pair), see one as a member, list mine.

use msa_kernel::{CommandError, Repository};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::views::{RoomCursor, RoomSummary};
use super::{metadata, ChatError, ChatService};
use crate::domain::{
    DirectPair, DirectPairCommand, Role, Room, RoomCommand, RoomError, RoomKind, RoomName, Topic,
};

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

impl ChatService {
    /// Creates a room. A direct room is unique per pair: asking again (or racing) answers the
    /// existing one, with `created` false.
    pub async fn create_room(
        &self,
        creator: Uuid,
        kind: RoomKind,
        name: Option<RoomName>,
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

    /// A group's new name and topic (admins); what is left `None` stays as it is, a topic of
    /// `Some(None)` is cleared. Decided on the room's latest version, so two changes at once
    /// both land; answers the room as it is then.
    pub async fn change_details(
        &self,
        caller: Uuid,
        room_id: Uuid,
        name: Option<RoomName>,
        topic: Option<Option<Topic>>,
    ) -> Result<RoomView, ChatError> {
        let command = RoomCommand::ChangeDetails {
            by: caller,
            name,
            topic,
        };
        let executed = self
            .rooms
            .execute(
                &Repository::<Room>::stream_id(room_id),
                &command,
                &metadata(caller),
            )
            .await?;
        Ok(RoomView::of(room_id, &executed.state))
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
}
