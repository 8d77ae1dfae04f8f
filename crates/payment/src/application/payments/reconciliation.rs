//! Comparing our payments with the provider's records.

use uuid::Uuid;

use super::{Payments, PAGE};
use crate::application::PaymentsError;
use crate::domain::{PaymentCommand, PaymentStatus};

/// One difference reconciliation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub payment_id: Uuid,
    pub ours: String,
    pub provider: String,
}

impl Payments {
    /// Differences from the provider's records recorded so far (by reconciliation or webhooks),
    /// one line per payment: its last.
    pub async fn recorded_mismatches(&self) -> Result<Vec<(Uuid, String)>, PaymentsError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.read_models.recorded_mismatches(after, PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(*last);
            all.extend(page);
        }
        Ok(all)
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
            let page = self
                .read_models
                .payments_in(
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
                let ours = payment.settlement();
                let theirs = record.settlement(&payment.currency);
                if theirs.as_ref() != Some(&ours) {
                    let ours = ours.to_string();
                    let theirs = match theirs {
                        Some(theirs) => theirs.to_string(),
                        None => format!("{:?}", record.verdict).to_lowercase(),
                    };
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
}
