//! Approved payments whose credits no wallet shows: the wallet process manager
//! (`payment.wallet-credits`) credits each approval within moments; one it left behind (its
//! event dead-lettered, the process manager stopped) is credited by the sweeper, so a buyer is
//! never left paid and uncredited until an operator replays a dead letter. The credit is keyed by
//! the payment in the wallet, so the process manager and the sweeper crediting the same payment
//! grant it once.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Payments, PAGE};
use crate::application::PaymentsError;

impl Payments {
    /// Credits every payment approved before `before` that no wallet shows credited (paged
    /// through to the end; one that fails is logged and the round goes on).
    pub(super) async fn credit_uncredited(
        &self,
        before: DateTime<Utc>,
    ) -> Result<(), PaymentsError> {
        let mut after: Option<Uuid> = None;
        loop {
            let page = self
                .read_models
                .approved_before(before, after, PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(*last);
            for payment_id in page {
                let credited = match self.load(payment_id).await {
                    Ok(payment) => {
                        self.wallets
                            .credit_purchase(payment.user_id, payment_id, payment.credits)
                            .await
                    }
                    Err(error) => Err(error),
                };
                match credited {
                    Ok(()) => tracing::warn!(%payment_id,
                        "an approved payment's credits were missing from the wallet; credited by the sweeper"),
                    Err(error) => {
                        tracing::warn!(%payment_id, %error, "crediting an approved payment failed")
                    }
                }
            }
        }
        Ok(())
    }
}
