//! Composition of user-chat in the single server: its ports answered by in-process calls into
//! the core services (the microservice deployment answers them over HTTP instead).

use std::sync::Arc;

use anyhow::{Context, Result};
use async_trait::async_trait;
use axum::Router;
use msa_chat::application::sends::{SendOutcome, SendRef, Sends};
use msa_chat::contract::{
    MessageBody, PostedMessage, RoomCommand, RoomKind, RoomName, RoomPage, RoomView, TxnId,
};
use msa_chat::ChatService;
use msa_http::admission::Admission;
use msa_http::auth::TokenVerifier;
use msa_http::service_identity::ServiceIdentity;
use msa_http::Problem;
use msa_payment::application::wallets::{Spent, Wallets};
use msa_payment::contract::SpendKey;
use msa_user::contract::{Nickname, ProfileView, PublicProfiles};
use msa_user_chat::adapters::http::{routes, UserChatApi};
use msa_user_chat::adapters::remote::{RemoteChat, RemoteDirectory, RemoteWallets, Service};
use msa_user_chat::application::ports::{
    ChatPort, DirectoryPort, Requester, ServiceError, WalletPort,
};
use msa_user_chat::application::send_recovery::SendRecovery;
use msa_user_chat::UserChat;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::cli::{ServiceUrls, StorageArgs, UserChatArgs};
use crate::storage::ContextStores;

/// A core service's error as user-chat's ports take it: in the words its HTTP API would use, so
/// both deployments answer alike.
pub fn answer(error: impl Into<Problem>) -> ServiceError {
    ServiceError::from(error.into())
}

/// Chat's use cases, and what its store says of sends (for the send recovery).
struct InProcessChat(Arc<ChatService>, Arc<Sends>);

#[async_trait]
impl ChatPort for InProcessChat {
    async fn post(
        &self,
        sender: &Requester,
        room_id: Uuid,
        txn_id: &TxnId,
        body: MessageBody,
        reply_to: Option<Uuid>,
    ) -> Result<(PostedMessage, bool), ServiceError> {
        Ok(self
            .0
            .post(sender.user_id, room_id, txn_id, body, reply_to)
            .await
            .map_err(answer)?)
    }

    async fn send_outcomes(&self, sends: &[SendRef]) -> Result<Vec<SendOutcome>, ServiceError> {
        Ok(self.1.outcomes(sends).await.map_err(answer)?)
    }

    async fn withdraw_send(&self, send: &SendRef) -> Result<SendOutcome, ServiceError> {
        Ok(self.1.withdraw(send).await.map_err(answer)?)
    }

    async fn create_room(
        &self,
        caller: &Requester,
        kind: RoomKind,
        name: Option<RoomName>,
        members: Vec<Uuid>,
    ) -> Result<(RoomView, bool), ServiceError> {
        Ok(self
            .0
            .create_room(caller.user_id, kind, name, members)
            .await
            .map_err(answer)?)
    }

    async fn invite(
        &self,
        caller: &Requester,
        room_id: Uuid,
        user_id: Uuid,
    ) -> Result<(), ServiceError> {
        let command = RoomCommand::Invite {
            by: caller.user_id,
            user_id,
        };
        Ok(self
            .0
            .change_membership(caller.user_id, room_id, command)
            .await
            .map_err(answer)?)
    }

    async fn rooms_of(
        &self,
        caller: &Requester,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<RoomPage, ServiceError> {
        let after = msa_http::page_cursor(cursor).map_err(answer)?;
        Ok(self
            .0
            .rooms_of(caller.user_id, after, limit)
            .await
            .map_err(answer)?)
    }
}

struct InProcessWallets(Arc<Wallets>);

#[async_trait]
impl WalletPort for InProcessWallets {
    async fn spend(&self, user: &Requester, spend_key: &SpendKey) -> Result<Spent, ServiceError> {
        Ok(self
            .0
            .spend(user.user_id, spend_key)
            .await
            .map_err(answer)?)
    }

    async fn refund_spend(&self, user_id: Uuid, spend_key: &SpendKey) -> Result<(), ServiceError> {
        Ok(self
            .0
            .refund_spend(user_id, spend_key)
            .await
            .map_err(answer)?)
    }
}

struct InProcessDirectory(PublicProfiles);

#[async_trait]
impl DirectoryPort for InProcessDirectory {
    async fn profile(&self, user_id: Uuid) -> Result<Option<ProfileView>, ServiceError> {
        self.0
            .by_id(user_id)
            .await
            .map_err(|e| answer(Problem::storage(&e)))
    }

