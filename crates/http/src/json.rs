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
        // First: is it JSON at all?
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| Problem::bad_request(format!("the body is not valid JSON: {e}")))?;
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

/// The `limit` of a list: 1 to 100, 50 when not given (every list endpoint's convention).
pub fn page_limit(raw: Option<&str>) -> Result<u32, Problem> {
    match raw.map(str::parse::<u32>) {
        None => Ok(50),
        Some(Ok(limit @ 1..=100)) => Ok(limit),
        Some(_) => Err(Problem::invalid(vec![FieldError::new(
            "limit",
            "a whole number from 1 to 100",
        )])),
    }
}

/// The `cursor` of a list, as this API gave it out (`T`: what the endpoint's cursors encode);
/// anything else names the field.
pub fn page_cursor<T: std::str::FromStr>(raw: Option<&str>) -> Result<Option<T>, Problem> {
    raw.map(|raw| {
        raw.parse::<T>().map_err(|_| {
            Problem::invalid(vec![FieldError::new(
                "cursor",
                "not a cursor this API gave out",
            )])
        })
    })
    .transpose()
}
