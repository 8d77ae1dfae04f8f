//! The core services as user-chat sees them, and its own read models. A service's answer when it
//! did not do what was asked is a [`ServiceError`]: refused (nothing happened) or failed (what
//! became of the request is unknown), in the service's own words, so a refusal reaches the client
//! as the owning service worded it, in both deployments. Calls on a user's behalf take the
//! [`Requester`]: between microservices its access token goes along, and the called service
//! checks it again.

use std::collections::{BTreeSet, HashMap};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use msa_chat::contract::{
    MessageBody, PostedMessage, RoomKind, RoomName, RoomPage, RoomView, TxnId,
};
use msa_kernel::{FieldError, StoreError};
use msa_payment::contract::{SpendKey, Spent};
use msa_user::contract::ProfileView;
use uuid::Uuid;

use super::views::{MemberProfile, OpenSpend, Peer};

/// Who a call is made for: the user, and the access token the called service checks again.
#[derive(Debug, Clone)]
pub struct Requester {
    pub user_id: Uuid,
    pub token: String,
}

/// What a core service answered instead of doing what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServiceError {
    /// It refused (bad input, not allowed, nothing left to spend): nothing was done.
    #[error("refused: {}", .0.detail)]
    Refused(Answer),
    /// It failed or was not reached: what became of the request is unknown.
    #[error("failed: {}", .0.detail)]
    Failed(Answer),
}

/// A service's answer in its own words (its problem document, passed on to the client as it is).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// The service's status code, for the adapter that passes the answer on.
    pub code: u16,
    /// The kind of answer, as the service named it (`urn:msa:problem:<kind>`).
    pub kind: String,
    pub title: String,
    pub detail: String,
    /// The fields the service found invalid.
    pub errors: Vec<FieldError>,
    /// When to ask again, if the service said.
    pub retry_after: Option<u64>,
}

impl ServiceError {
    /// A failure found here, of an answer that makes no sense (the service is not to be trusted
    /// with the outcome). Logged: it is a fault of a service, not of the client.
    pub fn failed(detail: impl Into<String>) -> Self {
        let detail = detail.into();
        tracing::error!(%detail, "a service answered what makes no sense");
        ServiceError::Failed(Answer {
            code: 502,
            kind: "urn:msa:problem:upstream".into(),
            title: "Bad Gateway".into(),
            detail,
            errors: Vec::new(),
            retry_after: None,
        })
    }
}

#[async_trait]
pub trait ChatPort: Send + Sync {
    /// Posts a message (idempotent by the sender's `txn_id`); the message and whether this call
    /// posted it.
    async fn post(
        &self,
        sender: &Requester,
        room_id: Uuid,
        txn_id: &TxnId,
        body: MessageBody,
        reply_to: Option<Uuid>,
    ) -> Result<(PostedMessage, bool), ServiceError>;

    /// What became of each send (at most `MAX_SENDS_ASKED`), in the order asked: posted,
    /// withdrawn, or open. Asked as user-chat, not on a user's behalf.
    async fn send_outcomes(
        &self,
        sends: &[msa_chat::contract::SendRef],
    ) -> Result<Vec<msa_chat::contract::SendOutcome>, ServiceError>;

    /// Withdraws a send that has not posted, so it never will; answers what it is now (posted or
    /// withdrawn). Asked as user-chat.
    async fn withdraw_send(
        &self,
        send: &msa_chat::contract::SendRef,
    ) -> Result<msa_chat::contract::SendOutcome, ServiceError>;

    /// Creates a room for `caller`: a group with the others invited, or the direct room of the
    /// pair (found if it exists); the room and whether this call created it.
    async fn create_room(
        &self,
        caller: &Requester,
        kind: RoomKind,
        name: Option<RoomName>,
        members: Vec<Uuid>,
    ) -> Result<(RoomView, bool), ServiceError>;

    /// `caller` invites `user_id` to a room.
    async fn invite(
        &self,
        caller: &Requester,
        room_id: Uuid,
        user_id: Uuid,
    ) -> Result<(), ServiceError>;

    /// A page of the caller's rooms with their last message and unread count, after `cursor`
    /// (chat's `next_cursor` of the page before), at most `limit` (1 to 100).
    async fn rooms_of(
        &self,
        caller: &Requester,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<RoomPage, ServiceError>;
}

#[async_trait]
pub trait WalletPort: Send + Sync {
    /// Spends one message's credit (refused when none is left), idempotent by `spend_key`.
    async fn spend(&self, user: &Requester, spend_key: &SpendKey) -> Result<Spent, ServiceError>;

    /// Gives a spend of `user_id`'s wallet back (idempotent). Asked as user-chat: by the send
    /// that spent it, or by the recovery of a send left half-done.
    async fn refund_spend(&self, user_id: Uuid, spend_key: &SpendKey) -> Result<(), ServiceError>;
}

#[async_trait]
pub trait DirectoryPort: Send + Sync {
    /// An active user's public profile; `None` when unknown, deactivated or erased.
    async fn profile(&self, user_id: Uuid) -> Result<Option<ProfileView>, ServiceError>;

    /// The active user with this nickname (case-insensitive).
    async fn by_nickname(&self, nickname: &str) -> Result<Option<ProfileView>, ServiceError>;
}

/// People as user-chat's read models know them (profiles from user events, members from chat's).
#[async_trait]
pub trait KnownPeople: Send + Sync {
    /// Those of `ids` that are active users.
    async fn known_users(&self, ids: &BTreeSet<Uuid>) -> Result<BTreeSet<Uuid>, StoreError>;

    /// The other member of each direct room among `rooms`, by room id.
    async fn peers_of(&self, me: Uuid, rooms: &[&str])
        -> Result<HashMap<String, Peer>, StoreError>;

    /// A room's members with their profiles (empty: no such room).
    async fn members(&self, room_id: Uuid) -> Result<Vec<MemberProfile>, StoreError>;
}

/// Credits spent for sends that may not have finished (from the wallet events).
#[async_trait]
pub trait SpendsInDoubt: Send + Sync {
    /// Up to `limit` spends made before `before`, oldest first, after `after`.
    async fn spent_before(
        &self,
        before: DateTime<Utc>,
        after: Option<&OpenSpend>,
        limit: u32,
    ) -> Result<Vec<OpenSpend>, StoreError>;

    /// Forgets spends whose send is settled (posted, or given back).
    async fn forget(&self, spends: &[&OpenSpend]) -> Result<(), StoreError>;
}
