//! Buying credits: request a payment for a product, confirm it with the provider, cancel it,
//! resolve an outcome the provider left unknown.

use chrono::Utc;
use msa_kernel::repository::IdempotencyKey;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{metadata, stream, Payments};
use crate::application::provider::{Confirmation, ProviderError, ProviderRecord};
use crate::application::views::PaymentView;
use crate::application::PaymentsError;
use crate::domain::{
    Payment, PaymentCommand, PaymentError, PaymentKey, PaymentStatus, ProviderVerdict,
    RECORD_MISMATCH,
};

impl Payments {
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
        let scope = format!("payment.request:{user_id}");
        let stripe = user_id.as_u128() as usize % self.request_turns.len();
        let _turn = self.request_turns[stripe].lock().await;
        let cap = self.settings.open_payments_per_user;
        let replay = self
            .events
            .idempotency_record(&scope, idempotency_key)
            .await?
            .is_some();
        if !replay && self.read_models.open_payments_of(user_id).await? >= cap {
            return Err(PaymentsError::TooManyOpenPayments(cap));
        }
        let key = IdempotencyKey {
            scope,
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
        let view: PaymentView = serde_json::from_value(outcome.result)
            .map_err(|e| PaymentsError::Store(msa_kernel::StoreError::backend(e)))?;
        if !outcome.replayed {
            // The cap counts the list: the next request of this user waits until it shows this
            // payment (bounded: a stalled projection delays, it does not block).
            for _ in 0..100 {
                if self.read_models.lists(view.id).await? {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        Ok((view, !outcome.replayed))
    }

    /// Confirms a payment with the provider. The amount must be the order's. A payment whose
    /// outcome is unknown is resolved by asking the provider, never by charging again.
    pub async fn confirm(
        &self,
        caller: Uuid,
        payment_id: Uuid,
        payment_key: &PaymentKey,
        amount: i64,
    ) -> Result<PaymentView, PaymentsError> {
        let command = PaymentCommand::SendForConfirmation {
            caller,
            payment_key: payment_key.clone(),
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
                if payment.payment_key.as_deref() == Some(payment_key.as_str()) {
                    return Ok(PaymentView::of(payment_id, &payment));
                }
                return Err(PaymentError::NotConfirmable(payment.status()?.as_str()).into());
            }
            Err(other) => return Err(other),
        };
        let confirmation = Confirmation {
            payment_key: payment_key.as_str().to_owned(),
            order_id: sent.order_id.clone(),
            amount,
            currency: sent.currency.clone(),
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
            Ok(record) => self.record_verdict(payment_id, &payment, record).await,
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

    /// Records what the provider's record says of an open payment: a record of another order,
    /// amount or currency is recorded as a mismatch and fails the payment, never approves it.
    pub(super) async fn record_verdict(
        &self,
        payment_id: Uuid,
        payment: &Payment,
        record: ProviderRecord,
    ) -> Result<PaymentView, PaymentsError> {
        if let Some(difference) = record.difference(&payment.order_id, &payment.price()) {
            tracing::warn!(%payment_id, %difference, "the provider's record is not this order");
            let command = PaymentCommand::RecordMismatch {
                ours: payment.order_terms(),
                provider: difference.clone(),
            };
            self.execute(payment_id, command, "provider").await?;
            let verdict = ProviderVerdict::Declined {
                code: RECORD_MISMATCH.into(),
                message: format!("the provider's record is not this order ({difference})"),
            };
            return self
                .execute(payment_id, PaymentCommand::Resolve(verdict), "provider")
                .await;
        }
        self.execute(
            payment_id,
            PaymentCommand::Resolve(record.verdict),
            "provider",
        )
        .await
    }
}
