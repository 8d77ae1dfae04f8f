use super::body::{reorders, shows_something};
use super::Invalid;

/// A group's name: 1 to 100 characters that show something, trimmed, with no control or
/// reordering characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomName(String);

pub const MAX_ROOM_NAME_CHARS: usize = 100;

impl RoomName {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let name = input.trim();
        if !shows_something(name)
            || name.chars().count() > MAX_ROOM_NAME_CHARS
            || name.chars().any(|c| c.is_control() || reorders(c))
        {
            return Err(Invalid(format!(
                "1 to {MAX_ROOM_NAME_CHARS} visible characters"
            )));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::RoomName;

    #[test]
    fn a_name_is_trimmed_and_must_show_something() {
        assert_eq!(RoomName::parse("  crew \n").unwrap().as_str(), "crew");
        for refused in ["", "   ", "\u{200B}", "a\u{0007}b", "a\u{202E}b"] {
            assert!(RoomName::parse(refused).is_err(), "{refused:?}");
        }
        assert!(RoomName::parse(&"가".repeat(100)).is_ok());
        assert!(RoomName::parse(&"가".repeat(101)).is_err());
    }
}
