//! Consumers: handle each event of a subscription effectively once.
//!
//! The bus delivers at least once. A handler's effect and the inbox row `(consumer, event_id)`
//! commit in one transaction of the consumer's query database, so a redelivered event finds the
//! row and its effect is skipped. A failing event is retried with exponential backoff, holding its
//! partition (so one aggregate's events keep their order), and after the last attempt goes to the
//! dead letters and the consumer moves on.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use tracing::Instrument;

use crate::bus::{BusError, DeadLetter, DeadLetters, Delivery, Subscription};
use crate::conversation::{link_to, traceparent_of};
use crate::{metric, Conversation, ReadModelStore, RecordedEvent, StoreError};

/// Why a handler could not handle an event.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    message: String,
    /// The consumer's own database failed (unreachable, full, locked): the event is not at
    /// fault, so it is tried again until the database answers, never dead-lettered.
    store_failed: bool,
}

impl HandlerError {
    pub fn new(error: impl std::fmt::Display) -> Self {
        Self {
            message: error.to_string(),
            store_failed: false,
        }
    }

    /// Whether the consumer's database failed rather than the handling of the event.
    pub fn store_failed(&self) -> bool {
        self.store_failed
    }
}

impl From<StoreError> for HandlerError {
    fn from(error: StoreError) -> Self {
        Self {
            store_failed: !matches!(error, StoreError::Decode(_)),
            message: error.to_string(),
        }
    }
}

/// Reacts to events of other contexts. `Tx` is the consumer's query-database transaction.
#[async_trait]
pub trait EventHandler<Tx: Send>: Send + Sync {
    /// The consumer's name, `<context>.<handler>`; also its Kafka consumer group.
    fn name(&self) -> &str;

    /// Whether the event matters to this handler. Events it does not want are passed over
    /// without a transaction or an inbox row (a consumer of chat members need not pay for every
    /// message); the default wants everything.
    fn wants(&self, _event: &RecordedEvent) -> bool {
        true
    }

    /// Applies the event's effect inside `tx`. Events it does not care about are ignored.
    async fn handle(&self, tx: &mut Tx, event: &RecordedEvent) -> Result<(), HandlerError>;
}

/// How often and how patiently a failing event is retried before it becomes a dead letter.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    fn delay_after(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.first_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// What became of one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Handled,
    /// The handler does not want this event ([`EventHandler::wants`]).
    Passed,
    /// The inbox had it: handled before, the effect was skipped.
    Duplicate,
    DeadLettered {
        error: String,
    },
}

/// What a replay of dead letters did.
#[derive(Debug, Default)]
pub struct Replayed {
    pub handled: Vec<DeadLetter>,
    /// Letters whose event the inbox already had.
    pub settled_before: usize,
    /// Letters that failed again, with the error.
    pub failing: Vec<(DeadLetter, String)>,
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Handled => "handled",
            Outcome::Passed => "passed",
            Outcome::Duplicate => "duplicate",
            Outcome::DeadLettered { .. } => "dead_lettered",
        }
    }
}

/// How often a busy consumer recomputes its lag.
const LAG_REFRESH: Duration = Duration::from_millis(250);

/// The lag gauges of one consumer, refreshed at most every [`LAG_REFRESH`].
struct LagGauges {
    events: metrics::Gauge,
    seconds: metrics::Gauge,
    refreshed: Option<std::time::Instant>,
}

impl LagGauges {
    fn new(consumer: &str) -> Self {
        let context = metric::context_of(consumer);
        Self {
            events: metrics::gauge!(metric::name(context, "consumer_lag_events"), "consumer" => consumer.to_owned()),
            seconds: metrics::gauge!(metric::name(context, "consumer_lag_seconds"), "consumer" => consumer.to_owned()),
            refreshed: None,
        }
    }

    /// `handled`: the event just handled (its age is the lag in time while others wait), or
    /// `None` when the consumer is idle.
    async fn refresh(
        &mut self,
        subscription: &mut dyn Subscription,
        handled: Option<&RecordedEvent>,
    ) {
        if handled.is_some() && self.refreshed.is_some_and(|at| at.elapsed() < LAG_REFRESH) {
            return;
        }
        self.refreshed = Some(std::time::Instant::now());
        let Ok(waiting) = subscription.backlog().await else {
            return;
        };
        self.events.set(waiting as f64);
        let age = match handled {
            Some(event) if waiting > 0 => (chrono::Utc::now() - event.occurred_at)
                .to_std()
                .unwrap_or_default(),
            _ => Duration::ZERO,
        };
        self.seconds.set(age.as_secs_f64());
    }
}

