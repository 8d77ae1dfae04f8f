//! Talking to the other services in the microservice deployment: the user service's public keys
//! (JWKS), fetched at start and refreshed, so every service checks access tokens itself.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use msa_http::auth::TokenVerifier;
use msa_http::{RemoteKeys, RemoteRevocations};
use tokio::sync::watch;

/// How often the keys are fetched again (the user service adds a key before it signs with it).
const REFRESH_EVERY: Duration = Duration::from_secs(30);

/// A verifier of the user service's access tokens. Waits for the user service at start (saying
/// so once), then refreshes the keys in the background until `stop`; between refreshes a token
/// signed with a key not seen yet makes the verifier fetch them at once
/// (`TokenVerifier::verify_fetching`, at most once every few seconds).
pub async fn verifier(
    user_url: &str,
    mut stop: watch::Receiver<bool>,
) -> Result<Arc<TokenVerifier>> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let keys = RemoteKeys::new(user_url, client.clone());
    let mut warned = false;
    loop {
        match keys.fetch().await {
            Ok(()) => break,
            Err(error) if !warned => {
                tracing::warn!(url = keys.url(), %error, "waiting for the user service's keys");
                warned = true;
            }
            Err(_) => {}
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => bail!("stopped while waiting for the user service at {user_url}"),
        }
    }
    let verifier = keys.verifier();
    // The deny list is loaded before the service serves, then polled (`msa_http::revocations`).
    let revocations =
        RemoteRevocations::new(user_url, client.clone(), verifier.revocations().clone());
    while let Err(error) = revocations.fetch().await {
        if !warned {
            tracing::warn!(url = revocations.url(), error = %error.without_url(), "waiting for the user service's deny list");
            warned = true;
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => bail!("stopped while waiting for the user service at {user_url}"),
        }
    }
    let mut stop_following = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = revocations.follow() => {}
            _ = stop_following.changed() => {}
        }
    });
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(REFRESH_EVERY) => {}
                _ = stop.changed() => return,
            }
            if let Err(error) = keys.fetch().await {
                tracing::warn!(url = keys.url(), %error, "could not refresh the user service's keys");
            }
        }
    });
    Ok(verifier)
}
