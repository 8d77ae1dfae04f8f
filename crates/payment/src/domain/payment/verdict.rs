//! The rules of the provider's word: a verdict decides an open payment once; a record that is
//! not this order's is a mismatch, never an approval.

use super::{Payment, PaymentError, PaymentEvent, PaymentStatus, ProviderVerdict, RECORD_MISMATCH};

impl Payment {
    pub(super) fn resolve(
        &self,
        verdict: &ProviderVerdict,
    ) -> Result<Vec<PaymentEvent>, PaymentError> {
        let open = matches!(
            self.status()?,
            PaymentStatus::Requested | PaymentStatus::Unknown
        );
        if let ProviderVerdict::Approved { amount, .. } = verdict {
            if *amount != self.amount {
                // Charged, but not what the order says: recorded for an operator; an open
                // payment fails (its credits are never granted).
                let mut events = self.record_mismatch(
                    &format!("order of {}", self.price()),
                    &format!("approved {amount}"),
                )?;
                if open {
                    events.push(PaymentEvent::PaymentFailed {
                        code: RECORD_MISMATCH.into(),
                        message: format!(
                            "the provider approved {amount}, the order is {}",
                            self.price()
                        ),
                    });
                }
                return Ok(events);
            }
        }
        if !open {
            // Decided already: a late or repeated report changes nothing.
            return Ok(vec![]);
        }
        let event = match verdict {
            ProviderVerdict::Approved {
                payment_key,
                amount,
                approved_at,
            } => PaymentEvent::PaymentApproved {
                payment_key: payment_key.clone(),
                amount: *amount,
                approved_at: *approved_at,
            },
            ProviderVerdict::Declined { code, message } => PaymentEvent::PaymentFailed {
                code: code.clone(),
                message: message.clone(),
            },
            ProviderVerdict::Canceled => PaymentEvent::PaymentCanceled { by: None },
            ProviderVerdict::Expired => PaymentEvent::PaymentExpired,
            ProviderVerdict::Pending => return Ok(vec![]),
        };
        Ok(vec![event])
    }

    /// A difference between the provider's record and ours, recorded once per distinct one.
    pub(super) fn record_mismatch(
        &self,
        ours: &str,
        provider: &str,
    ) -> Result<Vec<PaymentEvent>, PaymentError> {
        self.status()?;
        if self.last_mismatch.as_deref() == Some(&format!("{ours} / {provider}")) {
            return Ok(vec![]);
        }
        Ok(vec![PaymentEvent::MismatchFound {
            ours: ours.to_owned(),
            provider: provider.to_owned(),
        }])
    }
}
