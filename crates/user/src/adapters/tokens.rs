//! Login tokens: EdDSA access tokens (JWT) and rotating refresh tokens, kept in the user context's
//! query database.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::Utc;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use msa_http::auth::{Claims, Jwk, Jwks, TokenVerifier, ISSUER};
use msa_kernel::StoreError;
use msa_sql::SqlReadModelStore;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use sha2::{Digest, Sha256};
use sqlx::Row;
use uuid::Uuid;

use crate::adapters::master_key::MasterKey;
pub use crate::application::ports::{RefreshError, TokenPair};
use crate::application::ports::{SessionHistory, SessionTokens};
use crate::domain::Role;

/// How long tokens live.
#[derive(Debug, Clone, Copy)]
pub struct TokenLifetimes {
    pub access: Duration,
    pub refresh: Duration,
}

impl Default for TokenLifetimes {
    fn default() -> Self {
        Self {
            access: Duration::from_secs(15 * 60),
            refresh: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

struct SigningKey {
    kid: String,
    key: EncodingKey,
}

pub struct Tokens {
    db: Arc<SqlReadModelStore>,
    signing: SigningKey,
    jwks: Jwks,
    lifetimes: TokenLifetimes,
    random: SystemRandom,
}

fn store_error(error: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend(error)
}

/// What a stored signing key is bound to (the master key's associated data).
fn signing_label(kid: &str) -> String {
    format!("signing_key:{kid}")
}

fn digest(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Tokens {
    /// Loads the signing keys (stored encrypted under `master`; any an earlier version stored in
    /// clear are encrypted now), creating the first one if there is none.
    pub async fn open(
        db: Arc<SqlReadModelStore>,
        lifetimes: TokenLifetimes,
        master: &MasterKey,
    ) -> Result<Self, StoreError> {
        let random = SystemRandom::new();
        let mut keys = Self::load_keys(&db, master).await?;
        if keys.is_empty() {
            // Two instances starting at once on an empty database may both generate one. Each
            // signs with the last key it loaded and publishes the keys it loaded at open, so the
            // first one's JWKS lacks the second's key until it opens again.
            Self::add_signing_key(&db, master).await?;
            keys = Self::load_keys(&db, master).await?;
        }
        let mut jwks = Jwks::default();
        for (kid, pkcs8) in &keys {
            let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| {
                StoreError::Backend(format!("signing key {kid} is not Ed25519 PKCS#8").into())
            })?;
            jwks.keys
                .push(Jwk::ed25519(kid, pair.public_key().as_ref()));
        }
        let (kid, pkcs8) = keys.last().expect("at least one key");
        Ok(Self {
            db,
            signing: SigningKey {
                kid: kid.clone(),
                key: EncodingKey::from_ed_der(pkcs8),
            },
            jwks,
            lifetimes,
            random,
        })
    }

    /// Adds a new signing key (the operator's rotation, `msa users rotate-signing-key`):
    /// instances sign with the newest key they loaded at start, and publish every stored key in
    /// the JWKS, so tokens signed with an older key verify until that key is retired.
    pub async fn add_signing_key(
        db: &SqlReadModelStore,
        master: &MasterKey,
    ) -> Result<String, StoreError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| StoreError::Backend("cannot generate an Ed25519 key".into()))?;
        let kid = Uuid::now_v7().simple().to_string();
        sqlx::query("INSERT INTO signing_keys (kid, private_key, created_at) VALUES ($1, $2, $3)")
            .bind(&kid)
            .bind(master.seal(&signing_label(&kid), pkcs8.as_ref())?)
            .bind(Utc::now().to_rfc3339())
            .execute(db.pool())
            .await
            .map_err(store_error)?;
        Ok(kid)
    }

    /// The stored signing keys' ids and creation times, oldest first.
    pub async fn signing_keys(db: &SqlReadModelStore) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query("SELECT kid, created_at FROM signing_keys ORDER BY created_at, kid")
            .fetch_all(db.pool())
            .await
            .map_err(store_error)?;
        Ok(rows
            .iter()
            .map(|row| (row.get("kid"), row.get("created_at")))
            .collect())
    }

    /// Removes a signing key other than the newest (`msa users retire-signing-key`): tokens it
    /// signed are refused once the instances have restarted and the others fetched the JWKS
    /// again. Whether it was removed.
    pub async fn retire_signing_key(db: &SqlReadModelStore, kid: &str) -> Result<bool, StoreError> {
        let keys = Self::signing_keys(db).await?;
        if keys.last().is_some_and(|(newest, _)| newest == kid) {
            return Err(StoreError::Backend(
                "the newest signing key signs new tokens: rotate first".into(),
            ));
        }
        let removed = sqlx::query("DELETE FROM signing_keys WHERE kid = $1")
            .bind(kid)
            .execute(db.pool())
            .await
            .map_err(store_error)?;
        Ok(removed.rows_affected() == 1)
    }

