//! `user-chat.open-spends`: keeps `uc_open_spends`, the message credits spent whose send may
//! be unfinished, from the payment context's wallet events. A message's spend
//! (`payment.MessageSpent` with a key `message:<room>:<txn_id>`) adds a row; its refund
//! (`payment.SpendRefunded`) removes it; the send recovery removes the rows of sends it found
//! posted or gave back. The wallet's events come in order, so a spend is never seen after its
//! refund; repeats are absorbed by the inbox and by the statements themselves.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use msa_kernel::consumer::{EventHandler, HandlerError};
use msa_kernel::repository::decode;
use msa_kernel::{Aggregate, Conversation, ReadModelStore, RecordedEvent, StoreError};
use msa_payment::contract::{SpendKey, Wallet, WalletEvent};
use msa_sql::Bind::Text;
use msa_sql::SqlReadModelStore;
use sqlx::Row;
use uuid::Uuid;

use crate::application::ports::SpendsInDoubt;
pub use crate::application::views::{send_of, spend_key, OpenSpend};

pub const CONSUMER: &str = "user-chat.open-spends";

pub struct OpenSpends;

#[async_trait]
impl EventHandler<msa_sql::Tx> for OpenSpends {
    fn name(&self) -> &str {
        CONSUMER
    }

    /// Spends and their refunds; not purchases, holds or payments.
    fn wants(&self, event: &RecordedEvent) -> bool {
        event.stream_id.category() == Wallet::KIND
            && matches!(
                event.event_type.as_str(),
                "payment.MessageSpent" | "payment.SpendRefunded"
            )
    }

    async fn handle(
        &self,
        tx: &mut msa_sql::Tx,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        if event.stream_id.category() != Wallet::KIND {
            return Ok(());
        }
        let user_id = event.stream_id.id().to_owned();
        match decode::<WalletEvent>(event).map_err(HandlerError::new)? {
            WalletEvent::MessageSpent { spend_key, .. } => {
                let Some((room_id, txn_id)) = send_of(&spend_key) else {
                    return Ok(());
                };
                sqlx::query(
                    "INSERT INTO uc_open_spends
                       (user_id, spend_key, room_id, txn_id, spent_at, correlation_id, spent_event_id)
                     VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id, spend_key) DO NOTHING",
                )
                .bind(user_id)
                .bind(&spend_key)
                .bind(room_id.to_string())
                .bind(txn_id)
                .bind(event.occurred_at.timestamp_millis())
                .bind(event.metadata.correlation_id.to_string())
                .bind(event.event_id.to_string())
                .execute(&mut **tx)
                .await
                .map_err(HandlerError::new)?;
            }
            WalletEvent::SpendRefunded { spend_key, .. } => {
                sqlx::query("DELETE FROM uc_open_spends WHERE user_id = $1 AND spend_key = $2")
                    .bind(user_id)
                    .bind(&spend_key)
                    .execute(&mut **tx)
                    .await
                    .map_err(HandlerError::new)?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// The conversation a spend was made in, from its stored ids (ids that do not parse: none).
fn conversation(correlation: Option<String>, spent: Option<String>) -> Option<Conversation> {
    Some(Conversation {
        correlation_id: correlation?.parse().ok()?,
        causation_id: Some(spent?.parse().ok()?),
        request_id: None,
        traceparent: None,
    })
}

#[async_trait]
impl SpendsInDoubt for SqlReadModelStore {
    /// Up to `limit` spends made before `before`, oldest first, after `after` (the last of the
    /// page before).
    async fn spent_before(
        &self,
        before: DateTime<Utc>,
        after: Option<&OpenSpend>,
        limit: u32,
    ) -> Result<Vec<OpenSpend>, StoreError> {
        let (at, user, key) = after.map_or((i64::MIN, String::new(), String::new()), |last| {
            (
                last.spent_at,
                last.user_id.to_string(),
                last.spend_key.to_string(),
            )
        });
        let rows = sqlx::query(
            "SELECT user_id, spend_key, room_id, txn_id, spent_at, correlation_id, spent_event_id
             FROM uc_open_spends
             WHERE spent_at < $1
               AND (spent_at > $2 OR (spent_at = $2 AND (user_id > $3 OR (user_id = $3 AND spend_key > $4))))
             ORDER BY spent_at, user_id, spend_key LIMIT $5",
        )
        .bind(before.timestamp_millis())
        .bind(at)
        .bind(user)
        .bind(key)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        rows.iter()
            .map(|row| {
                let uuid = |column: &str| -> Result<Uuid, StoreError> {
                    row.try_get::<String, _>(column)
                        .map_err(StoreError::backend)?
                        .parse()
                        .map_err(StoreError::backend)
                };
                Ok(OpenSpend {
                    user_id: uuid("user_id")?,
                    spend_key: SpendKey::parse(
                        &row.try_get::<String, _>("spend_key")
                            .map_err(StoreError::backend)?,
                    )
                    .map_err(StoreError::backend)?,
                    room_id: uuid("room_id")?,
                    txn_id: row.try_get("txn_id").map_err(StoreError::backend)?,
                    spent_at: row.try_get("spent_at").map_err(StoreError::backend)?,
                    conversation: conversation(
                        row.try_get("correlation_id").map_err(StoreError::backend)?,
                        row.try_get("spent_event_id").map_err(StoreError::backend)?,
                    ),
                })
            })
            .collect()
    }

    /// Forgets spends whose send is finished (posted, or given back), in runs of rows per statement.
    async fn forget(&self, spends: &[&OpenSpend]) -> Result<(), StoreError> {
        if spends.is_empty() {
            return Ok(());
        }
        let rows = spends
            .iter()
            .map(|spend| {
                vec![
                    Text(spend.user_id.to_string()),
                    Text(spend.spend_key.to_string()),
                ]
            })
            .collect();
        let mut tx = self.begin().await?;
        let deleted = msa_sql::execute_rows(
            &mut tx,
            |n| {
                format!(
                    "DELETE FROM uc_open_spends WHERE (user_id, spend_key) IN (VALUES {})",
                    msa_sql::placeholders(n, 2)
                )
            },
            rows,
        )
        .await;
        match deleted {
            Ok(_) => self.commit(tx).await,
            // Rolled back, never dropped (a dropped transaction may linger in the pool).
            Err(error) => {
                self.rollback(tx).await?;
                Err(StoreError::backend(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use msa_chat::contract::TxnId;

    #[test]
    fn a_message_spend_key_names_its_room_and_txn_id() {
        let room = Uuid::now_v7();
        let key = spend_key(room, &TxnId::parse("t:1").unwrap());
        assert_eq!(send_of(key.as_str()), Some((room, "t:1")));
        // The longest txn id still makes a key.
        let longest = TxnId::parse(&"x".repeat(msa_chat::contract::MAX_TXN_ID_BYTES)).unwrap();
        assert!(send_of(spend_key(Uuid::max(), &longest).as_str()).is_some());
        assert_eq!(send_of("message:not-a-room:t"), None);
        assert_eq!(send_of("other:x"), None);
    }
}
