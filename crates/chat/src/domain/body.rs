use serde::{Deserialize, Serialize};

use super::Invalid;

/// What a message says: 1 to 4,000 characters, not only whitespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageBody(String);

pub const MAX_BODY_CHARS: usize = 4_000;

impl MessageBody {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        if input.trim().is_empty() {
            return Err(Invalid("must not be empty".into()));
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
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
