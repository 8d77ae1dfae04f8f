//! The causal trail of one request: every event it set off, in every context, in causal order,
//! each followed by its publishing and by the consumers that handled it.
//!
//! It is read from the stores, not from traces, so it works with tracing off and for events of
//! any age. Each context's stores answer through a [`TrailSource`] (its own stores in-process,
//! or its service over HTTP); [`trail`] asks every source in three rounds (which conversations
//! the id belongs to, their events, who handled those events) and puts the answers in order.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::future::join_all;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreError;

/// Events a trail holds at most, over every conversation and context.
pub const MOST_EVENTS: usize = 20_000;

/// Events that name an id read per context at most (each names a conversation).
pub const MOST_NAMING: usize = 200;

/// Conversations a trail follows at most (an id named by many, such as a busy room's).
pub const MOST_CONVERSATIONS: usize = 20;

/// An event as a trail shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrailEvent {
    pub at: DateTime<Utc>,
    pub context: String,
    pub event_type: String,
    pub event_id: Uuid,
    pub stream_id: String,
    pub version: u64,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub actor: Option<String>,
    /// Its place in its context's log (orders events of one instant).
    pub position: i64,
    /// The topic its context's relay published it to, once it has.
    pub published_to: Option<String>,
}

/// A consumer's handling of an event (its inbox row); ordered by time, then context and consumer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TrailHandling {
    pub at: DateTime<Utc>,
    pub context: String,
    pub consumer: String,
    pub event_id: Uuid,
}

/// Why a source could not answer.
#[derive(Debug, thiserror::Error)]
pub enum TrailError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The source (a service) cannot be reached, or answered that it is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// The source (a service) refused the question.
    #[error("{0}")]
    Refused(String),
}

/// One context's part of trails.
#[async_trait]
pub trait TrailSource: Send + Sync {
    /// Whether `id` is a conversation with events here (an indexed lookup).
    async fn holds_conversation(&self, id: Uuid) -> Result<bool, TrailError>;

    /// The conversations of up to `most` events here that name `id` (an event's, a message's, a
    /// payment's, a room's id). It scans the log.
    async fn conversations_naming(&self, id: Uuid, most: usize) -> Result<Vec<Uuid>, TrailError>;

    /// Up to `most` events of `conversations`, in log order.
    async fn events_of(
        &self,
        conversations: &[Uuid],
        most: usize,
    ) -> Result<Vec<TrailEvent>, TrailError>;

    /// Which consumers here handled which of `event_ids`, and when.
    async fn handlings_of(&self, event_ids: &[Uuid]) -> Result<Vec<TrailHandling>, TrailError>;
}

/// One step of a trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// An event a context recorded.
    Event {
        at: DateTime<Utc>,
        context: String,
        event_type: String,
        event_id: Uuid,
        stream_id: String,
        version: u64,
        correlation_id: Uuid,
        causation_id: Option<Uuid>,
        actor: Option<String>,
    },
    /// The context's relay published the event to its topic (the time is not kept).
    Published {
        context: String,
        topic: String,
        event_id: Uuid,
    },
    /// A consumer handled the event (its inbox row).
    Handled(TrailHandling),
}

/// A trail: its steps, and whether limits cut it short.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trail {
    pub items: Vec<Step>,
    /// More conversations or events than a trail holds ([`MOST_CONVERSATIONS`], [`MOST_EVENTS`]).
    pub truncated: bool,
}

