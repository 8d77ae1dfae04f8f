//! `payment.payments`: every payment as a row, for listing a user's payments, finding the ones
//! that wait on a provider (the resolver) and reconciling approved ones.

use async_trait::async_trait;
use msa_kernel::repository::decode;
use msa_kernel::{
    Aggregate, Projection, ProjectionError, RecordedEvent, StoreError, TableNames, TableSpec,
};
use msa_sql::{Bind, SqlReadModelStore};
use sqlx::any::AnyRow;
use sqlx::Row;
use uuid::Uuid;

use crate::application::ports::ListedPayments;
pub use crate::application::views::PaymentView;
use crate::domain::{Payment, PaymentEvent, PaymentStatus};

pub struct PaymentList;

const TABLES: &[TableSpec] = &[TableSpec {
    name: "payment_payments",
    create: &[
        "CREATE TABLE {table} (payment_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, order_id TEXT NOT NULL,
           product_id TEXT NOT NULL, credits BIGINT NOT NULL, amount BIGINT NOT NULL, currency TEXT NOT NULL,
           provider TEXT NOT NULL, status TEXT NOT NULL, payment_key TEXT, refunded BIGINT NOT NULL DEFAULT 0,
           pending_refund BIGINT NOT NULL DEFAULT 0, failure TEXT, mismatch TEXT,
           requested_at TEXT NOT NULL, approved_at TEXT, updated_at TEXT NOT NULL)",
        "CREATE INDEX {table}_by_user ON {table} (user_id, payment_id)",
        "CREATE INDEX {table}_by_status ON {table} (status)",
    ],
}];

impl PaymentView {
    fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        let text = |column: &str| {
            row.try_get::<String, _>(column)
                .map_err(StoreError::backend)
        };
        let status: PaymentStatus =
            serde_json::from_value(serde_json::Value::String(text("status")?))
                .map_err(StoreError::backend)?;
        let amount: i64 = row.try_get("amount").map_err(StoreError::backend)?;
        let refunded: i64 = row.try_get("refunded").map_err(StoreError::backend)?;
        let pending: i64 = row.try_get("pending_refund").map_err(StoreError::backend)?;
        let approved = matches!(
            status,
            PaymentStatus::Approved | PaymentStatus::PartiallyRefunded
        );
        Ok(Self {
            id: text("payment_id")?.parse().map_err(StoreError::backend)?,
            order_id: text("order_id")?,
            user_id: text("user_id")?.parse().map_err(StoreError::backend)?,
            product_id: text("product_id")?,
            credits: row
                .try_get::<i64, _>("credits")
                .map_err(StoreError::backend)? as u64,
            amount,
            currency: text("currency")?,
            provider: text("provider")?,
            status,
            payment_key: row.try_get("payment_key").map_err(StoreError::backend)?,
            refunded_amount: refunded,
            refundable_amount: if approved {
                amount.saturating_sub(refunded).saturating_sub(pending)
            } else {
                0
            },
            failure: row.try_get("failure").map_err(StoreError::backend)?,
            requested_at: text("requested_at")?,
            approved_at: row.try_get("approved_at").map_err(StoreError::backend)?,
        })
    }
}

#[async_trait]
impl Projection<msa_sql::Tx> for PaymentList {
    fn name(&self) -> &'static str {
        "payment.payments"
    }

    fn tables(&self) -> &'static [TableSpec] {
        TABLES
    }

    fn wants(&self, event: &RecordedEvent) -> bool {
        event.stream_id.category() == Payment::KIND
    }

    async fn apply(
        &self,
        tx: &mut msa_sql::Tx,
        tables: &TableNames,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let table = tables.table("payment_payments");
        let id = event.stream_id.id().to_owned();
        let at = event.occurred_at.to_rfc3339();
        let set = |assignments: &str| {
            format!("UPDATE {table} SET {assignments}, updated_at = $2 WHERE payment_id = $1")
        };
        use Bind::{Int, Text};
        let (sql, binds): (String, Vec<Bind>) = match decode::<PaymentEvent>(event)? {
            PaymentEvent::PaymentRequested {
                order_id,
                user_id,
                product_id,
                credits,
                amount,
                currency,
                provider,
                requested_at,
            } => (
                format!(
                    "INSERT INTO {table} (payment_id, user_id, order_id, product_id, credits, amount, currency,
                       provider, status, requested_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'requested', $9, $9)"
                ),
                vec![
                    Text(id),
                    Text(user_id.to_string()),
                    Text(order_id),
                    Text(product_id),
                    Int(credits as i64),
                    Int(amount),
                    Text(currency),
                    Text(provider),
                    Text(requested_at.to_rfc3339()),
                ],
            ),
            PaymentEvent::ConfirmationSent { payment_key } => (
                set("status = 'unknown', payment_key = $3"),
                vec![Text(id), Text(at), Text(payment_key)],
            ),
            PaymentEvent::PaymentApproved {
                payment_key,
                approved_at,
                ..
            } => (
                set("status = 'approved', payment_key = $3, approved_at = $4"),
                vec![Text(id), Text(at), Text(payment_key), Text(approved_at.to_rfc3339())],
            ),
            PaymentEvent::PaymentFailed { code, message } => (
                set("status = 'failed', failure = $3"),
                vec![Text(id), Text(at), Text(format!("{code}: {message}"))],
            ),
            PaymentEvent::PaymentCanceled { .. } => (set("status = 'canceled'"), vec![Text(id), Text(at)]),
            PaymentEvent::PaymentExpired => (set("status = 'expired'"), vec![Text(id), Text(at)]),
            PaymentEvent::ProviderTimedOut { .. } => (set("status = status"), vec![Text(id), Text(at)]),
            PaymentEvent::RefundRequested { amount, .. } => (
                set("pending_refund = pending_refund + $3"),
                vec![Text(id), Text(at), Int(amount)],
            ),
            PaymentEvent::RefundCompleted {
                amount,
                refunded_total,
                ..
            } => (
                set("pending_refund = pending_refund - $3, refunded = $4,
                     status = CASE WHEN $4 >= amount THEN 'refunded' ELSE 'partially_refunded' END"),
                vec![Text(id), Text(at), Int(amount), Int(refunded_total)],
            ),
            PaymentEvent::RefundFailed { amount, .. } => (
                set("pending_refund = pending_refund - $3"),
                vec![Text(id), Text(at), Int(amount)],
            ),
            PaymentEvent::MismatchFound { ours, provider } => (
                set("mismatch = $3"),
                vec![Text(id), Text(at), Text(format!("ours: {ours}; provider: {provider}"))],
            ),
        };
        msa_sql::execute(tx, &sql, binds)
            .await
            .map_err(ProjectionError::apply)?;
        Ok(())
    }
}

