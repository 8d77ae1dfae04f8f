//! `GET /v1/stream`: a person's WebSocket, fed by the chat log's shared tail ([`LiveFeed`]):
//! authentication (header or first frame), resuming from a cursor, the rooms it may see,
//! heartbeats and typing notices.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use msa_http::auth::{Claims, TokenVerifier};
use msa_http::{FieldError, Problem};
use msa_kernel::LogPosition;
use serde::Deserialize;
use tokio::sync::watch;
use uuid::Uuid;

use crate::adapters::api::ChatApi;
use crate::adapters::history;
use crate::adapters::live_event::{decode_cursor, encode_cursor, LiveEvent, Typing};
use crate::adapters::live_frames::{
    ClientFrame, ServerFrame, REVOKED, TOO_MANY_SOCKETS, TOO_SLOW, UNAUTHORIZED,
};
use crate::adapters::live_limits::Slot;
use crate::adapters::live_routes::{Inbox, Outgoing, Routes};
use crate::domain::{MembershipChange, RoomEvent};

/// How many events a connection's route holds for it before it counts as too slow.
const BUFFER: usize = 4096;
/// How long a resuming connection waits for history to apply events committed but not yet
/// visible to log readers, so the deletions made before it came are known.
const REDACTIONS_CATCH_UP: Duration = Duration::from_millis(500);
const HEARTBEAT: Duration = Duration::from_secs(20);
/// A client silent this long (no pong, no frame) is gone.
const SILENCE: Duration = Duration::from_secs(60);
/// The largest frame or message a client may send (auth with a token, typing notices).
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;

#[derive(Deserialize)]
pub struct StreamQuery {
    since: Option<String>,
}

/// `GET /v1/stream`: upgrades to the WebSocket. The token comes in the `Authorization` header or,
/// for browsers (which cannot set it on a WebSocket), in the first frame:
/// `{"type": "auth", "token": "<access token>"}`.
pub async fn stream(
    State(state): State<ChatApi>,
    PeerAddress(peer): PeerAddress,
    headers: HeaderMap,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return Problem::invalid(vec![FieldError::new(
            "query string",
            "only `since` is accepted",
        )])
        .into_response();
    };
    let since = match query.since.as_deref().map(decode_cursor) {
        Some(None) => {
            return Problem::invalid(vec![FieldError::new(
                "since",
                "not a cursor this stream handed out",
            )])
            .into_response()
        }
        Some(Some(position)) => Some(position),
        None => None,
    };
    // A cursor past the end of the log was never handed out (or belongs to another server):
    // refused at once rather than waited for.
    if let Some(position) = since {
        match state.feed.events.last_committed_position().await {
            Ok(end) if position > end => {
                return Problem::invalid(vec![FieldError::new(
                    "since",
                    "a cursor after the end of the log; resume from a cursor this stream handed out, or omit it",
                )])
                .into_response()
            }
            Ok(_) => {}
            Err(error) => return Problem::internal(&error).into_response(),
        }
    }
    let header_user = match headers.get(axum::http::header::AUTHORIZATION) {
        None => None,
        Some(value) => {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            match state.verifier.verify(token) {
                Ok(claims) => Some(claims),
                Err(error) => return Problem::from(error).into_response(),
            }
        }
    };
    let Ok(upgrade) = upgrade else {
        return Problem::bad_request("GET /v1/stream is a WebSocket: send the upgrade headers")
            .into_response();
    };
    // Counted from the upgrade, so unauthenticated sockets count too.
    let Some(address_slot) = state.feed.limits.take_address(peer) else {
        return Problem::too_many_requests("too many streams open from this address", 5)
            .into_response();
    };
    let user_slot = match &header_user {
        None => None,
        Some(claims) => match state.feed.limits.take_user(claims.sub) {
            Some(slot) => Some(slot),
            None => {
                return Problem::too_many_requests("too many streams open for this user", 5)
                    .into_response()
            }
        },
    };
    // What clients send on the stream (auth, typing) is small: a larger frame is refused while
    // it is read, before authentication too, instead of being buffered whole.
    let upgrade = upgrade
        .read_buffer_size(msa_http::WEBSOCKET_READ_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE);
    upgrade.on_upgrade(move |socket| async move {
        let _address_slot = address_slot;
        if let Err(reason) = serve_socket(socket, state, header_user, user_slot, since).await {
            tracing::debug!(%reason, "stream ended");
        }
    })
}

