//! user-chat, the application service: it composes the core services and owns no source of truth.
//!
//! - [`application`]: the credit policy for sending (spend, post, refund the spend if the post is
//!   refused), direct chats by nickname, the inbox and member lists with profiles;
//!   `application::ports`: what it needs from chat, payment and user (in-process calls in the
//!   single server, HTTP to internal endpoints between microservices; the in-process adapters
//!   live in the composition root) and from its read models;
//!   `application::send_recovery`: the process manager that completes or refunds every send
//!   left half-done (a credit spent, no post), from the wallet events and what chat's store says
//!   of the send; `application::export`: a person's export, composed of every core service's
//!   part of it;
//! - [`adapters`]: HTTP, and the consumers that keep its read models (profiles from user events,
//!   room members from chat events, open spends from wallet events).
//!
//! It uses the core services only through their `contract` modules (checked by
//! `crates/msa/tests/architecture.rs`).

pub mod adapters;
pub mod application;

pub use application::UserChat;

/// user-chat's query-side tables (versions 5000 and up).
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// user-chat, as the composition root sees it (`msa_context`).
pub struct Context;

impl msa_context::BoundedContext for Context {
    fn name(&self) -> &'static str {
        "user-chat"
    }

    /// It keeps read models built from the others' events and records none of its own.
    fn records_events(&self) -> bool {
        false
    }

    fn migrator(&self) -> sqlx::migrate::Migrator {
        migrator()
    }

    fn projections(
        &self,
        _backend: msa_sql::Backend,
    ) -> Vec<std::sync::Arc<dyn msa_kernel::Projection<msa_sql::Tx>>> {
        Vec::new()
    }

    fn api_document(&self) -> utoipa::openapi::OpenApi {
        <adapters::http::UserChatApiDoc as utoipa::OpenApi>::openapi()
    }

    fn events(&self, document: &mut serde_json::Value) -> Vec<(String, serde_json::Value)> {
        let _ = document;
        Vec::new()
    }
}
