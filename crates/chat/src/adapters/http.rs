//! The chat context's HTTP API: thin handlers over [`ChatService`].

use std::sync::Arc;

use axum::extract::{FromRef, Path, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use msa_http::auth::Caller;
use msa_http::service_identity::{ServiceCaller, TrustedServices};
use msa_http::{
    page_cursor, page_limit, BearerAuth, FieldError, PageQuery, Problem, StrictJson, StrictQuery,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

pub use crate::adapters::api::{ChatApi, CHANGES_PER_MINUTE};
use crate::adapters::history::{MessageView, Window};
use crate::adapters::invites::Invitation;
use crate::adapters::search::{MessageSearch, SearchHit, SearchText, Searched};
use crate::adapters::stream;
use crate::application::{ChatError, PostedMessage, RoomPage, RoomView};
use crate::domain::body;
use crate::domain::room::MAX_MEMBERS;
use crate::domain::{Emoji, MessageBody, Role, RoomCommand, RoomError, RoomKind};

/// What the internal routes answer with: the API, and the services whose calls they take.
#[derive(Clone)]
struct InternalApi {
    api: ChatApi,
    callers: Arc<TrustedServices>,
}

impl FromRef<InternalApi> for Arc<TrustedServices> {
    fn from_ref(internal: &InternalApi) -> Self {
        internal.callers.clone()
    }
}

/// Posting a message, for deployments where no credit policy stands in front of chat: the
/// microservices' internal network (user-chat posts through it after spending a credit).
/// Only `callers` (services proving who they are) are answered; an end user's token is 403.
/// Not part of the public API; the gateway does not route `/internal`.
pub fn internal_routes(api: ChatApi, callers: Arc<TrustedServices>) -> Router {
    Router::new()
        .route("/internal/v1/rooms", post(create_room))
        .route("/internal/v1/rooms/{id}/invites", post(invite))
        .route("/internal/v1/rooms/{id}/messages", post(post_message))
        .with_state(InternalApi { api, callers })
}

/// The public API. Clients post messages through user-chat (`POST /v1/rooms/{id}/messages`),
/// which spends a credit first, and make rooms and invite through it (`POST /v1/rooms`,
/// `POST /v1/rooms/{id}/invites`), which knows who exists.
pub fn routes(api: ChatApi) -> Router {
    Router::new()
        .route("/v1/rooms", get(my_rooms))
        .route("/v1/rooms/{id}", get(room).patch(change_details))
        .route("/v1/rooms/{id}/bans/{user_id}", delete(unban))
        .route("/v1/rooms/{id}/read-markers", get(read_markers))
        .route("/v1/rooms/{id}/members", post(join))
        .route("/v1/invites", get(my_invitations))
        .route("/v1/invites/{room_id}", delete(decline))
        .route("/v1/rooms/{id}/members/{user_id}", delete(remove_member))
        .route("/v1/rooms/{id}/members/{user_id}/role", put(set_role))
        .route("/v1/rooms/{id}/bans", post(ban))
        .route("/v1/rooms/{id}/messages", get(history))
        .route("/v1/rooms/{id}/read", post(mark_read))
        .route(
            "/v1/rooms/{id}/messages/{message_id}",
            axum::routing::patch(edit).delete(redact),
        )
        .route("/v1/rooms/{id}/messages/{message_id}/edits", get(edits))
        .route(
            "/v1/rooms/{id}/messages/{message_id}/reactions/{emoji}",
            put(add_reaction).delete(remove_reaction),
        )
        .route("/v1/search/messages", get(search_messages))
        .route("/v1/stream", get(stream::stream))
        .with_state(api)
}

/// The chat context's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(my_rooms, room, change_details, unban, read_markers, join, my_invitations, decline, remove_member, set_role, ban, history, mark_read,
        edit, redact, edits, add_reaction, remove_reaction, search_messages),
    modifiers(&BearerAuth),
    tags((name = "rooms", description = "Rooms, members and messages"))
)]
pub struct ChatApiDoc;

