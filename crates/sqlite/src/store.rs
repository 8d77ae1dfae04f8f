use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use msa_kernel::{
    AppendError, EventMetadata, EventStore, IdempotencyRecord, LogPosition, NewEvent,
    RecordedEvent, Snapshot, StoreError, StreamId, Upcasters,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::group_commit::{self, Write};
use uuid::Uuid;

const EVENT_COLUMNS: &str = "global_position, event_id, stream_id, version, event_type, \
     schema_version, payload, occurred_at, correlation_id, causation_id, actor, traceparent";

/// An [`EventStore`] in one SQLite file.
#[derive(Clone)]
pub struct SqliteEventStore {
    writer: SqlitePool,
    reader: SqlitePool,
    upcasters: Arc<Upcasters>,
    appended: Arc<Notify>,
    /// The writer thread's queue: appends, snapshots and idempotency records (see `group_commit`).
    writes: mpsc::Sender<Write>,
}

impl SqliteEventStore {
    /// Opens (creating if needed) the store in `path` and applies its migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(msa_sql::store_error)?;
        crate::migrator()
            .run(&writer)
            .await
            .map_err(StoreError::backend)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(msa_sql::store_error)?;
        let appended = Arc::new(Notify::new());
        Ok(Self {
            writes: group_commit::start(path, appended.clone())?,
            writer,
            reader,
            upcasters: Arc::new(Upcasters::new()),
            appended,
        })
    }

    /// Converts old event versions on read with these upcasters.
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = Arc::new(upcasters);
        self
    }

    /// A connection that can write beside the store's own writer (for migrations, and for tests
    /// and tools that change rows by hand); SQLite lets one of them write at a time.
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    /// Queues a write for the writer thread and waits for its answer, which comes once the
    /// commit is durable.
    async fn write<T, E: From<StoreError>>(
        &self,
        write: impl FnOnce(oneshot::Sender<Result<T, E>>) -> Write,
    ) -> Result<T, E> {
        let (answer, answered) = oneshot::channel();
        self.writes
            .send(write(answer))
            .await
            .map_err(|_| closed())?;
        answered.await.map_err(|_| closed())?
    }

    fn decode_row(&self, row: &SqliteRow) -> Result<RecordedEvent, StoreError> {
        let event = row_to_event(row).map_err(msa_sql::store_error)?;
        Ok(self.upcasters.upcast_recorded(event)?)
    }
}

fn closed() -> StoreError {
    StoreError::backend(group_commit::Closed)
}

fn row_to_event(row: &SqliteRow) -> Result<RecordedEvent, sqlx::Error> {
    let uuid = |column: &str| -> Result<Option<Uuid>, sqlx::Error> {
        row.try_get::<Option<String>, _>(column)?
            .map(|text| Uuid::from_str(&text))
            .transpose()
            .map_err(|e| sqlx::Error::ColumnDecode {
                index: column.to_owned(),
                source: Box::new(e),
            })
    };
    let payload: String = row.try_get("payload")?;
    Ok(RecordedEvent {
        position: LogPosition {
            commit: 0,
            position: row.try_get("global_position")?,
        },
        stream_id: StreamId::from_stored(row.try_get::<String, _>("stream_id")?),
        version: row.try_get::<i64, _>("version")? as u64,
        event_id: uuid("event_id")?.unwrap_or_default(),
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get::<i64, _>("schema_version")? as u32,
        // A payload that is not JSON is kept as a string: decoding then names the event.
        payload: serde_json::from_str(&payload).unwrap_or(serde_json::Value::String(payload)),
        occurred_at: row.try_get::<DateTime<Utc>, _>("occurred_at")?,
        metadata: EventMetadata {
            correlation_id: uuid("correlation_id")?.unwrap_or_default(),
            causation_id: uuid("causation_id")?,
            actor: row.try_get("actor")?,
            traceparent: row.try_get("traceparent")?,
        },
    })
}

