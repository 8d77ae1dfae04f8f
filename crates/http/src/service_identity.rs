//! Service identity: how a service proves to another that the call comes from a service, not
//! from an end user, so `/internal/…` endpoints refuse users even when a request reaches them.
//!
//! Without a shared secret: a calling service (user-chat) holds an Ed25519 key of its own and
//! signs short-lived tokens (`iss` = `msa.service:<name>`, `aud` = the called service, role
//! `service`); it publishes the public key at [`SERVICE_JWKS_PATH`]. A called service trusts the
//! callers it is configured with ([`TrustedServices`]), fetching each caller's keys from that
//! caller's own base URL, as every service fetches the user service's keys for access tokens.
//! An end user's access token is never a service token: its issuer is the user service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::signature::KeyPair;
use serde::{Deserialize, Serialize};

use crate::auth::{bearer_token, Jwk, Jwks};
use crate::Problem;

/// Where a calling service publishes its public keys (not routed by the gateway).
pub const SERVICE_JWKS_PATH: &str = "/.well-known/service-jwks.json";

/// The role every service token carries.
pub const SERVICE_ROLE: &str = "service";

/// How long a service token lives; a caller mints a new one when less than half is left.
const LIFETIME: Duration = Duration::from_secs(120);

/// Seconds a token is still taken after its `exp` (clock skew between services).
const LEEWAY: u64 = 5;

/// A caller's keys are fetched again for an unknown key at most this often.
const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(5);

fn issuer(service: &str) -> String {
    format!("msa.service:{service}")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ServiceClaims {
    iss: String,
    /// The calling service's name.
    sub: String,
    /// The called service's name.
    aud: String,
    roles: Vec<String>,
    iat: u64,
    exp: u64,
}

/// This process's identity as a caller of other services: its key, and the tokens it minted,
/// one per audience, reused while more than half their life is left.
pub struct ServiceIdentity {
    name: String,
    kid: String,
    key: EncodingKey,
    jwk: Jwk,
    /// By audience: the token and its `exp`.
    minted: Mutex<HashMap<String, (String, u64)>>,
}

impl ServiceIdentity {
    /// A new identity with a key made now, kept in memory only: tokens live two minutes and the
    /// key is published by this process, so nothing needs to outlive it.
    pub fn generate(name: &str) -> Result<Self, String> {
        let random = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&random)
            .map_err(|_| "cannot generate an Ed25519 key".to_owned())?;
        let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
            .map_err(|_| "cannot read the generated Ed25519 key".to_owned())?;
        let kid = format!("{name}-{}", uuid::Uuid::now_v7());
        Ok(Self {
            name: name.to_owned(),
            jwk: Jwk::ed25519(&kid, pair.public_key().as_ref()),
            key: EncodingKey::from_ed_der(pkcs8.as_ref()),
            kid,
            minted: Mutex::new(HashMap::new()),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public keys to publish at [`SERVICE_JWKS_PATH`].
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: vec![self.jwk.clone()],
        }
    }

    /// A token for calling `audience` (a service name).
    pub fn token_for(&self, audience: &str) -> String {
        let mut minted = self.minted.lock().unwrap_or_else(|p| p.into_inner());
        let now = jsonwebtoken::get_current_timestamp();
        // Reused while half its life is left by the wall clock the receiver checks `exp` with
        // (not by a monotonic one: after a step of the machine's clock a token still young by
        // the monotonic clock can be expired to every receiver).
        if let Some((token, exp)) = minted.get(audience) {
            let left = exp.saturating_sub(now);
            if left > LIFETIME.as_secs() / 2 && left <= LIFETIME.as_secs() {
                return token.clone();
            }
        }
        let claims = ServiceClaims {
            iss: issuer(&self.name),
            sub: self.name.clone(),
            aud: audience.to_owned(),
            roles: vec![SERVICE_ROLE.to_owned()],
            iat: now,
            exp: now + LIFETIME.as_secs(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.key)
            .expect("an Ed25519 key signs any claims");
        minted.insert(audience.to_owned(), (token.clone(), claims.exp));
        token
    }

    /// An axum route publishing this identity's keys.
    pub fn jwks_route<S: Clone + Send + Sync + 'static>(self: &Arc<Self>) -> axum::Router<S> {
        let jwks = self.jwks();
        axum::Router::new().route(
            SERVICE_JWKS_PATH,
            axum::routing::get(move || std::future::ready(axum::Json(jwks.clone()))),
        )
    }
}

/// Why a service token was refused (every variant answers 401, or 403 for a user's token).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServiceTokenError {
    #[error("no bearer token")]
    Missing,
    #[error("only services may call this endpoint")]
    NotAService,
    #[error("the service token is not valid: {0}")]
    Invalid(String),
}

