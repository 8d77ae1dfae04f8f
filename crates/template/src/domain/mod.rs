//! The notes context's domain: the `Note` aggregate and its value objects.

pub mod note;
pub mod note_text;

pub use note::{Note, NoteCommand, NoteError, NoteEvent};
pub use note_text::NoteText;
