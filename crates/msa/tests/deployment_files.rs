//! The deployment files against the binary: every command, flag and environment variable that
//! `docker-compose.yaml`, `deploy/k8s` and the `Dockerfile` give `msa` exists (no Docker engine
//! is needed to know that a file asks for something the binary does not have).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|document| {
            let mut value = Value::deserialize(document).unwrap();
            value.apply_merge().unwrap();
            value
        })
        .collect()
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_sequence()
        .map(|items| {
            items
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `msa <args> --help`: the arguments name a command, and its help lists these variables.
fn assert_accepted(origin: &str, args: &[String], variables: &[String]) {
    let output = common::msa().args(args).arg("--help").output().unwrap();
    // Help wraps its lines: compare with the whitespace collapsed.
    let help = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        output.status.success(),
        "{origin}: `msa {}` is not a command: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    for variable in variables.iter().filter(|v| v.starts_with("MSA_")) {
        assert!(
            help.contains(&format!("[env: {variable}")),
            "{origin}: `msa {}` has no setting {variable}",
            args.join(" ")
        );
    }
}

#[test]
fn the_compose_file_asks_the_binary_only_for_what_it_has() {
    let compose = &yaml_documents(&root().join("docker-compose.yaml"))[0];
    let services = compose["services"].as_mapping().unwrap();
    let mut checked = 0;
    for (name, service) in services {
        if service["image"].as_str() != Some("msa:local") {
            continue;
        }
        let name = name.as_str().unwrap();
        let command = strings(&service["command"]);
        let environment: Vec<String> = service["environment"]
            .as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        assert_accepted(&format!("compose service {name}"), &command, &environment);
        checked += 1;
    }
    assert_eq!(checked, 5, "the four services and the gateway");
}

#[test]
fn the_kubernetes_manifests_ask_the_binary_only_for_what_it_has() {
    let dir = root().join("deploy/k8s");
    let mut deployments: BTreeMap<String, ()> = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        for document in yaml_documents(&path) {
            if document["kind"].as_str() != Some("Deployment") {
                continue;
            }
            let name = document["metadata"]["name"].as_str().unwrap().to_owned();
            let container = &document["spec"]["template"]["spec"]["containers"][0];
            let args = strings(&container["args"]);
            let environment: Vec<String> = container["env"]
                .as_sequence()
                .unwrap()
                .iter()
                .map(|e| e["name"].as_str().unwrap().to_owned())
                .collect();
            assert_accepted(&format!("{}", path.display()), &args, &environment);
            deployments.insert(name, ());
        }
    }
    let names: Vec<_> = deployments.keys().cloned().collect();
    assert_eq!(names, ["chat", "gateway", "payment", "user", "user-chat"]);
}

#[test]
fn the_dockerfile_runs_msa_with_settings_it_has() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains(r#"ENTRYPOINT ["msa"]"#));
    let command = dockerfile
        .lines()
        .find_map(|line| line.strip_prefix("CMD "))
        .expect("a CMD");
    let command: Vec<String> = serde_json::from_str(command).unwrap();
    let variables: Vec<String> = dockerfile
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("MSA_"))
        .map(str::to_owned)
        .collect();
    assert!(!variables.is_empty());
    assert_accepted("Dockerfile", &command, &variables);
}

/// A setting that holds a secret, by its name.
fn is_secret(name: &str) -> bool {
    let name = name.to_ascii_uppercase();
    ["SECRET", "TOKEN", "PASSWORD", "PRIVATE", "_KEY"]
        .iter()
        .any(|word| name.contains(word))
}

/// A compose value that takes the secret from the environment (`${NAME}`, `${NAME:-}`,
/// `${NAME:?message}`), never a literal nor a non-empty default.
fn from_environment(value: &str) -> bool {
    let Some(inner) = value
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
    else {
        return false;
    };
    // `${NAME:?message}` (or `${NAME?message}`): required, whatever the message says.
    let name_end = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    if inner[name_end..].starts_with(":?") || inner[name_end..].starts_with('?') {
        return true;
    }
    match inner.split_once(":-").or_else(|| inner.split_once('-')) {
        Some((_, default)) => default.is_empty(),
        None => true,
    }
}

fn deployment_texts() -> Vec<(String, String)> {
    let mut files = vec![
        root().join("docker-compose.yaml"),
        root().join("Dockerfile"),
    ];
    for entry in std::fs::read_dir(root().join("deploy/k8s")).unwrap() {
        files.push(entry.unwrap().path());
    }
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            (path.display().to_string(), text)
        })
        .collect()
}

