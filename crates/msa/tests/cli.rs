//! The binary as a user runs it: spawned on random ports, against real databases.

mod common;

use common::{msa, serve};
use serde_json::Value;

async fn get(url: &str) -> (u16, String) {
    let response = reqwest::get(url).await.expect("the server answers");
    (response.status().as_u16(), response.text().await.unwrap())
}

#[test]
fn help_lists_the_subcommands() {
    let output = msa().arg("--help").output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    for subcommand in ["serve", "migrate", "bench"] {
        assert!(help.contains(subcommand), "{help}");
    }
}

#[tokio::test]
async fn the_single_server_on_sqlite_serves_the_web_client_and_is_ready() {
    let data = tempfile::tempdir().unwrap();
    let server = serve(&["--data-dir", data.path().to_str().unwrap()]);
    let (status, page) = get(&format!("{}/", server.base)).await;
    assert_eq!(status, 200);
    assert!(page.contains("<title>msa chat</title>"), "{page}");
    assert!(page.contains("<script type=\"module\""), "{page}");
    let (status, ready) = get(&format!("{}/readyz", server.base)).await;
    assert_eq!(status, 200, "{ready}");
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(ready["stores"]["chat"], "ok");
    assert_eq!(ready["bus"], "in-process");
    for context in ["user", "chat", "payment"] {
        assert!(data
            .path()
            .join(format!("{context}.events.sqlite"))
            .exists());
        assert!(data.path().join(format!("{context}.query.sqlite")).exists());
    }
}

#[tokio::test]
async fn the_single_server_runs_on_postgres_and_migrate_is_repeatable() {
    let Some(url) = msa_testkit::postgres_database().await else {
        return;
    };
    for _ in 0..2 {
        let output = msa()
            .args(["migrate", "--database-url", &url])
            .output()
            .unwrap();
        common::succeeded(&output);
        let printed = String::from_utf8(output.stdout).unwrap();
        assert!(
            printed.contains("migrated chat (schema msa_chat"),
            "{printed}"
        );
    }
    let server = serve(&["--database-url", &url]);
    let (status, ready) = get(&format!("{}/readyz", server.base)).await;
    assert_eq!(status, 200, "{ready}");
}

#[test]
fn bad_configuration_stops_the_start_with_one_line_naming_the_setting() {
    let output = msa()
        .args(["serve", "--database-url", "mysql://nope"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.starts_with("error: MSA_DATABASE_URL"), "{stderr}");

    let output = msa()
        .args(["serve", "--listen", "not-an-address"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        !output.status.success() && stderr.contains("--listen"),
        "{stderr}"
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let data = tempfile::tempdir().unwrap();
    let output = msa()
        .args([
            "serve",
            "--listen",
            &address,
            "--data-dir",
            data.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        !output.status.success() && stderr.contains("MSA_LISTEN"),
        "{stderr}"
    );

    // One service of the microservice deployment needs to know where the others are.
    let output = msa()
        .args(["serve", "chat", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        !output.status.success()
            && stderr.starts_with("error: MSA_USER_URL (--user) is required by `serve chat`"),
        "{stderr}"
    );
    let output = msa()
        .args([
            "serve",
            "user-chat",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        !output.status.success() && stderr.starts_with("error: MSA_KAFKA_BROKERS"),
        "{stderr}"
    );
    let output = msa()
        .args([
            "gateway",
            "--user",
            "ftp://x",
            "--chat",
            "http://c",
            "--payment",
            "http://p",
        ])
        .args(["--user-chat", "http://u"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        !output.status.success() && stderr.starts_with("error: MSA_USER_URL (--user)"),
        "{stderr}"
    );

    let output = msa()
        .args(["bench", "store", "--concurrency", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        !output.status.success() && stderr.contains("--concurrency"),
        "{stderr}"
    );
}

fn bench_json(args: &[&str]) -> Value {
    let output = msa()
        .args([
            "bench",
            "store",
            "--duration",
            "1s",
            "--aggregates",
            "20",
            "--concurrency",
            "2",
            "--stream-length",
            "60",
            "--json",
        ])
        .args(args)
        .output()
        .unwrap();
    common::succeeded(&output);
    serde_json::from_slice(&output.stdout).expect("one JSON object")
}

fn assert_report(report: &Value) {
    for key in [
        "commands_per_sec",
        "p50_ms",
        "p99_ms",
        "baseline_per_sec",
        "ratio",
    ] {
        assert!(
            report[key].as_f64().is_some_and(|v| v > 0.0),
            "{key} in {report}"
        );
    }
    assert_eq!(report["errors"], 0, "{report}");
    assert_eq!(report["baseline_errors"], 0, "{report}");
}

#[test]
fn the_store_benchmark_reports_figures_beside_its_baseline_on_sqlite() {
    assert_report(&bench_json(&["--store", "sqlite"]));
}

#[tokio::test]
async fn the_store_benchmark_reports_figures_beside_its_baseline_on_postgres() {
    let Some(url) = msa_testkit::postgres_database().await else {
        return;
    };
    let report = tokio::task::spawn_blocking(move || {
        bench_json(&[
            "--store",
            "postgres",
            "--database-url",
            &url,
            "--state-cache",
            "0",
        ])
    })
    .await
    .unwrap();
    assert_report(&report);
}
