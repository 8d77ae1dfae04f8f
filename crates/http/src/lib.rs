//! The HTTP conventions every context shares, so a client cannot tell which team wrote which
//! endpoint:
//!
//! - [`Problem`]: RFC 9457 `application/problem+json` errors, with `errors: [{field, message}]` for
//!   validation; 401 carries `WWW-Authenticate: Bearer`, 429 and 503 carry `Retry-After`;
//! - [`StrictJson`]: a JSON body extractor that answers 400 for unparsable JSON and 422 naming the
//!   field for wrong types, missing or unknown fields;
//! - [`auth`]: access tokens (EdDSA JWTs) checked against the user service's public keys, and the
//!   [`auth::Caller`] extractor; [`RemoteKeys`], those keys fetched from the user service by the
//!   processes that do not issue tokens (the other services, the gateway).
//! - [`trail`]: the operators' causal trail of a request, a service's part and the whole;
//! - [`api_reference`]: Swagger UI at `/docs` over the process's `/openapi.json`; [`asyncapi`]: the
//!   helpers that assemble `/asyncapi.json` (the stream's frames, the bus's events).

pub mod admission;
pub mod asyncapi;
pub mod auth;
pub mod client_address;
pub mod cors;
mod fields;
mod idempotency;
mod json;
mod openapi;
mod page;
mod problem;
pub mod rate_limits;
mod remote_keys;
pub mod revocations;
pub mod server;
pub mod service_identity;
pub mod telemetry;
pub mod trail;

pub use client_address::{ClientAddress, TrustedProxies};
pub use fields::Fields;
pub use idempotency::{bad_idempotency_key, idempotency_key};
pub use json::{StrictJson, StrictQuery};
pub use openapi::{api_reference, BearerAuth};
pub use page::{
    next_cursor, page_cursor, page_limit, PageQuery, RecordsQuery, MAX_RECORDS, RECORDS_PAGE,
};
pub use problem::{FieldError, Problem};
pub use remote_keys::RemoteKeys;
pub use revocations::{RemoteRevocations, Revocation, RevocationList, Revocations};

/// The read buffer of a WebSocket connection, for both ends (axum's upgrade, tokio-tungstenite's
/// client). tungstenite zeroes the free part of its buffer, up to this size, before every read
/// attempt: at its default of 128 KiB that memset was a fifth of the single server's CPU under
/// chat load. What clients send on the stream (auth, typing) is small; larger frames still arrive,
/// over several reads.
pub const WEBSOCKET_READ_BUFFER: usize = 4 * 1024;

/// 201 when a create made something, 200 when it found what an earlier request made (a retry, or
/// the one direct room of a pair).
pub fn created_or_ok(created: bool) -> axum::http::StatusCode {
    if created {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::OK
    }
}
