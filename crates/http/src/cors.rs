//! The one CORS policy of the API, the same in the gateway and in every `msa serve` process:
//! which origins may call it from a browser (`--cors-origins`), with the headers the API reads
//! and the ones a client may read back.

use std::time::Duration;

use axum::http::{header, HeaderValue};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The policy for `origins` (`*` for any); an error names a value that is not an origin.
pub fn policy(origins: &[String]) -> Result<CorsLayer, String> {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let list = origins
            .iter()
            .map(|o| HeaderValue::from_str(o).map_err(|_| format!("not an origin: {o}")))
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(list)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow)
        .allow_methods(tower_http::cors::Any)
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("idempotency-key"),
            header::HeaderName::from_static("x-request-id"),
            header::HeaderName::from_static("traceparent"),
        ])
        .expose_headers([
            header::LOCATION,
            header::RETRY_AFTER,
            header::HeaderName::from_static("x-request-id"),
            header::HeaderName::from_static("x-correlation-id"),
        ])
        .max_age(Duration::from_secs(600)))
}
