//! Messages: post (for a service, after the credit is spent), history, read marks, edits,
//! redactions, reactions.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use msa_http::auth::Caller;
use msa_http::service_identity::ServiceCaller;
use msa_http::{page_limit, FieldError, Fields, Problem, StrictJson, StrictQuery};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::{message_id, room_id, ChatApi, InternalApi};
use crate::adapters::history::{MessageView, Window};
use crate::application::PostedMessage;
use crate::domain::{Emoji, MessageBody, TxnId};

/// A send's `txn_id` and body, checked as chat checks them (every invalid field named).
pub fn parse_new_message(
    txn_id: Option<String>,
    body: Option<String>,
) -> Result<(TxnId, MessageBody), Problem> {
    let mut fields = Fields::default();
    let txn_id = fields.parse("txn_id", txn_id.as_deref(), TxnId::parse);
    let body = fields.parse("body", body.as_deref(), MessageBody::parse);
    fields.finish()?;
    match (txn_id, body) {
        (Some(txn_id), Some(body)) => Ok((txn_id, body)),
        _ => unreachable!("finish() refuses missing fields"),
    }
}

/// A message to send (the same body at chat's internal endpoint and at user-chat's public one).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    /// The client's id for this send (1 to 64 characters): a retry with the same one posts nothing new.
    pub txn_id: Option<String>,
    pub body: Option<String>,
    pub reply_to: Option<Uuid>,
}

/// A message a service posts for a user (user-chat, after spending the sender's credit).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMessageFor {
    /// The user the message is from (the service vouches for it).
    pub sender: Uuid,
    /// The sender's id for this send (1 to 64 characters): a retry with the same one posts nothing new.
    pub txn_id: Option<String>,
    pub body: Option<String>,
    pub reply_to: Option<Uuid>,
}

#[utoipa::path(post, path = "/internal/v1/rooms/{id}/messages", tag = "rooms", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = NewMessageFor,
    responses((status = 201, description = "Posted", body = PostedMessage),
        (status = 200, description = "A retry: the message this txn_id posted before", body = PostedMessage),
        (status = 401, body = Problem), (status = 403, description = "Not a trusted service, or the sender may not post here", body = Problem), (status = 404, body = Problem),
        (status = 409, description = "The txn_id was used for another message", body = Problem), (status = 422, body = Problem)))]
