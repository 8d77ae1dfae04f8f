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
use msa_postgres::schema::{redact, with_search_path};
use msa_postgres::PgEventStore;
use msa_sql::SqlReadModelStore;
use msa_sqlite::SqliteEventStore;
use sqlx::postgres::PgConnectOptions;

use crate::cli::StorageArgs;

/// One context's stores.
#[derive(Clone)]
pub struct ContextStores {
    pub context: &'static str,
    pub events: Arc<dyn EventStore>,
    pub read_models: Arc<SqlReadModelStore>,
}

/// Opens (and migrates) the stores of every context.
pub async fn open_all(storage: &StorageArgs) -> Result<Vec<ContextStores>> {
    let names = crate::contexts::names();
    let mut opened = Vec::with_capacity(names.len());
    for context in names {
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

/// Makes `dir` (and its parents) if missing, readable by this user only (0700): it holds the
/// databases and the keys.
pub fn private_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("MSA_DATA_DIR: cannot create {}", dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).with_context(
            || format!("MSA_DATA_DIR: cannot make {} private (0700)", dir.display()),
        )?;
    }
    Ok(())
}

/// Makes `file` if missing, readable by this user only (0600). SQLite gives its `-wal` and
/// `-shm` files the database file's mode.
pub fn private_file(file: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        options.mode(0o600);
        options
            .open(file)
            .with_context(|| format!("cannot create {}", file.display()))?;
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} private (0600)", file.display()))?;
    }
    #[cfg(not(unix))]
    options
        .open(file)
        .with_context(|| format!("cannot create {}", file.display()))?;
    Ok(())
}

async fn open_sqlite(data_dir: &Path, context: &'static str) -> Result<ContextStores> {
    private_dir(data_dir)?;
    let events_path = data_dir.join(format!("{context}.events.sqlite"));
    private_file(&events_path)?;
    let events = SqliteEventStore::open(&events_path)
        .await
        .with_context(|| {
            format!(
                "opening the {context} event store at {}",
                events_path.display()
            )
        })?;
    let query_path = data_dir.join(format!("{context}.query.sqlite"));
    private_file(&query_path)?;
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
        None => {
            private_dir(&storage.data_dir)?;
            let path = storage.data_dir.join(format!("{context}.keys.sqlite"));
            private_file(&path)?;
            format!("sqlite://{}?mode=rwc", path.display())
        }
    };
    SqlReadModelStore::connect_with(&url, 2)
        .await
        .with_context(|| format!("opening the {context} key vault"))
}

/// Where a generated master key is kept when the operator gives none.
const GENERATED_MASTER_KEY: &str = "master.key";

/// The operator's master key (MSA_MASTER_KEY, or the file MSA_MASTER_KEY_FILE names), or for a
/// bare local run (SQLite) one generated into the data directory, said loudly: kept beside the
/// data, it protects copies of the databases (backups, a dump), not a machine whose data
/// directory is read. On PostgreSQL without one the keys stay in clear, said loudly too: a key
/// generated into a container's file system would be lost with the container, and every stored
/// key with it.
pub fn master_key(storage: &StorageArgs) -> Result<Arc<msa_user::adapters::master_key::MasterKey>> {
    use msa_user::adapters::master_key::MasterKey;
    let (text, from) = match (&storage.master_key, &storage.master_key_file) {
        (Some(key), _) => (key.clone(), "MSA_MASTER_KEY".to_owned()),
        (None, Some(file)) => (
            std::fs::read_to_string(file)
                .with_context(|| format!("MSA_MASTER_KEY_FILE: cannot read {}", file.display()))?,
            format!("MSA_MASTER_KEY_FILE ({})", file.display()),
        ),
        (None, None) if storage.database_url.is_some() => {
            tracing::warn!(
                "NO MASTER KEY GIVEN: the token signing and personal-data keys are stored in \
                 clear in PostgreSQL. Give one with MSA_MASTER_KEY_FILE (32 random bytes, \
                 base64) to encrypt them; they are encrypted at the next start"
            );
            return Ok(Arc::new(MasterKey::none()));
        }
        (None, None) => {
            private_dir(&storage.data_dir)?;
            let file = storage.data_dir.join(GENERATED_MASTER_KEY);
            if !file.exists() {
                private_file(&file)?;
                std::fs::write(&file, MasterKey::generate())
                    .with_context(|| format!("cannot write {}", file.display()))?;
                tracing::warn!(
                    file = %file.display(),
                    "NO MASTER KEY GIVEN: generated one into the data directory. The stored keys \
                     (token signing, personal data) are encrypted under it; keep it with the data \
                     and give it with MSA_MASTER_KEY_FILE in production, stored apart from the data"
                );
            } else {
                tracing::debug!(
                    file = %file.display(),
                    "no master key given: using the one generated into the data directory \
                     (set MSA_MASTER_KEY_FILE in production)"
                );
            }
            (
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?,
                format!("the generated {}", file.display()),
            )
        }
    };
    MasterKey::from_base64(&text)
        .map(Arc::new)
        .map_err(|error| anyhow::anyhow!("{from}: {error}"))
}

/// The schema a context uses in a shared PostgreSQL database.
fn schema_of(context: &str) -> String {
    format!("msa_{}", context.replace('-', "_"))
}

/// Checks a PostgreSQL URL and makes sure `schema` exists.
async fn ensure_schema(url: &str, schema: &str) -> Result<()> {
    msa_postgres::schema::ensure_schema(url, schema)
        .await
        .context("MSA_DATABASE_URL (--database-url)")
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

/// `msa migrate`: opens every context's stores, which applies the stores' migrations, then
/// applies each context's own (its descriptor's).
pub async fn migrate(storage: &StorageArgs) -> Result<()> {
    for stores in open_all(storage).await? {
        if let Some(context) = crate::contexts::named(stores.context) {
            context
                .migrator()
                .run(stores.read_models.pool())
                .await
                .with_context(|| format!("migrating the {} context", stores.context))?;
        }
        let place = match &storage.database_url {
            Some(url) => format!("schema {} of {}", schema_of(stores.context), redact(url)),
            None => format!("{}", storage.data_dir.display()),
        };
        println!("migrated {} ({place})", stores.context);
    }
    Ok(())
}
