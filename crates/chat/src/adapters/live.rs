//! Real-time delivery: one WebSocket per client at `GET /v1/stream`, carrying the events of all
//! the client's rooms as JSON frames `{room_id, seq, type, cursor, occurred_at, data}` (the frames
//! are the types in `live_frames`, from which `/asyncapi.json` describes them).
//!
//! One task ([`LiveFeed`]) follows the chat context's global log and routes each room event to
//! the connections of the room's members (`live_routes`), its frame serialized once. A
//! connection that resumes (`?since=<cursor>`) first reads what it missed from the store, then
//! switches to its route, skipping what it already sent: cursors are log positions, which are
//! totally ordered and gap-safe, so there is no gap and no duplicate. A client too slow for its
//! buffer is disconnected with a close reason and resumes from its last cursor, so a slow client
//! never grows the server's memory.

use std::sync::Arc;
use std::time::Duration;

use msa_kernel::{EventStore, LogPosition, Lookout};
use tokio::sync::watch;

pub use crate::adapters::live_event::{encode_cursor, LiveEvent, Typing};
use crate::adapters::live_limits::{LiveLimitSettings, LiveLimits};
use crate::adapters::live_routes::Routes;

/// How often the tail looks for events appended by other processes (its own appends wake it).
const IDLE_POLL: Duration = Duration::from_millis(250);
/// Events the tail reads at a time.
const READ_SIZE: usize = 500;

/// The shared tail of the chat log.
pub struct LiveFeed {
    pub(crate) events: Arc<dyn EventStore>,
    pub(crate) routes: Arc<Routes>,
    /// Where the tail has read up to (`None` until it found the end of the log): a
    /// connection without a cursor starts here.
    pub(crate) head: watch::Receiver<Option<LogPosition>>,
    /// Sockets per address and per user, typing notices per user.
    pub(crate) limits: Arc<LiveLimits>,
}

impl LiveFeed {
    /// Starts the tail; it runs until `stop` turns true.
    pub fn start(
        events: Arc<dyn EventStore>,
        limits: LiveLimitSettings,
        mut stop: watch::Receiver<bool>,
    ) -> Arc<LiveFeed> {
        let routes = Arc::new(Routes::default());
        let (head_tx, head) = watch::channel(None);
        let feed = Arc::new(LiveFeed {
            events: events.clone(),
            routes: routes.clone(),
            head,
            limits: LiveLimits::new(limits),
        });
        tokio::spawn(async move {
            let appended = events.appended();
            // The tail starts where the log ends: history is for connections that ask for it
            // with a cursor.
            let mut position = loop {
                match events.last_position().await {
                    Ok(position) => break position,
                    Err(error) => {
                        tracing::warn!(%error, "live feed cannot find the end of the chat log; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = stop.changed() => return,
                        }
                    }
                }
            };
            head_tx.send_replace(Some(position));
            let mut lookout = Lookout::default();
            while !*stop.borrow() {
                let wake = appended.notified();
                match events.read_all(position, READ_SIZE).await {
                    Ok(batch) if !batch.is_empty() => {
                        for recorded in &batch {
                            if let Some(live) = LiveEvent::of(recorded) {
                                routes.route(Arc::new(live));
                            }
                        }
                        position = batch.last().expect("not empty").position;
                        head_tx.send_replace(Some(position));
                        lookout.log_moved();
                        // A full batch leaves more to read now; a short one read all there
                        // was, and the next append wakes the tail (or the lookout looks again).
                        if batch.len() == READ_SIZE {
                            continue;
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "live feed cannot read the chat log; retrying")
                    }
                }
                tokio::select! {
                    _ = wake => lookout.log_moved(),
                    _ = tokio::time::sleep(lookout.pause(IDLE_POLL)) => {}
                    _ = stop.changed() => {}
                }
            }
            routes.close_all();
        });
        feed
    }
}
