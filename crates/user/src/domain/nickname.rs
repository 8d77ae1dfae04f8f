use serde::{Deserialize, Serialize};

use super::Invalid;

/// How a user is shown to others: 1 to 32 characters, no control characters. Unique among users,
/// case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Nickname(String);

pub const MAX_NICKNAME_CHARS: usize = 32;

impl Nickname {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let nickname = input.trim();
        if nickname.is_empty() {
            return Err(Invalid("must not be empty".into()));
        }
        if nickname.chars().count() > MAX_NICKNAME_CHARS {
            return Err(Invalid(format!("at most {MAX_NICKNAME_CHARS} characters")));
        }
        if nickname.chars().any(char::is_control) {
            return Err(Invalid("must not contain control characters".into()));
        }
        Ok(Self(nickname.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness and directory search use: lower case.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::Nickname;

    #[test]
    fn nicknames_are_short_visible_text() {
        assert_eq!(Nickname::parse(" Ada ").unwrap().as_str(), "Ada");
        assert!(Nickname::parse("").is_err());
        assert!(Nickname::parse("   ").is_err());
        assert!(Nickname::parse(&"x".repeat(33)).is_err());
        assert!(Nickname::parse(&"한".repeat(32)).is_ok());
        assert!(Nickname::parse("bell\u{7}").is_err());
    }
}
