//! `payment.holds`: the credits wallets hold for refunds being decided, so the sweeper finds a
//! hold whose refund never reached its payment (a crash between the two steps) and releases it.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use msa_kernel::repository::decode;
use msa_kernel::{
    Aggregate, Projection, ProjectionError, RecordedEvent, StoreError, TableNames, TableSpec,
};
use msa_sql::Bind::{Int, Text};
use msa_sql::SqlReadModelStore;
use sqlx::Row;
use uuid::Uuid;

use crate::application::ports::OpenHolds;
pub use crate::application::views::OpenHold;
use crate::domain::{Wallet, WalletEvent};

pub struct Holds;

const TABLES: &[TableSpec] = &[TableSpec {
    name: "payment_holds",
    create: &[
        "CREATE TABLE {table} (refund_id TEXT PRIMARY KEY, user_id TEXT NOT NULL,
           payment_id TEXT NOT NULL, credits BIGINT NOT NULL, held_at TEXT NOT NULL)",
        "CREATE INDEX {table}_by_time ON {table} (held_at, refund_id)",
    ],
}];

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[async_trait]
impl Projection<msa_sql::Tx> for Holds {
    fn name(&self) -> &'static str {
        "payment.holds"
    }

    fn tables(&self) -> &'static [TableSpec] {
        TABLES
    }

    /// Holds and their ends only; not the spends that make most of a wallet's history.
    fn wants(&self, event: &RecordedEvent) -> bool {
        event.stream_id.category() == Wallet::KIND
            && matches!(
                event.event_type.as_str(),
                "payment.CreditsHeld" | "payment.HoldSettled" | "payment.HoldReleased"
            )
    }

    async fn apply(
        &self,
        tx: &mut msa_sql::Tx,
        tables: &TableNames,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let table = tables.table("payment_holds");
        let (sql, binds) = match decode::<WalletEvent>(event)? {
            WalletEvent::CreditsHeld {
                payment_id,
                refund_id,
                credits,
                held_at,
                ..
            } => (
                format!(
                    "INSERT INTO {table} (refund_id, user_id, payment_id, credits, held_at)
                     VALUES ($1, $2, $3, $4, $5)"
                ),
                vec![
                    Text(refund_id.to_string()),
                    Text(event.stream_id.id().to_owned()),
                    Text(payment_id.to_string()),
                    Int(i64::try_from(credits).unwrap_or(i64::MAX)),
                    Text(time(held_at)),
                ],
            ),
            WalletEvent::HoldSettled { refund_id, .. }
            | WalletEvent::HoldReleased { refund_id, .. } => (
                format!("DELETE FROM {table} WHERE refund_id = $1"),
                vec![Text(refund_id.to_string())],
            ),
            _ => return Ok(()),
        };
        msa_sql::execute(tx, &sql, binds)
            .await
            .map_err(ProjectionError::apply)?;
        Ok(())
    }
}

#[async_trait]
impl OpenHolds for SqlReadModelStore {
    /// A page of holds made before `before`, oldest first, after the cursor `after` (a refund id).
    async fn held_before(
        &self,
        before: DateTime<Utc>,
        after: Option<&OpenHold>,
        limit: u32,
    ) -> Result<Vec<OpenHold>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, payment_id, refund_id FROM payment_holds
         WHERE held_at < $1 AND refund_id > $2 ORDER BY refund_id LIMIT $3",
        )
        .bind(time(before))
        .bind(
            after
                .map(|hold| hold.refund_id.to_string())
                .unwrap_or_default(),
        )
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        rows.iter()
            .map(|row| {
                let id = |column: &str| -> Result<Uuid, StoreError> {
                    row.try_get::<String, _>(column)
                        .map_err(StoreError::backend)?
                        .parse()
                        .map_err(StoreError::backend)
                };
                Ok(OpenHold {
                    user_id: id("user_id")?,
                    payment_id: id("payment_id")?,
                    refund_id: id("refund_id")?,
                })
            })
            .collect()
    }
}
