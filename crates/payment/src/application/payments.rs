//! Payment use cases: request a product, confirm with the provider, cancel, refund, take a
//! webhook's report, resolve what the provider left unknown, reconcile with its records; a
//! person's payments for their export ([`export`]).

mod decided_holds;
pub mod export;
mod uncredited;

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use msa_kernel::repository::IdempotencyKey;
use msa_kernel::{EventMetadata, EventStore, FieldError, Repository, StreamId};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::ports::PaymentReadModels;
use super::provider::{Cancellation, Confirmation, PaymentProvider, ProviderError, ProviderRecord};
use super::views::{LedgerEntry, PaymentView};
use super::wallets::Wallets;
use super::PaymentsError;
pub use crate::domain::credits_for_refund;
use crate::domain::{
    Catalog, HeldCredits, Payment, PaymentCommand, PaymentError, PaymentStatus, ProviderVerdict,
    RECORD_MISMATCH,
};
use msa_kernel::Aggregate as _;

/// Settings of the payment use cases.
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    /// How long after approval an owner may ask for a refund.
    pub refund_window: Duration,
    /// A requested payment never confirmed within this expires.
    pub expire_after: Duration,
    /// How long credits held for a refund may wait for the refund to reach its payment; the
    /// sweeper releases a hold left longer (a crash between the two steps) whose refund the
    /// payment never recorded.
    pub hold_timeout: Duration,
    /// Open payments (requested, or waiting for the provider's verdict) a user may have at once.
    pub open_payments_per_user: u32,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        Self {
            refund_window: Duration::days(7),
            expire_after: Duration::minutes(30),
            hold_timeout: Duration::seconds(30),
            open_payments_per_user: 5,
        }
    }
}

/// A refund's outcome.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct RefundView {
    pub refund_id: Uuid,
    pub amount: i64,
    /// `completed`, or `pending` while the provider has not confirmed it (retried in the background).
    pub status: String,
    pub payment: PaymentView,
}

/// One difference reconciliation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub payment_id: Uuid,
    pub ours: String,
    pub provider: String,
}

pub struct Payments {
    payments: Repository<Payment>,
    events: Arc<dyn EventStore>,
    /// A user's payment requests take turns in this process, so the open-payment cap counts
    /// each one (striped: fixed memory).
    request_turns: Vec<tokio::sync::Mutex<()>>,
    read_models: Arc<dyn PaymentReadModels>,
    catalog: Catalog,
    provider: Arc<dyn PaymentProvider>,
    wallets: Arc<Wallets>,
    settings: PaymentSettings,
}

fn metadata(actor: &str) -> EventMetadata {
    EventMetadata::current(Some(actor.to_owned()))
}

fn stream(payment_id: Uuid) -> StreamId {
    Repository::<Payment>::stream_id(payment_id)
}

/// How far a sweep pages at a time.
const PAGE: u32 = 100;

