//! `msa trail <id>`: everything one request set off, across every context, in causal order.
//!
//! It reads the stores, not traces: the events of the conversation (by correlation id, indexed),
//! whether each context's relay has published them (its checkpoint), and which consumers handled
//! them and when (their inboxes). So it works with tracing off, for events of any age, on both
//! deployments (the single server's SQLite files, or the contexts' PostgreSQL schemas).
//!
//! An id that is no correlation id is looked up among the events that name it (an event id, a
//! message's, a payment's, a room's): their conversations make the trail.

use std::collections::{BTreeSet, HashMap, HashSet};

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use msa_kernel::bus::events_topic;
use msa_kernel::RecordedEvent;
use serde::Serialize;
use uuid::Uuid;

use crate::cli::TrailArgs;
use crate::storage::{self, ContextStores, EVENT_SOURCES};

/// Events read per conversation and context at most.
const MOST_EVENTS: usize = 10_000;

/// Events that name an id read per context at most (each names a conversation).
const MOST_NAMING: usize = 200;

/// One step of a trail.
#[derive(Debug, Serialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// An event a context recorded.
    Event {
        at: DateTime<Utc>,
        context: &'static str,
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
        context: &'static str,
        topic: String,
        event_id: Uuid,
    },
    /// A consumer handled the event (its inbox row).
    Handled {
        at: DateTime<Utc>,
        context: &'static str,
        consumer: String,
        event_id: Uuid,
    },
}

pub async fn run(args: TrailArgs) -> Result<()> {
    let stores = storage::open_all(&args.storage).await?;
    let steps = trail(&stores, args.id).await?;
    anyhow::ensure!(
        !steps.is_empty(),
        "no event in any context names {}",
        args.id
    );
    for step in &steps {
        match args.json {
            true => println!("{}", serde_json::to_string(step)?),
            false => println!("{}", line(step)),
        }
    }
    Ok(())
}

