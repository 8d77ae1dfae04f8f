//! The outbox relay: follows a context's global log and publishes every event to the bus.
//!
//! The events table is the outbox, so there are no dual writes: an event is published after it
//! committed, at least once. The relay's checkpoint moves only over a contiguous run of
//! acknowledged events, so nothing is skipped; it is saved every 100 ms or full batch while
//! events flow, and at once when the relay catches up, stops or the bus fails. What is published
//! twice (after a crash between publish and checkpoint) is absorbed by the consumers' inbox. One
//! relay per context is active at a time, by a lease in the context's database; when the active
//! one dies, another takes over once the lease expires.
//!
//! Metrics: `msa_<context>_relay_events_published_total` and `msa_<context>_relay_lag_events`
//! (events in the store not yet on the bus). Each batch is published in a producer span.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{watch, Mutex};
use tracing::Instrument;

use crate::bus::{events_topic, EventPublisher};
use crate::conversation::link_to;
use crate::{metric, EventStore, LogPosition, Lookout, ReadModelStore, RecordedEvent, StoreError};

/// The least time between the starts of two batches of a relay while events keep coming; a
/// backlog is still read in full batches back to back. Under a steady stream of appends the bus
/// gets an event up to this much later, and the relay costs a read per pace rather than per
/// append. (Projections pace longer: `PROJECTION_PACE`.)
const PACE: Duration = Duration::from_millis(10);

/// Exclusive, expiring leases: who may run a singleton job.
#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes `name` for `holder`, or renews it, for `ttl`. False while another holder has it.
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Gives `name` up if `holder` has it.
    async fn release(&self, name: &str, holder: &str) -> Result<(), StoreError>;
}

/// The name a context's relay keeps its checkpoint (how far it has published) under.
pub fn checkpoint_name(context: &str) -> String {
    format!("relay.{context}")
}

/// Timing of a relay.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// Events read and published per round.
    pub batch_size: usize,
    /// How long the lease lasts unrenewed: a dead relay's successor starts within this.
    pub lease_ttl: Duration,
    /// How often an idle relay looks for events appended by other processes.
    pub idle_poll: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 500,
            lease_ttl: Duration::from_secs(6),
            idle_poll: Duration::from_millis(200),
        }
    }
}

/// The relay of one context.
pub struct Relay<R: ReadModelStore + Leases> {
    context: String,
    holder: String,
    events: Arc<dyn EventStore>,
    bookkeeping: Arc<R>,
    publisher: Arc<dyn EventPublisher>,
    settings: RelaySettings,
    standing: Mutex<Standing>,
    /// `msa_<context>_relay_lag_events` and `…_relay_events_published_total`.
    metric_names: (&'static str, &'static str),
}

/// What the active relay knows without asking its database again. While the lease is surely
/// held nobody else moves the checkpoint, so the relay need not re-read it, and it renews the
/// lease only every third of its lifetime instead of before every batch.
#[derive(Debug, Default)]
struct Standing {
    /// When the lease was last taken or renewed (the time before asking: the lease lasts at
    /// least `lease_ttl` from then).
    renewed: Option<Instant>,
    /// How far the bus acknowledged; `None` until read from the checkpoint.
    published: Option<LogPosition>,
    /// The checkpoint as stored, and when it was stored.
    saved: Option<(LogPosition, Instant)>,
    /// The next batch, read while the bus took the previous one: the events after the position.
    ahead: Option<(LogPosition, Vec<RecordedEvent>)>,
}

/// How long acknowledged progress may stay unsaved while events flow (and never more than a
/// batch of events). A crash republishes at most this much (the consumers' inbox absorbs it);
/// saving after every small batch would cost a write transaction per event at low rates,
/// competing with the consumers' own.
const SAVE_EVERY: Duration = Duration::from_millis(100);

/// Whether the bus took the last batch: the relay logs only when this changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    Flowing,
    Waiting,
}

