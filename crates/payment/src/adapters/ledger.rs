//! `payment.ledger`: every wallet's ledger entries with the balance after each, for
//! `GET /v1/wallet/ledger`.

use async_trait::async_trait;
use msa_kernel::repository::decode;
use msa_kernel::{
    Aggregate, Projection, ProjectionError, RecordedEvent, StoreError, TableNames, TableSpec,
};
use msa_sql::SqlReadModelStore;
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use crate::domain::{Account, Wallet, WalletEvent};

pub struct Ledger;

const TABLES: &[TableSpec] = &[TableSpec {
    name: "payment_ledger",
    create: &["CREATE TABLE {table} (user_id TEXT NOT NULL, entry BIGINT NOT NULL, kind TEXT NOT NULL,
         from_account TEXT NOT NULL, to_account TEXT NOT NULL, credits BIGINT NOT NULL,
         reference TEXT NOT NULL, balance BIGINT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (user_id, entry))"],
}];

/// One ledger entry: `credits` moved from one account to another.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct LedgerEntry {
    pub entry: i64,
    /// `credits_purchased`, `credits_revoked`, `message_spent`, `spend_refunded`.
    pub kind: String,
    pub from: Account,
    pub to: Account,
    pub credits: i64,
    /// What caused it: a payment id, a refund id or a spend key.
    pub reference: String,
    /// The wallet's purchased credits after this entry.
    pub balance: i64,
    pub at: String,
}

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
        let table = tables.table("payment_ledger");
        let change = decode::<WalletEvent>(event)?;
        let (from, to, credits) = change.movement();
        let (kind, reference) = match &change {
            WalletEvent::CreditsPurchased { payment_id, .. } => {
                ("credits_purchased", payment_id.to_string())
            }
            WalletEvent::CreditsRevoked { refund_id, .. } => {
                ("credits_revoked", refund_id.to_string())
            }
            WalletEvent::MessageSpent { spend_key, .. } => ("message_spent", spend_key.clone()),
            WalletEvent::SpendRefunded { spend_key, .. } => ("spend_refunded", spend_key.clone()),
        };
        let delta = match (from, to) {
            (_, Account::Wallet) => credits as i64,
            (Account::Wallet, _) => -(credits as i64),
            _ => 0,
        };
        sqlx::query(&format!(
            "INSERT INTO {table} (user_id, entry, kind, from_account, to_account, credits, reference, balance, at)
             VALUES ($1, $2, $3, $4, $5, $6, $7,
               COALESCE((SELECT balance FROM {table} WHERE user_id = $1 ORDER BY entry DESC LIMIT 1), 0) + $8, $9)"
        ))
        .bind(event.stream_id.id().to_owned())
        .bind(change.entry() as i64)
        .bind(kind)
        .bind(account_name(from))
        .bind(account_name(to))
        .bind(credits as i64)
        .bind(reference)
        .bind(delta)
        .bind(event.occurred_at.to_rfc3339())
        .execute(&mut **tx)
        .await
        .map_err(ProjectionError::apply)?;
        Ok(())
    }
}

/// A page of a wallet's entries, newest first, before entry `before`.
pub async fn entries(
    db: &SqlReadModelStore,
    user_id: Uuid,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<LedgerEntry>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT * FROM payment_ledger WHERE user_id = $1 AND entry < $2 ORDER BY entry DESC LIMIT {limit}"
    ))
    .bind(user_id.to_string())
    .bind(before.unwrap_or(i64::MAX))
    .fetch_all(db.pool())
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