#[async_trait]
impl ListedPayments for SqlReadModelStore {
    /// A page of `user_id`'s payments, newest first, after the cursor (a payment id).
    async fn payments_of(
        &self,
        user_id: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<PaymentView>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM payment_payments WHERE user_id = $1 AND payment_id < $2
         ORDER BY payment_id DESC LIMIT $3",
        )
        .bind(user_id.to_string())
        .bind(
            before
                .map(|id| id.to_string())
                .unwrap_or_else(|| "~".into()),
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        rows.iter().map(PaymentView::from_row).collect()
    }

    /// Payments in one of `statuses`, oldest first, after `after` (a payment id), at most `limit`.
    async fn payments_in(
        &self,
        statuses: &[PaymentStatus],
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<PaymentView>, StoreError> {
        let list: Vec<String> = statuses
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        let rows = sqlx::query(&format!(
            "SELECT * FROM payment_payments WHERE status IN ({}) AND payment_id > $1
         ORDER BY payment_id LIMIT $2",
            list.join(", ")
        ))
        .bind(after.map(|id| id.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        rows.iter().map(PaymentView::from_row).collect()
    }

    /// Payments still `requested` that were requested before `before`, oldest first, after `after`
    /// (a payment id), at most `limit`: the ones due to expire.
    async fn requested_before(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<PaymentView>, StoreError> {
        // Times are RFC 3339 in UTC as `to_rfc3339` writes them, which sort as text.
        let rows = sqlx::query(
            "SELECT * FROM payment_payments WHERE status = 'requested' AND requested_at < $1
           AND payment_id > $2 ORDER BY payment_id LIMIT $3",
        )
        .bind(before.to_rfc3339())
        .bind(after.map(|id| id.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        rows.iter().map(PaymentView::from_row).collect()
    }

    /// How many of `user_id`'s payments are open: requested, or waiting for the provider's verdict.
    async fn open_payments_of(&self, user_id: Uuid) -> Result<u32, StoreError> {
        let count: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM payment_payments WHERE user_id = $1 AND status IN ('requested', 'unknown')",
        )
        .bind(user_id.to_string())
        .fetch_one(self.pool())
        .await
        .map_err(StoreError::backend)?;
        Ok(u32::try_from(count).unwrap_or(u32::MAX))
    }

    /// Whether the list shows the payment yet.
    async fn lists(&self, payment_id: Uuid) -> Result<bool, StoreError> {
        let found: Option<String> =
            sqlx::query_scalar("SELECT payment_id FROM payment_payments WHERE payment_id = $1")
                .bind(payment_id.to_string())
                .fetch_optional(self.pool())
                .await
                .map_err(StoreError::backend)?;
        Ok(found.is_some())
    }

    /// Payments with refunds still waiting for the provider, after `after`, at most `limit`.
    async fn with_pending_refunds(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT payment_id FROM payment_payments WHERE pending_refund > 0 AND payment_id > $1
         ORDER BY payment_id LIMIT $2",
        )
        .bind(after.map(|id| id.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// The last difference from the provider's record recorded for each payment that has one
    /// (by reconciliation or a webhook), after `after`, at most `limit`.
    async fn recorded_mismatches(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<(Uuid, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT payment_id, mismatch FROM payment_payments WHERE mismatch IS NOT NULL
           AND payment_id > $1 ORDER BY payment_id LIMIT $2",
        )
        .bind(after.map(|id| id.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("payment_id").map_err(StoreError::backend)?;
                let mismatch: String = row.try_get("mismatch").map_err(StoreError::backend)?;
                Ok((id.parse().map_err(StoreError::backend)?, mismatch))
            })
            .collect()
    }
}
