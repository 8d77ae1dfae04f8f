//! Invalid input, named field by field: what a use case refuses before it decides anything. The
//! HTTP adapters answer it as a 422 problem listing every field; the application never sees HTTP.

use serde::{Deserialize, Serialize};

/// A value that did not parse, with why: a domain type's `parse` answers it, and the HTTP layer
/// adds the field's name (`msa_http::Fields`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// One invalid field of a request, named as the client sent it (`nickname`, `items[2].amount`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
