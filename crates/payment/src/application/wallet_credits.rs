//! The process manager inside the payment context that keeps wallets in step with payments:
//! an approved payment credits its pack to the buyer's wallet; a completed refund settles the
//! credits its wallet holds for it, a failed one releases them. (The refund use case does the same
//! at once; this covers a crash in between. Refunds requested before wallets held credits take the
//! refunded share of the pack back as the balance allows.) It consumes the context's own events (in-process or from
//! `payment.events`), and each wallet command is keyed by the payment or refund id in the event
//! store, so a redelivered event grants nothing twice.

use std::sync::Arc;

use async_trait::async_trait;
use msa_kernel::consumer::{EventHandler, HandlerError};
use msa_kernel::repository::decode;
use msa_kernel::{Aggregate, EventStore, RecordedEvent, Repository};
use uuid::Uuid;

use super::wallets::Wallets;
use crate::domain::{credits_for_refund, Payment, PaymentEvent};

pub const CONSUMER: &str = "payment.wallet-credits";

pub struct WalletCredits {
    payments: Repository<Payment>,
    wallets: Arc<Wallets>,
}

impl WalletCredits {
    pub fn new(events: Arc<dyn EventStore>, wallets: Arc<Wallets>) -> Self {
        Self {
            payments: Repository::new(events),
            wallets,
        }
    }
}

#[async_trait]
impl<Tx: Send> EventHandler<Tx> for WalletCredits {
    fn name(&self) -> &str {
        CONSUMER
    }

    /// Approvals and decided refunds; not the wallets' own events (one per message sent).
    fn wants(&self, event: &RecordedEvent) -> bool {
        event.stream_id.category() == Payment::KIND
            && matches!(
                event.event_type.as_str(),
                "payment.PaymentApproved" | "payment.RefundCompleted" | "payment.RefundFailed"
            )
    }

    async fn handle(&self, _tx: &mut Tx, event: &RecordedEvent) -> Result<(), HandlerError> {
        if event.stream_id.category() != Payment::KIND {
            return Ok(());
        }
        let change = decode::<PaymentEvent>(event).map_err(HandlerError::new)?;
        if !matches!(
            change,
            PaymentEvent::PaymentApproved { .. }
                | PaymentEvent::RefundCompleted { .. }
                | PaymentEvent::RefundFailed { .. }
        ) {
            return Ok(());
        }
        let payment_id: Uuid = event.stream_id.id().parse().map_err(HandlerError::new)?;
        // The event names the payment; the buyer and the pack are in the payment's history.
        let payment = self
            .payments
            .load(&event.stream_id)
            .await
            .map_err(HandlerError::new)?
            .state;
        let result = match change {
            PaymentEvent::PaymentApproved { .. } => {
                self.wallets
                    .credit_purchase(payment.user_id, payment_id, payment.credits)
                    .await
            }
            PaymentEvent::RefundCompleted { refund_id, .. }
                if payment.held_refunds.contains_key(&refund_id) =>
            {
                self.wallets.settle_hold(payment.user_id, refund_id).await
            }
            PaymentEvent::RefundCompleted {
                refund_id,
                amount,
                refunded_total,
            } => {
                let credits = credits_for_refund(
                    payment.credits,
                    payment.amount,
                    refunded_total.saturating_sub(amount),
                    amount,
                );
                self.wallets
                    .revoke_refunded(payment.user_id, payment_id, refund_id, credits)
                    .await
            }
            PaymentEvent::RefundFailed { refund_id, .. } => {
                self.wallets.release_hold(payment.user_id, refund_id).await
            }
            _ => Ok(()),
        };
        result.map_err(HandlerError::new)
    }
}
