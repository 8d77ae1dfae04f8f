//! Kakao Login over its REST API, as Kakao documents it: the browser is sent to
//! `{auth}/oauth/authorize`, Kakao calls back with a `code`, which is exchanged at
//! `{auth}/oauth/token` (form-encoded) for an access token that reads `{api}/v2/user/me`.
//! Base URLs and keys are configuration, so tests run against a local stand-in.

use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use msa_kernel::StoreError;
use msa_sql::SqlReadModelStore;
use ring::rand::{SecureRandom, SystemRandom};
use serde::Deserialize;
use sqlx::Row;
use uuid::Uuid;

use crate::application::ports::KakaoLogin;
pub use crate::application::ports::{KakaoAccount, KakaoError};

/// How long a started login may take to come back.
const STATE_LIFETIME: Duration = Duration::from_secs(10 * 60);

#[derive(Debug, Clone)]
pub struct KakaoConfig {
    /// The app's REST API key (`client_id`).
    pub client_id: String,
    /// The client secret, when the app has one enabled.
    pub client_secret: Option<String>,
    /// Where Kakao sends the browser back: this service's `/v1/auth/kakao/callback`.
    pub redirect_uri: String,
    /// `https://kauth.kakao.com`.
    pub auth_url: String,
    /// `https://kapi.kakao.com`.
    pub api_url: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

#[derive(Deserialize)]
struct UserResponse {
    id: i64,
    #[serde(default)]
    kakao_account: Option<AccountResponse>,
}

#[derive(Deserialize)]
struct AccountResponse {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    is_email_verified: Option<bool>,
    #[serde(default)]
    profile: Option<ProfileResponse>,
}

#[derive(Deserialize)]
struct ProfileResponse {
    #[serde(default)]
    nickname: Option<String>,
}

pub struct Kakao {
    config: KakaoConfig,
    http: reqwest::Client,
    db: std::sync::Arc<SqlReadModelStore>,
}

fn store_error(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend(error)
}

impl Kakao {
    pub fn new(config: KakaoConfig, db: std::sync::Arc<SqlReadModelStore>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("an HTTP client with default TLS settings");
        Self { config, http, db }
    }

    async fn read<T: serde::de::DeserializeOwned>(
        response: reqwest::Response,
    ) -> Result<T, KakaoError> {
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| KakaoError::Unavailable(e.to_string()))?;
        if status.is_client_error() {
            return Err(KakaoError::Refused(format!("{status}: {body}")));
        }
        if !status.is_success() {
            return Err(KakaoError::Unavailable(format!("{status}: {body}")));
        }
        serde_json::from_str(&body)
            .map_err(|e| KakaoError::Unavailable(format!("unexpected answer: {e}")))
    }
}

#[async_trait]
impl KakaoLogin for Kakao {
    /// Starts a login (or, with `link_user`, a link): where to send the browser.
    async fn start(&self, link_user: Option<Uuid>) -> Result<String, StoreError> {
        let mut bytes = [0u8; 24];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| StoreError::Backend("no randomness".into()))?;
        let state = URL_SAFE_NO_PAD.encode(bytes);
        sqlx::query("INSERT INTO login_states (state, link_user, expires_at) VALUES ($1, $2, $3)")
            .bind(&state)
            .bind(link_user.map(|u| u.to_string()))
            .bind(Utc::now().timestamp() + STATE_LIFETIME.as_secs() as i64)
            .execute(self.db.pool())
            .await
            .map_err(store_error)?;
        let mut url = reqwest::Url::parse(&format!("{}/oauth/authorize", self.config.auth_url))
            .map_err(store_error)?;
        url.query_pairs_mut()
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.config.redirect_uri)
            .append_pair("response_type", "code")
            .append_pair("state", &state);
        Ok(url.to_string())
    }

    /// Uses up a state: `None` when unknown, used or expired; otherwise the user to link, if any.
    async fn finish(&self, state: &str) -> Result<Option<Option<Uuid>>, StoreError> {
        let row = sqlx::query("SELECT link_user, expires_at FROM login_states WHERE state = $1")
            .bind(state)
            .fetch_optional(self.db.pool())
            .await
            .map_err(store_error)?;
        let deleted = sqlx::query("DELETE FROM login_states WHERE state = $1")
            .bind(state)
            .execute(self.db.pool())
            .await
            .map_err(store_error)?;
        let Some(row) = row.filter(|_| deleted.rows_affected() == 1) else {
            return Ok(None);
        };
        if row.get::<i64, _>("expires_at") < Utc::now().timestamp() {
            return Ok(None);
        }
        let link_user = row
            .get::<Option<String>, _>("link_user")
            .map(|u| u.parse().map_err(store_error))
            .transpose()?;
        Ok(Some(link_user))
    }

    /// Trades the callback's `code` for the Kakao account it stands for.
    async fn account(&self, code: &str) -> Result<KakaoAccount, KakaoError> {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("client_id", self.config.client_id.as_str()),
            ("redirect_uri", self.config.redirect_uri.as_str()),
            ("code", code),
        ];
        if let Some(secret) = &self.config.client_secret {
            form.push(("client_secret", secret));
        }
        let response = self
            .http
            .post(format!("{}/oauth/token", self.config.auth_url))
            .form(&form)
            .send()
            .await
            .map_err(|e| KakaoError::Unavailable(e.to_string()))?;
        let token: TokenResponse = Self::read(response).await?;
        let response = self
            .http
            .get(format!("{}/v2/user/me", self.config.api_url))
            .bearer_auth(&token.access_token)
            .send()
            .await
            .map_err(|e| KakaoError::Unavailable(e.to_string()))?;
        let user: UserResponse = Self::read(response).await?;
        let account = user.kakao_account;
        Ok(KakaoAccount {
            id: user.id.to_string(),
            // Only an address Kakao verified may stand for the user.
            email: account
                .as_ref()
                .filter(|a| a.is_email_verified == Some(true))
                .and_then(|a| a.email.clone()),
            nickname: account.and_then(|a| a.profile).and_then(|p| p.nickname),
        })
    }
}
