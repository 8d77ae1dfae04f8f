//! Message search (`GET /v1/search/messages`) on the spawned binary, on SQLite and PostgreSQL:
//! words found inside longer ones (Korean particles, prefixes), user text never query syntax,
//! filters, paging, only the rooms one is a member of now, and an index from before n-grams
//! rebuilt at start.

mod common;

use common::api::{eventually, Api, Person};
use serde_json::{json, Value};

const ALLOWANCE: &str = "--free-messages-per-day";
const MANY: &str = "1000000";

/// `/v1/search/messages` with these parameters, encoded.
fn search_path(params: &[(&str, &str)]) -> String {
    let url = reqwest::Url::parse_with_params("http://search.invalid/v1/search/messages", params)
        .unwrap();
    format!("{}?{}", url.path(), url.query().unwrap_or_default())
}

async fn find(api: &Api, who: &Person, params: &[(&str, &str)]) -> Value {
    let (status, page) = api.get(who, &search_path(params)).await;
    assert_eq!(status, 200, "{params:?}: {page}");
    page
}

/// The bodies found for `q` (first page).
async fn bodies(api: &Api, who: &Person, q: &str) -> Vec<String> {
    bodies_of(&find(api, who, &[("q", q)]).await)
}

fn bodies_of(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["body"].as_str().unwrap().to_owned())
        .collect()
}

