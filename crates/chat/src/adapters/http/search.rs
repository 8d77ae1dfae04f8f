//! Searching the messages of my rooms.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use msa_http::auth::Caller;
use msa_http::{page_cursor, page_limit, FieldError, Fields, Problem, StrictQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{user_id, ChatApi};
use crate::adapters::search::{MessageSearch, SearchHit, SearchText, Searched};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct SearchQuery {
    /// The words to find, 1 to 200 characters, at most 16 words. Each word is found anywhere in a
    /// message, as written (case aside): `엔진룸` finds `엔진룸에서`, `deplo` finds `deployed`.
    /// Nothing in it is query syntax (`"`, `*`, `OR`, `%`, `_` are looked for as they are).
    q: Option<String>,
    /// Only this room (one I am a member of).
    #[param(value_type = Option<Uuid>)]
    room: Option<String>,
    /// Only messages this user sent.
    #[param(value_type = Option<Uuid>)]
    sender: Option<String>,
    /// Only messages posted before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime, example = "2026-11-23T22:58:00Z")]
    before: Option<String>,
    /// Only messages posted after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime, example = "2026-11-23T22:58:00Z")]
    after: Option<String>,
    /// `next_cursor` of the previous page (the same other parameters).
    cursor: Option<String>,
    /// 1 to 100 (default 50).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct SearchPage {
    /// Newest first.
    items: Vec<SearchHit>,
    next_cursor: Option<String>,
}

/// An instant of a query parameter, RFC 3339; anything else names the field.
fn instant(field: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, Problem> {
    raw.map(|raw| {
        DateTime::parse_from_rfc3339(raw)
            .map(|at| at.with_timezone(&Utc))
            .map_err(|_| {
                Problem::invalid(vec![FieldError::new(
                    field,
                    "an RFC 3339 instant, e.g. 2026-11-23T22:58:00Z",
                )])
            })
    })
    .transpose()
}

#[utoipa::path(get, path = "/v1/search/messages", tag = "rooms", security(("bearer" = [])), params(SearchQuery),
    description = "Searches the messages of the rooms I am a member of now (not rooms I left), newest first. Deleted messages are never found; an edited one is found by its new body only. Words of one or two characters are looked for without the index: alone, they read my rooms' messages newest first, so they are slower on a large history.",
    responses((status = 200, description = "Messages in my rooms with all the words, newest first", body = SearchPage),
        (status = 401, body = Problem), (status = 422, description = "A parameter is not valid: the field is named", body = Problem),
        (status = 503, description = "The search index is being rebuilt after an upgrade (Retry-After)", body = Problem)))]
pub(super) async fn search_messages(
    State(api): State<ChatApi>,
    caller: Caller,
    StrictQuery(query): StrictQuery<SearchQuery>,
) -> Result<impl IntoResponse, Problem> {
    let text = Fields::one(
        "q",
        SearchText::parse(query.q.as_deref().unwrap_or_default()),
    )?;
    let room = query
        .room
        .as_deref()
        .map(|raw| {
            raw.parse::<Uuid>().map_err(|_| {
                Problem::invalid(vec![FieldError::new("room", "not a room id (UUID)")])
            })
        })
        .transpose()?;
    let sender = query
        .sender
        .as_deref()
        .map(|raw| user_id("sender", raw))
        .transpose()?;
    let before = instant("before", query.before.as_deref())?;
    let after = instant("after", query.after.as_deref())?;
    if let (Some(before), Some(after)) = (before, after) {
        if after >= before {
            return Err(Problem::invalid(vec![FieldError::new(
                "after",
                "must be earlier than before",
            )]));
        }
    }
    let search = MessageSearch {
        text,
        room,
        sender,
        before,
        after,
        cursor: page_cursor::<i64>(query.cursor.as_deref())?,
        limit: page_limit(query.limit.as_deref())?,
    };
    match api.service.search(caller.user_id, &search).await? {
        Searched::Found(found) => Ok(Json(SearchPage {
            items: found.hits,
            next_cursor: found.next_cursor.map(|id| id.to_string()),
        })),
        Searched::Rebuilding => Err(Problem::unavailable(
            "the search index is being rebuilt after an upgrade; try again shortly",
            5,
        )),
    }
}
