//! What the provider reports of a payment on its own (webhook deliveries).

use uuid::Uuid;

use super::Payments;
use crate::application::views::PaymentView;
use crate::application::PaymentsError;
use crate::domain::{PaymentCommand, PaymentKey, PaymentStatus, ProviderVerdict};

impl Payments {
    /// A provider's report about a payment (a signed webhook delivery): recorded if it moves the
    /// payment on; a repeated or late report changes nothing. A cancellation of an approved
    /// payment takes its credits back (see [`Self::take_back_canceled`]).
    pub async fn report(
        &self,
        payment_id: Uuid,
        verdict: ProviderVerdict,
    ) -> Result<PaymentView, PaymentsError> {
        let payment = self.load(payment_id).await?;
        let approved = matches!(
            payment.status,
            Some(PaymentStatus::Approved | PaymentStatus::PartiallyRefunded)
        );
        if approved && verdict == ProviderVerdict::Canceled {
            let everything = payment.amount;
            return self
                .take_back_canceled(payment_id, payment, everything)
                .await;
        }
        self.execute(payment_id, PaymentCommand::Resolve(verdict), "provider")
            .await
    }

    /// An unsigned delivery (Toss's) that says the payment keyed `payment_key` is now `status`:
    /// checked against our records first, and looked up at the provider only when it names this
    /// payment and could change it (an open payment, or a cancellation of an approved one).
    pub async fn report_from_provider(
        &self,
        payment_id: Uuid,
        payment_key: &str,
        status: &str,
    ) -> Result<PaymentView, PaymentsError> {
        let payment = self.load(payment_id).await?;
        let Ok(payment_key) = PaymentKey::parse(payment_key) else {
            return Err(PaymentsError::DeliveryNotOurs);
        };
        if payment
            .payment_key
            .as_deref()
            .is_some_and(|ours| ours != payment_key.as_str())
        {
            return Err(PaymentsError::DeliveryNotOurs);
        }
        let open = matches!(
            payment.status,
            Some(PaymentStatus::Requested | PaymentStatus::Unknown)
        );
        let approved = matches!(
            payment.status,
            Some(PaymentStatus::Approved | PaymentStatus::PartiallyRefunded)
        );
        let canceled = matches!(status, "CANCELED" | "PARTIAL_CANCELED");
        if !(open || approved && canceled) {
            // Decided, and nothing this delivery says could change it: no look-up.
            return Ok(PaymentView::of(payment_id, &payment));
        }
        let record = self.provider.look_up(payment_key.as_str()).await?;
        if payment.payment_key.is_none()
            && record
                .order_id
                .as_deref()
                .is_some_and(|theirs| theirs != payment.order_id)
        {
            // A key of another order: says nothing about this payment.
            return Err(PaymentsError::DeliveryNotOurs);
        }
        if open {
            return self.record_verdict(payment_id, &payment, record).await;
        }
        if let Some(difference) = record.difference(&payment.order_id, &payment.price()) {
            let command = PaymentCommand::RecordMismatch {
                ours: payment.order_terms(),
                provider: difference,
            };
            return self.execute(payment_id, command, "provider").await;
        }
        let refunded_total = record.refunded_amount;
        self.take_back_canceled(payment_id, payment, refunded_total)
            .await
    }
}
