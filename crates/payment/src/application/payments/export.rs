//! What payment keeps about one person, for their export (`GET /v1/users/me/export`, composed by
//! user-chat): their payments, each with its refunds, and their wallet's ledger lines. A page at
//! a time (newest first, keyed by payment id or ledger entry), so an export never holds a whole
//! history at once. Between microservices user-chat reads it at
//! `GET /internal/v1/users/{user_id}/records/{part}` with its service identity.

use msa_kernel::repository::decode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::{stream, Payments};
use crate::application::views::PaymentView;
use crate::application::PaymentsError;
use crate::domain::PaymentEvent;

/// The most items a page holds.
pub const MAX_PAGE: u32 = msa_kernel::page::MAX_RECORDS;

/// A part of what payment keeps about a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentRecords {
    Payments,
    Ledger,
}

impl PaymentRecords {
    pub const ALL: [PaymentRecords; 2] = [PaymentRecords::Payments, PaymentRecords::Ledger];

    /// Its name in the export document and its path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentRecords::Payments => "payments",
            PaymentRecords::Ledger => "ledger",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|part| part.as_str() == raw)
    }
}

/// A page of one part: its items (`ExportedPayment` or `LedgerEntry`) and where the next page
/// starts (`null`: this was the last).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentRecordPage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
}

/// A payment with its refunds.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExportedPayment {
    #[serde(flatten)]
    pub payment: PaymentView,
    pub refunds: Vec<ExportedRefund>,
}

/// A refund of a payment, from its request to its outcome.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ExportedRefund {
    pub refund_id: Uuid,
    pub amount: i64,
    pub reason: String,
    /// Who asked for it (the buyer, or an admin).
    pub requested_by: Uuid,
    pub requested_at: String,
    /// `pending`, `completed` or `failed`.
    pub status: String,
    pub settled_at: Option<String>,
    /// The provider's refusal, for a failed refund.
    pub failure: Option<String>,
}

impl Payments {
    /// One page of `part` of what payment keeps about `user_id`, after `cursor` (a page's
    /// `next_cursor`; `Invalid` naming `cursor` otherwise), at most `limit` items.
    pub async fn records(
        &self,
        user_id: Uuid,
        part: PaymentRecords,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<PaymentRecordPage, PaymentsError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let bad_cursor = || {
            PaymentsError::Invalid(vec![msa_kernel::FieldError::new(
                "cursor",
                "not a cursor this API gave out",
            )])
        };
        let (items, last) = match part {
            PaymentRecords::Payments => {
                let before = cursor
                    .map(|raw| raw.parse::<Uuid>().map_err(|_| bad_cursor()))
                    .transpose()?;
                let payments = self.read_models.payments_of(user_id, before, limit).await?;
                let last = payments.last().map(|p| p.id.to_string());
                let mut items = Vec::with_capacity(payments.len());
                for payment in payments {
                    let refunds = self.refunds_of(payment.id).await?;
                    items.push(to_value(&ExportedPayment { payment, refunds })?);
                }
                (items, last)
            }
            PaymentRecords::Ledger => {
                let before = cursor
                    .map(|raw| raw.parse::<i64>().map_err(|_| bad_cursor()))
                    .transpose()?;
                let entries = self.read_models.entries(user_id, before, limit).await?;
                let last = entries.last().map(|e| e.entry.to_string());
                let items = entries.iter().map(to_value).collect::<Result<_, _>>()?;
                (items, last)
            }
        };
        let full = items.len() == limit as usize;
        Ok(PaymentRecordPage {
            items,
            next_cursor: if full { last } else { None },
        })
    }

    /// A payment's refunds, read from its stream (a payment has a handful of events).
    async fn refunds_of(&self, payment_id: Uuid) -> Result<Vec<ExportedRefund>, PaymentsError> {
        let mut refunds: Vec<ExportedRefund> = Vec::new();
        for recorded in self.events.read_stream(&stream(payment_id), 0).await? {
            let at = recorded.occurred_at.to_rfc3339();
            let event =
                decode::<PaymentEvent>(&recorded).map_err(msa_kernel::StoreError::backend)?;
            let settle = |refunds: &mut Vec<ExportedRefund>, id: Uuid, status: &str, failure| {
                if let Some(refund) = refunds.iter_mut().find(|r| r.refund_id == id) {
                    refund.status = status.to_owned();
                    refund.settled_at = Some(at.clone());
                    refund.failure = failure;
                }
            };
            match event {
                PaymentEvent::RefundRequested {
                    refund_id,
                    amount,
                    reason,
                    by,
                    ..
                } => refunds.push(ExportedRefund {
                    refund_id,
                    amount,
                    reason,
                    requested_by: by,
                    requested_at: at.clone(),
                    status: "pending".into(),
                    settled_at: None,
                    failure: None,
                }),
                PaymentEvent::RefundCompleted { refund_id, .. } => {
                    settle(&mut refunds, refund_id, "completed", None)
                }
                PaymentEvent::RefundFailed {
                    refund_id,
                    code,
                    message,
                    ..
                } => settle(
                    &mut refunds,
                    refund_id,
                    "failed",
                    Some(format!("{code}: {message}")),
                ),
                _ => {}
            }
        }
        Ok(refunds)
    }
}

fn to_value<T: Serialize>(item: &T) -> Result<Value, PaymentsError> {
    serde_json::to_value(item).map_err(|e| PaymentsError::Store(msa_kernel::StoreError::backend(e)))
}
