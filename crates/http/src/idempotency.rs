//! The `Idempotency-Key` header: a client names a request, so a retry with the same key and body
//! answers the first response instead of doing it again (the key is kept with the events:
//! `msa_kernel::repository::IdempotencyKey`).

use axum::http::{HeaderMap, StatusCode};

use crate::{FieldError, Problem};

/// The request's `Idempotency-Key`, if it has one: 1 to 255 visible ASCII characters (400
/// naming the header otherwise).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, Problem> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .filter(|key| {
            !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic())
        })
        .map(|key| Some(key.to_owned()))
        .ok_or_else(|| bad_idempotency_key("1 to 255 visible ASCII characters"))
}

/// 400: the `Idempotency-Key` header is missing or not one; `message` says what it must be.
pub fn bad_idempotency_key(message: &str) -> Problem {
    let mut problem = Problem::new(
        StatusCode::BAD_REQUEST,
        "idempotency-key",
        format!("Idempotency-Key: {message}"),
    );
    problem.errors = vec![FieldError::new("Idempotency-Key", message)];
    problem
}
