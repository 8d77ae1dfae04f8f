//! The event store on PostgreSQL, for the microservice deployment (and the single server when
//! pointed at a database).
//!
//! The global log is gap-safe: see `migrations/0001_event_store.sql` for the technique and
//! `crates/testkit/tests/pg_gap_safety.rs` for its proof under held transactions and random rollbacks.

mod append;
mod group_commit;
pub mod schema;
mod store;

pub use store::PgEventStore;

/// The event store's schema, embedded in the binary.
/// Other migration sets (the query side) may share the database, so unknown versions are ignored.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}
