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
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use tokio::sync::Notify;
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
        Self::open_with(options).await
    }

    pub async fn open_with(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(StoreError::backend)?;
        crate::migrator()
            .run(&writer)
            .await
            .map_err(StoreError::backend)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(StoreError::backend)?;
        Ok(Self {
            writer,
            reader,
            upcasters: Arc::new(Upcasters::new()),
            appended: Arc::new(Notify::new()),
        })
    }

    /// Converts old event versions on read with these upcasters.
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = Arc::new(upcasters);
        self
    }

    /// The pool that writes; SQLite allows one writer, so it has one connection.
    pub fn writer(&self) -> &SqlitePool {
        &self.writer
    }

    async fn stream_version(&self, stream_id: &StreamId) -> Result<u64, StoreError> {
        let version: i64 =
            sqlx::query_scalar("SELECT coalesce((SELECT version FROM events WHERE stream_id = $1 ORDER BY version DESC LIMIT 1), 0)")
                .bind(stream_id.as_str())
                .fetch_one(&self.writer)
                .await
                .map_err(StoreError::backend)?;
        Ok(version as u64)
    }

    /// The command's rows in one statement, guarded by the stream's version. A conflict is
    /// reported with `actual: 0`; the caller fills in the real version once the writer is free.
    async fn insert_events(
        &self,
        conn: &mut SqliteConnection,
        stream_id: &StreamId,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, AppendError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let mut insert = QueryBuilder::<Sqlite>::new(
            // One seek to the stream's last version on the (stream_id, version) index. (SQLite
            // computes `max(version) … WHERE stream_id = ?` by scanning the stream's entries,
            // which made an append cost grow with the stream's length.)
            "WITH guard AS (SELECT coalesce((SELECT version FROM events WHERE stream_id = ",
        );
        insert
            .push_bind(stream_id.as_str())
            .push(" ORDER BY version DESC LIMIT 1), 0) AS actual) INSERT INTO events (event_id, stream_id, version, event_type, schema_version, payload, occurred_at, correlation_id, causation_id, actor, traceparent) SELECT v.* FROM (");
        for (i, event) in events.iter().enumerate() {
            insert.push(if i == 0 {
                "SELECT "
            } else {
                " UNION ALL SELECT "
            });
            let mut row = insert.separated(", ");
            row.push_bind(event.event_id.to_string())
                .push_bind(stream_id.as_str())
                .push_bind((expected_version + 1 + i as u64) as i64)
                .push_bind(event.event_type.as_str())
                .push_bind(event.schema_version as i64)
                .push_bind(event.payload.to_string())
                .push_bind(event.occurred_at)
                .push_bind(event.metadata.correlation_id.to_string())
                .push_bind(event.metadata.causation_id.map(|id| id.to_string()))
                .push_bind(event.metadata.actor.as_deref())
                .push_bind(event.metadata.traceparent.as_deref());
        }
        insert
            .push(") AS v, guard WHERE guard.actual = ")
            .push_bind(expected_version as i64)
            .push(" RETURNING global_position");
        let conflict = || AppendError::Conflict {
            stream_id: stream_id.clone(),
            expected: expected_version,
            actual: 0,
        };
        let positions: Vec<i64> = match insert.build_query_scalar().fetch_all(&mut *conn).await {
            Ok(positions) if positions.len() == events.len() => positions,
            Ok(_) => return Err(conflict()),
            Err(error) if is_unique_violation(&error, "events.stream_id") => return Err(conflict()),
            Err(error) => return Err(StoreError::backend(error).into()),
        };
        Ok(events
            .into_iter()
            .zip(positions)
            .enumerate()
            .map(|(i, (event, position))| {
                event.recorded(
                    stream_id.clone(),
                    expected_version + 1 + i as u64,
                    LogPosition {
                        commit: 0,
                        position,
                    },
                )
            })
            .collect())
    }

    fn decode_row(&self, row: &SqliteRow) -> Result<RecordedEvent, StoreError> {
        let event = row_to_event(row).map_err(StoreError::backend)?;
        Ok(self.upcasters.upcast_recorded(event)?)
    }
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

