//! The rules of refunds: an amount is reserved when asked (so refunds together never exceed
//! what was approved), then completed or failed once.

use uuid::Uuid;

use super::{Payment, PaymentError, PaymentEvent, PaymentStatus, RefundRequest};

impl Payment {
    pub(super) fn request_refund(
        &self,
        request: &RefundRequest,
    ) -> Result<Vec<PaymentEvent>, PaymentError> {
        let RefundRequest {
            refund_id,
            amount,
            reason,
            caller,
            caller_is_admin,
            now,
            window,
            held,
        } = request;
        let status = if *caller_is_admin {
            self.status()?
        } else {
            self.owned_by(*caller)?
        };
        if self.pending_refunds.get(refund_id) == Some(amount) {
            return Ok(vec![]); // requested already (a repeated report of the provider)
        }
        if !matches!(
            status,
            PaymentStatus::Approved | PaymentStatus::PartiallyRefunded
        ) {
            return Err(PaymentError::NotRefundable(status.as_str()));
        }
        if *amount <= 0 {
            return Err(PaymentError::InvalidRefundAmount);
        }
        if !caller_is_admin
            && self
                .approved_at
                .is_some_and(|approved| approved + *window < *now)
        {
            return Err(PaymentError::RefundWindowClosed);
        }
        if *amount > self.refundable() {
            return Err(PaymentError::RefundExceedsRemaining {
                remaining: self.refundable(),
            });
        }
        if let Some(held) = held {
            // The wallet held what the payment's state at that moment asked for; a refund of
            // this payment decided meanwhile may change the rounding, and a hold past its time
            // may have been released by the sweeper.
            if held.credits != self.credits_for_refund(*amount) || held.valid_until < *now {
                return Err(PaymentError::HoldOutdated);
            }
        }
        Ok(vec![PaymentEvent::RefundRequested {
            refund_id: *refund_id,
            amount: *amount,
            reason: reason.as_str().to_owned(),
            by: *caller,
            held_credits: held.map(|held| held.credits),
        }])
    }

    /// Completes a reserved refund; one not reserved (or ended already) changes nothing.
    pub(super) fn complete_refund(&self, refund_id: Uuid) -> Vec<PaymentEvent> {
        let Some(amount) = self.pending_refunds.get(&refund_id) else {
            return vec![];
        };
        vec![PaymentEvent::RefundCompleted {
            refund_id,
            amount: *amount,
            // Reserved within the approved amount: cannot exceed it.
            refunded_total: self.refunded.saturating_add(*amount),
        }]
    }

    /// Gives a reserved refund's amount back to the refundable; one not reserved changes nothing.
    pub(super) fn fail_refund(
        &self,
        refund_id: Uuid,
        code: &str,
        message: &str,
    ) -> Vec<PaymentEvent> {
        let Some(amount) = self.pending_refunds.get(&refund_id) else {
            return vec![];
        };
        vec![PaymentEvent::RefundFailed {
            refund_id,
            amount: *amount,
            code: code.to_owned(),
            message: message.to_owned(),
        }]
    }
}
