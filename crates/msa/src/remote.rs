//! Talking to the other services in the microservice deployment: the user service's public keys
//! (JWKS), fetched at start and refreshed, so every service checks access tokens itself.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use msa_http::auth::{Jwks, TokenVerifier};
use tokio::sync::watch;

/// How often the keys are fetched again (the user service adds a key before it signs with it).
const REFRESH_EVERY: Duration = Duration::from_secs(30);

async fn fetch(client: &reqwest::Client, url: &str) -> Result<Jwks> {
    Ok(client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// A verifier of the user service's access tokens. Waits for the user service at start (saying
/// so once), then refreshes the keys in the background until `stop`.
pub async fn verifier(
    user_url: &str,
    mut stop: watch::Receiver<bool>,
) -> Result<Arc<TokenVerifier>> {
    let url = format!("{}/.well-known/jwks.json", user_url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut warned = false;
    let jwks = loop {
        match fetch(&client, &url).await {
            Ok(jwks) => break jwks,
            Err(error) if !warned => {
                tracing::warn!(%url, %error, "waiting for the user service's keys");
                warned = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => bail!("stopped while waiting for the user service at {user_url}"),
        }
    };
    let verifier = Arc::new(TokenVerifier::new(&jwks));
    let refreshed = verifier.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(REFRESH_EVERY) => {}
                _ = stop.changed() => return,
            }
            match fetch(&client, &url).await {
                Ok(jwks) => refreshed.replace_keys(&jwks),
                Err(error) => {
                    tracing::warn!(%url, %error, "could not refresh the user service's keys")
                }
            }
        }
    });
    Ok(verifier)
}
