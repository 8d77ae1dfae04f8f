//! `user-chat.profiles`: keeps `uc_profiles` current from the user context's events.
//!
//! User events carry personal data sealed (crypto-shredding), so they are read as notifications:
//! whatever happened to a user, the handler asks the directory port for the user's public profile
//! now and stores it, or removes it when the user is gone (deactivated or erased). That makes the
//! handler indifferent to order and repeats, and a rebuild ends with today's profiles.

use std::sync::Arc;

use async_trait::async_trait;
use msa_kernel::consumer::{EventHandler, HandlerError};
use msa_kernel::RecordedEvent;
use msa_user::contract::USER_STREAM_KIND;
use uuid::Uuid;

use crate::application::ports::DirectoryPort;

pub const CONSUMER: &str = "user-chat.profiles";

pub struct Profiles {
    pub directory: Arc<dyn DirectoryPort>,
}

#[async_trait]
impl EventHandler<msa_sql::Tx> for Profiles {
    fn name(&self) -> &str {
        CONSUMER
    }

    fn wants(&self, event: &RecordedEvent) -> bool {
        event.stream_id.category() == USER_STREAM_KIND
    }

    async fn handle(
        &self,
        tx: &mut msa_sql::Tx,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        if event.stream_id.category() != USER_STREAM_KIND {
            return Ok(());
        }
        let user_id: Uuid = event.stream_id.id().parse().map_err(HandlerError::new)?;
        let profile = self
            .directory
            .profile(user_id)
            .await
            .map_err(HandlerError::new)?;
        let statement = match &profile {
            Some(_) => {
                "INSERT INTO uc_profiles (user_id, nickname, avatar_url) VALUES ($1, $2, $3)
                 ON CONFLICT (user_id) DO UPDATE SET nickname = excluded.nickname, avatar_url = excluded.avatar_url"
            }
            None => "DELETE FROM uc_profiles WHERE user_id = $1",
        };
        let mut query = sqlx::query(statement).bind(user_id.to_string());
        if let Some(profile) = profile {
            query = query.bind(profile.nickname).bind(profile.avatar_url);
        }
        query.execute(&mut **tx).await.map_err(HandlerError::new)?;
        Ok(())
    }
}
