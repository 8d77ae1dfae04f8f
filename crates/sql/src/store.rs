use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use msa_kernel::projection::physical_table;
use msa_kernel::relay::Leases;
use msa_kernel::{LogPosition, ReadModelStore, StoreError, TableSpec};
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use sqlx::{Any, Connection, Executor, Row};
use uuid::Uuid;

use crate::store_error;

/// A transaction on the query database.
pub type Tx = sqlx::Transaction<'static, Any>;

/// Which database is behind the `Any` pool, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A query database: read-model tables, checkpoints and the inbox.
#[derive(Clone)]
pub struct SqlReadModelStore {
    pool: AnyPool,
    backend: Backend,
}

impl SqlReadModelStore {
    /// Connects to `sqlite://…` or `postgres://…` and applies the query-side migrations.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, 8).await
    }

    /// Like [`connect`](Self::connect), with up to `max_connections` to PostgreSQL (SQLite always
    /// has one: it has one writer).
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let options = AnyPoolOptions::new();
        let pool = match backend {
            // SQLite has one writer: one connection queues writers instead of busy-waiting.
            Backend::Sqlite => options.max_connections(1).after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;")
                        .await?;
                    Ok(())
                })
            }),
            Backend::Postgres => options.max_connections(max_connections.max(1)),
        }
        .acquire_timeout(Duration::from_secs(30))
        // sqlx counts a transaction open until its COMMIT or ROLLBACK succeeds. When SQLite ends
        // a transaction itself (a COMMIT failing on a full disk rolls back), both fail and the
        // count stays at one: every later BEGIN on that connection would fail for good. Such a
        // connection is closed, and a new one opened, instead of handed out again.
        .before_acquire(|conn, _| Box::pin(async move { Ok(!conn.is_in_transaction()) }))
        .connect(url)
        .await
        .map_err(store_error)?;
        crate::migrator()
            .run(&pool)
            .await
            .map_err(StoreError::backend)?;
        Ok(Self { pool, backend })
    }

    /// The pool, for read-model queries.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }
}

#[async_trait]
impl ReadModelStore for SqlReadModelStore {
    type Tx = Tx;