async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
}

async fn send_text(socket: &mut WebSocket, text: Utf8Bytes) -> Result<(), String> {
    socket
        .send(Message::Text(text))
        .await
        .map_err(|e| e.to_string())
}

/// Takes the connection's route down when the connection ends, however it ends.
struct Connected<'a> {
    routes: &'a Routes,
    id: u64,
}

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.routes.disconnect(self.id);
    }
}

/// The rooms the user may receive events of, kept current as membership events go by.
struct Rooms {
    user_id: Uuid,
    rooms: HashSet<Uuid>,
    /// While catching up from an old cursor: the rooms the user is in now. A join replayed from
    /// the past opens only these, so someone kicked or banned since cannot reconnect with an
    /// old cursor and read the room again. `None` once live.
    member_now: Option<HashSet<Uuid>>,
}

impl Rooms {
    /// Whether to deliver `live`; updates membership first (a joiner gets their join, a leaver
    /// their leave, then nothing more of that room).
    fn admit(&mut self, live: &LiveEvent) -> bool {
        let mine = live
            .event
            .membership_changes()
            .into_iter()
            .find(|(user, _)| *user == self.user_id);
        match mine {
            Some((_, MembershipChange::Joined)) => {
                if self
                    .member_now
                    .as_ref()
                    .is_none_or(|now| now.contains(&live.room_id))
                {
                    self.rooms.insert(live.room_id);
                }
                true
            }
            // An invitation reaches the invitee, so a client can show it.
            Some((_, MembershipChange::Invited | MembershipChange::Declined)) => true,
            Some((_, MembershipChange::Left)) => self.rooms.remove(&live.room_id),
            None => self.rooms.contains(&live.room_id),
        }
    }
}

async fn serve_socket(
    mut socket: WebSocket,
    state: ChatApi,
    header_user: Option<Claims>,
    user_slot: Option<Slot>,
    since: Option<LogPosition>,
) -> Result<(), String> {
    // Whoever follows the user context's events says when this token becomes void.
    let mut revoked = state.verifier.revocations().changed();
    // Checked once at the start too: a revocation may have come since the token was checked.
    revoked.mark_changed();
    let Some((claims, _user_slot)) = identify(&mut socket, &state, header_user, user_slot).await
    else {
        return Ok(());
    };
    let user_id = claims.sub;
    // Connect before catching up, so nothing appended meanwhile is missed: membership events
    // naming the user are routed to the connection from now on, its rooms' events once it
    // follows them (below), and catch-up reads the store past anything routed before that.
    let mut inbox = state.feed.routes.connect(user_id, BUFFER);
    let _connected = Connected {
        routes: &state.feed.routes,
        id: inbox.id,
    };
    let mut sent = match since {
        Some(position) => position,
        None => {
            let mut head = state.feed.head.clone();
            let caught_up = head
                .wait_for(Option::is_some)
                .await
                .map_err(|e| e.to_string())?;
            caught_up.expect("waited for Some")
        }
    };
    if !history_has_caught_up(&state, sent).await? {
        close(&mut socket, 1013, "try again later: history is behind").await;
        return Ok(());
    }
    let current: HashSet<Uuid> = history::room_ids_of(&state.read_models, user_id)
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let mut rooms = Rooms {
        user_id,
        rooms: current.clone(),
        member_now: Some(current),
    };
    state
        .feed
        .routes
        .follow(inbox.id, rooms.rooms.iter().copied());
    let ready = ServerFrame::Ready {
        cursor: encode_cursor(sent),
    };
    send_text(&mut socket, ready.to_text().into()).await?;
    catch_up(&mut socket, &state, &mut rooms, &mut sent).await?;
    rooms.member_now = None;
    let mut live = Live {
        socket,
        state: &state,
        claims: &claims,
        rooms,
        sent,
    };
    live.relay(&mut inbox, &mut revoked).await
}

