//! The notes context's use cases. They take the caller's user id (from the access token) and
//! domain values, so HTTP is one way in among others; they read through [`ports`].

pub mod ports;
pub mod views;

use std::sync::Arc;

use chrono::Utc;
use msa_kernel::repository::IdempotencyKey;
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
    #[error("Idempotency-Key `{0}` was used for another note")]
    IdempotencyKeyReused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<CommandError<NoteError>> for NotesError {
    fn from(error: CommandError<NoteError>) -> Self {
        match error {
            CommandError::Domain(refusal) => NotesError::Note(refusal),
            CommandError::Store(error) => NotesError::Store(error),
            CommandError::Conflict(_) => NotesError::Busy,
            CommandError::IdempotencyKeyReused { key } => NotesError::IdempotencyKeyReused(key),
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

    /// Writes a new note for `author`; the note and whether this call wrote it. With `key` (the
    /// client's name for the request) a retry answers the first call's note and writes nothing;
    /// the same key with another text is refused.
    pub async fn write(
        &self,
        author: Uuid,
        text: NoteText,
        key: Option<String>,
    ) -> Result<(NoteView, bool), NotesError> {
        let (id, at) = (Uuid::now_v7(), Utc::now());
        let view = NoteView {
            id,
            text: text.as_str().to_owned(),
            written_at: at.to_rfc3339(),
            edited_at: None,
        };
        let stream = Repository::<Note>::stream_id(id);
        let Some(key) = key else {
            let command = NoteCommand::Write { author, text, at };
            self.notes
                .execute(&stream, &command, &metadata(author))
                .await?;
            return Ok((view, true));
        };
        let key = IdempotencyKey {
            scope: format!("notes.write:{author}"),
            key,
            // The text itself names the request's body (at most 2,000 characters).
            fingerprint: text.as_str().to_owned(),
        };
        let command = NoteCommand::Write { author, text, at };
        let outcome = self
            .notes
            .execute_idempotent(&stream, &command, &metadata(author), key, |_, _| {
                serde_json::to_value(&view).unwrap_or_default()
            })
            .await?;
        let view = serde_json::from_value(outcome.result).map_err(StoreError::backend)?;
        Ok((view, !outcome.replayed))
    }

    /// Gives one of the caller's notes a new text.
    pub async fn edit(&self, caller: Uuid, id: Uuid, text: NoteText) -> Result<(), NotesError> {
        let at = Utc::now();
        self.on_note(
            caller,
            id,
            NoteCommand::Edit {
                by: caller,
                text,
                at,
            },
        )
        .await
    }

    /// Deletes one of the caller's notes.
    pub async fn delete(&self, caller: Uuid, id: Uuid) -> Result<(), NotesError> {
        let at = Utc::now();
        self.on_note(caller, id, NoteCommand::Delete { by: caller, at })
            .await
    }

    /// Runs `command` on note `id` for `caller`.
    async fn on_note(
        &self,
        caller: Uuid,
        id: Uuid,
        command: NoteCommand,
    ) -> Result<(), NotesError> {
        let stream = Repository::<Note>::stream_id(id);
        self.notes
            .execute(&stream, &command, &metadata(caller))
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
