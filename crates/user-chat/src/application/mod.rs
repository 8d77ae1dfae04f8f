//! user-chat's use cases: the credit policy for sending, direct chats by nickname, invitations,
//! the inbox and member lists with profiles; [`send_recovery`] settles sends left half-done and
//! [`export`] composes a person's export. They depend on [`ports`] and domain values only.

pub mod export;
pub mod ports;
pub mod send_recovery;
pub mod views;

use std::sync::Arc;

use std::collections::BTreeSet;

use msa_chat::contract::{
    MessageBody, PostedMessage, RoomKind, RoomName, RoomSummary, RoomView, TxnId,
};
use msa_kernel::{FieldError, StoreError};
use serde::Serialize;
use uuid::Uuid;

use self::ports::{ChatPort, DirectoryPort, KnownPeople, Requester, ServiceError, WalletPort};
use self::views::{spend_key, MemberProfile, Peer};

/// Why a use case of user-chat did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum UserChatError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    /// A core service's answer, passed on as it worded it.
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A room of my inbox: chat's summary, and for a direct room the other person's profile.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InboxItem {
    #[serde(flatten)]
    pub room: RoomSummary,
    /// The other member of a direct room (`null` for groups); its `nickname` is `null` once they
    /// erased their account.
    pub peer: Option<Peer>,
}

/// Who is invited: a user id, or a nickname (case-insensitive).
#[derive(Debug, Clone)]
pub enum Invitee {
    Id(Uuid),
    Nickname(String),
}

/// Stripes of the turns sends with one sender and `txn_id` take (fixed memory, about 650 KB).
/// Between microservices a send holds its turn for its two calls, and at 1,000 sends a second a
/// few hundred are under way: with 1,024 stripes unrelated sends often shared one and waited for
/// each other (the microservice benchmark's p99 went from 0.5-1.2 s to 2.3-2.9 s); with 16,384
/// about one send in a hundred meets another.
const SEND_STRIPES: usize = 16_384;

pub struct UserChat {
    chat: Arc<dyn ChatPort>,
    wallets: Arc<dyn WalletPort>,
    directory: Arc<dyn DirectoryPort>,
    people: Arc<dyn KnownPeople>,
    sends: Vec<tokio::sync::Mutex<()>>,
}

impl UserChat {
    pub fn new(
        chat: Arc<dyn ChatPort>,
        wallets: Arc<dyn WalletPort>,
        directory: Arc<dyn DirectoryPort>,
        people: Arc<dyn KnownPeople>,
    ) -> Self {
        Self {
            chat,
            wallets,
            directory,
            people,
            sends: (0..SEND_STRIPES)
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        }
    }

