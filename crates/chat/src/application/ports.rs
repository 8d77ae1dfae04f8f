//! What the chat use cases need from the query side, as the application names it. The adapters
//! implement these over the read models (`crate::adapters::{history, search, invites}`); a
//! failure is the store's (`StoreError`), answered by the HTTP adapter.

use async_trait::async_trait;
use msa_kernel::StoreError;
use uuid::Uuid;

use super::views::{
    EarlierBody, Invitation, MessageSearch, MessageView, RoomCursor, RoomSummary, Searched, Window,
};

/// Rooms, messages, reactions and read markers, as history keeps them.
#[async_trait]
pub trait RoomHistory: Send + Sync {
    /// A window of a room's messages, at most `limit`.
    async fn messages(
        &self,
        room_id: Uuid,
        window: Window,
        limit: u32,
    ) -> Result<Vec<MessageView>, StoreError>;

    /// Where a message of `room_id` is (its seq) and whether it was deleted; `None` if unknown.
    async fn message_place(
        &self,
        room_id: Uuid,
        message_id: Uuid,
    ) -> Result<Option<(u64, bool)>, StoreError>;

    /// Whether `user_id` reacted to the message with `emoji`.
    async fn has_reaction(
        &self,
        message_id: Uuid,
        user_id: Uuid,
        emoji: &str,
    ) -> Result<bool, StoreError>;

    /// A message's earlier bodies, oldest first.
    async fn edits_of(&self, message_id: Uuid) -> Result<Vec<EarlierBody>, StoreError>;

    /// Each member's read marker (`(user id, seq)`).
    async fn read_markers(&self, room_id: Uuid) -> Result<Vec<(String, i64)>, StoreError>;

    /// Moves `user_id`'s read marker in `room_id` up to `seq` (never back).
    async fn mark_read(&self, room_id: Uuid, user_id: Uuid, seq: i64) -> Result<(), StoreError>;

    /// A page of `user_id`'s rooms, most recently active first, after `after`.
    async fn rooms_of(
        &self,
        user_id: Uuid,
        after: Option<&RoomCursor>,
        limit: u32,
    ) -> Result<Vec<RoomSummary>, StoreError>;
}

/// Messages found by their words, in the rooms one is a member of.
#[async_trait]
pub trait MessageIndex: Send + Sync {
    async fn search(&self, user_id: Uuid, search: &MessageSearch) -> Result<Searched, StoreError>;
}

/// The invitations a user has not answered.
#[async_trait]
pub trait OpenInvitations: Send + Sync {
    /// `user_id`'s open invitations, newest first.
    async fn invitations_of(&self, user_id: Uuid) -> Result<Vec<Invitation>, StoreError>;
}
