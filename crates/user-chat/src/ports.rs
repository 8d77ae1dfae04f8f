//! The core services as user-chat sees them. Errors are the services' own problem documents, so
//! a refusal reaches the client as the owning service worded it, in both deployments. Calls on a
//! user's behalf take the [`Caller`]: between microservices its access token goes along, and the
//! called service checks it again.

use async_trait::async_trait;
use msa_chat::contract::{MessageBody, PostedMessage, RoomKind, RoomPage, RoomView};
use msa_http::auth::Caller;
use msa_http::Problem;
use msa_payment::contract::Spent;
use msa_user::contract::ProfileView;
use uuid::Uuid;

#[async_trait]
pub trait ChatPort: Send + Sync {
    /// Posts a message (idempotent by the sender's `txn_id`); the message and whether this call
    /// posted it.
    async fn post(
        &self,
        sender: &Caller,
        room_id: Uuid,
        txn_id: &str,
        body: MessageBody,
        reply_to: Option<Uuid>,
    ) -> Result<(PostedMessage, bool), Problem>;

    /// What became of each send (at most `MAX_SENDS_ASKED`), in the order asked: posted,
    /// withdrawn, or open. Asked as user-chat, not on a user's behalf.
    async fn send_outcomes(
        &self,
        sends: &[msa_chat::contract::SendRef],
    ) -> Result<Vec<msa_chat::contract::SendOutcome>, Problem>;

    /// Withdraws a send that has not posted, so it never will; answers what it is now (posted or
    /// withdrawn). Asked as user-chat.
    async fn withdraw_send(
        &self,
        send: &msa_chat::contract::SendRef,
    ) -> Result<msa_chat::contract::SendOutcome, Problem>;

    /// Creates a room for `caller`: a group with the others invited, or the direct room of the
    /// pair (found if it exists); the room and whether this call created it.
    async fn create_room(
        &self,
        caller: &Caller,
        kind: RoomKind,
        name: Option<String>,
        members: Vec<Uuid>,
    ) -> Result<(RoomView, bool), Problem>;

    /// `caller` invites `user_id` to a room.
    async fn invite(&self, caller: &Caller, room_id: Uuid, user_id: Uuid) -> Result<(), Problem>;

    /// A page of the caller's rooms with their last message and unread count, after `cursor`
    /// (chat's `next_cursor` of the page before), at most `limit` (1 to 100).
    async fn rooms_of(
        &self,
        caller: &Caller,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<RoomPage, Problem>;
}

#[async_trait]
pub trait WalletPort: Send + Sync {
    /// Spends one message's credit (402 when none is left), idempotent by `spend_key`.
    async fn spend(&self, user: &Caller, spend_key: &str) -> Result<Spent, Problem>;

    /// Gives a spend of `user_id`'s wallet back (idempotent). Asked as user-chat: by the send
    /// that spent it, or by the recovery of a send left half-done.
    async fn refund_spend(&self, user_id: Uuid, spend_key: &str) -> Result<(), Problem>;
}

#[async_trait]
pub trait DirectoryPort: Send + Sync {
    /// An active user's public profile; `None` when unknown, deactivated or erased.
    async fn profile(&self, user_id: Uuid) -> Result<Option<ProfileView>, Problem>;

    /// The active user with this nickname (case-insensitive).
    async fn by_nickname(&self, nickname: &str) -> Result<Option<ProfileView>, Problem>;
}
