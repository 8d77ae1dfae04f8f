use serde::{Deserialize, Serialize};

use super::Invalid;

/// A reaction: one emoji (with its modifiers and joiners), or a shortcode like `:tada:`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(transparent)]
pub struct Emoji(String);

impl Emoji {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let invalid = || Invalid("one emoji (like 👍) or a shortcode (like :tada:)".into());
        if let Some(code) = input
            .strip_prefix(':')
            .and_then(|rest| rest.strip_suffix(':'))
        {
            let fine = (1..=32).contains(&code.len())
                && code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_+-".contains(&b));
            return if fine {
                Ok(Self(input.to_owned()))
            } else {
                Err(invalid())
            };
        }
        let chars: Vec<char> = input.chars().collect();
        // Pictographs, flags and keycaps are outside ASCII; joiners, variation selectors and
        // skin tones glue them together. Anything else (letters, spaces, controls) is not one.
        let glue = |c: char| {
            matches!(
                c,
                '\u{200D}' | '\u{FE0E}' | '\u{FE0F}' | '\u{20E3}' | '\u{1F3FB}'..='\u{1F3FF}'
            )
        };
        let pictograph = |c: char| matches!(c, '\u{2190}'..='\u{2BFF}' | '\u{1F000}'..='\u{1FAFF}' | '\u{E0020}'..='\u{E007F}' | '\u{3030}' | '\u{303D}' | '\u{3297}' | '\u{3299}' | '\u{00A9}' | '\u{00AE}');
        let fine = !chars.is_empty()
            && chars.len() <= 16
            && pictograph(chars[0])
            && chars.iter().all(|c| pictograph(*c) || glue(*c));
        if fine {
            Ok(Self(input.to_owned()))
        } else {
            Err(invalid())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Emoji;

    #[test]
    fn emoji_and_shortcodes_pass_words_do_not() {
        for good in ["👍", "👍🏽", "👩‍💻", "❤️", "🇰🇷", ":tada:", ":+1:"] {
            assert!(Emoji::parse(good).is_ok(), "{good}");
        }
        for bad in ["", "a", "thumbs", "👍 ", ":Tada:", "::", ":a b:", "👍a"] {
            assert!(Emoji::parse(bad).is_err(), "{bad:?}");
        }
    }
}