    async fn begin(&self) -> Result<Tx, StoreError> {
        match self.backend {
            // Take SQLite's write lock at once: a deferred transaction that reads and then
            // writes fails at its first write ("database is locked", not retried by the busy
            // timeout) when another process wrote in between, as a `msa projections rebuild`
            // beside a running server does; an immediate one waits its turn.
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
        .map_err(store_error)
    }

    async fn commit(&self, tx: Tx) -> Result<(), StoreError> {
        tx.commit().await.map_err(store_error)
    }

    async fn rollback(&self, tx: Tx) -> Result<(), StoreError> {
        tx.rollback().await.map_err(store_error)
    }

    async fn live_generation(
        &self,
        tx: &mut Tx,
        projection: &str,
    ) -> Result<Option<u32>, StoreError> {
        let lock = self.projection_row_lock();
        let live: Option<Option<i64>> = sqlx::query_scalar(&format!("{LIVE_GENERATION}{lock}"))
            .bind(projection)
            .fetch_optional(&mut **tx)
            .await
            .map_err(store_error)?;
        Ok(live.flatten().map(|g| g as u32))
    }

    /// One statement instead of two: a runner asks it before every batch it applies.
    async fn live_checkpoint(
        &self,
        tx: &mut Tx,
        projection: &str,
    ) -> Result<Option<(u32, LogPosition)>, StoreError> {
        let lock = self.projection_row_lock();
        let row = sqlx::query(&format!("{LIVE_CHECKPOINT}{lock}"))
            .bind(projection)
            .fetch_optional(&mut **tx)
            .await
            .map_err(store_error)?;
        let Some(row) = row else { return Ok(None) };
        let live: Option<i64> = row.try_get(2).map_err(store_error)?;
        Ok(live.map(|generation| (generation as u32, checkpoint_of(Some(row)))))
    }

    async fn latest_generation(&self, projection: &str) -> Result<u32, StoreError> {
        let latest: Option<i64> =
            sqlx::query_scalar("SELECT latest_generation FROM projections WHERE name = $1")
                .bind(projection)
                .fetch_optional(&self.pool)
                .await
                .map_err(store_error)?;
        Ok(latest.unwrap_or(0) as u32)
    }

    async fn checkpoint(
        &self,
        tx: &mut Tx,
        projection: &str,
        generation: u32,
    ) -> Result<LogPosition, StoreError> {
        let row = sqlx::query(
            "SELECT commit_id, position FROM projection_checkpoints WHERE name = $1 AND generation = $2",
        )
        .bind(projection)
        .bind(generation as i64)
        .fetch_optional(&mut **tx)
        .await
        .map_err(store_error)?;
        Ok(checkpoint_of(row))
    }

    /// Checkpoints only move forward: a stale writer (a relay that lost its lease while paused)
    /// cannot send a reader back.
    async fn save_checkpoint(
        &self,
        tx: &mut Tx,
        projection: &str,
        generation: u32,
        position: LogPosition,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO projection_checkpoints (name, generation, commit_id, position) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name, generation) DO UPDATE SET commit_id = excluded.commit_id, position = excluded.position
             WHERE (excluded.commit_id, excluded.position) > (projection_checkpoints.commit_id, projection_checkpoints.position)",
        )
        .bind(projection)
        .bind(generation as i64)
        .bind(position.commit)
        .bind(position.position)
        .execute(&mut **tx)
        .await
        .map_err(store_error)?;
        Ok(())
    }

    async fn create_generation(
        &self,
        projection: &str,
        tables: &[TableSpec],
        generation: u32,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        for table in tables {
            let physical = physical_table(table.name, generation);
            tx.execute(format!("DROP TABLE IF EXISTS {physical}").as_str())
                .await
                .map_err(store_error)?;
            for statement in table.create {
                tx.execute(statement.replace("{table}", &physical).as_str())
                    .await
                    .map_err(store_error)?;
            }
        }
        sqlx::query("DELETE FROM projection_checkpoints WHERE name = $1 AND generation = $2")
            .bind(projection)
            .bind(generation as i64)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        sqlx::query(
            "INSERT INTO projections (name, live_generation, latest_generation) VALUES ($1, NULL, $2)
             ON CONFLICT (name) DO UPDATE SET latest_generation = excluded.latest_generation",
        )
        .bind(projection)
        .bind(generation as i64)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        self.commit(tx).await
    }

    async fn activate_generation(
        &self,
        projection: &str,
        tables: &[TableSpec],
        generation: u32,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let previous = self.live_generation(&mut tx, projection).await?;
        for table in tables {
            tx.execute(format!("DROP VIEW IF EXISTS {}", table.name).as_str())
                .await
                .map_err(store_error)?;
            tx.execute(
                format!(
                    "CREATE VIEW {} AS SELECT * FROM {}",
                    table.name,
                    physical_table(table.name, generation)
                )
                .as_str(),
            )
            .await
            .map_err(store_error)?;
            if let Some(previous) = previous.filter(|&p| p != generation) {
                tx.execute(
                    format!(
                        "DROP TABLE IF EXISTS {}",
                        physical_table(table.name, previous)
                    )
                    .as_str(),
                )
                .await
                .map_err(store_error)?;
            }
        }
        sqlx::query("UPDATE projections SET live_generation = $1 WHERE name = $2")
            .bind(generation as i64)
            .bind(projection)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        sqlx::query("DELETE FROM projection_checkpoints WHERE name = $1 AND generation <> $2")
            .bind(projection)
            .bind(generation as i64)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        self.commit(tx).await
    }

    async fn record_handled(
        &self,
        tx: &mut Tx,
        consumer: &str,
        event_id: Uuid,
    ) -> Result<bool, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO inbox (consumer, event_id, handled_at) VALUES ($1, $2, $3)
             ON CONFLICT (consumer, event_id) DO NOTHING",
        )
        .bind(consumer)
        .bind(event_id.to_string())
        .bind(Utc::now().to_rfc3339())
        .execute(&mut **tx)
        .await
        .map_err(store_error)?;
        Ok(inserted.rows_affected() == 1)
    }
}

/// A checkpoint row (`commit_id`, `position`) as a position; `START` when there is none.
fn checkpoint_of(row: Option<sqlx::any::AnyRow>) -> LogPosition {
    row.map_or(LogPosition::START, |row| LogPosition {
        commit: row.get(0),
        position: row.get(1),
    })
}

/// A projection's live generation (NULL before its first generation is live).
const LIVE_GENERATION: &str = "SELECT live_generation FROM projections WHERE name = $1";

/// A projection's checkpoint in its live generation (`commit_id`, `position`: (0, 0), the start,
/// while that generation has none, or there is no live generation) and the live generation.
const LIVE_CHECKPOINT: &str =
    "SELECT coalesce(c.commit_id, 0), coalesce(c.position, 0), projections.live_generation
     FROM projections LEFT JOIN projection_checkpoints c
       ON c.name = projections.name AND c.generation = projections.live_generation
     WHERE projections.name = $1";

