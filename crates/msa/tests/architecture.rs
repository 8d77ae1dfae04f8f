//! The architecture's rules, checked over `cargo metadata` and the sources rather than hoped for:
//! dependencies point one way, core services reference no other service, an application service
//! reaches core services only through their public contract modules, and there are no cycles.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

const CORE_SERVICES: &[&str] = &["msa-user", "msa-chat", "msa-payment", TEMPLATE];
/// The template context: a self-contained core context the composition root serves by its
/// descriptor (`msa_context`), behind the `template` feature.
const TEMPLATE: &str = "msa-template";
const APPLICATION_SERVICES: &[&str] = &["msa-user-chat"];
/// Building blocks every context may use; they know no context.
const FOUNDATIONS: &[&str] = &[
    "msa-kernel",
    // A context's descriptor: what the composition root iterates.
    "msa-context",
    "msa-sqlite",
    "msa-postgres",
    "msa-sql",
    "msa-kafka",
    "msa-http",
    // The edge: it talks to the services over HTTP only.
    "msa-gateway",
    // The web client's files: it talks to the services over HTTP from the browser only.
    "msa-web",
];

/// Workspace crate -> the workspace crates it depends on (normal, dev and build dependencies).
fn workspace_graph() -> (
    BTreeMap<String, BTreeSet<String>>,
    BTreeMap<String, PathBuf>,
) {
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let packages = metadata["packages"].as_array().unwrap();
    let names: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    let mut graph = BTreeMap::new();
    let mut dirs = BTreeMap::new();
    for package in packages {
        let name = package["name"].as_str().unwrap().to_owned();
        let deps = package["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .filter(|d| names.contains(d))
            .collect();
        let manifest = PathBuf::from(package["manifest_path"].as_str().unwrap());
        dirs.insert(name.clone(), manifest.parent().unwrap().to_owned());
        graph.insert(name, deps);
    }
    (graph, dirs)
}

fn is_service(name: &str) -> bool {
    CORE_SERVICES.contains(&name) || APPLICATION_SERVICES.contains(&name) || name == "msa"
}

#[test]
fn core_services_depend_on_no_other_service() {
    let (graph, _) = workspace_graph();
    for core in CORE_SERVICES {
        let deps = &graph[*core];
        let services: Vec<_> = deps.iter().filter(|d| is_service(d)).collect();
        assert!(services.is_empty(), "{core} depends on {services:?}");
    }
}

#[test]
fn foundations_and_the_gateway_know_no_context() {
    let (graph, _) = workspace_graph();
    for foundation in FOUNDATIONS {
        let deps = &graph[*foundation];
        let services: Vec<_> = deps.iter().filter(|d| is_service(d)).collect();
        assert!(services.is_empty(), "{foundation} depends on {services:?}");
    }
}

#[test]
fn the_benchmarks_are_a_tool_only_the_binary_carries() {
    let (graph, _) = workspace_graph();
    let users: Vec<_> = graph
        .iter()
        .filter(|(name, deps)| deps.contains("msa-bench") && *name != "msa")
        .map(|(name, _)| name)
        .collect();
    assert!(users.is_empty(), "{users:?} depend on msa-bench");
    let services: Vec<_> = graph["msa-bench"]
        .iter()
        .filter(|d| is_service(d) && *d != "msa-chat")
        .collect();
    assert!(
        services.is_empty(),
        "msa-bench measures chat only: {services:?}"
    );
}

#[test]
fn the_workspace_has_no_dependency_cycle() {
    let (graph, _) = workspace_graph();
    // Kahn's algorithm: whatever cannot be ordered sits on a cycle.
    let mut remaining = graph.clone();
    loop {
        let ready: Vec<String> = remaining
            .iter()
            .filter(|(_, deps)| deps.iter().all(|d| !remaining.contains_key(d)))
            .map(|(name, _)| name.clone())
            .collect();
        if ready.is_empty() {
            break;
        }
        for name in ready {
            remaining.remove(&name);
        }
    }
    assert!(remaining.is_empty(), "a cycle among {:?}", remaining.keys());
}

/// The Rust files under `dir`, none when it does not exist (a crate without `tests/`).
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// An application service names a core service's items only under its `contract` module (its
/// events, DTOs and ports), never its aggregates, stores or adapters.
#[test]
fn application_services_use_core_services_only_through_their_contracts() {
    let (graph, dirs) = workspace_graph();
    for app in APPLICATION_SERVICES {
        let Some(dir) = dirs.get(*app) else {
            continue; // not written yet
        };
        for core in graph[*app]
            .iter()
            .filter(|d| CORE_SERVICES.contains(&d.as_str()))
        {
            let path = core.replace('-', "_");
            for file in rust_files(&dir.join("src"))
                .into_iter()
                .chain(rust_files(&dir.join("tests")))
            {
                let source = std::fs::read_to_string(&file).unwrap();
                for (line_number, line) in source.lines().enumerate() {
                    let mut rest = line;
                    while let Some(at) = rest.find(&format!("{path}::")) {
                        let after = &rest[at + path.len() + 2..];
                        assert!(
                            after.starts_with("contract"),
                            "{}:{}: `{}` reaches past {core}'s contract",
                            file.display(),
                            line_number + 1,
                            line.trim()
                        );
                        rest = after;
                    }
                }
            }
        }
    }
}

/// What the inner layers of a context may not name: its adapters, SQL, HTTP, the concrete stores
/// and the bus. Each is looked for as a path (`sqlx::…`, `use axum…`).
const OUTER_LAYERS: &[&str] = &[
    "crate::adapters",
    "super::adapters",
    "msa_sql",
    "sqlx",
    "msa_http",
    "axum",
    "reqwest",
    "msa_sqlite",
    "msa_postgres",
    "msa_kafka",
];

/// The outer layer a line of code names, if any (comments are not code).
fn outer_layer_named(line: &str) -> Option<&'static str> {
    let code = line.split("//").next().unwrap_or("");
    OUTER_LAYERS.iter().copied().find(|layer| {
        code.match_indices(layer).any(|(at, _)| {
            let before = code[..at].chars().next_back();
            let after = &code[at + layer.len()..];
            !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                && (after.starts_with("::") || after.starts_with(';'))
        })
    })
}

