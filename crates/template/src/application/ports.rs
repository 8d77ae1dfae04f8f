//! What the notes use cases read, as the application names it; `crate::adapters::note_list`
//! implements it over the read model.

use async_trait::async_trait;
use msa_kernel::StoreError;
use uuid::Uuid;

use super::views::NoteView;

/// Each user's notes, as the `notes.list` projection keeps them.
#[async_trait]
pub trait NoteList: Send + Sync {
    /// `author`'s notes, newest first, before the note `before`, at most `limit`.
    async fn notes_of(
        &self,
        author: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<NoteView>, StoreError>;
}