#[async_trait]
impl EventStore for SqliteEventStore {
    async fn append(
        &self,
        stream_id: &StreamId,
        expected_version: u64,
        events: Vec<NewEvent>,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<Vec<RecordedEvent>, AppendError> {
        self.write(|answer| Write::Append {
            stream_id: stream_id.clone(),
            expected_version,
            events,
            idempotency,
            answer,
        })
        .await
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version > $2 ORDER BY version"
        ))
        .bind(stream_id.as_str())
        .bind(after_version as i64)
        .fetch_all(&self.reader)
        .await
        .map_err(msa_sql::store_error)?;
        rows.iter().map(|row| self.decode_row(row)).collect()
    }

    async fn read_event(
        &self,
        stream_id: &StreamId,
        version: u64,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE stream_id = $1 AND version = $2"
        ))
        .bind(stream_id.as_str())
        .bind(version as i64)
        .fetch_optional(&self.reader)
        .await
        .map_err(msa_sql::store_error)?;
        row.map(|row| self.decode_row(&row)).transpose()
    }

    async fn correlated(
        &self,
        correlation_id: Uuid,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE correlation_id = $1 ORDER BY global_position LIMIT $2"
        ))
        .bind(correlation_id.to_string())
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await
        .map_err(msa_sql::store_error)?;
        rows.iter().map(|row| self.decode_row(row)).collect()
    }

    async fn naming(&self, id: Uuid, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events \
             WHERE event_id = $1 OR instr(stream_id, $1) > 0 OR instr(payload, $1) > 0 \
             ORDER BY global_position LIMIT $2"
        ))
        .bind(id.to_string())
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await
        .map_err(msa_sql::store_error)?;
        rows.iter().map(|row| self.decode_row(row)).collect()
    }

    async fn read_all(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE global_position > $1 ORDER BY global_position LIMIT $2"
        ))
        .bind(after.position)
        .bind(limit as i64)
        .fetch_all(&self.reader)
        .await
        .map_err(msa_sql::store_error)?;
        rows.iter().map(|row| self.decode_row(row)).collect()
    }

    async fn head_position(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COALESCE(MAX(global_position), 0) FROM events")
            .fetch_one(&self.reader)
            .await
            .map_err(msa_sql::store_error)
    }

    async fn last_position(&self) -> Result<LogPosition, StoreError> {
        let position: Option<i64> = sqlx::query_scalar(
            "SELECT global_position FROM events ORDER BY global_position DESC LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await
        .map_err(msa_sql::store_error)?;
        Ok(LogPosition {
            commit: 0,
            position: position.unwrap_or(0),
        })
    }

    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let row =
            sqlx::query("SELECT version, state_version, state FROM snapshots WHERE stream_id = $1")
                .bind(stream_id.as_str())
                .fetch_optional(&self.reader)
                .await
                .map_err(msa_sql::store_error)?;
        let Some(row) = row else { return Ok(None) };
        let state: String = row.try_get("state").map_err(msa_sql::store_error)?;
        Ok(Some(Snapshot {
            stream_id: stream_id.clone(),
            version: row
                .try_get::<i64, _>("version")
                .map_err(msa_sql::store_error)? as u64,
            state_version: row
                .try_get::<i64, _>("state_version")
                .map_err(msa_sql::store_error)? as u32,
            state: serde_json::from_str(&state).map_err(StoreError::backend)?,
        }))
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.write(|answer| Write::Snapshot {
            snapshot: snapshot.clone(),
            answer,
        })
        .await
    }

    async fn idempotency_record(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT fingerprint, result FROM idempotency_keys WHERE scope = $1 AND key = $2",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&self.reader)
        .await
        .map_err(msa_sql::store_error)?;
        let Some(row) = row else { return Ok(None) };
        let result: String = row.try_get("result").map_err(msa_sql::store_error)?;
        Ok(Some(IdempotencyRecord {
            scope: scope.to_owned(),
            key: key.to_owned(),
            fingerprint: row.try_get("fingerprint").map_err(msa_sql::store_error)?,
            result: serde_json::from_str(&result).map_err(StoreError::backend)?,
        }))
    }

    async fn save_idempotency_record(&self, record: &IdempotencyRecord) -> Result<(), AppendError> {
        self.write(|answer| Write::Record {
            record: record.clone(),
            answer,
        })
        .await
    }

    fn appended(&self) -> Arc<Notify> {
        self.appended.clone()
    }
}
