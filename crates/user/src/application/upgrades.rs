//! One-time upgrades of what older versions stored, run at start before the service answers.

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
        if self.upgrades.ran(NICKNAME_LOOKS).await? {
            return Ok(());
        }
        let users = self.upgrades.active_nicknames().await?;
        let mut shared = 0;
        for (user_id, nickname) in &users {
            let user_id = *user_id;
            // Stored nicknames are not parsed again (older rules): only their look is taken.
            let nickname: Nickname = serde_json::from_value(serde_json::json!(nickname))
                .map_err(msa_kernel::StoreError::backend)?;
            let claim = Claim::stream(ClaimKind::NicknameLook, &nickname.look());
            let metadata = Self::metadata(Some(user_id));
            if self.take(&claim, user_id, &metadata).await?.is_err() {
                shared += 1;
            }
        }
        tracing::info!(
            users = users.len(),
            looking_alike = shared,
            "existing nicknames now hold their look"
        );
        self.upgrades.record(NICKNAME_LOOKS).await?;
        Ok(())
    }
}
