//! Composition of the chat context: its service, HTTP routes and history projection.

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use msa_chat::adapters::history::History;
use msa_chat::adapters::http::{internal_routes, routes, ChatApi};
use msa_chat::adapters::live::LiveFeed;
use msa_chat::adapters::search::Search;
use msa_chat::ChatService;
use msa_http::auth::TokenVerifier;
use msa_kernel::ProjectionRunner;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::storage::ContextStores;

/// The chat context, running.
pub struct ChatContext {
    pub routes: Router,
    /// Posting without the credit policy, for user-chat between microservices (`/internal`).
    pub internal_routes: Router,
    /// The use cases, for user-chat's in-process port.
    pub service: Arc<ChatService>,
    pub projections: JoinHandle<()>,
}

/// `verifier` checks the user service's access tokens (chat knows users only by their id).
pub async fn start(
    stores: &ContextStores,
    verifier: Arc<TokenVerifier>,
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
    let feed = LiveFeed::start(stores.events.clone(), stop.clone());
    let projections = tokio::spawn(async move {
        tokio::join!(
            runner.run(&History, stop.clone()),
            runner.run(&search, stop)
        );
    });
    let api = ChatApi {
        service: service.clone(),
        verifier,
        feed,
    };
    Ok(ChatContext {
        service,
        internal_routes: internal_routes(api.clone()),
        routes: routes(api),
        projections,
    })
}
