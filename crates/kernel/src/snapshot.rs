//! Snapshots: an aggregate's folded state at a version, so a load reads only the events after it.

use serde_json::Value;

use crate::StreamId;

/// A stored snapshot. `state_version` is the aggregate's `STATE_VERSION` when it was taken: a
/// snapshot of another shape is ignored and the state is folded from the events instead.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub stream_id: StreamId,
    pub version: u64,
    pub state_version: u32,
    pub state: Value,
}
