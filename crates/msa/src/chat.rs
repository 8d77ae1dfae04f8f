//! Composition of the chat context: its service, HTTP routes and history projection.

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use msa_chat::adapters::history::History;
use msa_chat::adapters::http::{internal_routes, routes, ChatApi};
use msa_chat::adapters::invites::Invites;
use msa_chat::adapters::live::LiveFeed;
use msa_chat::adapters::live_limits::LiveLimitSettings;
use msa_chat::adapters::search::{self, Search};
use msa_chat::application::sends::Sends;
use msa_chat::ChatService;
use msa_http::auth::TokenVerifier;
use msa_http::service_identity::TrustedServices;
use msa_kernel::ProjectionRunner;
use msa_sql::SqlReadModelStore;
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
    let runner = ProjectionRunner::new(stores.events.clone(), stores.read_models.clone());
    runner
        .ensure_tables(&History)
        .await
        .context("creating the chat history tables")?;
    let search = Search {
        backend: stores.read_models.backend(),
    };
    runner
        .ensure_tables(&search)
        .await
        .context("creating the chat search index")?;
    runner
        .ensure_tables(&Invites)
        .await
        .context("creating the chat invitations table")?;
    let feed = LiveFeed::start(stores.events.clone(), live, stop.clone());
    let read_models = stores.read_models.clone();
    let projections = tokio::spawn(async move {
        let search_index = async {
            // An index built by an earlier version is built again first (searches answer 503
            // meanwhile); the runner then follows the log into the new generation.
            if !rebuild_search_if_due(&runner, &read_models, &search, stop.clone()).await {
                return;
            }
            runner.run(&search, stop.clone()).await
        };
        tokio::join!(
            runner.run(&History, stop.clone()),
            search_index,
            runner.run(&Invites, stop.clone())
        );
    });
    let api = ChatApi::new(service.clone(), stores.read_models.clone(), verifier, feed);
    Ok(ChatContext {
        service,
        sends: Arc::new(Sends::new(stores.events.clone())),
        routes: routes(api.clone()),
        api,
        projections,
    })
}

/// Rebuilds the search index if an upgrade asked for it (`search::rebuild_if_due`), trying
/// again every 10 s after a failure; false when stopped first.
async fn rebuild_search_if_due(
    runner: &ProjectionRunner<SqlReadModelStore>,
    read_models: &SqlReadModelStore,
    search: &Search,
    mut stop: watch::Receiver<bool>,
) -> bool {
    loop {
        match search::rebuild_if_due(runner, read_models, search).await {
            Ok(0) => return true,
            Ok(applied) => {
                tracing::info!(applied, "chat.search rebuilt as an n-gram index");
                return true;
            }
            Err(error) => {
                tracing::error!(%error, "rebuilding chat.search after an upgrade failed; trying again in 10 s")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
            _ = stop.changed() => return false,
        }
        if *stop.borrow() {
            return false;
        }
    }
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
