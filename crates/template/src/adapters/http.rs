//! The notes API: `/v1/notes` for the signed-in user. Handlers are thin: parse the request into
//! domain values (a bad one is a 422 naming the field), call the use case, map its answer.

use std::sync::Arc;

use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, patch};
use axum::{Json, Router};
use msa_http::auth::{Caller, TokenVerifier};
use msa_http::{
    created_or_ok, idempotency_key, next_cursor, BearerAuth, Fields, PageQuery, Problem,
    StrictJson, StrictQuery,
};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::application::views::NoteView;
use crate::application::{NotesError, NotesService};
use crate::domain::{NoteError, NoteText};

/// What every notes handler is given.
#[derive(Clone)]
pub struct NotesApi {
    pub service: Arc<NotesService>,
    pub verifier: Arc<TokenVerifier>,
}

impl FromRef<NotesApi> for Arc<TokenVerifier> {
    fn from_ref(api: &NotesApi) -> Self {
        api.verifier.clone()
    }
}

pub fn routes(api: NotesApi) -> Router {
    Router::new()
        .route("/v1/notes", get(my_notes).post(write))
        .route("/v1/notes/{id}", patch(edit).delete(delete))
        .with_state(api)
}

#[derive(OpenApi)]
#[openapi(
    paths(my_notes, write, edit, delete),
    modifiers(&BearerAuth),
    tags((name = "notes", description = "A user's private notes (the template context)"))
)]
pub struct NotesApiDoc;

impl From<NotesError> for Problem {
    fn from(error: NotesError) -> Self {
        match error {
            NotesError::Invalid(errors) => Problem::invalid(errors),
            NotesError::Note(NoteError::NotFound) => Problem::not_found("no such note"),
            NotesError::Note(NoteError::AlreadyWritten) => {
                Problem::conflict("already-written", error.to_string())
            }
            NotesError::Busy => Problem::unavailable(error.to_string(), 1),
            NotesError::IdempotencyKeyReused(_) => {
                Problem::conflict("idempotency-key-reused", error.to_string())
            }
            NotesError::Store(error) => Problem::storage(&error),
        }
    }
}

/// A note's id from the path: anything else names no note (404, as another user's note).
fn note_id(raw: &str) -> Result<Uuid, Problem> {
    raw.parse().map_err(|_| Problem::not_found("no such note"))
}

fn text(raw: &str) -> Result<NoteText, Problem> {
    Fields::one("text", NoteText::parse(raw))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    /// 1 to 2,000 characters.
    text: String,
}

#[derive(Serialize, ToSchema)]
struct NotePage {
    items: Vec<NoteView>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/notes", tag = "notes", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, description = "My notes, newest first, a page at a time", body = NotePage),
        (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn my_notes(
    State(api): State<NotesApi>,
    caller: Caller,
    StrictQuery(query): StrictQuery<PageQuery>,
) -> Result<impl IntoResponse, Problem> {
    let limit = query.limit()?;
    let items = api
        .service
        .notes_of(caller.user_id, query.cursor::<Uuid>()?, limit)
        .await?;
    let next_cursor = next_cursor(&items, limit, |note| Some(note.id.to_string()));
    Ok(Json(NotePage { items, next_cursor }))
}

#[utoipa::path(post, path = "/v1/notes", tag = "notes", security(("bearer" = [])), request_body = NoteBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "Names this request: a retry with the same key and text answers the first note")),
    responses((status = 201, description = "Written", body = NoteView),
        (status = 200, description = "Written by an earlier request with this Idempotency-Key", body = NoteView),
        (status = 400, description = "A bad Idempotency-Key", body = Problem), (status = 401, body = Problem),
        (status = 409, description = "The Idempotency-Key was used for another text", body = Problem), (status = 422, body = Problem)))]
async fn write(
    State(api): State<NotesApi>,
    caller: Caller,
    headers: HeaderMap,
    StrictJson(body): StrictJson<NoteBody>,
) -> Result<impl IntoResponse, Problem> {
    let key = idempotency_key(&headers)?;
    let (note, written) = api
        .service
        .write(caller.user_id, text(&body.text)?, key)
        .await?;
    Ok((created_or_ok(written), Json(note)))
}

#[utoipa::path(patch, path = "/v1/notes/{id}", tag = "notes", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = NoteBody,
    responses((status = 204, description = "Edited"), (status = 401, body = Problem),
        (status = 404, description = "No such note of mine", body = Problem), (status = 422, body = Problem)))]
async fn edit(
    State(api): State<NotesApi>,
    caller: Caller,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<NoteBody>,
) -> Result<impl IntoResponse, Problem> {
    let id = note_id(&id)?;
    api.service
        .edit(caller.user_id, id, text(&body.text)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/v1/notes/{id}", tag = "notes", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Deleted"), (status = 401, body = Problem),
        (status = 404, description = "No such note of mine", body = Problem)))]
async fn delete(
    State(api): State<NotesApi>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    api.service.delete(caller.user_id, note_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
