//! The notes context's use cases. They take the caller's user id (from the access token) and
//! domain values, so HTTP is one way in among others; they read through [`ports`].

pub mod ports;
pub mod views;

use std::sync::Arc;

use chrono::Utc;
use msa_kernel::{CommandError, EventMetadata, EventStore, FieldError, Repository, StoreError};
use uuid::Uuid;

use crate::domain::{Note, NoteCommand, NoteError, NoteText};
use ports::NoteList;
use views::NoteView;

/// Why a use case did not happen.
#[derive(Debug, thiserror::Error)]
pub enum NotesError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error(transparent)]
    Note(#[from] NoteError),
    #[error("the note is busy; try again")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CommandError<NoteError>> for NotesError {
    fn from(error: CommandError<NoteError>) -> Self {
        match error {
            CommandError::Domain(refusal) => NotesError::Note(refusal),
            CommandError::Store(error) => NotesError::Store(error),
            CommandError::Conflict(_) | CommandError::IdempotencyKeyReused { .. } => {
                NotesError::Busy
            }
        }
    }
}

/// The most notes a page holds.
pub const MAX_PAGE: u32 = 100;

pub struct NotesService {
    notes: Repository<Note>,
    list: Arc<dyn NoteList>,
}

fn metadata(actor: Uuid) -> EventMetadata {
    EventMetadata::current(Some(actor.to_string()))
}

impl NotesService {
    pub fn new(events: Arc<dyn EventStore>, list: Arc<dyn NoteList>) -> Self {
        Self {
            notes: Repository::new(events),
            list,
        }
    }

    /// Writes a new note for `author`.
    pub async fn write(&self, author: Uuid, text: NoteText) -> Result<NoteView, NotesError> {
        let (id, at) = (Uuid::now_v7(), Utc::now());
        let view = NoteView {
            id,
            text: text.as_str().to_owned(),
            written_at: at.to_rfc3339(),
            edited_at: None,
        };
        let command = NoteCommand::Write { author, text, at };
        self.notes
            .execute(
                &Repository::<Note>::stream_id(id),
                &command,
                &metadata(author),
            )
            .await?;
        Ok(view)
    }

    /// Gives one of the caller's notes a new text.
    pub async fn edit(&self, caller: Uuid, id: Uuid, text: NoteText) -> Result<(), NotesError> {
        let command = NoteCommand::Edit {
            by: caller,
            text,
            at: Utc::now(),
        };
        self.notes
            .execute(
                &Repository::<Note>::stream_id(id),
                &command,
                &metadata(caller),
            )
            .await?;
        Ok(())
    }

    /// Deletes one of the caller's notes.
    pub async fn delete(&self, caller: Uuid, id: Uuid) -> Result<(), NotesError> {
        let command = NoteCommand::Delete {
            by: caller,
            at: Utc::now(),
        };
        self.notes
            .execute(
                &Repository::<Note>::stream_id(id),
                &command,
                &metadata(caller),
            )
            .await?;
        Ok(())
    }

    /// A page of the caller's notes, newest first, before the note `before`; at most `limit`
    /// (1 to [`MAX_PAGE`]). The list is the read model's: a note written a moment ago may not
    /// be on it yet.
    pub async fn notes_of(
        &self,
        caller: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<NoteView>, NotesError> {
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(NotesError::Invalid(vec![FieldError::new(
                "limit",
                format!("a whole number from 1 to {MAX_PAGE}"),
            )]));
        }
        Ok(self.list.notes_of(caller, before, limit).await?)
    }
}
