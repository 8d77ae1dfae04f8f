//! Running the binary as a user does: spawned, on random ports, with a clean environment.

#![allow(dead_code)] // each test file uses a part

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub mod api;
pub mod browser;
pub mod live;
pub mod microservices;

/// Runs one behaviour of a test that shares its server among several (`behaviour!(name(api))`),
/// naming it in the log first, so a failure says whose it is.
#[allow(unused_macros)]
macro_rules! behaviour {
    ($name:ident($($arg:expr),*)) => {{
        eprintln!("behaviour: {}", stringify!($name));
        $name($($arg),*).await
    }};
}
#[allow(unused_imports)]
pub(crate) use behaviour;

pub fn msa() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_msa"));
    // The test environment must not leak settings into the process under test.
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("MSA_")) {
        command.env_remove(key);
    }
    command
}

/// Asserts that a finished command succeeded, showing its stderr when it did not.
pub fn succeeded(output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A running `msa` process, killed when dropped. Its stderr is echoed and kept.
pub struct Running {
    pub child: Child,
    log: Arc<Mutex<String>>,
}

impl Running {
    /// Spawns `msa args…`; `on_stdout` sees each line of its standard output.
    pub fn spawn(args: &[&str], on_stdout: impl Fn(&str) + Send + 'static) -> Running {
        let mut child = msa()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn msa");
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                on_stdout(&line);
            }
        });
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                let mut kept = kept.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        Running { child, log }
    }

    /// Everything the process logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log holds `needle` at least `count` times; fails after `within`.
    pub fn wait_for_log(&self, needle: &str, count: usize, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        while self.log().matches(needle).count() < count {
            assert!(
                std::time::Instant::now() < deadline,
                "`{needle}` not logged {count} times within {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Ends the process at once, without a chance to clean up (SIGKILL).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running `msa serve` and the address it printed.
pub struct Server {
    pub process: Running,
    pub base: String,
    /// Where it serves `/metrics`, when it was asked to (`--metrics-listen`).
    pub metrics: Option<String>,
}

/// Spawns `msa args…` and waits for the address it prints ("msa is serving on …").
pub fn spawn_serving(args: &[&str]) -> Server {
    let (tx, rx) = std::sync::mpsc::channel();
    let tx = Mutex::new(tx);
    let metrics = Arc::new(Mutex::new(None));
    let metrics_printed = metrics.clone();
    let process = Running::spawn(args, move |line| {
        if let Some(rest) = line.strip_prefix("msa metrics on ") {
            *metrics_printed.lock().unwrap() = Some(rest.trim().to_owned());
        }
        if let Some(rest) = line.strip_prefix("msa is serving on ") {
            let address = rest.split_whitespace().next().unwrap();
            let _ = tx
                .lock()
                .unwrap()
                .send(address.trim_end_matches('/').to_owned());
        }
    });
    let base = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| {
            panic!(
                "msa {} printed the address to open:\n{}",
                args.join(" "),
                process.log()
            )
        });
    // Printed before the address to open, so known by now.
    let metrics = metrics.lock().unwrap().clone();
    Server {
        process,
        base,
        metrics,
    }
}

/// `msa serve` (the single server, or with a service name one service) on a free port.
pub fn serve(args: &[&str]) -> Server {
    let mut all = vec!["serve", "--listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    spawn_serving(&all)
}

/// A port nobody listens on now (for a process that must come back on the same address).
pub fn free_port() -> u16 {
    free_ports(1)
}

/// The first of `count` consecutive ports nobody listens on now.
///
/// Chosen below the kernel's ephemeral range: a port from that range (what binding port 0
/// gives) can be taken by any outgoing connection of the tests running alongside before the
/// process binds it, and was (a service failing with "Address already in use").
pub fn free_ports(count: u16) -> u16 {
    use std::hash::{BuildHasher, RandomState};
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let below = ephemeral_from.saturating_sub(10_000).max(1024);
    let span = u64::from(ephemeral_from - below - count);
    let random = RandomState::new();
    for attempt in 0u64..1000 {
        let first = below + (random.hash_one(attempt) % span) as u16;
        if (first..first + count)
            .all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok())
        {
            return first;
        }
    }
    panic!("no {count} free ports in {below}..{ephemeral_from}")
}

/// The flags that point a process at the test broker.
pub fn kafka_flags(broker: &msa_testkit::Broker) -> Vec<String> {
    let kafka = broker.kafka();
    let properties: Vec<_> = kafka
        .properties
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    vec![
        "--kafka-brokers".into(),
        kafka.brokers.clone(),
        "--kafka-config".into(),
        properties.join(","),
        "--kafka-partitions".into(),
        "4".into(),
    ]
}