/// The trail of `id` (a correlation id, or an id events name) over every source: its
/// conversations' events in causal order, each followed by its publishing and its handlings.
/// Each round asks every source at once. The log scan for an id that names things runs only when
/// no source holds `id` as a conversation.
pub async fn trail(sources: &[Arc<dyn TrailSource>], id: Uuid) -> Result<Trail, TrailError> {
    let held = join_all(sources.iter().map(|source| source.holds_conversation(id))).await;
    let mut conversations = BTreeSet::new();
    if held
        .into_iter()
        .collect::<Result<Vec<bool>, _>>()?
        .contains(&true)
    {
        conversations.insert(id);
    } else {
        let naming = sources
            .iter()
            .map(|source| source.conversations_naming(id, MOST_NAMING));
        for found in join_all(naming).await {
            conversations.extend(found?);
        }
    }
    let mut truncated = conversations.len() > MOST_CONVERSATIONS;
    let conversations: Vec<Uuid> = conversations.into_iter().take(MOST_CONVERSATIONS).collect();
    if conversations.is_empty() {
        return Ok(Trail {
            items: Vec::new(),
            truncated,
        });
    }
    let asked = sources
        .iter()
        .map(|source| source.events_of(&conversations, MOST_EVENTS + 1));
    let mut events = Vec::new();
    for found in join_all(asked).await {
        events.extend(found?);
    }
    // Cut to the earliest, whichever context they are in, so a cut trail is the same on both
    // deployments.
    if events.len() > MOST_EVENTS {
        events.sort_by_key(|event| (event.at, event.position));
        events.truncate(MOST_EVENTS);
        truncated = true;
    }
    let event_ids: Vec<Uuid> = events.iter().map(|event| event.event_id).collect();
    let mut handlings: HashMap<Uuid, Vec<TrailHandling>> = HashMap::new();
    for found in join_all(sources.iter().map(|source| source.handlings_of(&event_ids))).await {
        for handling in found? {
            handlings
                .entry(handling.event_id)
                .or_default()
                .push(handling);
        }
    }
    let mut steps = Vec::new();
    for event in causal_order(events) {
        let TrailEvent {
            at,
            context,
            event_type,
            event_id,
            stream_id,
            version,
            correlation_id,
            causation_id,
            actor,
            published_to,
            ..
        } = event;
        steps.push(Step::Event {
            at,
            context: context.clone(),
            event_type,
            event_id,
            stream_id,
            version,
            correlation_id,
            causation_id,
            actor,
        });
        if let Some(topic) = published_to {
            steps.push(Step::Published {
                context,
                topic,
                event_id,
            });
        }
        let mut handled = handlings.remove(&event_id).unwrap_or_default();
        handled.sort();
        steps.extend(handled.into_iter().map(Step::Handled));
    }
    Ok(Trail {
        items: steps,
        truncated,
    })
}

