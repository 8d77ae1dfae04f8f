//! The command side in one call: load an aggregate, decide, append, snapshot.

use std::marker::PhantomData;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde_json::Value;
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    metric, Aggregate, AppendError, DecodeError, DomainEvent, EventMetadata, EventStore,
    IdempotencyRecord, NewEvent, RecordedEvent, Snapshot, StoreError, StreamId,
};

/// How many times a command is decided again after losing a race for its stream.
const CONFLICT_RETRIES: usize = 3;

/// Why a command did not take effect.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error + 'static> {
    /// The aggregate refused the command.
    #[error(transparent)]
    Domain(E),
    /// Other writers kept winning the race for the stream.
    #[error("the aggregate is busy: {0}")]
    Conflict(#[source] AppendError),
    /// The idempotency key was used before, for a different request.
    #[error("idempotency key {key} was already used for another request")]
    IdempotencyKeyReused { key: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A loaded aggregate and the version its state reflects.
#[derive(Debug)]
pub struct Loaded<A> {
    pub state: A,
    pub version: u64,
}

/// The result of a command that appended its events.
#[derive(Debug)]
pub struct Executed<A: Aggregate> {
    pub state: A,
    pub events: Vec<A::Event>,
    pub recorded: Vec<RecordedEvent>,
}

/// What an idempotent command answered, now or the first time.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotentOutcome {
    pub result: Value,
    /// True when the key was used before and this is the stored first answer.
    pub replayed: bool,
}

/// How many recently used aggregate states a repository keeps in memory by default.
pub const DEFAULT_STATE_CACHE: usize = 10_000;

/// Recently used states: `(state, version)` per stream, least recently used dropped first once
/// their weights ([`Aggregate::weight`]) add up to more than the budget, so a few huge states
/// (a room of a thousand members) cannot hold the memory of thousands of small ones.
struct StateCache<A> {
    entries: lru::LruCache<StreamId, (A, u64)>,
    weight: usize,
    budget: usize,
}

impl<A: Aggregate> StateCache<A> {
    /// Keeps `state` at `version` unless a later one is kept already; then drops the least
    /// recently used states until the weights fit the budget.
    fn remember(&mut self, stream_id: &StreamId, state: &A, version: u64) {
        let weight = state.weight().max(1);
        match self.entries.get_mut(stream_id) {
            Some(entry) if entry.1 >= version => return,
            Some(entry) => {
                let (old, _) = std::mem::replace(entry, (state.clone(), version));
                self.weight = self.weight + weight - old.weight().max(1);
            }
            None => {
                self.entries
                    .put(stream_id.clone(), (state.clone(), version));
                self.weight += weight;
            }
        }
        while self.weight > self.budget {
            match self.entries.pop_lru() {
                Some((_, (dropped, _))) => self.weight -= dropped.weight().max(1),
                None => break,
            }
        }
    }
}

/// Loads and saves aggregates of one kind through an [`EventStore`].
///
/// It keeps the states it last saw in memory. Events never change, so a cached state at version
/// `v` is a true state of the stream: a load reads only the events after `v` from the store, and a
/// command decides on it directly and appends with expected version `v`, so the store's version
/// guard catches any append made elsewhere (another process) and the command is decided again on
/// a fresh load. A command's cost is thus one append, however long the stream's history.
/// Snapshots serve the loads the cache misses.
///
/// Commands on one stream through one repository (and its clones) take turns: concurrent writers
/// of a hot stream (a busy room, a wallet) would otherwise decide on the same version, all but one
/// lose at the version guard, and retry in a storm. Across processes the version guard still
/// orders them.
pub struct Repository<A> {
    store: Arc<dyn EventStore>,
    cache: Option<Arc<Mutex<StateCache<A>>>>,
    turns: Arc<Vec<tokio::sync::Mutex<()>>>,
    /// `msa_<context>_commands_total` and `…_command_duration_seconds`.
    metric_names: (&'static str, &'static str),
    _aggregate: PhantomData<fn() -> A>,
}

/// Streams share this many turn locks (fixed memory; two streams rarely share one).
const TURN_STRIPES: usize = 256;

impl<A> Clone for Repository<A> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            cache: self.cache.clone(),
            turns: self.turns.clone(),
            metric_names: self.metric_names,
            _aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate> Repository<A> {
    /// A repository with a state cache of [`DEFAULT_STATE_CACHE`] entries.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            cache: None,
            turns: Arc::new(
                (0..TURN_STRIPES)
                    .map(|_| tokio::sync::Mutex::new(()))
                    .collect(),
            ),
            metric_names: (
                metric::name(metric::context_of(A::KIND), "commands_total"),
                metric::name(metric::context_of(A::KIND), "command_duration_seconds"),
            ),
            _aggregate: PhantomData,
        }
        .with_state_cache(DEFAULT_STATE_CACHE)
    }

    /// Keeps states of up to `capacity` weight in memory (that many states of weight 1); 0 turns
    /// the cache off (every load then starts from the snapshot).
    pub fn with_state_cache(mut self, capacity: usize) -> Self {
        self.cache = (capacity > 0).then(|| {
            Arc::new(Mutex::new(StateCache {
                entries: lru::LruCache::unbounded(),
                weight: 0,
                budget: capacity,
            }))
        });
        self
    }

    /// The turn lock of `stream_id`.
    fn turn(&self, stream_id: &StreamId) -> &tokio::sync::Mutex<()> {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        stream_id.hash(&mut hasher);
        &self.turns[hasher.finish() as usize % TURN_STRIPES]
    }

    fn cached(&self, stream_id: &StreamId) -> Option<(A, u64)> {
        let cache = self.cache.as_ref()?;
        let mut cache = cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        cache.entries.get(stream_id).cloned()
    }

    fn remember(&self, stream_id: &StreamId, state: &A, version: u64) {
        if let Some(cache) = &self.cache {
            let mut cache = cache
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            cache.remember(stream_id, state, version);
        }
    }

    pub fn stream_id(id: impl std::fmt::Display) -> StreamId {
        StreamId::new(A::KIND, id)
    }

    /// The aggregate's current state: the cached state or the latest usable snapshot, plus the
    /// events after it.
    pub async fn load(&self, stream_id: &StreamId) -> Result<Loaded<A>, StoreError> {
        let (mut state, mut version) = match self.cached(stream_id) {
            Some(cached) => cached,
            None => self.load_snapshot(stream_id).await?,
        };
        let newer = self.store.read_stream(stream_id, version).await?;
        for recorded in &newer {
            state.apply(&decode::<A::Event>(recorded)?);
            version = recorded.version;
        }
        if !newer.is_empty() {
            self.remember(stream_id, &state, version);
        }
        Ok(Loaded { state, version })
    }

    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<(A, u64), StoreError> {
        Ok(match self.store.load_snapshot(stream_id).await? {
            Some(snapshot) if snapshot.state_version == A::STATE_VERSION => {
                match serde_json::from_value::<A>(snapshot.state) {
                    Ok(state) => (state, snapshot.version),
                    Err(error) => {
                        tracing::warn!(%stream_id, %error, "ignoring a snapshot that does not parse");
                        (A::default(), 0)
                    }
                }
            }
            _ => (A::default(), 0),
        })
    }

    /// Decides `command` against the current state and appends the events, retrying the decision
    /// when another writer got to the stream first.
    pub async fn execute(
        &self,
        stream_id: &StreamId,
        command: &A::Command,
        metadata: &EventMetadata,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        self.execute_with(stream_id, command, metadata, |_, _| None)
            .await
    }

    /// Like [`execute`](Self::execute), but the command is named by an idempotency key: the first
    /// execution stores `result(state, events)` with its events, and every retry with the same key
    /// and fingerprint gets that stored result back instead of running again.
    pub async fn execute_idempotent(
        &self,
        stream_id: &StreamId,
        command: &A::Command,
        metadata: &EventMetadata,
        key: IdempotencyKey,
        result: impl Fn(&A, &[A::Event]) -> Value + Send + Sync,
    ) -> Result<IdempotentOutcome, CommandError<A::Error>> {
        // The key is not looked up first: a new key (the common case) costs no read. A used one
        // shows itself when its record will not insert, and the events go with it. The result
        // of the decision that was appended is the answer (made once, kept for it).
        let last_result = std::sync::Mutex::new(None);
        let executed = self
            .execute_with(stream_id, command, metadata, |state, events| {
                let value = result(state, events);
                *last_result.lock().unwrap_or_else(|p| p.into_inner()) = Some(value.clone());
                Some(IdempotencyRecord {
                    scope: key.scope.clone(),
                    key: key.key.clone(),
                    fingerprint: key.fingerprint.clone(),
                    result: value,
                })
            })
            .await;
        match executed {
            Ok(executed) => Ok(IdempotentOutcome {
                result: last_result
                    .into_inner()
                    .unwrap_or_else(|p| p.into_inner())
                    .unwrap_or_else(|| result(&executed.state, &executed.events)),
                replayed: false,
            }),
            // A retry, or a concurrent request with the same key that won: answer what it stored.
            Err(CommandError::Conflict(AppendError::DuplicateIdempotencyKey { .. })) => {
                self.first_result(&key).await?.ok_or_else(|| {
                    StoreError::Backend("idempotency key vanished after a duplicate".into()).into()
                })
            }
            // A retry decided again may be refused where the first run was not (a spend that
            // used the last credit): what the key stored is the answer.
            Err(CommandError::Domain(refusal)) => match self.first_result(&key).await? {
                Some(first) => Ok(first),
                None => Err(CommandError::Domain(refusal)),
            },
            Err(other) => Err(other),
        }
    }

    async fn first_result(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<IdempotentOutcome>, CommandError<A::Error>> {
        match self.store.idempotency_record(&key.scope, &key.key).await? {
            Some(record) if record.fingerprint == key.fingerprint => Ok(Some(IdempotentOutcome {
                result: record.result,
                replayed: true,
            })),
            Some(_) => Err(CommandError::IdempotencyKeyReused {
                key: key.key.clone(),
            }),
            None => Ok(None),
        }
    }

    /// Runs a command in a `command` span, counted in `msa_<context>_commands_total` by outcome
    /// and timed in `msa_<context>_command_duration_seconds`.
    async fn execute_with(
        &self,
        stream_id: &StreamId,
        command: &A::Command,
        metadata: &EventMetadata,
        idempotency: impl Fn(&A, &[A::Event]) -> Option<IdempotencyRecord> + Send + Sync,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        let name = A::command_name(command);
        let span = tracing::debug_span!(
            "command",
            otel.name = %format_args!("{} {name}", A::KIND),
            aggregate = A::KIND,
            command = name,
            stream_id = %stream_id,
        );
        let started = std::time::Instant::now();
        let executed = self
            .decide_and_append(stream_id, command, metadata, idempotency)
            .instrument(span)
            .await;
        let outcome = match &executed {
            Ok(_) => "ok",
            Err(CommandError::Domain(_)) => "rejected",
            Err(CommandError::Conflict(_) | CommandError::IdempotencyKeyReused { .. }) => {
                "conflict"
            }
            Err(CommandError::Store(_)) => "error",
        };
        let (commands, duration) = self.metric_names;
        metrics::counter!(commands, "aggregate" => A::KIND, "command" => name, "outcome" => outcome)
            .increment(1);
        metrics::histogram!(duration, "aggregate" => A::KIND, "command" => name)
            .record(started.elapsed().as_secs_f64());
        executed
    }

    async fn decide_and_append(
        &self,
        stream_id: &StreamId,
        command: &A::Command,
        metadata: &EventMetadata,
        idempotency: impl Fn(&A, &[A::Event]) -> Option<IdempotencyRecord> + Send + Sync,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        let _turn = self.turn(stream_id).lock().await;
        let mut conflicts = 0;
        // A cached state is decided on without asking the store: the append's version guard
        // rejects the events if the stream moved on, and a refusal is only returned once a
        // fresh load confirms it. Either way the next round reads the store.
        let mut fresh = false;
        loop {
            let (mut state, version, from_cache) = match self.cached(stream_id).filter(|_| !fresh) {
                Some((state, version)) => (state, version, true),
                None => {
                    let Loaded { state, version } = self.load(stream_id).await?;
                    (state, version, false)
                }
            };
            let events = match state.decide(command) {
                Ok(events) => events,
                Err(_) if from_cache => {
                    fresh = true;
                    continue;
                }
                Err(refusal) => return Err(CommandError::Domain(refusal)),
            };
            for event in &events {
                state.apply(event);
            }
            let new_events = events
                .iter()
                .map(|event| encode(event, metadata))
                .collect::<Result<Vec<_>, _>>()?;
            let record = idempotency(&state, &events);
            if new_events.is_empty() && record.is_none() {
                // Nothing happened (the command was already in effect): nothing to append.
                return Ok(Executed {
                    state,
                    events,
                    recorded: Vec::new(),
                });
            }
            let append = tracing::debug_span!(
                "append",
                otel.name = "append",
                db.operation.name = "append",
                stream_id = %stream_id,
                events = new_events.len(),
            );
            match self
                .store
                .append(stream_id, version, new_events, record)
                .instrument(append)
                .await
            {
                Ok(recorded) => {
                    self.remember(stream_id, &state, version + recorded.len() as u64);
                    self.maybe_snapshot(stream_id, &state, version, recorded.len() as u64)
                        .await;
                    return Ok(Executed {
                        state,
                        events,
                        recorded,
                    });
                }
                Err(AppendError::Conflict { .. }) if from_cache => fresh = true,
                Err(AppendError::Conflict { .. }) if conflicts < CONFLICT_RETRIES => conflicts += 1,
                Err(AppendError::Store(error)) => return Err(error.into()),
                Err(conflict) => return Err(CommandError::Conflict(conflict)),
            }
        }
    }

    /// Snapshots are a cache: a failed save costs speed, never correctness, so it only logs.
    async fn maybe_snapshot(&self, stream_id: &StreamId, state: &A, before: u64, appended: u64) {
        let Some(every) = A::SNAPSHOT_EVERY else {
            return;
        };
        let after = before + appended;
        if appended == 0 || after / every == before / every {
            return;
        }
        let snapshot = match serde_json::to_value(state) {
            Ok(state) => Snapshot {
                stream_id: stream_id.clone(),
                version: after,
                state_version: A::STATE_VERSION,
                state,
            },
            Err(error) => {
                tracing::warn!(%stream_id, %error, "state does not serialize; no snapshot");
                return;
            }
        };
        if let Err(error) = self.store.save_snapshot(&snapshot).await {
            tracing::warn!(%stream_id, %error, "snapshot not saved");
        }
    }
}

