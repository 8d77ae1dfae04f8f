//! The HTTP conventions every context shares, so a client cannot tell which team wrote which
//! endpoint:
//!
//! - [`Problem`]: RFC 9457 `application/problem+json` errors, with `errors: [{field, message}]` for
//!   validation; 401 carries `WWW-Authenticate: Bearer`, 429 and 503 carry `Retry-After`;
//! - [`StrictJson`]: a JSON body extractor that answers 400 for unparsable JSON and 422 naming the
//!   field for wrong types, missing or unknown fields;
//! - [`auth`]: access tokens (EdDSA JWTs) checked against the user service's public keys, and the
//!   [`auth::Caller`] extractor.

pub mod auth;
mod json;
mod openapi;
mod problem;

pub use json::{page_limit, StrictJson, StrictQuery};
pub use openapi::BearerAuth;
pub use problem::{FieldError, Problem};
