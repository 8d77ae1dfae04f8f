//! The event-sourcing and CQRS kernel every bounded context builds on.
//!
//! Nothing here does I/O: storage, buses and clocks are ports (traits) implemented by adapter crates
//! (`msa-sqlite`, `msa-postgres`, `msa-sql`). Read top-down:
//!
//! - [`event`]: what a domain event is and how it becomes a stored payload;
//! - [`envelope`]: the metadata every event carries (ids, stream, version, tracing);
//! - [`conversation`]: the request or event a piece of work belongs to, and its trace;
//! - [`aggregate`]: decide commands against state, fold events into state;
//! - [`upcast`] and [`snapshot`]: old event versions and fast loads;
//! - [`store`]: the event store port (append with expected version, streams, global log, idempotency);
//! - [`repository`]: load, decide, append; the command side in one call;
//! - [`readmodel`] and [`projection`]: the query side (checkpoints, inbox, rebuildable projections);
//! - [`lookout`]: when a log reader that read nothing looks again;
//! - [`shared_tail`]: a process's log readers share their reads of the log's end;
//! - [`bus`], [`relay`], [`consumer`], [`in_process`]: events between contexts;
//! - [`trail`]: one request's events across every context, in causal order (for operators);
//! - [`invalid`] and [`page`]: the shapes every use case shares (fields refused, pages of lists);
//! - [`testing`]: given/when/then for aggregates.

pub mod aggregate;
pub mod bus;
pub mod consumer;
pub mod conversation;
pub mod envelope;
pub mod event;
pub mod in_process;
pub mod invalid;
pub mod lookout;
pub mod metric;
pub mod page;
pub mod projection;
pub mod readmodel;
pub mod relay;
pub mod repository;
pub mod shared_tail;
pub mod snapshot;
pub mod store;
pub mod testing;
pub mod trail;
pub mod upcast;

pub use aggregate::Aggregate;
pub use conversation::Conversation;
pub use envelope::{EventMetadata, LogPosition, NewEvent, RecordedEvent, StreamId};
pub use event::{DecodeError, DomainEvent};
pub use invalid::FieldError;
pub use lookout::Lookout;
pub use projection::{
    Projection, ProjectionError, ProjectionRunner, RunError, TableNames, TableSpec,
};
pub use readmodel::ReadModelStore;
pub use repository::{CommandError, Executed, Repository};
pub use shared_tail::SharedTail;
pub use snapshot::Snapshot;
pub use store::{AppendError, EventStore, IdempotencyRecord, StoreError};
pub use upcast::Upcasters;
