//! `GET /v1/users/me/export`: a person's export, streamed ([`crate::export`]). The gateway sends
//! this path to user-chat; the single server mounts it instead of the user service's own part.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use msa_http::auth::{Caller, TokenVerifier};
use msa_http::Problem;

use crate::application::export::{Exports, PersonalExport};
use crate::application::ports::Requester;

#[derive(Clone)]
pub struct ExportApi {
    pub exports: Arc<Exports>,
    pub verifier: Arc<TokenVerifier>,
}

impl FromRef<ExportApi> for Arc<TokenVerifier> {
    fn from_ref(api: &ExportApi) -> Self {
        api.verifier.clone()
    }
}

pub fn routes(api: ExportApi) -> Router {
    Router::new()
        .route("/v1/users/me/export", get(export))
        .with_state(api)
}

#[utoipa::path(get, path = "/v1/users/me/export", tag = "users", security(("bearer" = [])),
    description = "Everything the system keeps about the caller, in one JSON document: profile, account history and sessions (user), rooms, messages they sent, reactions and read markers (chat), payments with refunds and ledger lines (payment). Streamed a page at a time; a service failing midway cuts the transfer off (the body does not parse: ask again). Another person's data is never in it. Once an account is erased every token of it is refused (401), so there is nothing to export after erasure: export before deleting the account.",
    responses((status = 200, description = "The export (`Content-Disposition: attachment`)", body = PersonalExport),
        (status = 401, description = "No valid token, or the account was deactivated or erased", body = Problem),
        (status = 503, description = "A service holding part of the data is unavailable; try again", body = Problem)))]
pub(crate) async fn export(
    State(api): State<ExportApi>,
    caller: Caller,
) -> Result<Response, Problem> {
    let chunks = api.exports.export(&Requester::from(&caller)).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"msa-export.json\"",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}
