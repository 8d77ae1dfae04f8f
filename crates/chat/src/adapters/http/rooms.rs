//! Rooms: create one (for a service), list mine, see one, change a group's name and topic,
//! read markers.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use msa_http::auth::Caller;
use msa_http::service_identity::ServiceCaller;
use msa_http::{FieldError, Fields, PageQuery, Problem, StrictJson, StrictQuery};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{room_id, ChatApi, InternalApi};
use crate::application::{RoomPage, RoomView};
use crate::domain::room::MAX_MEMBERS;
use crate::domain::{RoomKind, RoomName, Topic};

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

/// A room's name checked, and the members' count: a room to create.
pub fn parse_new_room(room: NewRoom) -> Result<(RoomKind, Option<RoomName>, Vec<Uuid>), Problem> {
    let name = Fields::one(
        "name",
        room.name.as_deref().map(RoomName::parse).transpose(),
    )?;
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
pub(super) async fn create_room(
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
    Ok(room_answer(room, created))
}

/// A room made (201), or the direct room the pair already had (200), with its address.
pub fn room_answer(room: RoomView, created: bool) -> impl IntoResponse {
    (
        msa_http::created_or_ok(created),
        [(header::LOCATION, format!("/v1/rooms/{}", room.id))],
        Json(room),
    )
}

#[utoipa::path(get, path = "/v1/rooms", tag = "rooms", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, description = "My rooms, most recently active first (by `active_at`, ties by id), with the last message; a page at a time", body = RoomPage),
        (status = 401, body = Problem), (status = 422, body = Problem)))]
pub(super) async fn my_rooms(
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
pub(super) async fn room(
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
pub(super) struct RoomDetails {
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
pub(super) async fn change_details(
    State(api): State<ChatApi>,
    caller: Caller,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<RoomDetails>,
) -> Result<impl IntoResponse, Problem> {
    let room = room_id(&id)?;
    let name = Fields::one(
        "name",
        body.name.as_deref().map(RoomName::parse).transpose(),
    )?;
    let topic = match body.topic {
        None => None,
        Some(None) => Some(None),
        Some(Some(topic)) => Some(Fields::one("topic", Topic::parse(&topic))?),
    };
    let changed = api
        .service
        .change_details(caller.user_id, room, name, topic)
        .await?;
    Ok(Json(changed))
}

/// How far a member has read a room.
#[derive(Serialize, ToSchema)]
pub(super) struct MemberReadMarker {
    user_id: String,
    /// The seq read up to (0: nothing yet).
    seq: i64,
}

#[derive(Serialize, ToSchema)]
pub(super) struct ReadMarkers {
    items: Vec<MemberReadMarker>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/rooms/{id}/read-markers", tag = "rooms", security(("bearer" = [])), params(("id" = Uuid, Path)),
    description = "Read receipts: how far each member has read the room; for members only.",
    responses((status = 200, body = ReadMarkers), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn read_markers(
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
