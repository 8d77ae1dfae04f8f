//! `scripts/bench-microservices`, run as a user runs it: it brings the microservices up on
//! loopback against the test PostgreSQL and a tansu broker, sends through the gateway, reports
//! sends, deliveries and each process's CPU, and takes everything down again.

mod common;

use std::process::{Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

#[tokio::test]
async fn the_benchmark_script_brings_the_microservices_up_sends_and_reports() {
    let Some(tansu) = msa_testkit::broker::tansu() else {
        return;
    };
    // A throwaway database of the run says which server, user and name prefix to use: the
    // script's four databases are named after it, so the test command drops them with the run's.
    let Some(run) = msa_testkit::postgres_database().await else {
        return;
    };
    let url = url::Url::parse(&run).unwrap();
    let prefix = url.path().trim_start_matches('/').to_owned();

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/bench-microservices"
    );
    let mut child = Command::new("bash")
        .arg(script)
        .args(["--msa", env!("CARGO_BIN_EXE_msa")])
        .arg("--tansu")
        .arg(&tansu)
        .args(["--databases", &prefix])
        .args(["--ports", &common::free_ports(10).to_string()])
        .args(["--users", "8", "--rate", "40", "--duration", "8s"])
        .env("PGHOST", url.host_str().unwrap())
        .env("PGPORT", url.port().unwrap_or(5432).to_string())
        .env("PGUSER", url.username())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run scripts/bench-microservices");
    let deadline = Instant::now() + Duration::from_secs(240);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("scripts/bench-microservices did not finish within 240 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    drop_databases(&run, &prefix).await;
    assert!(output.status.success(), "{stdout}\n{stderr}");

    let line = |start: &str| {
        stdout
            .lines()
            .find(|line| line.starts_with(start))
            .unwrap_or_else(|| panic!("no `{start}` line in:\n{stdout}\n{stderr}"))
            .to_owned()
    };
    let sends = line("send (spend, post, acknowledge)");
    let sent: u64 = sends
        .split('(')
        .nth(2)
        .and_then(|counts| counts.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of sends in `{sends}`"));
    assert!(sent > 0, "{sends}");
    assert!(sends.contains(" 0 failed"), "{sends}");
    let deliveries = line("delivery (send -> others' WebSocket)");
    assert!(!deliveries.contains("(0 delivered)"), "{deliveries}");
    let cpu = line("CPU while sending (cores):");
    for process in [
        "postgresql",
        "broker",
        "chat",
        "payment",
        "user-chat",
        "gateway",
        "client",
    ] {
        assert!(
            cpu.contains(&format!(" {process} ")),
            "{process} missing: {cpu}"
        );
    }

    // Its own checks stop it before anything starts.
    let refused = Command::new("bash")
        .arg(script)
        .args(["--duration", "5s"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("at least 8s"));
}

/// The script leaves its databases for inspection; the test drops them (and the run's).
async fn drop_databases(run: &str, prefix: &str) {
    let mut admin_url = url::Url::parse(run).unwrap();
    admin_url.set_path("/postgres");
    let options = PgConnectOptions::from_str(admin_url.as_str()).unwrap();
    let mut admin = options.connect().await.expect("connect to PostgreSQL");
    for name in ["user", "chat", "payment", "user_chat"]
        .iter()
        .map(|service| format!("{prefix}_{service}"))
        .chain([prefix.to_owned()])
    {
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .expect("drop a benchmark database");
    }
    admin.close().await.ok();
}

/// `scripts/bench-tracing`, run as a user runs it (briefly): both configurations run, and the
/// ratio of exported to off is printed.
#[test]
fn the_tracing_benchmark_runs_both_configurations_and_prints_the_ratio() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/bench-tracing");
    let output = Command::new("bash")
        .arg(script)
        .args(["--msa", env!("CARGO_BIN_EXE_msa")])
        .args(["--rounds", "1", "--duration", "2s", "--users", "4"])
        .output()
        .expect("run scripts/bench-tracing");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for config in ["off ", "exported "] {
        let run = stdout
            .lines()
            .find(|line| line.starts_with(config))
            .unwrap_or_else(|| panic!("no `{config}` run in:\n{stdout}\n{stderr}"));
        let sends: f64 = run.split_whitespace().nth(1).unwrap().parse().unwrap();
        assert!(sends > 0.0, "{run}");
    }
    assert!(
        stdout.contains("exported / off (medians): sends/s "),
        "{stdout}"
    );

    let refused = Command::new("bash")
        .arg(script)
        .args(["--rounds", "0"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
}
