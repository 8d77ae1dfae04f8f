//! The keys a client names money movements by: the provider's key of a payment, and the key of
//! one message's spend. Parsed where they come in, so a use case never sees an unchecked one.
//! (What was recorded stays text in the events: a fact is read back as it was written.)

use std::fmt;

use msa_kernel::invalid::Invalid;

/// The longest key either names (the provider's keys are far shorter).
pub const MAX_KEY_BYTES: usize = 200;

fn checked(input: &str) -> Result<String, Invalid> {
    if input.trim().is_empty() || input.len() > MAX_KEY_BYTES || input.chars().any(char::is_control)
    {
        return Err(Invalid(format!(
            "1 to {MAX_KEY_BYTES} characters, not blank, no control characters"
        )));
    }
    Ok(input.to_owned())
}

/// The provider's key for a payment (Toss's `paymentKey`), as its checkout gave it to the buyer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PaymentKey(String);

impl PaymentKey {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        checked(input).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Names one spend of a message credit: a retry with the same key takes nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpendKey(String);

impl SpendKey {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        checked(input).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SpendKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{PaymentKey, SpendKey, MAX_KEY_BYTES};

    #[test]
    fn a_key_is_printable_not_blank_and_bounded() {
        for good in [
            "tgen_20240101",
            "message:1f0e…:send-1",
            &"k".repeat(MAX_KEY_BYTES),
        ] {
            assert!(PaymentKey::parse(good).is_ok(), "{good:?}");
            assert!(SpendKey::parse(good).is_ok(), "{good:?}");
        }
        let too_long = "k".repeat(MAX_KEY_BYTES + 1);
        for bad in ["", "   ", "a\nb", "a\u{0}b", too_long.as_str()] {
            assert!(PaymentKey::parse(bad).is_err(), "{bad:?}");
            assert!(SpendKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
