//! Members: invitations (made by a service, declined by the invitee), joining, leaving and
//! kicking, roles, bans.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use msa_http::auth::Caller;
use msa_http::service_identity::ServiceCaller;
use msa_http::{Problem, StrictJson};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{room_id, user_id, ChatApi, InternalApi};
use crate::adapters::invites::Invitation;
use crate::domain::{Role, RoomCommand};

#[utoipa::path(delete, path = "/v1/rooms/{id}/bans/{user_id}", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 204, description = "Unbanned (admins and owners): may be invited again"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn unban(
    State(api): State<ChatApi>,
    caller: Caller,
    Path((id, user)): Path<(String, String)>,
) -> Result<impl IntoResponse, Problem> {
    let command = RoomCommand::Unban {
        by: caller.user_id,
        user_id: user_id("user_id", &user)?,
    };
    changed(&api, caller.user_id, &id, command).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UserRef {
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
pub(super) async fn invite(
    State(internal): State<InternalApi>,
    _service: ServiceCaller,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<InviteFor>,
) -> Result<impl IntoResponse, Problem> {
    let command = RoomCommand::Invite {
        by: body.by,
        user_id: body.user_id,
    };
    changed(&internal.api, body.by, &id, command).await
}

#[derive(Serialize, ToSchema)]
pub(super) struct InvitationList {
    /// Open invitations, newest first (at most 100).
    items: Vec<Invitation>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/invites", tag = "rooms", security(("bearer" = [])),
    description = "Rooms I am invited to and have not joined or declined, with who invited me. Accept with POST /v1/rooms/{id}/members, decline with DELETE /v1/invites/{room_id}.",
    responses((status = 200, body = InvitationList), (status = 401, body = Problem)))]
pub(super) async fn my_invitations(
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
pub(super) async fn decline(
    State(api): State<ChatApi>,
    caller: Caller,
    Path(room): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let command = RoomCommand::Decline {
        user_id: caller.user_id,
    };
    changed(&api, caller.user_id, &room, command).await
}

#[utoipa::path(post, path = "/v1/rooms/{id}/members", tag = "rooms", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 204, description = "Joined (invited users only; never the banned)"),
        (status = 403, description = "Not invited (a room one is not in, whatever its kind), or banned", body = Problem),
        (status = 404, body = Problem), (status = 422, description = "A member of a direct room: it has no joining", body = Problem)))]
pub(super) async fn join(
    State(api): State<ChatApi>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let command = RoomCommand::Join {
        user_id: caller.user_id,
    };
    changed(&api, caller.user_id, &id, command).await
}

#[utoipa::path(delete, path = "/v1/rooms/{id}/members/{user_id}", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = String, Path, description = "`me` to leave, a user id to kick")),
    responses((status = 204, description = "Left, or kicked"), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "The last owner cannot leave", body = Problem)))]
pub(super) async fn remove_member(
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
    changed(&api, caller.user_id, &id, command).await
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RoleChange {
    role: Role,
}

#[utoipa::path(put, path = "/v1/rooms/{id}/members/{user_id}/role", tag = "rooms", security(("bearer" = [])),
    params(("id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = RoleChange,
    responses((status = 204, description = "Changed (owners only)"), (status = 403, body = Problem), (status = 409, body = Problem)))]
pub(super) async fn set_role(
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
    changed(&api, caller.user_id, &id, command).await
}

#[utoipa::path(post, path = "/v1/rooms/{id}/bans", tag = "rooms", security(("bearer" = [])), params(("id" = Uuid, Path)), request_body = UserRef,
    responses((status = 204, description = "Banned: out, and cannot rejoin"), (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(super) async fn ban(
    State(api): State<ChatApi>,
    caller: Caller,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<UserRef>,
) -> Result<impl IntoResponse, Problem> {
    let command = RoomCommand::Ban {
        by: caller.user_id,
        user_id: body.user_id,
    };
    changed(&api, caller.user_id, &id, command).await
}

/// `by` changes the room's membership: 204 once the change is made (or already was).
async fn changed(
    api: &ChatApi,
    by: Uuid,
    room: &str,
    command: RoomCommand,
) -> Result<StatusCode, Problem> {
    api.service
        .change_membership(by, room_id(room)?, command)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
