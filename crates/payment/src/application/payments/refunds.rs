//! Refunds: the owner's or an admin's, and the provider's own cancellations taken back.

use chrono::Utc;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Payments;
use crate::application::provider::{Cancellation, ProviderError};
use crate::application::views::PaymentView;
use crate::application::PaymentsError;
use crate::domain::{
    HeldCredits, Payment, PaymentCommand, PaymentError, RefundReason, RefundRequest,
};
use msa_kernel::Aggregate as _;

/// A refund's outcome.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RefundView {
    pub refund_id: Uuid,
    pub amount: i64,
    /// `completed`, or `pending` while the provider has not confirmed it (retried in the background).
    pub status: String,
    pub payment: PaymentView,
}

/// A refund id named by what the provider did, so repeated reports of one cancellation at the
/// provider are one refund here.
fn provider_refund_id(payment_id: Uuid, refunded_total: i64) -> Uuid {
    let digest = Sha256::digest(format!("provider-cancel:{payment_id}:{refunded_total}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

impl Payments {
    /// Refunds part or all of an approved payment: by its owner within the refund window (and
    /// only while the credits it bought are unspent), or by an admin (the credits spent already
    /// become a debt of the wallet). The credits are held in the wallet first, then the amount is
    /// reserved on the payment; so two refunds never take back the same credits, and refunds
    /// together never exceed what was approved.
    pub async fn refund(
        &self,
        caller: Uuid,
        caller_is_admin: bool,
        payment_id: Uuid,
        amount: i64,
        reason: &RefundReason,
    ) -> Result<RefundView, PaymentsError> {
        let payment = self.load(payment_id).await?;
        if payment.user_id != caller && !caller_is_admin {
            return Err(PaymentError::NotFound.into());
        }
        let refund_id = Uuid::now_v7();
        let (payment, held) = self
            .hold_and_request_refund(
                payment_id,
                payment,
                refund_id,
                amount,
                reason,
                caller,
                caller_is_admin,
            )
            .await?;
        let (payment, completed) = self
            .send_refund(payment, held, refund_id, amount, reason.as_str())
            .await?;
        Ok(RefundView {
            refund_id,
            amount,
            status: if completed { "completed" } else { "pending" }.into(),
            payment,
        })
    }

    /// The two steps of every refund: the wallet holds the credits the refund takes back (owing
    /// what it lacks when `caller_is_admin`), then the payment reserves the amount. A payment
    /// that refuses releases the hold; a crash in between leaves a hold the sweeper releases.
    #[allow(clippy::too_many_arguments)]
    async fn hold_and_request_refund(
        &self,
        payment_id: Uuid,
        payment: Payment,
        refund_id: Uuid,
        amount: i64,
        reason: &RefundReason,
        caller: Uuid,
        caller_is_admin: bool,
    ) -> Result<(PaymentView, Option<Uuid>), PaymentsError> {
        let now = Utc::now();
        let command = |held: Option<HeldCredits>| {
            PaymentCommand::RequestRefund(RefundRequest {
                refund_id,
                amount,
                reason: reason.clone(),
                caller,
                caller_is_admin,
                now,
                window: self.settings.refund_window,
                held,
            })
        };
        // Decided on the state read first: a refusal (amount, window, state) costs no hold.
        payment.decide(&command(None))?;
        let credits = payment.credits_for_refund(amount);
        self.wallets
            .hold_for_refund(
                payment.user_id,
                payment_id,
                refund_id,
                credits,
                caller_is_admin,
            )
            .await?;
        let held = HeldCredits {
            credits,
            valid_until: now + self.settings.hold_timeout,
        };
        match self
            .execute(payment_id, command(Some(held)), &caller.to_string())
            .await
        {
            Ok(view) => Ok((view, Some(payment.user_id))),
            Err(refused) => {
                if let Err(error) = self.wallets.release_hold(payment.user_id, refund_id).await {
                    // The sweeper releases it after the hold's time.
                    tracing::warn!(%payment_id, %refund_id, %error, "a refused refund's hold stays for now");
                }
                Err(match refused {
                    PaymentsError::Payment(PaymentError::HoldOutdated) => PaymentsError::Busy,
                    other => other,
                })
            }
        }
    }

    /// Asks the provider to refund a reserved amount (again, after a lost answer: the refund id
    /// is the provider's idempotency key) and records the outcome; the credits held for it in
    /// `holder`'s wallet are then taken back or returned.
    /// Returns the payment and whether the provider confirmed the refund.
    pub(super) async fn send_refund(
        &self,
        payment: PaymentView,
        holder: Option<Uuid>,
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
            Ok(()) => Ok((
                self.complete_refund(payment_id, refund_id, holder).await?,
                true,
            )),
            Err(ProviderError::Refused { code, message }) => {
                let command = PaymentCommand::FailRefund {
                    refund_id,
                    code: code.clone(),
                    message: message.clone(),
                };
                self.execute(payment_id, command, "provider").await?;
                self.end_hold(holder, refund_id, false).await;
                Err(PaymentsError::ProviderRefused { code, message })
            }
            Err(error) => {
                tracing::warn!(%payment_id, %refund_id, %error, "refund not confirmed by the provider; it will be retried");
                Ok((payment, false))
            }
        }
    }

    /// Settles (the refund completed) or releases the credits held for a refund, now rather than
    /// when the wallet process manager gets to the payment's event (which does the same again,
    /// changing nothing, and covers a crash here).
    async fn end_hold(&self, holder: Option<Uuid>, refund_id: Uuid, completed: bool) {
        let Some(user_id) = holder else { return };
        let ended = if completed {
            self.wallets.settle_hold(user_id, refund_id).await
        } else {
            self.wallets.release_hold(user_id, refund_id).await
        };
        if let Err(error) = ended {
            tracing::warn!(%refund_id, %error, "the refund's hold is ended by the wallet process manager");
        }
    }

    /// The provider refunded money we did not ask it to (a cancellation in its dashboard, a
    /// chargeback): `refunded_total` is what it has refunded of the payment in all. The credits
    /// are taken back as a refund of the difference, owing what the wallet no longer has, and
    /// completed at once (the money is gone).
    pub(super) async fn take_back_canceled(
        &self,
        payment_id: Uuid,
        payment: Payment,
        refunded_total: i64,
    ) -> Result<PaymentView, PaymentsError> {
        let ours = payment.refunded.saturating_add(payment.reserved());
        let amount = refunded_total.min(payment.amount).saturating_sub(ours);
        if amount <= 0 {
            return Ok(PaymentView::of(payment_id, &payment));
        }
        let refund_id = provider_refund_id(payment_id, refunded_total);
        tracing::warn!(%payment_id, amount, "the provider refunded a payment we did not refund; its credits are taken back");
        let (_, holder) = self
            .hold_and_request_refund(
                payment_id,
                payment,
                refund_id,
                amount,
                &RefundReason::canceled_at_provider(),
                Uuid::nil(),
                true,
            )
            .await?;
        self.complete_refund(payment_id, refund_id, holder).await
    }

    /// Records a refund the provider made, and settles the credits held for it.
    async fn complete_refund(
        &self,
        payment_id: Uuid,
        refund_id: Uuid,
        holder: Option<Uuid>,
    ) -> Result<PaymentView, PaymentsError> {
        let completed = self
            .execute(
                payment_id,
                PaymentCommand::CompleteRefund { refund_id },
                "provider",
            )
            .await?;
        self.end_hold(holder, refund_id, true).await;
        Ok(completed)
    }
}
