//! Test support: real databases for tests, and a tiny domain (a tally) to exercise the kernel.
//!
//! PostgreSQL tests use the database named by `MSA_TEST_DATABASE_URL` (the test command creates a
//! throwaway one per run), each test in a schema of its own. When no PostgreSQL answers, a test
//! skips with a message, except under `CI=true`, where it fails: CI must never pass by skipping.

pub mod broker;
pub mod bus;
pub mod databases;
pub mod link;
pub mod tally;

pub use broker::Broker;
pub use databases::{postgres_database, postgres_url, TestStores};

use std::time::{Duration, Instant};

/// Whether this is CI (`CI=true`), where a missing service fails a test instead of skipping it.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// PostgreSQL shows a commit to log readers once every older transaction in the cluster has ended
/// (and parallel tests keep some open), so whatever follows the log is given a moment to see it.
pub const VISIBLE_WITHIN: Duration = Duration::from_secs(10);

/// Probes until `probe` answers `expected`; fails after [`VISIBLE_WITHIN`] with the last answer.
pub async fn eventually<T: PartialEq + std::fmt::Debug, F: std::future::Future<Output = T>>(
    expected: T,
    mut probe: impl FnMut() -> F,
) {
    let deadline = Instant::now() + VISIBLE_WITHIN;
    loop {
        let actual = probe().await;
        if actual == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "still {actual:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Shows the code's logs in a test's output (`RUST_LOG` filters; default warnings).
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}
