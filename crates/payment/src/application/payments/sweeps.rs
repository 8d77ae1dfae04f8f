//! The background round: unknown payments resolved, refunds retried, stale requests expired,
//! approved payments credited, stranded holds released.

use chrono::{DateTime, Utc};

use super::{stream, Payments, PAGE};
use crate::application::views::PaymentView;
use crate::application::PaymentsError;
use crate::domain::{PaymentCommand, PaymentStatus};

impl Payments {
    /// One round of background work: resolves every unknown payment, retries refunds the
    /// provider has not confirmed, expires payments requested long ago and never confirmed,
    /// credits approved payments the wallet process manager left uncredited, and releases
    /// credits held for refunds that never reached their payment. Each list is paged
    /// through to its end, so no payment waits behind others; one that fails is logged and the
    /// round goes on.
    pub async fn sweep(&self) -> Result<(), PaymentsError> {
        let now = Utc::now();
        let mut after = None;
        loop {
            let page = self
                .read_models
                .payments_in(&[PaymentStatus::Unknown], after, PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for payment in page {
                if let Err(error) = self.resolve(payment.id).await {
                    tracing::warn!(payment_id = %payment.id, %error, "resolving a payment failed");
                }
            }
        }
        let due = now - self.settings.expire_after;
        let mut after = None;
        loop {
            let page = self.read_models.requested_before(due, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for payment in page {
                let command = PaymentCommand::Expire {
                    now,
                    after: self.settings.expire_after,
                };
                if let Err(error) = self.execute(payment.id, command, "payment.sweeper").await {
                    tracing::warn!(payment_id = %payment.id, %error, "expiring a payment failed");
                }
            }
        }
        let mut after = None;
        loop {
            let page = self.read_models.with_pending_refunds(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(*last);
            for payment_id in page {
                let payment = match self.load(payment_id).await {
                    Ok(payment) => payment,
                    Err(error) => {
                        tracing::warn!(%payment_id, %error, "retrying a refund failed");
                        continue;
                    }
                };
                let view = PaymentView::of(payment_id, &payment);
                for (refund_id, amount) in &payment.pending_refunds {
                    let holder = payment
                        .held_refunds
                        .contains_key(refund_id)
                        .then_some(payment.user_id);
                    self.send_refund(
                        view.clone(),
                        holder,
                        *refund_id,
                        *amount,
                        "refund (retried)",
                    )
                    .await
                    .ok();
                }
            }
        }
        // An approval the wallet process manager had this long to credit and did not.
        self.credit_uncredited(now - self.settings.hold_timeout)
            .await?;
        self.release_stranded_holds(now).await
    }

    /// Releases the credits held for refunds that never reached their payment. A hold is usable
    /// for `hold_timeout` (the payment refuses a refund with an older hold), so once that has
    /// passed the payment's events decide: no such refund, and none can come. A hold whose refund
    /// the payment decided and the wallet never followed is settled or released by the verdict.
    async fn release_stranded_holds(&self, now: DateTime<Utc>) -> Result<(), PaymentsError> {
        let before = now - self.settings.hold_timeout - self.settings.hold_timeout;
        let mut after = None;
        loop {
            let page = self
                .read_models
                .held_before(before, after.as_ref(), PAGE)
                .await?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            after = Some(last);
            for hold in page {
                let payment = self.payments.load(&stream(hold.payment_id)).await?.state;
                if payment.held_refunds.contains_key(&hold.refund_id) {
                    // The refund's verdict settles or releases it; one the wallet never followed
                    // (a crash, a dead letter) is finished here.
                    if !payment.pending_refunds.contains_key(&hold.refund_id) {
                        if let Err(error) = self.finish_decided_hold(&hold).await {
                            tracing::warn!(refund_id = %hold.refund_id, %error, "finishing a decided refund's hold failed");
                        }
                    }
                    continue;
                }
                tracing::warn!(refund_id = %hold.refund_id, payment_id = %hold.payment_id, "releasing credits held for a refund that never reached its payment");
                if let Err(error) = self
                    .wallets
                    .release_hold(hold.user_id, hold.refund_id)
                    .await
                {
                    tracing::warn!(refund_id = %hold.refund_id, %error, "releasing a hold failed");
                }
            }
        }
        Ok(())
    }
}