impl<R: ReadModelStore + Leases> Relay<R> {
    /// `bookkeeping` keeps the relay's checkpoint and lease: the context's query database.
    pub fn new(
        context: &str,
        events: Arc<dyn EventStore>,
        bookkeeping: Arc<R>,
        publisher: Arc<dyn EventPublisher>,
        settings: RelaySettings,
    ) -> Self {
        Self {
            context: context.to_owned(),
            holder: format!("{}-{}", std::process::id(), uuid::Uuid::now_v7()),
            events,
            bookkeeping,
            publisher,
            settings,
            standing: Mutex::new(Standing::default()),
            metric_names: (
                metric::name(context, "relay_lag_events"),
                metric::name(context, "relay_events_published_total"),
            ),
        }
    }

    fn name(&self) -> String {
        checkpoint_name(&self.context)
    }

    /// Takes or renews the lease unless it was renewed within the last third of its lifetime.
    /// After a lapse (another relay may have held it meanwhile) the checkpoint is read again.
    async fn hold_lease(&self, standing: &mut Standing) -> Result<(), RelayError> {
        let now = Instant::now();
        let ttl = self.settings.lease_ttl;
        if standing.renewed.is_some_and(|at| now - at < ttl / 3) {
            return Ok(());
        }
        if !self
            .bookkeeping
            .acquire(&self.name(), &self.holder, ttl)
            .await?
        {
            *standing = Standing::default();
            return Err(RelayError::NotLeader);
        }
        if standing.renewed.is_none_or(|at| now - at >= ttl) {
            *standing = Standing::default();
        }
        standing.renewed = Some(now);
        Ok(())
    }

    /// The span of one batch's publishing (OpenTelemetry messaging: a producer span), linked to
    /// the spans that appended its first events.
    fn publish_span(&self, topic: &str, events: &[RecordedEvent]) -> tracing::Span {
        const LINKED: usize = 32;
        let span = tracing::debug_span!(
            "publish",
            otel.name = %format_args!("publish {topic}"),
            otel.kind = "producer",
            messaging.system = self.publisher.system(),
            messaging.operation.type = "send",
            messaging.operation.name = "publish",
            messaging.destination.name = topic,
            messaging.batch.message_count = events.len(),
        );
        for event in events.iter().take(LINKED) {
            link_to(&span, event.metadata.traceparent.as_deref());
        }
        span
    }

    /// Stores the acknowledged position as the checkpoint: when `SAVE_EVERY` has passed since
    /// the last save, or at once with `now`; never after the lease may have lapsed.
    async fn save(&self, standing: &mut Standing, now: bool) -> Result<(), RelayError> {
        let Some(published) = standing.published else {
            return Ok(());
        };
        if let Some((saved, at)) = standing.saved {
            let unsaved = published.position - saved.position;
            let due = at.elapsed() >= SAVE_EVERY || unsaved >= self.settings.batch_size as i64;
            if saved == published || (!now && !due) {
                return Ok(());
            }
        }
        self.hold_lease(standing).await?;
        if standing.published != Some(published) {
            // The lease had lapsed: what this relay published is not its to save any more.
            return Ok(());
        }
        let mut tx = self.bookkeeping.begin().await?;
        self.bookkeeping
            .save_checkpoint(&mut tx, &self.name(), 0, published)
            .await?;
        self.bookkeeping.commit(tx).await?;
        standing.saved = Some((published, Instant::now()));
        Ok(())
    }

