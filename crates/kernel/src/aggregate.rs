//! Aggregates: a consistency boundary whose state is the fold of its events.

use serde::{de::DeserializeOwned, Serialize};

use crate::DomainEvent;

/// An event-sourced aggregate, written as a decider.
///
/// `decide` checks a command against the current state and returns the events it causes (or a typed
/// domain error); `apply` folds one event into the state. Neither does I/O: ids and times a
/// command needs travel inside the command, filled in by the application layer.
pub trait Aggregate:
    Default + Clone + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// The stream category, `<context>.<aggregate>` (`chat.room`).
    const KIND: &'static str;
    /// The shape of the serialized state. Bump it when the state struct changes: snapshots taken
    /// with another version are then ignored and the state is rebuilt from events.
    const STATE_VERSION: u32 = 1;
    /// Take a snapshot each time the stream crosses a multiple of this many events.
    const SNAPSHOT_EVERY: Option<u64> = None;

    type Command: Send + Sync;
    type Event: DomainEvent;
    type Error: std::error::Error + Send + Sync + 'static;

    fn apply(&mut self, event: &Self::Event);

    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// The command's name for spans and metrics (`post_message`); the aggregate's kind unless an
    /// aggregate names its commands.
    fn command_name(_command: &Self::Command) -> &'static str {
        Self::KIND
    }

    /// How much of a repository's state cache this state takes, in units of a small state (1).
    /// A state that grows with what clients do (a room's members) says so, so the cache is
    /// bounded by memory, not by a count of states.
    fn weight(&self) -> usize {
        1
    }

    /// Folds events into a fresh state (what a load does without a snapshot).
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self {
        let mut state = Self::default();
        for event in events {
            state.apply(event);
        }
        state
    }
}
