//! The rules of membership: invitations, joining and leaving, moderation, roles. A repeated
//! request that changes nothing (an invitation already out, a ban already in place, a role
//! already held) decides no event.

use uuid::Uuid;

use super::{Role, Room, RoomError, RoomEvent, RoomKind};

impl Room {
    pub(super) fn invite(
        &self,
        seq: u64,
        by: Uuid,
        user_id: Uuid,
    ) -> Result<Vec<RoomEvent>, RoomError> {
        self.admin_of_group(by)?;
        if self.banned.contains(&user_id) {
            return Err(RoomError::Banned);
        }
        if self.is_member(user_id) {
            return Err(RoomError::AlreadyMember);
        }
        if self.invited.contains(&user_id) {
            return Ok(vec![]);
        }
        if self.is_full() {
            return Err(RoomError::Full);
        }
        Ok(vec![RoomEvent::MemberInvited { seq, user_id, by }])
    }

    /// Only the invited join, never the banned. An outsider is refused as not invited whatever
    /// the room's kind (nobody is invited to a direct room), so the answer does not tell it.
    pub(super) fn join(&self, seq: u64, user_id: Uuid) -> Result<Vec<RoomEvent>, RoomError> {
        if !self.exists() {
            return Err(RoomError::NotFound);
        }
        if self.banned.contains(&user_id) {
            return Err(RoomError::Banned);
        }
        if self.is_member(user_id) {
            self.group_only()?;
            return Ok(vec![]);
        }
        if !self.invited.contains(&user_id) {
            return Err(RoomError::NotInvited);
        }
        Ok(vec![RoomEvent::MemberJoined { seq, user_id }])
    }

    pub(super) fn decline(&self, seq: u64, user_id: Uuid) -> Result<Vec<RoomEvent>, RoomError> {
        if !self.exists() {
            return Err(RoomError::NotFound);
        }
        if self.is_member(user_id) {
            return Err(RoomError::AlreadyMember);
        }
        if !self.invited.contains(&user_id) {
            return Err(RoomError::NotInvited);
        }
        Ok(vec![RoomEvent::InviteDeclined { seq, user_id }])
    }

    /// The last owner of a group with others in it stays until someone else is owner.
    pub(super) fn leave(&self, seq: u64, user_id: Uuid) -> Result<Vec<RoomEvent>, RoomError> {
        let role = self.member_role(user_id)?;
        if role == Role::Owner
            && self.owners() == 1
            && self.members.len() > 1
            && self.kind == Some(RoomKind::Group)
        {
            return Err(RoomError::LastOwner);
        }
        Ok(vec![RoomEvent::MemberLeft { seq, user_id }])
    }

    pub(super) fn kick(
        &self,
        seq: u64,
        by: Uuid,
        user_id: Uuid,
    ) -> Result<Vec<RoomEvent>, RoomError> {
        self.may_moderate(by, user_id)?;
        if !self.is_member(user_id) {
            return Err(RoomError::NotAMember);
        }
        Ok(vec![RoomEvent::MemberKicked { seq, user_id, by }])
    }

    /// A ban takes a member out (or keeps a non-member out) until an unban.
    pub(super) fn ban(
        &self,
        seq: u64,
        by: Uuid,
        user_id: Uuid,
    ) -> Result<Vec<RoomEvent>, RoomError> {
        self.may_moderate(by, user_id)?;
        if self.banned.contains(&user_id) {
            return Ok(vec![]);
        }
        Ok(vec![RoomEvent::MemberBanned { seq, user_id, by }])
    }

    pub(super) fn unban(
        &self,
        seq: u64,
        by: Uuid,
        user_id: Uuid,
    ) -> Result<Vec<RoomEvent>, RoomError> {
        self.admin_of_group(by)?;
        if !self.banned.contains(&user_id) {
            return Ok(vec![]);
        }
        Ok(vec![RoomEvent::MemberUnbanned { seq, user_id, by }])
    }

    /// Owners set roles; a group never loses its last owner this way.
    pub(super) fn set_role(
        &self,
        seq: u64,
        by: Uuid,
        user_id: Uuid,
        role: Role,
    ) -> Result<Vec<RoomEvent>, RoomError> {
        if self.admin_of_group(by)? != Role::Owner {
            return Err(RoomError::Forbidden);
        }
        let current = self.role_of(user_id).ok_or(RoomError::NotAMember)?;
        if current == role {
            return Ok(vec![]);
        }
        if current == Role::Owner && self.owners() == 1 {
            return Err(RoomError::LastOwner);
        }
        Ok(vec![RoomEvent::RoleChanged {
            seq,
            user_id,
            role,
            by,
        }])
    }
}