fn line(step: &Step) -> String {
    match step {
        Step::Event {
            at,
            context,
            event_type,
            event_id,
            stream_id,
            version,
            causation_id,
            actor,
            ..
        } => format!(
            "{}  {context:<9}  {event_type} {stream_id}@{version} (event {event_id}{}{})",
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            causation_id
                .map(|cause| format!(", caused by {cause}"))
                .unwrap_or_default(),
            actor
                .as_deref()
                .map(|actor| format!(", by {actor}"))
                .unwrap_or_default(),
        ),
        Step::Published {
            context,
            topic,
            event_id,
        } => format!(
            "{:<24}  {context:<9}    published to {topic} (event {event_id})",
            "(relayed; time not kept)"
        ),
        Step::Handled {
            at,
            context,
            consumer,
            event_id,
        } => format!(
            "{}  {context:<9}    handled by {consumer} (event {event_id})",
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    }
}

/// The trail of `id`: its conversations' events in causal order, each followed by its
/// publishing and its handlings.
pub async fn trail(stores: &[ContextStores], id: Uuid) -> Result<Vec<Step>> {
    let mut conversations = BTreeSet::new();
    for stores in stores {
        if !stores.events.correlated(id, 1).await?.is_empty() {
            conversations.insert(id);
            break;
        }
    }
    if conversations.is_empty() {
        for stores in stores {
            let naming = stores
                .events
                .naming(id, MOST_NAMING)
                .await
                .with_context(|| format!("looking {id} up in the {} events", stores.context))?;
            conversations.extend(naming.iter().map(|event| event.metadata.correlation_id));
        }
    }
    let mut events = Vec::new();
    for conversation in &conversations {
        for stores in stores {
            for event in stores.events.correlated(*conversation, MOST_EVENTS).await? {
                events.push((stores.context, event));
            }
        }
    }
    let mut published = HashMap::new();
    for stores in stores
        .iter()
        .filter(|stores| EVENT_SOURCES.contains(&stores.context))
    {
        let relay = format!("relay.{}", stores.context);
        published.insert(
            stores.context,
            stores.read_models.published_to(&relay).await?,
        );
    }
    let mut steps = Vec::new();
    for (context, event) in causal_order(events) {
        let event_id = event.event_id;
        let position = event.position;
        steps.push(Step::Event {
            at: event.occurred_at,
            context,
            event_type: event.event_type,
            event_id,
            stream_id: event.stream_id.to_string(),
            version: event.version,
            correlation_id: event.metadata.correlation_id,
            causation_id: event.metadata.causation_id,
            actor: event.metadata.actor,
        });
        // A relay that never ran (the single server's bus reads the log itself) says nothing.
        if let Some(relayed) = published.get(context) {
            let ran = relayed.position > 0 || relayed.commit > 0;
            if ran && *relayed >= position {
                steps.push(Step::Published {
                    context,
                    topic: events_topic(context),
                    event_id,
                });
            }
        }
        let mut handlings = Vec::new();
        for stores in stores {
            for (consumer, at) in stores.read_models.handlings(event_id).await? {
                let at = DateTime::parse_from_rfc3339(&at)
                    .with_context(|| format!("{consumer}'s inbox: not a time: {at}"))?;
                handlings.push((at.with_timezone(&Utc), stores.context, consumer));
            }
        }
        handlings.sort();
        steps.extend(
            handlings
                .into_iter()
                .map(|(at, context, consumer)| Step::Handled {
                    at,
                    context,
                    consumer,
                    event_id,
                }),
        );
    }
    Ok(steps)
}

/// Causes before what they caused; otherwise by time (then log position). An event whose cause
/// is not in the trail (a request, or an event of another conversation) is a root.
fn causal_order(
    mut events: Vec<(&'static str, RecordedEvent)>,
) -> Vec<(&'static str, RecordedEvent)> {
    events.sort_by_key(|(_, event)| (event.occurred_at, event.position));
    let ids: HashSet<Uuid> = events.iter().map(|(_, event)| event.event_id).collect();
    let mut placed: HashSet<Uuid> = HashSet::new();
    let mut ordered = Vec::with_capacity(events.len());
    let mut waiting = events;
    while !waiting.is_empty() {
        let ready = waiting.iter().position(|(_, event)| {
            event
                .metadata
                .causation_id
                .is_none_or(|cause| !ids.contains(&cause) || placed.contains(&cause))
        });
        // A cycle cannot happen (a cause is recorded before its effect); if the data says
        // otherwise, time decides.
        let next = waiting.remove(ready.unwrap_or(0));
        placed.insert(next.1.event_id);
        ordered.push(next);
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;
    use msa_kernel::{EventMetadata, LogPosition, StreamId};

    fn event(id: u128, cause: Option<u128>, second: i64) -> (&'static str, RecordedEvent) {
        let metadata = EventMetadata {
            causation_id: cause.map(Uuid::from_u128),
            ..EventMetadata::new_conversation(None)
        };
        (
            "chat",
            RecordedEvent {
                position: LogPosition {
                    commit: 0,
                    position: id as i64,
                },
                stream_id: StreamId::from_stored("chat.room-1".to_owned()),
                version: 1,
                event_id: Uuid::from_u128(id),
                event_type: "T".into(),
                schema_version: 1,
                payload: serde_json::Value::Null,
                occurred_at: DateTime::from_timestamp(second, 0).unwrap(),
                metadata,
            },
        )
    }

    #[test]
    fn an_effect_follows_its_cause_even_when_its_clock_was_behind() {
        let order = causal_order(vec![
            event(2, Some(1), 10),
            event(1, None, 20),
            event(3, None, 15),
        ]);
        let ids: Vec<u128> = order.iter().map(|(_, e)| e.event_id.as_u128()).collect();
        assert_eq!(ids, vec![3, 1, 2]);
    }
}
