//! The payment provider port: what the payment context needs from a provider (Toss Payments,
//! the sandbox). Adapters live in `adapters/`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::{Money, ProviderVerdict, Settlement};

/// A confirmation request: the provider's key for the payment, our order id, the amount (in
/// `currency`'s minor units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub payment_key: String,
    pub order_id: String,
    pub amount: i64,
    pub currency: String,
}

/// A (partial) cancellation, named by `idempotency_key` so a retry never refunds twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancellation {
    pub payment_key: String,
    pub amount: i64,
    pub reason: String,
    pub idempotency_key: String,
}

/// The provider's record of a payment, as a look-up returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderRecord {
    pub verdict: ProviderVerdict,
    /// The amount the provider charged (0 when it charged nothing).
    pub total_amount: i64,
    /// What the provider has refunded of it.
    pub refunded_amount: i64,
    pub approved_at: Option<DateTime<Utc>>,
    /// The order the provider's record is for (our `order_id`), when it says.
    pub order_id: Option<String>,
    /// The currency of its amounts, when it says.
    pub currency: Option<String>,
}

impl ProviderRecord {
    /// A record of nothing: the provider does not know the payment (yet).
    pub fn none() -> Self {
        ProviderRecord {
            verdict: ProviderVerdict::Pending,
            total_amount: 0,
            refunded_amount: 0,
            approved_at: None,
            order_id: None,
            currency: None,
        }
    }

    /// What the provider says the payment comes to, if it approved it; a record that does not
    /// say its currency is taken to be in `ours`.
    pub fn settlement(&self, ours: &str) -> Option<Settlement> {
        match self.verdict {
            ProviderVerdict::Approved { .. } => Some(Settlement {
                charged: Money::new(self.total_amount, self.currency.as_deref().unwrap_or(ours)),
                refunded: self.refunded_amount,
            }),
            _ => None,
        }
    }

    /// How this record differs from the order it should be (`order_id`, `price`), if it does:
    /// a charge of another order, amount or currency never approves ours.
    pub fn difference(&self, order_id: &str, price: &Money) -> Option<String> {
        let (amount, currency) = (price.amount, price.currency.as_str());
        if let Some(theirs) = self
            .order_id
            .as_deref()
            .filter(|theirs| *theirs != order_id)
        {
            return Some(format!("order {theirs}"));
        }
        if let Some(theirs) = self
            .currency
            .as_deref()
            .filter(|theirs| *theirs != currency)
        {
            return Some(format!("currency {theirs}"));
        }
        match &self.verdict {
            ProviderVerdict::Approved { .. } if self.total_amount != amount => {
                Some(format!("approved {}", self.total_amount))
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer in time: the call may or may not have taken effect.
    #[error("the provider did not answer in time")]
    Timeout,
    /// The provider refused the request (a decline, a bad key, too large a cancel...).
    #[error("the provider refused: {code}: {message}")]
    Refused { code: String, message: String },
    /// The provider could not be reached or failed; the call may be retried.
    #[error("the provider is unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait PaymentProvider: Send + Sync {
    /// The provider's name in URLs and events (`sandbox`, `toss`).
    fn name(&self) -> &'static str;

    /// Asks the provider to approve (capture) the payment. `Ok` carries its verdict: approved,
    /// or declined with the provider's code.
    async fn confirm(&self, confirmation: &Confirmation) -> Result<ProviderVerdict, ProviderError>;

    /// Refunds `amount` of an approved payment.
    async fn cancel(&self, cancellation: &Cancellation) -> Result<(), ProviderError>;

    /// The provider's current record of the payment (`Pending` verdict when it has none).
    async fn look_up(&self, payment_key: &str) -> Result<ProviderRecord, ProviderError>;
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::ProviderRecord;
    use crate::domain::{Money, ProviderVerdict, Settlement};

    fn approved(currency: Option<&str>) -> ProviderRecord {
        ProviderRecord {
            verdict: ProviderVerdict::Approved {
                payment_key: "key".into(),
                amount: 1000,
                approved_at: Utc::now(),
            },
            total_amount: 1000,
            refunded_amount: 0,
            approved_at: Some(Utc::now()),
            order_id: None,
            currency: currency.map(str::to_owned),
        }
    }

    #[test]
    fn a_record_in_another_currency_settles_otherwise_and_differs_from_the_order() {
        let ours = Settlement {
            charged: Money::new(1000, "KRW"),
            refunded: 0,
        };
        assert_eq!(approved(None).settlement("KRW"), Some(ours.clone()));
        assert_eq!(approved(Some("KRW")).settlement("KRW"), Some(ours.clone()));
        assert_ne!(approved(Some("USD")).settlement("KRW"), Some(ours));
        assert_eq!(
            approved(Some("USD")).difference("order", &Money::new(1000, "KRW")),
            Some("currency USD".into())
        );
        assert_eq!(ProviderRecord::none().settlement("KRW"), None);
    }
}
