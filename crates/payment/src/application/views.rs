//! What the payment context's queries answer: payments as their owners see them, ledger entries
//! and open holds, as the read models keep them (`crate::application::ports` reads them).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::domain::{Account, Payment, PaymentStatus};

/// A payment as its owner sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentView {
    pub id: Uuid,
    /// Our order id, as the provider knows it (`orderId`).
    pub order_id: String,
    pub user_id: Uuid,
    pub product_id: String,
    pub credits: u64,
    /// In the currency's minor units.
    pub amount: i64,
    pub currency: String,
    pub provider: String,
    pub status: PaymentStatus,
    pub payment_key: Option<String>,
    pub refunded_amount: i64,
    /// What may still be refunded (approved, minus refunded and refunds in progress).
    pub refundable_amount: i64,
    /// Why the provider declined it.
    pub failure: Option<String>,
    pub requested_at: String,
    pub approved_at: Option<String>,
}

impl PaymentView {
    pub fn of(id: Uuid, payment: &Payment) -> Self {
        let approved = matches!(
            payment.status,
            Some(PaymentStatus::Approved | PaymentStatus::PartiallyRefunded)
        );
        Self {
            id,
            order_id: payment.order_id.clone(),
            user_id: payment.user_id,
            product_id: payment.product_id.clone(),
            credits: payment.credits,
            amount: payment.amount,
            currency: payment.currency.clone(),
            provider: payment.provider.clone(),
            status: payment.status.unwrap_or(PaymentStatus::Requested),
            payment_key: payment.payment_key.clone(),
            refunded_amount: payment.refunded,
            refundable_amount: if approved { payment.refundable() } else { 0 },
            failure: payment.failure.clone(),
            requested_at: payment
                .requested_at
                .map(|at| at.to_rfc3339())
                .unwrap_or_default(),
            approved_at: payment.approved_at.map(|at| at.to_rfc3339()),
        }
    }
}

/// One ledger entry: `credits` moved from one account to another.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LedgerEntry {
    pub entry: i64,
    /// `credits_purchased`, `message_spent`, `spend_refunded`; a refund's `credits_held`, then
    /// `hold_settled` (taken back) or `hold_released` (returned), and `debt_recorded` when it took
    /// back more than the wallet had, `debt_repaid` by a later purchase; `credits_revoked` for
    /// refunds from before holds.
    pub kind: String,
    pub from: Account,
    pub to: Account,
    pub credits: i64,
    /// What caused it: a payment id, a refund id or a spend key.
    pub reference: String,
    /// The wallet's available purchased credits after this entry (held ones not counted).
    pub balance: i64,
    pub at: String,
}

/// One open hold: `user_id`'s wallet holds credits for `refund_id` of `payment_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenHold {
    pub user_id: Uuid,
    pub payment_id: Uuid,
    pub refund_id: Uuid,
}
