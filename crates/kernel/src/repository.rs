//! The command side in one call: load an aggregate, decide, append, snapshot.

use std::marker::PhantomData;
use std::sync::Arc;

use chrono::Utc;
use serde_json::Value;
use uuid::Uuid;

use crate::{
    Aggregate, AppendError, DecodeError, DomainEvent, EventMetadata, EventStore, IdempotencyRecord,
    NewEvent, RecordedEvent, Snapshot, StoreError, StreamId,
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

/// Loads and saves aggregates of one kind through an [`EventStore`].
pub struct Repository<A> {
    store: Arc<dyn EventStore>,
    _aggregate: PhantomData<fn() -> A>,
}

impl<A> Clone for Repository<A> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            _aggregate: PhantomData,
        }
    }
}

impl<A: Aggregate> Repository<A> {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            _aggregate: PhantomData,
        }
    }

    pub fn stream_id(id: impl std::fmt::Display) -> StreamId {
        StreamId::new(A::KIND, id)
    }

    /// The aggregate's current state: the latest usable snapshot plus the events after it.
    pub async fn load(&self, stream_id: &StreamId) -> Result<Loaded<A>, StoreError> {
        let (mut state, mut version) = match self.store.load_snapshot(stream_id).await? {
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
        };
        for recorded in self.store.read_stream(stream_id, version).await? {
            state.apply(&decode::<A::Event>(&recorded)?);
            version = recorded.version;
        }
        Ok(Loaded { state, version })
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
        if let Some(first) = self.first_result(&key).await? {
            return Ok(first);
        }
        let executed = self
            .execute_with(stream_id, command, metadata, |state, events| {
                Some(IdempotencyRecord {
                    scope: key.scope.clone(),
                    key: key.key.clone(),
                    fingerprint: key.fingerprint.clone(),
                    result: result(state, events),
                })
            })
            .await;
        match executed {
            Ok(executed) => Ok(IdempotentOutcome {
                result: result(&executed.state, &executed.events),
                replayed: false,
            }),
            // A concurrent retry with the same key won the race: answer what it stored.
            Err(CommandError::Conflict(AppendError::DuplicateIdempotencyKey { .. })) => {
                self.first_result(&key).await?.ok_or_else(|| {
                    StoreError::Backend("idempotency key vanished after a duplicate".into()).into()
                })
            }
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

    async fn execute_with(
        &self,
        stream_id: &StreamId,
        command: &A::Command,
        metadata: &EventMetadata,
        idempotency: impl Fn(&A, &[A::Event]) -> Option<IdempotencyRecord> + Send + Sync,
    ) -> Result<Executed<A>, CommandError<A::Error>> {
        let mut attempt = 0;
        loop {
            let Loaded { mut state, version } = self.load(stream_id).await?;
            let events = state.decide(command).map_err(CommandError::Domain)?;
            for event in &events {
                state.apply(event);
            }
            let new_events = events
                .iter()
                .map(|event| encode(event, metadata))
                .collect::<Result<Vec<_>, _>>()?;
            let record = idempotency(&state, &events);
            match self
                .store
                .append(stream_id, version, new_events, record)
                .await
            {
                Ok(recorded) => {
                    self.maybe_snapshot(stream_id, &state, version, recorded.len() as u64)
                        .await;
                    return Ok(Executed {
                        state,
                        events,
                        recorded,
                    });
                }
                Err(AppendError::Conflict { .. }) if attempt < CONFLICT_RETRIES => attempt += 1,
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
