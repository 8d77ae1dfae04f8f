//! Group commit: appends that wait at the same time share one transaction, and so one fsync.
//!
//! With `synchronous = FULL` a commit waits for the disk (about half a millisecond on the
//! machines we measure on), and SQLite has one writer, so a commit per append would cap a
//! context at a couple of thousand appends a second whatever the cores. One writer task takes
//! every append waiting when it starts a transaction, stores each so that a conflict or a used
//! idempotency key leaves nothing of that append behind (see [`commit`]) and commits them
//! together; no caller is answered before the commit is durable. Under light load a batch is one append, so
//! nothing waits for company.

use std::sync::Arc;

use chrono::Utc;
use msa_kernel::{
    AppendError, IdempotencyRecord, LogPosition, NewEvent, RecordedEvent, StoreError, StreamId,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot, Notify};

/// Appends taken into one transaction at most.
const MAX_BATCH: usize = 256;

/// One caller's append, waiting for the writer.
pub(crate) struct Append {
    pub stream_id: StreamId,
    pub expected_version: u64,
    pub events: Vec<NewEvent>,
    pub idempotency: Option<IdempotencyRecord>,
    pub answer: oneshot::Sender<Result<Vec<RecordedEvent>, AppendError>>,
}

/// The writer task is gone (the runtime is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the event store's writer has stopped")]
pub(crate) struct Closed;

/// Starts the writer task on `writer` (the one-connection pool); appends are sent to the
/// returned queue. `appended` is notified after each commit that stored events.
pub(crate) fn start(writer: SqlitePool, appended: Arc<Notify>) -> mpsc::Sender<Append> {
    let (queue, waiting) = mpsc::channel(MAX_BATCH * 4);
    tokio::spawn(write(writer, waiting, appended));
    queue
}

async fn write(writer: SqlitePool, mut waiting: mpsc::Receiver<Append>, appended: Arc<Notify>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let outcomes = match commit(&writer, &mut batch).await {
            Ok(outcomes) => outcomes,
            Err(error) => {
                // The transaction is gone and every append in it with it: each caller hears why.
                let error = error.to_string();
                batch
                    .iter()
                    .map(|_| Err(StoreError::backend(std::io::Error::other(error.clone())).into()))
                    .collect()
            }
        };
        if outcomes.iter().any(Result::is_ok) {
            appended.notify_waiters();
        }
        for (append, outcome) in batch.drain(..).zip(outcomes) {
            // A caller that stopped waiting still had its append committed, as when an answer
            // is lost on the way back; its idempotency key makes the retry safe.
            let _ = append.answer.send(outcome);
        }
    }
}

/// Stores the batch in one transaction. Each append is undone on its own when it fails, without
/// a savepoint: its idempotency key goes in first (a used key fails that statement, which leaves
/// nothing behind), then its events (a stale version inserts no row, a racing one fails the
/// statement), and the key is deleted again if the events did not go in. A failure of the
/// database itself fails the whole batch. A conflict is answered with the stream's version after
/// the commit.
async fn commit(
    writer: &SqlitePool,
    batch: &mut [Append],
) -> Result<Vec<Result<Vec<RecordedEvent>, AppendError>>, sqlx::Error> {
    let mut tx = writer.begin().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for append in batch.iter_mut() {
        let record = append.idempotency.as_ref();
        let mut outcome = match record {
            Some(record) => insert_idempotency(&mut tx, record)
                .await
                .map(|()| Vec::new()),
            None => Ok(Vec::new()),
        };
        if outcome.is_ok() {
            let events = std::mem::take(&mut append.events);
            outcome =
                insert_events(&mut tx, &append.stream_id, append.expected_version, events).await;
            if let (Err(AppendError::Conflict { .. }), Some(record)) = (&outcome, record) {
                sqlx::query("DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2")
                    .bind(&record.scope)
                    .bind(&record.key)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if let Err(AppendError::Store(error)) = outcome {
            // What the transaction holds is unknown now: none of the batch is kept.
            return Err(sqlx::Error::Protocol(error.to_string()));
        }
        outcomes.push(outcome);
    }
    tx.commit().await?;
    for outcome in &mut outcomes {
        if let Err(AppendError::Conflict {
            stream_id, actual, ..
        }) = outcome
        {
            *actual = stream_version(writer, stream_id).await?;
        }
    }
    Ok(outcomes)
}

async fn stream_version(writer: &SqlitePool, stream_id: &StreamId) -> Result<u64, sqlx::Error> {
    let version: i64 = sqlx::query_scalar(
        "SELECT coalesce((SELECT version FROM events WHERE stream_id = $1 ORDER BY version DESC LIMIT 1), 0)",
    )
    .bind(stream_id.as_str())
    .fetch_one(writer)
    .await?;
    Ok(version as u64)
}

/// The command's rows in one statement, guarded by the stream's version. A conflict is
/// reported with `actual: 0`; [`commit`] fills in the real version once the batch is stored.
async fn insert_events(
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

pub(crate) async fn insert_idempotency(
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

fn is_unique_violation(error: &sqlx::Error, constraint_hint: &str) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation() && db.message().contains(constraint_hint))
}
