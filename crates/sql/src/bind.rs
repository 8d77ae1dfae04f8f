//! Statement parameters for projections that build their statements per event.

use crate::Tx;

/// A statement parameter. sqlx's `Any` driver binds typed values, and PostgreSQL will not take
/// text for a BIGINT column. Bind numbers rather than writing them into the SQL: a statement
/// whose text changes with every event is parsed and planned again each time, and fills every
/// connection's statement cache with statements used once.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Text(String),
    Int(i64),
    /// A NULL in a TEXT column.
    Null,
}

impl From<Option<String>> for Bind {
    fn from(text: Option<String>) -> Self {
        text.map_or(Self::Null, Self::Text)
    }
}

/// Runs `sql` with `binds` as `$1`, `$2`, … inside `tx`; returns the rows it changed.
pub async fn execute(tx: &mut Tx, sql: &str, binds: Vec<Bind>) -> Result<u64, sqlx::Error> {
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = match bind {
            Bind::Text(text) => query.bind(text),
            Bind::Int(number) => query.bind(number),
            Bind::Null => query.bind(None::<String>),
        };
    }
    Ok(query.execute(&mut **tx).await?.rows_affected())
}
