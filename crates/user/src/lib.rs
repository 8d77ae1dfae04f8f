//! The user context (a core service): accounts, login tokens, profiles, the user directory.
//! It references no other context; others learn about users from its events (`user.events`) and
//! verify its tokens with its public keys.
//!
//! - [`domain`]: the `User` and `Claim` aggregates and the values they are made of;
//! - [`application`]: the use cases ([`UserService`]);
//! - [`adapters`]: HTTP (`/v1/users`, `/v1/auth`), the directory projection, argon2id, tokens.

pub mod adapters;
pub mod application;
pub mod domain;

pub use adapters::personal_data::sealed_events;
pub use application::{UserService, UserServiceError};

/// What other services may use of the user context: its events, its DTOs and the public-profile
/// reader (the architecture test holds application services to this module).
pub mod contract {
    pub use crate::application::profile::{ProfileView, PublicProfiles};
    pub use crate::domain::{Nickname, UserEvent};

    /// The stream category of user aggregates (`user.user-<id>`).
    pub const USER_STREAM_KIND: &str = <crate::domain::User as msa_kernel::Aggregate>::KIND;
}

/// The user context's own query-side tables (versions 2000 and up).
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// The user context, as the composition root sees it (`msa_context`).
pub struct Context;

impl msa_context::BoundedContext for Context {
    fn name(&self) -> &'static str {
        "user"
    }

    fn migrator(&self) -> sqlx::migrate::Migrator {
        migrator()
    }

    fn projections(
        &self,
        _backend: msa_sql::Backend,
    ) -> Vec<std::sync::Arc<dyn msa_kernel::Projection<msa_sql::Tx>>> {
        vec![
            std::sync::Arc::new(adapters::directory::Directory),
            std::sync::Arc::new(adapters::revocations::RevocationsProjection),
        ]
    }

    /// The directory, because an upgrade reads it; the deny list, because a revoked token
    /// must not pass at start.
    fn caught_up_before_serving(&self) -> &'static [&'static str] {
        &[
            adapters::directory::Directory::NAME,
            adapters::revocations::RevocationsProjection::NAME,
        ]
    }

    fn api_document(&self) -> utoipa::openapi::OpenApi {
        <adapters::http::UserApiDoc as utoipa::OpenApi>::openapi()
    }

    fn events(&self, document: &mut serde_json::Value) -> Vec<(String, serde_json::Value)> {
        let mut events = msa_http::asyncapi::event_payloads::<domain::UserEvent>(
            <domain::UserEvent as msa_kernel::DomainEvent>::CONTEXT,
            document,
        );
        events.extend(msa_http::asyncapi::event_payloads::<domain::ClaimEvent>(
            <domain::ClaimEvent as msa_kernel::DomainEvent>::CONTEXT,
            document,
        ));
        events
    }
}
