use serde::{Deserialize, Serialize};

use super::Invalid;

/// What a message says: 1 to 4,000 characters, not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct MessageBody(String);

/// A default-ignorable code point (UTS 39: zero-width space and joiners, fillers, variation
/// selectors, bidirectional marks): nothing shows for it.
fn invisible(c: char) -> bool {
    use unicode_security::general_security_profile::IdentifierType;
    use unicode_security::GeneralSecurityProfile;
    c.identifier_type() == Some(IdentifierType::Default_Ignorable)
}

pub const MAX_BODY_CHARS: usize = 4_000;

impl MessageBody {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        // Zero-width spaces, joiners and other default-ignorable characters show nothing: a
        // body of only those (and whitespace) is empty.
        if input.chars().all(|c| c.is_whitespace() || invisible(c)) {
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
        if input
            .chars()
            .any(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'))
        {
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
    }
}
