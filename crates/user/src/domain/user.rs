//! The `User` aggregate: one account, from registration to deactivation.

use chrono::{DateTime, Utc};
use msa_kernel::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AvatarUrl, Bio, Email, Nickname};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = UserRole)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", content = "data")]
pub enum UserEvent {
    UserRegistered {
        user_id: Uuid,
        email: Email,
        nickname: Nickname,
        password_hash: String,
        roles: Vec<Role>,
        registered_at: DateTime<Utc>,
    },
    /// Only the fields that changed are present.
    ProfileChanged {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nickname: Option<Nickname>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bio: Option<Bio>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        avatar_url: Option<AvatarUrl>,
    },
    PasswordChanged {
        password_hash: String,
    },
    KakaoLinked {
        kakao_id: String,
    },
    UserDeactivated {
        deactivated_at: DateTime<Utc>,
    },
    UserErased {},
    /// Every access token issued before `revoked_at` is void (a password change, a log-out
    /// everywhere, a role taken away); every process that checks tokens follows this.
    SessionsRevoked {
        revoked_at: DateTime<Utc>,
    },
    /// The operator granted a role (`msa users grant-admin`).
    RoleGranted {
        role: Role,
    },
    /// The operator took a role away (`msa users revoke-admin`).
    RoleRevoked {
        role: Role,
    },
}

impl DomainEvent for UserEvent {
    const CONTEXT: &'static str = "user";
}

