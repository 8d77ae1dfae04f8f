//! The `Payment` aggregate: one purchase of a product through a payment provider.
//!
//! ```text
//! requested ──confirm──▶ unknown ──provider──▶ approved ──refund──▶ partially_refunded ──▶ refunded
//!     │                     │ (timed out: still unknown; resolved by asking the provider,
//!     │                     │  never by charging again)
//!     ├──▶ canceled         ├──▶ failed | canceled | expired
//!     └──▶ expired (never confirmed)
//! ```
//!
//! From the moment a confirmation goes to the provider until it answers, the outcome is unknown
//! to us, so that is the state: a crash in between leaves a payment that is resolved by a look-up.
//! Refunds reserve their amount before the provider is asked, so concurrent refunds can never
//! together exceed what was approved; a refund carries the credits the buyer's wallet holds for
//! it (held first, see `Wallet`). A cancellation the provider reports after approval is recorded
//! as a refund requested and completed at once. A provider record of another order, amount or
//! currency never approves a payment: it fails it and records the mismatch.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use msa_kernel::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Money, PaymentKey, Product, RefundReason, Settlement};

mod refund;
mod verdict;

/// The failure code of a payment whose provider record is not this order's (another order id,
/// amount or currency).
pub const RECORD_MISMATCH: &str = "PROVIDER_RECORD_MISMATCH";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    Requested,
    Unknown,
    Approved,
    Failed,
    Canceled,
    Expired,
    PartiallyRefunded,
    Refunded,
}

impl PaymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentStatus::Requested => "requested",
            PaymentStatus::Unknown => "unknown",
            PaymentStatus::Approved => "approved",
            PaymentStatus::Failed => "failed",
            PaymentStatus::Canceled => "canceled",
            PaymentStatus::Expired => "expired",
            PaymentStatus::PartiallyRefunded => "partially_refunded",
            PaymentStatus::Refunded => "refunded",
        }
    }
}

/// What a provider says of a payment (from a confirmation, a look-up or a webhook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProviderVerdict {
    Approved {
        payment_key: String,
        amount: i64,
        approved_at: DateTime<Utc>,
    },
    Declined {
        code: String,
        message: String,
    },
    Canceled,
    Expired,
    /// Not decided yet, or the provider does not know the payment.
    Pending,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", content = "data")]
pub enum PaymentEvent {
    PaymentRequested {
        order_id: String,
        user_id: Uuid,
        product_id: String,
        credits: u64,
        amount: i64,
        currency: String,
        provider: String,
        requested_at: DateTime<Utc>,
    },
    /// The confirmation went to the provider; its outcome is unknown until it answers.
    ConfirmationSent {
        payment_key: String,
    },
    PaymentApproved {
        payment_key: String,
        amount: i64,
        approved_at: DateTime<Utc>,
    },
    PaymentFailed {
        code: String,
        message: String,
    },
    /// The provider did not answer in time: the payment stays unknown until a look-up tells.
    ProviderTimedOut {
        during: String,
    },
    PaymentCanceled {
        by: Option<Uuid>,
    },
    PaymentExpired,
    /// A refund's amount is reserved; the provider is asked next.
    RefundRequested {
        refund_id: Uuid,
        amount: i64,
        reason: String,
        by: Uuid,
        /// The credits the buyer's wallet holds for this refund (none for refunds requested
        /// before wallets held credits: theirs are revoked as the balance allows).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        held_credits: Option<u64>,
    },
    RefundCompleted {
        refund_id: Uuid,
        amount: i64,
        /// Everything refunded so far, this refund included.
        refunded_total: i64,
    },
    RefundFailed {
        refund_id: Uuid,
        amount: i64,
        code: String,
        message: String,
    },
    /// Reconciliation found the provider's record different from ours.
    MismatchFound {
        ours: String,
        provider: String,
    },
}

impl DomainEvent for PaymentEvent {
    const CONTEXT: &'static str = "payment";
}

#[derive(Debug, Clone, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum PaymentCommand {
    Request {
        order_id: String,
        user_id: Uuid,
        product: Product,
        provider: String,
        at: DateTime<Utc>,
    },
    /// The owner confirms with the provider's payment key and the amount the client was shown.
    SendForConfirmation {
        caller: Uuid,
        payment_key: PaymentKey,
        amount: i64,
    },
    Resolve(ProviderVerdict),
    RecordTimeout {
        during: String,
    },
    Cancel {
        caller: Uuid,
    },
    /// Expires a payment requested before `now - after` and never confirmed.
    Expire {
        now: DateTime<Utc>,
        after: Duration,
    },
    RequestRefund(RefundRequest),
    CompleteRefund {
        refund_id: Uuid,
    },
    FailRefund {
        refund_id: Uuid,
        code: String,
        message: String,
    },
    /// Records a difference between the provider's record and ours (once per distinct one).
    RecordMismatch {
        ours: String,
        provider: String,
    },
}

