use serde::{Deserialize, Serialize};

use super::Invalid;

/// What a message says: 1 to 4,000 characters, not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct MessageBody(String);

/// A code point that shows nothing on its own: a default-ignorable one (UTS 39: zero-width space
/// and joiners, fillers, variation selectors, bidirectional marks), a combining mark (it only
/// decorates the character before it), or a blank that is not whitespace (the braille blank,
/// the Hangul fillers).
pub fn invisible(c: char) -> bool {
    use unicode_security::general_security_profile::IdentifierType;
    use unicode_security::GeneralSecurityProfile;
    c.identifier_type() == Some(IdentifierType::Default_Ignorable)
        || unicode_normalization::char::is_combining_mark(c)
        || matches!(
            c,
            '\u{2800}' | '\u{3164}' | '\u{115F}' | '\u{1160}' | '\u{FFA0}'
        )
}

/// An override, embedding or isolate: it reorders the text after it.
pub fn reorders(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Whether `text` shows anything: some character neither whitespace nor [`invisible`].
pub fn shows_something(text: &str) -> bool {
    text.chars().any(|c| !c.is_whitespace() && !invisible(c))
}

pub const MAX_BODY_CHARS: usize = 4_000;

impl MessageBody {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        // Zero-width spaces, joiners and other default-ignorable characters show nothing: a
        // body of only those (and whitespace) is empty.
        if !shows_something(input) {
            return Err(Invalid(
                "must not be empty (or only invisible characters)".into(),
            ));
        }
        if input.chars().count() > MAX_BODY_CHARS {
            return Err(Invalid(format!("at most {MAX_BODY_CHARS} characters")));
        }
        if input
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            return Err(Invalid("must not contain control characters".into()));
        }
        // Overrides, embeddings and isolates reorder what follows them (a message can show
        // other text than it says); the marks (LRM, RLM, ALM) stay allowed for mixed-direction
        // text.
        if input.chars().any(reorders) {
            return Err(Invalid(
                "must not contain bidirectional override or isolate characters".into(),
            ));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::MessageBody;

    #[test]
    fn a_body_of_only_invisible_characters_is_empty() {
        for empty in [
            "",
            "  \n",
            "\u{200B}\u{200B}",
            "\u{200D} \u{FEFF}",
            "\u{2060}\u{3164}",
        ] {
            assert!(MessageBody::parse(empty).is_err(), "{empty:?}");
        }
        assert!(MessageBody::parse("hi\u{200B}").is_ok());
        assert!(MessageBody::parse("👩\u{200D}💻").is_ok());
        assert!(MessageBody::parse("שלום \u{200F}ok").is_ok());
        assert!(MessageBody::parse("abc\u{202E}fdp.exe").is_err());
        // Blanks that are not whitespace, and marks with nothing to mark, show nothing.
        for blank in [
            "\u{2800}\u{2800}",
            "\u{0301}\u{0301}",
            "\u{3164}",
            " \u{200B} ",
        ] {
            assert!(MessageBody::parse(blank).is_err(), "{blank:?}");
        }
        assert!(
            MessageBody::parse("e\u{0301}").is_ok(),
            "a mark on a letter is text"
        );
    }
}
