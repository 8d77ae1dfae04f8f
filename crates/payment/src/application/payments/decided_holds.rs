//! Holds whose refund the payment has decided and the wallet has not followed: the refund use
//! case settles (refund completed) or releases (refund failed) the hold at once, and the wallet
//! process manager does it again from the payment's event; if both were lost (a crash right after
//! the verdict, the process manager's event dead-lettered), the buyer's credits would stay held
//! for good. The sweeper finishes such a hold from the payment's own events, keyed in the wallet
//! by the refund (settling or releasing twice changes nothing).

use msa_kernel::repository::decode;

use super::{stream, Payments};
use crate::application::views::OpenHold;
use crate::application::PaymentsError;
use crate::domain::PaymentEvent;

impl Payments {
    /// Settles or releases `hold` by the verdict its payment recorded for the refund; nothing
    /// while the refund waits for one.
    pub(super) async fn finish_decided_hold(&self, hold: &OpenHold) -> Result<(), PaymentsError> {
        let events = self.events.read_stream(&stream(hold.payment_id), 0).await?;
        let completed =
            events
                .iter()
                .rev()
                .find_map(|event| match decode::<PaymentEvent>(event).ok()? {
                    PaymentEvent::RefundCompleted { refund_id, .. }
                        if refund_id == hold.refund_id =>
                    {
                        Some(true)
                    }
                    PaymentEvent::RefundFailed { refund_id, .. } if refund_id == hold.refund_id => {
                        Some(false)
                    }
                    _ => None,
                });
        match completed {
            Some(true) => {
                tracing::warn!(refund_id = %hold.refund_id, payment_id = %hold.payment_id,
                    "settling credits still held for a completed refund");
                self.wallets.settle_hold(hold.user_id, hold.refund_id).await
            }
            Some(false) => {
                tracing::warn!(refund_id = %hold.refund_id, payment_id = %hold.payment_id,
                    "releasing credits still held for a failed refund");
                self.wallets
                    .release_hold(hold.user_id, hold.refund_id)
                    .await
            }
            None => Ok(()),
        }
    }
}
