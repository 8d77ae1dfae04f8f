//! The event store port: the command side's only source of truth, and (through its global log) the
//! outbox every projection and relay reads.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{DecodeError, LogPosition, NewEvent, RecordedEvent, Snapshot, StreamId};

/// Failure of the storage itself (connection, I/O, a corrupt row).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("storage failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database cannot answer or take writes now (disk full, unreachable, restarting, too
    /// busy): the same call may succeed later, and callers say so (503, a retry) rather than
    /// report a fault.
    #[error("storage unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn backend(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Backend(Box::new(error))
    }

    pub fn unavailable(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Unavailable(Box::new(error))
    }

    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// The same failure for another caller (a group commit answers each of its writes), of the
    /// same kind, with the same message.
    pub fn copied(&self) -> StoreError {
        let message = || std::io::Error::other(self.to_string());
        match self {
            Self::Unavailable(_) => Self::unavailable(message()),
            _ => Self::backend(message()),
        }
    }
}

/// Why an append did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended to the stream since the caller loaded it.
    #[error("stream {stream_id} is at version {actual}, not at the expected {expected}")]
    Conflict {
        stream_id: StreamId,
        expected: u64,
        actual: u64,
    },
    /// The idempotency key already holds the result of an earlier command.
    #[error("idempotency key {scope}/{key} was already used")]
    DuplicateIdempotencyKey { scope: String, key: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A client-supplied key (a chat `txn_id`, a payment `Idempotency-Key`) and the first result of the
/// command it names. Stored in the same transaction as the command's events, so a retry can never
/// append twice, and kept as long as the events are.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    /// Who the key belongs to (`chat.send:<user id>`): keys of different scopes never collide.
    pub scope: String,
    pub key: String,
    /// A digest of the request, so the same key with another request can be refused.
    pub fingerprint: String,
    /// What the first command answered.
    pub result: Value,
}

/// The event store of one bounded context.
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Appends `events` to `stream_id` if the stream is exactly at `expected_version` (0: new
    /// stream), in one transaction with `idempotency` when given. Returns the recorded events.
    async fn append(
        &self,
        stream_id: &StreamId,
        expected_version: u64,
        events: Vec<NewEvent>,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<Vec<RecordedEvent>, AppendError>;

    /// The events of one stream with a version above `after_version`, in order, upcast.
    async fn read_stream(
        &self,
        stream_id: &StreamId,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The event of `stream_id` at `version`, upcast, if the stream has it (one indexed read: a
    /// command that needs one fact of a long stream, such as a message's sender in its room,
    /// reads only that).
    async fn read_event(
        &self,
        stream_id: &StreamId,
        version: u64,
    ) -> Result<Option<RecordedEvent>, StoreError>;

    /// Up to `limit` events of the global log after `after`, in log order, upcast. Never returns an
    /// event while an earlier one may still commit: what a reader has passed stays passed.
    async fn read_all(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The global position of the latest event appended (0 when none). Positions may have gaps, so
    /// `head_position() - position` estimates, not counts, the events after `position` (for lag
    /// metrics).
    async fn head_position(&self) -> Result<i64, StoreError>;

    /// The position of the last event a reader can see now (`START` when none): where a reader
    /// that wants only what comes next starts, without reading the log from its beginning.
    async fn last_position(&self) -> Result<LogPosition, StoreError>;

    /// The position of the last event committed, whether or not a reader can see it yet (a
    /// reader of PostgreSQL's log cannot while an older transaction runs): what a reader must
    /// reach to have seen everything committed before the call. Never a place to start reading
    /// from. The default is [`last_position`](Self::last_position), for stores whose readers see
    /// every committed event at once.
    async fn last_committed_position(&self) -> Result<LogPosition, StoreError> {
        self.last_position().await
    }

    /// The stream's latest snapshot, if any.
    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, StoreError>;

    /// Stores a snapshot, replacing an older one of the stream.
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError>;

    /// The record stored under an idempotency key, if the key was used.
    async fn idempotency_record(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError>;

    /// Stores a command result that appended nothing (a refusal is a result too).
    async fn save_idempotency_record(&self, record: &IdempotencyRecord) -> Result<(), AppendError>;

    /// Up to `limit` events of the conversation `correlation_id`, in log order (an operator's
    /// trail; indexed).
    async fn correlated(
        &self,
        _correlation_id: Uuid,
        _limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        Err(StoreError::Backend(
            "this event store cannot look events up by correlation".into(),
        ))
    }

    /// Up to `limit` events that name `id`: the event `id`, or events whose stream id or payload
    /// holds it (a payment's, a message's), in log order. It scans the log: for operators only.
    async fn naming(&self, _id: Uuid, _limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        Err(StoreError::Backend(
            "this event store cannot look events up by id".into(),
        ))
    }

    /// Notified after every append made through this store instance, so readers need not poll
    /// fast. Readers must still poll now and then: other processes append too.
    fn appended(&self) -> Arc<Notify>;
}
