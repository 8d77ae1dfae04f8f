//! The user service's public keys as another process gets them: fetched from its
//! `/.well-known/jwks.json`, again now and then, and again when a token names a key not seen yet
//! (at most once every few seconds, so bad tokens cannot make anyone hammer the user service).
//! Requests that meet an unknown key while a fetch is under way wait for that fetch and check
//! again: a gateway starting under load once refused every token but the first one's while its
//! first fetch was in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::{Claims, Jwks, TokenError, TokenVerifier};

const REFETCH_AT_MOST_EVERY: Duration = Duration::from_secs(5);

pub struct RemoteKeys {
    url: String,
    client: reqwest::Client,
    verifier: Arc<TokenVerifier>,
    /// When the keys were last asked for. Held across a fetch (an async lock), so fetches never
    /// overlap and whoever waited on it sees the keys that fetch brought.
    fetched_at: tokio::sync::Mutex<Option<Instant>>,
}

impl RemoteKeys {
    /// Keys of the user service at `user_url`; none until the first [`fetch`](Self::fetch).
    pub fn new(user_url: &str, client: reqwest::Client) -> Self {
        Self {
            url: format!("{}/.well-known/jwks.json", user_url.trim_end_matches('/')),
            client,
            verifier: Arc::new(TokenVerifier::new(&Jwks::default())),
            fetched_at: tokio::sync::Mutex::new(None),
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
        let mut fetched_at = self.fetched_at.lock().await;
        self.fetch_holding(&mut fetched_at).await
    }

    async fn fetch_holding(&self, fetched_at: &mut Option<Instant>) -> Result<(), reqwest::Error> {
        *fetched_at = Some(Instant::now());
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
            Err(TokenError::UnknownKey(_)) => {
                let mut fetched_at = self.fetched_at.lock().await;
                // A fetch that finished while this request waited may have brought the key.
                match self.verifier.verify(token) {
                    Err(TokenError::UnknownKey(_))
                        if fetched_at.is_none_or(|at| at.elapsed() >= REFETCH_AT_MOST_EVERY) =>
                    {
                        if let Err(error) = self.fetch_holding(&mut fetched_at).await {
                            tracing::warn!(url = %self.url, error = %error.without_url(), "cannot fetch the user service's keys");
                        }
                        self.verifier.verify(token)
                    }
                    other => other,
                }
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use axum::routing::get;
    use axum::{Json, Router};

    use super::*;
    use crate::auth::tests::{signer, token};

    #[tokio::test]
    async fn requests_meeting_an_unknown_key_during_a_fetch_wait_for_it() {
        let (key, jwk) = signer("k1");
        let fetches = Arc::new(AtomicUsize::new(0));
        let served = fetches.clone();
        let jwks = Router::new().route(
            "/.well-known/jwks.json",
            get(move || {
                let served = served.clone();
                let jwks = Jwks {
                    keys: vec![jwk.clone()],
                };
                async move {
                    served.fetch_add(1, Ordering::SeqCst);
                    // Slow enough that every request below arrives while it is under way.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Json(jwks)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, jwks).await });
        let keys = Arc::new(RemoteKeys::new(
            &format!("http://{address}"),
            reqwest::Client::new(),
        ));

        let checks = (0..20).map(|_| {
            let keys = keys.clone();
            let token = token(&key, "k1", 60);
            tokio::spawn(async move { keys.verify(&token).await })
        });
        for check in checks.collect::<Vec<_>>() {
            check
                .await
                .unwrap()
                .expect("the fetched key verifies every token");
        }
        assert_eq!(
            fetches.load(Ordering::SeqCst),
            1,
            "one fetch for all of them"
        );

        // A key the user service does not have either stays unknown, without another fetch.
        let (other, _) = signer("k2");
        assert!(matches!(
            keys.verify(&token(&other, "k2", 60)).await,
            Err(TokenError::UnknownKey(kid)) if kid == "k2"
        ));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }
}
