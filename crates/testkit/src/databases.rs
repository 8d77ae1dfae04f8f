use std::sync::Arc;

use msa_kernel::{EventStore, SharedTail, Upcasters};
use msa_postgres::PgEventStore;
use msa_sql::SqlReadModelStore;
use msa_sqlite::SqliteEventStore;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use std::str::FromStr;
use uuid::Uuid;

use crate::in_ci;

/// The default when `MSA_TEST_DATABASE_URL` is not set: the machine's local PostgreSQL.
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A URL to a fresh, empty schema of the test database, or `None` (outside CI) when no PostgreSQL
/// answers. Inside CI an unreachable database fails the test.
pub async fn postgres_url() -> Option<String> {
    let base = std::env::var("MSA_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let options =
        PgConnectOptions::from_str(&base).expect("MSA_TEST_DATABASE_URL is not a valid URL");
    let mut admin = match options.connect().await {
        Ok(conn) => conn,
        Err(error) if !in_ci() => {
            eprintln!("SKIPPED: no PostgreSQL at {base} ({error}); run the README's test command");
            return None;
        }
        Err(error) => panic!("CI=true and PostgreSQL at {base} cannot be reached: {error}"),
    };
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SWEPT.swap(true, std::sync::atomic::Ordering::Relaxed) {
        sweep_stale_schemas(&mut admin).await;
    }
    let schema = format!("t_{}", Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&mut admin)
        .await
        .expect("create a test schema");
    admin.close().await.ok();
    let separator = if base.contains('?') { '&' } else { '?' };
    Some(format!(
        "{base}{separator}options=-c%20search_path%3D{schema}"
    ))
}

/// How old a test schema must be before a later test process drops it.
const STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);

/// Drops the test schemas (`t_<UUIDv7>`) made more than [`STALE_AFTER`] ago. A plain
/// `cargo test` (outside the test command, which drops its whole database) makes them in the
/// server's `postgres` database and cannot drop them when a test ends (no async drop), so each
/// test process sweeps what earlier runs left, once, when it makes its first schema. Their
/// names carry the time they were made; a schema of a test still running is never an hour old.
pub async fn sweep_stale_schemas(admin: &mut sqlx::PgConnection) {
    let names: Vec<String> = match sqlx::query_scalar(
        "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 't\\_%'",
    )
    .fetch_all(&mut *admin)
    .await
    {
        Ok(names) => names,
        Err(error) => {
            eprintln!("could not list old test schemas: {error}");
            return;
        }
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    for name in names {
        let stale = name
            .strip_prefix("t_")
            .and_then(|id| Uuid::try_parse(id).ok())
            .and_then(|id| id.get_timestamp())
            .is_some_and(|made| made.to_unix().0 + STALE_AFTER.as_secs() <= now);
        if stale {
            if let Err(error) = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .execute(&mut *admin)
                .await
            {
                eprintln!("could not drop the old test schema {name}: {error}");
            }
        }
    }
}

/// A URL to a fresh, empty database on the test server (for tests of whole processes, which lay
/// out schemas of their own), or `None` outside CI when no PostgreSQL answers.
pub async fn postgres_database() -> Option<String> {
    let base = std::env::var("MSA_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    let options =
        PgConnectOptions::from_str(&base).expect("MSA_TEST_DATABASE_URL is not a valid URL");
    let mut admin = match options.connect().await {
        Ok(conn) => conn,
        Err(error) if !in_ci() => {
            eprintln!("SKIPPED: no PostgreSQL at {base} ({error}); run the README's test command");
            return None;
        }
        Err(error) => panic!("CI=true and PostgreSQL at {base} cannot be reached: {error}"),
    };
    // Named after the run's database, so the test command drops it with the run's.
    let mut url = url::Url::parse(&base).expect("a valid URL");
    let run = url.path().trim_start_matches('/').to_owned();
    let name = format!("{run}_{}", Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut admin)
        .await
        .expect("create a test database");
    admin.close().await.ok();
    url.set_path(&name);
    Some(url.to_string())
}

/// An event store and a query database of one backend, empty, for one test.
pub struct TestStores {
    /// The event store as the services use it: its log readers share reads of the log's end.
    pub events: Arc<dyn EventStore>,
    pub read_models: Arc<SqlReadModelStore>,
    /// The PostgreSQL store when the backend is PostgreSQL (for transaction-level tests).
    pub postgres: Option<PgEventStore>,
    pub sqlite: Option<SqliteEventStore>,
    _dir: Option<tempfile::TempDir>,
}

impl TestStores {
    /// SQLite files in a temporary directory.
    pub async fn sqlite(upcasters: Upcasters) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let events = SqliteEventStore::open(&dir.path().join("events.sqlite"))
            .await
            .expect("open the SQLite event store")
            .with_upcasters(upcasters);
        let query_url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("query.sqlite").display()
        );
        let read_models = SqlReadModelStore::connect(&query_url)
            .await
            .expect("open the SQLite query database");
        Self {
            events: SharedTail::wrap(events.clone()),
            read_models: Arc::new(read_models),
            postgres: None,
            sqlite: Some(events),
            _dir: Some(dir),
        }
    }

    /// A fresh schema of the test PostgreSQL database; `None` when it is unreachable outside CI.
    pub async fn postgres(upcasters: Upcasters) -> Option<Self> {
        let url = postgres_url().await?;
        let options = PgConnectOptions::from_str(&url).expect("a valid URL");
        let events = PgEventStore::connect(options, 16)
            .await
            .expect("open the PostgreSQL event store")
            .with_upcasters(upcasters);
        let read_models = SqlReadModelStore::connect(&url)
            .await
            .expect("open the PostgreSQL query database");
        Some(Self {
            events: SharedTail::wrap(events.clone()),
            read_models: Arc::new(read_models),
            postgres: Some(events),
            sqlite: None,
            _dir: None,
        })
    }

    /// Removes a stream's events by hand, as an operator repairing bad data would.
    pub async fn delete_stream(&self, stream_id: &msa_kernel::StreamId) {
        const DELETE: &str = "DELETE FROM events WHERE stream_id = $1";
        let deleted = match (&self.postgres, &self.sqlite) {
            (Some(pg), _) => sqlx::query(DELETE)
                .bind(stream_id.as_str())
                .execute(pg.pool())
                .await
                .map(drop),
            (_, Some(sqlite)) => sqlx::query(DELETE)
                .bind(stream_id.as_str())
                .execute(sqlite.writer())
                .await
                .map(drop),
            _ => unreachable!("a test store is SQLite or PostgreSQL"),
        };
        deleted.expect("delete a stream");
    }
}
