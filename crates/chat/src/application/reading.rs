//! Reading a room: its history, a message's earlier bodies, read markers, search.

use uuid::Uuid;

use super::views::{EarlierBody, MessageSearch, MessageView, Searched, Window};
use super::{ChatError, ChatService};

impl ChatService {
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
}