#[test]
fn no_secret_is_committed_in_the_deployment_files() {
    // Compose: every secret comes from the environment of whoever runs it.
    let compose = &yaml_documents(&root().join("docker-compose.yaml"))[0];
    for (name, service) in compose["services"].as_mapping().unwrap() {
        let Some(environment) = service["environment"].as_mapping() else {
            continue;
        };
        for (key, value) in environment {
            let key = key.as_str().unwrap();
            if key.starts_with("MSA_") && is_secret(key) {
                let value = value.as_str().unwrap_or_default();
                assert!(
                    from_environment(value),
                    "compose service {name:?}: {key} is committed as `{value}`; take it from the environment (${{{key}}})"
                );
            }
        }
    }
    // Kubernetes: secrets only from Secret objects, and no Secret generated from a committed
    // literal holds a provider's key or a webhook secret.
    for entry in std::fs::read_dir(root().join("deploy/k8s")).unwrap() {
        let path = entry.unwrap().path();
        for document in yaml_documents(&path) {
            for container in document["spec"]["template"]["spec"]["containers"]
                .as_sequence()
                .into_iter()
                .flatten()
            {
                for variable in container["env"].as_sequence().into_iter().flatten() {
                    let name = variable["name"].as_str().unwrap();
                    if is_secret(name) {
                        assert!(
                            variable["valueFrom"]["secretKeyRef"].is_mapping(),
                            "{}: {name} must come from a Secret (valueFrom.secretKeyRef)",
                            path.display()
                        );
                    }
                }
            }
            for generator in document["secretGenerator"]
                .as_sequence()
                .into_iter()
                .flatten()
            {
                for literal in strings(&generator["literals"]) {
                    let (key, value) = literal.split_once('=').unwrap_or((literal.as_str(), ""));
                    assert!(
                        !is_secret(key) && !key.contains("webhook"),
                        "{}: the secret `{key}` is committed as a literal",
                        path.display()
                    );
                    // A URL with a password in it (user:password@host) is a secret too.
                    let credentials = value
                        .split_once("://")
                        .and_then(|(_, rest)| rest.split_once('@'))
                        .is_some_and(|(user, _)| user.contains(':'));
                    assert!(
                        !credentials,
                        "{}: `{key}` commits a password in a URL",
                        path.display()
                    );
                }
            }
        }
    }
    // Nowhere: the placeholders and test secrets that once were committed.
    for (path, text) in deployment_texts() {
        for literal in ["change-me", "whsec_", "sk_live", "live_sk_", "test_sk_"] {
            let committed = text.lines().any(|line| {
                let code = line.split('#').next().unwrap();
                code.contains(literal)
            });
            assert!(!committed, "{path} commits `{literal}`");
        }
    }
}

#[test]
fn no_deployment_file_takes_payments_through_the_sandbox() {
    let compose = &yaml_documents(&root().join("docker-compose.yaml"))[0];
    let payment = &compose["services"]["payment"]["environment"];
    let provider = payment["MSA_PAYMENT_PROVIDER"].as_str().unwrap_or_default();
    assert_eq!(
        provider, "${MSA_PAYMENT_PROVIDER:-toss}",
        "compose: Toss unless the sandbox is asked for when starting"
    );
    assert!(payment["MSA_TOSS_SECRET_KEY"].is_string());
    let manifest = yaml_documents(&root().join("deploy/k8s/payment.yaml"));
    let container = &manifest[0]["spec"]["template"]["spec"]["containers"][0];
    let env = container["env"].as_sequence().unwrap();
    let value_of = |name: &str| {
        env.iter()
            .find(|v| v["name"].as_str() == Some(name))
            .map(|v| v["value"].as_str().unwrap_or_default().to_owned())
    };
    assert_eq!(value_of("MSA_PAYMENT_PROVIDER").as_deref(), Some("toss"));
    assert!(value_of("MSA_TOSS_SECRET_KEY").is_some());
    for (path, text) in deployment_texts() {
        let code: String = text
            .lines()
            .map(|line| line.split('#').next().unwrap())
            .collect::<Vec<_>>()
            .join("\n");
        for chosen in [
            "PROVIDER: sandbox",
            "PROVIDER=sandbox",
            "value: \"sandbox\"",
            "value: sandbox",
        ] {
            assert!(
                !code.contains(chosen),
                "{path} chooses the sandbox: `{chosen}`"
            );
        }
    }
}

/// Spawns `msa serve …` and waits for it to exit (it must, within 60 s).
fn exit_of(args: &[&str]) -> (bool, String) {
    let mut child = common::msa()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status.success(), stderr);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("`msa {}` did not exit", args.join(" "));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn a_server_reachable_from_other_machines_never_defaults_to_the_sandbox() {
    // The image's own command (`serve` on 0.0.0.0) with no provider named refuses to start,
    // saying what to set; named explicitly, the sandbox starts (and says so loudly).
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let (started, stderr) = exit_of(&["serve", "--listen", "0.0.0.0:0", "--data-dir", dir]);
    assert!(!started);
    assert!(stderr.contains("MSA_PAYMENT_PROVIDER"), "{stderr}");
    let (started, stderr) = exit_of(&[
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--data-dir",
        dir,
        "--payment-provider",
        "toss",
    ]);
    assert!(!started);
    assert!(stderr.contains("MSA_TOSS_SECRET_KEY"), "{stderr}");
    let server = common::spawn_serving(&[
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--data-dir",
        dir,
        "--payment-provider",
        "sandbox",
    ]);
    server.process.wait_for_log(
        "PAYMENT PROVIDER: SANDBOX",
        1,
        std::time::Duration::from_secs(10),
    );
    assert!(!server.process.log().contains("webhook secret:"));
}

/// The user service keeps its signing and personal-data keys encrypted under a master key in
/// every shipped deployment (on PostgreSQL a service without one stores them in clear).
#[test]
fn every_deployment_gives_the_user_service_a_master_key() {
    let compose = &yaml_documents(&root().join("docker-compose.yaml"))[0];
    let key = compose["services"]["user"]["environment"]["MSA_MASTER_KEY"]
        .as_str()
        .unwrap_or_default();
    assert!(
        from_environment(key) && key.contains(":?"),
        "compose's user service must require MSA_MASTER_KEY from the environment, got {key:?}"
    );
    let user = &yaml_documents(&root().join("deploy/k8s/user.yaml"));
    let given = user.iter().any(|document| {
        document["spec"]["template"]["spec"]["containers"]
            .as_sequence()
            .into_iter()
            .flatten()
            .flat_map(|c| c["env"].as_sequence().into_iter().flatten())
            .any(|v| v["name"] == "MSA_MASTER_KEY" && v["valueFrom"]["secretKeyRef"].is_mapping())
    });
    assert!(
        given,
        "deploy/k8s/user.yaml must take MSA_MASTER_KEY from a Secret"
    );
}
