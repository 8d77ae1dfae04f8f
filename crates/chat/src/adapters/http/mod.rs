//! The chat context's HTTP API: thin handlers over [`ChatService`](crate::ChatService), a file
//! per resource (rooms, members, messages, search); the routes, the OpenAPI document and the
//! mapping of [`ChatError`] to problems are here.

mod members;
mod messages;
mod rooms;
mod search;

use std::sync::Arc;

use axum::extract::FromRef;
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::Router;
use msa_http::service_identity::TrustedServices;
use msa_http::{BearerAuth, FieldError, Problem};
use utoipa::OpenApi;
use uuid::Uuid;

pub use self::members::InviteFor;
pub use self::messages::{parse_new_message, NewMessage, NewMessageFor};
pub use self::rooms::{parse_new_room, room_answer, NewRoom, NewRoomFor};
pub use crate::adapters::api::{ChatApi, CHANGES_PER_MINUTE};
use crate::adapters::stream;
use crate::application::ChatError;
use crate::domain::RoomError;

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
        .route("/internal/v1/rooms", post(rooms::create_room))
        .route("/internal/v1/rooms/{id}/invites", post(members::invite))
        .route(
            "/internal/v1/rooms/{id}/messages",
            post(messages::post_message),
        )
        .with_state(InternalApi { api, callers })
}

/// The public API. Clients post messages through user-chat (`POST /v1/rooms/{id}/messages`),
/// which spends a credit first, and make rooms and invite through it (`POST /v1/rooms`,
/// `POST /v1/rooms/{id}/invites`), which knows who exists.
pub fn routes(api: ChatApi) -> Router {
    Router::new()
        .route("/v1/rooms", get(rooms::my_rooms))
        .route(
            "/v1/rooms/{id}",
            get(rooms::room).patch(rooms::change_details),
        )
        .route("/v1/rooms/{id}/bans/{user_id}", delete(members::unban))
        .route("/v1/rooms/{id}/read-markers", get(rooms::read_markers))
        .route("/v1/rooms/{id}/members", post(members::join))
        .route("/v1/invites", get(members::my_invitations))
        .route("/v1/invites/{room_id}", delete(members::decline))
        .route(
            "/v1/rooms/{id}/members/{user_id}",
            delete(members::remove_member),
        )
        .route(
            "/v1/rooms/{id}/members/{user_id}/role",
            put(members::set_role),
        )
        .route("/v1/rooms/{id}/bans", post(members::ban))
        .route("/v1/rooms/{id}/messages", get(messages::history))
        .route("/v1/rooms/{id}/read", post(messages::mark_read))
        .route(
            "/v1/rooms/{id}/messages/{message_id}",
            axum::routing::patch(messages::edit).delete(messages::redact),
        )
        .route(
            "/v1/rooms/{id}/messages/{message_id}/edits",
            get(messages::edits),
        )
        .route(
            "/v1/rooms/{id}/messages/{message_id}/reactions/{emoji}",
            put(messages::add_reaction).delete(messages::remove_reaction),
        )
        .route("/v1/search/messages", get(search::search_messages))
        .route("/v1/stream", get(stream::stream))
        .with_state(api)
}

/// The chat context's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(rooms::my_rooms, rooms::room, rooms::change_details, members::unban, rooms::read_markers, members::join, members::my_invitations, members::decline, members::remove_member, members::set_role, members::ban, messages::history, messages::mark_read,
        messages::edit, messages::redact, messages::edits, messages::add_reaction, messages::remove_reaction, search::search_messages),
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

fn message_id(raw: &str) -> Result<Uuid, Problem> {
    raw.parse()
        .map_err(|_| Problem::not_found("no such message"))
}