    /// Publishes one batch if this relay holds the lease. Returns how many events it published.
    pub async fn step(&self) -> Result<usize, RelayError> {
        let mut standing = self.standing.lock().await;
        self.hold_lease(&mut standing).await?;
        let from = match standing.published {
            Some(published) => published,
            None => {
                let mut tx = self.bookkeeping.begin().await?;
                let stored = self
                    .bookkeeping
                    .checkpoint(&mut tx, &self.name(), 0)
                    .await?;
                self.bookkeeping.commit(tx).await?;
                standing.published = Some(stored);
                standing.saved = Some((stored, Instant::now()));
                stored
            }
        };
        let batch_size = self.settings.batch_size;
        let events = match standing.ahead.take() {
            Some((after, events)) if after == from => events,
            _ => self.events.read_all(from, batch_size).await?,
        };
        let (lag, published_total) = self.metric_names;
        let lag = metrics::gauge!(lag);
        if events.is_empty() {
            lag.set(0.0);
            self.save(&mut standing, true).await?;
            return Ok(0);
        }
        let topic = events_topic(&self.context);
        let publishing = self
            .publisher
            .publish(&topic, &events)
            .instrument(self.publish_span(&topic, &events));
        // A full batch means more are waiting: read the next one while the bus takes this one.
        let (published, ahead) = if events.len() == batch_size {
            let after = events[events.len() - 1].position;
            let (published, ahead) =
                tokio::join!(publishing, self.events.read_all(after, batch_size));
            // A failed read ahead is only read again.
            (published, ahead.ok().map(|ahead| (after, ahead)))
        } else {
            (publishing.await, None)
        };
        if published.acknowledged == events.len() {
            standing.ahead = ahead.filter(|(_, ahead)| !ahead.is_empty());
        }
        if published.acknowledged > 0 {
            let last = events[published.acknowledged - 1].position;
            standing.published = Some(last);
            metrics::counter!(published_total).increment(published.acknowledged as u64);
            if events.len() < batch_size {
                // The read reached the end of the log as it was then.
                lag.set(0.0);
            } else {
                let head = self.events.head_position().await?;
                lag.set((head - last.position).max(0) as f64);
            }
        }
        match published.error {
            Some(error) => {
                self.save(&mut standing, true).await?;
                Err(RelayError::Bus {
                    published: published.acknowledged,
                    error,
                })
            }
            None => {
                self.save(&mut standing, false).await?;
                Ok(published.acknowledged)
            }
        }
    }

    /// Relays until `stop` turns true, then gives the lease up.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        let appended = self.events.appended();
        let mut health = Health::Flowing;
        let mut leading = false;
        let mut backoff = Duration::from_millis(250);
        let mut lookout = Lookout::default();
        while !*stop.borrow() {
            let wake = appended.notified();
            let started = tokio::time::Instant::now();
            let pause = match self.step().await {
                Ok(published) => {
                    if !leading {
                        tracing::info!(context = %self.context, "relay is active");
                        leading = true;
                    }
                    if health == Health::Waiting {
                        tracing::info!(context = %self.context, "event bus reachable again; waiting events are flowing");
                        health = Health::Flowing;
                    }
                    backoff = Duration::from_millis(250);
                    if published > 0 {
                        lookout.log_moved();
                        if published < self.settings.batch_size {
                            // Drained for now: what is appended meanwhile goes in the next
                            // batch, a pace after this one started, rather than a read (and
                            // an empty read's checkpoint save) per append.
                            tokio::select! {
                                _ = tokio::time::sleep_until(started + PACE) => {}
                                _ = stop.changed() => {}
                            }
                        }
                        continue;
                    }
                    lookout.pause(self.settings.idle_poll)
                }
                Err(RelayError::NotLeader) => {
                    if leading {
                        tracing::warn!(context = %self.context, "relay lost its lease; standing by");
                        leading = false;
                    }
                    self.settings.lease_ttl / 3
                }
                Err(RelayError::Bus { published, error }) => {
                    if health == Health::Flowing {
                        tracing::warn!(
                            context = %self.context, %error, published,
                            "event bus unreachable; commands are still accepted and their events \
                             wait in the store until it returns"
                        );
                        health = Health::Waiting;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    backoff
                }
                Err(RelayError::Store(error)) => {
                    tracing::error!(context = %self.context, %error, "relay cannot read its store");
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    backoff
                }
            };
            tokio::select! {
                _ = wake => lookout.log_moved(),
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
        let mut standing = self.standing.lock().await;
        if let Err(error) = self.save(&mut standing, true).await {
            tracing::warn!(context = %self.context, %error, "relay checkpoint not saved; the last events are published again");
        }
        *standing = Standing::default();
        if let Err(error) = self.bookkeeping.release(&self.name(), &self.holder).await {
            tracing::warn!(context = %self.context, %error, "relay lease not released; it expires");
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("another relay holds the lease")]
    NotLeader,
    #[error("published {published} events, then: {error}")]
    Bus {
        published: usize,
        error: crate::bus::BusError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}
