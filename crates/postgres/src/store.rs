use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use msa_kernel::{
    AppendError, EventMetadata, EventStore, IdempotencyRecord, LogPosition, NewEvent,
    RecordedEvent, Snapshot, StoreError, StreamId, Upcasters,
};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Row};
use tokio::sync::{oneshot, Notify};
use uuid::Uuid;

use crate::append::{is_violation, recorded, AppendStatement};
use crate::group_commit::{self, Committers, Pending};

const EVENT_COLUMNS: &str =
    "global_position, transaction_id::text::bigint AS commit_id, event_id, \
     stream_id, version, event_type, schema_version, payload, occurred_at, correlation_id, \
     causation_id, actor, traceparent";

/// An [`EventStore`] in a PostgreSQL database.
#[derive(Clone)]
pub struct PgEventStore {
    pool: PgPool,
    upcasters: Arc<Upcasters>,
    appended: Arc<Notify>,
    /// Where appends wait to be committed in groups (see `group_commit.rs`).
    committers: Arc<Committers>,
}

impl PgEventStore {
    /// The last event in log order among those `filter` keeps (`START` when none).
    async fn last_event(&self, filter: &str) -> Result<LogPosition, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT transaction_id::text::bigint AS commit_id, global_position FROM events {filter}
             ORDER BY transaction_id DESC, global_position DESC LIMIT 1"
        ))
        .fetch_optional(&self.pool)
        .await
        .map_err(msa_sql::store_error)?;
        match row {
            Some(row) => Ok(LogPosition {
                commit: row.try_get("commit_id").map_err(msa_sql::store_error)?,
                position: row
                    .try_get("global_position")
                    .map_err(msa_sql::store_error)?,
            }),
            None => Ok(LogPosition::START),
        }
    }

    /// Connects with up to `max_connections` and applies the migrations.
    pub async fn connect(
        options: PgConnectOptions,
        max_connections: u32,
    ) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            .connect_with(options)
            .await
            .map_err(msa_sql::store_error)?;
        Self::from_pool(pool).await
    }

    /// Uses an existing pool, applying the migrations.
    pub async fn from_pool(pool: PgPool) -> Result<Self, StoreError> {
        crate::migrator()
            .run(&pool)
            .await
            .map_err(StoreError::backend)?;
        let appended = Arc::new(Notify::new());
        Ok(Self {
            committers: Arc::new(Committers::start(&pool, &appended)),
            pool,
            upcasters: Arc::new(Upcasters::new()),
            appended,
        })
    }

    /// Converts old event versions on read with these upcasters.
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = Arc::new(upcasters);
        self
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Appends inside a transaction the caller owns, so a command can commit its events together
    /// with other writes of the same context. Nothing is visible until the caller commits. (On a
    /// conflict, the stream's version is read on another pooled connection.)
    pub async fn append_in(
        &self,
        conn: &mut PgConnection,
        stream_id: &StreamId,
        expected_version: u64,
        events: Vec<NewEvent>,
    ) -> Result<Vec<RecordedEvent>, AppendError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let statement = AppendStatement {
            stream_id,
            expected_version,
            events: &events,
            idempotency: None,
        };
        let rows = statement.execute(conn).await?;
        match recorded(stream_id, expected_version, events, rows)? {
            Some(recorded) => Ok(recorded),
            None => Err(self.conflict(stream_id, expected_version).await),
        }
    }

    async fn conflict(&self, stream_id: &StreamId, expected: u64) -> AppendError {
        let actual = sqlx::query_scalar::<_, i64>(
            "SELECT coalesce(max(version), 0) FROM events WHERE stream_id = $1",
        )
        .bind(stream_id.as_str())
        .fetch_one(&self.pool)
        .await;
        match actual {
            Ok(actual) => AppendError::Conflict {
                stream_id: stream_id.clone(),
                expected,
                actual: actual as u64,
            },
            Err(error) => msa_sql::store_error(error).into(),
        }
    }

    fn decode_row(&self, row: &PgRow) -> Result<RecordedEvent, StoreError> {
        let event = row_to_event(row).map_err(msa_sql::store_error)?;
        Ok(self.upcasters.upcast_recorded(event)?)
    }
}

fn row_to_event(row: &PgRow) -> Result<RecordedEvent, sqlx::Error> {
    Ok(RecordedEvent {
        position: LogPosition {
            commit: row.try_get("commit_id")?,
            position: row.try_get("global_position")?,
        },
        stream_id: StreamId::from_stored(row.try_get::<String, _>("stream_id")?),
        version: row.try_get::<i64, _>("version")? as u64,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get::<i32, _>("schema_version")? as u32,
        payload: row.try_get("payload")?,
        occurred_at: row.try_get::<DateTime<Utc>, _>("occurred_at")?,
        metadata: EventMetadata {
            correlation_id: row.try_get::<Uuid, _>("correlation_id")?,
            causation_id: row.try_get("causation_id")?,
            actor: row.try_get("actor")?,
            traceparent: row.try_get("traceparent")?,
        },
    })
}

