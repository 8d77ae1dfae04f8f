//! The deny list: which users' access tokens are void before they expire. An access token is
//! checked by signature and expiry alone, so without this an erased user, or one who changed
//! their password or logged out everywhere, would keep working until their tokens expired.
//!
//! The list is fed by the user context's events (sessions revoked, account deactivated or
//! erased): in the user service from its own log (`user.revocations`), in every other process
//! that checks tokens by polling the user service ([`RemoteRevocations`]). [`TokenVerifier`]
//! checks it on every request, remembered tokens too, and open WebSockets watch
//! [`Revocations::changed`] to close a revoked user's sockets.
//!
//! Only revocations younger than the longest access-token lifetime matter (older tokens have
//! expired anyway), so the list stays small.
//!
//! [`TokenVerifier`]: crate::auth::TokenVerifier

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use uuid::Uuid;

use crate::auth::{Claims, TokenError};

/// One user's entry in the deny list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Revocation {
    pub user_id: Uuid,
    /// Access tokens issued before this instant (Unix milliseconds) are void, and those issued
    /// within its millisecond too: which came first inside one millisecond is unknown, and a
    /// token that might predate the revocation must not outlive it.
    pub tokens_before_ms: i64,
    /// The account is deactivated or erased: every access token of it is void.
    pub account_closed: bool,
}

impl Revocation {
    /// `self` and `other` (of the same user) together: the later cut-off, closed if either is.
    fn merged(self, other: Revocation) -> Revocation {
        Revocation {
            user_id: self.user_id,
            tokens_before_ms: self.tokens_before_ms.max(other.tokens_before_ms),
            account_closed: self.account_closed || other.account_closed,
        }
    }

    /// Whether this revocation voids the token with `claims`.
    pub fn voids(&self, claims: &Claims) -> bool {
        self.user_id == claims.sub
            && (self.account_closed || claims.issued_at_ms() <= self.tokens_before_ms)
    }
}

/// What the user service's `GET /.well-known/revocations.json` answers.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RevocationList {
    pub items: Vec<Revocation>,
}

/// The deny list of one process.
pub struct Revocations {
    by_user: RwLock<HashMap<Uuid, Revocation>>,
    /// Counts the changes that voided more tokens; open connections wait on it.
    changed: watch::Sender<u64>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self {
            by_user: RwLock::default(),
            changed: watch::Sender::new(0),
        }
    }
}

impl Revocations {
    /// Refuses the token of `claims` if its user's tokens of that age are revoked.
    pub fn check(&self, claims: &Claims) -> Result<(), TokenError> {
        let by_user = self.by_user.read().unwrap_or_else(|p| p.into_inner());
        match by_user.get(&claims.sub) {
            Some(revocation) if revocation.voids(claims) => Err(TokenError::Revoked),
            _ => Ok(()),
        }
    }

    /// Adds `revocations` (kept with what is known: a later cut-off wins, a closed account stays
    /// closed). Connections are told when any token became void.
    pub fn revoke(&self, revocations: impl IntoIterator<Item = Revocation>) {
        let mut voided = false;
        {
            let mut by_user = self.by_user.write().unwrap_or_else(|p| p.into_inner());
            for revocation in revocations {
                let merged = match by_user.get(&revocation.user_id) {
                    Some(known) => known.merged(revocation),
                    None => revocation,
                };
                if by_user.get(&revocation.user_id) != Some(&merged) {
                    by_user.insert(revocation.user_id, merged);
                    voided = true;
                }
            }
        }
        if voided {
            self.changed.send_modify(|count| *count += 1);
        }
    }

    /// Replaces the list with `list` (as the user service answered it: it decides what is still
    /// worth keeping), telling connections if any token became void.
    pub fn replace(&self, list: Vec<Revocation>) {
        let fresh: HashMap<Uuid, Revocation> = list.into_iter().map(|r| (r.user_id, r)).collect();
        let voided = {
            let mut by_user = self.by_user.write().unwrap_or_else(|p| p.into_inner());
            let voided = fresh.iter().any(|(user, revocation)| {
                by_user
                    .get(user)
                    .is_none_or(|known| known.merged(*revocation) != *known)
            });
            *by_user = fresh;
            voided
        };
        if voided {
            self.changed.send_modify(|count| *count += 1);
        }
    }

    /// Every entry, in no order.
    pub fn list(&self) -> Vec<Revocation> {
        let by_user = self.by_user.read().unwrap_or_else(|p| p.into_inner());
        by_user.values().copied().collect()
    }

