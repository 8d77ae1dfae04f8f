//! A bounded context's descriptor: what the composition root (`crates/msa`) needs to know to
//! open its stores, migrate them, run and rebuild its projections, document its API and its
//! events, and (for a [`SelfContained`] context) serve it. The root iterates the descriptors
//! (`crates/msa/src/contexts.rs`) instead of naming contexts, so adding a self-contained context
//! is its crate plus one line there; `crates/template` is one to copy.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use msa_http::auth::TokenVerifier;
use msa_kernel::{EventStore, Projection, ProjectionRunner, RunError};
use msa_sql::{Backend, SqlReadModelStore, Tx};
use serde_json::Value;
use tokio::sync::watch;

/// What every context tells the composition root.
#[async_trait]
pub trait BoundedContext: Send + Sync {
    /// Its name: of its stores (`<name>.events.sqlite`, schema `msa_<name>`), its topic
    /// (`<name>.events`) and its spans.
    fn name(&self) -> &'static str;

    /// Whether it records events that others may follow (a core context). An application
    /// service keeps read models only, and its event store stays empty.
    fn records_events(&self) -> bool {
        true
    }

    /// Its query-side tables' migrations.
    fn migrator(&self) -> sqlx::migrate::Migrator;

    /// Its projections, for the query database's `backend` (`msa projections list|rebuild`).
    /// A serving process makes their tables and has each follow the log.
    fn projections(&self, backend: Backend) -> Vec<Arc<dyn Projection<Tx>>>;

    /// The projections (by name) a serving process catches up before it answers, because what
    /// they say must not be stale at start (the deny list). The others catch up in the
    /// background.
    fn caught_up_before_serving(&self) -> &'static [&'static str] {
        &[]
    }

    /// Work due before the projection called `name` follows the log, such as a rebuild an
    /// upgrade asked for. Returns the events it applied; a failure is tried again later, and the
    /// projection waits (the context's other projections do not). The default has none.
    async fn before_following(
        &self,
        _name: &str,
        _runner: &ProjectionRunner<SqlReadModelStore>,
        _read_models: &SqlReadModelStore,
    ) -> Result<u64, RunError> {
        Ok(0)
    }

    /// Its HTTP API's OpenAPI document.
    fn api_document(&self) -> utoipa::openapi::OpenApi;

    /// Its events, each `(event type, payload schema)`, their shared schemas added to the
    /// AsyncAPI `document` (see `msa_http::asyncapi::event_payloads`).
    fn events(&self, document: &mut Value) -> Vec<(String, Value)>;
}

/// What a self-contained context is given to serve: its own stores, the user context's token
/// checks, and the signal to stop its background work.
#[derive(Clone)]
pub struct ContextParts {
    /// Its event store (the outbox the relay publishes and its projections follow).
    pub events: Arc<dyn EventStore>,
    /// Its query database, migrated and with its projections' tables.
    pub read_models: Arc<SqlReadModelStore>,
    pub verifier: Arc<TokenVerifier>,
    pub stop: watch::Receiver<bool>,
}

/// A context that needs nothing of the others: the single server opens and migrates its stores,
/// runs its projections, relays its events and serves its routes by its descriptor alone. (Its
/// own process behind the gateway is not yet described here.)
pub trait SelfContained: BoundedContext {
    /// Its HTTP routes over `parts` (the handlers' state built here).
    fn routes(&self, parts: &ContextParts) -> Router;
}
