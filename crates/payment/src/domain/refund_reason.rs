//! Why a refund is asked for, as the refund's record and the provider's cancellation carry it.

use std::fmt;

use msa_kernel::invalid::Invalid;

pub const MAX_REASON_CHARS: usize = 200;

/// 1 to 200 characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundReason(String);

impl RefundReason {
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let reason = input.trim();
        if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
            return Err(Invalid(format!("1 to {MAX_REASON_CHARS} characters")));
        }
        Ok(Self(reason.to_owned()))
    }

    /// The reason of a refund the provider made on its own (a cancellation in its dashboard, a
    /// chargeback) that we record after it.
    pub fn canceled_at_provider() -> Self {
        Self("canceled at the payment provider".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RefundReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::{RefundReason, MAX_REASON_CHARS};

    #[test]
    fn a_reason_is_trimmed_and_1_to_200_characters() {
        assert_eq!(
            RefundReason::parse("  changed my mind ").unwrap().as_str(),
            "changed my mind"
        );
        assert!(RefundReason::parse(&"환".repeat(MAX_REASON_CHARS)).is_ok());
        for bad in ["", "   ", &"환".repeat(MAX_REASON_CHARS + 1)] {
            assert!(RefundReason::parse(bad).is_err(), "{bad:?}");
        }
    }
}