    async fn by_nickname(&self, nickname: &str) -> Result<Option<ProfileView>, ServiceError> {
        let Ok(nickname) = Nickname::parse(nickname) else {
            return Ok(None);
        };
        self.0
            .by_nickname(&nickname)
            .await
            .map_err(|e| answer(Problem::storage(&e)))
    }
}

/// The user directory in-process: public profiles read from the user context's (sealed) events.
pub async fn directory(
    storage: &StorageArgs,
    user: &ContextStores,
) -> Result<Arc<dyn DirectoryPort>> {
    let (events, _) = crate::user::sealed_events(storage, user).await?;
    Ok(Arc::new(InProcessDirectory(PublicProfiles::new(events))))
}

/// user-chat, running: its routes and the send recovery.
pub struct UserChatContext {
    pub routes: Router,
    pub recovery: JoinHandle<()>,
}

/// user-chat over the in-process core services (the single server).
#[allow(clippy::too_many_arguments)]
pub async fn start(
    stores: &ContextStores,
    chat: Arc<ChatService>,
    sends: Arc<Sends>,
    wallets: Arc<Wallets>,
    directory: Arc<dyn DirectoryPort>,
    verifier: Arc<TokenVerifier>,
    settings: &UserChatArgs,
    stop: watch::Receiver<bool>,
) -> Result<UserChatContext> {
    let ports = Ports {
        chat: Arc::new(InProcessChat(chat, sends)),
        wallets: Arc::new(InProcessWallets(wallets)),
        directory,
    };
    start_with(stores, ports, verifier, settings, stop).await
}

/// user-chat's ports.
pub struct Ports {
    pub chat: Arc<dyn ChatPort>,
    pub wallets: Arc<dyn WalletPort>,
    pub directory: Arc<dyn DirectoryPort>,
}

/// The other services as `serve user-chat` calls them (one client each, shared by every port
/// over it); their `/internal` endpoints are called as `identity`.
pub struct RemoteServices {
    pub user: Service,
    pub chat: Service,
    pub payment: Service,
}

pub fn remote_services(
    urls: &ServiceUrls,
    identity: Arc<ServiceIdentity>,
) -> Result<RemoteServices> {
    let service = |name: &'static str| -> Result<Service> {
        let url = urls.require(name, "`serve user-chat`")?;
        Service::new(name, &url, urls.upstream_timeout)
            .map(|service| service.with_identity(identity.clone()))
            .map_err(|error| anyhow::anyhow!("the {name} service's URL: {error}"))
    };
    Ok(RemoteServices {
        user: service("user")?,
        chat: service("chat")?,
        payment: service("payment")?,
    })
}

/// The ports answered over HTTP by the other services (microservices).
pub fn remote_ports(services: &RemoteServices) -> Ports {
    Ports {
        chat: Arc::new(RemoteChat(services.chat.clone())),
        wallets: Arc::new(RemoteWallets(services.payment.clone())),
        directory: Arc::new(RemoteDirectory(services.user.clone())),
    }
}

/// user-chat over `ports`: its routes, and the send recovery running until `stop`.
pub async fn start_with(
    stores: &ContextStores,
    ports: Ports,
    verifier: Arc<TokenVerifier>,
    settings: &UserChatArgs,
    stop: watch::Receiver<bool>,
) -> Result<UserChatContext> {
    msa_user_chat::migrator()
        .run(stores.read_models.pool())
        .await
        .context("migrating user-chat's query database")?;
    let recovery = Arc::new(SendRecovery::new(
        ports.chat.clone(),
        ports.wallets.clone(),
        stores.read_models.clone(),
        settings.recovery(),
    ));
    let service = UserChat::new(
        ports.chat,
        ports.wallets,
        ports.directory,
        stores.read_models.clone(),
    );
    Ok(UserChatContext {
        routes: routes(UserChatApi {
            service: Arc::new(service),
            verifier,
            admission: Arc::new(Admission::new("sends", settings.admission())),
        }),
        recovery: tokio::spawn(async move { recovery.run(stop).await }),
    })
}
