use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::{FieldError, Problem};

/// A JSON request body. Unlike axum's `Json`, its rejections are problems: 415 without a JSON
/// content type, 413 over the body limit, 400 when the body is not JSON at all, 422 naming the field when the JSON does
/// not fit (wrong type, missing or unknown field; bodies should use
/// `#[serde(deny_unknown_fields)]`).
pub struct StrictJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for StrictJson<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json") || v.contains("+json"));
        if !is_json {
            return Err(Problem::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "send the body as application/json",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    e.status(),
                    "payload-too-large",
                    format!("the body is too large: {e}"),
                )
            } else {
                Problem::bad_request(format!("cannot read the body: {e}"))
            }
        })?;
        // First: is it JSON at all, with each key once per object?
        let value = serde_json::from_slice::<UniqueKeys>(&bytes)
            .map_err(|e| match duplicate_key(&e) {
                Some(key) => Problem::invalid(vec![FieldError::new(key, "given more than once")]),
                None => Problem::bad_request(format!("the body is not valid JSON: {e}")),
            })?
            .0;
        // Then: does it fit, and where not?
        serde_path_to_error::deserialize(value)
            .map(StrictJson)
            .map_err(|error| {
                let path = error.path().to_string();
                let inner = error.into_inner().to_string();
                let field = match (path.as_str(), unknown_or_missing_field(&inner)) {
                    (".", Some(name)) | ("", Some(name)) => name,
                    (".", None) | ("", None) => "body".to_owned(),
                    (path, Some(name)) if inner.starts_with("missing field") => {
                        format!("{path}.{name}")
                    }
                    (path, _) => path.to_owned(),
                };
                Problem::invalid(vec![FieldError::new(field, inner)])
            })
    }
}

/// The field serde names in "unknown field `x`" and "missing field `x`".
fn unknown_or_missing_field(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("missing field `"))?;
    rest.split('`').next().map(str::to_owned)
}

/// A query string. Unlike axum's `Query`, a bad one (an unknown parameter, with
/// `#[serde(deny_unknown_fields)]`, or a wrong type) is a 422 problem naming it.
pub struct StrictQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> axum::extract::FromRequestParts<S> for StrictQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| StrictQuery(value))
            .map_err(|rejection| {
                Problem::invalid(vec![FieldError::new("query string", rejection.body_text())])
            })
    }
}

/// A JSON value whose objects name each key once. serde_json keeps the last of repeated keys
/// without a word, so `{"amount": 1, "amount": 1000}` would mean one thing to a reader that keeps
/// the first (a proxy, a log, another service's parser) and another here: such a body is refused,
/// naming the key.
struct UniqueKeys(serde_json::Value);

const DUPLICATE_KEY: &str = "duplicate key ";

/// The key a [`UniqueKeys`] parse refused as repeated.
fn duplicate_key(error: &serde_json::Error) -> Option<String> {
    let message = error.to_string();
    let rest = message.strip_prefix(DUPLICATE_KEY)?;
    let (key, _) = rest.rsplit_once(" at line ")?;
    serde_json::from_str::<String>(key).ok()
}

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(UniqueKeysVisitor)
            .map(UniqueKeys)
    }
}

struct UniqueKeysVisitor;

impl<'de> serde::de::Visitor<'de> for UniqueKeysVisitor {
    type Value = serde_json::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, Into::into))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(v.into())
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(serde_json::Value::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(UniqueKeys(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(items.into())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                let quoted = serde_json::Value::from(key).to_string();
                return Err(serde::de::Error::custom(format!("{DUPLICATE_KEY}{quoted}")));
            }
            let UniqueKeys(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(object.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<serde_json::Value, Option<String>> {
        serde_json::from_str::<UniqueKeys>(body)
            .map(|unique| unique.0)
            .map_err(|error| duplicate_key(&error))
    }

    #[test]
    fn a_key_given_twice_is_named_wherever_it_is() {
        assert_eq!(
            parse(r#"{"amount": 1, "amount": 1000}"#),
            Err(Some("amount".into()))
        );
        assert_eq!(
            parse(r#"{"a": [{"b": 1, "c": {"x\"y": 1, "x\"y": 2}}]}"#),
            Err(Some("x\"y".into()))
        );
        assert_eq!(parse(r#"{"a": 1,"#), Err(None), "not JSON at all");
    }

    #[test]
    fn everything_else_parses_as_serde_json_does() {
        let body =
            r#"{"a": [1, -2, 3.5, true, null, "t"], "b": {"a": {}}, "c": 18446744073709551615}"#;
        assert_eq!(
            parse(body),
            Ok(serde_json::from_str::<serde_json::Value>(body).unwrap())
        );
    }
}