async fn group(api: &Api, owner: &Person, name: &str, members: &[&Person]) -> String {
    let ids: Vec<_> = members.iter().map(|m| m.id.clone()).collect();
    let (status, room) = api
        .post(
            owner,
            "/v1/rooms",
            json!({"kind": "group", "name": name, "members": ids}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let room = room["id"].as_str().unwrap().to_owned();
    for member in members {
        let joins = format!("/v1/rooms/{room}/members");
        assert_eq!(api.post(member, &joins, json!(null)).await.0, 204);
    }
    room
}

async fn send(api: &Api, who: &Person, room: &str, body: &str) -> Value {
    let txn = uuid::Uuid::now_v7().to_string();
    let (status, message) = api.send(who, room, &txn, body).await;
    assert_eq!(status, 201, "{message}");
    message
}

const LITERAL: &str = "literal \"quoted\" star* NEAR(x) 100% a_b back\\slash";

async fn search_behaves_as_a_person_expects(api: &Api) {
    let (ada, bob, cy, dee) = (
        api.person("Ada").await,
        api.person("Bob").await,
        api.person("Cy").await,
        api.person("Dee").await,
    );
    let engine = group(api, &ada, "Engine", &[&bob, &dee]).await;
    let other = group(api, &ada, "Other", &[&bob]).await;
    send(api, &ada, &engine, "엔진룸에서 만나요").await;
    send(api, &bob, &engine, "The deployment finished at five").await;
    send(api, &ada, &engine, LITERAL).await;
    send(
        api,
        &bob,
        &engine,
        "axb 1000 backslash quoted cats AND dogs",
    )
    .await;
    let typo = send(api, &bob, &engine, "first draft with a typo").await;
    let secret = send(api, &ada, &engine, "the secret plan").await;
    send(api, &bob, &other, "deployment of the other room").await;
    let edit = format!(
        "/v1/rooms/{engine}/messages/{}",
        typo["id"].as_str().unwrap()
    );
    let (status, edited) = api
        .call(
            reqwest::Method::PATCH,
            &edit,
            &bob.token,
            Some(json!({"body": "final version"})),
        )
        .await;
    assert!(status == 200 || status == 204, "{status}: {edited}");
    let redact = format!(
        "/v1/rooms/{engine}/messages/{}",
        secret["id"].as_str().unwrap()
    );
    assert_eq!(
        api.call(reqwest::Method::DELETE, &redact, &ada.token, None)
            .await
            .0,
        204
    );
    eventually(|| async { bodies(api, &bob, "final").await.len() == 1 }).await;
    eventually(|| async { bodies(api, &bob, "secret").await.is_empty() }).await;

    // A word inside a longer one: Korean particles, prefixes, any case.
    assert_eq!(bodies(api, &ada, "엔진룸").await, ["엔진룸에서 만나요"]);
    assert_eq!(
        bodies(api, &ada, "엔진").await,
        ["엔진룸에서 만나요"],
        "two syllables"
    );
    assert_eq!(
        bodies(api, &ada, "엔진룸 만나").await,
        ["엔진룸에서 만나요"]
    );
    assert_eq!(
        bodies(api, &ada, "DEPLO").await,
        [
            "deployment of the other room",
            "The deployment finished at five"
        ],
        "newest first"
    );
    assert!(
        bodies(api, &ada, "엔진룸 deploy").await.is_empty(),
        "every word"
    );
    // An edited message by its new body only; a deleted one never.
    assert_eq!(bodies(api, &bob, "version").await, ["final version"]);
    assert!(bodies(api, &bob, "typo").await.is_empty());
    assert!(bodies(api, &bob, "secret").await.is_empty());

    // User text is never query syntax.
    for literal in [
        "\"quoted\"",
        "star*",
        "*",
        "NEAR(x)",
        "NEAR(",
        "100%",
        "%",
        "a_b",
        "_b",
        "back\\slash",
        "\\",
    ] {
        assert_eq!(bodies(api, &ada, literal).await, [LITERAL], "{literal}");
    }
    assert!(bodies(api, &ada, "cats OR nothing").await.is_empty());
    assert!(bodies(api, &ada, "NEAR(cats dogs)").await.is_empty());

    // Filters: room, sender, before and after (exclusive).
    let deploy = find(api, &ada, &[("q", "deploy"), ("room", &engine)]).await;
    assert_eq!(bodies_of(&deploy), ["The deployment finished at five"]);
    let by_bob = find(api, &ada, &[("q", "deploy"), ("sender", &bob.id)]).await;
    assert_eq!(bodies_of(&by_bob).len(), 2);
    let by_ada = find(api, &ada, &[("q", "deploy"), ("sender", &ada.id)]).await;
    assert!(bodies_of(&by_ada).is_empty());
    let all = find(api, &ada, &[("q", "deploy")]).await;
    let newer_at = all["items"][0]["created_at"].as_str().unwrap().to_owned();
    let older_at = all["items"][1]["created_at"].as_str().unwrap().to_owned();
    let before = find(api, &ada, &[("q", "deploy"), ("before", &newer_at)]).await;
    assert_eq!(bodies_of(&before), ["The deployment finished at five"]);
    let after = find(api, &ada, &[("q", "deploy"), ("after", &older_at)]).await;
    assert_eq!(bodies_of(&after), ["deployment of the other room"]);
    let between = find(
        api,
        &ada,
        &[("q", "deploy"), ("after", &older_at), ("before", &newer_at)],
    )
    .await;
    assert!(bodies_of(&between).is_empty());
    let elsewhere = group(api, &cy, "Elsewhere", &[]).await;
    let not_mine = find(api, &ada, &[("q", "deploy"), ("room", &elsewhere)]).await;
    assert!(bodies_of(&not_mine).is_empty(), "a room I am not in");

    // Paging with the list cursor, newest first, every hit once.
    for n in 1..=5 {
        send(api, &ada, &engine, &format!("page item {n}")).await;
    }
    eventually(|| async { bodies(api, &ada, "item 5").await.len() == 1 }).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("q", "page item"), ("limit", "2")];
        if let Some(cursor) = cursor.as_deref() {
            params.push(("cursor", cursor));
        }
        let page = find(api, &ada, &params).await;
        seen.extend(bodies_of(&page));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(seen.len() <= 5, "{seen:?}");
    }
    let expected: Vec<String> = (1..=5).rev().map(|n| format!("page item {n}")).collect();
    assert_eq!(seen, expected);
    let exact = find(api, &ada, &[("q", "page item"), ("limit", "5")]).await;
    assert_eq!(exact["next_cursor"], Value::Null, "no empty last page");

    // A stranger finds nothing; a former member no longer finds the room's messages.
    assert!(bodies(api, &cy, "deploy").await.is_empty());
    assert!(bodies(api, &cy, "엔진").await.is_empty());
    assert_eq!(bodies(api, &dee, "엔진룸").await, ["엔진룸에서 만나요"]);
    let leave = format!("/v1/rooms/{engine}/members/{}", dee.id);
    assert_eq!(
        api.call(reqwest::Method::DELETE, &leave, &dee.token, None)
            .await
            .0,
        204
    );
    eventually(|| async { bodies(api, &dee, "엔진룸").await.is_empty() }).await;

    // Bad input names its field.
    let long = "가".repeat(201);
    for (params, field) in [
        (vec![], "q"),
        (vec![("q", "  ")], "q"),
        (vec![("q", long.as_str())], "q"),
        (vec![("q", "a"), ("room", "nope")], "room"),
        (vec![("q", "a"), ("sender", "nope")], "sender"),
        (vec![("q", "a"), ("before", "yesterday")], "before"),
        (vec![("q", "a"), ("after", "2026-13-01T00:00:00Z")], "after"),
        (
            vec![
                ("q", "a"),
                ("after", "2026-11-23T22:58:00Z"),
                ("before", "2026-11-23T22:58:00Z"),
            ],
            "after",
        ),
        (vec![("q", "a"), ("cursor", "abc")], "cursor"),
        (vec![("q", "a"), ("limit", "0")], "limit"),
    ] {
        let (status, problem) = api.get(&ada, &search_path(&params)).await;
        assert_eq!(
            (status, problem["errors"][0]["field"].as_str()),
            (422, Some(field)),
            "{params:?}: {problem}"
        );
    }
}

