//! Reading user-chat's tables (`uc_profiles`, `uc_rooms`, `uc_members`).

use async_trait::async_trait;
use msa_kernel::StoreError;
use msa_sql::SqlReadModelStore;
use sqlx::Row;
use uuid::Uuid;

use crate::application::ports::KnownPeople;
pub use crate::application::views::{MemberProfile, Peer};

#[async_trait]
impl KnownPeople for SqlReadModelStore {
    /// Which of `ids` have a profile here (active users this read model has seen).
    async fn known_users(
        &self,
        ids: &std::collections::BTreeSet<Uuid>,
    ) -> Result<std::collections::BTreeSet<Uuid>, StoreError> {
        let mut known = std::collections::BTreeSet::new();
        let ids: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        // In slices, so a statement never holds more parameters than a database takes.
        for slice in ids.chunks(500) {
            let placeholders = (1..=slice.len())
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!("SELECT user_id FROM uc_profiles WHERE user_id IN ({placeholders})");
            let mut query = sqlx::query(&sql);
            for id in slice {
                query = query.bind(id);
            }
            for row in query
                .fetch_all(self.pool())
                .await
                .map_err(StoreError::backend)?
            {
                let id: String = row.try_get("user_id").map_err(StoreError::backend)?;
                known.insert(id.parse().map_err(StoreError::backend)?);
            }
        }
        Ok(known)
    }

    /// For each direct room of `me` among `rooms` (a page of the inbox), the other member with their profile if they still have one (one
    /// query for the inbox).
    async fn peers_of(
        &self,
        me: Uuid,
        rooms: &[&str],
    ) -> Result<std::collections::HashMap<String, Peer>, StoreError> {
        if rooms.is_empty() {
            return Ok(Default::default());
        }
        let sql = format!(
            "SELECT other.room_id, other.user_id, p.nickname, p.avatar_url
         FROM uc_members mine
         JOIN uc_rooms r ON r.room_id = mine.room_id AND r.kind = 'direct'
         JOIN uc_members other ON other.room_id = mine.room_id AND other.user_id <> mine.user_id
         LEFT JOIN uc_profiles p ON p.user_id = other.user_id
         WHERE mine.user_id = $1 AND mine.room_id IN ({})",
            (2..rooms.len() + 2)
                .map(|n| format!("${n}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let query = rooms
            .iter()
            .fold(sqlx::query(&sql).bind(me.to_string()), |query, room| {
                query.bind(room.to_string())
            });
        let rows = query
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::backend)?;
        rows.iter()
            .map(|row| {
                let peer = Peer {
                    user_id: row
                        .try_get::<String, _>("user_id")
                        .map_err(StoreError::backend)?
                        .parse()
                        .map_err(StoreError::backend)?,
                    nickname: row.try_get("nickname").map_err(StoreError::backend)?,
                    avatar_url: row.try_get("avatar_url").map_err(StoreError::backend)?,
                };
                Ok((row.try_get("room_id").map_err(StoreError::backend)?, peer))
            })
            .collect()
    }

    async fn members(&self, room_id: Uuid) -> Result<Vec<MemberProfile>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.user_id, m.role, p.nickname, p.avatar_url FROM uc_members m
         LEFT JOIN uc_profiles p ON p.user_id = m.user_id
         WHERE m.room_id = $1 ORDER BY p.nickname, m.user_id",
        )
        .bind(room_id.to_string())
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        rows.iter()
            .map(|row| {
                Ok(MemberProfile {
                    user_id: row
                        .try_get::<String, _>("user_id")
                        .map_err(StoreError::backend)?
                        .parse()
                        .map_err(StoreError::backend)?,
                    role: row.try_get("role").map_err(StoreError::backend)?,
                    nickname: row.try_get("nickname").map_err(StoreError::backend)?,
                    avatar_url: row.try_get("avatar_url").map_err(StoreError::backend)?,
                })
            })
            .collect()
    }
}
