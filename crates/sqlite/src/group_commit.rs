//! The writer: one thread that owns the file's write connection and commits in groups.
//!
//! With `synchronous = FULL` a commit waits for the disk (about half a millisecond on the
//! machines we measure on), and SQLite has one writer, so a commit per append would cap a
//! context at a couple of thousand appends a second whatever the cores. The writer takes every
//! write waiting when it starts a transaction, stores each so that a conflict or a used
//! idempotency key leaves nothing of that append behind, and commits them together; no caller is
//! answered before the commit is durable. Under light load a batch is one append, so nothing
//! waits for company.
//!
//! The writer runs on rusqlite in a thread of its own rather than on sqlx, which the rest of the
//! store uses: through sqlx every statement is a round trip between the caller's task and the
//! connection's worker thread, and under load those hops, not SQLite, made a batch slow (0.6 ms
//! per append, measured with 200 chat users). Here a batch runs from BEGIN to COMMIT without
//! leaving the thread.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use msa_kernel::{
    AppendError, IdempotencyRecord, LogPosition, NewEvent, RecordedEvent, Snapshot, StoreError,
    StreamId,
};
use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};
use tokio::sync::{mpsc, oneshot, Notify};

/// Writes taken into one transaction at most.
const MAX_BATCH: usize = 256;

/// One caller's write, waiting for the writer.
pub(crate) enum Write {
    Append {
        stream_id: StreamId,
        expected_version: u64,
        events: Vec<NewEvent>,
        idempotency: Option<IdempotencyRecord>,
        answer: oneshot::Sender<Result<Vec<RecordedEvent>, AppendError>>,
    },
    Snapshot {
        snapshot: Snapshot,
        answer: oneshot::Sender<Result<(), StoreError>>,
    },
    /// A command result that appended nothing.
    Record {
        record: IdempotencyRecord,
        answer: oneshot::Sender<Result<(), AppendError>>,
    },
}

/// What became of one write, before the commit made it so.
enum Done {
    Append(Result<Vec<RecordedEvent>, AppendError>),
    Snapshot,
    Record(Result<(), AppendError>),
}

/// The writer thread is gone (the store is being dropped).
#[derive(Debug, thiserror::Error)]
#[error("the event store's writer has stopped")]
pub(crate) struct Closed;

/// Opens the write connection to `path` and starts the writer thread; writes are sent to the
/// returned queue. `appended` is notified after each commit that stored events. The thread ends
/// when the last sender is dropped.
pub(crate) fn start(path: &Path, appended: Arc<Notify>) -> Result<mpsc::Sender<Write>, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(StoreError::backend)?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(StoreError::backend)?;
    conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")
        .map_err(StoreError::backend)?;
    let (queue, waiting) = mpsc::channel(MAX_BATCH * 4);
    std::thread::Builder::new()
        .name("sqlite-writer".into())
        .spawn(move || write(conn, waiting, appended))
        .map_err(StoreError::backend)?;
    Ok(queue)
}

fn write(mut conn: Connection, mut waiting: mpsc::Receiver<Write>, appended: Arc<Notify>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = waiting.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match waiting.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let outcome = commit(&mut conn, &mut batch);
        if let Ok(done) = &outcome {
            if done
                .iter()
                .any(|d| matches!(d, Done::Append(Ok(events)) if !events.is_empty()))
            {
                appended.notify_waiters();
            }
        }
        answer(batch.drain(..), outcome);
    }
}

/// Tells each caller what became of its write. A caller that stopped waiting still had its
/// write committed, as when an answer is lost on the way back; its idempotency key makes the
/// retry safe.
fn answer(batch: impl Iterator<Item = Write>, outcome: Result<Vec<Done>, rusqlite::Error>) {
    match outcome {
        Ok(done) => {
            for (write, done) in batch.zip(done) {
                match (write, done) {
                    (Write::Append { answer, .. }, Done::Append(result)) => {
                        let _ = answer.send(result);
                    }
                    (Write::Snapshot { answer, .. }, Done::Snapshot) => {
                        let _ = answer.send(Ok(()));
                    }
                    (Write::Record { answer, .. }, Done::Record(result)) => {
                        let _ = answer.send(result);
                    }
                    _ => unreachable!("outcomes are made in the order of the batch"),
                }
            }
        }
        Err(error) => {
            // The transaction is gone and every write in it: each caller hears why.
            let error = match error.sqlite_error() {
                Some(code) if msa_sql::sqlite_code_unavailable(code.extended_code) => {
                    StoreError::unavailable(error)
                }
                _ => StoreError::backend(error),
            };
            let failed = || error.copied();
            for write in batch {
                match write {
                    Write::Append { answer, .. } => {
                        let _ = answer.send(Err(failed().into()));
                    }
                    Write::Snapshot { answer, .. } => {
                        let _ = answer.send(Err(failed()));
                    }
                    Write::Record { answer, .. } => {
                        let _ = answer.send(Err(failed().into()));
                    }
                }
            }
        }
    }
}

