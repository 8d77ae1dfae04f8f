//! A Kafka-protocol broker for tests: tansu, one process per test, behind a [`Link`] the test can
//! cut to make the broker unreachable.
//!
//! Why a proxy instead of stopping tansu: tansu 0.6's persistent (SQLite) storage stops serving
//! fetches after a few thousand messages under concurrent produce and fetch (a rejoined consumer
//! gets nothing either), and its memory storage forgets every topic on a restart. So tansu runs on
//! memory storage, and an outage is made the way a network fails: every client connection is
//! dropped and new ones are refused, while the broker keeps what it had.
//!
//! A second tansu 0.6 defect shapes [`Broker::kafka`]: a fetch from an offset inside a record
//! batch returns nothing of that batch (it starts at the next one), so a consumer resuming from a
//! committed offset mid-batch (after a rebalance) would miss the rest of the batch. Apache Kafka
//! returns the whole batch and the client skips to the offset. Clients of the test broker
//! therefore produce one record per batch.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::link::{Link, LinkState};

/// The tansu broker for a test: `MSA_TEST_TANSU` (set by the test command), else `tansu` on
/// the `PATH` or in `~/.cargo/bin`. `None` (the test skips, saying so) when there is none,
/// except under `CI=true`, where that fails the test.
pub fn tansu() -> Option<PathBuf> {
    let binary = tansu_binary();
    if binary.is_none() {
        assert!(
            !crate::in_ci(),
            "CI=true and no tansu broker: scripts/test installs it"
        );
        eprintln!("SKIPPED: no tansu broker installed; run the README's test command");
    }
    binary
}

/// The tansu binary, if installed (`msa chaos` finds its broker the same way).
pub fn tansu_binary() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("MSA_TEST_TANSU") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").into_iter().flat_map(|p| {
        std::env::split_paths(&p)
            .map(|dir| dir.join("tansu"))
            .collect::<Vec<_>>()
    });
    let in_cargo_home =
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin/tansu"));
    on_path.chain(in_cargo_home).find(|path| path.is_file())
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A running broker, reachable at `brokers` through the proxy.
pub struct Broker {
    pub brokers: String,
    child: Child,
    link: Link,
    dir: tempfile::TempDir,
}

impl Broker {
    /// Starts a broker; `None` (outside CI) when tansu is not installed.
    pub async fn start() -> Option<Broker> {
        let binary = tansu()?;
        let (inner, outer) = (free_port(), free_port());
        let dir = tempfile::tempdir().expect("a temporary directory");
        let child = Command::new(binary)
            .arg("broker")
            .args(["--listener-url", &format!("tcp://127.0.0.1:{inner}")])
            // Clients are told to come back through the proxy.
            .args([
                "--advertised-listener-url",
                &format!("tcp://127.0.0.1:{outer}"),
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            // Kept for a failing test to show (see `Drop`).
            .stderr(std::fs::File::create(dir.path().join(LOG)).expect("the broker's log file"))
            .spawn()
            .expect("start tansu");
        let upstream: SocketAddr = format!("127.0.0.1:{inner}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(upstream).await.is_err() {
            assert!(Instant::now() < deadline, "tansu did not start listening");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let listen: SocketAddr = format!("127.0.0.1:{outer}").parse().unwrap();
        let link = Link::at(listen, upstream)
            .await
            .expect("the broker's link listens");
        RUNNING
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Running {
                pid: child.id(),
                log: dir.path().join(LOG),
                thread: std::thread::current().name().map(str::to_owned),
            });
        Some(Broker {
            brokers: listen.to_string(),
            child,
            link,
            dir,
        })
    }

    /// How clients reach this broker: through the proxy, one record per batch (see above).
    pub fn kafka(&self) -> msa_kafka::KafkaConfig {
        msa_kafka::KafkaConfig::new(&self.brokers).with("batch.num.messages", "1")
    }

    /// Makes the broker unreachable: open connections drop, new ones are refused.
    pub fn cut(&self) {
        self.link.set(LinkState::Down);
    }

    /// Makes the broker reachable again.
    pub async fn restore(&self) {
        self.link.set(LinkState::Up);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&self.brokers).await.is_err() {
            assert!(Instant::now() < deadline, "the proxy did not listen again");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The broker's standard error, in its directory.
const LOG: &str = "tansu.log";

/// A broker still running: its pid, its log, and the thread that started it.
struct Running {
    pid: u32,
    log: std::path::PathBuf,
    thread: Option<String>,
}

/// The brokers of this process still running (for [`abandon`]).
static RUNNING: std::sync::Mutex<Vec<Running>> = std::sync::Mutex::new(Vec::new());

/// The last lines of a broker's log.
fn log_tail(log: &std::path::Path) -> String {
    let log = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(40).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

/// Shows and kills the brokers the thread named `thread` started and never dropped, for a test
/// giving up on a scenario stuck there (`crate::within`); other tests' brokers run on.
pub fn abandon(thread: &str) {
    let mut running = RUNNING.lock().unwrap_or_else(|p| p.into_inner());
    running.retain(|broker| {
        if broker.thread.as_deref() != Some(thread) {
            return true;
        }
        eprintln!(
            "tansu (pid {}) abandoned, the end of its log:\n{}",
            broker.pid,
            log_tail(&broker.log)
        );
        let _ = Command::new("kill")
            .args(["-9", &broker.pid.to_string()])
            .status();
        false
    });
}

impl Drop for Broker {
    /// Stops the broker; a failing test also shows whether it had exited, and its last words.
    fn drop(&mut self) {
        let log = self.dir.path().join(LOG);
        RUNNING
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|broker| broker.pid != self.child.id());
        if std::thread::panicking() {
            let exited = self.child.try_wait().ok().flatten();
            eprintln!(
                "tansu at {} (exited: {exited:?}), the end of its log:\n{}",
                self.brokers,
                log_tail(&log)
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
