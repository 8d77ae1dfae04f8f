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
    /// Their verifier comes back here for a key it does not know (while these keys live).
    pub fn new(user_url: &str, client: reqwest::Client) -> Arc<Self> {
        Arc::new_cyclic(|keys| Self {
            url: format!("{}/.well-known/jwks.json", user_url.trim_end_matches('/')),
            client,
            verifier: Arc::new(TokenVerifier::fed_by(keys.clone())),
            fetched_at: tokio::sync::Mutex::new(None),
        })
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
    /// were fetched a moment ago): [`TokenVerifier::verify_fetching`] on these keys' verifier.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        self.verifier.verify_fetching(token).await
    }

    /// For a token the verifier found signed with an unknown key: waits for a fetch under way,
    /// checks again, and fetches the keys itself unless they were fetched a moment ago.
    pub(crate) async fn verify_unknown_key(&self, token: &str) -> Result<Claims, TokenError> {
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
        let keys = RemoteKeys::new(&format!("http://{address}"), reqwest::Client::new());

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

    /// A service checks tokens in its `Caller` extractor with the keys' verifier: a token signed
    /// with a key the verifier has not seen makes it fetch the keys, as the gateway does.
    #[tokio::test]
    async fn a_service_meeting_an_unknown_key_fetches_the_keys_again() {
        let (key, jwk) = signer("k1");
        let jwks = Router::new().route(
            "/.well-known/jwks.json",
            get(move || {
                let jwks = Jwks {
                    keys: vec![jwk.clone()],
                };
                async move { Json(jwks) }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let user_service = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, jwks).await });
        // Never fetched: the service knows no key yet.
        let keys = RemoteKeys::new(&format!("http://{user_service}"), reqwest::Client::new());
        let verifier = keys.verifier();
        let signed = token(&key, "k1", 60);
        assert!(matches!(
            verifier.verify(&signed),
            Err(TokenError::UnknownKey(_))
        ));

        let service = Router::new()
            .route(
                "/me",
                get(|caller: crate::auth::Caller| async move { caller.user_id.to_string() }),
            )
            .with_state(verifier.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, service).await });
        let answer = reqwest::Client::new()
            .get(format!("http://{address}/me"))
            .bearer_auth(&signed)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
        assert!(verifier.verify(&signed).is_ok(), "the fetched key stays");

        // Once the keys are gone (their service stopped), an unknown key is only refused.
        drop(keys);
        let (other, _) = signer("k2");
        assert!(matches!(
            verifier.verify_fetching(&token(&other, "k2", 60)).await,
            Err(TokenError::UnknownKey(kid)) if kid == "k2"
        ));
    }
}
