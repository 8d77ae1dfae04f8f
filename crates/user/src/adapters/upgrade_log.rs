//! The `upgrades` table: which one-time upgrades ran (`crate::application::ports::UpgradeLog`).

use async_trait::async_trait;
use chrono::Utc;
use msa_kernel::StoreError;
use msa_sql::SqlReadModelStore;
use sqlx::Row;
use uuid::Uuid;

use crate::application::ports::UpgradeLog;

#[async_trait]
impl UpgradeLog for SqlReadModelStore {
    async fn ran(&self, name: &str) -> Result<bool, StoreError> {
        let ran: Option<String> = sqlx::query_scalar("SELECT name FROM upgrades WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .map_err(StoreError::backend)?;
        Ok(ran.is_some())
    }

    async fn record(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO upgrades (name, ran_at) VALUES ($1, $2)")
            .bind(name)
            .bind(Utc::now().to_rfc3339())
            .execute(self.pool())
            .await
            .map_err(StoreError::backend)?;
        Ok(())
    }

    async fn active_nicknames(&self) -> Result<Vec<(Uuid, String)>, StoreError> {
        let rows = sqlx::query("SELECT user_id, nickname FROM user_directory WHERE active = 1")
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::backend)?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                let user_id = row.get::<&str, _>("user_id").parse::<Uuid>().ok()?;
                Some((user_id, row.get::<String, _>("nickname")))
            })
            .collect())
    }
}
