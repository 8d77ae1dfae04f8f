use serde::{Deserialize, Serialize};

use super::Invalid;

/// An email address as the user typed it (trimmed). Two emails are the same account when their
/// [`normalized`](Email::normalized) forms are equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain.tld`: no spaces or control characters, one `@`, a dot in the domain,
    /// at most 254 characters (RFC 5321's path limit).
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let email = input.trim();
        let invalid = |why: &str| Err(Invalid(format!("not an email address: {why}")));
        if email.is_empty() {
            return invalid("it is empty");
        }
        if email.chars().count() > 254 {
            return invalid("longer than 254 characters");
        }
        if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return invalid("it contains spaces or control characters");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return invalid("no @");
        };
        if local.is_empty() || domain.contains('@') {
            return invalid("it needs exactly one @ with a name before it");
        }
        let labels: Vec<_> = domain.split('.').collect();
        if labels.len() < 2 || labels.iter().any(|l| l.is_empty()) {
            return invalid("the domain needs a dot, like example.com");
        }
        Ok(Self(email.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form uniqueness is decided on: lower case.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn accepts_ordinary_addresses_and_normalizes_case() {
        let email = Email::parse("  Ada.Lovelace@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "Ada.Lovelace@Example.COM");
        assert_eq!(email.normalized(), "ada.lovelace@example.com");
    }

    #[test]
    fn refuses_what_cannot_be_an_address() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.com",
            "ada@example..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }
}
