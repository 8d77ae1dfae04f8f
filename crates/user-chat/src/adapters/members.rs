//! `user-chat.members`: keeps `uc_rooms` and `uc_members` from the chat context's room events.

use async_trait::async_trait;
use msa_chat::contract::{Room, RoomEvent};
use msa_kernel::consumer::{EventHandler, HandlerError};
use msa_kernel::repository::decode;
use msa_kernel::{Aggregate, RecordedEvent};
use uuid::Uuid;

pub const CONSUMER: &str = "user-chat.members";

pub struct Members;

const UPSERT: &str = "INSERT INTO uc_members (room_id, user_id, role) VALUES ($1, $2, $3)
     ON CONFLICT (room_id, user_id) DO UPDATE SET role = excluded.role";
const REMOVE: &str = "DELETE FROM uc_members WHERE room_id = $1 AND user_id = $2";

#[async_trait]
impl EventHandler<msa_sql::Tx> for Members {
    fn name(&self) -> &str {
        CONSUMER
    }

    /// Membership changes; not messages, edits or reactions (most of a room's events).
    fn wants(&self, event: &RecordedEvent) -> bool {
        event.stream_id.category() == Room::KIND
            && matches!(
                event.event_type.as_str(),
                "chat.RoomCreated"
                    | "chat.MemberJoined"
                    | "chat.RoleChanged"
                    | "chat.MemberLeft"
                    | "chat.MemberKicked"
                    | "chat.MemberBanned"
            )
    }

    async fn handle(
        &self,
        tx: &mut msa_sql::Tx,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        if event.stream_id.category() != Room::KIND {
            return Ok(());
        }
        let room_id = event.stream_id.id().to_owned();
        let mut changes: Vec<(&str, Uuid, Option<&str>)> = Vec::new();
        match decode::<RoomEvent>(event).map_err(HandlerError::new)? {
            RoomEvent::RoomCreated { kind, members, .. } => {
                sqlx::query(
                    "INSERT INTO uc_rooms (room_id, kind) VALUES ($1, $2) ON CONFLICT (room_id) DO NOTHING",
                )
                .bind(&room_id)
                .bind(kind.as_str())
                .execute(&mut **tx)
                .await
                .map_err(HandlerError::new)?;
                for (user_id, role) in members {
                    changes.push((UPSERT, user_id, Some(role.as_str())));
                }
            }
            RoomEvent::MemberJoined { user_id, .. } => {
                changes.push((UPSERT, user_id, Some("member")))
            }
            RoomEvent::RoleChanged { user_id, role, .. } => {
                changes.push((UPSERT, user_id, Some(role.as_str())))
            }
            RoomEvent::MemberLeft { user_id, .. }
            | RoomEvent::MemberKicked { user_id, .. }
            | RoomEvent::MemberBanned { user_id, .. } => changes.push((REMOVE, user_id, None)),
            _ => {}
        }
        for (statement, user_id, role) in changes {
            let mut query = sqlx::query(statement)
                .bind(room_id.clone())
                .bind(user_id.to_string());
            if let Some(role) = role {
                query = query.bind(role);
            }
            query.execute(&mut **tx).await.map_err(HandlerError::new)?;
        }
        Ok(())
    }
}
