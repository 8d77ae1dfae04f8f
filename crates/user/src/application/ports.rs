//! What the user use cases need from outside the domain, as the application names it: the query
//! side, login sessions, password hashing, the login throttle, third-party login and the
//! personal-data keys. The adapters implement these (`crate::adapters::{tokens, upgrade_log,
//! passwords, throttle, kakao, personal_data}`); a failure is the store's (`StoreError`) or the
//! port's own error, answered by the HTTP adapter.

use std::net::IpAddr;

use async_trait::async_trait;
use msa_kernel::{EventStore, StoreError};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::Role;

/// Login sessions: an access token and a rotating refresh token per session (a family).
#[async_trait]
pub trait SessionTokens: Send + Sync {
    /// A new pair: the access token, and the next refresh token of `family` (a new family when
    /// `None`: a login).
    async fn issue(
        &self,
        user_id: Uuid,
        roles: &[Role],
        family: Option<Uuid>,
    ) -> Result<TokenPair, StoreError>;

    /// Uses a refresh token: its user and family, so the caller can issue the next pair. A
    /// token used before revokes its whole family.
    async fn use_refresh_token(&self, token: &str) -> Result<(Uuid, Uuid), RefreshError>;

    /// Ends the session `token` belongs to.
    async fn revoke_family_of(&self, token: &str) -> Result<(), StoreError>;

    /// Ends every session of `user_id`.
    async fn revoke_user(&self, user_id: Uuid) -> Result<(), StoreError>;
}

/// What a login or refresh hands out.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    #[schema(value_type = String)]
    pub token_type: &'static str,
    pub expires_in: u64,
}

/// Why a refresh token was refused (all answer 401).
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("unknown refresh token")]
    Unknown,
    #[error("the refresh token has expired")]
    Expired,
    #[error("the refresh token was revoked")]
    Revoked,
    #[error("the refresh token was already used; every token of its login is now revoked")]
    Reused,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Password hashing, slow on purpose.
#[async_trait]
pub trait PasswordHasher: Send + Sync {
    async fn hash(&self, password: &str) -> String;

    /// Whether `password` matches `hash`; with no hash (an unknown account) it takes the same
    /// time and answers false.
    async fn verify(&self, password: &str, hash: Option<&str>) -> bool;
}

/// Failed logins counted per account and client address.
pub trait LoginAttempts: Send + Sync {
    /// `Err(seconds)` while `account` is locked for `client` (or for everyone).
    fn check(&self, account: &str, client: Option<IpAddr>) -> Result<(), u64>;

    fn failed(&self, account: &str, client: Option<IpAddr>);

    fn succeeded(&self, account: &str, client: Option<IpAddr>);
}

/// A third-party login (Kakao): the browser is sent to the provider and comes back with a code.
#[async_trait]
pub trait KakaoLogin: Send + Sync {
    /// Starts a login (or the linking of `link_user`'s account): the provider's address to send
    /// the browser to.
    async fn start(&self, link_user: Option<Uuid>) -> Result<String, StoreError>;

    /// Ends the login `state` started, once: `None` for an unknown or used state, else the user
    /// it links (if any).
    async fn finish(&self, state: &str) -> Result<Option<Option<Uuid>>, StoreError>;

    /// The account behind the provider's `code`.
    async fn account(&self, code: &str) -> Result<KakaoAccount, KakaoError>;
}

/// Why Kakao did not give us a user.
#[derive(Debug, thiserror::Error)]
pub enum KakaoError {
    /// Kakao refused (a bad or used code, a denied consent): the user's login fails.
    #[error("Kakao refused the login: {0}")]
    Refused(String),
    /// Kakao could not be reached or answered nonsense.
    #[error("Kakao is unavailable: {0}")]
    Unavailable(String),
}

/// The Kakao account behind a login.
#[derive(Debug, Clone)]
pub struct KakaoAccount {
    pub id: String,
    pub email: Option<String>,
    pub nickname: Option<String>,
}

/// An event store that seals personal data with keys a [`PersonalDataShredder`] destroys (the
/// adapters' `ShreddingStore`): the only kind the user use cases take, so an erasure is final.
pub trait SealingEventStore: EventStore {}

/// The keys personal data is sealed with.
#[async_trait]
pub trait PersonalDataShredder: Send + Sync {
    /// Destroys the subject's key: their personal data can never be read again.
    async fn shred(&self, subject: &str) -> Result<(), StoreError>;
}

/// The sessions (refresh tokens) a user opened, for their export.
#[async_trait]
pub trait SessionHistory: Send + Sync {
    /// Each session's times (`issued_at`, `expires_at`, `used_at`, `revoked_at`), oldest first.
    async fn sessions_of(&self, user_id: Uuid) -> Result<Vec<Value>, StoreError>;
}

/// Which one-time upgrades ran, and what the upgrades read.
#[async_trait]
pub trait UpgradeLog: Send + Sync {
    /// Whether the upgrade `name` ran on this database.
    async fn ran(&self, name: &str) -> Result<bool, StoreError>;

    /// Records that the upgrade `name` ran.
    async fn record(&self, name: &str) -> Result<(), StoreError>;

    /// Every active user's id and nickname as the directory stored it.
    async fn active_nicknames(&self) -> Result<Vec<(Uuid, String)>, StoreError>;
}
