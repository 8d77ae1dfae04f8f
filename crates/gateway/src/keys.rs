//! The user service's public keys, cached: fetched at start, and again when a token names a key
//! the cache does not have (at most once every few seconds, so bad tokens cannot make the
//! gateway hammer the user service).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use msa_http::auth::{Claims, Jwks, TokenError, TokenVerifier};

const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(5);

pub struct Keys {
    url: String,
    client: reqwest::Client,
    verifier: TokenVerifier,
    fetched_at: Mutex<Option<Instant>>,
}

impl Keys {
    pub fn new(user_url: &str, client: reqwest::Client) -> Self {
        Self {
            url: format!("{}/.well-known/jwks.json", user_url.trim_end_matches('/')),
            client,
            verifier: TokenVerifier::new(&Jwks::default()),
            fetched_at: Mutex::new(None),
        }
    }

    /// Fetches the keys now (unless fetched a moment ago); whether it did.
    pub async fn refresh(&self) -> bool {
        {
            let mut at = self.fetched_at.lock().unwrap_or_else(|p| p.into_inner());
            if at.is_some_and(|at| at.elapsed() < REFETCH_AT_MOST_EVERY) {
                return false;
            }
            *at = Some(Instant::now());
        }
        let fetched: Result<Jwks, reqwest::Error> = async {
            self.client
                .get(&self.url)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await
        }
        .await;
        match fetched {
            Ok(jwks) => {
                self.verifier.replace_keys(&jwks);
                true
            }
            Err(error) => {
                tracing::warn!(url = %self.url, error = %error.without_url(), "cannot fetch the user service's keys");
                false
            }
        }
    }

    /// Checks an access token, fetching the keys again for a key not seen before.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        match self.verifier.verify(token) {
            Err(TokenError::UnknownKey(_)) if self.refresh().await => self.verifier.verify(token),
            other => other,
        }
    }
}
