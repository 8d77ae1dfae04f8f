//! The query side on SQL: a [`ReadModelStore`](msa_kernel::ReadModelStore) over sqlx's `Any`
//! driver, so a projection is written once and runs on SQLite (embedded) and PostgreSQL alike.
//! Write projection SQL with `$1`-style parameters and portable types (TEXT, BIGINT, DOUBLE).

mod bind;
mod dead_letters;
mod errors;
mod store;
mod trail;

pub use bind::{execute, execute_rows, placeholders, Bind};
pub use errors::{sqlite_code_unavailable, store_error};
pub use store::{Backend, SqlReadModelStore, Tx};
pub use trail::StoreTrail;

/// The query side's schema, embedded in the binary. Its versions (1000 and up) never collide with
/// an event store's, so both can share a PostgreSQL database.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}
