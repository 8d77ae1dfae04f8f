//! The deny list's source: `user.revocations`, a projection of the user streams into one row per
//! user whose access tokens were revoked (sessions revoked, account deactivated or erased), and
//! the follower that keeps this process's [`Revocations`] equal to its recent rows. Every user
//! service instance reads the table (a projection batch is applied by one instance only), and
//! serves what it holds at `/.well-known/revocations.json` for the other processes.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use msa_http::{Revocation, Revocations};
use msa_kernel::repository::decode;
use msa_kernel::{
    Aggregate, Projection, ProjectionError, RecordedEvent, StoreError, TableNames, TableSpec,
};
use msa_sql::SqlReadModelStore;
use sqlx::Row;
use tokio::sync::watch;

use crate::domain::{User, UserEvent};

/// How often the table is read again. A revocation reaches this process's checks within about
/// this (plus the projection's pace), and other processes a poll later.
pub const FOLLOW_EVERY: Duration = Duration::from_millis(250);

pub struct RevocationsProjection;

pub const REVOCATION_TABLES: &[TableSpec] = &[TableSpec {
    name: "user_revocations",
    create: &[
        "CREATE TABLE {table} (user_id TEXT PRIMARY KEY, tokens_before_ms BIGINT NOT NULL, account_closed BIGINT NOT NULL)",
        "CREATE INDEX {table}_by_time ON {table} (tokens_before_ms)",
    ],
}];

impl RevocationsProjection {
    pub const NAME: &'static str = "user.revocations";
}

#[async_trait]
impl Projection<msa_sql::Tx> for RevocationsProjection {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [TableSpec] {
        REVOCATION_TABLES
    }

    fn wants(&self, event: &RecordedEvent) -> bool {
        event.stream_id.category() == User::KIND
            && matches!(
                event.event_type.as_str(),
                "user.SessionsRevoked" | "user.UserDeactivated" | "user.UserErased"
            )
    }

    async fn apply(
        &self,
        tx: &mut msa_sql::Tx,
        tables: &TableNames,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let (before, closed) = match decode::<UserEvent>(event)? {
            UserEvent::SessionsRevoked { revoked_at } => (revoked_at, false),
            UserEvent::UserDeactivated { deactivated_at } => (deactivated_at, true),
            UserEvent::UserErased {} => (event.occurred_at, true),
            _ => return Ok(()),
        };
        let table = tables.table("user_revocations");
        // The later cut-off wins and a closed account stays closed, so order and repeats do
        // not matter.
        let sql = format!(
            "INSERT INTO {table} (user_id, tokens_before_ms, account_closed) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE SET
               tokens_before_ms = CASE WHEN excluded.tokens_before_ms > {table}.tokens_before_ms
                                       THEN excluded.tokens_before_ms ELSE {table}.tokens_before_ms END,
               account_closed = CASE WHEN excluded.account_closed > {table}.account_closed
                                     THEN excluded.account_closed ELSE {table}.account_closed END"
        );
        sqlx::query(&sql)
            .bind(event.stream_id.id().to_owned())
            .bind(before.timestamp_millis())
            .bind(i64::from(closed))
            .execute(&mut **tx)
            .await
            .map_err(ProjectionError::apply)?;
        Ok(())
    }
}

/// The revocations made in the last `retain` (older ones void only tokens that have expired).
pub async fn recent(
    db: &SqlReadModelStore,
    retain: Duration,
) -> Result<Vec<Revocation>, StoreError> {
    let since = chrono::Utc::now().timestamp_millis() - retain.as_millis() as i64;
    let rows = sqlx::query(
        "SELECT user_id, tokens_before_ms, account_closed FROM user_revocations WHERE tokens_before_ms > $1",
    )
    .bind(since)
    .fetch_all(db.pool())
    .await
    .map_err(StoreError::backend)?;
    rows.iter()
        .map(|row| {
            Ok(Revocation {
                user_id: row
                    .get::<&str, _>("user_id")
                    .parse()
                    .map_err(StoreError::backend)?,
                tokens_before_ms: row.get("tokens_before_ms"),
                account_closed: row.get::<i64, _>("account_closed") != 0,
            })
        })
        .collect()
}

/// Keeps `revocations` equal to the table's recent rows, reading it every [`FOLLOW_EVERY`]
/// until `stop`. Load once with [`recent`] before serving.
pub async fn follow(
    db: Arc<SqlReadModelStore>,
    revocations: Arc<Revocations>,
    retain: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut failing = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(FOLLOW_EVERY) => {}
            _ = stop.changed() => return,
        }
        match recent(&db, retain).await {
            Ok(list) => {
                revocations.replace(list);
                failing = false;
            }
            Err(error) if !failing => {
                tracing::warn!(%error, "cannot read the deny list; keeping the last one");
                failing = true;
            }
            Err(_) => {}
        }
    }
}