/// A refund asked of a payment: by its owner within `window` of approval, or by an admin.
#[derive(Debug, Clone)]
pub struct RefundRequest {
    pub refund_id: Uuid,
    pub amount: i64,
    pub reason: RefundReason,
    pub caller: Uuid,
    pub caller_is_admin: bool,
    pub now: DateTime<Utc>,
    /// How long after approval an owner may ask for a refund (admins any time).
    pub window: Duration,
    /// The credits the wallet holds for this refund, and until when the hold may be used.
    pub held: Option<HeldCredits>,
}

/// Credits a wallet holds for a refund, usable until `valid_until`: after that the sweeper may
/// release a hold whose refund never reached the payment, so the payment refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldCredits {
    pub credits: u64,
    pub valid_until: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentError {
    #[error("the payment already exists")]
    AlreadyExists,
    #[error("no such payment")]
    NotFound,
    #[error("this payment belongs to someone else")]
    NotYours,
    #[error("the amount does not match the order's amount ({expected})")]
    AmountMismatch { expected: i64 },
    #[error("the payment is {0} and cannot be confirmed")]
    NotConfirmable(&'static str),
    #[error("the payment's outcome is being found out from the provider")]
    OutcomePending,
    #[error("the payment is {0} and cannot be canceled")]
    NotCancelable(&'static str),
    #[error("the payment is {0}; only approved payments are refunded")]
    NotRefundable(&'static str),
    #[error("a refund amount is a positive number")]
    InvalidRefundAmount,
    #[error("the refund exceeds what remains to refund ({remaining})")]
    RefundExceedsRemaining { remaining: i64 },
    #[error("the refund window of this payment has closed")]
    RefundWindowClosed,
    #[error("the credits held for this refund no longer match the payment; try again")]
    HoldOutdated,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payment {
    pub status: Option<PaymentStatus>,
    pub order_id: String,
    pub user_id: Uuid,
    pub product_id: String,
    pub credits: u64,
    pub amount: i64,
    pub currency: String,
    pub provider: String,
    pub payment_key: Option<String>,
    pub requested_at: Option<DateTime<Utc>>,
    pub approved_at: Option<DateTime<Utc>>,
    pub refunded: i64,
    pub pending_refunds: BTreeMap<Uuid, i64>,
    pub failure: Option<String>,
    pub last_mismatch: Option<String>,
    /// The credits held in the buyer's wallet for each refund requested with a hold.
    #[serde(default)]
    pub held_refunds: BTreeMap<Uuid, u64>,
}

impl Payment {
    pub fn exists(&self) -> bool {
        self.status.is_some()
    }

    pub fn status(&self) -> Result<PaymentStatus, PaymentError> {
        self.status.ok_or(PaymentError::NotFound)
    }

    /// The order's price.
    pub fn price(&self) -> Money {
        Money::new(self.amount, self.currency.clone())
    }

    /// The order as a mismatch records it: `order <id> of <price>`.
    pub fn order_terms(&self) -> String {
        format!("order {} of {}", self.order_id, self.price())
    }

    /// What the payment comes to, as far as we know: charged and refunded.
    pub fn settlement(&self) -> Settlement {
        Settlement {
            charged: self.price(),
            refunded: self.refunded,
        }
    }

    /// What may still be refunded: approved, minus refunded and reserved.
    pub fn refundable(&self) -> i64 {
        self.amount
            .saturating_sub(self.refunded)
            .saturating_sub(self.reserved())
    }

    /// Refunds requested and not yet completed or failed.
    pub fn reserved(&self) -> i64 {
        self.pending_refunds
            .values()
            .fold(0i64, |sum, amount| sum.saturating_add(*amount))
    }

    /// The credits a refund of `amount` takes back now: the part of the pack the refunded money
    /// paid for, rounded so that refunds of the whole amount take back exactly the pack.
    pub fn credits_for_refund(&self, amount: i64) -> u64 {
        let refunded_before = self.amount.saturating_sub(self.refundable());
        credits_for_refund(self.credits, self.amount, refunded_before, amount)
    }

    fn owned_by(&self, caller: Uuid) -> Result<PaymentStatus, PaymentError> {
        let status = self.status()?;
        if self.user_id != caller {
            return Err(PaymentError::NotYours);
        }
        Ok(status)
    }
}

/// The credits refunding `refund` (after `refunded_before`) of a payment of `amount` for
/// `credits` takes back, rounded so that a full refund takes back exactly the pack. Amounts are
/// clamped to the payment's, so no input overflows.
pub fn credits_for_refund(credits: u64, amount: i64, refunded_before: i64, refund: i64) -> u64 {
    let share = |refunded: i64| -> u64 {
        let refunded = refunded.clamp(0, amount.max(0)) as u128;
        let share = (credits as u128 * refunded).div_ceil(amount.max(1) as u128);
        u64::try_from(share).unwrap_or(u64::MAX)
    };
    share(refunded_before.saturating_add(refund)).saturating_sub(share(refunded_before))
}

impl Aggregate for Payment {
    const KIND: &'static str = "payment.payment";

    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;

    fn apply(&mut self, event: &PaymentEvent) {
        match event {
            PaymentEvent::PaymentRequested {
                order_id,
                user_id,
                product_id,
                credits,
                amount,
                currency,
                provider,
                requested_at,
            } => {
                *self = Payment {
                    status: Some(PaymentStatus::Requested),
                    order_id: order_id.clone(),
                    user_id: *user_id,
                    product_id: product_id.clone(),
                    credits: *credits,
                    amount: *amount,
                    currency: currency.clone(),
                    provider: provider.clone(),
                    requested_at: Some(*requested_at),
                    ..Payment::default()
                };
            }
            PaymentEvent::ConfirmationSent { payment_key } => {
                self.status = Some(PaymentStatus::Unknown);
                self.payment_key = Some(payment_key.clone());
            }
            PaymentEvent::PaymentApproved {
                payment_key,
                approved_at,
                ..
            } => {
                self.status = Some(PaymentStatus::Approved);
                self.payment_key = Some(payment_key.clone());
                self.approved_at = Some(*approved_at);
            }
            PaymentEvent::PaymentFailed { code, message } => {
                self.status = Some(PaymentStatus::Failed);
                self.failure = Some(format!("{code}: {message}"));
            }
            PaymentEvent::ProviderTimedOut { .. } => {}
            PaymentEvent::PaymentCanceled { .. } => self.status = Some(PaymentStatus::Canceled),
            PaymentEvent::PaymentExpired => self.status = Some(PaymentStatus::Expired),
            PaymentEvent::RefundRequested {
                refund_id,
                amount,
                held_credits,
                ..
            } => {
                self.pending_refunds.insert(*refund_id, *amount);
                if let Some(credits) = held_credits {
                    self.held_refunds.insert(*refund_id, *credits);
                }
            }
            PaymentEvent::RefundCompleted {
                refund_id,
                refunded_total,
                ..
            } => {
                self.pending_refunds.remove(refund_id);
                self.refunded = *refunded_total;
                self.status = Some(if self.refunded >= self.amount {
                    PaymentStatus::Refunded
                } else {
                    PaymentStatus::PartiallyRefunded
                });
            }
            PaymentEvent::RefundFailed { refund_id, .. } => {
                self.pending_refunds.remove(refund_id);
            }
            PaymentEvent::MismatchFound { ours, provider } => {
                self.last_mismatch = Some(format!("{ours} / {provider}"));
            }
        }
    }

    fn command_name(command: &Self::Command) -> &'static str {
        command.into()
    }

    fn decide(&self, command: &PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentError> {
        use PaymentStatus as S;
        let event = match command {
            PaymentCommand::Request {
                order_id,
                user_id,
                product,
                provider,
                at,
            } => {
                if self.exists() {
                    return Err(PaymentError::AlreadyExists);
                }
                PaymentEvent::PaymentRequested {
                    order_id: order_id.clone(),
                    user_id: *user_id,
                    product_id: product.id.clone(),
                    credits: product.credits,
                    amount: product.amount,
                    currency: product.currency.clone(),
                    provider: provider.clone(),
                    requested_at: *at,
                }
            }
            PaymentCommand::SendForConfirmation {
                caller,
                payment_key,
                amount,
            } => {
                match self.owned_by(*caller)? {
                    S::Requested => {}
                    S::Unknown => return Err(PaymentError::OutcomePending),
                    other => return Err(PaymentError::NotConfirmable(other.as_str())),
                }
                if *amount != self.amount {
                    return Err(PaymentError::AmountMismatch {
                        expected: self.amount,
                    });
                }
                PaymentEvent::ConfirmationSent {
                    payment_key: payment_key.as_str().to_owned(),
                }
            }
            PaymentCommand::Resolve(verdict) => return self.resolve(verdict),
            PaymentCommand::RecordTimeout { during } => {
                self.status()?;
                PaymentEvent::ProviderTimedOut {
                    during: during.clone(),
                }
            }
            PaymentCommand::Cancel { caller } => match self.owned_by(*caller)? {
                S::Requested => PaymentEvent::PaymentCanceled { by: Some(*caller) },
                S::Canceled => return Ok(vec![]),
                other => return Err(PaymentError::NotCancelable(other.as_str())),
            },
            PaymentCommand::Expire { now, after } => match (self.status()?, self.requested_at) {
                (S::Requested, Some(at)) if at + *after <= *now => PaymentEvent::PaymentExpired,
                _ => return Ok(vec![]),
            },
            PaymentCommand::RequestRefund(request) => return self.request_refund(request),
            PaymentCommand::CompleteRefund { refund_id } => {
                return Ok(self.complete_refund(*refund_id))
            }
            PaymentCommand::FailRefund {
                refund_id,
                code,
                message,
            } => return Ok(self.fail_refund(*refund_id, code, message)),
            PaymentCommand::RecordMismatch { ours, provider } => {
                return self.record_mismatch(ours, provider)
            }
        };
        Ok(vec![event])
    }
}
