//! Payment use cases: request a product, confirm with the provider, cancel, refund, take a
//! webhook's report, resolve what the provider left unknown, reconcile with its records; a
//! person's payments for their export ([`export`]). A file per use case; the shared steps
//! (load, execute) are here.

mod checkout;
mod decided_holds;
pub mod export;
mod reconciliation;
mod refunds;
mod reports;
mod sweeps;
mod uncredited;

use std::sync::Arc;

use chrono::Duration;
use msa_kernel::{EventMetadata, EventStore, Repository, StreamId};
use uuid::Uuid;

use super::ports::PaymentReadModels;
use super::provider::PaymentProvider;
use super::views::{LedgerEntry, PaymentView};
use super::wallets::Wallets;
use super::PaymentsError;
pub use crate::domain::credits_for_refund;
use crate::domain::{Catalog, Payment, PaymentCommand, PaymentError, ProviderVerdict};

pub use reconciliation::Mismatch;
pub use refunds::RefundView;

/// Settings of the payment use cases.
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    /// How long after approval an owner may ask for a refund.
    pub refund_window: Duration,
    /// A requested payment never confirmed within this expires.
    pub expire_after: Duration,
    /// How long credits held for a refund may wait for the refund to reach its payment; the
    /// sweeper releases a hold left longer (a crash between the two steps) whose refund the
    /// payment never recorded.
    pub hold_timeout: Duration,
    /// Open payments (requested, or waiting for the provider's verdict) a user may have at once.
    pub open_payments_per_user: u32,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        Self {
            refund_window: Duration::days(7),
            expire_after: Duration::minutes(30),
            hold_timeout: Duration::seconds(30),
            open_payments_per_user: 5,
        }
    }
}

pub struct Payments {
    payments: Repository<Payment>,
    events: Arc<dyn EventStore>,
    /// A user's payment requests take turns in this process, so the open-payment cap counts
    /// each one (striped: fixed memory).
    request_turns: Vec<tokio::sync::Mutex<()>>,
    read_models: Arc<dyn PaymentReadModels>,
    catalog: Catalog,
    provider: Arc<dyn PaymentProvider>,
    wallets: Arc<Wallets>,
    settings: PaymentSettings,
}

fn metadata(actor: &str) -> EventMetadata {
    EventMetadata::current(Some(actor.to_owned()))
}

fn stream(payment_id: Uuid) -> StreamId {
    Repository::<Payment>::stream_id(payment_id)
}

/// How far a sweep pages at a time.
const PAGE: u32 = 100;

impl Payments {
    pub fn new(
        events: Arc<dyn EventStore>,
        read_models: Arc<dyn PaymentReadModels>,
        catalog: Catalog,
        provider: Arc<dyn PaymentProvider>,
        wallets: Arc<Wallets>,
        settings: PaymentSettings,
    ) -> Self {
        Self {
            payments: Repository::new(events.clone()),
            events,
            request_turns: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            read_models,
            catalog,
            provider,
            wallets,
            settings,
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
    }

    async fn load(&self, payment_id: Uuid) -> Result<Payment, PaymentsError> {
        let payment = self.payments.load(&stream(payment_id)).await?.state;
        if !payment.exists() {
            return Err(PaymentError::NotFound.into());
        }
        Ok(payment)
    }

    async fn execute(
        &self,
        payment_id: Uuid,
        command: PaymentCommand,
        actor: &str,
    ) -> Result<PaymentView, PaymentsError> {
        let executed = self
            .payments
            .execute(&stream(payment_id), &command, &metadata(actor))
            .await?;
        // What the provider said, counted once: when it changed the payment.
        let outcome = match &command {
            _ if executed.events.is_empty() => None,
            PaymentCommand::Resolve(ProviderVerdict::Approved { .. }) => Some("approved"),
            PaymentCommand::Resolve(ProviderVerdict::Declined { .. }) => Some("declined"),
            PaymentCommand::Resolve(ProviderVerdict::Canceled) => Some("canceled"),
            PaymentCommand::Resolve(ProviderVerdict::Expired) => Some("expired"),
            PaymentCommand::Resolve(ProviderVerdict::Pending) => Some("pending"),
            PaymentCommand::RecordTimeout { .. } => Some("unknown"),
            _ => None,
        };
        if let Some(outcome) = outcome {
            metrics::counter!("msa_payment_payments_total", "outcome" => outcome).increment(1);
        }
        Ok(PaymentView::of(payment_id, &executed.state))
    }

    /// A payment as its owner (or an admin) sees it.
    pub async fn payment(
        &self,
        caller: Uuid,
        caller_is_admin: bool,
        payment_id: Uuid,
    ) -> Result<PaymentView, PaymentsError> {
        let payment = self.load(payment_id).await?;
        if payment.user_id != caller && !caller_is_admin {
            // Somebody else's payment does not exist for the caller.
            return Err(PaymentError::NotFound.into());
        }
        Ok(PaymentView::of(payment_id, &payment))
    }

    /// The caller's payments, newest first.
    pub async fn payments_of(
        &self,
        user_id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<PaymentView>, PaymentsError> {
        Ok(self.read_models.payments_of(user_id, before, limit).await?)
    }

    /// The caller's wallet ledger, newest entry first, before entry `before`.
    pub async fn ledger(
        &self,
        user_id: Uuid,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, PaymentsError> {
        Ok(self.read_models.entries(user_id, before, limit).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::credits_for_refund;

    #[test]
    fn refunds_take_back_the_credits_they_paid_for_and_a_full_refund_all_of_them() {
        assert_eq!(credits_for_refund(100, 1000, 0, 1000), 100);
        assert_eq!(credits_for_refund(100, 1000, 0, 1), 1);
        let parts: u64 = [0, 333, 666]
            .iter()
            .map(|before| credits_for_refund(100, 999, *before, 333))
            .sum();
        assert_eq!(parts, 100);
    }
}
