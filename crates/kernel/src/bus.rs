//! The event bus ports. A context's events leave through a relay that follows its global log and
//! publishes them ([`EventPublisher`]); other contexts receive them through a [`Subscription`] and
//! handle each at most once per consumer, with retries and dead letters (see [`crate::consumer`]).
//!
//! Two adapters implement them: Kafka (`msa-kafka`) for the microservice deployment, and the
//! in-process bus ([`crate::in_process`]) for the single server, where a subscription follows the
//! source context's log directly.

use async_trait::async_trait;

use crate::RecordedEvent;

/// `<context>.events`: where a context publishes its events.
pub fn events_topic(context: &str) -> String {
    format!("{context}.events")
}

/// `<topic>.dlq`: where events go that a consumer of `topic` gave up on.
pub fn dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    /// The broker cannot be reached; the work waits and is retried.
    #[error("the event bus is unavailable: {0}")]
    Unavailable(String),
    /// A message on the bus is not an event of ours.
    #[error("malformed message on {topic} at {partition}/{offset}: {reason}")]
    Malformed {
        topic: String,
        partition: i32,
        offset: i64,
        reason: String,
    },
    #[error("event bus failure: {0}")]
    Other(String),
}

/// What a publish achieved: the leading events the bus acknowledged, and what stopped the rest.
#[derive(Debug)]
pub struct Published {
    pub acknowledged: usize,
    pub error: Option<BusError>,
}

/// Publishes events to the bus.
#[async_trait]
pub trait EventPublisher: Send + Sync {
    /// Publishes `events` (in global-log order) to `topic`, each keyed by its stream id so that one
    /// aggregate's events stay in order. Returns how many leading events were acknowledged.
    async fn publish(&self, topic: &str, events: &[RecordedEvent]) -> Published;

    /// The messaging system, as OpenTelemetry's `messaging.system` names it.
    fn system(&self) -> &'static str {
        "kafka"
    }
}

/// One event as a subscription delivers it, with where it came from.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: RecordedEvent,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A consumer's stream of events from the bus.
#[async_trait]
pub trait Subscription: Send {
    /// The next event, waiting for one to arrive.
    async fn next(&mut self) -> Result<Delivery, BusError>;

    /// The messaging system, as OpenTelemetry's `messaging.system` names it.
    fn system(&self) -> &'static str {
        "kafka"
    }

    /// Marks `delivery`, and everything before it on its partition, as done.
    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError>;

    /// About how many events wait behind the last one delivered (for the lag metric).
    async fn backlog(&mut self) -> Result<u64, BusError>;
}

/// A dead letter: an event a consumer gave up on, and why.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub consumer: String,
    pub delivery: Delivery,
    pub error: String,
    pub attempts: u32,
    pub dead_at: chrono::DateTime<chrono::Utc>,
}

/// Where consumers put the events they gave up on, for `msa dlq` to inspect and re-drive.
#[async_trait]
pub trait DeadLetters: Send + Sync {
    async fn send(&self, letter: &DeadLetter) -> Result<(), BusError>;

    /// Every dead letter of events that came from `topic`, oldest first, settled ones included (a
    /// letter is settled once its event is in the consumer's inbox).
    async fn list(&self, topic: &str) -> Result<Vec<DeadLetter>, BusError>;
}