impl From<ChatError> for Problem {
    fn from(error: ChatError) -> Self {
        match error {
            ChatError::Invalid(errors) => Problem::invalid(errors),
            ChatError::Room(refusal) => match refusal {
                RoomError::NotFound => Problem::not_found(refusal.to_string()),
                RoomError::NotAMember
                | RoomError::Forbidden
                | RoomError::Banned
                | RoomError::NotInvited => Problem::forbidden(refusal.to_string()),
                RoomError::AlreadyExists | RoomError::AlreadyMember | RoomError::LastOwner => {
                    Problem::conflict("room-state", refusal.to_string())
                }
                RoomError::NotTheSender => Problem::forbidden(refusal.to_string()),
                RoomError::MessageGone => {
                    Problem::new(StatusCode::GONE, "message-gone", refusal.to_string())
                }
                RoomError::DirectRoom | RoomError::DirectNeedsOnePeer => {
                    Problem::invalid(vec![FieldError::new("kind", refusal.to_string())])
                }
                RoomError::Full => Problem::conflict("room-full", refusal.to_string()),
                RoomError::TooManyReactions => {
                    Problem::conflict("too-many-reactions", refusal.to_string())
                }
                RoomError::NotYourself => {
                    Problem::invalid(vec![FieldError::new("user_id", refusal.to_string())])
                }
            },
            ChatError::MessageNotFound => Problem::not_found(error.to_string()),
            ChatError::TxnIdReused(_) => Problem::conflict("txn-id-reused", error.to_string()),
            ChatError::Busy => Problem::unavailable(error.to_string(), 1),
            ChatError::Store(error) => Problem::storage(&error),
        }
    }
}

fn room_id(raw: &str) -> Result<Uuid, Problem> {
    raw.parse().map_err(|_| Problem::not_found("no such room"))
}

fn user_id(field: &str, raw: &str) -> Result<Uuid, Problem> {
    raw.parse()
        .map_err(|_| Problem::invalid(vec![FieldError::new(field, "not a user id (UUID)")]))
}

/// A room to create (the body user-chat takes at `POST /v1/rooms`).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoom {
    pub kind: RoomKind,
    /// A group room's name (1 to 100 characters).
    pub name: Option<String>,
    /// The others: for `direct`, exactly one user, a member at once; for `group`, users invited
    /// (nobody is made a member without consent: each joins with `POST /v1/rooms/{id}/members`).
    #[serde(default)]
    pub members: Vec<Uuid>,
}

/// A group's name: 1 to 100 characters that show something, no control or reordering ones.
fn room_name(raw: &str) -> Result<String, Problem> {
    let name = raw.trim();
    if !body::shows_something(name)
        || name.chars().count() > 100
        || name.chars().any(|c| c.is_control() || body::reorders(c))
    {
        return Err(Problem::invalid(vec![FieldError::new(
            "name",
            "1 to 100 visible characters",
        )]));
    }
    Ok(name.to_owned())
}

/// A room's name checked, and the members' count: a room to create.
pub fn parse_new_room(room: NewRoom) -> Result<(RoomKind, Option<String>, Vec<Uuid>), Problem> {
    let name = room.name.as_deref().map(room_name).transpose()?;
    if room.members.len() >= MAX_MEMBERS {
        return Err(Problem::invalid(vec![FieldError::new(
            "members",
            format!("at most {} at creation", MAX_MEMBERS - 1),
        )]));
    }
    Ok((room.kind, name, room.members))
}

/// A room a service creates for a user (user-chat, once it knows every member exists).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoomFor {
    /// The user creating the room (the service vouches for it).
    pub creator: Uuid,
    pub kind: RoomKind,
    pub name: Option<String>,
    #[serde(default)]
    pub members: Vec<Uuid>,
}

#[utoipa::path(post, path = "/internal/v1/rooms", tag = "rooms", security(("bearer" = [])), request_body = NewRoomFor,
    responses((status = 201, description = "Created", body = RoomView),
        (status = 200, description = "The direct room of this pair already existed", body = RoomView),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)))]
async fn create_room(
    State(internal): State<InternalApi>,
    _service: ServiceCaller,
    StrictJson(body): StrictJson<NewRoomFor>,
) -> Result<impl IntoResponse, Problem> {
    let (kind, name, members) = parse_new_room(NewRoom {
        kind: body.kind,
        name: body.name,
        members: body.members,
    })?;
    let (room, created) = internal
        .api
        .service
        .create_room(body.creator, kind, name, members)
        .await?;
    let status = msa_http::created_or_ok(created);
    Ok((
        status,
        [(header::LOCATION, format!("/v1/rooms/{}", room.id))],
        Json(room),
    ))
}

