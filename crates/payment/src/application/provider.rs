//! The payment provider port: what the payment context needs from a provider (Toss Payments,
//! the sandbox). Adapters live in `adapters/`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::ProviderVerdict;

/// A confirmation request: the provider's key for the payment, our order id, the amount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirmation {
    pub payment_key: String,
    pub order_id: String,
    pub amount: i64,
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
