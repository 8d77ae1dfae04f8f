//! Which live connection gets which room's events.
//!
//! The feed task routes each event only to the connections of the room's members (and of the
//! users a membership event names), instead of broadcasting every event to every connection: with
//! a broadcast, each message woke every open WebSocket task to find it was not theirs. The routes
//! follow membership in log order, because the feed updates them as it routes: a joiner's
//! connections follow the room before its next event is routed, a leaver's stop after the leave.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use msa_kernel::conversation::link_to;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::adapters::live_event::{LiveEvent, Typing};
use crate::domain::MembershipChange;

/// The gauge of open stream connections.
const CONNECTIONS: &str = "msa_chat_websocket_connections";

/// What a connection is sent.
#[derive(Debug, Clone)]
pub enum Outgoing {
    Event(Arc<LiveEvent>),
    Typing(Typing),
}

/// A connection's end of its route: events arrive here; `None` means the route was dropped,
/// because the connection fell a whole buffer behind ([`Inbox::too_slow`]) or the feed stopped.
pub struct Inbox {
    pub id: u64,
    pub events: mpsc::Receiver<Outgoing>,
    too_slow: Arc<AtomicBool>,
}

impl Inbox {
    pub fn too_slow(&self) -> bool {
        self.too_slow.load(Ordering::Relaxed)
    }
}

struct Route {
    user_id: Uuid,
    rooms: HashSet<Uuid>,
    sender: mpsc::Sender<Outgoing>,
    too_slow: Arc<AtomicBool>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    routes: HashMap<u64, Route>,
    by_room: HashMap<Uuid, HashSet<u64>>,
    by_user: HashMap<Uuid, HashSet<u64>>,
}

/// The routing table, shared by the feed task and the connections.
#[derive(Default)]
pub struct Routes {
    table: Mutex<Table>,
}

impl Table {
    fn follow(&mut self, id: u64, room_id: Uuid) {
        if let Some(route) = self.routes.get_mut(&id) {
            route.rooms.insert(room_id);
            self.by_room.entry(room_id).or_default().insert(id);
        }
    }

    fn unfollow(&mut self, id: u64, room_id: Uuid) {
        if let Some(route) = self.routes.get_mut(&id) {
            route.rooms.remove(&room_id);
        }
        if let Some(followers) = self.by_room.get_mut(&room_id) {
            followers.remove(&id);
            if followers.is_empty() {
                self.by_room.remove(&room_id);
            }
        }
    }

    fn remove(&mut self, id: u64) -> Option<Route> {
        let route = self.routes.remove(&id)?;
        metrics::gauge!(CONNECTIONS).decrement(1);
        for room_id in route.rooms.clone() {
            self.unfollow(id, room_id);
        }
        if let Some(ids) = self.by_user.get_mut(&route.user_id) {
            ids.remove(&id);
            if ids.is_empty() {
                self.by_user.remove(&route.user_id);
            }
        }
        Some(route)
    }

    fn connections_of(&self, user_id: Uuid) -> Vec<u64> {
        self.by_user
            .get(&user_id)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Sends without waiting; a connection whose buffer is full loses its route and is told why.
    /// Counted in `msa_chat_websocket_deliveries_total` by outcome (`queued`, `too_slow`,
    /// `closed`).
    fn deliver(&mut self, ids: impl IntoIterator<Item = u64>, outgoing: &Outgoing) {
        let (mut queued, mut too_slow) = (0, 0);
        let mut dropped = Vec::new();
        for id in ids {
            let Some(route) = self.routes.get(&id) else {
                continue;
            };
            match route.sender.try_send(outgoing.clone()) {
                Ok(()) => queued += 1,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    route.too_slow.store(true, Ordering::Relaxed);
                    too_slow += 1;
                    dropped.push(id);
                }
                Err(mpsc::error::TrySendError::Closed(_)) => dropped.push(id),
            }
        }
        let closed = dropped.len() - too_slow;
        for (outcome, count) in [
            ("queued", queued),
            ("too_slow", too_slow),
            ("closed", closed),
        ] {
            if count > 0 {
                metrics::counter!("msa_chat_websocket_deliveries_total", "outcome" => outcome)
                    .increment(count as u64);
            }
        }
        for id in dropped {
            self.remove(id);
        }
    }
}

impl Routes {
    /// A route for a connection of `user_id`, following no room yet, with room for `buffer`
    /// undelivered events.
    pub fn connect(&self, user_id: Uuid, buffer: usize) -> Inbox {
        let (sender, events) = mpsc::channel(buffer);
        let too_slow = Arc::new(AtomicBool::new(false));
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.next_id += 1;
        let id = table.next_id;
        table.routes.insert(
            id,
            Route {
                user_id,
                rooms: HashSet::new(),
                sender,
                too_slow: too_slow.clone(),
            },
        );
        table.by_user.entry(user_id).or_default().insert(id);
        metrics::gauge!(CONNECTIONS).increment(1);
        Inbox {
            id,
            events,
            too_slow,
        }
    }

    /// The connection follows these rooms from now on.
    pub fn follow(&self, id: u64, rooms: impl IntoIterator<Item = Uuid>) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        for room_id in rooms {
            table.follow(id, room_id);
        }
    }

    pub fn disconnect(&self, id: u64) {
        self.table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    /// Routes one room event (called by the feed, in log order).
    pub fn route(&self, live: Arc<LiveEvent>) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let named = live.event.membership_changes();
        for (user_id, change) in &named {
            if *change == MembershipChange::Joined {
                for id in table.connections_of(*user_id) {
                    table.follow(id, live.room_id);
                }
            }
        }
        let mut targets: HashSet<u64> = table
            .by_room
            .get(&live.room_id)
            .cloned()
            .unwrap_or_default();
        // The users it names get it too: an invitee does not follow the room yet.
        for (user_id, _) in &named {
            targets.extend(table.connections_of(*user_id));
        }
        let span = match targets.is_empty() {
            true => tracing::Span::none(),
            false => tracing::debug_span!(
                "deliver",
                otel.name = "deliver chat stream",
                otel.kind = "producer",
                messaging.system = "websocket",
                messaging.operation.type = "send",
                messaging.destination.name = "/v1/stream",
                messaging.batch.message_count = targets.len(),
                room_id = %live.room_id,
            ),
        };
        link_to(&span, live.traceparent.as_deref());
        let _delivering = span.enter();
        table.deliver(targets, &Outgoing::Event(live.clone()));
        for (user_id, change) in &named {
            if *change == MembershipChange::Left {
                for id in table.connections_of(*user_id) {
                    table.unfollow(id, live.room_id);
                }
            }
        }
    }

    /// Routes a typing notice to the room's connections.
    pub fn typing(&self, notice: Typing) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let targets: Vec<u64> = table
            .by_room
            .get(&notice.room_id)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default();
        table.deliver(targets, &Outgoing::Typing(notice));
    }

    /// Drops every route: each connection finds its inbox closed (the feed is stopping).
    pub fn close_all(&self) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        *table = Table {
            next_id: table.next_id,
            ..Table::default()
        };
    }
}