/// Who the socket is (the header's token, else the first frame's) and their slot among the
/// user's streams; `None` once the socket is closed for want of either.
async fn identify(
    socket: &mut WebSocket,
    state: &ChatApi,
    header_user: Option<Claims>,
    user_slot: Option<Slot>,
) -> Option<(Claims, Slot)> {
    let claims = match header_user {
        Some(claims) => claims,
        None => match first_frame_auth(socket, &state.verifier).await {
            Some(claims) => claims,
            None => {
                close(
                    socket,
                    UNAUTHORIZED,
                    "unauthorized: send {\"type\":\"auth\",\"token\":...} first",
                )
                .await;
                return None;
            }
        },
    };
    let slot = match user_slot {
        Some(slot) => slot,
        None => match state.feed.limits.take_user(claims.sub) {
            Some(slot) => slot,
            None => {
                close(
                    socket,
                    TOO_MANY_SOCKETS,
                    "too many streams open for this user",
                )
                .await;
                return None;
            }
        },
    };
    Some((claims, slot))
}

/// Waits until history has applied the log at least as far as the feed's head (and `sent`), so
/// the user's rooms and the redactions made so far are known; `false` if it stays behind.
async fn history_has_caught_up(state: &ChatApi, sent: LogPosition) -> Result<bool, String> {
    let db = &*state.read_models;
    let head = state.feed.head.borrow().unwrap_or(sent).max(sent);
    // The feed may be a few events behind the store.
    let head = state
        .feed
        .events
        .last_position()
        .await
        .map_err(|e| e.to_string())?
        .max(head);
    // A deletion committed just before this connection may still be hidden from log readers
    // (PostgreSQL's horizon: an older transaction elsewhere on the server still runs); history
    // is given a moment more to apply it too.
    let committed = state
        .feed
        .events
        .last_committed_position()
        .await
        .map_err(|e| e.to_string())?;
    let started = tokio::time::Instant::now();
    loop {
        let applied = history::applied_up_to(db)
            .await
            .map_err(|e| e.to_string())?;
        let waited = started.elapsed();
        if applied >= head && (applied >= committed || waited > REDACTIONS_CATCH_UP) {
            return Ok(true);
        }
        if waited > Duration::from_secs(10) {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Sends what the client missed, from the store, past `sent` up to wherever the feed has got
/// to. Bodies deleted since are not sent again (the store keeps the facts, history the
/// redaction).
async fn catch_up(
    socket: &mut WebSocket,
    state: &ChatApi,
    rooms: &mut Rooms,
    sent: &mut LogPosition,
) -> Result<(), String> {
    let db = &*state.read_models;
    let mut redacted: HashMap<Uuid, HashSet<String>> = HashMap::new();
    loop {
        let batch = state
            .feed
            .events
            .read_all(*sent, 500)
            .await
            .map_err(|e| e.to_string())?;
        let Some(last) = batch.last().map(|e| e.position) else {
            return Ok(());
        };
        for recorded in &batch {
            let Some(event) = LiveEvent::of(recorded) else {
                continue;
            };
            if !rooms.admit(&event) {
                continue;
            }
            if let RoomEvent::MessagePosted { message_id, .. }
            | RoomEvent::MessageEdited { message_id, .. } = &event.event
            {
                let gone = match redacted.entry(event.room_id) {
                    Entry::Occupied(known) => known.into_mut(),
                    Entry::Vacant(slot) => {
                        let ids = history::redacted_in(db, event.room_id)
                            .await
                            .map_err(|e| e.to_string())?;
                        slot.insert(ids.into_iter().collect())
                    }
                };
                if gone.contains(&message_id.to_string()) {
                    let redacted = event.frame().redacted();
                    send_text(socket, redacted.to_text().into()).await?;
                    continue;
                }
            }
            send_text(socket, event.text()).await?;
        }
        *sent = last;
    }
}

/// A caught-up connection: relays its rooms' events and typing notices as they come, until the
/// client goes, falls too far behind, stops answering, or its token is revoked.
struct Live<'a> {
    socket: WebSocket,
    state: &'a ChatApi,
    claims: &'a Claims,
    rooms: Rooms,
    sent: LogPosition,
}

impl Live<'_> {
    async fn relay(
        &mut self,
        inbox: &mut Inbox,
        revoked: &mut watch::Receiver<u64>,
    ) -> Result<(), String> {
        let user_id = self.claims.sub;
        let mut heartbeat = tokio::time::interval(HEARTBEAT);
        let mut last_heard = tokio::time::Instant::now();
        loop {
            tokio::select! {
                received = inbox.events.recv() => match received {
                    Some(Outgoing::Event(event)) if event.position <= self.sent => {} // sent while catching up
                    Some(Outgoing::Event(event)) => {
                        self.sent = event.position;
                        if self.rooms.admit(&event) {
                            send_text(&mut self.socket, event.text()).await?;
                        }
                    }
                    Some(Outgoing::Typing(notice)) => {
                        if notice.user_id != user_id && self.rooms.rooms.contains(&notice.room_id) {
                            let typing = ServerFrame::Typing { room_id: notice.room_id, user_id: notice.user_id };
                            send_text(&mut self.socket, typing.to_text().into()).await?;
                        }
                    }
                    None if inbox.too_slow() => {
                        close(&mut self.socket, TOO_SLOW, "too slow: reconnect with ?since=<last cursor>").await;
                        return Ok(());
                    }
                    None => {
                        close(&mut self.socket, 1001, "server shutting down").await;
                        return Ok(());
                    }
                },
                incoming = self.socket.recv() => match incoming {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(()),
                    Some(Ok(Message::Text(text))) => {
                        last_heard = tokio::time::Instant::now();
                        self.typing(text.as_str());
                    }
                    Some(Ok(_)) => last_heard = tokio::time::Instant::now(),
                },
                _ = revoked.changed() => {
                    if self.state.verifier.revocations().check(self.claims).is_err() {
                        close(&mut self.socket, REVOKED, "revoked: log in again").await;
                        return Ok(());
                    }
                }
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > SILENCE {
                        close(&mut self.socket, 1001, "no heartbeat").await;
                        return Ok(());
                    }
                    self.socket.send(Message::Ping(Default::default())).await.map_err(|e| e.to_string())?;
                }
            }
        }
    }

    /// A client's frame: a typing notice in one of its rooms goes to the others there (within
    /// the typing limit); anything else is ignored.
    fn typing(&self, text: &str) {
        let user_id = self.claims.sub;
        if let Some(ClientFrame::Typing { room_id }) = ClientFrame::parse(text) {
            if self.rooms.rooms.contains(&room_id)
                && self.state.feed.limits.typing_allowed(user_id, room_id)
            {
                self.state.feed.routes.typing(Typing { room_id, user_id });
            }
        }
    }
}

/// The client's address as the socket's peer, when the server records it (the single server);
/// behind the gateway every socket comes from the gateway, which counts addresses itself.
pub struct PeerAddress(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PeerAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(PeerAddress(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip()),
        ))
    }
}

/// Reads `{"type": "auth", "token": …}` within 5 s.
async fn first_frame_auth(socket: &mut WebSocket, verifier: &TokenVerifier) -> Option<Claims> {
    let frame = tokio::time::timeout(Duration::from_secs(5), socket.recv())
        .await
        .ok()??
        .ok()?;
    let Message::Text(text) = frame else {
        return None;
    };
    let Some(ClientFrame::Auth { token }) = ClientFrame::parse(text.as_str()) else {
        return None;
    };
    verifier.verify(&token).ok()
}
