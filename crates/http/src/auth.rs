//! Access tokens: EdDSA (Ed25519) JWTs the user service signs and every context verifies with its
//! public keys (the JWKS), so no context needs to call the user service per request.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, RwLock, Weak};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::revocations::Revocations;
use crate::{Problem, RemoteKeys};

/// Who issues the tokens (`iss`), checked on every token.
pub const ISSUER: &str = "msa.user";

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user id.
    pub sub: Uuid,
    pub roles: Vec<String>,
    pub iat: i64,
    pub exp: i64,
    /// When the token was issued, in Unix milliseconds (`iat` is whole seconds): a revocation
    /// voids the tokens issued before it (or within its millisecond), and a login a millisecond
    /// after one must not count as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat_ms: Option<i64>,
    /// When the person logged in (Unix seconds; OpenID Connect's `auth_time`): refreshing makes
    /// new tokens, never a new log-in. Absent from tokens issued before it was carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

impl Claims {
    /// When the token was issued (Unix ms); a token without `iat_ms` counts from the start of
    /// its `iat` second.
    pub fn issued_at_ms(&self) -> i64 {
        self.iat_ms.unwrap_or(self.iat.saturating_mul(1000))
    }
}

/// One public key in JWK form (RFC 8037: `kty` OKP, `crv` Ed25519, `x` base64url).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwk {
    pub kty: String,
    pub crv: String,
    pub kid: String,
    pub x: String,
    #[serde(rename = "use")]
    pub usage: String,
    pub alg: String,
}

impl Jwk {
    /// The JWK of a raw 32-byte Ed25519 public key.
    pub fn ed25519(kid: &str, public_key: &[u8]) -> Self {
        Self {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            kid: kid.into(),
            x: URL_SAFE_NO_PAD.encode(public_key),
            usage: "sig".into(),
            alg: "EdDSA".into(),
        }
    }
}

/// `GET /.well-known/jwks.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwks {
    pub keys: Vec<Jwk>,
}

impl Jwks {
    /// The set's Ed25519 keys by `kid`, ready to verify with (other keys are passed over).
    pub fn ed25519_keys(&self) -> impl Iterator<Item = (String, DecodingKey)> + '_ {
        self.keys
            .iter()
            .filter(|k| k.kty == "OKP" && k.crv == "Ed25519")
            .filter_map(|k| Some((k.kid.clone(), DecodingKey::from_ed_components(&k.x).ok()?)))
    }
}

/// Why a token was refused; every variant answers 401.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token")]
    Missing,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    /// Signed with a key this verifier does not have (yet): worth fetching the keys again.
    #[error("the token is signed with an unknown key {0}")]
    UnknownKey(String),
    /// Its user's sessions were revoked after it was issued (password change, log-out
    /// everywhere), or the account is closed.
    #[error("the token was revoked; log in again")]
    Revoked,
}

impl From<TokenError> for Problem {
    fn from(error: TokenError) -> Self {
        Problem::unauthorized(error.to_string())
    }
}

/// Seconds a token is still taken after its `exp` (clock skew between services).
const LEEWAY: u64 = 5;

/// Tokens remembered as verified: a client sends the same token with every request until it
/// expires, and an Ed25519 check costs more than the rest of a small request's handling.
const VERIFIED_TOKENS: usize = 10_000;

/// Checks access tokens against the current public keys.
pub struct TokenVerifier {
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// Tokens whose signature and claims checked out with the current keys, by the token's exact
    /// text; only the expiry is checked again. Emptied when the keys change.
    verified: Mutex<lru::LruCache<String, Claims>>,
    /// Where the keys come from when another process issues them: asked again for a key not
    /// seen yet (see [`TokenVerifier::verify_fetching`]). None where the keys are local.
    source: Option<Weak<RemoteKeys>>,
    /// The deny list, checked on every verification (remembered tokens too).
    revocations: Arc<Revocations>,
}

impl Default for TokenVerifier {
    fn default() -> Self {
        Self {
            keys: RwLock::default(),
            verified: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(VERIFIED_TOKENS).expect("not zero"),
            )),
            source: None,
            revocations: Arc::default(),
        }
    }
}

impl TokenVerifier {
    pub fn new(jwks: &Jwks) -> Self {
        let verifier = Self::default();
        verifier.replace_keys(jwks);
        verifier
    }

    /// A verifier fed by `source` (the user service's keys as another process fetches them).
    pub(crate) fn fed_by(source: Weak<RemoteKeys>) -> Self {
        Self {
            source: Some(source),
            ..Self::default()
        }
    }

    /// Swaps in a new key set (after the issuer rotated its keys). Keys that are not Ed25519 JWKs
    /// are ignored.
    pub fn replace_keys(&self, jwks: &Jwks) {
        let keys = jwks.ed25519_keys().collect();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        // A token signed with a key that is gone must not pass on an earlier check.
        self.remembered().clear();
    }

    /// The deny list this verifier checks; whoever follows the user context's events feeds it.
    pub fn revocations(&self) -> &Arc<Revocations> {
        &self.revocations
    }