/// Stores the batch in one transaction. The write lock is taken at BEGIN, so a stream's version
/// read inside it stays true until the commit; a failure of the database itself fails the whole
/// batch.
fn commit(conn: &mut Connection, batch: &mut [Write]) -> Result<Vec<Done>, rusqlite::Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut done = Vec::with_capacity(batch.len());
    for write in batch.iter_mut() {
        done.push(match write {
            Write::Append {
                stream_id,
                expected_version,
                events,
                idempotency,
                ..
            } => Done::Append(append(
                &tx,
                stream_id,
                *expected_version,
                std::mem::take(events),
                idempotency.as_ref(),
            )?),
            Write::Snapshot { snapshot, .. } => {
                save_snapshot(&tx, snapshot)?;
                Done::Snapshot
            }
            Write::Record { record, .. } => Done::Record(match insert_record(&tx, record)? {
                true => Ok(()),
                false => Err(duplicate(record)),
            }),
        });
    }
    tx.commit()?;
    Ok(done)
}

/// One append: its idempotency key first (a used key stops it with nothing written), then the
/// version check, then its events; the key is deleted again if the stream moved on.
fn append(
    tx: &rusqlite::Transaction<'_>,
    stream_id: &StreamId,
    expected_version: u64,
    events: Vec<NewEvent>,
    idempotency: Option<&IdempotencyRecord>,
) -> Result<Result<Vec<RecordedEvent>, AppendError>, rusqlite::Error> {
    if let Some(record) = idempotency {
        if !insert_record(tx, record)? {
            return Ok(Err(duplicate(record)));
        }
    }
    if events.is_empty() {
        return Ok(Ok(Vec::new()));
    }
    let actual: i64 = tx
        .prepare_cached(
            "SELECT coalesce((SELECT version FROM events WHERE stream_id = ?1 ORDER BY version DESC LIMIT 1), 0)",
        )?
        .query_row([stream_id.as_str()], |row| row.get(0))?;
    if actual as u64 != expected_version {
        if let Some(record) = idempotency {
            tx.prepare_cached("DELETE FROM idempotency_keys WHERE scope = ?1 AND key = ?2")?
                .execute([&record.scope, &record.key])?;
        }
        return Ok(Err(AppendError::Conflict {
            stream_id: stream_id.clone(),
            expected: expected_version,
            actual: actual as u64,
        }));
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO events (event_id, stream_id, version, event_type, schema_version, payload, \
         occurred_at, correlation_id, causation_id, actor, traceparent) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) RETURNING global_position",
    )?;
    let mut recorded = Vec::with_capacity(events.len());
    for (i, event) in events.into_iter().enumerate() {
        let version = expected_version + 1 + i as u64;
        let position: i64 = insert.query_row(
            params![
                event.event_id.to_string(),
                stream_id.as_str(),
                version as i64,
                event.event_type,
                event.schema_version as i64,
                event.payload.to_string(),
                // As sqlx writes a timestamp, so the readers (on sqlx) decode it alike.
                event
                    .occurred_at
                    .to_rfc3339_opts(SecondsFormat::AutoSi, false),
                event.metadata.correlation_id.to_string(),
                event.metadata.causation_id.map(|id| id.to_string()),
                event.metadata.actor,
                event.metadata.traceparent,
            ],
            |row| row.get(0),
        )?;
        recorded.push(event.recorded(
            stream_id.clone(),
            version,
            LogPosition {
                commit: 0,
                position,
            },
        ));
    }
    Ok(Ok(recorded))
}

/// Stores the record unless its key is taken; says whether it did.
fn insert_record(
    tx: &rusqlite::Transaction<'_>,
    record: &IdempotencyRecord,
) -> Result<bool, rusqlite::Error> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, result, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (scope, key) DO NOTHING",
        )?
        .execute(params![
            record.scope,
            record.key,
            record.fingerprint,
            record.result.to_string(),
            Utc::now().to_rfc3339_opts(SecondsFormat::AutoSi, false),
        ])?;
    Ok(inserted == 1)
}

fn duplicate(record: &IdempotencyRecord) -> AppendError {
    AppendError::DuplicateIdempotencyKey {
        scope: record.scope.clone(),
        key: record.key.clone(),
    }
}

fn save_snapshot(
    tx: &rusqlite::Transaction<'_>,
    snapshot: &Snapshot,
) -> Result<(), rusqlite::Error> {
    tx.prepare_cached(
        "INSERT INTO snapshots (stream_id, version, state_version, state) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version,
             state_version = excluded.state_version, state = excluded.state
         WHERE excluded.version > snapshots.version OR excluded.state_version <> snapshots.state_version",
    )?
    .execute(params![
        snapshot.stream_id.as_str(),
        snapshot.version as i64,
        snapshot.state_version as i64,
        snapshot.state.to_string(),
    ])?;
    Ok(())
}