fn is_unique_violation(error: &sqlx::Error, constraint_hint: &str) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation() && db.message().contains(constraint_hint))
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
        // Without an idempotency record the insert is one statement, atomic on its own; with
        // one, both go in a transaction (rolled back if this future is dropped).
        let appended = match &idempotency {
            None => {
                let mut conn = self.writer.acquire().await.map_err(StoreError::backend)?;
                self.insert_events(&mut conn, stream_id, expected_version, events)
                    .await
            }
            Some(record) => {
                let mut tx = self.writer.begin().await.map_err(StoreError::backend)?;
                match self
                    .insert_events(&mut tx, stream_id, expected_version, events)
                    .await
                {
                    Ok(recorded) => match insert_idempotency(&mut tx, record).await {
                        Ok(()) => tx
                            .commit()
                            .await
                            .map(|()| recorded)
                            .map_err(|e| StoreError::backend(e).into()),
                        Err(error) => Err(error),
                    },
                    Err(error) => Err(error),
                }
            }
        };
        let recorded = match appended {
            Ok(recorded) => recorded,
            Err(AppendError::Conflict {
                stream_id,
                expected,
                ..
            }) => {
                return Err(AppendError::Conflict {
                    actual: self.stream_version(&stream_id).await?,
                    stream_id,
                    expected,
                });
            }
            Err(other) => return Err(other),
        };
        self.appended.notify_waiters();
        Ok(recorded)
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
        .map_err(StoreError::backend)?;
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
        .map_err(StoreError::backend)?;
        rows.iter().map(|row| self.decode_row(row)).collect()
    }

    async fn head_position(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COALESCE(MAX(global_position), 0) FROM events")
            .fetch_one(&self.reader)
            .await
            .map_err(StoreError::backend)
    }

    async fn last_position(&self) -> Result<LogPosition, StoreError> {
        let position: Option<i64> = sqlx::query_scalar(
            "SELECT global_position FROM events ORDER BY global_position DESC LIMIT 1",
        )
        .fetch_optional(&self.reader)
        .await
        .map_err(StoreError::backend)?;
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
                .map_err(StoreError::backend)?;
        let Some(row) = row else { return Ok(None) };
        let state: String = row.try_get("state").map_err(StoreError::backend)?;
        Ok(Some(Snapshot {
            stream_id: stream_id.clone(),
            version: row
                .try_get::<i64, _>("version")
                .map_err(StoreError::backend)? as u64,
            state_version: row
                .try_get::<i64, _>("state_version")
                .map_err(StoreError::backend)? as u32,
            state: serde_json::from_str(&state).map_err(StoreError::backend)?,
        }))
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO snapshots (stream_id, version, state_version, state) VALUES ($1, $2, $3, $4)
             ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version,
                 state_version = excluded.state_version, state = excluded.state
             WHERE excluded.version > snapshots.version OR excluded.state_version <> snapshots.state_version",
        )
        .bind(snapshot.stream_id.as_str())
        .bind(snapshot.version as i64)
        .bind(snapshot.state_version as i64)
        .bind(snapshot.state.to_string())
        .execute(&self.writer)
        .await
        .map_err(StoreError::backend)?;
        Ok(())
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
        .map_err(StoreError::backend)?;
        let Some(row) = row else { return Ok(None) };
        let result: String = row.try_get("result").map_err(StoreError::backend)?;
        Ok(Some(IdempotencyRecord {
            scope: scope.to_owned(),
            key: key.to_owned(),
            fingerprint: row.try_get("fingerprint").map_err(StoreError::backend)?,
            result: serde_json::from_str(&result).map_err(StoreError::backend)?,
        }))
    }

    async fn save_idempotency_record(&self, record: &IdempotencyRecord) -> Result<(), AppendError> {
        let mut conn = self.writer.acquire().await.map_err(StoreError::backend)?;
        insert_idempotency(&mut conn, record).await
    }

    fn appended(&self) -> Arc<Notify> {
        self.appended.clone()
    }
}

async fn insert_idempotency(
    conn: &mut SqliteConnection,
    record: &IdempotencyRecord,
) -> Result<(), AppendError> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, fingerprint, result, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&record.scope)
    .bind(&record.key)
    .bind(&record.fingerprint)
    .bind(record.result.to_string())
    .bind(Utc::now())
    .execute(conn)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(error) if is_unique_violation(&error, "idempotency_keys") => {
            Err(AppendError::DuplicateIdempotencyKey {
                scope: record.scope.clone(),
                key: record.key.clone(),
            })
        }
        Err(error) => Err(StoreError::backend(error).into()),
    }
}