    fn remembered(&self) -> std::sync::MutexGuard<'_, lru::LruCache<String, Claims>> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(claims) = self.remembered().get(token) {
            if claims.exp.max(0) as u64 + LEEWAY < now {
                return Err(TokenError::Expired);
            }
            let claims = claims.clone();
            self.revocations.check(&claims)?;
            return Ok(claims);
        }
        let claims = self.check(token)?;
        self.remembered().put(token.to_owned(), claims.clone());
        self.revocations.check(&claims)?;
        Ok(claims)
    }

    /// [`verify`](Self::verify), and for a token signed with a key not seen yet, the keys are
    /// fetched again from their source first (when the verifier has one, at most once every few
    /// seconds; a request meeting a fetch under way waits for it), so a key the user service added since the last
    /// refresh is taken at once.
    pub async fn verify_fetching(&self, token: &str) -> Result<Claims, TokenError> {
        match self.verify(token) {
            Err(TokenError::UnknownKey(kid)) => {
                match self.source.as_ref().and_then(Weak::upgrade) {
                    Some(source) => source.verify_unknown_key(token).await,
                    None => Err(TokenError::UnknownKey(kid)),
                }
            }
            other => other,
        }
    }

    /// The full check: header, key, signature, issuer, expiry.
    fn check(&self, token: &str) -> Result<Claims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid("not an EdDSA token".into()));
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Invalid("no kid in the header".into()))?;
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        let key = keys
            .get(&kid)
            .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[ISSUER]);
        validation.leeway = LEEWAY;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e.to_string()),
            })
    }
}

/// The authenticated caller of a request: `Authorization: Bearer <access token>`.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: Uuid,
    pub roles: Vec<String>,
    /// The access token itself, for calls made on the caller's behalf (user-chat relays it to
    /// the services it calls, which check it again).
    pub token: String,
    /// When the person logged in to get this token (Unix seconds), however often it was
    /// refreshed since; `None` for tokens that do not say.
    pub logged_in_at: Option<i64>,
}

/// The token of an `Authorization: Bearer <token>` header (either spelling of the scheme),
/// trimmed; `None` without one.
pub fn bearer_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.roles.iter().any(|r| r == "admin")
    }
}

impl<S> FromRequestParts<S> for Caller
where
    Arc<TokenVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or(TokenError::Missing)?;
        let claims = Arc::<TokenVerifier>::from_ref(state)
            .verify_fetching(token)
            .await?;
        Ok(Caller {
            user_id: claims.sub,
            logged_in_at: claims.auth_time,
            roles: claims.roles,
            token: token.trim().to_owned(),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use jsonwebtoken::{EncodingKey, Header};
    use ring::signature::{Ed25519KeyPair, KeyPair};

    use super::*;

    pub(crate) fn signer(kid: &str) -> (EncodingKey, Jwk) {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        (
            EncodingKey::from_ed_der(pkcs8.as_ref()),
            Jwk::ed25519(kid, pair.public_key().as_ref()),
        )
    }

    pub(crate) fn token(key: &EncodingKey, kid: &str, expires_in: i64) -> String {
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.into());
        let claims = Claims {
            auth_time: None,
            iss: ISSUER.into(),
            sub: Uuid::now_v7(),
            roles: Vec::new(),
            iat: now,
            exp: now + expires_in,
            iat_ms: None,
        };
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    #[test]
    fn a_remembered_token_is_checked_again_once_its_key_is_gone() {
        let (key, jwk) = signer("k1");
        let verifier = TokenVerifier::new(&Jwks { keys: vec![jwk] });
        let token = token(&key, "k1", 60);
        let first = verifier.verify(&token).unwrap();
        assert_eq!(verifier.verify(&token).unwrap().sub, first.sub);
        let (_, other) = signer("k2");
        verifier.replace_keys(&Jwks { keys: vec![other] });
        assert!(matches!(
            verifier.verify(&token),
            Err(TokenError::UnknownKey(kid)) if kid == "k1"
        ));
    }

    #[test]
    fn a_changed_token_is_never_taken_for_a_remembered_one() {
        let (key, jwk) = signer("k1");
        let verifier = TokenVerifier::new(&Jwks { keys: vec![jwk] });
        let token = token(&key, "k1", 60);
        verifier.verify(&token).unwrap();
        let (payload_end, _) = token.rsplit_once('.').unwrap();
        let (_, forged_key) = signer("k1");
        let forged = format!("{payload_end}.{}", &forged_key.x);
        assert!(matches!(
            verifier.verify(&forged),
            Err(TokenError::Invalid(_))
        ));
    }

    #[test]
    fn an_expired_token_is_refused() {
        let (key, jwk) = signer("k1");
        let verifier = TokenVerifier::new(&Jwks { keys: vec![jwk] });
        let token = token(&key, "k1", -60);
        assert!(matches!(verifier.verify(&token), Err(TokenError::Expired)));
        assert!(matches!(verifier.verify(&token), Err(TokenError::Expired)));
    }
}