/// A client-supplied key naming one command; see [`Repository::execute_idempotent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    pub scope: String,
    pub key: String,
    pub fingerprint: String,
}

/// Turns a domain event into an appendable event with a fresh UUIDv7 id.
pub fn encode<E: DomainEvent>(event: &E, metadata: &EventMetadata) -> Result<NewEvent, StoreError> {
    let (event_type, schema_version, payload) = event.encode().map_err(StoreError::backend)?;
    Ok(NewEvent {
        event_id: Uuid::now_v7(),
        event_type,
        schema_version,
        payload,
        occurred_at: Utc::now(),
        metadata: metadata.clone(),
    })
}

/// Turns a recorded event back into a domain event, naming the event when it cannot.
pub fn decode<E: DomainEvent>(recorded: &RecordedEvent) -> Result<E, DecodeError> {
    E::decode(
        &recorded.event_type,
        recorded.schema_version,
        &recorded.payload,
    )
    .map_err(|reason| DecodeError {
        stream_id: recorded.stream_id.to_string(),
        version: recorded.version,
        event_type: recorded.event_type.clone(),
        schema_version: recorded.schema_version,
        reason,
    })
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    /// A state whose weight is what it says.
    #[derive(Debug, Default, Clone, Serialize, Deserialize)]
    struct Heavy(usize);

    #[derive(Debug, Clone, Serialize, Deserialize)]
    enum Nothing {}

    impl crate::DomainEvent for Nothing {
        const CONTEXT: &'static str = "test";
    }

    impl Aggregate for Heavy {
        const KIND: &'static str = "test.heavy";
        type Command = ();
        type Event = Nothing;
        type Error = std::convert::Infallible;

        fn apply(&mut self, _: &Nothing) {}

        fn decide(&self, _: &()) -> Result<Vec<Nothing>, Self::Error> {
            Ok(vec![])
        }

        fn weight(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn the_state_cache_is_bounded_by_weight_not_by_count() {
        let mut cache = StateCache::<Heavy> {
            entries: lru::LruCache::unbounded(),
            weight: 0,
            budget: 100,
        };
        let id = |n: usize| StreamId::new(Heavy::KIND, n);
        for n in 0..50 {
            cache.remember(&id(n), &Heavy(1), 1);
        }
        assert_eq!((cache.entries.len(), cache.weight), (50, 50));
        // Two heavy states push the least recently used light ones out.
        cache.remember(&id(100), &Heavy(40), 1);
        cache.remember(&id(101), &Heavy(40), 1);
        assert!(cache.weight <= 100);
        assert_eq!(cache.entries.len(), 20 + 2);
        assert!(cache.entries.contains(&id(49)) && !cache.entries.contains(&id(0)));
        // A state replaced by a lighter one gives its weight back.
        cache.remember(&id(100), &Heavy(1), 2);
        assert_eq!(cache.weight, 20 + 40 + 1);
        // One state heavier than the budget is not kept.
        cache.remember(&id(200), &Heavy(1000), 1);
        assert!(cache.weight <= 100 && !cache.entries.contains(&id(200)));
    }
}
