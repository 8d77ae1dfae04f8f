//! What the notes use cases answer.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A note as its author sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct NoteView {
    pub id: Uuid,
    pub text: String,
    /// When it was written (RFC 3339).
    pub written_at: String,
    /// When its text last changed, if it did.
    pub edited_at: Option<String>,
}
