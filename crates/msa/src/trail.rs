//! `msa trail <id>`: everything one request set off, across every context, in causal order.
//!
//! It reads the stores, not traces: the events of the conversation (by correlation id, indexed),
//! whether each context's relay has published them (its checkpoint), and which consumers handled
//! them and when (their inboxes). So it works with tracing off, for events of any age, on both
//! deployments (the single server's SQLite files, or the contexts' PostgreSQL schemas).
//!
//! The single server also answers `GET /v1/admin/trail/{id}` (admins only) with the same steps;
//! the microservices' operators run `msa trail --database-url` (no one service reads every
//! context's store).
//!
//! An id that is no correlation id is looked up among the events that name it (an event id, a
//! message's, a payment's, a room's): their conversations make the trail.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::{FromRef, Path, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use msa_http::auth::{Caller, TokenVerifier};
use msa_http::{FieldError, Problem};
use msa_kernel::bus::events_topic;
use msa_kernel::RecordedEvent;
use serde::Serialize;
use uuid::Uuid;

use crate::cli::TrailArgs;
use crate::storage::{self, ContextStores, CONTEXTS, EVENT_SOURCES};

/// Events a trail holds at most, over every conversation and context.
const MOST_EVENTS: usize = 20_000;

/// Events that name an id read per context at most (each names a conversation).
const MOST_NAMING: usize = 200;

/// Conversations a trail follows at most (an id named by many, such as a busy room's).
const MOST_CONVERSATIONS: usize = 20;

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

/// The single server's `GET /v1/admin/trail/{id}` (admins only): the same trail as JSON.
pub fn admin_routes(stores: Vec<ContextStores>, verifier: Arc<TokenVerifier>) -> Router {
    Router::new()
        .route("/v1/admin/trail/{id}", get(trail_of))
        .with_state(TrailApi {
            stores: Arc::new(stores),
            verifier,
        })
}

#[derive(Clone)]
struct TrailApi {
    stores: Arc<Vec<ContextStores>>,
    verifier: Arc<TokenVerifier>,
}

impl FromRef<TrailApi> for Arc<TokenVerifier> {
    fn from_ref(api: &TrailApi) -> Self {
        api.verifier.clone()
    }
}

async fn trail_of(
    State(api): State<TrailApi>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Trail>, Problem> {
    if !caller.is_admin() {
        return Err(Problem::forbidden("only an admin may read trails"));
    }
    let id: Uuid = id.parse().map_err(|_| {
        Problem::invalid(vec![FieldError::new(
            "id",
            "a correlation, event, message or payment id (a UUID)",
        )])
    })?;
    let trail = trail(&api.stores, id).await.map_err(|error| {
        tracing::error!(%id, error = %format!("{error:#}"), "trail not read");
        Problem::internal(&"the trail could not be read")
    })?;
    Ok(Json(trail))
}

pub async fn run(args: TrailArgs) -> Result<()> {
    let mut urls = HashMap::new();
    for pair in &args.context_databases {
        let (context, url) = pair
            .split_once('=')
            .filter(|(context, _)| CONTEXTS.contains(context))
            .with_context(|| {
                format!("--context-database {pair}: not CONTEXT=URL with a context of {CONTEXTS:?}")
            })?;
        urls.insert(context, url.to_owned());
    }
    let mut stores = Vec::with_capacity(CONTEXTS.len());
    for context in CONTEXTS {
        let mut storage = args.storage.clone();
        if let Some(url) = urls.get(context) {
            storage.database_url = Some(url.clone());
        }
        stores.push(storage::open(&storage, context).await?);
    }
    let trail = trail(&stores, args.id).await?;
    anyhow::ensure!(
        !trail.items.is_empty(),
        "no event in any context names {}",
        args.id
    );
    for step in &trail.items {
        match args.json {
            true => println!("{}", serde_json::to_string(step)?),
            false => println!("{}", line(step)),
        }
    }
    if trail.truncated {
        eprintln!(
            "the trail is cut short: at most {MOST_CONVERSATIONS} conversations and {MOST_EVENTS} events"
        );
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

/// When, in which context and by which consumer an event was handled.
type Handling = (DateTime<Utc>, &'static str, String);

/// A trail: its steps, and whether limits cut it short.
#[derive(Debug, Serialize)]
pub struct Trail {
    pub items: Vec<Step>,
    /// More conversations or events than a trail holds ([`MOST_CONVERSATIONS`], [`MOST_EVENTS`]).
    pub truncated: bool,
}

/// The trail of `id`: its conversations' events in causal order, each followed by its
/// publishing and its handlings.
pub async fn trail(stores: &[ContextStores], id: Uuid) -> Result<Trail> {
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
    let mut truncated = conversations.len() > MOST_CONVERSATIONS;
    let mut events = Vec::new();
    'reading: for conversation in conversations.iter().take(MOST_CONVERSATIONS) {
        for stores in stores {
            let room = MOST_EVENTS.saturating_sub(events.len());
            for event in stores.events.correlated(*conversation, room + 1).await? {
                if events.len() == MOST_EVENTS {
                    truncated = true;
                    break 'reading;
                }
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
    let event_ids: Vec<Uuid> = events.iter().map(|(_, event)| event.event_id).collect();
    let mut handlings: HashMap<Uuid, Vec<Handling>> = HashMap::new();
    for stores in stores {
        for (event_id, consumer, at) in stores.read_models.handlings(&event_ids).await? {
            let at = DateTime::parse_from_rfc3339(&at)
                .with_context(|| format!("{consumer}'s inbox: not a time: {at}"))?;
            handlings.entry(event_id).or_default().push((
                at.with_timezone(&Utc),
                stores.context,
                consumer,
            ));
        }
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
        // A relay that never ran (the single server's bus reads the log itself) says nothing;
        // one that runs saves its checkpoint every 100 ms, so the newest events may not show yet.
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
        let mut handled = handlings.remove(&event_id).unwrap_or_default();
        handled.sort();
        steps.extend(
            handled
                .into_iter()
                .map(|(at, context, consumer)| Step::Handled {
                    at,
                    context,
                    consumer,
                    event_id,
                }),
        );
    }
    Ok(Trail {
        items: steps,
        truncated,
    })
}

/// Causes before what they caused; otherwise by time (then log position). An event whose cause
/// is not in the trail (a request, or an event of another conversation) is a root. Kahn's
/// order, the earliest ready event first.
fn causal_order(events: Vec<(&'static str, RecordedEvent)>) -> Vec<(&'static str, RecordedEvent)> {
    let index: HashMap<Uuid, usize> = events
        .iter()
        .enumerate()
        .map(|(i, (_, event))| (event.event_id, i))
        .collect();
    let mut effects: Vec<Vec<usize>> = vec![Vec::new(); events.len()];
    let mut ready = BTreeSet::new();
    let key = |i: usize| (events[i].1.occurred_at, events[i].1.position, i);
    for (i, (_, event)) in events.iter().enumerate() {
        match event
            .metadata
            .causation_id
            .and_then(|cause| index.get(&cause))
        {
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
    let mut slots: Vec<Option<(&'static str, RecordedEvent)>> =
        events.into_iter().map(Some).collect();
    let mut ordered: Vec<_> = order.into_iter().filter_map(|i| slots[i].take()).collect();
    // Events of a cycle of causes (which the stores cannot hold) are never ready: last.
    ordered.extend(slots.into_iter().flatten());
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