/// The span of one delivery's handling, after OpenTelemetry's messaging conventions: a consumer
/// span linked to (not a child of) the span that produced the event.
fn process_span(consumer: &str, system: &'static str, delivery: &Delivery) -> tracing::Span {
    let span = tracing::debug_span!(
        "process",
        otel.name = %format_args!("process {}", delivery.topic),
        otel.kind = "consumer",
        messaging.system = system,
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = %delivery.topic,
        messaging.destination.partition.id = %delivery.partition,
        messaging.consumer.group.name = consumer,
        messaging.message.id = %delivery.event.event_id,
        messaging.kafka.offset = delivery.offset,
        event_type = %delivery.event.event_type,
        correlation_id = %delivery.event.metadata.correlation_id,
    );
    link_to(&span, delivery.event.metadata.traceparent.as_deref());
    span
}

/// How long the position of passed-over events may go uncommitted.
const PASSED_COMMIT_EVERY: Duration = Duration::from_secs(1);

/// Runs handlers over subscriptions.
pub struct Consumer<R: ReadModelStore> {
    read_models: Arc<R>,
    dead_letters: Arc<dyn DeadLetters>,
    retry: RetryPolicy,
}

impl<R: ReadModelStore> Consumer<R> {
    pub fn new(
        read_models: Arc<R>,
        dead_letters: Arc<dyn DeadLetters>,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            read_models,
            dead_letters,
            retry,
        }
    }

    /// Handles deliveries until `stop` turns true.
    ///
    /// Publishes the consumer's lag as the gauges `msa_<context>_consumer_lag_events` and
    /// `…_consumer_lag_seconds` (age of the event being handled while others wait), counts
    /// outcomes in `…_consumer_events_total` and times each delivery in
    /// `…_consumer_handle_duration_seconds`.
    ///
    /// Each delivery is handled in a `process` span linked to the event's producer, and in the
    /// event's conversation: what the handler causes carries the same correlation id and the
    /// event as its cause.
    pub async fn run(
        &self,
        handler: &dyn EventHandler<R::Tx>,
        subscription: &mut dyn Subscription,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut lag = LagGauges::new(handler.name());
        let context = metric::context_of(handler.name());
        let events_total = metric::name(context, "consumer_events_total");
        // One counter per outcome, made once: a busy consumer passes over thousands a second.
        let counted = |outcome: &Outcome| metrics::counter!(events_total, "consumer" => handler.name().to_owned(), "outcome" => outcome.label());
        let passed = counted(&Outcome::Passed);
        let (handled, duplicate) = (counted(&Outcome::Handled), counted(&Outcome::Duplicate));
        let handle_seconds = metrics::histogram!(
            metric::name(context, "consumer_handle_duration_seconds"),
            "consumer" => handler.name().to_owned(),
        );
        let mut bus_down = false;
        // Passed-over events need no commit each: a redelivery after a crash is passed over
        // again. Their position is committed with the next handled event, or after a while.
        let mut uncommitted: Option<(Delivery, std::time::Instant)> = None;
        while !*stop.borrow() {
            if let Some((passed, since)) = uncommitted.take() {
                if since.elapsed() < PASSED_COMMIT_EVERY {
                    uncommitted = Some((passed, since));
                } else if let Err(error) = subscription.commit(&passed).await {
                    tracing::warn!(consumer = handler.name(), %error, "offset not committed; a redelivery will be passed over again");
                }
            }
            let delivery = tokio::select! {
                delivery = subscription.next() => delivery,
                // Idle: nothing arrived for a while, so whatever lag was shown is gone.
                _ = tokio::time::sleep(LAG_REFRESH * 4) => {
                    lag.refresh(subscription, None).await;
                    continue;
                }
                _ = stop.changed() => continue,
            };
            let delivery = match delivery {
                Ok(delivery) => {
                    if bus_down {
                        tracing::info!(consumer = handler.name(), "event bus reachable again");
                        bus_down = false;
                    }
                    delivery
                }
                Err(error) => {
                    if !bus_down {
                        tracing::warn!(consumer = handler.name(), %error, "cannot receive events; retrying");
                        bus_down = true;
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if !handler.wants(&delivery.event) {
                passed.increment(1);
                let since = uncommitted.map_or_else(std::time::Instant::now, |(_, since)| since);
                uncommitted = Some((delivery, since));
                continue;
            }
            uncommitted = None;
            // Neither handled nor dead-lettered (the dead letters could not be written): the
            // same event again, not the next one (the subscription has moved past it).
            let started = std::time::Instant::now();
            let span = process_span(handler.name(), subscription.system(), &delivery);
            let conversation = Conversation {
                traceparent: traceparent_of(&span)
                    .or_else(|| delivery.event.metadata.traceparent.clone()),
                ..Conversation::caused_by(&delivery.event)
            };
            let settling = async {
                loop {
                    match self.deliver(handler, &delivery, &stop).await {
                        Ok(outcome) => break Some(outcome),
                        Err(_) if *stop.borrow() => break None,
                        Err(error) => {
                            tracing::error!(consumer = handler.name(), %error, "delivery not settled; retrying it");
                            tokio::select! {
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                                _ = stop.changed() => {}
                            }
                            if *stop.borrow() {
                                break None;
                            }
                        }
                    }
                }
            };
            let outcome = conversation.scope(settling.instrument(span)).await;
            // Stopping before it settled: uncommitted, it comes again after the restart.
            let Some(outcome) = outcome else { break };
            handle_seconds.record(started.elapsed().as_secs_f64());
            match &outcome {
                Outcome::Handled => handled.increment(1),
                Outcome::Duplicate => duplicate.increment(1),
                other => counted(other).increment(1),
            }
            if let Err(error) = subscription.commit(&delivery).await {
                tracing::warn!(consumer = handler.name(), %error, "offset not committed; a redelivery will be absorbed");
            }
            lag.refresh(subscription, Some(&delivery.event)).await;
        }
    }

    /// Handles one delivery: attempts with backoff, then the dead letters.
    /// The consumer's own database failing is not the event's fault: such attempts are repeated
    /// (at the longest delay) until it answers or `stop`, and are not counted.
    pub async fn deliver(
        &self,
        handler: &dyn EventHandler<R::Tx>,
        delivery: &Delivery,
        stop: &watch::Receiver<bool>,
    ) -> Result<Outcome, BusError> {
        let mut attempt = 1;
        loop {
            match self.handle_once(handler, &delivery.event).await {
                Ok(outcome) => return Ok(outcome),
                Err(error) if error.store_failed() => {
                    if *stop.borrow() {
                        return Err(BusError::Unavailable(format!(
                            "stopping while the consumer's database fails: {error}"
                        )));
                    }
                    tracing::warn!(
                        consumer = handler.name(), event_id = %delivery.event.event_id,
                        event_type = %delivery.event.event_type, %error,
                        "the consumer's database failed; retrying"
                    );
                    let mut stopping = stop.clone();
                    tokio::select! {
                        _ = tokio::time::sleep(self.retry.delay_after(self.retry.max_attempts)) => {}
                        _ = stopping.changed() => {}
                    }
                }
                Err(error) if attempt < self.retry.max_attempts => {
                    tracing::warn!(
                        consumer = handler.name(), event_id = %delivery.event.event_id,
                        event_type = %delivery.event.event_type, attempt, %error,
                        "handler failed; retrying"
                    );
                    tokio::time::sleep(self.retry.delay_after(attempt)).await;
                    attempt += 1;
                }
                Err(error) => {
                    let error = error.to_string();
                    tracing::error!(
                        consumer = handler.name(), event_id = %delivery.event.event_id,
                        event_type = %delivery.event.event_type, attempts = attempt, %error,
                        "handler gave up; the event goes to the dead letters"
                    );
                    self.dead_letters
                        .send(&DeadLetter {
                            consumer: handler.name().to_owned(),
                            delivery: delivery.clone(),
                            error: error.clone(),
                            attempts: attempt,
                            dead_at: chrono::Utc::now(),
                        })
                        .await?;
                    return Ok(Outcome::DeadLettered { error });
                }
            }
        }
    }

    /// Hands dead letters of this handler to it once more (after it was fixed), one attempt each.
    /// A letter whose event the inbox already has is skipped, so replaying twice handles nothing
    /// twice; what still fails stays a dead letter and is reported.
    pub async fn replay(
        &self,
        handler: &dyn EventHandler<R::Tx>,
        letters: &[DeadLetter],
    ) -> Replayed {
        let mut replayed = Replayed::default();
        for letter in letters.iter().filter(|l| l.consumer == handler.name()) {
            let event = &letter.delivery.event;
            let handled = Conversation::caused_by(event).scope(self.handle_once(handler, event));
            match handled.await {
                Ok(Outcome::Handled) => replayed.handled.push(letter.clone()),
                Ok(_) => replayed.settled_before += 1,
                Err(error) => replayed.failing.push((letter.clone(), error.to_string())),
            }
        }
        replayed
    }

    /// One attempt: the inbox row and the effect in one transaction.
    pub async fn handle_once(
        &self,
        handler: &dyn EventHandler<R::Tx>,
        event: &RecordedEvent,
    ) -> Result<Outcome, HandlerError> {
        let mut tx = self.read_models.begin().await?;
        if !self
            .read_models
            .record_handled(&mut tx, handler.name(), event.event_id)
            .await?
        {
            self.read_models.rollback(tx).await?;
            return Ok(Outcome::Duplicate);
        }
        if let Err(error) = handler.handle(&mut tx, event).await {
            self.read_models.rollback(tx).await?;
            return Err(error);
        }
        self.read_models.commit(tx).await?;
        Ok(Outcome::Handled)
    }
}
