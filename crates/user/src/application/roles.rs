//! Roles the operator grants: `msa users grant-admin EMAIL` and `revoke-admin`. Nobody becomes an
//! admin by registering an address; the grant is a `user.RoleGranted` event on the account's
//! stream (actor `operator`), so it is audited like every other change, and a later account on
//! the same address (after an erasure) is a new user without it.

use std::sync::Arc;

use chrono::Utc;
use msa_kernel::{CommandError, EventMetadata, EventStore, Repository};
use uuid::Uuid;

use super::UserServiceError;
use crate::domain::{Claim, ClaimKind, Email, Role, User, UserCommand, UserError};

/// The actor recorded on operator commands.
pub const OPERATOR: &str = "operator";

/// What a grant or revocation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    /// The account now has (or no longer has) the role.
    Changed,
    /// It already had (or already lacked) it: nothing was recorded.
    AsItWas,
}

/// The operator's role commands, over the user context's events (personal data opened).
pub struct OperatorRoles {
    users: Repository<User>,
    claims: Repository<Claim>,
}

impl OperatorRoles {
    pub fn new(events: Arc<dyn EventStore>) -> Self {
        Self {
            users: Repository::new(events.clone()),
            claims: Repository::new(events),
        }
    }

    /// The active account registered with `email`.
    async fn holder(&self, email: &Email) -> Result<Uuid, UserServiceError> {
        let claim = Claim::stream(ClaimKind::Email, &email.normalized());
        self.claims
            .load(&claim)
            .await?
            .state
            .holder
            .ok_or(UserServiceError::NotFound)
    }

    async fn run(
        &self,
        email: &Email,
        command: UserCommand,
    ) -> Result<(Uuid, RoleChange), UserServiceError> {
        let user_id = self.holder(email).await?;
        let metadata = EventMetadata::current(Some(OPERATOR.to_owned()));
        match self
            .users
            .execute(&Repository::<User>::stream_id(user_id), &command, &metadata)
            .await
        {
            Ok(executed) if executed.events.is_empty() => Ok((user_id, RoleChange::AsItWas)),
            Ok(_) => Ok((user_id, RoleChange::Changed)),
            Err(CommandError::Domain(UserError::Deactivated)) => Err(UserServiceError::Deactivated),
            Err(CommandError::Domain(_)) => Err(UserServiceError::NotFound),
            Err(other) => Err(other.into()),
        }
    }

    /// Grants `role` to the account of `email`; its next token carries it.
    pub async fn grant(
        &self,
        email: &Email,
        role: Role,
    ) -> Result<(Uuid, RoleChange), UserServiceError> {
        self.run(email, UserCommand::GrantRole { role }).await
    }

    /// Takes `role` away; the access tokens that carried it are void at once (the deny list).
    pub async fn revoke(
        &self,
        email: &Email,
        role: Role,
    ) -> Result<(Uuid, RoleChange), UserServiceError> {
        self.run(
            email,
            UserCommand::RevokeRole {
                role,
                at: Utc::now(),
            },
        )
        .await
    }
}
