//! The user service's public keys as another process gets them: fetched from its
//! `/.well-known/jwks.json`, again now and then, and again when a token names a key not seen yet
//! (at most once every few seconds, so bad tokens cannot make anyone hammer the user service).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::auth::{Claims, Jwks, TokenError, TokenVerifier};

const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(5);

pub struct RemoteKeys {
    url: String,
    client: reqwest::Client,
    verifier: Arc<TokenVerifier>,
    fetched_at: Mutex<Option<Instant>>,
}

impl RemoteKeys {
    /// Keys of the user service at `user_url`; none until the first [`fetch`](Self::fetch).
    pub fn new(user_url: &str, client: reqwest::Client) -> Self {
        Self {
            url: format!("{}/.well-known/jwks.json", user_url.trim_end_matches('/')),
            client,
            verifier: Arc::new(TokenVerifier::new(&Jwks::default())),
            fetched_at: Mutex::new(None),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The verifier these keys feed (for the [`crate::auth::Caller`] extractor).
    pub fn verifier(&self) -> Arc<TokenVerifier> {
        self.verifier.clone()
    }

    /// Fetches the keys now.
    pub async fn fetch(&self) -> Result<(), reqwest::Error> {
        *self.fetched_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        let jwks: Jwks = self
            .client
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        self.verifier.replace_keys(&jwks);
        Ok(())
    }

    /// Checks an access token, fetching the keys again for a key not seen before (unless they
    /// were fetched a moment ago).
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        match self.verifier.verify(token) {
            Err(TokenError::UnknownKey(_)) if self.refetch_allowed() => {
                if let Err(error) = self.fetch().await {
                    tracing::warn!(url = %self.url, error = %error.without_url(), "cannot fetch the user service's keys");
                }
                self.verifier.verify(token)
            }
            other => other,
        }
    }

    fn refetch_allowed(&self) -> bool {
        let at = self.fetched_at.lock().unwrap_or_else(|p| p.into_inner());
        !at.is_some_and(|at| at.elapsed() < REFETCH_AT_MOST_EVERY)
    }
}
