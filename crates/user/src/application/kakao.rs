//! Kakao Login: a first login creates an account; a logged-in user can link their Kakao account.

use msa_kernel::{CommandError, Repository};
use uuid::Uuid;

use super::ports::{KakaoAccount, KakaoError, KakaoLogin, TokenPair};
use super::{ProfileView, UserService, UserServiceError};
use crate::domain::{Claim, ClaimKind, Email, Nickname, Password, User, UserCommand, UserError};

/// What a Kakao callback achieved.
#[derive(Debug)]
pub enum KakaoOutcome {
    /// Logged in (`created`: the account was made by this login).
    LoggedIn { tokens: TokenPair, created: bool },
    /// The Kakao account is now linked to the logged-in user.
    Linked(ProfileView),
}

impl UserService {
    fn kakao(&self) -> Result<&dyn KakaoLogin, UserServiceError> {
        self.kakao
            .as_deref()
            .ok_or(UserServiceError::KakaoNotConfigured)
    }

    /// Where to send the browser to log in with Kakao (or, for `link_user`, to link it).
    pub async fn kakao_start(&self, link_user: Option<Uuid>) -> Result<String, UserServiceError> {
        if let Some(user_id) = link_user {
            self.active_user(user_id).await?;
        }
        Ok(self.kakao()?.start(link_user).await?)
    }

    /// Kakao's callback: uses up the state, reads the Kakao account, then logs in, registers or
    /// links.
    pub async fn kakao_callback(
        &self,
        code: &str,
        state: &str,
    ) -> Result<KakaoOutcome, UserServiceError> {
        let kakao = self.kakao()?;
        let link_user = kakao.finish(state).await?.ok_or_else(|| {
            UserServiceError::LoginRefused("unknown, used or expired login state".into())
        })?;
        let account = kakao.account(code).await.map_err(|error| match error {
            KakaoError::Refused(reason) => UserServiceError::LoginRefused(reason),
            KakaoError::Unavailable(reason) => UserServiceError::Upstream(reason),
        })?;
        let claim = Claim::stream(ClaimKind::Kakao, &account.id);
        match link_user {
            Some(user_id) => self
                .link_kakao(user_id, &account, &claim)
                .await
                .map(KakaoOutcome::Linked),
            None => self.log_in_with_kakao(&account, &claim).await,
        }
    }

    async fn link_kakao(
        &self,
        user_id: Uuid,
        account: &KakaoAccount,
        claim: &msa_kernel::StreamId,
    ) -> Result<ProfileView, UserServiceError> {
        self.active_user(user_id).await?;
        let metadata = Self::metadata(Some(user_id));
        self.take(claim, user_id, &metadata)
            .await?
            .map_err(|_| UserServiceError::KakaoTaken)?;
        let command = UserCommand::LinkKakao {
            kakao_id: account.id.clone(),
        };
        match self
            .users
            .execute(&Repository::<User>::stream_id(user_id), &command, &metadata)
            .await
        {
            Ok(_) => self.me(user_id).await,
            Err(error) => {
                self.release(claim, user_id).await;
                Err(match error {
                    CommandError::Domain(UserError::OtherKakaoLinked) => {
                        UserServiceError::KakaoTaken
                    }
                    CommandError::Domain(_) => UserServiceError::Deactivated,
                    other => other.into(),
                })
            }
        }
    }

    async fn log_in_with_kakao(
        &self,
        account: &KakaoAccount,
        claim: &msa_kernel::StreamId,
    ) -> Result<KakaoOutcome, UserServiceError> {
        if let Some(user_id) = self.claims.load(claim).await?.state.holder {
            let user = self.active_user(user_id).await?;
            let tokens = self.tokens.issue(user_id, &user.roles, None).await?;
            return Ok(KakaoOutcome::LoggedIn {
                tokens,
                created: false,
            });
        }
        // A first login: an account with the verified Kakao email (or an address in the reserved
        // .invalid domain) and a random password nobody knows; the Kakao claim is what logs in.
        let email = account
            .email
            .as_deref()
            .and_then(|e| Email::parse(e).ok())
            .unwrap_or_else(|| {
                Email::parse(&format!("kakao-{}@users.kakao.invalid", account.id))
                    .expect("a valid address")
            });
        let wanted = account
            .nickname
            .as_deref()
            .and_then(|n| Nickname::parse(n).ok());
        let nickname = self.free_nickname(wanted, &account.id).await?;
        let password: String =
            rand::Rng::sample_iter(rand::thread_rng(), &rand::distributions::Alphanumeric)
                .take(32)
                .map(char::from)
                .collect();
        let password = Password::parse(&password).expect("32 characters");
        let registered = self.register(email, password, nickname).await?;
        let user_id = registered.user_id;
        let metadata = Self::metadata(Some(user_id));
        if self.take(claim, user_id, &metadata).await?.is_err() {
            // Another first login with this Kakao account won the race: use that account. The
            // account made for nothing is erased without holding its nickname: nobody knew it.
            self.erase_account(user_id, false).await?;
            return Box::pin(self.log_in_with_kakao(account, claim)).await;
        }
        let command = UserCommand::LinkKakao {
            kakao_id: account.id.clone(),
        };
        self.users
            .execute(&Repository::<User>::stream_id(user_id), &command, &metadata)
            .await?;
        let tokens = self.tokens.issue(user_id, &registered.roles, None).await?;
        Ok(KakaoOutcome::LoggedIn {
            tokens,
            created: true,
        })
    }

    /// The Kakao nickname if free, else one made unique with the Kakao id.
    async fn free_nickname(
        &self,
        wanted: Option<Nickname>,
        kakao_id: &str,
    ) -> Result<Nickname, UserServiceError> {
        let fallback = || Nickname::parse(&format!("kakao-{kakao_id}")).expect("a short id");
        let Some(wanted) = wanted else {
            return Ok(fallback());
        };
        let claim = Claim::stream(ClaimKind::Nickname, &wanted.normalized());
        if self.claims.load(&claim).await?.state.holder.is_none() {
            return Ok(wanted);
        }
        let tail = &kakao_id[kakao_id.len().saturating_sub(4)..];
        let head: String = wanted.as_str().chars().take(32 - 1 - tail.len()).collect();
        Ok(Nickname::parse(&format!("{head} {tail}")).unwrap_or_else(|_| fallback()))
    }
}