#[tokio::test]
async fn search_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(&["--data-dir", data.path().to_str().unwrap(), ALLOWANCE, MANY]);
    search_behaves_as_a_person_expects(&api).await;
}

#[tokio::test]
async fn search_on_postgres() {
    let Some(url) = msa_testkit::postgres_database().await else {
        return;
    };
    let api = Api::start(&["--database-url", &url, ALLOWANCE, MANY]);
    search_behaves_as_a_person_expects(&api).await;
}

/// A data directory from before n-grams (a word index, migration 3002 not applied) is searched
/// by n-grams once the new version has started: its rebuild runs at start (503 meanwhile).
#[tokio::test]
async fn an_index_from_before_ngrams_is_rebuilt_at_start() {
    use sqlx::Connection;

    let data = tempfile::tempdir().unwrap();
    let args = ["--data-dir", data.path().to_str().unwrap(), ALLOWANCE, MANY];
    {
        let api = Api::start(&args);
        let ada = api.person("Ada").await;
        let room = group(&api, &ada, "Engine", &[]).await;
        send(&api, &ada, &room, "엔진룸에서 만나요").await;
        eventually(|| async { bodies(&api, &ada, "엔진").await.len() == 1 }).await;
    }
    // What the previous version left: the live generation of chat.search one FTS5 table of
    // words (the default tokenizer), and migration 3002 not applied.
    let query = data.path().join("chat.query.sqlite");
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", query.display()))
        .await
        .unwrap();
    let generation: i64 =
        sqlx::query_scalar("SELECT live_generation FROM projections WHERE name = 'chat.search'")
            .fetch_one(&mut db)
            .await
            .unwrap();
    for statement in [
        "DROP VIEW chat_search".to_owned(),
        "DROP VIEW chat_search_trigrams".to_owned(),
        format!("DROP TABLE chat_search_g{generation}"),
        format!("DROP TABLE chat_search_trigrams_g{generation}"),
        format!("CREATE VIRTUAL TABLE chat_search_g{generation} USING fts5(body, message_id UNINDEXED, room_id UNINDEXED, seq UNINDEXED, sender_id UNINDEXED, created_at UNINDEXED)"),
        format!("INSERT INTO chat_search_g{generation} SELECT body, message_id, room_id, seq, sender_id, created_at FROM chat_messages"),
        format!("CREATE VIEW chat_search AS SELECT * FROM chat_search_g{generation}"),
        "DROP TABLE chat_search_rebuilds".to_owned(),
        "DELETE FROM _sqlx_migrations WHERE version = 3002".to_owned(),
    ] {
        sqlx::query(&statement).execute(&mut db).await.unwrap();
    }
    db.close().await.unwrap();

    let api = Api::start(&args);
    let body = json!({"email": "ada@example.com", "password": "correct horse battery"});
    let (_, tokens) = api
        .call(reqwest::Method::POST, "/v1/auth/token", "", Some(body))
        .await;
    let ada = Person {
        id: String::new(),
        nickname: "Ada".into(),
        token: tokens["access_token"].as_str().unwrap().to_owned(),
    };
    eventually(|| async {
        let (status, page) = api.get(&ada, &search_path(&[("q", "엔진룸")])).await;
        assert!(status == 200 || status == 503, "{status}: {page}");
        status == 200 && bodies_of(&page) == ["엔진룸에서 만나요"]
    })
    .await;
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}", query.display()))
        .await
        .unwrap();
    let (live, due): (i64, i64) = sqlx::query_as(
        "SELECT live_generation, (SELECT count(*) FROM chat_search_rebuilds)
         FROM projections WHERE name = 'chat.search'",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!(
        (live, due),
        (generation + 1, 0),
        "a new generation, and done"
    );
}
