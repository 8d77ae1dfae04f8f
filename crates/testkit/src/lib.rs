//! Test support: real databases for tests, and a tiny domain (a tally) to exercise the kernel.
//!
//! PostgreSQL tests use the database named by `MSA_TEST_DATABASE_URL` (the test command creates a
//! throwaway one per run), each test in a schema of its own. When no PostgreSQL answers, a test
//! skips with a message, except under `CI=true`, where it fails: CI must never pass by skipping.

pub mod broker;
pub mod bus;
pub mod databases;
pub mod tally;

pub use broker::Broker;
pub use databases::{postgres_database, postgres_url, TestStores};

/// Shows the code's logs in a test's output (`RUST_LOG` filters; default warnings).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
