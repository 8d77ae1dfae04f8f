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
            database.code().is_some_and(|code| unavailable_code(&code))
        }
        _ => false,
    }
}

/// PostgreSQL's SQLSTATE classes 08 (connection), 53 (insufficient resources: disk full, out of
/// memory, too many connections) and 57P (shutting down, restarting); SQLite's primary result
/// codes BUSY (5), LOCKED (6), IOERR (10), FULL (13) and CANTOPEN (14), extended codes included.
fn unavailable_code(code: &str) -> bool {
    if code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") {
        return true;
    }
    code.parse::<u32>()
        .is_ok_and(|extended| matches!(extended & 0xff, 5 | 6 | 10 | 13 | 14))
}

#[cfg(test)]
mod tests {
    use super::unavailable_code;

    #[test]
    fn codes_of_a_database_away_are_told_from_faults() {
        for away in ["08006", "53100", "57P01", "13", "5", "517", "266"] {
            assert!(unavailable_code(away), "{away}");
        }
        for fault in ["23505", "42P01", "19", "1", "2067"] {
            assert!(!unavailable_code(fault), "{fault}");
        }
    }
}
