//! Payment use cases: request a product, confirm with the provider, cancel, refund, take a
//! webhook's report, resolve what the provider left unknown, reconcile with its records.

use std::sync::Arc;

use chrono::{Duration, Utc};
use msa_http::FieldError;
use msa_kernel::repository::IdempotencyKey;
use msa_kernel::{EventMetadata, EventStore, Repository, StreamId};
use msa_sql::SqlReadModelStore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::provider::{Cancellation, Confirmation, PaymentProvider, ProviderError};
use super::wallets::Wallets;
use super::PaymentsError;
use crate::adapters::payment_list::{self, PaymentView};
use crate::domain::{
    Catalog, Payment, PaymentCommand, PaymentError, PaymentStatus, ProviderVerdict,
};

/// Settings of the payment use cases.
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    /// How long after approval an owner may ask for a refund.
    pub refund_window: Duration,
    /// A requested payment never confirmed within this expires.
    pub expire_after: Duration,
}

/// A refund's outcome.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RefundView {
    pub refund_id: Uuid,
    pub amount: i64,
    /// `completed`, or `pending` while the provider has not confirmed it (retried in the background).
    pub status: String,
    pub payment: PaymentView,
}

/// One difference reconciliation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub payment_id: Uuid,
    pub ours: String,
    pub provider: String,
}

pub struct Payments {
    payments: Repository<Payment>,
    read_models: Arc<SqlReadModelStore>,
    catalog: Catalog,
    provider: Arc<dyn PaymentProvider>,
    wallets: Arc<Wallets>,
    settings: PaymentSettings,
}

fn metadata(actor: &str) -> EventMetadata {
    EventMetadata::new_conversation(Some(actor.to_owned()))
}

fn stream(payment_id: Uuid) -> StreamId {
    Repository::<Payment>::stream_id(payment_id)
}

/// The credits a refund takes back: the part of the pack the refunded money paid for, rounded
/// so that a full refund takes back exactly the pack.
pub fn credits_for_refund(credits: u64, amount: i64, refunded_before: i64, refund: i64) -> u64 {
    let share = |refunded: i64| -> u64 {
        let refunded = refunded.clamp(0, amount) as u128;
        (credits as u128 * refunded).div_ceil(amount.max(1) as u128) as u64
    };
    share(refunded_before + refund) - share(refunded_before)
}