impl SqlReadModelStore {
    /// What a runner's read of its projection's row adds to lock it. On PostgreSQL the row lock
    /// serializes runners of one projection (two server instances, or a live runner and a
    /// rebuild's swap): each batch reads the checkpoint its predecessor committed. SQLite
    /// serializes writers anyway.
    fn projection_row_lock(&self) -> &'static str {
        match self.backend {
            Backend::Postgres => " FOR UPDATE OF projections",
            Backend::Sqlite => "",
        }
    }

    /// How far the live generation of `projection` has applied the log (`START` before it has
    /// one), read like [`live_generation_to_read`](Self::live_generation_to_read): without the
    /// runners' lock or a transaction, for a reader that waits for a projection to catch up.
    pub async fn applied_to_read(&self, projection: &str) -> Result<LogPosition, StoreError> {
        let row = sqlx::query(LIVE_CHECKPOINT)
            .bind(projection)
            .fetch_optional(self.pool())
            .await
            .map_err(store_error)?;
        Ok(checkpoint_of(row))
    }

    /// The live generation of `projection`, for a query: read without the lock runners take
    /// ([`ReadModelStore::live_generation`]), so a reader neither waits for a running batch nor
    /// holds a PostgreSQL transaction id (the horizon every log reader waits for) meanwhile.
    pub async fn live_generation_to_read(
        &self,
        projection: &str,
    ) -> Result<Option<u32>, StoreError> {
        let live: Option<Option<i64>> = sqlx::query_scalar(LIVE_GENERATION)
            .bind(projection)
            .fetch_optional(self.pool())
            .await
            .map_err(store_error)?;
        Ok(live.flatten().map(|g| g as u32))
    }

    /// Whether the inbox says `consumer` handled `event_id` (a dead letter is settled then).
    pub async fn was_handled(&self, consumer: &str, event_id: Uuid) -> Result<bool, StoreError> {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM inbox WHERE consumer = $1 AND event_id = $2")
                .bind(consumer)
                .bind(event_id.to_string())
                .fetch_optional(self.pool())
                .await
                .map_err(store_error)?;
        Ok(found.is_some())
    }

    /// Which consumers of this database handled which of `event_ids`, and when (`handled_at`,
    /// RFC 3339): the deliveries an operator's trail shows. The inbox is keyed by consumer, so
    /// this scans it, once per 500 ids (for operators only).
    pub async fn handlings(
        &self,
        event_ids: &[Uuid],
    ) -> Result<Vec<(Uuid, String, String)>, StoreError> {
        let mut found = Vec::new();
        for chunk in event_ids.chunks(500) {
            // `$n` placeholders, which both databases read (the `Any` driver passes them on).
            let placeholders: Vec<String> = (1..=chunk.len()).map(|n| format!("${n}")).collect();
            let sql = format!(
                "SELECT event_id, consumer, handled_at FROM inbox WHERE event_id IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query_as::<_, (String, String, String)>(&sql);
            for id in chunk {
                query = query.bind(id.to_string());
            }
            let rows = query.fetch_all(self.pool()).await.map_err(store_error)?;
            for (event_id, consumer, handled_at) in rows {
                let event_id = event_id.parse().map_err(StoreError::backend)?;
                found.push((event_id, consumer, handled_at));
            }
        }
        Ok(found)
    }

    /// How far the relay named `relay` has published the log (the start when it never ran).
    pub async fn published_to(&self, relay: &str) -> Result<LogPosition, StoreError> {
        let row = sqlx::query(
            "SELECT commit_id, position FROM projection_checkpoints WHERE name = $1 AND generation = 0",
        )
        .bind(relay)
        .fetch_optional(self.pool())
        .await
        .map_err(store_error)?;
        Ok(checkpoint_of(row))
    }
}

#[async_trait]
impl Leases for SqlReadModelStore {
    async fn acquire(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, StoreError> {
        let now = Utc::now().timestamp_millis();
        let taken = sqlx::query(
            "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
        )
        .bind(name)
        .bind(holder)
        .bind(now + ttl.as_millis() as i64)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(store_error)?;
        Ok(taken.rows_affected() == 1)
    }

    async fn release(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(&self.pool)
            .await
            .map_err(store_error)?;
        Ok(())
    }
}
