//! The template context (`crates/template`, notes) added to the single server by its crate and
//! one line (`src/contexts.rs`): served, documented, migrated, projected and listed like the
//! others, without another edit to the composition root. Needs the binary built with
//! `--features template` (`scripts/test` runs it so); without the feature there is nothing here.
#![cfg(feature = "template")]

mod common;

use common::api::{eventually, Api};
use reqwest::Method;
use serde_json::{json, Value};

#[tokio::test]
async fn a_context_added_by_one_line_is_served_documented_and_projected() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap().to_owned();
    let api = Api::start(&["--data-dir", &dir]);
    let ana = api.person("Ana").await;
    let bo = api.person("Bo").await;

    // Given a note Ana wrote (named by an Idempotency-Key, so her retry writes nothing more and
    // the same key with another text is refused),
    let write = |key: &str, text: &str| {
        api.answer(
            api.client
                .post(format!("{}/v1/notes", api.server.base))
                .bearer_auth(&ana.token)
                .header("Idempotency-Key", key)
                .json(&json!({ "text": text })),
        )
    };
    let (status, note) = write("note-1", "buy oat milk").await;
    assert_eq!(status, 201, "{note}");
    let (status, again) = write("note-1", "buy oat milk").await;
    assert_eq!((status, &again), (200, &note));
    let (status, _) = write("note-1", "buy rice").await;
    assert_eq!(status, 409);
    let (status, problem) = write("", "buy rice").await;
    assert_eq!(status, 400, "{problem}");
    let id = note["id"].as_str().unwrap().to_owned();
    // when the projection has applied it, her list shows it and Bo's does not.
    eventually(|| async {
        let (_, page) = api.get(&ana, "/v1/notes").await;
        page["items"]
            .as_array()
            .is_some_and(|items| items.len() == 1)
    })
    .await;
    let (_, theirs) = api.get(&bo, "/v1/notes").await;
    assert_eq!(theirs["items"], json!([]));

    // Only its author changes it: Bo's edit and delete find no such note.
    let path = format!("/v1/notes/{id}");
    let edit = json!({"text": "buy soy milk"});
    let (status, _) = api
        .call(Method::PATCH, &path, &bo.token, Some(edit.clone()))
        .await;
    assert_eq!(status, 404);
    let (status, _) = api.call(Method::DELETE, &path, &bo.token, None).await;
    assert_eq!(status, 404);
    let (status, _) = api.call(Method::PATCH, &path, &ana.token, Some(edit)).await;
    assert_eq!(status, 204);
    eventually(|| async {
        let (_, page) = api.get(&ana, "/v1/notes").await;
        page["items"][0]["text"] == "buy soy milk"
    })
    .await;

    // Bad input is a 422 naming the field; no token is a 401; a bad id names no note.
    let (status, problem) = api.post(&ana, "/v1/notes", json!({"text": " "})).await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "text");
    let (status, _) = api.call(Method::GET, "/v1/notes", "", None).await;
    assert_eq!(status, 401);
    let (status, _) = api
        .call(Method::DELETE, "/v1/notes/..%2f..%2fx", &ana.token, None)
        .await;
    assert_eq!(status, 404);

    let (status, _) = api.call(Method::DELETE, &path, &ana.token, None).await;
    assert_eq!(status, 204);
    // A retried delete (its answer lost) is the same deletion.
    let (status, _) = api.call(Method::DELETE, &path, &ana.token, None).await;
    assert_eq!(status, 204);
    eventually(|| async {
        let (_, page) = api.get(&ana, "/v1/notes").await;
        page["items"] == json!([])
    })
    .await;

    // Documented with the others: its API, its topic and its events; ready with its stores.
    let (_, openapi) = api.call(Method::GET, "/openapi.json", "", None).await;
    assert!(openapi["paths"]["/v1/notes"].is_object());
    assert!(openapi["paths"]["/v1/rooms"].is_object());
    let (_, asyncapi) = api.call(Method::GET, "/asyncapi.json", "", None).await;
    let messages = asyncapi["components"]["messages"].as_object().unwrap();
    assert!(messages.contains_key("notes.NoteWritten"), "{asyncapi}");
    let (_, ready) = api.call(Method::GET, "/readyz", "", None).await;
    assert_eq!(ready["stores"]["notes"], Value::from("ok"), "{ready}");
    drop(api);

    // Its projection is listed and rebuilt like every other.
    let dir_for_list = dir.clone();
    let listed = tokio::task::spawn_blocking(move || {
        common::msa()
            .args(["projections", "list", "--data-dir", &dir_for_list])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    common::succeeded(&listed);
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(listed.contains("notes.list"), "{listed}");
    let rebuilt = tokio::task::spawn_blocking(move || {
        common::msa()
            .args(["projections", "rebuild", "notes.list", "--data-dir", &dir])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    common::succeeded(&rebuilt);
    let rebuilt = String::from_utf8_lossy(&rebuilt.stdout).into_owned();
    assert!(
        rebuilt.contains("rebuilt notes.list from 3 events"),
        "{rebuilt}"
    );
}
