//! Money: an amount and its currency as one value, so two amounts are only ever compared with
//! their currencies.

use std::fmt;

/// An amount in a currency's minor units (KRW has none: 1000 is 1,000 won), with its ISO 4217
/// code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub amount: i64,
    pub currency: String,
}

impl Money {
    pub fn new(amount: i64, currency: impl Into<String>) -> Self {
        Self {
            amount,
            currency: currency.into(),
        }
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

/// What an approved payment comes to: what was charged, and how much of it (in the same
/// currency) was refunded. Reconciliation compares ours with the provider's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub charged: Money,
    pub refunded: i64,
}

impl fmt::Display for Settlement {
    /// The words recorded in a `MismatchFound` event (kept as they were: a mismatch recorded
    /// before is recognised by them).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "approved {}, refunded {}", self.charged, self.refunded)
    }
}

#[cfg(test)]
mod tests {
    use super::{Money, Settlement};

    #[test]
    fn amounts_in_other_currencies_differ() {
        assert_ne!(Money::new(1000, "KRW"), Money::new(1000, "USD"));
        let settled = |currency| Settlement {
            charged: Money::new(1000, currency),
            refunded: 0,
        };
        assert_ne!(settled("KRW"), settled("USD"));
        assert_eq!(settled("KRW").to_string(), "approved 1000 KRW, refunded 0");
    }
}