    /// Every key, oldest first; keys found in clear are encrypted in place.
    async fn load_keys(
        db: &SqlReadModelStore,
        master: &MasterKey,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let rows =
            sqlx::query("SELECT kid, private_key FROM signing_keys ORDER BY created_at, kid")
                .fetch_all(db.pool())
                .await
                .map_err(store_error)?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            let kid: String = row.get("kid");
            let stored: &str = row.get("private_key");
            let key = master.open(&signing_label(&kid), stored)?;
            if MasterKey::is_clear(stored) && master.encrypts() {
                sqlx::query("UPDATE signing_keys SET private_key = $1 WHERE kid = $2")
                    .bind(master.seal(&signing_label(&kid), &key)?)
                    .bind(&kid)
                    .execute(db.pool())
                    .await
                    .map_err(store_error)?;
            }
            keys.push((kid, key));
        }
        Ok(keys)
    }

    /// How long a refresh token lives (the web client's session cookie lasts as long).
    pub fn refresh_lifetime(&self) -> Duration {
        self.lifetimes.refresh
    }

    /// The public keys, for `/.well-known/jwks.json` and every verifier.
    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    pub fn verifier(&self) -> TokenVerifier {
        TokenVerifier::new(&self.jwks)
    }

    /// An access token for a session of `family` (whose UUIDv7 id says when its log-in was).
    pub fn access_token(&self, user_id: Uuid, roles: &[Role], family: Uuid) -> String {
        let issued = Utc::now();
        let logged_in = family
            .get_timestamp()
            .map(|at| at.to_unix().0 as i64)
            .unwrap_or(issued.timestamp());
        let now = issued.timestamp();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: user_id,
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
            iat: now,
            exp: now + self.lifetimes.access.as_secs() as i64,
            iat_ms: Some(issued.timestamp_millis()),
            auth_time: Some(logged_in),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.signing.kid.clone());
        jsonwebtoken::encode(&header, &claims, &self.signing.key)
            .expect("an Ed25519 key signs any claims")
    }

    async fn revoke_family(&self, family: Uuid) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE family_id = $2 AND revoked_at IS NULL",
        )
        .bind(Utc::now().to_rfc3339())
        .bind(family.to_string())
        .execute(self.db.pool())
        .await
        .map_err(store_error)?;
        Ok(())
    }
}

#[async_trait]
impl SessionTokens for Tokens {
    /// A new pair: the access token, and the next refresh token of `family` (a new family when
    /// `None`: a login).
    async fn issue(
        &self,
        user_id: Uuid,
        roles: &[Role],
        family: Option<Uuid>,
    ) -> Result<TokenPair, StoreError> {
        let mut bytes = [0u8; 32];
        self.random
            .fill(&mut bytes)
            .map_err(|_| StoreError::Backend("no randomness".into()))?;
        let refresh_token = URL_SAFE_NO_PAD.encode(bytes);
        let expires_at = Utc::now().timestamp() + self.lifetimes.refresh.as_secs() as i64;
        // A log-in starts a family; its UUIDv7 id holds the log-in's time.
        let family = family.unwrap_or_else(Uuid::now_v7);
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family_id, user_id, issued_at, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(digest(&refresh_token))
        .bind(family.to_string())
        .bind(user_id.to_string())
        .bind(Utc::now().to_rfc3339())
        .bind(expires_at)
        .execute(self.db.pool())
        .await
        .map_err(store_error)?;
        Ok(TokenPair {
            access_token: self.access_token(user_id, roles, family),
            refresh_token,
            token_type: "Bearer",
            expires_in: self.lifetimes.access.as_secs(),
        })
    }

    /// Uses a refresh token: returns its user and family, so the caller can issue the next pair.
    /// A token used before revokes its whole family.
    async fn use_refresh_token(&self, token: &str) -> Result<(Uuid, Uuid), RefreshError> {
        let hash = digest(token);
        let now = Utc::now();
        let used = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1
             WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL AND expires_at > $3",
        )
        .bind(now.to_rfc3339())
        .bind(&hash)
        .bind(now.timestamp())
        .execute(self.db.pool())
        .await
        .map_err(store_error)?;
        let row = sqlx::query(
            "SELECT family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE token_hash = $1",
        )
        .bind(&hash)
        .fetch_optional(self.db.pool())
        .await
        .map_err(store_error)?
        .ok_or(RefreshError::Unknown)?;
        let family: Uuid = row
            .get::<&str, _>("family_id")
            .parse()
            .map_err(store_error)?;
        let user: Uuid = row.get::<&str, _>("user_id").parse().map_err(store_error)?;
        if used.rows_affected() == 1 {
            return Ok((user, family));
        }
        if row.get::<Option<String>, _>("revoked_at").is_some() {
            return Err(RefreshError::Revoked);
        }
        if row.get::<Option<String>, _>("used_at").is_some() {
            self.revoke_family(family).await?;
            return Err(RefreshError::Reused);
        }
        Err(RefreshError::Expired)
    }

    /// Revokes the family of `token` (a logout). Unknown tokens are ignored.
    async fn revoke_family_of(&self, token: &str) -> Result<(), StoreError> {
        let family: Option<String> =
            sqlx::query_scalar("SELECT family_id FROM refresh_tokens WHERE token_hash = $1")
                .bind(digest(token))
                .fetch_optional(self.db.pool())
                .await
                .map_err(store_error)?;
        if let Some(family) = family {
            self.revoke_family(family.parse().map_err(store_error)?)
                .await?;
        }
        Ok(())
    }

    /// Revokes every refresh token of a user (deactivation).
    async fn revoke_user(&self, user_id: Uuid) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        )
        .bind(Utc::now().to_rfc3339())
        .bind(user_id.to_string())
        .execute(self.db.pool())
        .await
        .map_err(store_error)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl SessionHistory for SqlReadModelStore {
    async fn sessions_of(&self, user_id: Uuid) -> Result<Vec<serde_json::Value>, StoreError> {
        let rows = sqlx::query(
            "SELECT issued_at, expires_at, used_at, revoked_at FROM refresh_tokens WHERE user_id = $1 ORDER BY issued_at",
        )
        .bind(user_id.to_string())
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        Ok(rows
            .iter()
            .map(|row| {
                serde_json::json!({
                    "issued_at": row.get::<String, _>("issued_at"),
                    "expires_at": chrono::DateTime::from_timestamp(row.get::<i64, _>("expires_at"), 0),
                    "used_at": row.get::<Option<String>, _>("used_at"),
                    "revoked_at": row.get::<Option<String>, _>("revoked_at"),
                })
            })
            .collect())
    }
}
