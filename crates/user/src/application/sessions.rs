//! Logins, token refreshes and logouts.

use msa_kernel::Repository;

use super::ports::{RefreshError, TokenPair};
use super::{UserService, UserServiceError};
use crate::domain::{Claim, ClaimKind, Email, User};

impl UserService {
    /// Checks the password and starts a session. An unknown email and a wrong password take the
    /// same time and give the same answer. Failures are throttled per account and `client`
    /// address (see `adapters/throttle.rs`).
    pub async fn log_in(
        &self,
        email: &Email,
        password: &str,
        client: Option<std::net::IpAddr>,
    ) -> Result<TokenPair, UserServiceError> {
        let account = email.normalized();
        self.throttle
            .check(&account, client)
            .map_err(UserServiceError::Throttled)?;
        let claim = self
            .claims
            .load(&Claim::stream(ClaimKind::Email, &account))
            .await?;
        let user = match claim.state.holder {
            Some(user_id) => Some(
                self.users
                    .load(&Repository::<User>::stream_id(user_id))
                    .await?
                    .state,
            ),
            None => None,
        };
        let hash = user
            .as_ref()
            .filter(|u| u.active)
            .and_then(|u| u.password_hash.as_deref());
        if !self.passwords.verify(password, hash).await {
            self.throttle.failed(&account, client);
            return Err(UserServiceError::BadCredentials);
        }
        self.throttle.succeeded(&account, client);
        let user = user.expect("a verified password belongs to a user");
        let user_id = user.user_id.expect("a registered user has an id");
        Ok(self.tokens.issue(user_id, &user.roles, None).await?)
    }

    /// Trades a refresh token for a new pair of the same session.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, UserServiceError> {
        let (user_id, family) =
            self.tokens
                .use_refresh_token(refresh_token)
                .await
                .map_err(|error| match error {
                    RefreshError::Store(error) => UserServiceError::Store(error),
                    refused => UserServiceError::BadRefreshToken(refused.to_string()),
                })?;
        let user = self
            .users
            .load(&Repository::<User>::stream_id(user_id))
            .await?
            .state;
        if !user.active {
            return Err(UserServiceError::Deactivated);
        }
        Ok(self
            .tokens
            .issue(user_id, &user.roles, Some(family))
            .await?)
    }

    /// `given` is the account's password; otherwise `field` does not match (a refusal naming it).
    pub(super) async fn password_confirms(
        &self,
        user: &crate::domain::User,
        given: &str,
        field: &str,
    ) -> Result<(), UserServiceError> {
        if self
            .passwords
            .verify(given, user.password_hash.as_deref())
            .await
        {
            return Ok(());
        }
        Err(UserServiceError::Invalid(vec![
            msa_kernel::FieldError::new(field, "does not match"),
        ]))
    }

    /// Changes the caller's password after checking the current one; every session ends (other
    /// devices must log in again with the new password).
    pub async fn change_password(
        &self,
        user_id: uuid::Uuid,
        current: &str,
        new: crate::domain::Password,
    ) -> Result<(), UserServiceError> {
        let user = self.active_user(user_id).await?;
        self.password_confirms(&user, current, "current_password")
            .await?;
        let password_hash = self.passwords.hash(new.expose()).await;
        let command = crate::domain::UserCommand::ChangePassword {
            password_hash,
            at: chrono::Utc::now(),
        };
        self.users
            .execute(
                &Repository::<User>::stream_id(user_id),
                &command,
                &Self::metadata(Some(user_id)),
            )
            .await?;
        self.tokens.revoke_user(user_id).await?;
        Ok(())
    }

    /// Logs the caller out everywhere: every refresh token is revoked, and every access token
    /// issued until now is void in every process that checks tokens (`user.SessionsRevoked`).
    pub async fn log_out_everywhere(&self, user_id: uuid::Uuid) -> Result<(), UserServiceError> {
        self.active_user(user_id).await?;
        let command = crate::domain::UserCommand::RevokeSessions {
            at: chrono::Utc::now(),
        };
        self.users
            .execute(
                &Repository::<User>::stream_id(user_id),
                &command,
                &Self::metadata(Some(user_id)),
            )
            .await?;
        self.tokens.revoke_user(user_id).await?;
        Ok(())
    }

    /// Ends the session `refresh_token` belongs to.
    pub async fn log_out(&self, refresh_token: &str) -> Result<(), UserServiceError> {
        Ok(self.tokens.revoke_family_of(refresh_token).await?)
    }
}