    /// The turn of sends with this sender and `txn_id` (a stripe of them).
    fn send_turn(&self, sender: Uuid, txn_id: &TxnId) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (sender, txn_id).hash(&mut hasher);
        &self.sends[hasher.finish() as usize % SEND_STRIPES]
    }

    /// The credit policy: spend the sender's credit (today's free allowance first), post, and if
    /// chat refuses the post, give the credit back, but only a credit this very call spent: a
    /// replayed spend belongs to an earlier call whose message may have been posted (a reused
    /// `txn_id` with another body is refused by chat, and must not refund the first message).
    /// Retries with the same `txn_id` cost nothing more: the spend and the post are both
    /// idempotent by it. When chat cannot be reached the outcome is unknown, so the spend stays
    /// and a retry with the same `txn_id` finishes the send.
    ///
    /// Sends with one sender and `txn_id` take turns: otherwise a call whose new spend chat
    /// refused (a bad `reply_to`) could give the credit back while a concurrent call, replaying
    /// that spend, got its own body posted under the same `txn_id`: a message for free. In turn,
    /// the second call finds the spend refunded (and is refused) or the first call's message.
    pub async fn send(
        &self,
        sender: &Requester,
        room_id: Uuid,
        txn_id: &TxnId,
        body: MessageBody,
        reply_to: Option<Uuid>,
    ) -> Result<(PostedMessage, bool), UserChatError> {
        let spend_key = spend_key(room_id, txn_id);
        let _turn = self.send_turn(sender.user_id, txn_id).lock().await;
        let spent = self.wallets.spend(sender, &spend_key).await?;
        match self
            .chat
            .post(sender, room_id, txn_id, body, reply_to)
            .await
        {
            Ok(posted) => Ok(posted),
            Err(ServiceError::Refused(refusal)) if !spent.replayed => {
                if let Err(error) = self.wallets.refund_spend(sender.user_id, &spend_key).await {
                    tracing::error!(sender = %sender.user_id, %spend_key, %error,
                        "a refused message's credit could not be given back");
                }
                Err(ServiceError::Refused(refusal).into())
            }
            Err(other) => Err(other.into()),
        }
    }

    /// Opens (or finds) the direct room with the user called `nickname`.
    pub async fn open_direct(
        &self,
        caller: &Requester,
        nickname: &str,
    ) -> Result<(RoomView, bool), UserChatError> {
        let nickname = nickname.trim();
        if nickname.is_empty() || nickname.chars().count() > 100 {
            return Err(UserChatError::Invalid(vec![FieldError::new(
                "nickname",
                "the nickname of the person to chat with",
            )]));
        }
        let Some(peer) = self.directory.by_nickname(nickname).await? else {
            return Err(UserChatError::NotFound(format!(
                "nobody is called {nickname}"
            )));
        };
        if peer.id == caller.user_id {
            return Err(UserChatError::Invalid(vec![FieldError::new(
                "nickname",
                "that is you; a direct chat is with someone else",
            )]));
        }
        Ok(self
            .chat
            .create_room(caller, RoomKind::Direct, None, vec![peer.id])
            .await?)
    }

    /// Creates a room: a group with the others invited, or a direct room. Every member named
    /// must be a user (422 naming the unknown ones): chat knows users only by id.
    pub async fn create_room(
        &self,
        caller: &Requester,
        kind: RoomKind,
        name: Option<RoomName>,
        members: Vec<Uuid>,
    ) -> Result<(RoomView, bool), UserChatError> {
        self.all_exist("members", &members).await?;
        Ok(self.chat.create_room(caller, kind, name, members).await?)
    }

    /// Invites a user, named by id or by nickname, to a room.
    pub async fn invite(
        &self,
        caller: &Requester,
        room_id: Uuid,
        invitee: Invitee,
    ) -> Result<(), UserChatError> {
        let user_id = match invitee {
            Invitee::Id(user_id) => {
                self.all_exist("user_id", &[user_id]).await?;
                user_id
            }
            Invitee::Nickname(nickname) => match self.directory.by_nickname(&nickname).await? {
                Some(profile) => profile.id,
                None => {
                    return Err(UserChatError::NotFound(format!(
                        "nobody is called {nickname}"
                    )))
                }
            },
        };
        Ok(self.chat.invite(caller, room_id, user_id).await?)
    }

    /// 422 naming `field` unless every id is an active user's. The profiles read model answers
    /// for most; an id it does not know yet (a sign-up a moment ago) is asked of the directory.
    async fn all_exist(&self, field: &str, ids: &[Uuid]) -> Result<(), UserChatError> {
        let wanted: BTreeSet<Uuid> = ids.iter().copied().collect();
        let known = self.people.known_users(&wanted).await?;
        // At most this many are asked one by one (a list of random ids costs a few calls).
        const LOOK_UPS: usize = 20;
        let mut unknown = Vec::new();
        for (n, id) in wanted.difference(&known).enumerate() {
            if n >= LOOK_UPS || self.directory.profile(*id).await?.is_none() {
                unknown.push(id.to_string());
            }
        }
        if unknown.is_empty() {
            return Ok(());
        }
        let shown = unknown
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        Err(UserChatError::Invalid(vec![FieldError::new(
            field,
            format!("{} unknown user id(s): {shown}", unknown.len()),
        )]))
    }

    /// A page of my rooms, most recently active first, with the peer's profile for direct
    /// rooms, and where the next page starts.
    pub async fn inbox(
        &self,
        caller: &Requester,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<InboxItem>, Option<String>), UserChatError> {
        let page = self.chat.rooms_of(caller, cursor, limit).await?;
        let rooms: Vec<&str> = page.items.iter().map(|room| room.id.as_str()).collect();
        let mut peers = self.people.peers_of(caller.user_id, &rooms).await?;
        let items = page
            .items
            .into_iter()
            .map(|room| InboxItem {
                peer: peers.remove(&room.id),
                room,
            })
            .collect::<Vec<_>>();
        Ok((items, page.next_cursor))
    }

    /// A room's members with their profiles; only for members.
    pub async fn members(
        &self,
        caller: Uuid,
        room_id: Uuid,
    ) -> Result<Vec<MemberProfile>, UserChatError> {
        let members = self.people.members(room_id).await?;
        if members.is_empty() {
            return Err(UserChatError::NotFound("no such room".into()));
        }
        if !members.iter().any(|m| m.user_id == caller) {
            return Err(UserChatError::Forbidden("only members may do this".into()));
        }
        Ok(members)
    }
}
