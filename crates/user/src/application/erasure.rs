//! Leaving: erasure (deactivate, then crypto-shred) and the export of every personal datum held.

use chrono::Utc;
use msa_kernel::{CommandError, Repository};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::{ProfileView, UserService, UserServiceError};
use crate::domain::{Claim, ClaimKind, User, UserCommand, UserError};

/// Everything the user context holds about one user.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Export {
    pub profile: ProfileView,
    /// The account's event history, personal data opened.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
    /// Login sessions (refresh tokens), without the tokens.
    #[schema(value_type = Vec<Object>)]
    pub sessions: Vec<Value>,
}

/// How a person confirms deleting their account, so that an access token alone (a stolen
/// one) cannot: their password, or for an account linked to Kakao (one made with Kakao has a
/// password nobody was told) a log-in within [`FRESH_LOG_IN_MINUTES`] (refreshing the session
/// does not count as one).
#[derive(Debug)]
pub struct ErasureConfirmation {
    pub password: Option<String>,
    /// When the session's log-in was (Unix seconds), as the access token says.
    pub logged_in_at: Option<i64>,
}

/// How recent a log-in deletes an account without a password.
pub const FRESH_LOG_IN_MINUTES: i64 = 10;

impl UserService {
    /// Deactivates the account and erases its personal data: the events stay, but the key that
    /// opens their personal fields is destroyed. The email becomes free again at once, the
    /// nickname (and its look) after the nickname hold (`--nickname-hold`): whoever knew this
    /// person by it must not meet a stranger under it the next day.
    pub async fn erase(
        &self,
        user_id: Uuid,
        confirmation: ErasureConfirmation,
    ) -> Result<(), UserServiceError> {
        let user = self.active_user(user_id).await?;
        match (&confirmation.password, &user.kakao_id) {
            (Some(password), _) => self.password_confirms(&user, password, "password").await?,
            // An account made with Kakao has a password nobody was told.
            (None, Some(_)) => {
                let fresh = confirmation
                    .logged_in_at
                    .is_some_and(|at| Utc::now().timestamp() - at <= FRESH_LOG_IN_MINUTES * 60);
                if !fresh {
                    return Err(UserServiceError::StaleLogIn);
                }
            }
            (None, None) => {
                return Err(UserServiceError::Invalid(vec![
                    msa_kernel::FieldError::new(
                        "password",
                        "required: the account's password confirms its deletion",
                    ),
                ]))
            }
        }
        self.erase_account(user_id, true).await
    }

    /// Erases the account; its nickname is held only if `hold_nickname`.
    pub(super) async fn erase_account(
        &self,
        user_id: Uuid,
        hold_nickname: bool,
    ) -> Result<(), UserServiceError> {
        let stream = Repository::<User>::stream_id(user_id);
        let before = self.users.load(&stream).await?.state;
        let at = Utc::now();
        let command = UserCommand::Erase { at };
        match self
            .users
            .execute(&stream, &command, &Self::metadata(Some(user_id)))
            .await
        {
            Ok(_) => {}
            Err(CommandError::Domain(UserError::NotRegistered)) => {
                return Err(UserServiceError::NotFound)
            }
            Err(other) => return Err(other.into()),
        }
        self.tokens.revoke_user(user_id).await?;
        self.keys.shred(&user_id.to_string()).await?;
        // Claims hold only hashes; giving them back lets someone else use the email or nickname.
        if let Some(email) = &before.email {
            self.release(
                &Claim::stream(ClaimKind::Email, &email.normalized()),
                user_id,
            )
            .await;
        }
        if let Some(nickname) = &before.nickname {
            for claim in super::register::nickname_claims(nickname) {
                if hold_nickname {
                    self.release_on_erasure(&claim, user_id, at).await;
                } else {
                    self.release(&claim, user_id).await;
                }
            }
        }
        Ok(())
    }

    pub async fn export(&self, user_id: Uuid) -> Result<Export, UserServiceError> {
        let profile = self.me(user_id).await?;
        let events = self
            .events
            .read_stream(&Repository::<User>::stream_id(user_id), 0)
            .await?
            .into_iter()
            .map(|event| {
                serde_json::json!({
                    "event_type": event.event_type,
                    "version": event.version,
                    "occurred_at": event.occurred_at,
                    "data": redact_secrets(event.payload),
                })
            })
            .collect();
        let sessions = self.sessions.sessions_of(user_id).await?;
        Ok(Export {
            profile,
            events,
            sessions,
        })
    }
}

/// Password hashes are not handed out, not even to their owner.
fn redact_secrets(mut payload: Value) -> Value {
    if let Some(hash) = payload.get_mut("password_hash") {
        *hash = Value::String("[not exported]".into());
    }
    payload
}