pub(super) async fn post_message(
    State(internal): State<InternalApi>,
    _service: ServiceCaller,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<NewMessageFor>,
) -> Result<impl IntoResponse, Problem> {
    let (txn_id, message) = parse_new_message(body.txn_id, body.body)?;
    let room = room_id(&id)?;
    let (posted, new) = internal
        .api
        .service
        .post(body.sender, room, &txn_id, message, body.reply_to)
        .await?;
    let status = msa_http::created_or_ok(new);
    Ok((status, Json(posted)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct HistoryQuery {
    /// Messages with a smaller seq, newest first (the default: the newest messages).
    #[param(value_type = Option<u64>)]
    before: Option<String>,
    /// Messages with a larger seq, oldest first.
    #[param(value_type = Option<u64>)]
    after: Option<String>,
    /// 1 to 100 (default 50).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub(super) struct MessagePage {
    items: Vec<MessageView>,
}

#[utoipa::path(get, path = "/v1/rooms/{id}/messages", tag = "rooms", security(("bearer" = [])), params(("id" = Uuid, Path), HistoryQuery),
    responses((status = 200, body = MessagePage), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn history(
    State(api): State<ChatApi>,
    caller: Caller,
    Path(id): Path<String>,
    StrictQuery(query): StrictQuery<HistoryQuery>,
) -> Result<impl IntoResponse, Problem> {
    let seq = |field: &str, raw: Option<&str>| -> Result<Option<i64>, Problem> {
        raw.map(|r| r.parse::<i64>().ok().filter(|s| *s >= 0))
            .map(|parsed| {
                parsed.ok_or_else(|| {
                    Problem::invalid(vec![FieldError::new(
                        field,
                        "a sequence number (0 or more)",
                    )])
                })
            })
            .transpose()
    };
    let window = match (
        seq("before", query.before.as_deref())?,
        seq("after", query.after.as_deref())?,
    ) {
        (Some(_), Some(_)) => {
            return Err(Problem::invalid(vec![FieldError::new(
                "after",
                "give before or after, not both",
            )]))
        }
        (before, None) => Window::Before(before),
        (None, Some(after)) => Window::After(after),
    };
    let limit = page_limit(query.limit.as_deref())?;
    let items = api
        .service
        .history(caller.user_id, room_id(&id)?, window, limit)
        .await?;
    Ok(Json(MessagePage { items }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReadMarker {
    /// Everything up to this seq is read.
    seq: u64,
}

#[utoipa::path(post, path = "/v1/rooms/{id}/read", tag = "rooms", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = ReadMarker,
    responses((status = 204, description = "Marked (a marker never moves back)"), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn mark_read(
    State(api): State<ChatApi>,
    caller: Caller,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<ReadMarker>,
) -> Result<impl IntoResponse, Problem> {
    api.service
        .mark_read(caller.user_id, room_id(&id)?, body.seq)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MessageEdit {
    body: String,
}

#[utoipa::path(patch, path = "/v1/rooms/{id}/messages/{message_id}", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("message_id" = Uuid, Path)), request_body = MessageEdit,
    responses((status = 204, description = "Edited; the earlier body is kept in the message's edits"),
        (status = 403, description = "Not the sender, or not a member", body = Problem), (status = 404, body = Problem),
        (status = 410, description = "The message was deleted", body = Problem), (status = 422, body = Problem)))]
pub(super) async fn edit(
    State(api): State<ChatApi>,
    caller: Caller,
    Path((id, message)): Path<(String, String)>,
    StrictJson(body): StrictJson<MessageEdit>,
) -> Result<impl IntoResponse, Problem> {
    let body = Fields::one("body", MessageBody::parse(&body.body))?;
    api.changes.spend(caller.user_id)?;
    api.service
        .edit(caller.user_id, room_id(&id)?, message_id(&message)?, body)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/v1/rooms/{id}/messages/{message_id}", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 204, description = "Redacted: the body is gone from history and live clients; the fact stays"),
        (status = 403, description = "Neither the sender nor a moderator", body = Problem), (status = 404, body = Problem)))]
pub(super) async fn redact(
    State(api): State<ChatApi>,
    caller: Caller,
    Path((id, message)): Path<(String, String)>,
) -> Result<impl IntoResponse, Problem> {
    api.service
        .redact(caller.user_id, room_id(&id)?, message_id(&message)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/rooms/{id}/messages/{message_id}/edits", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("message_id" = Uuid, Path)),
    responses((status = 200, description = "Earlier bodies, oldest first", body = EditPage), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn edits(
    State(api): State<ChatApi>,
    caller: Caller,
    Path((id, message)): Path<(String, String)>,
) -> Result<impl IntoResponse, Problem> {
    let items = api
        .service
        .edits(caller.user_id, room_id(&id)?, message_id(&message)?)
        .await?;
    Ok(Json(EditPage { items }))
}

#[derive(Serialize, ToSchema)]
pub(super) struct EditPage {
    items: Vec<crate::adapters::history::EarlierBody>,
}

pub(super) async fn react(
    api: &ChatApi,
    caller: &Caller,
    id: &str,
    message: &str,
    emoji: &str,
    add: bool,
) -> Result<(), Problem> {
    let emoji = Fields::one("emoji", Emoji::parse(emoji))?;
    api.changes.spend(caller.user_id)?;
    api.service
        .react(
            caller.user_id,
            room_id(id)?,
            message_id(message)?,
            emoji,
            add,
        )
        .await?;
    Ok(())
}

#[utoipa::path(put, path = "/v1/rooms/{id}/messages/{message_id}/reactions/{emoji}", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("message_id" = Uuid, Path), ("emoji" = String, Path, description = "One emoji, URL-encoded, or a :shortcode:")),
    responses((status = 204, description = "Reacted (once per user and emoji; repeating changes nothing)"), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 410, body = Problem), (status = 422, description = "Not an emoji", body = Problem)))]
pub(super) async fn add_reaction(
    State(api): State<ChatApi>,
    caller: Caller,
    Path((id, message, emoji)): Path<(String, String, String)>,
) -> Result<impl IntoResponse, Problem> {
    react(&api, &caller, &id, &message, &emoji, true).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/v1/rooms/{id}/messages/{message_id}/reactions/{emoji}", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("message_id" = Uuid, Path), ("emoji" = String, Path)),
    responses((status = 204, description = "The reaction is gone (or was never there)"), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn remove_reaction(
    State(api): State<ChatApi>,
    caller: Caller,
    Path((id, message, emoji)): Path<(String, String, String)>,
) -> Result<impl IntoResponse, Problem> {
    react(&api, &caller, &id, &message, &emoji, false).await?;
    Ok(StatusCode::NO_CONTENT)
}
