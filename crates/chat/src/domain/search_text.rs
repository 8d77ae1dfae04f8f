//! A search's text, parsed once: the words to look for, each inside the bodies.

use unicode_normalization::UnicodeNormalization;

use super::body::shows_something;

/// A search's text: its words (split at whitespace), each looked for inside the bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchText {
    words: Vec<String>,
}

impl SearchText {
    pub const MAX_CHARS: usize = 200;
    pub const MAX_WORDS: usize = 16;

    /// 1 to 200 characters (after NFC), no control characters, at most 16 words that show
    /// something. The error says what is wrong, for the `q` field.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let rule = "1 to 200 characters of words to find (at most 16 words), no control characters";
        // Bounded before normalizing: NFC of a long text is work for nothing.
        if raw.chars().count() > Self::MAX_CHARS * 4 {
            return Err(rule.into());
        }
        let text: String = raw.nfc().collect();
        if text.chars().count() > Self::MAX_CHARS || text.chars().any(char::is_control) {
            return Err(rule.into());
        }
        let mut words: Vec<String> = Vec::new();
        for word in text.split_whitespace().filter(|w| shows_something(w)) {
            if !words.iter().any(|w| w == word) {
                words.push(word.to_owned());
            }
        }
        if words.is_empty() || words.len() > Self::MAX_WORDS {
            return Err(rule.into());
        }
        Ok(Self { words })
    }

    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// Words an n-gram (trigram) index can find (three characters or more).
    pub fn indexed_words(&self) -> impl Iterator<Item = &str> {
        self.words
            .iter()
            .map(String::as_str)
            .filter(|w| w.chars().count() >= 3)
    }

    pub fn short_words(&self) -> impl Iterator<Item = &str> {
        self.words
            .iter()
            .map(String::as_str)
            .filter(|w| w.chars().count() < 3)
    }
}
