use serde::{Deserialize, Serialize};

use super::Invalid;

/// A few words a user says about themselves: at most 500 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Bio(String);

impl Bio {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        if input.chars().count() > 500 {
            return Err(Invalid("at most 500 characters".into()));
        }
        if input.chars().any(|c| c.is_control() && c != '\n') {
            return Err(Invalid("must not contain control characters".into()));
        }
        Ok(Self(input.trim().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Where a user's picture is: an `https://` URL of at most 2048 characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct AvatarUrl(String);

impl AvatarUrl {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let url = input.trim();
        if url.len() > 2048 {
            return Err(Invalid("at most 2048 characters".into()));
        }
        let rest = url
            .strip_prefix("https://")
            .ok_or_else(|| Invalid("must be an https:// URL".into()))?;
        if rest.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Invalid("must be an https:// URL without spaces".into()));
        }
        Ok(Self(url.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
