//! Dead letters of the in-process bus, in the consumer's query database.

use async_trait::async_trait;
use chrono::Utc;
use msa_kernel::bus::{BusError, DeadLetter, DeadLetters, Delivery};
use msa_kernel::RecordedEvent;
use sqlx::Row;
use uuid::Uuid;

use crate::SqlReadModelStore;

fn bus_error(error: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(error.to_string())
}

#[async_trait]
impl DeadLetters for SqlReadModelStore {
    async fn send(&self, letter: &DeadLetter) -> Result<(), BusError> {
        let event = &letter.delivery.event;
        sqlx::query(
            "INSERT INTO dead_letters (id, consumer, topic, event_id, event_type, stream_id, version, error, attempts, dead_at, event)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(Uuid::now_v7().to_string())
        .bind(&letter.consumer)
        .bind(&letter.delivery.topic)
        .bind(event.event_id.to_string())
        .bind(&event.event_type)
        .bind(event.stream_id.as_str())
        .bind(event.version as i64)
        .bind(&letter.error)
        .bind(letter.attempts as i64)
        .bind(letter.dead_at.to_rfc3339())
        .bind(serde_json::to_string(event).map_err(bus_error)?)
        .execute(self.pool())
        .await
        .map_err(bus_error)?;
        Ok(())
    }

    async fn list(&self, topic: &str) -> Result<Vec<DeadLetter>, BusError> {
        let rows = sqlx::query(
            "SELECT consumer, topic, error, attempts, dead_at, event FROM dead_letters
             WHERE topic = $1 ORDER BY id",
        )
        .bind(topic)
        .fetch_all(self.pool())
        .await
        .map_err(bus_error)?;
        rows.into_iter()
            .map(|row| {
                let event: RecordedEvent =
                    serde_json::from_str(row.get::<&str, _>("event")).map_err(bus_error)?;
                let dead_at = chrono::DateTime::parse_from_rfc3339(row.get::<&str, _>("dead_at"))
                    .map_err(bus_error)?
                    .with_timezone(&Utc);
                Ok(DeadLetter {
                    consumer: row.get("consumer"),
                    error: row.get("error"),
                    attempts: row.get::<i64, _>("attempts") as u32,
                    dead_at,
                    delivery: Delivery {
                        offset: event.position.position,
                        event,
                        topic: row.get("topic"),
                        partition: 0,
                    },
                })
            })
            .collect()
    }
}
