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

/// A consumer's handling of an event (its inbox row).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The source (a service) cannot be reached or refused the call.
    #[error("{0}")]
    Unavailable(String),
}

/// One context's part of trails.
#[async_trait]
pub trait TrailSource: Send + Sync {
    /// The conversations `id` belongs to here: `id` itself when it is a conversation with events
    /// here, else those of up to `most` events that name it (an event's, a message's, a
    /// payment's, a room's id).
    async fn conversations_of(&self, id: Uuid, most: usize) -> Result<Vec<Uuid>, TrailError>;

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
    Handled {
        at: DateTime<Utc>,
        context: String,
        consumer: String,
        event_id: Uuid,
    },
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
pub async fn trail(sources: &[Arc<dyn TrailSource>], id: Uuid) -> Result<Trail, TrailError> {
    let mut conversations = BTreeSet::new();
    for source in sources {
        conversations.extend(source.conversations_of(id, MOST_NAMING).await?);
    }
    // `id` is a conversation: it alone is followed, whatever else names it.
    if conversations.contains(&id) {
        conversations = BTreeSet::from([id]);
    }
    let mut truncated = conversations.len() > MOST_CONVERSATIONS;
    let conversations: Vec<Uuid> = conversations.into_iter().take(MOST_CONVERSATIONS).collect();
    let mut events = Vec::new();
    for source in sources {
        let room = MOST_EVENTS - events.len();
        let mut found = source.events_of(&conversations, room + 1).await?;
        if found.len() > room {
            found.truncate(room);
            truncated = true;
        }
        events.extend(found);
        if events.len() == MOST_EVENTS {
            break;
        }
    }
    let event_ids: Vec<Uuid> = events.iter().map(|event| event.event_id).collect();
    let mut handlings: HashMap<Uuid, Vec<TrailHandling>> = HashMap::new();
    for source in sources {
        for handling in source.handlings_of(&event_ids).await? {
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
        handled
            .sort_by(|a, b| (a.at, &a.context, &a.consumer).cmp(&(b.at, &b.context, &b.consumer)));
        steps.extend(handled.into_iter().map(|handling| Step::Handled {
            at: handling.at,
            context: handling.context,
            consumer: handling.consumer,
            event_id,
        }));
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
