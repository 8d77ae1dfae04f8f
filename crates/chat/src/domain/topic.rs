use super::Invalid;

/// A group's topic: up to 500 characters, trimmed, no control characters but new lines. A blank
/// topic is no topic (`parse` answers `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic(String);

pub const MAX_TOPIC_CHARS: usize = 500;

impl Topic {
    pub fn parse(input: &str) -> Result<Option<Self>, Invalid> {
        let topic = input.trim();
        if topic.chars().count() > MAX_TOPIC_CHARS
            || topic.chars().any(|c| c.is_control() && c != '\n')
        {
            return Err(Invalid(format!(
                "up to {MAX_TOPIC_CHARS} characters, no control characters but new lines"
            )));
        }
        Ok((!topic.is_empty()).then(|| Self(topic.to_owned())))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Topic;

    #[test]
    fn a_blank_topic_is_none_and_controls_are_refused() {
        assert_eq!(Topic::parse("  \n ").unwrap(), None);
        assert_eq!(Topic::parse(" a\nb ").unwrap().unwrap().as_str(), "a\nb");
        assert!(Topic::parse("a\u{0000}").is_err());
        assert!(Topic::parse(&"x".repeat(501)).is_err());
    }
}
