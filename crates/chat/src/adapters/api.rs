//! What every chat handler is given: the service, the token checks, the live feed, the budget
//! of edits and reactions. Its own file so the HTTP routes and the stream share it without
//! importing each other.

use std::sync::Arc;

use axum::extract::FromRef;
use msa_http::auth::TokenVerifier;
use msa_http::rate_limits::PerUserBudget;
use msa_sql::SqlReadModelStore;

use crate::adapters::live::LiveFeed;
use crate::application::ChatService;

#[derive(Clone)]
pub struct ChatApi {
    pub service: Arc<ChatService>,
    /// The query database, for the stream (it waits for history to catch up).
    pub read_models: Arc<SqlReadModelStore>,
    pub verifier: Arc<TokenVerifier>,
    pub feed: Arc<LiveFeed>,
    /// Edits and reactions cost no credit: each user gets [`CHANGES_PER_MINUTE`] of them.
    pub changes: Arc<PerUserBudget>,
}

/// Edits and reactions a user may make a minute (messages cost credits; these do not).
pub const CHANGES_PER_MINUTE: u32 = 30;

impl ChatApi {
    pub fn new(
        service: Arc<ChatService>,
        read_models: Arc<SqlReadModelStore>,
        verifier: Arc<TokenVerifier>,
        feed: Arc<LiveFeed>,
    ) -> Self {
        let per_minute = std::num::NonZeroU32::new(CHANGES_PER_MINUTE).expect("not zero");
        Self {
            service,
            read_models,
            verifier,
            feed,
            changes: Arc::new(PerUserBudget::per_minute("edits and reactions", per_minute)),
        }
    }
}

impl FromRef<ChatApi> for Arc<TokenVerifier> {
    fn from_ref(api: &ChatApi) -> Self {
        api.verifier.clone()
    }
}
