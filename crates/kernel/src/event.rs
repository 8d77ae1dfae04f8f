//! Domain events: past-tense facts, stored as a type name, a schema version and a JSON payload.

use serde::{de::DeserializeOwned, Serialize};
use serde_json::{Map, Value};

/// A domain event of one bounded context.
///
/// Implement it on a serde enum tagged as `#[serde(tag = "type", content = "data")]` with struct
/// variants; the default methods then give every variant the stored type `<CONTEXT>.<Variant>`
/// (`chat.MessagePosted`) and its payload is the variant's fields as a JSON object.
pub trait DomainEvent: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {
    /// The bounded context's name, the prefix of every event type (`chat`).
    const CONTEXT: &'static str;

    /// The current schema version of one event type (given without the context prefix).
    /// Bump it when a payload changes shape, and register an upcaster from the old version.
    fn schema_version(_short_type: &str) -> u32 {
        1
    }

    /// Splits the event into its stored type name and payload.
    fn encode(&self) -> Result<(String, u32, Value), serde_json::Error> {
        let tagged = serde_json::to_value(self)?;
        let Value::Object(mut fields) = tagged else {
            return Err(serde::ser::Error::custom(
                "a domain event must be a tagged enum",
            ));
        };
        let short = match fields.remove("type") {
            Some(Value::String(name)) => name,
            _ => {
                return Err(serde::ser::Error::custom(
                    "a domain event needs a `type` tag",
                ))
            }
        };
        let payload = fields
            .remove("data")
            .unwrap_or_else(|| Value::Object(Map::new()));
        let version = Self::schema_version(&short);
        Ok((format!("{}.{short}", Self::CONTEXT), version, payload))
    }

    /// Rebuilds an event from its stored form (already upcast to the current version).
    fn decode(event_type: &str, schema_version: u32, payload: &Value) -> Result<Self, String> {
        let short = event_type
            .strip_prefix(Self::CONTEXT)
            .and_then(|rest| rest.strip_prefix('.'))
            .ok_or_else(|| format!("not an event of the {} context", Self::CONTEXT))?;
        let known = Self::schema_version(short);
        if schema_version != known {
            return Err(format!(
                "schema version {schema_version} is not known (current is {known}, and no upcaster reaches it)"
            ));
        }
        let mut tagged = Map::new();
        tagged.insert("type".into(), Value::String(short.to_owned()));
        tagged.insert("data".into(), payload.clone());
        serde_json::from_value(Value::Object(tagged)).map_err(|e| e.to_string())
    }
}

/// A stored event that the code cannot turn back into a domain event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot decode event {event_type} v{schema_version} at {stream_id}@{version}: {reason}")]
pub struct DecodeError {
    pub stream_id: String,
    pub version: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub reason: String,
}
