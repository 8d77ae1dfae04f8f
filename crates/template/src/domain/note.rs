//! The `Note` aggregate: a user's note, written once, edited by its author, deleted (its text
//! leaves the read model; the events keep it: see the crate's notes on personal data). One
//! stream per note (`notes.note-<id>`); the author is in the first event, and every later
//! command says who asks, so `decide` refuses anyone else. Deleting twice is one deletion, so a
//! client may retry a delete whose answer it lost.

use chrono::{DateTime, Utc};
use msa_kernel::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::NoteText;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", content = "data")]
pub enum NoteEvent {
    /// A note was written.
    NoteWritten {
        author: Uuid,
        text: NoteText,
        at: DateTime<Utc>,
    },
    /// Its author gave it a new text.
    NoteEdited { text: NoteText, at: DateTime<Utc> },
    /// Its author deleted it: the text is gone from the read model.
    NoteDeleted { at: DateTime<Utc> },
}

impl DomainEvent for NoteEvent {
    const CONTEXT: &'static str = "notes";
}

/// What may be asked of a note. Times come in the command (the application's clock).
#[derive(Debug, Clone, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum NoteCommand {
    Write {
        author: Uuid,
        text: NoteText,
        at: DateTime<Utc>,
    },
    Edit {
        by: Uuid,
        text: NoteText,
        at: DateTime<Utc>,
    },
    Delete {
        by: Uuid,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("no such note")]
    NotFound,
    #[error("this note exists already")]
    AlreadyWritten,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    pub author: Option<Uuid>,
    pub text: Option<NoteText>,
    pub deleted: bool,
}

impl Note {
    /// Whether `user_id` may see and change it: another user's note does not exist for them.
    fn is_for(&self, user_id: Uuid) -> bool {
        self.author == Some(user_id) && !self.deleted
    }
}

impl Aggregate for Note {
    const KIND: &'static str = "notes.note";

    type Command = NoteCommand;
    type Event = NoteEvent;
    type Error = NoteError;

    fn apply(&mut self, event: &NoteEvent) {
        match event {
            NoteEvent::NoteWritten { author, text, .. } => {
                self.author = Some(*author);
                self.text = Some(text.clone());
            }
            NoteEvent::NoteEdited { text, .. } => self.text = Some(text.clone()),
            NoteEvent::NoteDeleted { .. } => {
                self.deleted = true;
                self.text = None;
            }
        }
    }

    fn command_name(command: &NoteCommand) -> &'static str {
        command.into()
    }

    fn decide(&self, command: &NoteCommand) -> Result<Vec<NoteEvent>, NoteError> {
        match command {
            NoteCommand::Write { author, text, at } => {
                if self.author.is_some() {
                    return Err(NoteError::AlreadyWritten);
                }
                Ok(vec![NoteEvent::NoteWritten {
                    author: *author,
                    text: text.clone(),
                    at: *at,
                }])
            }
            NoteCommand::Edit { by, text, at } => {
                if !self.is_for(*by) {
                    return Err(NoteError::NotFound);
                }
                if self.text.as_ref() == Some(text) {
                    return Ok(Vec::new());
                }
                Ok(vec![NoteEvent::NoteEdited {
                    text: text.clone(),
                    at: *at,
                }])
            }
            NoteCommand::Delete { by, at } => {
                if self.deleted && self.author == Some(*by) {
                    return Ok(Vec::new());
                }
                if !self.is_for(*by) {
                    return Err(NoteError::NotFound);
                }
                Ok(vec![NoteEvent::NoteDeleted { at: *at }])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use msa_kernel::testing::given;

    use super::*;

    fn text(raw: &str) -> NoteText {
        NoteText::parse(raw).unwrap()
    }

    fn written(author: Uuid) -> NoteEvent {
        NoteEvent::NoteWritten {
            author,
            text: text("first"),
            at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_new_note_is_written_once() {
        let author = Uuid::now_v7();
        let at = DateTime::UNIX_EPOCH;
        given::<Note>([])
            .when(NoteCommand::Write {
                author,
                text: text("first"),
                at,
            })
            .then([written(author)]);
        given::<Note>([written(author)])
            .when(NoteCommand::Write {
                author,
                text: text("again"),
                at,
            })
            .then_error(|e| *e == NoteError::AlreadyWritten);
    }

    #[test]
    fn only_the_author_edits_and_the_same_text_changes_nothing() {
        let (author, other) = (Uuid::now_v7(), Uuid::now_v7());
        let at = DateTime::UNIX_EPOCH;
        given::<Note>([written(author)])
            .when(NoteCommand::Edit {
                by: author,
                text: text("second"),
                at,
            })
            .then([NoteEvent::NoteEdited {
                text: text("second"),
                at,
            }]);
        given::<Note>([written(author)])
            .when(NoteCommand::Edit {
                by: author,
                text: text("first"),
                at,
            })
            .then([]);
        given::<Note>([written(author)])
            .when(NoteCommand::Edit {
                by: other,
                text: text("mine now"),
                at,
            })
            .then_error(|e| *e == NoteError::NotFound);
    }

    #[test]
    fn a_deleted_note_is_gone_and_deleting_again_changes_nothing() {
        let (author, other) = (Uuid::now_v7(), Uuid::now_v7());
        let at = DateTime::UNIX_EPOCH;
        given::<Note>([written(author)])
            .when(NoteCommand::Delete { by: author, at })
            .then([NoteEvent::NoteDeleted { at }]);
        given::<Note>([written(author), NoteEvent::NoteDeleted { at }])
            .when(NoteCommand::Delete { by: author, at })
            .then([]);
        given::<Note>([written(author), NoteEvent::NoteDeleted { at }])
            .when(NoteCommand::Delete { by: other, at })
            .then_error(|e| *e == NoteError::NotFound);
        given::<Note>([written(author), NoteEvent::NoteDeleted { at }])
            .when(NoteCommand::Edit {
                by: author,
                text: text("back"),
                at,
            })
            .then_error(|e| *e == NoteError::NotFound);
        given::<Note>([])
            .when(NoteCommand::Delete { by: author, at })
            .then_error(|e| *e == NoteError::NotFound);
    }
}