async fn insert_idempotency(
    conn: &mut PgConnection,
    record: &IdempotencyRecord,
) -> Result<(), AppendError> {
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (scope, key, fingerprint, result) VALUES ($1, $2, $3, $4)",
    )
    .bind(&record.scope)
    .bind(&record.key)
    .bind(&record.fingerprint)
    .bind(&record.result)
    .execute(conn)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(error) if is_violation(&error, "idempotency_keys_pkey") => {
            Err(AppendError::DuplicateIdempotencyKey {
                scope: record.scope.clone(),
                key: record.key.clone(),
            })
        }
        Err(error) => Err(msa_sql::store_error(error).into()),
    }
}

#[async_trait]
impl EventStore for PgEventStore {
    async fn append(
        &self,
        stream_id: &StreamId,
        expected_version: u64,
        events: Vec<NewEvent>,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<Vec<RecordedEvent>, AppendError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let (answer, outcome) = oneshot::channel();
        let pending = Pending {
            stream_id: stream_id.clone(),
            expected_version,
            events,
            idempotency,
            answer,
        };
        self.committers.send(pending)?;
        match outcome.await.map_err(|_| group_commit::stopped())?? {
            Some(recorded) => Ok(recorded),
            // The committer's connection is back in the pool before the version is read.
            None => Err(self.conflict(stream_id, expected_version).await),
        }
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
        .fetch_all(&self.pool)
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
        .fetch_optional(&self.pool)
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
            "SELECT {EVENT_COLUMNS} FROM events WHERE correlation_id = $1 \
             ORDER BY transaction_id, global_position LIMIT $2"
        ))
        .bind(correlation_id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(msa_sql::store_error)?;
        rows.iter().map(|row| self.decode_row(row)).collect()
    }

    async fn naming(&self, id: Uuid, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events \
             WHERE event_id = $1 OR strpos(stream_id, $1::text) > 0 \
                OR strpos(payload::text, $1::text) > 0 \
             ORDER BY transaction_id, global_position LIMIT $2"
        ))
        .bind(id)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(msa_sql::store_error)?;
        rows.iter().map(|row| self.decode_row(row)).collect()
    }

    async fn read_all(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        // Runs outside any transaction of ours: a reader holding an xid would hold back its own
        // horizon.
        let rows = sqlx::query(&format!(
            "SELECT {EVENT_COLUMNS} FROM events
             WHERE (transaction_id, global_position) > ($1::bigint::text::xid8, $2)
               AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())
             ORDER BY transaction_id, global_position
             LIMIT $3"
        ))
        .bind(after.commit)
        .bind(after.position)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await
        .map_err(msa_sql::store_error)?;
        rows.iter().map(|row| self.decode_row(row)).collect()
    }

    async fn head_position(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COALESCE(MAX(global_position), 0) FROM events")
            .fetch_one(&self.pool)
            .await
            .map_err(msa_sql::store_error)
    }

    async fn last_position(&self) -> Result<LogPosition, StoreError> {
        // The last event below the horizon, as `read_all` would reach it (same order, same rule).
        self.last_event("WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())")
            .await
    }

    async fn last_committed_position(&self) -> Result<LogPosition, StoreError> {
        self.last_event("").await
    }

    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        let row =
            sqlx::query("SELECT version, state_version, state FROM snapshots WHERE stream_id = $1")
                .bind(stream_id.as_str())
                .fetch_optional(&self.pool)
                .await
                .map_err(msa_sql::store_error)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Snapshot {
            stream_id: stream_id.clone(),
            version: row
                .try_get::<i64, _>("version")
                .map_err(msa_sql::store_error)? as u64,
            state_version: row
                .try_get::<i32, _>("state_version")
                .map_err(msa_sql::store_error)? as u32,
            state: row.try_get("state").map_err(msa_sql::store_error)?,
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
        .bind(snapshot.state_version as i32)
        .bind(&snapshot.state)
        .execute(&self.pool)
        .await
        .map_err(msa_sql::store_error)?;
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
        .fetch_optional(&self.pool)
        .await
        .map_err(msa_sql::store_error)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(IdempotencyRecord {
            scope: scope.to_owned(),
            key: key.to_owned(),
            fingerprint: row.try_get("fingerprint").map_err(msa_sql::store_error)?,
            result: row.try_get("result").map_err(msa_sql::store_error)?,
        }))
    }

    async fn save_idempotency_record(&self, record: &IdempotencyRecord) -> Result<(), AppendError> {
        let mut conn = self.pool.acquire().await.map_err(msa_sql::store_error)?;
        insert_idempotency(&mut conn, record).await
    }

    fn appended(&self) -> Arc<Notify> {
        self.appended.clone()
    }
}
