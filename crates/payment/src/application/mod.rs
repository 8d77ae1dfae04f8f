//! The payment context's use cases: buying credit packs through a provider
//! ([`payments::Payments`]), the credit wallets ([`wallets::Wallets`]) and the process manager that
//! credits and debits wallets as payments are approved and refunded ([`wallet_credits`]).

pub mod payments;
pub mod ports;
pub mod provider;
pub mod views;
pub mod wallet_credits;
pub mod wallets;

use msa_kernel::{CommandError, FieldError, StoreError};

use crate::domain::{PaymentError, WalletError};
use provider::ProviderError;

#[derive(Debug, thiserror::Error)]
pub enum PaymentsError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("no product `{0}`")]
    UnknownProduct(String),
    #[error(transparent)]
    Payment(#[from] PaymentError),
    #[error(transparent)]
    Wallet(#[from] WalletError),
    #[error("Idempotency-Key `{0}` was used for another request")]
    IdempotencyKeyReused(String),
    #[error("this webhook delivery does not match the payment it names")]
    DeliveryNotOurs,
    #[error("{0} open payments (requested or being confirmed) at most per user; confirm or cancel one first")]
    TooManyOpenPayments(u32),
    #[error("the spend `{0}` was refused and given back; send again under a new key (txn_id)")]
    SpendRefunded(String),
    #[error("no spend `{0}` in this wallet")]
    UnknownSpend(String),
    #[error("the payment provider refused: {code}: {message}")]
    ProviderRefused { code: String, message: String },
    #[error("the payment provider is unavailable; try again")]
    ProviderUnavailable,
    #[error("the wallet or payment is busy; try again")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl<E: Into<PaymentsError> + std::error::Error + 'static> From<CommandError<E>> for PaymentsError {
    fn from(error: CommandError<E>) -> Self {
        match error {
            CommandError::Domain(refusal) => refusal.into(),
            CommandError::Conflict(_) => PaymentsError::Busy,
            CommandError::IdempotencyKeyReused { key } => PaymentsError::IdempotencyKeyReused(key),
            CommandError::Store(error) => PaymentsError::Store(error),
        }
    }
}

impl From<ProviderError> for PaymentsError {
    fn from(error: ProviderError) -> Self {
        match error {
            ProviderError::Refused { code, message } => {
                PaymentsError::ProviderRefused { code, message }
            }
            ProviderError::Timeout | ProviderError::Unavailable(_) => {
                tracing::warn!(%error, "payment provider call failed");
                PaymentsError::ProviderUnavailable
            }
        }
    }
}