impl From<ServiceTokenError> for Problem {
    fn from(error: ServiceTokenError) -> Self {
        match error {
            ServiceTokenError::NotAService => Problem::forbidden(error.to_string()),
            other => Problem::unauthorized(other.to_string()),
        }
    }
}

/// One trusted caller: its name and its keys, fetched from its instances' base URLs (each
/// instance makes its own key at start).
struct TrustedCaller {
    urls: Vec<String>,
    keys: RwLock<HashMap<String, DecodingKey>>,
    fetched_at: tokio::sync::Mutex<Option<Instant>>,
}

/// The services whose tokens this service takes, and its own name (the audience they must name).
pub struct TrustedServices {
    audience: String,
    callers: HashMap<String, TrustedCaller>,
    client: reqwest::Client,
    /// Tokens that checked out, by their exact text: a caller sends the same token for a minute,
    /// and an Ed25519 check on every internal call would cost more than the rest of it. Only the
    /// expiry is checked again.
    verified: Mutex<HashMap<String, (String, u64)>>,
}

/// Verified service tokens remembered (a few callers, one token each at a time).
const VERIFIED_TOKENS: usize = 64;

impl TrustedServices {
    /// `callers`: (service name, base URL) pairs; a caller running as several instances gives
    /// their URLs comma-separated.
    pub fn new(audience: &str, callers: &[(&str, &str)], client: reqwest::Client) -> Self {
        Self {
            audience: audience.to_owned(),
            callers: callers
                .iter()
                .map(|(name, url)| {
                    let caller = TrustedCaller {
                        urls: url
                            .split(',')
                            .map(str::trim)
                            .filter(|url| !url.is_empty())
                            .map(|url| format!("{}{SERVICE_JWKS_PATH}", url.trim_end_matches('/')))
                            .collect(),
                        keys: RwLock::default(),
                        fetched_at: tokio::sync::Mutex::new(None),
                    };
                    ((*name).to_owned(), caller)
                })
                .collect(),
            client,
            verified: Mutex::default(),
        }
    }

    /// Trusts nobody: every internal call is refused (a process that serves no internal routes).
    pub fn nobody(audience: &str) -> Self {
        Self::new(audience, &[], reqwest::Client::new())
    }

    /// Checks a service token; the calling service's name.
    pub async fn verify(&self, token: &str) -> Result<String, ServiceTokenError> {
        let now = jsonwebtoken::get_current_timestamp();
        let remembered = self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned();
        if let Some((name, exp)) = remembered {
            if now <= exp + LEEWAY {
                return Ok(name);
            }
        }
        let (name, exp) = self.check(token).await?;
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= VERIFIED_TOKENS {
            verified.retain(|_, (_, exp)| now <= *exp + LEEWAY);
            if verified.len() >= VERIFIED_TOKENS {
                verified.clear();
            }
        }
        verified.insert(token.to_owned(), (name.clone(), exp));
        Ok(name)
    }

    /// The full check: issuer, key, signature, audience, expiry, role.
    async fn check(&self, token: &str) -> Result<(String, u64), ServiceTokenError> {
        let invalid = |e: jsonwebtoken::errors::Error| ServiceTokenError::Invalid(e.to_string());
        let header = jsonwebtoken::decode_header(token).map_err(invalid)?;
        // Only the claims' issuer says which caller's keys to use; read it unverified, then
        // verify the whole token with that caller's key.
        let issuer_claim = unverified_issuer(token).ok_or(ServiceTokenError::NotAService)?;
        let Some((name, caller)) = self
            .callers
            .iter()
            .find(|(name, _)| issuer(name) == issuer_claim)
        else {
            return Err(ServiceTokenError::NotAService);
        };
        if header.alg != Algorithm::EdDSA {
            return Err(ServiceTokenError::Invalid("not an EdDSA token".into()));
        }
        let kid = header
            .kid
            .ok_or_else(|| ServiceTokenError::Invalid("no kid in the header".into()))?;
        let key = match caller.key(&kid) {
            Some(key) => key,
            None => {
                caller.fetch_unless_recent(&self.client).await;
                caller.key(&kid).ok_or_else(|| {
                    ServiceTokenError::Invalid(format!("unknown key {kid} of {name}"))
                })?
            }
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer(name)]);
        validation.set_audience(&[&self.audience]);
        validation.leeway = LEEWAY;
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        let claims = jsonwebtoken::decode::<ServiceClaims>(token, &key, &validation)
            .map_err(invalid)?
            .claims;
        if claims.sub != *name || !claims.roles.iter().any(|r| r == SERVICE_ROLE) {
            return Err(ServiceTokenError::NotAService);
        }
        Ok((claims.sub, claims.exp))
    }
}

