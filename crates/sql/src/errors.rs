//! Which database failures are the database being away (it may answer the same call later) and
//! which are faults, for sqlx's errors on SQLite and PostgreSQL alike.

use msa_kernel::StoreError;

/// `error` as a [`StoreError`]: [`StoreError::Unavailable`] when the database could not be
/// reached, restarts, is full or too busy; [`StoreError::Backend`] otherwise.
pub fn store_error(error: sqlx::Error) -> StoreError {
    if is_unavailable(&error) {
        StoreError::unavailable(error)
    } else {
        StoreError::backend(error)
    }
}

fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(database) => {
            let Some(code) = database.code() else {
                return false;
            };
            // Each database by its own codes: PostgreSQL's 42501 (no privilege) would read as
            // SQLite's BUSY by number.
            if database
                .try_downcast_ref::<sqlx::sqlite::SqliteError>()
                .is_some()
            {
                sqlite_unavailable(&code)
            } else {
                postgres_unavailable(&code)
            }
        }
        _ => false,
    }
}

/// SQLSTATE classes 08 (connection), 53 (insufficient resources: disk full, out of memory, too
/// many connections) and 57P (shutting down, restarting).
fn postgres_unavailable(sqlstate: &str) -> bool {
    sqlstate.starts_with("08") || sqlstate.starts_with("53") || sqlstate.starts_with("57P")
}

fn sqlite_unavailable(code: &str) -> bool {
    code.parse().is_ok_and(sqlite_code_unavailable)
}

/// Whether an SQLite result code says the database is away rather than at fault: the primary
/// codes BUSY (5), LOCKED (6), IOERR (10), FULL (13) and CANTOPEN (14), of an extended code too
/// (its low byte). Also the SQLite writer's rule (rusqlite), so both drivers agree.
pub fn sqlite_code_unavailable(extended_code: i32) -> bool {
    matches!(extended_code & 0xff, 5 | 6 | 10 | 13 | 14)
}

#[cfg(test)]
mod tests {
    use super::{postgres_unavailable, sqlite_unavailable};

    #[test]
    fn codes_of_a_database_away_are_told_from_faults() {
        for away in ["08006", "53100", "57P01"] {
            assert!(postgres_unavailable(away), "{away}");
        }
        for fault in ["23505", "42P01", "42501", "22021"] {
            assert!(!postgres_unavailable(fault), "{fault}");
        }
        for away in ["13", "5", "517", "266"] {
            assert!(sqlite_unavailable(away), "{away}");
        }
        for fault in ["19", "1", "2067"] {
            assert!(!sqlite_unavailable(fault), "{fault}");
        }
    }
}