#[utoipa::path(get, path = "/v1/rooms", tag = "rooms", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, description = "My rooms, most recently active first (by `active_at`, ties by id), with the last message; a page at a time", body = RoomPage),
        (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn my_rooms(
    State(api): State<ChatApi>,
    caller: Caller,
    StrictQuery(query): StrictQuery<PageQuery>,
) -> Result<impl IntoResponse, Problem> {
    let page = api
        .service
        .rooms_of(caller.user_id, query.cursor()?, query.limit()?)
        .await?;
    Ok(Json(page))
}

#[utoipa::path(get, path = "/v1/rooms/{id}", tag = "rooms", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = RoomView), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn room(
    State(api): State<ChatApi>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    Ok(Json(
        api.service.room_view(caller.user_id, room_id(&id)?).await?,
    ))
}

/// A group's new name and topic; a field left out stays as it is, a `null` topic clears it.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RoomDetails {
    /// 1 to 100 visible characters.
    name: Option<String>,
    /// Up to 500 characters, no control characters but new lines.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    topic: Option<Option<String>>,
}

/// A field that is there, even as `null` (`Some(None)`), apart from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

#[utoipa::path(patch, path = "/v1/rooms/{id}", tag = "rooms", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = RoomDetails,
    description = "Admins and owners of a group change its name and topic; members see DetailsChanged on the stream.",
    responses((status = 200, body = RoomView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn change_details(
    State(api): State<ChatApi>,
    caller: Caller,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<RoomDetails>,
) -> Result<impl IntoResponse, Problem> {
    let room = room_id(&id)?;
    let current = api.service.room_view(caller.user_id, room).await?;
    let name = match body.name.as_deref() {
        Some(name) => Some(room_name(name)?),
        None => current.name,
    };
    let topic = match body.topic {
        None => current.topic,
        Some(None) => None,
        Some(Some(topic)) => {
            let topic = topic.trim().to_owned();
            if topic.chars().count() > 500 || topic.chars().any(|c| c.is_control() && c != '\n') {
                return Err(Problem::invalid(vec![FieldError::new(
                    "topic",
                    "up to 500 characters, no control characters but new lines",
                )]));
            }
            (!topic.is_empty()).then_some(topic)
        }
    };
    let command = RoomCommand::ChangeDetails {
        by: caller.user_id,
        name,
        topic,
    };
    api.service
        .change_membership(caller.user_id, room, command)
        .await?;
    Ok(Json(api.service.room_view(caller.user_id, room).await?))
}

#[utoipa::path(delete, path = "/v1/rooms/{id}/bans/{user_id}", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204, description = "Unbanned (admins and owners): may be invited again"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn unban(
    State(api): State<ChatApi>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> Result<impl IntoResponse, Problem> {
    let command = RoomCommand::Unban {
        by: caller.user_id,
        user_id: user_id("user_id", &user)?,
    };
    api.service
        .change_membership(caller.user_id, room_id(&id)?, command)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// How far a member has read a room.
#[derive(Serialize, ToSchema)]
struct MemberReadMarker {
    user_id: String,
    /// The seq read up to (0: nothing yet).
    seq: i64,
}

#[derive(Serialize, ToSchema)]
struct ReadMarkers {
    items: Vec<MemberReadMarker>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/rooms/{id}/read-markers", tag = "rooms", security(("bearer" = [])), params(("id" = Uuid, Path)),
    description = "Read receipts: how far each member has read the room; for members only.",
    responses((status = 200, body = ReadMarkers), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn read_markers(
    State(api): State<ChatApi>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let room = room_id(&id)?;
    let items = api
        .service
        .read_markers(caller.user_id, room)
        .await?
        .into_iter()
        .map(|(user_id, seq)| MemberReadMarker { user_id, seq })
        .collect();
    Ok(Json(ReadMarkers {
        items,
        next_cursor: None,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct UserRef {
    user_id: Uuid,
}

/// An invitation a service makes for a user (user-chat, once it knows the invitee exists).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteFor {
    /// Who invites (the service vouches for it).
    pub by: Uuid,
    pub user_id: Uuid,
}

#[utoipa::path(post, path = "/internal/v1/rooms/{id}/invites", tag = "rooms", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = InviteFor,
    responses((status = 204, description = "Invited (admins and owners)"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn invite(
    State(internal): State<InternalApi>,
    _service: ServiceCaller,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<InviteFor>,
) -> Result<impl IntoResponse, Problem> {
    let command = RoomCommand::Invite {
        by: body.by,
        user_id: body.user_id,
    };
    internal
        .api
        .service
        .change_membership(body.by, room_id(&id)?, command)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, ToSchema)]
struct InvitationList {
    /// Open invitations, newest first (at most 100).
    items: Vec<Invitation>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/invites", tag = "rooms", security(("bearer" = [])),
    description = "Rooms I am invited to and have not joined or declined, with who invited me. Accept with POST /v1/rooms/{id}/members, decline with DELETE /v1/invites/{room_id}.",
    responses((status = 200, body = InvitationList), (status = 401, body = Problem)))]
async fn my_invitations(
    State(api): State<ChatApi>,
    caller: Caller,
) -> Result<impl IntoResponse, Problem> {
    let items = api.service.invitations(caller.user_id).await?;
    Ok(Json(InvitationList {
        items,
        next_cursor: None,
    }))
}

#[utoipa::path(delete, path = "/v1/invites/{room_id}", tag = "rooms", security(("bearer" = [])), params(("room_id" = Uuid, Path)),
    description = "Declines an invitation: the room's members see `InviteDeclined` on the stream.",
    responses((status = 204, description = "Declined"), (status = 401, body = Problem),
        (status = 403, description = "Not invited to this room", body = Problem), (status = 404, body = Problem),
        (status = 409, description = "Already a member (leave instead)", body = Problem)))]
async fn decline(
    State(api): State<ChatApi>,
    caller: Caller,
    Path(room): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let command = RoomCommand::Decline {
        user_id: caller.user_id,
    };
    api.service
        .change_membership(caller.user_id, room_id(&room)?, command)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/rooms/{id}/members", tag = "rooms", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Joined (invited users only; never the banned)"), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn join(
    State(api): State<ChatApi>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let command = RoomCommand::Join {
        user_id: caller.user_id,
    };
    api.service
        .change_membership(caller.user_id, room_id(&id)?, command)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/v1/rooms/{id}/members/{user_id}", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = String, Path, description = "`me` to leave, a user id to kick")),
    responses((status = 204, description = "Left, or kicked"), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "The last owner cannot leave", body = Problem)))]
async fn remove_member(
    State(api): State<ChatApi>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> Result<impl IntoResponse, Problem> {
    let command = match user.as_str() {
        "me" => RoomCommand::Leave {
            user_id: caller.user_id,
        },
        other => match user_id("user_id", other)? {
            me if me == caller.user_id => RoomCommand::Leave { user_id: me },
            target => RoomCommand::Kick {
                by: caller.user_id,
                user_id: target,
            },
        },
    };
    api.service
        .change_membership(caller.user_id, room_id(&id)?, command)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RoleChange {
    role: Role,
}

#[utoipa::path(put, path = "/v1/rooms/{id}/members/{user_id}/role", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = RoleChange,
    responses((status = 204, description = "Changed (owners only)"), (status = 403, body = Problem), (status = 409, body = Problem)))]
async fn set_role(
    State(api): State<ChatApi>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
    StrictJson(body): StrictJson<RoleChange>,
) -> Result<impl IntoResponse, Problem> {
    let command = RoomCommand::SetRole {
        by: caller.user_id,
        user_id: user_id("user_id", &user)?,
        role: body.role,
    };
    api.service
        .change_membership(caller.user_id, room_id(&id)?, command)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/rooms/{id}/bans", tag = "rooms", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = UserRef,
    responses((status = 204, description = "Banned: out, and cannot rejoin"), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn ban(
    State(api): State<ChatApi>,
    caller: Caller,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<UserRef>,
) -> Result<impl IntoResponse, Problem> {
    let command = RoomCommand::Ban {
        by: caller.user_id,
        user_id: body.user_id,
    };
    api.service
        .change_membership(caller.user_id, room_id(&id)?, command)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Whether `txn_id` is one a send takes: 1 to 64 characters, no control characters.
pub fn is_txn_id(txn_id: &str) -> bool {
    !txn_id.is_empty() && txn_id.len() <= 64 && !txn_id.chars().any(char::is_control)
}

/// A send's `txn_id` and body, checked as chat checks them (every invalid field named).
pub fn parse_new_message(
    txn_id: Option<String>,
    body: Option<String>,
) -> Result<(String, MessageBody), Problem> {
    let mut errors = Vec::new();
    let txn_id = match txn_id {
        Some(t) if is_txn_id(&t) => Some(t),
        Some(_) => {
            errors.push(FieldError::new("txn_id", "1 to 64 characters"));
            None
        }
        None => {
            errors.push(FieldError::new("txn_id", "required"));
            None
        }
    };
    let message = match body.as_deref().map(MessageBody::parse) {
        Some(Ok(message)) => Some(message),
        Some(Err(invalid)) => {
            errors.push(FieldError::new("body", invalid.0));
            None
        }
        None => {
            errors.push(FieldError::new("body", "required"));
            None
        }
    };
    match (txn_id, message) {
        (Some(txn_id), Some(message)) => Ok((txn_id, message)),
        _ => Err(Problem::invalid(errors)),
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
async fn post_message(
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
struct HistoryQuery {
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
struct MessagePage {
    items: Vec<MessageView>,
}

#[utoipa::path(get, path = "/v1/rooms/{id}/messages", tag = "rooms", security(("bearer" = [])), params(("id" = Uuid, Path), HistoryQuery),
    responses((status = 200, body = MessagePage), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn history(
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
struct ReadMarker {
    /// Everything up to this seq is read.
    seq: u64,
}

#[utoipa::path(post, path = "/v1/rooms/{id}/read", tag = "rooms", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = ReadMarker,
    responses((status = 204, description = "Marked (a marker never moves back)"), (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn mark_read(
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

fn message_id(raw: &str) -> Result<Uuid, Problem> {
    raw.parse()
        .map_err(|_| Problem::not_found("no such message"))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct MessageEdit {
    body: String,
}

#[utoipa::path(patch, path = "/v1/rooms/{id}/messages/{message_id}", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("message_id" = Uuid, Path)), request_body = MessageEdit,
    responses((status = 204, description = "Edited; the earlier body is kept in the message's edits"),
        (status = 403, description = "Not the sender, or not a member", body = Problem), (status = 404, body = Problem),
        (status = 410, description = "The message was deleted", body = Problem), (status = 422, body = Problem)))]
async fn edit(
    State(api): State<ChatApi>,
    caller: Caller,
    Path((id, message)): Path<(String, String)>,
    StrictJson(body): StrictJson<MessageEdit>,
) -> Result<impl IntoResponse, Problem> {
    let body = MessageBody::parse(&body.body)
        .map_err(|e| Problem::invalid(vec![FieldError::new("body", e.0)]))?;
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
async fn redact(
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
async fn edits(
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
struct EditPage {
    items: Vec<crate::adapters::history::EarlierBody>,
}

async fn react(
    api: &ChatApi,
    caller: &Caller,
    id: &str,
    message: &str,
    emoji: &str,
    add: bool,
) -> Result<(), Problem> {
    let emoji =
        Emoji::parse(emoji).map_err(|e| Problem::invalid(vec![FieldError::new("emoji", e.0)]))?;
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
async fn add_reaction(
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
async fn remove_reaction(
    State(api): State<ChatApi>,
    caller: Caller,
    Path((id, message, emoji)): Path<(String, String, String)>,
) -> Result<impl IntoResponse, Problem> {
    react(&api, &caller, &id, &message, &emoji, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
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
struct SearchPage {
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
async fn search_messages(
    State(api): State<ChatApi>,
    caller: Caller,
    StrictQuery(query): StrictQuery<SearchQuery>,
) -> Result<impl IntoResponse, Problem> {
    let text = SearchText::parse(query.q.as_deref().unwrap_or_default())
        .map_err(|rule| Problem::invalid(vec![FieldError::new("q", rule)]))?;
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
