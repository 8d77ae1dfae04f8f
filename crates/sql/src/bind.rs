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

/// The most rows one statement of [`execute_rows`] carries.
const MOST_ROWS: usize = 64;

/// Runs a statement over many rows with few statements: `statement(n)` is the SQL for `n` rows
/// whose parameters come row after row (see [`placeholders`]). The rows go in runs of 64, 32, 16,
/// 8, 4, 2 and 1, so the database sees at most seven texts of the statement whatever the batch
/// lengths (a text it has not seen is parsed and planned again, see [`Bind`]). Returns the rows
/// it changed.
pub async fn execute_rows(
    tx: &mut Tx,
    statement: impl Fn(usize) -> String,
    rows: Vec<Vec<Bind>>,
) -> Result<u64, sqlx::Error> {
    let mut left = rows.len();
    let mut rows = rows.into_iter();
    let mut changed = 0;
    while left > 0 {
        // The largest power of two that fits.
        let run = 1 << (left.min(MOST_ROWS).ilog2());
        let binds = rows.by_ref().take(run).flatten().collect();
        changed += execute(tx, &statement(run), binds).await?;
        left -= run;
    }
    Ok(changed)
}

/// `($1, $2), ($3, $4)`: the `VALUES` rows of `rows` rows with `width` parameters each.
pub fn placeholders(rows: usize, width: usize) -> String {
    (0..rows)
        .map(|row| {
            let row: Vec<String> = (1..=width)
                .map(|column| format!("${}", row * width + column))
                .collect();
            format!("({})", row.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_row_after_row() {
        assert_eq!(placeholders(1, 1), "($1)");
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }
}
