//! Composition of storage: which event store and query database each bounded context gets.
//!
//! The embedded default gives each context two SQLite files in the data directory (events, and the
//! query side), so their writers never wait on each other. With `--database-url`, each context
//! gets a schema of its own in that PostgreSQL database. Migrations run whenever a store opens.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, Result};
use msa_kernel::{EventStore, SharedTail};
use msa_postgres::PgEventStore;
use msa_sql::SqlReadModelStore;
use msa_sqlite::SqliteEventStore;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::cli::StorageArgs;

/// The bounded contexts that keep events and publish them (`<context>.events`).
pub const EVENT_SOURCES: &[&str] = &["user", "chat", "payment"];

/// Every context with stores: the event sources, and user-chat, whose query database holds read
/// models built from the others' events (its event store stays empty: it owns no source of truth).
pub const CONTEXTS: &[&str] = &["user", "chat", "payment", "user-chat"];

/// One context's stores.
pub struct ContextStores {
    pub context: &'static str,
    pub events: Arc<dyn EventStore>,
    pub read_models: Arc<SqlReadModelStore>,
}

/// Opens (and migrates) the stores of every context.
pub async fn open_all(storage: &StorageArgs) -> Result<Vec<ContextStores>> {
    let mut opened = Vec::with_capacity(CONTEXTS.len());
    for context in CONTEXTS {
        opened.push(open(storage, context).await?);
    }
    Ok(opened)
}

/// The stores of `context` among `opened`.
pub fn context<'a>(opened: &'a [ContextStores], context: &str) -> Result<&'a ContextStores> {
    opened
        .iter()
        .find(|stores| stores.context == context)
        .with_context(|| format!("the {context} context's stores are not open"))
}

/// Opens (and migrates) one context's stores.
pub async fn open(storage: &StorageArgs, context: &'static str) -> Result<ContextStores> {
    match &storage.database_url {
        Some(url) => open_postgres(url, context, storage.database_pool_size).await,
        None => open_sqlite(&storage.data_dir, context).await,
    }
}

async fn open_sqlite(data_dir: &Path, context: &'static str) -> Result<ContextStores> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("MSA_DATA_DIR: cannot create {}", data_dir.display()))?;
    let events_path = data_dir.join(format!("{context}.events.sqlite"));
    let events = SqliteEventStore::open(&events_path)
        .await
        .with_context(|| {
            format!(
                "opening the {context} event store at {}",
                events_path.display()
            )
        })?;
    let query_path = data_dir.join(format!("{context}.query.sqlite"));
    let read_models =
        SqlReadModelStore::connect(&format!("sqlite://{}?mode=rwc", query_path.display()))
            .await
            .with_context(|| {
                format!(
                    "opening the {context} query database at {}",
                    query_path.display()
                )
            })?;
    Ok(ContextStores {
        context,
        events: SharedTail::wrap(events),
        read_models: Arc::new(read_models),
    })
}

/// A context's key vault: where the keys of its encrypted personal data live, apart from its
/// query side (`data/<context>.keys.sqlite`, or a small pool on the context's schema).
pub async fn open_key_vault(storage: &StorageArgs, context: &str) -> Result<SqlReadModelStore> {
    let url = match &storage.database_url {
        Some(url) => with_search_path(url, &schema_of(context)),
        None => format!(
            "sqlite://{}?mode=rwc",
            storage
                .data_dir
                .join(format!("{context}.keys.sqlite"))
                .display()
        ),
    };
    SqlReadModelStore::connect_with(&url, 2)
        .await
        .with_context(|| format!("opening the {context} key vault"))
}

/// The schema a context uses in a shared PostgreSQL database.
fn schema_of(context: &str) -> String {
    format!("msa_{}", context.replace('-', "_"))
}

/// `url` with the search path set to `schema`, for both sqlx's typed and `Any` connections.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

/// Checks a PostgreSQL URL and makes sure `schema` exists.
pub async fn ensure_schema(url: &str, schema: &str) -> Result<()> {
    let options = PgConnectOptions::from_str(url)
        .context("MSA_DATABASE_URL (--database-url) is not a valid postgres:// URL")?;
    let mut conn = options.connect().await.with_context(|| {
        format!(
            "MSA_DATABASE_URL: cannot connect to PostgreSQL at {}",
            redact(url)
        )
    })?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .execute(&mut conn)
        .await
        .with_context(|| format!("creating schema {schema}"))?;
    conn.close().await.ok();
    Ok(())
}

async fn open_postgres(url: &str, context: &'static str, pool_size: u32) -> Result<ContextStores> {
    let schema = schema_of(context);
    ensure_schema(url, &schema).await?;
    let url = with_search_path(url, &schema);
    let options = PgConnectOptions::from_str(&url)?;
    // Commands (appends) get the larger share; the query side is mostly reads and batches.
    let query_connections = (pool_size * 2 / 5).max(1);
    let events = PgEventStore::connect(options, pool_size - query_connections)
        .await
        .with_context(|| format!("opening the {context} event store in schema {schema}"))?;
    let read_models = SqlReadModelStore::connect_with(&url, query_connections)
        .await
        .with_context(|| format!("opening the {context} query database in schema {schema}"))?;
    Ok(ContextStores {
        context,
        events: SharedTail::wrap(events),
        read_models: Arc::new(read_models),
    })
}

/// A URL safe to print: the password, if any, replaced.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// `msa migrate`: opens every context's stores, which applies their migrations.
pub async fn migrate(storage: &StorageArgs) -> Result<()> {
    for stores in open_all(storage).await? {
        let place = match &storage.database_url {
            Some(url) => format!("schema {} of {}", schema_of(stores.context), redact(url)),
            None => format!("{}", storage.data_dir.display()),
        };
        println!("migrated {} ({place})", stores.context);
    }
    Ok(())
}