/// A refund id named by what the provider did, so repeated reports of one cancellation at the
/// provider are one refund here.
fn provider_refund_id(payment_id: Uuid, refunded_total: i64) -> Uuid {
    let digest = Sha256::digest(format!("provider-cancel:{payment_id}:{refunded_total}"));
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

impl Payments {
    pub fn new(
        events: Arc<dyn EventStore>,
        read_models: Arc<dyn PaymentReadModels>,
        catalog: Catalog,
        provider: Arc<dyn PaymentProvider>,
        wallets: Arc<Wallets>,
        settings: PaymentSettings,
    ) -> Self {
        Self {
            payments: Repository::new(events.clone()),
            events,
            request_turns: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
            read_models,
            catalog,
            provider,
            wallets,
            settings,
        }
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn provider_name(&self) -> &'static str {
        self.provider.name()
    }

    async fn load(&self, payment_id: Uuid) -> Result<Payment, PaymentsError> {
        let payment = self.payments.load(&stream(payment_id)).await?.state;
        if !payment.exists() {
            return Err(PaymentError::NotFound.into());
        }
        Ok(payment)
    }

    async fn execute(
        &self,
        payment_id: Uuid,
        command: PaymentCommand,
        actor: &str,
    ) -> Result<PaymentView, PaymentsError> {
        let executed = self
            .payments
            .execute(&stream(payment_id), &command, &metadata(actor))
            .await?;
        // What the provider said, counted once: when it changed the payment.
        let outcome = match &command {
            _ if executed.events.is_empty() => None,
            PaymentCommand::Resolve(ProviderVerdict::Approved { .. }) => Some("approved"),
            PaymentCommand::Resolve(ProviderVerdict::Declined { .. }) => Some("declined"),
            PaymentCommand::Resolve(ProviderVerdict::Canceled) => Some("canceled"),
            PaymentCommand::Resolve(ProviderVerdict::Expired) => Some("expired"),
            PaymentCommand::Resolve(ProviderVerdict::Pending) => Some("pending"),
            PaymentCommand::RecordTimeout { .. } => Some("unknown"),
            _ => None,
        };
        if let Some(outcome) = outcome {
            metrics::counter!("msa_payment_payments_total", "outcome" => outcome).increment(1);
        }
        Ok(PaymentView::of(payment_id, &executed.state))
    }

    /// A payment as its owner (or an admin) sees it.
    pub async fn payment(
        &self,
        caller: Uuid,
        caller_is_admin: bool,
        payment_id: Uuid,
    ) -> Result<PaymentView, PaymentsError> {
        let payment = self.load(payment_id).await?;
        if payment.user_id != caller && !caller_is_admin {
            // Somebody else's payment does not exist for the caller.
            return Err(PaymentError::NotFound.into());
        }
        Ok(PaymentView::of(payment_id, &payment))
    }

    /// Requests a payment for a product. `idempotency_key` names the request: the same key with
    /// the same product answers the first payment; with another product it is refused.
    /// Returns the payment and whether this call created it.
    pub async fn request(
        &self,
        user_id: Uuid,
        product_id: &str,
        idempotency_key: &str,
    ) -> Result<(PaymentView, bool), PaymentsError> {
        let product = self
            .catalog
            .find(product_id)
            .ok_or_else(|| PaymentsError::UnknownProduct(product_id.to_owned()))?
            .clone();
        let payment_id = Uuid::now_v7();
        let command = PaymentCommand::Request {
            order_id: format!("order-{}", payment_id.simple()),
            user_id,
            product,
            provider: self.provider.name().to_owned(),
            at: Utc::now(),
        };
        let fingerprint: String = Sha256::digest(product_id.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let scope = format!("payment.request:{user_id}");
        let stripe = user_id.as_u128() as usize % self.request_turns.len();
        let _turn = self.request_turns[stripe].lock().await;
        let cap = self.settings.open_payments_per_user;
        let replay = self
            .events
            .idempotency_record(&scope, idempotency_key)
            .await?
            .is_some();
        if !replay && self.read_models.open_payments_of(user_id).await? >= cap {
            return Err(PaymentsError::TooManyOpenPayments(cap));
        }
        let key = IdempotencyKey {
            scope,
            key: idempotency_key.to_owned(),
            fingerprint,
        };
        let outcome = self
            .payments
            .execute_idempotent(
                &stream(payment_id),
                &command,
                &metadata(&user_id.to_string()),
                key,
                |state, _| serde_json::json!(PaymentView::of(payment_id, state)),
            )
            .await?;
        let view: PaymentView = serde_json::from_value(outcome.result)
            .map_err(|e| PaymentsError::Store(msa_kernel::StoreError::backend(e)))?;
        if !outcome.replayed {
            // The cap counts the list: the next request of this user waits until it shows this
            // payment (bounded: a stalled projection delays, it does not block).
            for _ in 0..100 {
                if self.read_models.lists(view.id).await? {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        Ok((view, !outcome.replayed))
    }

    /// Confirms a payment with the provider. The amount must be the order's. A payment whose
    /// outcome is unknown is resolved by asking the provider, never by charging again.
    pub async fn confirm(
        &self,
        caller: Uuid,
        payment_id: Uuid,
        payment_key: &str,
        amount: i64,
    ) -> Result<PaymentView, PaymentsError> {
        if payment_key.trim().is_empty() || payment_key.len() > 200 {
            return Err(PaymentsError::Invalid(vec![FieldError::new(
                "payment_key",
                "the provider's payment key (1 to 200 characters)",
            )]));
        }
        let command = PaymentCommand::SendForConfirmation {
            caller,
            payment_key: payment_key.to_owned(),
            amount,
        };
        let sent = match self.execute(payment_id, command, &caller.to_string()).await {
            Ok(sent) => sent,
            Err(PaymentsError::Payment(PaymentError::OutcomePending)) => {
                return self.resolve(payment_id).await;
            }
            // A repeat of a confirmation that went through answers the payment as it is.
            Err(PaymentsError::Payment(PaymentError::NotConfirmable(_))) => {
                let payment = self.load(payment_id).await?;
                if payment.payment_key.as_deref() == Some(payment_key) {
                    return Ok(PaymentView::of(payment_id, &payment));
                }
                return Err(PaymentError::NotConfirmable(payment.status()?.as_str()).into());
            }
            Err(other) => return Err(other),
        };
        let confirmation = Confirmation {
            payment_key: payment_key.to_owned(),
            order_id: sent.order_id.clone(),
            amount,
            currency: sent.currency.clone(),
        };
        let verdict = match self.provider.confirm(&confirmation).await {
            Ok(verdict) => verdict,
            Err(ProviderError::Refused { code, message }) => {
                ProviderVerdict::Declined { code, message }
            }
            Err(error) => {
                tracing::warn!(%payment_id, %error, "confirmation outcome unknown; it will be looked up");
                let during = format!("confirm: {error}");
                return self
                    .execute(
                        payment_id,
                        PaymentCommand::RecordTimeout { during },
                        "provider",
                    )
                    .await;
            }
        };
        self.execute(payment_id, PaymentCommand::Resolve(verdict), "provider")
            .await
    }

    /// Asks the provider about a payment whose outcome is unknown and records what it says.
    pub async fn resolve(&self, payment_id: Uuid) -> Result<PaymentView, PaymentsError> {
        let payment = self.load(payment_id).await?;
        let (Some(PaymentStatus::Unknown), Some(key)) = (payment.status, &payment.payment_key)
        else {
            return Ok(PaymentView::of(payment_id, &payment));
        };
        match self.provider.look_up(key).await {
            Ok(record) => self.record_verdict(payment_id, &payment, record).await,
            Err(error) => {
                tracing::warn!(%payment_id, %error, "payment outcome still unknown");
                Ok(PaymentView::of(payment_id, &payment))
            }
        }
    }

    /// The owner cancels a payment not confirmed yet.
    pub async fn cancel(
        &self,
        caller: Uuid,
        payment_id: Uuid,
    ) -> Result<PaymentView, PaymentsError> {
        self.load(payment_id).await?;
        self.execute(
            payment_id,
            PaymentCommand::Cancel { caller },
            &caller.to_string(),
        )
        .await
    }

    /// Records what the provider's record says of an open payment: a record of another order,
    /// amount or currency is recorded as a mismatch and fails the payment, never approves it.
    async fn record_verdict(
        &self,
        payment_id: Uuid,
        payment: &Payment,
        record: ProviderRecord,
    ) -> Result<PaymentView, PaymentsError> {
        if let Some(difference) =
            record.difference(&payment.order_id, payment.amount, &payment.currency)
        {
            tracing::warn!(%payment_id, %difference, "the provider's record is not this order");
            let command = PaymentCommand::RecordMismatch {
                ours: format!(
                    "order {} of {} {}",
                    payment.order_id, payment.amount, payment.currency
                ),
                provider: difference.clone(),
            };
            self.execute(payment_id, command, "provider").await?;
            let verdict = ProviderVerdict::Declined {
                code: RECORD_MISMATCH.into(),
                message: format!("the provider's record is not this order ({difference})"),
            };
            return self
                .execute(payment_id, PaymentCommand::Resolve(verdict), "provider")
                .await;
        }
        self.execute(
            payment_id,
            PaymentCommand::Resolve(record.verdict),
            "provider",
        )
        .await
    }

    /// Refunds part or all of an approved payment: by its owner within the refund window (and
    /// only while the credits it bought are unspent), or by an admin (the credits spent already
    /// become a debt of the wallet). The credits are held in the wallet first, then the amount is
    /// reserved on the payment; so two refunds never take back the same credits, and refunds
    /// together never exceed what was approved.
    pub async fn refund(
        &self,
        caller: Uuid,
        caller_is_admin: bool,
        payment_id: Uuid,
        amount: i64,
        reason: &str,
    ) -> Result<RefundView, PaymentsError> {
        let reason = reason.trim();
        if reason.is_empty() || reason.chars().count() > 200 {
            return Err(PaymentsError::Invalid(vec![FieldError::new(
                "reason",
                "1 to 200 characters",
            )]));
        }
        let payment = self.load(payment_id).await?;
        if payment.user_id != caller && !caller_is_admin {
            return Err(PaymentError::NotFound.into());
        }
        let refund_id = Uuid::now_v7();
        let (payment, held) = self
            .hold_and_request_refund(
                payment_id,
                payment,
                refund_id,
                amount,
                reason,
                caller,
                caller_is_admin,
            )
            .await?;
        let (payment, completed) = self
            .send_refund(payment, held, refund_id, amount, reason)
            .await?;
        Ok(RefundView {
            refund_id,
            amount,
            status: if completed { "completed" } else { "pending" }.into(),
            payment,
        })
    }

    /// The two steps of every refund: the wallet holds the credits the refund takes back (owing
    /// what it lacks when `caller_is_admin`), then the payment reserves the amount. A payment
    /// that refuses releases the hold; a crash in between leaves a hold the sweeper releases.
    #[allow(clippy::too_many_arguments)]
    async fn hold_and_request_refund(
        &self,
        payment_id: Uuid,
        payment: Payment,
        refund_id: Uuid,
        amount: i64,
        reason: &str,
        caller: Uuid,
        caller_is_admin: bool,
    ) -> Result<(PaymentView, Option<Uuid>), PaymentsError> {
        let now = Utc::now();
        let command = |held: Option<HeldCredits>| PaymentCommand::RequestRefund {
            refund_id,
            amount,
            reason: reason.to_owned(),
            caller,
            caller_is_admin,
            now,
            window: self.settings.refund_window,
            held,
        };
        // Decided on the state read first: a refusal (amount, window, state) costs no hold.
        payment.decide(&command(None))?;
        let credits = payment.credits_for_refund(amount);
        self.wallets
            .hold_for_refund(
                payment.user_id,
                payment_id,
                refund_id,
                credits,
                caller_is_admin,
            )
            .await?;
        let held = HeldCredits {
            credits,
            valid_until: now + self.settings.hold_timeout,
        };
        match self
            .execute(payment_id, command(Some(held)), &caller.to_string())
            .await
        {
            Ok(view) => Ok((view, Some(payment.user_id))),
            Err(refused) => {
                if let Err(error) = self.wallets.release_hold(payment.user_id, refund_id).await {
                    // The sweeper releases it after the hold's time.
                    tracing::warn!(%payment_id, %refund_id, %error, "a refused refund's hold stays for now");
                }
                Err(match refused {
                    PaymentsError::Payment(PaymentError::HoldOutdated) => PaymentsError::Busy,
                    other => other,
                })
            }
        }
    }

    /// Asks the provider to refund a reserved amount (again, after a lost answer: the refund id
    /// is the provider's idempotency key) and records the outcome; the credits held for it in
    /// `holder`'s wallet are then taken back or returned.
    /// Returns the payment and whether the provider confirmed the refund.
    async fn send_refund(
        &self,
        payment: PaymentView,
        holder: Option<Uuid>,
        refund_id: Uuid,
        amount: i64,
        reason: &str,
    ) -> Result<(PaymentView, bool), PaymentsError> {
        let payment_id = payment.id;
        let cancellation = Cancellation {
            payment_key: payment.payment_key.clone().unwrap_or_default(),
            amount,
            reason: reason.to_owned(),
            idempotency_key: refund_id.to_string(),
        };
        match self.provider.cancel(&cancellation).await {
            Ok(()) => {
                let completed = self
                    .execute(
                        payment_id,
                        PaymentCommand::CompleteRefund { refund_id },
                        "provider",
                    )
                    .await?;
                self.end_hold(holder, refund_id, true).await;
                Ok((completed, true))
            }
            Err(ProviderError::Refused { code, message }) => {
                let command = PaymentCommand::FailRefund {
                    refund_id,
                    code: code.clone(),
                    message: message.clone(),
                };
                self.execute(payment_id, command, "provider").await?;
                self.end_hold(holder, refund_id, false).await;
                Err(PaymentsError::ProviderRefused { code, message })
            }
            Err(error) => {
                tracing::warn!(%payment_id, %refund_id, %error, "refund not confirmed by the provider; it will be retried");
                Ok((payment, false))
            }
        }
    }

    /// Settles (the refund completed) or releases the credits held for a refund, now rather than
    /// when the wallet process manager gets to the payment's event (which does the same again,
    /// changing nothing, and covers a crash here).
    async fn end_hold(&self, holder: Option<Uuid>, refund_id: Uuid, completed: bool) {
        let Some(user_id) = holder else { return };
        let ended = if completed {
            self.wallets.settle_hold(user_id, refund_id).await
        } else {
            self.wallets.release_hold(user_id, refund_id).await
        };
        if let Err(error) = ended {
            tracing::warn!(%refund_id, %error, "the refund's hold is ended by the wallet process manager");
        }
    }

    /// The provider refunded money we did not ask it to (a cancellation in its dashboard, a
    /// chargeback): `refunded_total` is what it has refunded of the payment in all. The credits
    /// are taken back as a refund of the difference, owing what the wallet no longer has, and
    /// completed at once (the money is gone).
    async fn take_back_canceled(
        &self,
        payment_id: Uuid,
        payment: Payment,
        refunded_total: i64,
    ) -> Result<PaymentView, PaymentsError> {
        let ours = payment.refunded.saturating_add(payment.reserved());
        let amount = refunded_total.min(payment.amount).saturating_sub(ours);
        if amount <= 0 {
            return Ok(PaymentView::of(payment_id, &payment));
        }
        let refund_id = provider_refund_id(payment_id, refunded_total);
        tracing::warn!(%payment_id, amount, "the provider refunded a payment we did not refund; its credits are taken back");
        let (_, holder) = self
            .hold_and_request_refund(
                payment_id,
                payment,
                refund_id,
                amount,
                "canceled at the payment provider",
                Uuid::nil(),
                true,
            )
            .await?;
        let completed = self
            .execute(
                payment_id,
                PaymentCommand::CompleteRefund { refund_id },
                "provider",
            )
            .await?;
        self.end_hold(holder, refund_id, true).await;
        Ok(completed)
    }

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
        if payment
            .payment_key
            .as_deref()
            .is_some_and(|ours| ours != payment_key)
            || payment_key.is_empty()
            || payment_key.len() > 200
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
        let record = self.provider.look_up(payment_key).await?;
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
        if let Some(difference) =
            record.difference(&payment.order_id, payment.amount, &payment.currency)
        {
            let command = PaymentCommand::RecordMismatch {
                ours: format!(
                    "order {} of {} {}",
                    payment.order_id, payment.amount, payment.currency
                ),
                provider: difference,
            };
            return self.execute(payment_id, command, "provider").await;
        }
        let refunded_total = record.refunded_amount;
        self.take_back_canceled(payment_id, payment, refunded_total)
            .await
    }

    /// One round of background work: resolves every unknown payment, retries refunds the
    /// provider has not confirmed, expires payments requested long ago and never confirmed,
    /// credits approved payments the wallet process manager left uncredited, and releases
    /// credits held for refunds that never reached their payment. Each list is paged
    /// through to its end, so no payment waits behind others; one that fails is logged and the
    /// round goes on.
    pub async fn sweep(&self) -> Result<(), PaymentsError> {
        let now = Utc::now();
        let mut after = None;
        loop {
            let page = self
                .read_models
                .payments_in(&[PaymentStatus::Unknown], after, PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for payment in page {
                if let Err(error) = self.resolve(payment.id).await {
                    tracing::warn!(payment_id = %payment.id, %error, "resolving a payment failed");
                }
            }
        }
        let due = now - self.settings.expire_after;
        let mut after = None;
        loop {
            let page = self.read_models.requested_before(due, after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for payment in page {
                let command = PaymentCommand::Expire {
                    now,
                    after: self.settings.expire_after,
                };
                if let Err(error) = self.execute(payment.id, command, "payment.sweeper").await {
                    tracing::warn!(payment_id = %payment.id, %error, "expiring a payment failed");
                }
            }
        }
        let mut after = None;
        loop {
            let page = self.read_models.with_pending_refunds(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = Some(*last);
            for payment_id in page {
                let payment = match self.load(payment_id).await {
                    Ok(payment) => payment,
                    Err(error) => {
                        tracing::warn!(%payment_id, %error, "retrying a refund failed");
                        continue;
                    }
                };
                let view = PaymentView::of(payment_id, &payment);
                for (refund_id, amount) in &payment.pending_refunds {
                    let holder = payment
                        .held_refunds
                        .contains_key(refund_id)
                        .then_some(payment.user_id);
                    self.send_refund(
                        view.clone(),
                        holder,
                        *refund_id,
                        *amount,
                        "refund (retried)",
                    )
                    .await
                    .ok();
                }
            }
        }
        // An approval the wallet process manager had this long to credit and did not.
        self.credit_uncredited(now - self.settings.hold_timeout)
            .await?;
        self.release_stranded_holds(now).await
    }

    /// Releases the credits held for refunds that never reached their payment. A hold is usable
    /// for `hold_timeout` (the payment refuses a refund with an older hold), so once that has
    /// passed the payment's events decide: no such refund, and none can come. A hold whose refund
    /// the payment decided and the wallet never followed is settled or released by the verdict.
    async fn release_stranded_holds(&self, now: DateTime<Utc>) -> Result<(), PaymentsError> {
        let before = now - self.settings.hold_timeout - self.settings.hold_timeout;
        let mut after = None;
        loop {
            let page = self
                .read_models
                .held_before(before, after.as_ref(), PAGE)
                .await?;
            let Some(last) = page.last().cloned() else {
                break;
            };
            after = Some(last);
            for hold in page {
                let payment = self.payments.load(&stream(hold.payment_id)).await?.state;
                if payment.held_refunds.contains_key(&hold.refund_id) {
                    // The refund's verdict settles or releases it; one the wallet never followed
                    // (a crash, a dead letter) is finished here.
                    if !payment.pending_refunds.contains_key(&hold.refund_id) {
                        if let Err(error) = self.finish_decided_hold(&hold).await {
                            tracing::warn!(refund_id = %hold.refund_id, %error, "finishing a decided refund's hold failed");
                        }
                    }
                    continue;
                }
                tracing::warn!(refund_id = %hold.refund_id, payment_id = %hold.payment_id, "releasing credits held for a refund that never reached its payment");
                if let Err(error) = self
                    .wallets
                    .release_hold(hold.user_id, hold.refund_id)
                    .await
                {
                    tracing::warn!(refund_id = %hold.refund_id, %error, "releasing a hold failed");
                }
            }
        }
        Ok(())
    }

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
                let ours = format!(
                    "approved {} {}, refunded {}",
                    payment.amount, payment.currency, payment.refunded
                );
                let theirs = match &record.verdict {
                    ProviderVerdict::Approved { .. } => format!(
                        "approved {} {}, refunded {}",
                        record.total_amount, payment.currency, record.refunded_amount
                    ),
                    other => format!("{other:?}").to_lowercase(),
                };
                if ours != theirs {
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

    /// The caller's payments, newest first.
    pub async fn payments_of(
        &self,
        user_id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<PaymentView>, PaymentsError> {
        Ok(self.read_models.payments_of(user_id, before, limit).await?)
    }

    /// The caller's wallet ledger, newest entry first, before entry `before`.
    pub async fn ledger(
        &self,
        user_id: Uuid,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, PaymentsError> {
        Ok(self.read_models.entries(user_id, before, limit).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::credits_for_refund;

    #[test]
    fn refunds_take_back_the_credits_they_paid_for_and_a_full_refund_all_of_them() {
        assert_eq!(credits_for_refund(100, 1000, 0, 1000), 100);
        assert_eq!(credits_for_refund(100, 1000, 0, 1), 1);
        let parts: u64 = [0, 333, 666]
            .iter()
            .map(|before| credits_for_refund(100, 999, *before, 333))
            .sum();
        assert_eq!(parts, 100);
    }
}
