//! A template context to copy: **notes**, a user's private notes. It is small on purpose and
//! shaped like every context of the workspace:
//!
//! - [`domain`]: the `Note` aggregate (a decider: `decide` and `apply`, no I/O), its commands,
//!   events and errors, and its value objects (`NoteText`: parsed once, never a bare string);
//! - [`application`]: the use cases ([`NotesService`]), which depend on ports they define
//!   (`application::ports`) and on domain types only, never on SQL or HTTP;
//! - [`adapters`]: the projection that implements the query port (`adapters::note_list`) and
//!   the HTTP API (`adapters::http`), which maps the use cases' errors to problem documents.
//!
//! [`Context`] describes the context to the composition root (`msa_context`): one line in
//! `crates/msa/src/contexts.rs` serves it (the binary built with `--features template`).
//! Served in the single server; a context of its own process behind the gateway still needs
//! `msa serve`'s service names, the gateway's routes and the compose file (ARCHITECTURE.md,
//! "Adding a context"). To start a context of your own: copy this crate, rename `notes`, pick a
//! free migration range, add the optional dependency and your line there.
//!
//! What the template leaves out, and a copy that ships must add:
//! - **personal data**: a note's text is kept in clear in its events (and published to
//!   `notes.events` with Kafka). Seal it per user as the user context does
//!   (`msa_user::adapters::personal_data`), and answer an account's erasure and export;
//! - **limits**: how many notes one user may keep.

pub mod adapters;
pub mod application;
pub mod domain;

use std::sync::Arc;

use axum::Router;
use msa_context::{BoundedContext, ContextParts, SelfContained};
use msa_kernel::{DomainEvent, Projection};
use msa_sql::{Backend, Tx};
use serde_json::Value;
use utoipa::OpenApi;

pub use application::{NotesError, NotesService};

/// The notes context, as the composition root sees it.
pub struct Context;

impl BoundedContext for Context {
    fn name(&self) -> &'static str {
        domain::NoteEvent::CONTEXT
    }

    fn migrator(&self) -> sqlx::migrate::Migrator {
        let mut migrator = sqlx::migrate!("./migrations");
        migrator.set_ignore_missing(true);
        migrator
    }

    fn projections(&self, _backend: Backend) -> Vec<Arc<dyn Projection<Tx>>> {
        vec![Arc::new(adapters::note_list::NoteList)]
    }

    fn api_document(&self) -> utoipa::openapi::OpenApi {
        adapters::http::NotesApiDoc::openapi()
    }

    fn events(&self, document: &mut Value) -> Vec<(String, Value)> {
        msa_http::asyncapi::event_payloads::<domain::NoteEvent>(
            domain::NoteEvent::CONTEXT,
            document,
        )
    }
}

impl SelfContained for Context {
    fn routes(&self, parts: &ContextParts) -> Router {
        let service = NotesService::new(parts.events.clone(), parts.read_models.clone());
        adapters::http::routes(adapters::http::NotesApi {
            service: Arc::new(service),
            verifier: parts.verifier.clone(),
        })
    }
}
