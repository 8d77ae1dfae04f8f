//! A note's text, parsed once at the edge: what the rest of the code holds is always valid.

use serde::{Deserialize, Serialize};

/// 1 to [`NoteText::MAX_CHARS`] characters, not only whitespace, no control characters but
/// line breaks and tabs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct NoteText(String);

impl NoteText {
    pub const MAX_CHARS: usize = 2_000;

    /// The text, or why it is not one (for the `text` field).
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let rule = "1 to 2,000 characters, not only spaces, no control characters";
        let length = raw.chars().count();
        let controls = raw
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\t'));
        if length == 0 || length > Self::MAX_CHARS || controls || raw.trim().is_empty() {
            return Err(rule);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::NoteText;

    #[test]
    fn a_note_holds_text_within_its_bounds() {
        assert_eq!(
            NoteText::parse("milk, eggs").unwrap().as_str(),
            "milk, eggs"
        );
        assert!(NoteText::parse("line one\nline two\tend").is_ok());
        assert!(NoteText::parse(&"가".repeat(NoteText::MAX_CHARS)).is_ok());
    }

    #[test]
    fn empty_blank_oversized_or_control_text_is_refused() {
        assert!(NoteText::parse("").is_err());
        assert!(NoteText::parse("  \n ").is_err());
        assert!(NoteText::parse(&"a".repeat(NoteText::MAX_CHARS + 1)).is_err());
        assert!(NoteText::parse("bell\u{7}").is_err());
    }
}
