//! Upcasters: old schema versions of an event are converted to the current one on read, so stored
//! events are never rewritten and code only ever sees the latest shape.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

type Step = Arc<dyn Fn(Value) -> Result<Value, String> + Send + Sync>;

/// A registry of one-version steps: `(event type, from version) -> payload of from version + 1`.
#[derive(Clone, Default)]
pub struct Upcasters {
    steps: HashMap<(String, u32), Step>,
}

impl std::fmt::Debug for Upcasters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.steps.keys()).finish()
    }
}

impl Upcasters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers the step that turns `event_type` at `from_version` into `from_version + 1`.
    pub fn register(
        mut self,
        event_type: &str,
        from_version: u32,
        step: impl Fn(Value) -> Result<Value, String> + Send + Sync + 'static,
    ) -> Self {
        self.steps
            .insert((event_type.to_owned(), from_version), Arc::new(step));
        self
    }

    /// Adds every step of `other` (each context registers its own).
    pub fn merge(mut self, other: Upcasters) -> Self {
        self.steps.extend(other.steps);
        self
    }

    /// Applies steps while one exists for the current version; returns the version reached.
    pub fn upcast(
        &self,
        event_type: &str,
        mut version: u32,
        mut payload: Value,
    ) -> Result<(u32, Value), String> {
        while let Some(step) = self.steps.get(&(event_type.to_owned(), version)) {
            payload = step(payload).map_err(|e| format!("upcasting from v{version}: {e}"))?;
            version += 1;
        }
        Ok((version, payload))
    }
}

impl Upcasters {
    /// Brings a stored event to its current schema version, naming the event when a step fails.
    pub fn upcast_recorded(
        &self,
        mut event: crate::RecordedEvent,
    ) -> Result<crate::RecordedEvent, crate::DecodeError> {
        let payload = std::mem::take(&mut event.payload);
        match self.upcast(&event.event_type, event.schema_version, payload) {
            Ok((version, payload)) => {
                event.schema_version = version;
                event.payload = payload;
                Ok(event)
            }
            Err(reason) => Err(crate::DecodeError {
                stream_id: event.stream_id.to_string(),
                version: event.version,
                event_type: event.event_type,
                schema_version: event.schema_version,
                reason,
            }),
        }
    }
}
