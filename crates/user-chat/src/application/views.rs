//! What user-chat's queries answer, and the names it gives message credits' spends.

use msa_chat::contract::SendRef;
use msa_chat::contract::TxnId;
use msa_kernel::Conversation;
use msa_payment::contract::SpendKey;
use serde::Serialize;
use uuid::Uuid;

/// The spend key user-chat gives a message's credit: `message:<room>:<txn_id>`.
pub fn spend_key(room_id: Uuid, txn_id: &TxnId) -> SpendKey {
    SpendKey::parse(&format!("message:{room_id}:{}", txn_id.as_str()))
        .expect("a room id and a txn id (at most 64 printable bytes) make a spend key")
}

/// The room and `txn_id` of a message's spend key; `None` for any other key.
pub fn send_of(spend_key: &str) -> Option<(Uuid, &str)> {
    let rest = spend_key.strip_prefix("message:")?;
    let (room, txn_id) = rest.split_once(':')?;
    Some((room.parse().ok()?, txn_id))
}

/// The other person of a direct room. A direct room is bound to the two user ids it was opened
/// with, never to a nickname: once the other person erased their account `nickname` is `null`
/// (shown as a deleted account), whoever holds that nickname later.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Peer {
    pub user_id: Uuid,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
}

/// A member of a room with the profile (`nickname` is `null` once the user erased their account).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MemberProfile {
    pub user_id: Uuid,
    pub role: String,
    pub nickname: Option<String>,
    pub avatar_url: Option<String>,
}

/// A spend whose send may be unfinished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenSpend {
    pub user_id: Uuid,
    pub spend_key: SpendKey,
    pub room_id: Uuid,
    pub txn_id: String,
    pub spent_at: i64,
    /// The spend's conversation and its `MessageSpent` event, which a refund continues (none
    /// for spends recorded before they were kept).
    pub conversation: Option<Conversation>,
}

impl OpenSpend {
    /// The send that made this spend.
    pub fn send(&self) -> SendRef {
        SendRef {
            sender_id: self.user_id,
            room_id: self.room_id,
            txn_id: self.txn_id.clone(),
        }
    }
}
