//! The outbox relay: follows a context's global log and publishes every event to the bus.
//!
//! The events table is the outbox, so there are no dual writes: an event is published after it
//! committed, at least once. The relay's checkpoint moves only over a contiguous run of
//! acknowledged events, so nothing is skipped; what is published twice (after a crash between
//! publish and checkpoint) is absorbed by the consumers' inbox. One relay per context is active at
//! a time, by a lease in the context's database; when the active one dies, another takes over once
//! the lease expires.
//!
//! Metrics: `msa_relay_events_published_total` and `msa_relay_lag_events` (events in the store
//! not yet on the bus), per context.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use crate::bus::{events_topic, EventPublisher};
use crate::{EventStore, ReadModelStore, StoreError};

/// Exclusive, expiring leases: who may run a singleton job.
#[async_trait]
pub trait Leases: Send + Sync {
    /// Takes `name` for `holder`, or renews it, for `ttl`. False while another holder has it.
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError>;

    /// Gives `name` up if `holder` has it.
    async fn release(&self, name: &str, holder: &str) -> Result<(), StoreError>;
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
}

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
        }
    }

    fn name(&self) -> String {
        format!("relay.{}", self.context)
    }

    /// Publishes one batch if this relay holds the lease. Returns how many events it published.
    pub async fn step(&self) -> Result<usize, RelayError> {
        let name = self.name();
        if !self
            .bookkeeping
            .acquire(&name, &self.holder, self.settings.lease_ttl)
            .await?
        {
            return Err(RelayError::NotLeader);
        }
        let mut tx = self.bookkeeping.begin().await?;
        let from = self.bookkeeping.checkpoint(&mut tx, &name, 0).await?;
        self.bookkeeping.commit(tx).await?;
        let events = self.events.read_all(from, self.settings.batch_size).await?;
        let lag = metrics::gauge!("msa_relay_lag_events", "context" => self.context.clone());
        if events.is_empty() {
            lag.set(0.0);
            return Ok(0);
        }
        let published = self
            .publisher
            .publish(&events_topic(&self.context), &events)
            .await;
        if published.acknowledged > 0 {
            let last = events[published.acknowledged - 1].position;
            let mut tx = self.bookkeeping.begin().await?;
            self.bookkeeping
                .save_checkpoint(&mut tx, &name, 0, last)
                .await?;
            self.bookkeeping.commit(tx).await?;
            metrics::counter!("msa_relay_events_published_total", "context" => self.context.clone())
                .increment(published.acknowledged as u64);
            let head = self.events.head_position().await?;
            lag.set((head - last.position).max(0) as f64);
        }
        match published.error {
            Some(error) => Err(RelayError::Bus {
                published: published.acknowledged,
                error,
            }),
            None => Ok(published.acknowledged),
        }
    }

    /// Relays until `stop` turns true, then gives the lease up.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        let appended = self.events.appended();
        let mut health = Health::Flowing;
        let mut leading = false;
        let mut backoff = Duration::from_millis(250);
        while !*stop.borrow() {
            let wake = appended.notified();
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
                        continue;
                    }
                    self.settings.idle_poll
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
                _ = wake => {}
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
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
