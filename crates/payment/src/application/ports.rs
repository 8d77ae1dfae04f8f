//! What the payment use cases need from the query side, as the application names it. The
//! adapters implement these over the read models (`crate::adapters::{payment_list, ledger,
//! holds, uncredited}`); a failure is the store's (`StoreError`), answered by the HTTP adapter.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use msa_kernel::StoreError;
use uuid::Uuid;

use super::views::{LedgerEntry, OpenHold, PaymentView};
use crate::domain::PaymentStatus;

/// Every payment as a row: a user's list, the ones waiting on a provider, the ones to reconcile.
#[async_trait]
pub trait ListedPayments: Send + Sync {
    /// A page of `user_id`'s payments, newest first, before the payment id `before`.
    async fn payments_of(
        &self,
        user_id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<PaymentView>, StoreError>;

    /// Payments in one of `statuses`, oldest first, after the payment id `after`.
    async fn payments_in(
        &self,
        statuses: &[PaymentStatus],
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<PaymentView>, StoreError>;

    /// Payments still requested that were requested before `before` (due to expire).
    async fn requested_before(
        &self,
        before: DateTime<Utc>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<PaymentView>, StoreError>;

    /// How many of `user_id`'s payments are open (requested, or waiting for a verdict).
    async fn open_payments_of(&self, user_id: Uuid) -> Result<u32, StoreError>;

    /// Whether the list shows the payment yet.
    async fn lists(&self, payment_id: Uuid) -> Result<bool, StoreError>;

    /// Payments with refunds still waiting for the provider.
    async fn with_pending_refunds(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError>;

    /// The last difference from the provider's record, for each payment that has one.
    async fn recorded_mismatches(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<(Uuid, String)>, StoreError>;
}

/// A wallet's ledger, newest entry first.
#[async_trait]
pub trait LedgerEntries: Send + Sync {
    async fn entries(
        &self,
        user_id: Uuid,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError>;
}

/// Credits wallets hold for refunds that have not settled.
#[async_trait]
pub trait OpenHolds: Send + Sync {
    /// A page of holds made before `before`, oldest first, after `after`.
    async fn held_before(
        &self,
        before: DateTime<Utc>,
        after: Option<&OpenHold>,
        limit: u32,
    ) -> Result<Vec<OpenHold>, StoreError>;
}

/// Approved payments whose credits no wallet has received yet.
#[async_trait]
pub trait UncreditedPayments: Send + Sync {
    /// A page of payments approved before `before` and not credited, after `after`.
    async fn approved_before(
        &self,
        before: DateTime<Utc>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError>;
}

/// Every query port of the payment context, as one store answers them.
pub trait PaymentReadModels:
    ListedPayments + LedgerEntries + OpenHolds + UncreditedPayments + 'static
{
}

impl<T: ListedPayments + LedgerEntries + OpenHolds + UncreditedPayments + 'static> PaymentReadModels
    for T
{
}
