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

pub use application::{sealed_events, UserService, UserServiceError};

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
