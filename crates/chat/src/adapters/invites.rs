//! Open invitations: who is invited to which room, by whom, since when. A projection of room
//! events (an invitation is open from `MemberInvited` until the invitee joins, declines or is
//! banned), so an invitee who was away still finds them (`GET /v1/invites`).

use async_trait::async_trait;
use msa_kernel::repository::decode;
use msa_kernel::{
    Aggregate, Projection, ProjectionError, RecordedEvent, StoreError, TableNames, TableSpec,
};
use msa_sql::Bind::Text;
use msa_sql::SqlReadModelStore;
use sqlx::Row;
use uuid::Uuid;

use crate::application::ports::OpenInvitations;
pub use crate::application::views::Invitation;
use crate::domain::{Room, RoomEvent};

pub struct Invites;

const TABLES: &[TableSpec] = &[TableSpec {
    name: "chat_invites",
    create: &[
        "CREATE TABLE {table} (room_id TEXT NOT NULL, user_id TEXT NOT NULL, invited_by TEXT NOT NULL, invited_at TEXT NOT NULL, PRIMARY KEY (room_id, user_id))",
        "CREATE INDEX {table}_by_user ON {table} (user_id, invited_at)",
    ],
}];

/// How many open invitations a list shows (the newest).
pub const LISTED: i64 = 100;

#[async_trait]
impl Projection<msa_sql::Tx> for Invites {
    fn name(&self) -> &'static str {
        "chat.invites"
    }

    fn tables(&self) -> &'static [TableSpec] {
        TABLES
    }

    /// Membership events only (not the messages that make most of the log).
    fn wants(&self, event: &RecordedEvent) -> bool {
        event.stream_id.category() == Room::KIND
            && matches!(
                event.event_type.as_str(),
                "chat.MemberInvited"
                    | "chat.MemberJoined"
                    | "chat.InviteDeclined"
                    | "chat.MemberBanned"
            )
    }

    async fn apply(
        &self,
        tx: &mut msa_sql::Tx,
        tables: &TableNames,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let table = tables.table("chat_invites");
        let room_id = Text(event.stream_id.id().to_owned());
        let (sql, binds) = match decode::<RoomEvent>(event)? {
            RoomEvent::MemberInvited { user_id, by, .. } => (
                format!(
                    "INSERT INTO {table} (room_id, user_id, invited_by, invited_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (room_id, user_id) DO NOTHING"
                ),
                vec![
                    room_id,
                    Text(user_id.to_string()),
                    Text(by.to_string()),
                    Text(event.occurred_at.to_rfc3339()),
                ],
            ),
            RoomEvent::MemberJoined { user_id, .. }
            | RoomEvent::InviteDeclined { user_id, .. }
            | RoomEvent::MemberBanned { user_id, .. } => (
                format!("DELETE FROM {table} WHERE room_id = $1 AND user_id = $2"),
                vec![room_id, Text(user_id.to_string())],
            ),
            _ => return Ok(()),
        };
        msa_sql::execute(tx, &sql, binds)
            .await
            .map_err(ProjectionError::apply)?;
        Ok(())
    }
}

#[async_trait]
impl OpenInvitations for SqlReadModelStore {
    /// `user_id`'s open invitations, newest first (at most [`LISTED`]).
    async fn invitations_of(&self, user_id: Uuid) -> Result<Vec<Invitation>, StoreError> {
        let rows = sqlx::query(
            "SELECT i.room_id, i.invited_by, i.invited_at, r.name, r.kind FROM chat_invites i
         JOIN chat_rooms r ON r.room_id = i.room_id
         WHERE i.user_id = $1 ORDER BY i.invited_at DESC, i.room_id LIMIT $2",
        )
        .bind(user_id.to_string())
        .bind(LISTED)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        rows.iter()
            .map(|row| {
                Ok(Invitation {
                    room_id: row.try_get("room_id").map_err(StoreError::backend)?,
                    room_name: row.try_get("name").map_err(StoreError::backend)?,
                    kind: row.try_get("kind").map_err(StoreError::backend)?,
                    invited_by: row.try_get("invited_by").map_err(StoreError::backend)?,
                    invited_at: row.try_get("invited_at").map_err(StoreError::backend)?,
                })
            })
            .collect()
    }
}