/// What a user asks of their account.
#[derive(Debug, Clone, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum UserCommand {
    Register {
        user_id: Uuid,
        email: Email,
        nickname: Nickname,
        password_hash: String,
        roles: Vec<Role>,
        at: DateTime<Utc>,
    },
    ChangeProfile {
        nickname: Option<Nickname>,
        bio: Option<Bio>,
        avatar_url: Option<AvatarUrl>,
    },
    /// Also ends every session: tokens issued before `at` are void.
    ChangePassword {
        password_hash: String,
        at: DateTime<Utc>,
    },
    /// Log out everywhere: tokens issued before `at` are void.
    RevokeSessions {
        at: DateTime<Utc>,
    },
    GrantRole {
        role: Role,
    },
    /// Also ends every session, so no token carrying the role outlives it.
    RevokeRole {
        role: Role,
        at: DateTime<Utc>,
    },
    Deactivate {
        at: DateTime<Utc>,
    },
    LinkKakao {
        kakao_id: String,
    },
    /// Deactivates (if still active) and erases the account.
    Erase {
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserError {
    #[error("this account already exists")]
    AlreadyRegistered,
    #[error("no such account")]
    NotRegistered,
    #[error("this account was deactivated")]
    Deactivated,
    #[error("another Kakao account is linked to this account")]
    OtherKakaoLinked,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub user_id: Option<Uuid>,
    pub email: Option<Email>,
    pub nickname: Option<Nickname>,
    pub bio: Option<Bio>,
    pub avatar_url: Option<AvatarUrl>,
    pub password_hash: Option<String>,
    pub roles: Vec<Role>,
    pub kakao_id: Option<String>,
    pub registered_at: Option<DateTime<Utc>>,
    pub active: bool,
    pub erased: bool,
}

impl User {
    pub fn is_registered(&self) -> bool {
        self.user_id.is_some()
    }

    fn ensure_active(&self) -> Result<(), UserError> {
        match (self.is_registered(), self.active) {
            (false, _) => Err(UserError::NotRegistered),
            (true, false) => Err(UserError::Deactivated),
            (true, true) => Ok(()),
        }
    }
}

impl Aggregate for User {
    const KIND: &'static str = "user.user";

    type Command = UserCommand;
    type Event = UserEvent;
    type Error = UserError;

    fn apply(&mut self, event: &UserEvent) {
        match event {
            UserEvent::UserRegistered {
                user_id,
                email,
                nickname,
                password_hash,
                roles,
                registered_at,
            } => {
                self.user_id = Some(*user_id);
                self.email = Some(email.clone());
                self.nickname = Some(nickname.clone());
                self.password_hash = Some(password_hash.clone());
                self.roles = roles.clone();
                self.registered_at = Some(*registered_at);
                self.active = true;
            }
            UserEvent::ProfileChanged {
                nickname,
                bio,
                avatar_url,
            } => {
                if let Some(nickname) = nickname {
                    self.nickname = Some(nickname.clone());
                }
                if let Some(bio) = bio {
                    self.bio = Some(bio.clone());
                }
                if let Some(avatar_url) = avatar_url {
                    self.avatar_url = Some(avatar_url.clone());
                }
            }
            UserEvent::PasswordChanged { password_hash } => {
                self.password_hash = Some(password_hash.clone())
            }
            UserEvent::KakaoLinked { kakao_id } => self.kakao_id = Some(kakao_id.clone()),
            UserEvent::UserDeactivated { .. } => self.active = false,
            UserEvent::SessionsRevoked { .. } => {}
            UserEvent::RoleGranted { role } => {
                if !self.roles.contains(role) {
                    self.roles.push(*role);
                }
            }
            UserEvent::RoleRevoked { role } => self.roles.retain(|r| r != role),
            UserEvent::UserErased {} => {
                let user_id = self.user_id;
                *self = User {
                    user_id,
                    erased: true,
                    ..User::default()
                };
            }
        }
    }

    fn command_name(command: &Self::Command) -> &'static str {
        command.into()
    }

    fn decide(&self, command: &UserCommand) -> Result<Vec<UserEvent>, UserError> {
        match command {
            UserCommand::Register {
                user_id,
                email,
                nickname,
                password_hash,
                roles,
                at,
            } => {
                if self.is_registered() {
                    return Err(UserError::AlreadyRegistered);
                }
                Ok(vec![UserEvent::UserRegistered {
                    user_id: *user_id,
                    email: email.clone(),
                    nickname: nickname.clone(),
                    password_hash: password_hash.clone(),
                    roles: roles.clone(),
                    registered_at: *at,
                }])
            }
            UserCommand::ChangeProfile {
                nickname,
                bio,
                avatar_url,
            } => {
                self.ensure_active()?;
                // Only what differs is a change; an empty change records nothing.
                let nickname = nickname
                    .clone()
                    .filter(|n| Some(n) != self.nickname.as_ref());
                let bio = bio.clone().filter(|b| Some(b) != self.bio.as_ref());
                let avatar_url = avatar_url
                    .clone()
                    .filter(|a| Some(a) != self.avatar_url.as_ref());
                if nickname.is_none() && bio.is_none() && avatar_url.is_none() {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::ProfileChanged {
                    nickname,
                    bio,
                    avatar_url,
                }])
            }
            UserCommand::ChangePassword { password_hash, at } => {
                self.ensure_active()?;
                Ok(vec![
                    UserEvent::PasswordChanged {
                        password_hash: password_hash.clone(),
                    },
                    UserEvent::SessionsRevoked { revoked_at: *at },
                ])
            }
            UserCommand::RevokeSessions { at } => {
                self.ensure_active()?;
                Ok(vec![UserEvent::SessionsRevoked { revoked_at: *at }])
            }
            UserCommand::GrantRole { role } => {
                self.ensure_active()?;
                if self.roles.contains(role) {
                    return Ok(vec![]);
                }
                Ok(vec![UserEvent::RoleGranted { role: *role }])
            }
            UserCommand::RevokeRole { role, at } => {
                self.ensure_active()?;
                if !self.roles.contains(role) {
                    return Ok(vec![]);
                }
                Ok(vec![
                    UserEvent::RoleRevoked { role: *role },
                    UserEvent::SessionsRevoked { revoked_at: *at },
                ])
            }
            UserCommand::Deactivate { at } => {
                self.ensure_active()?;
                Ok(vec![UserEvent::UserDeactivated {
                    deactivated_at: *at,
                }])
            }
            UserCommand::LinkKakao { kakao_id } => {
                self.ensure_active()?;
                match &self.kakao_id {
                    Some(linked) if linked == kakao_id => Ok(vec![]),
                    Some(_) => Err(UserError::OtherKakaoLinked),
                    None => Ok(vec![UserEvent::KakaoLinked {
                        kakao_id: kakao_id.clone(),
                    }]),
                }
            }
            UserCommand::Erase { at } => match (self.is_registered(), self.erased, self.active) {
                (false, _, _) => Err(UserError::NotRegistered),
                (true, true, _) => Ok(vec![]),
                (true, false, true) => Ok(vec![
                    UserEvent::UserDeactivated {
                        deactivated_at: *at,
                    },
                    UserEvent::UserErased {},
                ]),
                (true, false, false) => Ok(vec![UserEvent::UserErased {}]),
            },
        }
    }
}
