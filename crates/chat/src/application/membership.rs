//! Membership: invite, join, leave, kick, ban, set a role; the invitations a user holds.

use msa_kernel::Repository;
use uuid::Uuid;

use super::views::Invitation;
use super::{metadata, ChatError, ChatService};
use crate::domain::{Room, RoomCommand};

impl ChatService {
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

    /// The rooms the caller is invited to and has not answered, newest first.
    pub async fn invitations(&self, caller: Uuid) -> Result<Vec<Invitation>, ChatError> {
        Ok(self.invitations.invitations_of(caller).await?)
    }
}
