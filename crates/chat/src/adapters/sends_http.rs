//! What became of sends, for user-chat's recovery of half-done sends between microservices (in
//! the single server it calls [`Sends`] in-process). Only `callers` (services proving who they
//! are) are answered; an end user's token is 403. Not part of the public API; the gateway does
//! not route `/internal`.

use std::sync::Arc;

use axum::extract::{FromRef, State};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use msa_http::service_identity::{ServiceCaller, TrustedServices};
use msa_http::{FieldError, Fields, Problem, StrictJson};
use serde::{Deserialize, Serialize};

use crate::application::sends::{SendOutcome, SendRef, Sends, MAX_SENDS_ASKED};

#[derive(Clone)]
struct SendsApi {
    sends: Arc<Sends>,
    callers: Arc<TrustedServices>,
}

impl FromRef<SendsApi> for Arc<TrustedServices> {
    fn from_ref(api: &SendsApi) -> Self {
        api.callers.clone()
    }
}

pub fn internal_routes(sends: Arc<Sends>, callers: Arc<TrustedServices>) -> Router {
    Router::new()
        .route("/internal/v1/sends/outcomes", post(outcomes))
        .route("/internal/v1/sends/withdrawals", post(withdraw))
        .with_state(SendsApi { sends, callers })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendsAsked {
    sends: Vec<SendRef>,
}

#[derive(Serialize)]
struct Outcomes {
    /// One per send asked, in the same order.
    items: Vec<SendOutcome>,
}

/// A `txn_id` as a send takes it.
fn check(send: &SendRef, field: &str) -> Result<(), Problem> {
    Fields::one(field, crate::domain::TxnId::parse(&send.txn_id)).map(drop)
}

/// `POST /internal/v1/sends/outcomes`: `{sends: [{sender_id, room_id, txn_id}]}` (1 to 500) →
/// `{items: [{outcome: posted, message_id} | {outcome: withdrawn} | {outcome: open}]}`.
async fn outcomes(
    State(api): State<SendsApi>,
    _service: ServiceCaller,
    StrictJson(body): StrictJson<SendsAsked>,
) -> Result<impl IntoResponse, Problem> {
    if body.sends.is_empty() || body.sends.len() > MAX_SENDS_ASKED {
        return Err(Problem::invalid(vec![FieldError::new(
            "sends",
            format!("1 to {MAX_SENDS_ASKED} sends"),
        )]));
    }
    for (n, send) in body.sends.iter().enumerate() {
        check(send, &format!("sends[{n}].txn_id"))?;
    }
    let items = api.sends.outcomes(&body.sends).await?;
    Ok(Json(Outcomes { items }))
}

/// `POST /internal/v1/sends/withdrawals`: `{sender_id, room_id, txn_id}` → the send's outcome
/// now, `posted` or `withdrawn`.
async fn withdraw(
    State(api): State<SendsApi>,
    _service: ServiceCaller,
    StrictJson(send): StrictJson<SendRef>,
) -> Result<impl IntoResponse, Problem> {
    check(&send, "txn_id")?;
    Ok(Json(api.sends.withdraw(&send).await?))
}
