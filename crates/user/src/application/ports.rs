//! What the user use cases need from the query side, as the application names it. The adapters
//! implement these over the read models (`crate::adapters::{tokens, upgrade_log}`); a failure is
//! the store's (`StoreError`), answered by the HTTP adapter.

use async_trait::async_trait;
use msa_kernel::StoreError;
use serde_json::Value;
use uuid::Uuid;

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
