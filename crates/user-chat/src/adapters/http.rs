//! user-chat's HTTP API: sending under the credit policy, direct chats, the inbox, member lists.

use std::sync::Arc;

use axum::extract::{FromRef, Path, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use msa_chat::contract::{
    parse_new_message, parse_new_room, room_answer, NewMessage, NewRoom, PostedMessage, RoomView,
};
use msa_http::admission::Admission;
use msa_http::auth::{Caller, TokenVerifier};
use msa_http::{BearerAuth, FieldError, PageQuery, Problem, StrictJson, StrictQuery};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::adapters::read_models::MemberProfile;
use crate::application::ports::Requester;
use crate::application::{InboxItem, Invitee, UserChat};

#[derive(Clone)]
pub struct UserChatApi {
    pub service: Arc<UserChat>,
    pub verifier: Arc<TokenVerifier>,
    /// How many sends are worked on at once; the rest are refused early.
    pub admission: Arc<Admission>,
}

impl FromRef<UserChatApi> for Arc<TokenVerifier> {
    fn from_ref(api: &UserChatApi) -> Self {
        api.verifier.clone()
    }
}

pub fn routes(api: UserChatApi) -> Router {
    Router::new()
        .route("/v1/rooms", post(create_room))
        .route("/v1/rooms/{id}/invites", post(invite))
        .route("/v1/rooms/{id}/messages", post(send))
        .route("/v1/rooms/{id}/members", get(members))
        .route("/v1/direct-chats", post(open_direct))
        .route("/v1/inbox", get(inbox))
        .with_state(api)
}

/// user-chat's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(create_room, invite, send, members, open_direct, inbox, crate::adapters::export_http::export),
    modifiers(&BearerAuth),
    tags((name = "user-chat", description = "Sending with message credits, direct chats by nickname, the inbox"))
)]
pub struct UserChatApiDoc;

fn room_id(raw: &str) -> Result<Uuid, Problem> {
    raw.parse().map_err(|_| Problem::not_found("no such room"))
}

#[utoipa::path(post, path = "/v1/rooms/{id}/messages", tag = "user-chat", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = NewMessage,
    description = "Spends one message credit (today's free allowance first), then posts. A refused post gives the credit back; a retry with the same txn_id costs nothing more.",
    responses((status = 201, description = "Posted", body = PostedMessage),
        (status = 200, description = "A retry: the message this txn_id posted before", body = PostedMessage),
        (status = 402, description = "No free messages left today and no credits", body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "The txn_id was used for another message", body = Problem), (status = 422, body = Problem),
        (status = 503, description = "More sends at once than the server takes: try again after Retry-After (nothing was spent)", body = Problem)))]
async fn send(
    State(api): State<UserChatApi>,
    caller: Caller,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<NewMessage>,
) -> Result<impl IntoResponse, Problem> {
    let (txn_id, message) = parse_new_message(body.txn_id, body.body)?;
    // Before the credit is spent: a send refused here has not begun.
    let _place = api.admission.enter().await?;
    let (posted, new) = api
        .service
        .send(
            &Requester::from(&caller),
            room_id(&id)?,
            &txn_id,
            message,
            body.reply_to,
        )
        .await?;
    let status = msa_http::created_or_ok(new);
    Ok((status, Json(posted)))
}

#[utoipa::path(post, path = "/v1/rooms", tag = "user-chat", security(("bearer" = [])), request_body = NewRoom,
    description = "A group: the creator owns it and the others are invited (each joins with POST /v1/rooms/{id}/members). A direct room: with exactly one other user, found if the pair has one. Every member must be a user.",
    responses((status = 201, description = "Created", body = RoomView),
        (status = 200, description = "The direct room of this pair already existed", body = RoomView),
        (status = 401, body = Problem), (status = 422, description = "A bad name, too many members, or an id of nobody", body = Problem)))]
async fn create_room(
    State(api): State<UserChatApi>,
    caller: Caller,
    StrictJson(body): StrictJson<NewRoom>,
) -> Result<impl IntoResponse, Problem> {
    let (kind, name, members) = parse_new_room(body)?;
    let (room, created) = api
        .service
        .create_room(&Requester::from(&caller), kind, name, members)
        .await?;
    Ok(room_answer(room, created))
}

/// Who to invite: `user_id`, or `nickname`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Invitation {
    user_id: Option<Uuid>,
    /// The person's nickname (case-insensitive), instead of their id.
    nickname: Option<String>,
}

#[utoipa::path(post, path = "/v1/rooms/{id}/invites", tag = "user-chat", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = Invitation,
    responses((status = 204, description = "Invited (admins and owners)"), (status = 401, body = Problem), (status = 403, body = Problem),
        (status = 404, description = "No such room, or nobody has that nickname", body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn invite(
    State(api): State<UserChatApi>,
    caller: Caller,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<Invitation>,
) -> Result<impl IntoResponse, Problem> {
    let invitee = match (body.user_id, body.nickname) {
        (Some(user_id), None) => Invitee::Id(user_id),
        (None, Some(nickname))
            if !nickname.trim().is_empty() && nickname.chars().count() <= 100 =>
        {
            Invitee::Nickname(nickname.trim().to_owned())
        }
        _ => {
            return Err(Problem::invalid(vec![FieldError::new(
                "user_id",
                "give either user_id or nickname (1 to 100 characters)",
            )]))
        }
    };
    api.service
        .invite(&Requester::from(&caller), room_id(&id)?, invitee)
        .await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
struct MemberList {
    items: Vec<MemberProfile>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/rooms/{id}/members", tag = "user-chat", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, description = "The members with their profiles", body = MemberList),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn members(
    State(api): State<UserChatApi>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let items = api.service.members(caller.user_id, room_id(&id)?).await?;
    Ok(Json(MemberList {
        items,
        next_cursor: None,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DirectChat {
    /// The other person's nickname (case-insensitive).
    nickname: String,
}

#[utoipa::path(post, path = "/v1/direct-chats", tag = "user-chat", security(("bearer" = [])), request_body = DirectChat,
    responses((status = 201, description = "Opened", body = RoomView),
        (status = 200, description = "The direct room of this pair already existed", body = RoomView),
        (status = 401, body = Problem), (status = 404, description = "Nobody has that nickname", body = Problem),
        (status = 422, body = Problem)))]
async fn open_direct(
    State(api): State<UserChatApi>,
    caller: Caller,
    StrictJson(body): StrictJson<DirectChat>,
) -> Result<impl IntoResponse, Problem> {
    let (room, created) = api
        .service
        .open_direct(&Requester::from(&caller), &body.nickname)
        .await?;
    Ok(room_answer(room, created))
}

#[derive(Serialize, ToSchema)]
struct Inbox {
    items: Vec<InboxItem>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/inbox", tag = "user-chat", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, description = "My rooms, most recently active first (by `active_at`, ties by id): last message, unread count, the other person of a direct room; a page at a time", body = Inbox),
        (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn inbox(
    State(api): State<UserChatApi>,
    caller: Caller,
    StrictQuery(query): StrictQuery<PageQuery>,
) -> Result<impl IntoResponse, Problem> {
    let (items, next_cursor) = api
        .service
        .inbox(
            &Requester::from(&caller),
            query.cursor.as_deref(),
            query.limit()?,
        )
        .await?;
    Ok(Json(Inbox { items, next_cursor }))
}
