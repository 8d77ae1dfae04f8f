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

/// Runs `scenario` on a runtime of its own thread and fails the test if it has not finished
/// within `limit`. A broker that dies can leave a Kafka client blocked where no async deadline
/// reaches it (librdkafka closing a consumer, a runtime dropping tasks stuck in such calls): the
/// test then fails at `limit`, showing and stopping the brokers still running, and the stuck
/// thread is left behind instead of holding the whole run. A panic in the scenario is the test's
/// panic.
pub fn within<F>(limit: Duration, scenario: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    use std::sync::mpsc::RecvTimeoutError;
    let (done, outcome) = std::sync::mpsc::channel();
    let name = std::thread::current()
        .name()
        .unwrap_or("scenario")
        .to_owned();
    let thread = std::thread::Builder::new().name(name.clone());
    thread
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a test runtime");
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                runtime.block_on(scenario)
            }));
            // Told before the runtime is dropped: dropping it is what may hang.
            let _ = done.send(result);
        })
        .expect("a thread for the scenario");
    match outcome.recv_timeout(limit) {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(RecvTimeoutError::Disconnected) => panic!("the scenario's thread died"),
        Err(RecvTimeoutError::Timeout) => {
            broker::abandon(&name);
            panic!("the scenario did not finish within {limit:?}")
        }
    }
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
