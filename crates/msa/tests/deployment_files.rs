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
