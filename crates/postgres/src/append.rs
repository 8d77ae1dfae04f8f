//! One append as one SQL statement, shared by the store's direct appends (`store.rs`) and the
//! group committer (`group_commit.rs`), and what its answer means.

use msa_kernel::{AppendError, IdempotencyRecord, LogPosition, NewEvent, RecordedEvent, StreamId};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

/// What became of an append: its recorded events, `None` when the stream was not at the
/// expected version.
pub(crate) type Outcome = Result<Option<Vec<RecordedEvent>>, AppendError>;

/// One append as one statement: the version guard, every row of the command and its
/// idempotency key, so an append is one round trip (BEGIN, two inserts and COMMIT were four). A
/// concurrent writer that passed the same guard loses on the (stream_id, version) constraint
/// instead; a used key fails the whole statement on the key's primary key, leaving no event
/// behind.
pub(crate) struct AppendStatement<'a> {
    pub stream_id: &'a StreamId,
    pub expected_version: u64,
    pub events: &'a [NewEvent],
    pub idempotency: Option<&'a IdempotencyRecord>,
}

impl AppendStatement<'_> {
    /// Runs the statement. An error leaves the transaction it ran in aborted.
    pub(crate) async fn run(&self, conn: &mut PgConnection) -> Result<Vec<PgRow>, sqlx::Error> {
        let (stream_id, expected_version) = (self.stream_id, self.expected_version);
        let mut insert = QueryBuilder::<Postgres>::new(
            "WITH guard AS (SELECT coalesce(max(version), 0) AS actual FROM events WHERE stream_id = ",
        );
        insert.push_bind(stream_id.as_str()).push(
            "), inserted AS (INSERT INTO events (event_id, stream_id, version, event_type, schema_version, payload, \
             occurred_at, correlation_id, causation_id, actor, traceparent) SELECT v.* FROM (",
        );
        insert.push_values(self.events.iter().enumerate(), |mut row, (i, event)| {
            row.push_bind(event.event_id)
                .push_bind(stream_id.as_str())
                .push_bind((expected_version + 1 + i as u64) as i64)
                .push_bind(event.event_type.as_str())
                .push_bind(event.schema_version as i32)
                .push_bind(&event.payload)
                .push_bind(event.occurred_at)
                .push_bind(event.metadata.correlation_id)
                .push_bind(event.metadata.causation_id)
                .push_bind(event.metadata.actor.as_deref())
                .push_bind(event.metadata.traceparent.as_deref());
        });
        insert
            .push(
                ") AS v(event_id, stream_id, version, event_type, schema_version, payload, occurred_at, \
                 correlation_id, causation_id, actor, traceparent), guard WHERE guard.actual = ",
            )
            .push_bind(expected_version as i64)
            .push(" RETURNING global_position, transaction_id::text::bigint AS commit_id)");
        if let Some(record) = self.idempotency {
            // Inserted only when the events were: it reads the events' RETURNING rows.
            insert
                .push(
                    ", used AS (INSERT INTO idempotency_keys (scope, key, fingerprint, result) \
                     SELECT ",
                )
                .push_bind(&record.scope)
                .push(", ")
                .push_bind(&record.key)
                .push(", ")
                .push_bind(&record.fingerprint)
                .push(", ")
                .push_bind(&record.result)
                .push(" WHERE EXISTS (SELECT 1 FROM inserted))");
        }
        insert.push(" SELECT global_position, commit_id FROM inserted ORDER BY global_position");
        insert.build().fetch_all(&mut *conn).await
    }

    /// What the statement's answer means: the new rows' positions, `None` when the stream was
    /// not at the expected version.
    pub(crate) fn outcome(
        &self,
        answer: Result<Vec<PgRow>, sqlx::Error>,
    ) -> Result<Option<Vec<PgRow>>, AppendError> {
        match answer {
            Ok(rows) if rows.len() == self.events.len() => Ok(Some(rows)),
            Ok(_) => Ok(None),
            Err(error) if is_violation(&error, "events_stream_version") => Ok(None),
            Err(error) if is_violation(&error, "idempotency_keys_pkey") => {
                let record = self
                    .idempotency
                    .expect("only a statement with a key violates its key");
                Err(AppendError::DuplicateIdempotencyKey {
                    scope: record.scope.clone(),
                    key: record.key.clone(),
                })
            }
            Err(error) => Err(msa_sql::store_error(error).into()),
        }
    }

    /// Runs the statement and reads its answer. Never takes a second connection while holding
    /// `conn` (that deadlocks an exhausted pool).
    pub(crate) async fn execute(
        &self,
        conn: &mut PgConnection,
    ) -> Result<Option<Vec<PgRow>>, AppendError> {
        self.outcome(self.run(conn).await)
    }
}

/// The appended events as stored, from the positions the statement returned.
pub(crate) fn recorded(
    stream_id: &StreamId,
    expected_version: u64,
    events: Vec<NewEvent>,
    rows: Option<Vec<PgRow>>,
) -> Outcome {
    let Some(rows) = rows else { return Ok(None) };
    let mut recorded = Vec::with_capacity(events.len());
    for ((i, event), row) in events.into_iter().enumerate().zip(rows) {
        let position = LogPosition {
            commit: row.try_get("commit_id").map_err(msa_sql::store_error)?,
            position: row
                .try_get("global_position")
                .map_err(msa_sql::store_error)?,
        };
        recorded.push(event.recorded(stream_id.clone(), expected_version + 1 + i as u64, position));
    }
    Ok(Some(recorded))
}

pub(crate) fn is_violation(error: &sqlx::Error, constraint: &str) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.constraint() == Some(constraint))
}
