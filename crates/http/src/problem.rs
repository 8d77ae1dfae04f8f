use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

pub use msa_kernel::FieldError;

/// An RFC 9457 problem: the only error shape any endpoint answers with.
/// Deserializable too: a service passes on the problems of the services it calls.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:msa:problem:<kind>`, e.g. `urn:msa:problem:validation`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For 422: every invalid field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    #[serde(skip)]
    retry_after: Option<u64>,
}

impl Problem {
    /// `kind` is a short slug; it becomes the problem type `urn:msa:problem:<kind>`.
    pub fn new(status: StatusCode, kind: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:msa:problem:{kind}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// 422 naming every invalid field.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        let detail = format!("invalid fields: {}", fields.join(", "));
        Self {
            errors,
            ..Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail)
        }
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn conflict(kind: &str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, kind, detail)
    }

    pub fn too_many_requests(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, "too-many-requests", detail)
        }
    }

    pub fn unavailable(detail: impl Into<String>, retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
        }
    }

    /// The process is working on as much as it can take: come back after a second.
    pub fn overloaded(detail: impl Into<String>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "overloaded", detail)
        }
    }

    /// When the client may come back (seconds), if the problem says.
    pub fn retry_after(&self) -> Option<u64> {
        self.retry_after
    }

    /// The same problem, telling the client when to come back (a problem passed on from another
    /// service keeps the `Retry-After` that service sent).
    pub fn with_retry_after(self, seconds: Option<u64>) -> Self {
        Self {
            retry_after: seconds.map(|s| s.max(1)).or(self.retry_after),
            ..self
        }
    }

    /// A storage failure: 503 with Retry-After while the database is away (full, unreachable,
    /// restarting: the same request may succeed shortly), else a failure of ours.
    pub fn storage(error: &msa_kernel::StoreError) -> Self {
        if error.is_unavailable() {
            tracing::warn!(%error, "storage unavailable; the request is refused");
            Self::unavailable("storage is unavailable right now; try again shortly", 2)
        } else {
            Self::internal(error)
        }
    }

    /// A failure of ours: logged in full, answered without internals.
    pub fn internal(error: &dyn std::fmt::Display) -> Self {
        let reference = uuid::Uuid::now_v7();
        tracing::error!(%reference, %error, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("something went wrong on our side; reference {reference}"),
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
