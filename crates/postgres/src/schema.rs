//! A schema in a shared PostgreSQL database, chosen by the connection URL: how each context keeps
//! its tables apart in one database, and how the benchmarks get a fresh one per run.

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// Why a schema could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("not a valid postgres:// URL")]
    Url(#[source] sqlx::Error),
    #[error("cannot connect to PostgreSQL at {0}")]
    Connect(String, #[source] sqlx::Error),
    #[error("creating schema {0}")]
    Create(String, #[source] sqlx::Error),
}

/// `url` with the search path set to `schema`, for both sqlx's typed and `Any` connections.
pub fn with_search_path(url: &str, schema: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}options=-c%20search_path%3D{schema}")
}

/// Checks a PostgreSQL URL and makes sure `schema` exists.
pub async fn ensure_schema(url: &str, schema: &str) -> Result<(), SchemaError> {
    let options = PgConnectOptions::from_str(url).map_err(SchemaError::Url)?;
    let mut conn = options
        .connect()
        .await
        .map_err(|error| SchemaError::Connect(redact(url), error))?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .execute(&mut conn)
        .await
        .map_err(|error| SchemaError::Create(schema.to_owned(), error))?;
    conn.close().await.ok();
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_reaches_a_printed_url() {
        let printed = redact("postgres://msa:s3cret@db:5432/msa");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert_eq!(redact("postgres://db/msa"), "postgres://db/msa");
    }

    #[test]
    fn the_search_path_joins_the_urls_options() {
        assert_eq!(
            with_search_path("postgres://db/msa?sslmode=disable", "msa_chat"),
            "postgres://db/msa?sslmode=disable&options=-c%20search_path%3Dmsa_chat"
        );
    }
}