    /// Changes whenever a revocation voided tokens: a connection that holds a token checks it
    /// again then (and closes if it is void).
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// How often another process asks the user service for the deny list.
pub const POLL_EVERY: Duration = Duration::from_secs(1);

/// The deny list as a process other than the user service gets it: fetched from the user
/// service's `GET /.well-known/revocations.json`, again every [`POLL_EVERY`]. Like the JWKS
/// beside it (and a certificate revocation list), it is public: user ids and instants, no secret.
pub struct RemoteRevocations {
    url: String,
    client: reqwest::Client,
    revocations: std::sync::Arc<Revocations>,
}

impl RemoteRevocations {
    pub fn new(
        user_url: &str,
        client: reqwest::Client,
        revocations: std::sync::Arc<Revocations>,
    ) -> Self {
        Self {
            url: format!(
                "{}/.well-known/revocations.json",
                user_url.trim_end_matches('/')
            ),
            client,
            revocations,
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Fetches the list now and puts it in place.
    pub async fn fetch(&self) -> Result<(), reqwest::Error> {
        let list: RevocationList = self
            .client
            .get(&self.url)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        self.revocations.replace(list.items);
        Ok(())
    }

    /// Fetches the list every [`POLL_EVERY`], forever (saying once when it cannot, and when it
    /// can again). Run it beside the process's server; drop it to stop.
    pub async fn follow(&self) {
        let mut failing = false;
        loop {
            tokio::time::sleep(POLL_EVERY).await;
            match self.fetch().await {
                Ok(()) if failing => {
                    tracing::info!(url = %self.url, "the deny list is fetched again");
                    failing = false;
                }
                Ok(()) => {}
                Err(error) if !failing => {
                    tracing::warn!(url = %self.url, error = %error.without_url(), "cannot fetch the deny list (revoked tokens); keeping the last one");
                    failing = true;
                }
                Err(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(user: Uuid, iat_ms: i64) -> Claims {
        Claims {
            auth_time: None,
            iss: crate::auth::ISSUER.into(),
            sub: user,
            roles: vec![],
            iat: iat_ms / 1000,
            exp: iat_ms / 1000 + 900,
            iat_ms: Some(iat_ms),
        }
    }

    #[test]
    fn tokens_issued_before_the_cut_off_are_void_and_later_ones_pass() {
        let revocations = Revocations::default();
        let (ada, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let mut changed = revocations.changed();
        revocations.revoke([Revocation {
            user_id: ada,
            tokens_before_ms: 10_500,
            account_closed: false,
        }]);
        assert!(changed.has_changed().unwrap());
        changed.mark_unchanged();
        assert!(matches!(
            revocations.check(&claims(ada, 10_499)),
            Err(TokenError::Revoked)
        ));
        assert!(revocations.check(&claims(ada, 10_501)).is_ok());
        assert!(revocations.check(&claims(bob, 1)).is_ok());
        // An earlier cut-off changes nothing and wakes nobody.
        revocations.revoke([Revocation {
            user_id: ada,
            tokens_before_ms: 5,
            account_closed: false,
        }]);
        assert!(!changed.has_changed().unwrap());
        // A closed account refuses every token, even later ones.
        revocations.replace(vec![Revocation {
            user_id: ada,
            tokens_before_ms: 10_500,
            account_closed: true,
        }]);
        assert!(changed.has_changed().unwrap());
        assert!(revocations.check(&claims(ada, 99_999)).is_err());
    }

    /// A deny list holding `user`'s tokens issued up to 10.5 s.
    fn revoked_at_10_500(user: Uuid) -> Revocations {
        let revocations = Revocations::default();
        revocations.revoke([Revocation {
            user_id: user,
            tokens_before_ms: 10_500,
            account_closed: false,
        }]);
        revocations
    }

    #[test]
    fn a_token_issued_in_the_revocations_millisecond_is_void() {
        let ada = Uuid::now_v7();
        let revocations = revoked_at_10_500(ada);
        assert!(matches!(
            revocations.check(&claims(ada, 10_500)),
            Err(TokenError::Revoked)
        ));
    }

    #[test]
    fn a_token_without_milliseconds_counts_from_the_start_of_its_second() {
        let ada = Uuid::now_v7();
        let revocations = revoked_at_10_500(ada);
        let mut old = claims(ada, 10_900);
        old.iat_ms = None;
        assert!(revocations.check(&old).is_err());
    }
}
