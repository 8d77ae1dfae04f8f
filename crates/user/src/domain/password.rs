use super::Invalid;

/// A password as typed, checked against the policy. Never stored, logged or put in an event:
/// only its argon2id hash is.
pub struct Password(String);

pub const MIN_PASSWORD_CHARS: usize = 10;
/// Bounds the hashing work one request can cause.
pub const MAX_PASSWORD_CHARS: usize = 256;

impl Password {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let length = input.chars().count();
        if length < MIN_PASSWORD_CHARS {
            return Err(Invalid(format!("at least {MIN_PASSWORD_CHARS} characters")));
        }
        if length > MAX_PASSWORD_CHARS {
            return Err(Invalid(format!("at most {MAX_PASSWORD_CHARS} characters")));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}