impl Payments {
    pub fn new(
        events: Arc<dyn EventStore>,
        read_models: Arc<SqlReadModelStore>,
        catalog: Catalog,
        provider: Arc<dyn PaymentProvider>,
        wallets: Arc<Wallets>,
        settings: PaymentSettings,
    ) -> Self {
        Self {
            payments: Repository::new(events),
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

    pub fn read_models(&self) -> &SqlReadModelStore {
        &self.read_models
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

    /// Requests a payment for a product. `idempotency_key` names the request: the same key with
    /// the same product answers the first payment; with another product it is refused.
    /// Returns the payment and whether this call created it.
    pub async fn request(
        &self,
        user_id: Uuid,
        product_id: &str,
        idempotency_key: &str,
    ) -> Result<(PaymentView, bool), PaymentsError> {
        let product = self
            .catalog
            .find(product_id)
            .ok_or_else(|| PaymentsError::UnknownProduct(product_id.to_owned()))?
            .clone();
        let payment_id = Uuid::now_v7();
        let command = PaymentCommand::Request {
            order_id: format!("order-{}", payment_id.simple()),
            user_id,
            product,
            provider: self.provider.name().to_owned(),
            at: Utc::now(),
        };
        let fingerprint: String = Sha256::digest(product_id.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let key = IdempotencyKey {
            scope: format!("payment.request:{user_id}"),
            key: idempotency_key.to_owned(),
            fingerprint,
        };
        let outcome = self
            .payments
            .execute_idempotent(
                &stream(payment_id),
                &command,
                &metadata(&user_id.to_string()),
                key,
                |state, _| serde_json::json!(PaymentView::of(payment_id, state)),
            )
            .await?;
        let view = serde_json::from_value(outcome.result)
            .map_err(|e| PaymentsError::Store(msa_kernel::StoreError::backend(e)))?;
        Ok((view, !outcome.replayed))
    }

    /// Confirms a payment with the provider. The amount must be the order's. A payment whose
    /// outcome is unknown is resolved by asking the provider, never by charging again.
    pub async fn confirm(
        &self,
        caller: Uuid,
        payment_id: Uuid,
        payment_key: &str,
        amount: i64,
    ) -> Result<PaymentView, PaymentsError> {
        if payment_key.trim().is_empty() || payment_key.len() > 200 {
            return Err(PaymentsError::Invalid(vec![FieldError::new(
                "payment_key",
                "the provider's payment key (1 to 200 characters)",
            )]));
        }
        let command = PaymentCommand::SendForConfirmation {
            caller,
            payment_key: payment_key.to_owned(),
            amount,
        };
        let sent = match self.execute(payment_id, command, &caller.to_string()).await {
            Ok(sent) => sent,
            Err(PaymentsError::Payment(PaymentError::OutcomePending)) => {
                return self.resolve(payment_id).await;
            }
            // A repeat of a confirmation that went through answers the payment as it is.
            Err(PaymentsError::Payment(PaymentError::NotConfirmable(_))) => {
                let payment = self.load(payment_id).await?;
                if payment.payment_key.as_deref() == Some(payment_key) {
                    return Ok(PaymentView::of(payment_id, &payment));
                }
                return Err(PaymentError::NotConfirmable(payment.status()?.as_str()).into());
            }
            Err(other) => return Err(other),
        };
        let confirmation = Confirmation {
            payment_key: payment_key.to_owned(),
            order_id: sent.order_id.clone(),
            amount,
        };
        let verdict = match self.provider.confirm(&confirmation).await {
            Ok(verdict) => verdict,
            Err(ProviderError::Refused { code, message }) => {
                ProviderVerdict::Declined { code, message }
            }
            Err(error) => {
                tracing::warn!(%payment_id, %error, "confirmation outcome unknown; it will be looked up");
                let during = format!("confirm: {error}");
                return self
                    .execute(
                        payment_id,
                        PaymentCommand::RecordTimeout { during },
                        "provider",
                    )
                    .await;
            }
        };
        self.execute(payment_id, PaymentCommand::Resolve(verdict), "provider")
            .await
    }

    /// Asks the provider about a payment whose outcome is unknown and records what it says.
    pub async fn resolve(&self, payment_id: Uuid) -> Result<PaymentView, PaymentsError> {
        let payment = self.load(payment_id).await?;
        let (Some(PaymentStatus::Unknown), Some(key)) = (payment.status, &payment.payment_key)
        else {
            return Ok(PaymentView::of(payment_id, &payment));
        };
        match self.provider.look_up(key).await {
            Ok(record) => {
                self.execute(
                    payment_id,
                    PaymentCommand::Resolve(record.verdict),
                    "provider",
                )
                .await
            }
            Err(error) => {
                tracing::warn!(%payment_id, %error, "payment outcome still unknown");
                Ok(PaymentView::of(payment_id, &payment))
            }
        }
    }

    /// The owner cancels a payment not confirmed yet.
    pub async fn cancel(
        &self,
        caller: Uuid,
        payment_id: Uuid,
    ) -> Result<PaymentView, PaymentsError> {
        self.load(payment_id).await?;
        self.execute(
            payment_id,
            PaymentCommand::Cancel { caller },
            &caller.to_string(),
        )
        .await
    }

    /// Refunds part or all of an approved payment: by its owner within the refund window (and
    /// only while the credits it bought are unspent), or by an admin. The amount is reserved
    /// first, so refunds together never exceed what was approved.
    pub async fn refund(
        &self,
        caller: Uuid,
        caller_is_admin: bool,
        payment_id: Uuid,
        amount: i64,
        reason: &str,
    ) -> Result<RefundView, PaymentsError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 {
            return Err(PaymentsError::Invalid(vec![FieldError::new(
                "reason",
                "1 to 200 characters",
            )]));
        }
        let payment = self.load(payment_id).await?;
        if payment.user_id != caller && !caller_is_admin {
            return Err(PaymentError::NotFound.into());
        }
        if !caller_is_admin && amount > 0 {
            let reserved = payment.amount - payment.refundable();
            let needed = credits_for_refund(payment.credits, payment.amount, reserved, amount);
            let balance = self.wallets.wallet(payment.user_id).await?.balance;
            if balance < needed {
                return Err(PaymentsError::CreditsSpent { needed, balance });
            }
        }
        let refund_id = Uuid::now_v7();
        let command = PaymentCommand::RequestRefund {
            refund_id,
            amount,
            reason: reason.to_owned(),
            caller,
            caller_is_admin,
            now: Utc::now(),
            window: self.settings.refund_window,
        };
        let reserved = self
            .execute(payment_id, command, &caller.to_string())
            .await?;
        let (payment, completed) = self
            .send_refund(reserved, refund_id, amount, reason)
            .await?;
        Ok(RefundView {
            refund_id,
            amount,
            status: if completed { "completed" } else { "pending" }.into(),
            payment,
        })
    }

    /// Asks the provider to refund a reserved amount (again, after a lost answer: the refund id
    /// is the provider's idempotency key) and records the outcome.
    /// Returns the payment and whether the provider confirmed the refund.
    async fn send_refund(
        &self,
        payment: PaymentView,
        refund_id: Uuid,
        amount: i64,
        reason: &str,
    ) -> Result<(PaymentView, bool), PaymentsError> {
        let payment_id = payment.id;
        let cancellation = Cancellation {
            payment_key: payment.payment_key.clone().unwrap_or_default(),
            amount,
            reason: reason.to_owned(),
            idempotency_key: refund_id.to_string(),
        };
        match self.provider.cancel(&cancellation).await {
            Ok(()) => {
                let completed = self
                    .execute(
                        payment_id,
                        PaymentCommand::CompleteRefund { refund_id },
                        "provider",
                    )
                    .await?;
                Ok((completed, true))
            }
            Err(ProviderError::Refused { code, message }) => {
                let command = PaymentCommand::FailRefund {
                    refund_id,
                    code: code.clone(),
                    message: message.clone(),
                };
                self.execute(payment_id, command, "provider").await?;
                Err(PaymentsError::ProviderRefused { code, message })
            }
            Err(error) => {
                tracing::warn!(%payment_id, %refund_id, %error, "refund not confirmed by the provider; it will be retried");
                Ok((payment, false))
            }
        }
    }

    /// A provider's report about a payment (a webhook delivery): recorded if it moves the
    /// payment on; a repeated or late report changes nothing.
    pub async fn report(
        &self,
        payment_id: Uuid,
        verdict: ProviderVerdict,
    ) -> Result<PaymentView, PaymentsError> {
        self.load(payment_id).await?;
        self.execute(payment_id, PaymentCommand::Resolve(verdict), "provider")
            .await
    }

    /// What the provider has of a payment found by its key (Toss webhooks are checked this way).
    pub async fn report_from_provider(
        &self,
        payment_id: Uuid,
    ) -> Result<PaymentView, PaymentsError> {
        let payment = self.load(payment_id).await?;
        let Some(key) = &payment.payment_key else {
            return Ok(PaymentView::of(payment_id, &payment));
        };
        let record = self.provider.look_up(key).await?;
        self.report(payment_id, record.verdict).await
    }

    /// One round of background work: resolves unknown payments, retries refunds the provider has
    /// not confirmed, expires payments requested long ago and never confirmed.
    pub async fn sweep(&self) -> Result<(), PaymentsError> {
        let waiting = payment_list::payments_in(
            &self.read_models,
            &[PaymentStatus::Unknown, PaymentStatus::Requested],
            None,
            100,
        )
        .await?;
        let now = Utc::now();
        for payment in waiting {
            if payment.status == PaymentStatus::Unknown {
                self.resolve(payment.id).await?;
            } else {
                let command = PaymentCommand::Expire {
                    now,
                    after: self.settings.expire_after,
                };
                self.execute(payment.id, command, "payment.sweeper").await?;
            }
        }
        for payment_id in payment_list::with_pending_refunds(&self.read_models).await? {
            let payment = self.load(payment_id).await?;
            let view = PaymentView::of(payment_id, &payment);
            for (refund_id, amount) in &payment.pending_refunds {
                self.send_refund(view.clone(), *refund_id, *amount, "refund (retried)")
                    .await
                    .ok();
            }
        }
        Ok(())
    }

    /// Compares every approved (or refunded) payment with the provider's record and records a
    /// `MismatchFound` event for each difference not recorded before. Returns the differences.
    pub async fn reconcile(
        &self,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<Mismatch>, PaymentsError> {
        let mut found = Vec::new();
        let mut after = None;
        let mut checked = 0;
        loop {
            let page = payment_list::payments_in(
                &self.read_models,
                &[
                    PaymentStatus::Approved,
                    PaymentStatus::PartiallyRefunded,
                    PaymentStatus::Refunded,
                ],
                after,
                100,
            )
            .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for view in page {
                checked += 1;
                let payment = self.load(view.id).await?;
                if !payment.pending_refunds.is_empty() {
                    continue; // in flight: the provider may be ahead of us for a moment
                }
                let Some(key) = &payment.payment_key else {
                    continue;
                };
                let record = self.provider.look_up(key).await?;
                let ours = format!(
                    "approved {} {}, refunded {}",
                    payment.amount, payment.currency, payment.refunded
                );
                let theirs = match &record.verdict {
                    ProviderVerdict::Approved { .. } => format!(
                        "approved {} {}, refunded {}",
                        record.total_amount, payment.currency, record.refunded_amount
                    ),
                    other => format!("{other:?}").to_lowercase(),
                };
                if ours != theirs {
                    let command = PaymentCommand::RecordMismatch {
                        ours: ours.clone(),
                        provider: theirs.clone(),
                    };
                    self.execute(view.id, command, "payment.reconcile").await?;
                    found.push(Mismatch {
                        payment_id: view.id,
                        ours,
                        provider: theirs,
                    });
                }
            }
            progress(checked);
        }
        Ok(found)
    }

    /// The caller's payments, newest first.
    pub async fn payments_of(
        &self,
        user_id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<PaymentView>, PaymentsError> {
        Ok(payment_list::payments_of(&self.read_models, user_id, before, limit).await?)
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
