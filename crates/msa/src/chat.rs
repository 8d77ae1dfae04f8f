//! Composition of the chat context: its service, HTTP routes, live feed and projections.

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use msa_chat::adapters::http::{internal_routes, routes, ChatApi};
use msa_chat::adapters::live::LiveFeed;
use msa_chat::adapters::live_limits::LiveLimitSettings;
use msa_chat::application::sends::Sends;
use msa_chat::ChatService;
use msa_http::auth::TokenVerifier;
use msa_http::service_identity::TrustedServices;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::storage::ContextStores;

/// The chat context, running.
pub struct ChatContext {
    pub routes: Router,
    api: ChatApi,
    /// The use cases, for user-chat's in-process port.
    pub service: Arc<ChatService>,
    /// What chat's store says of sends, for user-chat's send recovery in-process.
    pub sends: Arc<Sends>,
    pub projections: JoinHandle<()>,
}

/// `verifier` checks the user service's access tokens (chat knows users only by their id);
/// `live` bounds what one client may hold of the live stream.
pub async fn start(
    stores: &ContextStores,
    verifier: Arc<TokenVerifier>,
    live: LiveLimitSettings,
    stop: watch::Receiver<bool>,
) -> Result<ChatContext> {
    msa_chat::migrator()
        .run(stores.read_models.pool())
        .await
        .context("migrating the chat context's query database")?;
    let service = Arc::new(ChatService::new(
        stores.events.clone(),
        stores.read_models.clone(),
    ));
    let feed = LiveFeed::start(stores.events.clone(), live, stop.clone());
    let projections = crate::projection_start::start(
        &msa_chat::Context,
        stores.events.clone(),
        &stores.read_models,
        stop,
    )
    .await?;
    let api = ChatApi::new(service.clone(), stores.read_models.clone(), verifier, feed);
    Ok(ChatContext {
        service,
        sends: Arc::new(Sends::new(stores.events.clone())),
        routes: routes(api.clone()),
        api,
        projections,
    })
}

impl ChatContext {
    /// Posting without the credit policy, and what became of sends, for user-chat between
    /// microservices (`/internal`), answered only to the services in `callers`.
    pub fn internal_routes(&self, callers: Arc<TrustedServices>) -> Router {
        internal_routes(self.api.clone(), callers.clone())
            .merge(msa_chat::adapters::sends_http::internal_routes(
                self.sends.clone(),
                callers.clone(),
            ))
            // A person's records, for user-chat's export.
            .merge(msa_chat::adapters::export::internal_routes(
                self.api.read_models.clone(),
                callers,
            ))
    }
}
