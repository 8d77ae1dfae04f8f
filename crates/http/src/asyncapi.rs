//! AsyncAPI 3.0 documents (`/asyncapi.json`): the stream's frames and the bus's events, described
//! next to the OpenAPI document. Payload schemas come from the types the code sends (utoipa's
//! `ToSchema`), so a document is assembled here from parts each context makes of its own types.

use serde_json::{json, Map, Value};
use utoipa::openapi::{RefOr, Schema};
use utoipa::ToSchema;

/// An empty document: the parts ([`merge`]) fill its channels, operations and components.
pub fn document(description: &str) -> Value {
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "msa",
            "version": env!("CARGO_PKG_VERSION"),
            "description": description,
        },
        "defaultContentType": "application/json",
        "channels": {},
        "operations": {},
        "components": {"messages": {}, "schemas": {}},
    })
}

/// Adds `part`'s channels, operations, messages and schemas to `into` (a later part's entry of
/// the same name replaces an earlier one's).
pub fn merge(into: &mut Value, part: &Value) {
    for section in ["channels", "operations"] {
        if let Some(items) = part[section].as_object() {
            let target = into[section].as_object_mut();
            if let Some(target) = target {
                target.extend(items.clone());
            } else {
                into[section] = Value::Object(items.clone());
            }
        }
    }
    for section in ["messages", "schemas"] {
        if let Some(items) = part["components"][section].as_object() {
            if !into["components"][section].is_object() {
                into["components"][section] = json!({});
            }
            if let Some(target) = into["components"][section].as_object_mut() {
                target.extend(items.clone());
            }
        }
    }
}

/// `T`'s schema as JSON; the named schemas it refers to (`#/components/schemas/<name>`) are
/// added to `document`'s components.
pub fn schema_of<T: ToSchema>(document: &mut Value) -> Value {
    let mut named: Vec<(String, RefOr<Schema>)> = Vec::new();
    T::schemas(&mut named);
    if !document["components"]["schemas"].is_object() {
        document["components"]["schemas"] = json!({});
    }
    for (name, schema) in named {
        document["components"]["schemas"][name] = serde_json::to_value(schema).unwrap_or_default();
    }
    serde_json::to_value(T::schema()).unwrap_or_default()
}

/// The variants of a tagged enum's schema (`#[serde(tag = "type")]`, with or without
/// `content = "data"`): each variant's tag and its schema.
pub fn tagged_variants(schema: &Value) -> Vec<(String, Value)> {
    let Some(variants) = schema["oneOf"].as_array() else {
        return Vec::new();
    };
    variants
        .iter()
        .filter_map(|variant| {
            let tag = variant["properties"]["type"]["enum"][0].as_str()?;
            Some((tag.to_owned(), variant.clone()))
        })
        .collect()
}

/// A domain event enum's payloads as stored and published (`#[serde(tag = "type", content =
/// "data")]`): `<context>.<Variant>` and the schema of its `data`.
pub fn event_payloads<T: ToSchema>(context: &str, document: &mut Value) -> Vec<(String, Value)> {
    let schema = schema_of::<T>(document);
    tagged_variants(&schema)
        .into_iter()
        .map(|(tag, variant)| {
            // A variant without fields is stored with an empty object.
            let mut data = match &variant["properties"]["data"] {
                Value::Null => json!({"type": "object"}),
                data => data.clone(),
            };
            if let Some(description) = variant.get("description") {
                data["description"] = description.clone();
            }
            (format!("{context}.{tag}"), data)
        })
        .collect()
}

/// Removes `field` from an object schema (its property and its place in `required`).
pub fn without_field(mut schema: Value, field: &str) -> Value {
    if let Some(properties) = schema["properties"].as_object_mut() {
        properties.remove(field);
    }
    if let Some(required) = schema["required"].as_array_mut() {
        required.retain(|name| name != field);
    }
    schema
}

/// A message's reference inside a channel, and the channel's reference inside an operation.
pub fn reference(path: &str) -> Value {
    json!({ "$ref": path })
}

/// An object schema of string headers: `(name, required, description)`.
pub fn headers_schema(headers: &[(&str, bool, &str)]) -> Value {
    let mut properties = Map::new();
    let mut required = Vec::new();
    for (name, needed, description) in headers {
        properties.insert(
            (*name).into(),
            json!({"type": "string", "description": description}),
        );
        if *needed {
            required.push(json!(name));
        }
    }
    json!({"type": "object", "properties": properties, "required": required})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merging_adds_every_section() {
        let mut into = document("d");
        let part = json!({
            "channels": {"a": {"address": "a"}},
            "operations": {"o": {"action": "send"}},
            "components": {"messages": {"m": {}}, "schemas": {"s": {}}},
        });
        merge(&mut into, &part);
        assert_eq!(into["channels"]["a"]["address"], "a");
        assert_eq!(into["operations"]["o"]["action"], "send");
        assert!(into["components"]["messages"]["m"].is_object());
        assert!(into["components"]["schemas"]["s"].is_object());
        assert_eq!(into["asyncapi"], "3.0.0");
    }
}
