//! The event store on SQLite: the embedded default, a file per context and no set-up.
//!
//! SQLite allows one writer at a time, so all writes go through a pool of exactly one connection
//! (an async queue in front of the file instead of busy-waiting on its lock) while reads use a pool
//! of their own. WAL mode lets those reads run beside the writer; `synchronous = FULL` makes every
//! commit durable, and appends waiting together share a commit (`group_commit`). Because commits
//! are serialized, the global log has no gaps to guard against.

mod group_commit;
mod store;

pub use store::SqliteEventStore;

/// The event store's schema, embedded in the binary.
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}