#[test]
fn the_scanner_finds_outer_layers_in_code_only() {
    assert_eq!(
        outer_layer_named("use msa_sql::SqlReadModelStore;"),
        Some("msa_sql")
    );
    assert_eq!(
        outer_layer_named("    let rows = sqlx::query(\"…\")"),
        Some("sqlx")
    );
    assert_eq!(
        outer_layer_named("use crate::adapters::history;"),
        Some("crate::adapters")
    );
    assert_eq!(outer_layer_named("use msa_http;"), Some("msa_http"));
    assert_eq!(
        outer_layer_named("//! answered by `msa_http::Problem`"),
        None
    );
    assert_eq!(outer_layer_named("use my_sqlx::Thing;"), None);
    assert_eq!(outer_layer_named("use msa_kernel::FieldError;"), None);
}

/// Inside every context the hexagon holds: `domain/` and `application/` name no adapter, no SQL
/// and no HTTP. Use cases depend on ports they define (`application/ports.rs`) and on the
/// kernel's; the adapters implement those ports and map the errors to HTTP.
#[test]
fn domain_and_application_code_name_no_adapter_sql_or_http() {
    let (_, dirs) = workspace_graph();
    let mut found = Vec::new();
    for context in CORE_SERVICES.iter().chain(APPLICATION_SERVICES) {
        let dir = &dirs[*context];
        for layer in ["domain", "application"] {
            let files = rust_files(&dir.join("src").join(layer));
            assert!(
                layer == "domain" || !files.is_empty(),
                "{context} has no src/{layer}/"
            );
            for file in files {
                let source = std::fs::read_to_string(&file).unwrap();
                for (line_number, line) in source.lines().enumerate() {
                    let Some(outer) = outer_layer_named(line) else {
                        continue;
                    };
                    found.push(format!(
                        "{}:{}: `{}` names {outer}",
                        file.display(),
                        line_number + 1,
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "inner layers name outer ones:\n{}",
        found.join("\n")
    );
}

/// A self-contained context is added to the binary by its crate and one line: the composition
/// root names it once, in `src/contexts.rs`, and iterates its descriptor everywhere else.
#[test]
fn the_template_context_is_wired_by_one_line() {
    let (graph, dirs) = workspace_graph();
    assert!(
        graph["msa"].contains(TEMPLATE),
        "msa does not depend on {TEMPLATE}"
    );
    let path = TEMPLATE.replace('-', "_");
    let mut named = Vec::new();
    for file in rust_files(&dirs["msa"].join("src")) {
        let source = std::fs::read_to_string(&file).unwrap();
        for (line_number, line) in source.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if code.contains(&format!("{path}::")) {
                named.push(format!("{}:{}", file.display(), line_number + 1));
            }
        }
    }
    assert_eq!(
        named.len(),
        1,
        "the composition root names {TEMPLATE} at {named:?}"
    );
    assert!(named[0].contains("contexts.rs"), "{named:?}");
}
