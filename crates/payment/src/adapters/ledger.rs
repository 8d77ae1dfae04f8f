//! `payment.ledger`: every wallet's ledger entries with the balance after each, for
//! `GET /v1/wallet/ledger`.

use async_trait::async_trait;
use msa_kernel::repository::decode;
use msa_kernel::{
    Aggregate, Projection, ProjectionError, RecordedEvent, StoreError, TableNames, TableSpec,
};
use msa_sql::Bind::{Int, Text};
use msa_sql::{Bind, SqlReadModelStore};
use sqlx::Row;
use uuid::Uuid;

use crate::application::ports::LedgerEntries;
pub use crate::application::views::LedgerEntry;
use crate::domain::{Account, Wallet, WalletEvent};

pub struct Ledger;

const TABLES: &[TableSpec] = &[TableSpec {
    name: "payment_ledger",
    create: &["CREATE TABLE {table} (user_id TEXT NOT NULL, entry BIGINT NOT NULL, kind TEXT NOT NULL,
         from_account TEXT NOT NULL, to_account TEXT NOT NULL, credits BIGINT NOT NULL,
         reference TEXT NOT NULL, balance BIGINT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (user_id, entry))"],
}];

fn account_name(account: Account) -> String {
    serde_json::to_value(account)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

#[async_trait]
impl Projection<msa_sql::Tx> for Ledger {
    fn name(&self) -> &'static str {
        "payment.ledger"
    }

    fn tables(&self) -> &'static [TableSpec] {
        TABLES
    }

    fn wants(&self, event: &RecordedEvent) -> bool {
        event.stream_id.category() == Wallet::KIND
    }

    async fn apply(
        &self,
        tx: &mut msa_sql::Tx,
        tables: &TableNames,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        self.apply_all(tx, tables, &[event]).await
    }

    /// A batch's entries go in one statement: each entry's balance is the wallet's balance
    /// before the batch plus the running sum of the batch's changes to it, so one spend no longer
    /// costs a statement (and a round trip) that reads the row written just before.
    async fn apply_all(
        &self,
        tx: &mut msa_sql::Tx,
        tables: &TableNames,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let table = tables.table("payment_ledger");
        let rows = events
            .iter()
            .map(|event| entry_row(event))
            .collect::<Result<Vec<_>, _>>()?;
        // The subquery reads the table as it was before the statement (PostgreSQL: the
        // statement's snapshot; SQLite materializes a windowed SELECT before inserting), so it
        // is the balance before the batch; within the batch a wallet's entries come in order.
        msa_sql::execute_rows(
            tx,
            |n| {
                format!(
                    "WITH v (user_id, entry, kind, from_account, to_account, credits, reference, delta, at) AS (VALUES {})
                     INSERT INTO {table} (user_id, entry, kind, from_account, to_account, credits, reference, balance, at)
                     SELECT v.user_id, v.entry, v.kind, v.from_account, v.to_account, v.credits, v.reference,
                       COALESCE((SELECT p.balance FROM {table} p WHERE p.user_id = v.user_id ORDER BY p.entry DESC LIMIT 1), 0)
                         + SUM(v.delta) OVER (PARTITION BY v.user_id ORDER BY v.entry),
                       v.at
                     FROM v",
                    msa_sql::placeholders(n, 9)
                )
            },
            rows,
        )
        .await
        .map_err(ProjectionError::apply)?;
        Ok(())
    }
}

/// The ledger row of one wallet event, in `apply_all`'s `VALUES` order (`delta`, the change to
/// the wallet's purchased credits, in place of the balance).
fn entry_row(event: &RecordedEvent) -> Result<Vec<Bind>, ProjectionError> {
    let change = decode::<WalletEvent>(event)?;
    let (from, to, credits) = change.movement();
    let reference = match &change {
        WalletEvent::CreditsPurchased { payment_id, .. }
        | WalletEvent::DebtRepaid { payment_id, .. } => payment_id.to_string(),
        WalletEvent::CreditsRevoked { refund_id, .. }
        | WalletEvent::CreditsHeld { refund_id, .. }
        | WalletEvent::HoldSettled { refund_id, .. }
        | WalletEvent::HoldReleased { refund_id, .. }
        | WalletEvent::DebtRecorded { refund_id, .. } => refund_id.to_string(),
        WalletEvent::MessageSpent { spend_key, .. }
        | WalletEvent::SpendRefunded { spend_key, .. } => spend_key.clone(),
    };
    let kind = change.kind();
    let credits = i64::try_from(credits).map_err(ProjectionError::apply)?;
    let delta = match (from, to) {
        (_, Account::Wallet) => credits,
        (Account::Wallet, _) => -credits,
        _ => 0,
    };
    Ok(vec![
        Text(event.stream_id.id().to_owned()),
        Int(change.entry() as i64),
        Text(kind.to_owned()),
        Text(account_name(from)),
        Text(account_name(to)),
        Int(credits),
        Text(reference),
        Int(delta),
        Text(event.occurred_at.to_rfc3339()),
    ])
}

#[async_trait]
impl LedgerEntries for SqlReadModelStore {
    /// A page of a wallet's entries, newest first, before entry `before`.
    async fn entries(
        &self,
        user_id: Uuid,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM payment_ledger WHERE user_id = $1 AND entry < $2 ORDER BY entry DESC LIMIT $3",
        )
        .bind(user_id.to_string())
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        let account = |raw: String| {
            serde_json::from_value::<Account>(serde_json::Value::String(raw))
                .map_err(StoreError::backend)
        };
        rows.iter()
            .map(|row| {
                let get_text = |c: &str| row.try_get::<String, _>(c).map_err(StoreError::backend);
                let get_int = |c: &str| row.try_get::<i64, _>(c).map_err(StoreError::backend);
                Ok(LedgerEntry {
                    entry: get_int("entry")?,
                    kind: get_text("kind")?,
                    from: account(get_text("from_account")?)?,
                    to: account(get_text("to_account")?)?,
                    credits: get_int("credits")?,
                    reference: get_text("reference")?,
                    balance: get_int("balance")?,
                    at: get_text("at")?,
                })
            })
            .collect()
    }
}
