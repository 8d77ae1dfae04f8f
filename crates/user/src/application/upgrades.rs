//! One-time upgrades of what older versions stored, run at start before the service answers.

use chrono::Utc;
use sqlx::Row;
use uuid::Uuid;

use super::{UserService, UserServiceError};
use crate::domain::{Claim, ClaimKind, Nickname};

/// Nicknames registered before look-alikes collided hold no look claim: each active user's
/// nickname takes its look now, so a new look-alike of it is refused (409). Where two existing
/// users' nicknames already look alike, the first to be upgraded keeps the look; both keep their
/// nicknames.
const NICKNAME_LOOKS: &str = "nickname-looks";

impl UserService {
    /// Runs the upgrades not run yet on this database. The directory must be up to date.
    pub async fn upgrade(&self) -> Result<(), UserServiceError> {
        let db = self.read_models.pool();
        let ran: Option<String> = sqlx::query_scalar("SELECT name FROM upgrades WHERE name = $1")
            .bind(NICKNAME_LOOKS)
            .fetch_optional(db)
            .await
            .map_err(msa_kernel::StoreError::backend)?;
        if ran.is_some() {
            return Ok(());
        }
        let rows = sqlx::query("SELECT user_id, nickname FROM user_directory WHERE active = 1")
            .fetch_all(db)
            .await
            .map_err(msa_kernel::StoreError::backend)?;
        let mut shared = 0;
        for row in &rows {
            let Ok(user_id) = row.get::<&str, _>("user_id").parse::<Uuid>() else {
                continue;
            };
            // Stored nicknames are not parsed again (older rules): only their look is taken.
            let nickname: Nickname =
                serde_json::from_value(serde_json::json!(row.get::<&str, _>("nickname")))
                    .map_err(msa_kernel::StoreError::backend)?;
            let claim = Claim::stream(ClaimKind::NicknameLook, &nickname.look());
            let metadata = Self::metadata(Some(user_id));
            if self.take(&claim, user_id, &metadata).await?.is_err() {
                shared += 1;
            }
        }
        tracing::info!(
            users = rows.len(),
            looking_alike = shared,
            "existing nicknames now hold their look"
        );
        sqlx::query("INSERT INTO upgrades (name, ran_at) VALUES ($1, $2)")
            .bind(NICKNAME_LOOKS)
            .bind(Utc::now().to_rfc3339())
            .execute(db)
            .await
            .map_err(msa_kernel::StoreError::backend)?;
        Ok(())
    }
}