impl TrustedCaller {
    fn key(&self, kid: &str) -> Option<DecodingKey> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(kid)
            .cloned()
    }

    async fn fetch_unless_recent(&self, client: &reqwest::Client) {
        let mut fetched_at = self.fetched_at.lock().await;
        if fetched_at.is_some_and(|at| at.elapsed() < REFETCH_AT_MOST_EVERY) {
            return;
        }
        *fetched_at = Some(Instant::now());
        // Every instance's keys; an instance that does not answer keeps the keys it had.
        let mut keys = self.keys.read().unwrap_or_else(|p| p.into_inner()).clone();
        // All at once: one instance that does not answer must not hold up the others.
        let fetches = self.urls.iter().map(|url| async move {
            let jwks = async {
                client
                    .get(url)
                    .send()
                    .await?
                    .error_for_status()?
                    .json::<Jwks>()
                    .await
            };
            (url, jwks.await)
        });
        let mut all_answered = true;
        let mut fetched_keys = HashMap::new();
        for (url, fetched) in futures::future::join_all(fetches).await {
            match fetched {
                Ok(jwks) => fetched_keys.extend(jwks.ed25519_keys()),
                Err(error) => {
                    all_answered = false;
                    tracing::warn!(%url, error = %error.without_url(), "cannot fetch a calling service's keys")
                }
            }
        }
        if all_answered {
            // Keys of instances gone since are dropped once every instance has answered.
            keys = fetched_keys;
        } else {
            keys.extend(fetched_keys);
        }
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
    }
}

/// The `iss` claim of a token, read without checking anything (to pick the key to check with).
fn unverified_issuer(token: &str) -> Option<String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    #[derive(Deserialize)]
    struct Issuer {
        iss: String,
    }
    serde_json::from_slice::<Issuer>(&bytes).ok().map(|c| c.iss)
}

/// The calling service of an `/internal/…` request: `Authorization: Bearer <service token>`.
/// A user's access token is refused with 403, anything else with 401.
#[derive(Debug, Clone)]
pub struct ServiceCaller {
    pub name: String,
}

impl<S> FromRequestParts<S> for ServiceCaller
where
    Arc<TrustedServices>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers).ok_or(ServiceTokenError::Missing)?;
        let name = Arc::<TrustedServices>::from_ref(state)
            .verify(token)
            .await?;
        Ok(ServiceCaller { name })
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;

    use super::*;

    async fn publish(identity: &Arc<ServiceIdentity>) -> String {
        let app: Router = identity.jwks_route();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}")
    }

    #[tokio::test]
    async fn a_trusted_service_is_taken_and_everyone_else_refused() {
        let user_chat = Arc::new(ServiceIdentity::generate("user-chat").unwrap());
        let url = publish(&user_chat).await;
        let chat = TrustedServices::new("chat", &[("user-chat", &url)], reqwest::Client::new());

        let token = user_chat.token_for("chat");
        assert_eq!(chat.verify(&token).await.unwrap(), "user-chat");
        assert_eq!(user_chat.token_for("chat"), token, "reused while fresh");

        // A token for another audience is not a token for chat.
        assert!(matches!(
            chat.verify(&user_chat.token_for("payment")).await,
            Err(ServiceTokenError::Invalid(_))
        ));
        // A service nobody trusts, even with a well-formed token, is not a service here.
        let stranger = ServiceIdentity::generate("stranger").unwrap();
        assert_eq!(
            chat.verify(&stranger.token_for("chat")).await,
            Err(ServiceTokenError::NotAService)
        );
        // A key that claims to be user-chat's but is not the one it publishes.
        let impostor = ServiceIdentity::generate("user-chat").unwrap();
        assert!(matches!(
            chat.verify(&impostor.token_for("chat")).await,
            Err(ServiceTokenError::Invalid(_))
        ));
        // An end user's access token (issued by the user service) is never a service token.
        let (key, _) = crate::auth::tests::signer("k1");
        let user_token = crate::auth::tests::token(&key, "k1", 60);
        assert_eq!(
            chat.verify(&user_token).await,
            Err(ServiceTokenError::NotAService)
        );
        assert!(chat.verify("not-a-token").await.is_err());
    }

    /// user-chat as two instances: each makes its own key, and chat, given both URLs, takes
    /// the tokens of either.
    #[tokio::test]
    async fn every_instance_of_a_trusted_service_is_taken() {
        let (one, two) = (
            Arc::new(ServiceIdentity::generate("user-chat").unwrap()),
            Arc::new(ServiceIdentity::generate("user-chat").unwrap()),
        );
        let urls = format!("{}, {}", publish(&one).await, publish(&two).await);
        let chat = TrustedServices::new("chat", &[("user-chat", &urls)], reqwest::Client::new());
        assert_eq!(
            chat.verify(&one.token_for("chat")).await.unwrap(),
            "user-chat"
        );
        assert_eq!(
            chat.verify(&two.token_for("chat")).await.unwrap(),
            "user-chat"
        );
        let impostor = ServiceIdentity::generate("user-chat").unwrap();
        assert!(chat.verify(&impostor.token_for("chat")).await.is_err());
    }
}