/// Causes before what they caused; otherwise by time (then log position). An event whose cause
/// is not in the trail (a request, or an event of another conversation) is a root. Kahn's
/// order, the earliest ready event first.
fn causal_order(events: Vec<TrailEvent>) -> Vec<TrailEvent> {
    let index: HashMap<Uuid, usize> = events
        .iter()
        .enumerate()
        .map(|(i, event)| (event.event_id, i))
        .collect();
    let mut effects: Vec<Vec<usize>> = vec![Vec::new(); events.len()];
    let mut ready = BTreeSet::new();
    let key = |i: usize| (events[i].at, events[i].position, i);
    for (i, event) in events.iter().enumerate() {
        match event.causation_id.and_then(|cause| index.get(&cause)) {
            // An event naming itself as its cause is a root.
            Some(&cause) if cause != i => effects[cause].push(i),
            _ => {
                ready.insert(key(i));
            }
        }
    }
    let mut order = Vec::with_capacity(events.len());
    while let Some((_, _, i)) = ready.pop_first() {
        order.push(i);
        for &effect in &effects[i] {
            ready.insert(key(effect));
        }
    }
    let mut slots: Vec<Option<TrailEvent>> = events.into_iter().map(Some).collect();
    let mut ordered: Vec<_> = order.into_iter().filter_map(|i| slots[i].take()).collect();
    // Events of a cycle of causes (which the stores cannot hold) are never ready: last.
    ordered.extend(slots.into_iter().flatten());
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u128, cause: Option<u128>, second: i64) -> TrailEvent {
        TrailEvent {
            at: DateTime::from_timestamp(second, 0).unwrap(),
            context: "chat".into(),
            event_type: "T".into(),
            event_id: Uuid::from_u128(id),
            stream_id: "chat.room-1".into(),
            version: 1,
            correlation_id: Uuid::from_u128(99),
            causation_id: cause.map(Uuid::from_u128),
            actor: None,
            position: id as i64,
            published_to: None,
        }
    }

    #[test]
    fn an_effect_follows_its_cause_even_when_its_clock_was_behind() {
        let order = causal_order(vec![
            event(2, Some(1), 10),
            event(1, None, 20),
            event(3, None, 15),
        ]);
        let ids: Vec<u128> = order.iter().map(|e| e.event_id.as_u128()).collect();
        assert_eq!(ids, vec![3, 1, 2]);
    }

    /// A context's part held in memory; counts the log scans it was asked for.
    #[derive(Default)]
    struct Part {
        events: Vec<TrailEvent>,
        handlings: Vec<TrailHandling>,
        naming: Vec<Uuid>,
        scans: std::sync::atomic::AtomicUsize,
        down: bool,
    }

    #[async_trait]
    impl TrailSource for Part {
        async fn holds_conversation(&self, id: Uuid) -> Result<bool, TrailError> {
            if self.down {
                return Err(TrailError::Unavailable("down".into()));
            }
            Ok(self.events.iter().any(|event| event.correlation_id == id))
        }

        async fn conversations_naming(
            &self,
            _id: Uuid,
            _most: usize,
        ) -> Result<Vec<Uuid>, TrailError> {
            self.scans
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(self.naming.clone())
        }

        async fn events_of(
            &self,
            conversations: &[Uuid],
            most: usize,
        ) -> Result<Vec<TrailEvent>, TrailError> {
            Ok(self
                .events
                .iter()
                .filter(|event| conversations.contains(&event.correlation_id))
                .take(most)
                .cloned()
                .collect())
        }

        async fn handlings_of(&self, ids: &[Uuid]) -> Result<Vec<TrailHandling>, TrailError> {
            Ok(self
                .handlings
                .iter()
                .filter(|handling| ids.contains(&handling.event_id))
                .cloned()
                .collect())
        }
    }

    fn in_context(context: &str, mut event: TrailEvent) -> TrailEvent {
        event.context = context.into();
        event
    }

    fn event_ids(trail: &Trail) -> Vec<u128> {
        trail
            .items
            .iter()
            .filter_map(|step| match step {
                Step::Event { event_id, .. } => Some(event_id.as_u128()),
                _ => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn a_conversation_is_followed_through_every_context_without_a_scan() {
        let conversation = Uuid::from_u128(99);
        let mut spent = in_context("payment", event(1, None, 10));
        spent.published_to = Some("payment.events".into());
        let payment = Arc::new(Part {
            events: vec![spent],
            ..Part::default()
        });
        let chat = Arc::new(Part {
            events: vec![in_context("chat", event(2, Some(1), 9))],
            handlings: vec![TrailHandling {
                at: DateTime::from_timestamp(11, 0).unwrap(),
                context: "chat".into(),
                consumer: "chat.spends".into(),
                event_id: Uuid::from_u128(1),
            }],
            naming: vec![Uuid::from_u128(7)],
            ..Part::default()
        });
        let sources: Vec<Arc<dyn TrailSource>> = vec![chat.clone(), payment.clone()];
        let trail = trail(&sources, conversation).await.unwrap();
        let steps: Vec<&str> = trail
            .items
            .iter()
            .map(|step| match step {
                Step::Event { .. } => "event",
                Step::Published { .. } => "published",
                Step::Handled(_) => "handled",
            })
            .collect();
        assert_eq!(steps, ["event", "published", "handled", "event"]);
        assert_eq!(event_ids(&trail), [1, 2], "the cause first");
        assert!(!trail.truncated);
        let scans = |part: &Part| part.scans.load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!((scans(&chat), scans(&payment)), (0, 0));
    }

    #[tokio::test]
    async fn an_id_no_event_names_has_an_empty_trail() {
        let sources: Vec<Arc<dyn TrailSource>> = vec![Arc::new(Part::default())];
        let trail = trail(&sources, Uuid::from_u128(5)).await.unwrap();
        assert!(trail.items.is_empty() && !trail.truncated);
    }

    #[tokio::test]
    async fn a_trail_over_the_limit_keeps_the_earliest_events_of_every_context_and_says_so() {
        let many = |context: &str, first: u128| Part {
            events: (first..first + MOST_EVENTS as u128)
                .map(|id| in_context(context, event(id, None, id as i64)))
                .collect(),
            ..Part::default()
        };
        // chat's events are the later ones: asked first, it still loses the cut.
        let sources: Vec<Arc<dyn TrailSource>> = vec![
            Arc::new(many("chat", 1_000_000)),
            Arc::new(many("payment", 1)),
            Arc::new(Part {
                events: vec![in_context("user", event(500_000, None, 0))],
                ..Part::default()
            }),
        ];
        let trail = trail(&sources, Uuid::from_u128(99)).await.unwrap();
        assert!(trail.truncated);
        let ids = event_ids(&trail);
        assert_eq!(ids.len(), MOST_EVENTS);
        assert_eq!(ids[0], 500_000, "the earliest, from the last context asked");
        assert!(ids.iter().all(|id| *id < 1_000_000));
    }

    #[tokio::test]
    async fn a_source_that_cannot_answer_fails_the_trail() {
        let sources: Vec<Arc<dyn TrailSource>> = vec![Arc::new(Part {
            down: true,
            ..Part::default()
        })];
        let failed = trail(&sources, Uuid::from_u128(5)).await;
        assert!(matches!(failed, Err(TrailError::Unavailable(_))));
    }

    #[test]
    fn events_in_a_cycle_of_causes_come_last_rather_than_vanish() {
        let order = causal_order(vec![
            event(1, Some(2), 10),
            event(2, Some(1), 11),
            event(3, None, 30),
        ]);
        let ids: Vec<u128> = order.iter().map(|e| e.event_id.as_u128()).collect();
        assert_eq!(ids, vec![3, 1, 2]);
    }
}
