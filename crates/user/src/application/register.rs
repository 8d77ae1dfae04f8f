//! Sign-up: claim the email, claim the nickname, register the user; undo the claims if a later
//! step fails, so a refused or failed sign-up leaves nothing taken.

use chrono::{DateTime, Utc};
use msa_kernel::{CommandError, Repository};
use uuid::Uuid;

use super::{UserService, UserServiceError};
use crate::domain::{
    Claim, ClaimCommand, ClaimError, ClaimKind, Email, Nickname, Password, Role, User, UserCommand,
};

/// A new account, as registered.
#[derive(Debug, Clone)]
pub struct Registration {
    pub user_id: Uuid,
    pub email: Email,
    pub nickname: Nickname,
    pub roles: Vec<Role>,
    pub registered_at: DateTime<Utc>,
}

impl UserService {
    pub async fn register(
        &self,
        email: Email,
        password: Password,
        nickname: Nickname,
    ) -> Result<Registration, UserServiceError> {
        let user_id = Uuid::now_v7();
        let password_hash = self.passwords.hash(password.expose()).await;
        let metadata = Self::metadata(Some(user_id));
        let email_claim = Claim::stream(ClaimKind::Email, &email.normalized());
        self.take(&email_claim, user_id, &metadata)
            .await?
            .map_err(|_| UserServiceError::EmailTaken)?;
        let nickname_claims = nickname_claims(&nickname);
        if let Err(refused) = self.take_all(&nickname_claims, user_id, &metadata).await {
            self.release(&email_claim, user_id).await;
            return Err(refused);
        }
        // Registering never makes an admin, whatever the address: the operator grants roles
        // (`msa users grant-admin`, `roles.rs`).
        let roles = vec![Role::User];
        let registered_at = Utc::now();
        let command = UserCommand::Register {
            user_id,
            email: email.clone(),
            nickname: nickname.clone(),
            password_hash,
            roles: roles.clone(),
            at: registered_at,
        };
        if let Err(error) = self
            .users
            .execute(&Repository::<User>::stream_id(user_id), &command, &metadata)
            .await
        {
            self.release(&email_claim, user_id).await;
            for claim in &nickname_claims {
                self.release(claim, user_id).await;
            }
            return Err(error.into());
        }
        Ok(Registration {
            user_id,
            email,
            nickname,
            roles,
            registered_at,
        })
    }

    /// Takes every claim in `claims` for `user_id`, in order; when one is held by someone else,
    /// gives back the ones taken and answers `NicknameTaken`.
    pub(super) async fn take_all(
        &self,
        claims: &[msa_kernel::StreamId],
        user_id: Uuid,
        metadata: &msa_kernel::EventMetadata,
    ) -> Result<(), UserServiceError> {
        for (taken, claim) in claims.iter().enumerate() {
            let outcome = self
                .take(claim, user_id, metadata)
                .await
                .and_then(|taken| taken.map_err(|_| UserServiceError::NicknameTaken));
            if let Err(refused) = outcome {
                for claim in &claims[..taken] {
                    self.release(claim, user_id).await;
                }
                return Err(refused);
            }
        }
        Ok(())
    }

    /// Gives a claim back. A failure only logs: the claim then stays with a user id that never
    /// registered, which an operator can release.
    pub(super) async fn release(&self, claim: &msa_kernel::StreamId, user_id: Uuid) {
        let command = ClaimCommand::Release { user_id };
        if let Err(error) = self
            .claims
            .execute(claim, &command, &Self::metadata(Some(user_id)))
            .await
        {
            tracing::error!(%claim, %user_id, %error, "claim not released");
        }
    }
}

impl UserService {
    /// Gives a claim back on the holder's erasure at `at`: held for the nickname hold. A failure
    /// only logs, as in [`UserService::release`].
    pub(super) async fn release_on_erasure(
        &self,
        claim: &msa_kernel::StreamId,
        user_id: Uuid,
        at: DateTime<Utc>,
    ) {
        let command = ClaimCommand::ReleaseOnErasure { user_id, at };
        if let Err(error) = self
            .claims
            .execute(claim, &command, &Self::metadata(Some(user_id)))
            .await
        {
            tracing::error!(%claim, %user_id, %error, "claim not released");
        }
    }
}

/// The claims that keep `nickname` unique: its exact (case-insensitive) form and its look.
pub(super) fn nickname_claims(nickname: &Nickname) -> [msa_kernel::StreamId; 2] {
    [
        Claim::stream(ClaimKind::Nickname, &nickname.normalized()),
        Claim::stream(ClaimKind::NicknameLook, &nickname.look()),
    ]
}

impl UserService {
    /// Takes a claim for `user_id`: `Ok(Err(_))` when someone else holds it, or it is held after
    /// its last holder's erasure (only nickname claims are released that way).
    pub(super) async fn take(
        &self,
        claim: &msa_kernel::StreamId,
        user_id: Uuid,
        metadata: &msa_kernel::EventMetadata,
    ) -> Result<Result<(), ClaimError>, UserServiceError> {
        let command = ClaimCommand::Take {
            user_id,
            at: Utc::now(),
            erasure_hold: self.nickname_hold,
        };
        match self.claims.execute(claim, &command, metadata).await {
            Ok(_) => Ok(Ok(())),
            Err(CommandError::Domain(taken)) => Ok(Err(taken)),
            Err(other) => Err(other.into()),
        }
    }
}
