//! `payment.uncredited`: approved payments whose credits no wallet shows yet, so the sweeper
//! credits one the wallet process manager left behind (its event dead-lettered, or the process
//! manager stopped) without waiting for an operator. An approval adds a row; the wallet's
//! `CreditsPurchased` for the payment removes it. Both are events of this context's own log,
//! so they come in order.

use async_trait::async_trait;
use chrono::{DateTime, SecondsFormat, Utc};
use msa_kernel::repository::decode;
use msa_kernel::{
    Aggregate, Projection, ProjectionError, RecordedEvent, StoreError, TableNames, TableSpec,
};
use msa_sql::Bind::Text;
use msa_sql::SqlReadModelStore;
use sqlx::Row;
use uuid::Uuid;

use crate::application::ports::UncreditedPayments;
use crate::domain::{Payment, PaymentEvent, Wallet, WalletEvent};

pub struct Uncredited;

const TABLES: &[TableSpec] = &[TableSpec {
    name: "payment_uncredited",
    create: &[
        "CREATE TABLE {table} (payment_id TEXT PRIMARY KEY, approved_at TEXT NOT NULL)",
        "CREATE INDEX {table}_by_time ON {table} (approved_at, payment_id)",
    ],
}];

fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

#[async_trait]
impl Projection<msa_sql::Tx> for Uncredited {
    fn name(&self) -> &'static str {
        "payment.uncredited"
    }

    fn tables(&self) -> &'static [TableSpec] {
        TABLES
    }

    /// Approvals and purchases only; not the spends that make most of the log.
    fn wants(&self, event: &RecordedEvent) -> bool {
        (event.stream_id.category() == Payment::KIND
            && event.event_type == "payment.PaymentApproved")
            || (event.stream_id.category() == Wallet::KIND
                && event.event_type == "payment.CreditsPurchased")
    }

    async fn apply(
        &self,
        tx: &mut msa_sql::Tx,
        tables: &TableNames,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let table = tables.table("payment_uncredited");
        let (sql, binds) = if event.stream_id.category() == Payment::KIND {
            let PaymentEvent::PaymentApproved { approved_at, .. } = decode::<PaymentEvent>(event)?
            else {
                return Ok(());
            };
            (
                format!("INSERT INTO {table} (payment_id, approved_at) VALUES ($1, $2)"),
                vec![
                    Text(event.stream_id.id().to_owned()),
                    Text(time(approved_at)),
                ],
            )
        } else {
            let WalletEvent::CreditsPurchased { payment_id, .. } = decode::<WalletEvent>(event)?
            else {
                return Ok(());
            };
            (
                format!("DELETE FROM {table} WHERE payment_id = $1"),
                vec![Text(payment_id.to_string())],
            )
        };
        msa_sql::execute(tx, &sql, binds)
            .await
            .map_err(ProjectionError::apply)?;
        Ok(())
    }
}

#[async_trait]
impl UncreditedPayments for SqlReadModelStore {
    /// A page of payments approved before `before` and not credited, after the cursor `after`.
    async fn approved_before(
        &self,
        before: DateTime<Utc>,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<Uuid>, StoreError> {
        let rows = sqlx::query(
            "SELECT payment_id FROM payment_uncredited
         WHERE approved_at < $1 AND payment_id > $2 ORDER BY payment_id LIMIT $3",
        )
        .bind(time(before))
        .bind(after.map(|id| id.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        rows.iter()
            .map(|row| {
                row.try_get::<String, _>("payment_id")
                    .map_err(StoreError::backend)?
                    .parse()
                    .map_err(StoreError::backend)
            })
            .collect()
    }
}
