//! Reading and changing one's profile; public profiles; deactivation.

use chrono::{DateTime, Utc};
use msa_kernel::{CommandError, Repository};
use serde::Serialize;
use uuid::Uuid;

use super::register::nickname_claims;
use super::{UserService, UserServiceError};
use crate::domain::{AvatarUrl, Bio, Claim, ClaimKind, Nickname, User, UserCommand, UserError};

/// A profile change; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub nickname: Option<Nickname>,
    pub bio: Option<Bio>,
    pub avatar_url: Option<AvatarUrl>,
}

/// An account as its owner sees it (`email` and `roles` only for the owner).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProfileView {
    pub id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub nickname: String,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    pub roles: Option<Vec<&'static str>>,
    pub created_at: DateTime<Utc>,
}

impl ProfileView {
    fn of(user: &User, owner: bool) -> Option<Self> {
        Some(Self {
            id: user.user_id?,
            email: owner
                .then(|| user.email.as_ref().map(|e| e.as_str().to_owned()))
                .flatten(),
            nickname: user.nickname.as_ref()?.as_str().to_owned(),
            bio: user.bio.as_ref().map(|b| b.as_str().to_owned()),
            avatar_url: user.avatar_url.as_ref().map(|a| a.as_str().to_owned()),
            roles: owner.then(|| user.roles.iter().map(|r| r.as_str()).collect()),
            created_at: user.registered_at?,
        })
    }
}

/// Public profiles, read from the user and nickname-claim streams (no projection lag): what other
/// contexts may learn about a user. `events` must open sealed personal data.
pub struct PublicProfiles {
    users: Repository<User>,
    claims: Repository<Claim>,
}

impl PublicProfiles {
    pub fn new(events: std::sync::Arc<dyn msa_kernel::EventStore>) -> Self {
        Self::over(Repository::new(events.clone()), Repository::new(events))
    }

    pub(super) fn over(users: Repository<User>, claims: Repository<Claim>) -> Self {
        Self { users, claims }
    }

    /// The profile of an active user; `None` for an unknown, deactivated or erased one.
    pub async fn by_id(
        &self,
        user_id: Uuid,
    ) -> Result<Option<ProfileView>, msa_kernel::StoreError> {
        let user = self
            .users
            .load(&Repository::<User>::stream_id(user_id))
            .await?
            .state;
        Ok(if user.is_registered() && user.active {
            ProfileView::of(&user, false)
        } else {
            None
        })
    }

    /// The active user holding `nickname` (case-insensitive).
    pub async fn by_nickname(
        &self,
        nickname: &Nickname,
    ) -> Result<Option<ProfileView>, msa_kernel::StoreError> {
        let stream = Claim::stream(ClaimKind::Nickname, &nickname.normalized());
        match self.claims.load(&stream).await?.state.holder {
            Some(holder) => self.by_id(holder).await,
            None => Ok(None),
        }
    }
}

impl UserService {
    pub(super) async fn active_user(&self, user_id: Uuid) -> Result<User, UserServiceError> {
        let user = self
            .users
            .load(&Repository::<User>::stream_id(user_id))
            .await?
            .state;
        match (user.is_registered(), user.active) {
            (false, _) => Err(UserServiceError::NotFound),
            (true, false) => Err(UserServiceError::Deactivated),
            (true, true) => Ok(user),
        }
    }

    /// The caller's own account.
    pub async fn me(&self, user_id: Uuid) -> Result<ProfileView, UserServiceError> {
        let user = self.active_user(user_id).await?;
        ProfileView::of(&user, true).ok_or(UserServiceError::NotFound)
    }

    /// Anyone's public profile.
    pub async fn public_profile(&self, user_id: Uuid) -> Result<ProfileView, UserServiceError> {
        self.profiles
            .by_id(user_id)
            .await?
            .ok_or(UserServiceError::NotFound)
    }

    /// The public profile of the active user holding `nickname` (case-insensitive), read from
    /// the nickname's claim: a sign-up is found the moment it is answered, with no projection lag.
    pub async fn profile_by_nickname(
        &self,
        nickname: &Nickname,
    ) -> Result<ProfileView, UserServiceError> {
        self.profiles
            .by_nickname(nickname)
            .await?
            .ok_or(UserServiceError::NotFound)
    }

    /// Changes the caller's profile. A new nickname is claimed first and the old one released
    /// after, so the nickname stays unique throughout.
    pub async fn change_profile(
        &self,
        user_id: Uuid,
        change: ProfileChange,
    ) -> Result<ProfileView, UserServiceError> {
        let user = self.active_user(user_id).await?;
        let metadata = Self::metadata(Some(user_id));
        let renamed = change
            .nickname
            .clone()
            .filter(|n| Some(n.normalized()) != user.nickname.as_ref().map(Nickname::normalized));
        // A new look too, unless the rename keeps it (Ada -> ada_): then only the exact form.
        let old_look = user.nickname.as_ref().map(Nickname::look);
        let new_claims: Vec<_> = match &renamed {
            None => vec![],
            Some(n) => nickname_claims(n)
                .into_iter()
                .filter(|claim| {
                    Some(claim)
                        != old_look
                            .as_ref()
                            .map(|look| Claim::stream(ClaimKind::NicknameLook, look))
                            .as_ref()
                })
                .collect(),
        };
        self.take_all(&new_claims, user_id, &metadata).await?;
        let command = UserCommand::ChangeProfile {
            nickname: change.nickname,
            bio: change.bio,
            avatar_url: change.avatar_url,
        };
        let executed = match self
            .users
            .execute(&Repository::<User>::stream_id(user_id), &command, &metadata)
            .await
        {
            Ok(executed) => executed,
            Err(error) => {
                for claim in &new_claims {
                    self.release(claim, user_id).await;
                }
                return Err(match error {
                    CommandError::Domain(UserError::Deactivated) => UserServiceError::Deactivated,
                    CommandError::Domain(_) => UserServiceError::NotFound,
                    other => other.into(),
                });
            }
        };
        if let (Some(new), Some(old)) = (&renamed, &user.nickname) {
            // Only what the new nickname does not hold again.
            for (old_claim, new_claim) in nickname_claims(old).iter().zip(nickname_claims(new)) {
                if *old_claim != new_claim {
                    self.release(old_claim, user_id).await;
                }
            }
        }
        ProfileView::of(&executed.state, true).ok_or(UserServiceError::NotFound)
    }
}
