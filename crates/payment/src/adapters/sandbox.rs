//! The sandbox provider (the default): a stand-in for a real provider whose answer is chosen by
//! the payment key's prefix, so a client can try every path without money.
//!
//! - `approve…` approves;
//! - `decline…` declines (`REJECT_CARD_PAYMENT`);
//! - `timeout…` times out, and a later look-up finds it approved (as a real provider that
//!   charged but whose answer was lost);
//! - any other key is refused as unknown (`NOT_FOUND_PAYMENT_SESSION`).
//!
//! Its records live in the payment query database (`sandbox_payments`), like a provider's own
//! database: they survive restarts and `msa payments reconcile` compares against them.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use msa_sql::SqlReadModelStore;
use sqlx::Row;

use crate::application::provider::{
    Cancellation, Confirmation, PaymentProvider, ProviderError, ProviderRecord,
};
use crate::domain::ProviderVerdict;

pub struct SandboxProvider {
    db: Arc<SqlReadModelStore>,
}

impl SandboxProvider {
    pub fn new(db: Arc<SqlReadModelStore>) -> Self {
        Self { db }
    }

    fn unavailable(error: sqlx::Error) -> ProviderError {
        ProviderError::Unavailable(format!("sandbox records: {error}"))
    }

    /// Records a charge (once per key: a repeat with the same order and amount is the same charge).
    async fn charge(&self, confirmation: &Confirmation, status: &str) -> Result<(), ProviderError> {
        sqlx::query(
            "INSERT INTO sandbox_payments (payment_key, order_id, amount, status, approved_at)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (payment_key) DO NOTHING",
        )
        .bind(&confirmation.payment_key)
        .bind(&confirmation.order_id)
        .bind(confirmation.amount)
        .bind(status)
        .bind((status == "DONE").then(|| Utc::now().to_rfc3339()))
        .execute(self.db.pool())
        .await
        .map_err(Self::unavailable)?;
        let record = self.record(&confirmation.payment_key).await?;
        match record {
            Some((order_id, amount, ..))
                if order_id == confirmation.order_id && amount == confirmation.amount =>
            {
                Ok(())
            }
            _ => Err(ProviderError::Refused {
                code: "ALREADY_PROCESSED_PAYMENT".into(),
                message: "this payment key was used for another order".into(),
            }),
        }
    }

    async fn record(
        &self,
        payment_key: &str,
    ) -> Result<Option<(String, i64, i64, String, Option<String>)>, ProviderError> {
        let row = sqlx::query(
            "SELECT order_id, amount, refunded, status, approved_at FROM sandbox_payments
             WHERE payment_key = $1",
        )
        .bind(payment_key)
        .fetch_optional(self.db.pool())
        .await
        .map_err(Self::unavailable)?;
        Ok(row.map(|row| {
            (
                row.get("order_id"),
                row.get("amount"),
                row.get("refunded"),
                row.get("status"),
                row.get("approved_at"),
            )
        }))
    }
}

fn approved_at(raw: Option<String>) -> Option<DateTime<Utc>> {
    raw.and_then(|raw| DateTime::parse_from_rfc3339(&raw).ok())
        .map(|at| at.with_timezone(&Utc))
}

#[async_trait]
impl PaymentProvider for SandboxProvider {
    fn name(&self) -> &'static str {
        "sandbox"
    }

    async fn confirm(&self, confirmation: &Confirmation) -> Result<ProviderVerdict, ProviderError> {
        let key = confirmation.payment_key.as_str();
        if key.starts_with("decline") {
            self.charge(confirmation, "ABORTED").await?;
            return Ok(ProviderVerdict::Declined {
                code: "REJECT_CARD_PAYMENT".into(),
                message: "the card issuer declined the payment (sandbox)".into(),
            });
        }
        if !key.starts_with("approve") && !key.starts_with("timeout") {
            return Err(ProviderError::Refused {
                code: "NOT_FOUND_PAYMENT_SESSION".into(),
                message: "sandbox keys start with approve, decline or timeout".into(),
            });
        }
        self.charge(confirmation, "DONE").await?;
        if key.starts_with("timeout") {
            // Charged, but the answer is lost on the way back.
            return Err(ProviderError::Timeout);
        }
        let record = self.look_up(key).await?;
        Ok(record.verdict)
    }

    async fn cancel(&self, cancellation: &Cancellation) -> Result<(), ProviderError> {
        let mut tx = self.db.pool().begin().await.map_err(Self::unavailable)?;
        let done: Option<i64> =
            sqlx::query_scalar("SELECT amount FROM sandbox_cancels WHERE idempotency_key = $1")
                .bind(&cancellation.idempotency_key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(Self::unavailable)?;
        if done.is_some() {
            tx.rollback().await.map_err(Self::unavailable)?;
            return Ok(());
        }
        let updated = sqlx::query(
            "UPDATE sandbox_payments SET refunded = refunded + $2,
               status = CASE WHEN refunded + $2 >= amount THEN 'CANCELED' ELSE 'PARTIAL_CANCELED' END
             WHERE payment_key = $1 AND status IN ('DONE', 'PARTIAL_CANCELED') AND refunded + $2 <= amount",
        )
        .bind(&cancellation.payment_key)
        .bind(cancellation.amount)
        .execute(&mut *tx)
        .await
        .map_err(Self::unavailable)?;
        if updated.rows_affected() == 0 {
            tx.rollback().await.map_err(Self::unavailable)?;
            return Err(ProviderError::Refused {
                code: "NOT_CANCELABLE_AMOUNT".into(),
                message: "no approved payment with that much left to cancel".into(),
            });
        }
        sqlx::query(
            "INSERT INTO sandbox_cancels (idempotency_key, payment_key, amount) VALUES ($1, $2, $3)",
        )
        .bind(&cancellation.idempotency_key)
        .bind(&cancellation.payment_key)
        .bind(cancellation.amount)
        .execute(&mut *tx)
        .await
        .map_err(Self::unavailable)?;
        tx.commit().await.map_err(Self::unavailable)
    }

    async fn look_up(&self, payment_key: &str) -> Result<ProviderRecord, ProviderError> {
        let Some((order_id, amount, refunded, status, approved)) = self.record(payment_key).await?
        else {
            return Ok(ProviderRecord::none());
        };
        let approved_at = approved_at(approved);
        let verdict = match (status.as_str(), approved_at) {
            ("DONE" | "PARTIAL_CANCELED" | "CANCELED", Some(at)) => ProviderVerdict::Approved {
                payment_key: payment_key.to_owned(),
                amount,
                approved_at: at,
            },
            ("ABORTED", _) => ProviderVerdict::Declined {
                code: "REJECT_CARD_PAYMENT".into(),
                message: "the card issuer declined the payment (sandbox)".into(),
            },
            _ => ProviderVerdict::Pending,
        };
        Ok(ProviderRecord {
            verdict,
            total_amount: if status == "ABORTED" { 0 } else { amount },
            refunded_amount: refunded,
            approved_at,
            order_id: Some(order_id),
            currency: None,
        })
    }
}
