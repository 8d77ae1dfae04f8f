//! The user context's use cases. Each takes already-parsed domain values, runs the aggregates
//! through their repositories and answers in domain terms; the HTTP adapter maps the answers.

mod erasure;
mod kakao;
pub mod ports;
pub mod profile;
mod register;
pub mod roles;
mod sessions;
mod upgrades;

use std::sync::Arc;

use msa_kernel::{CommandError, EventMetadata, EventStore, FieldError, Repository, StoreError};
use uuid::Uuid;

use crate::domain::{Claim, User};
use ports::{
    KakaoLogin, LoginAttempts, PasswordHasher, PersonalDataShredder, SealingEventStore,
    SessionHistory, SessionTokens, UpgradeLog,
};
use profile::PublicProfiles;

pub use erasure::{ErasureConfirmation, Export};
pub use kakao::KakaoOutcome;
pub use profile::{ProfileChange, ProfileView};
pub use register::Registration;

/// Why a use case did not happen.
#[derive(Debug, thiserror::Error)]
pub enum UserServiceError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("this email is already registered")]
    EmailTaken,
    #[error("this nickname is taken")]
    NicknameTaken,
    #[error("wrong email or password")]
    BadCredentials,
    #[error("too many failed logins; try again in {0} s")]
    Throttled(u64),
    #[error("{0}")]
    BadRefreshToken(String),
    /// A third-party login was refused (a bad state or code, a denied consent).
    #[error("{0}")]
    LoginRefused(String),
    #[error("no such user")]
    NotFound,
    #[error("this account was deactivated")]
    Deactivated,
    #[error("the account is busy; try again")]
    Busy,
    /// Deleting an account without a password (made with Kakao) needs a log-in moments ago.
    #[error(
        "log in again, then delete the account within {} minutes of logging in",
        erasure::FRESH_LOG_IN_MINUTES
    )]
    StaleLogIn,
    #[error("Kakao login is not configured on this server")]
    KakaoNotConfigured,
    #[error("this Kakao account is linked to another user")]
    KakaoTaken,
    #[error("an upstream service failed: {0}")]
    Upstream(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<E: std::error::Error + 'static> From<CommandError<E>> for UserServiceError {
    /// For commands whose domain refusals the caller has already handled.
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Store(error) => UserServiceError::Store(error),
            CommandError::Conflict(_) => UserServiceError::Busy,
            other => UserServiceError::Store(StoreError::Backend(other.to_string().into())),
        }
    }
}

/// The user context's application service.
pub struct UserService {
    users: Repository<User>,
    claims: Repository<Claim>,
    /// Public profiles, over the same repositories (and their state caches).
    profiles: PublicProfiles,
    /// The event store as the service sees it: personal data opened.
    events: Arc<dyn EventStore>,
    keys: Arc<dyn PersonalDataShredder>,
    sessions: Arc<dyn SessionHistory>,
    upgrades: Arc<dyn UpgradeLog>,
    passwords: Arc<dyn PasswordHasher>,
    tokens: Arc<dyn SessionTokens>,
    throttle: Arc<dyn LoginAttempts>,
    kakao: Option<Arc<dyn KakaoLogin>>,
    /// How long an erased user's nickname stays held (`--nickname-hold`).
    nickname_hold: chrono::Duration,
}

/// How long an erased user's nickname stays held unless configured otherwise.
pub const NICKNAME_HOLD: chrono::Duration = chrono::Duration::days(30);

impl UserService {
    /// `events` seals personal data with the keys `keys` shreds (the adapters' `ShreddingStore`
    /// over `PersonalDataKeys`: see `crate::sealed_events`). Failed logins are counted by
    /// `throttle`.
    pub fn new<R>(
        events: Arc<dyn SealingEventStore>,
        keys: Arc<dyn PersonalDataShredder>,
        read_models: Arc<R>,
        passwords: Arc<dyn PasswordHasher>,
        tokens: Arc<dyn SessionTokens>,
        throttle: Arc<dyn LoginAttempts>,
    ) -> Self
    where
        R: SessionHistory + UpgradeLog + 'static,
    {
        let events: Arc<dyn EventStore> = events;
        let (users, claims) = (
            Repository::new(events.clone()),
            Repository::new(events.clone()),
        );
        Self {
            profiles: PublicProfiles::over(users.clone(), claims.clone()),
            users,
            claims,
            events,
            keys,
            sessions: read_models.clone(),
            upgrades: read_models,
            passwords,
            tokens,
            throttle,
            kakao: None,
            nickname_hold: NICKNAME_HOLD,
        }
    }

    /// Holds an erased user's nickname for `hold` (default [`NICKNAME_HOLD`]) before anyone
    /// else may take it.
    pub fn with_nickname_hold(mut self, hold: chrono::Duration) -> Self {
        self.nickname_hold = hold;
        self
    }

    /// Enables Kakao Login.
    pub fn with_kakao(mut self, kakao: Arc<dyn KakaoLogin>) -> Self {
        self.kakao = Some(kakao);
        self
    }

    /// The event store with personal data opened: what the context's projections read.
    pub fn events(&self) -> Arc<dyn EventStore> {
        self.events.clone()
    }

    pub(crate) fn metadata(actor: Option<Uuid>) -> EventMetadata {
        EventMetadata::current(actor.map(|a| a.to_string()))
    }
}
