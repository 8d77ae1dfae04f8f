//! An erased user's nickname is held (issue 27 item 6), on the single server and behind the
//! gateway: during the hold nobody may register it or a look-alike (409) and a direct chat by it
//! finds nobody; the old direct room still names the erased person by id, as a deleted account;
//! after the hold the nickname is free, and a direct chat by it opens a new room with the new
//! holder, never the old one.

mod common;

use std::time::{Duration, Instant};

use common::api::{eventually, Api, Person};
use common::microservices::Microservices;
use reqwest::Method;
use serde_json::{json, Value};

/// The hold the servers here are started with.
const HOLD: Duration = Duration::from_secs(6);

async fn sign_up(api: &Api, email: &str, nickname: &str) -> (u16, Value) {
    let body = json!({"email": email, "password": "correct horse battery", "nickname": nickname});
    api.call(Method::POST, "/v1/users", "", Some(body)).await
}

async fn open_direct(api: &Api, who: &Person, nickname: &str) -> (u16, Value) {
    api.post(who, "/v1/direct-chats", json!({ "nickname": nickname }))
        .await
}

/// The inbox's entry for `room`, if it lists it yet (a projection).
async fn inbox_entry(api: &Api, who: &Person, room: &str) -> Option<Value> {
    let (status, inbox) = api.get(who, "/v1/inbox").await;
    assert_eq!(status, 200, "{inbox}");
    inbox["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["id"] == room)
        .cloned()
}

async fn nicknames_of_erased_users_are_held(api: &Api) {
    let (ada, bob) = (api.person("Ada").await, api.person("Bob").await);
    let (status, first) = open_direct(api, &ada, "bob").await;
    assert_eq!(status, 201, "{first}");
    let first_room = first["id"].as_str().unwrap().to_owned();
    let (status, sent) = api.send(&ada, &first_room, "hello-bob", "hello Bob").await;
    assert_eq!(status, 201, "{sent}");
    eventually(|| async {
        inbox_entry(api, &ada, &first_room)
            .await
            .is_some_and(|room| room["peer"]["nickname"] == "Bob")
    })
    .await;

    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/users/me",
            &bob.token,
            Some(json!({"password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, 204);
    let erased = Instant::now();

    // During the hold: the nickname, another case of it and a look-alike (Cyrillic о) are taken.
    for nickname in ["Bob", "BOB", "B\u{43e}b"] {
        let (status, problem) = sign_up(api, "stranger@example.com", nickname).await;
        assert_eq!(status, 409, "{nickname}: {problem}");
    }
    // Nobody answers to it: a direct chat by it finds nobody, and never the old room.
    assert_eq!(open_direct(api, &ada, "Bob").await.0, 404);
    assert!(
        erased.elapsed() < HOLD,
        "the checks above took the whole hold"
    );
    // The old room still shows the erased person, by id, as a deleted account.
    eventually(|| async {
        inbox_entry(api, &ada, &first_room)
            .await
            .is_some_and(|room| {
                room["peer"]["user_id"] == bob.id.as_str() && room["peer"]["nickname"].is_null()
            })
    })
    .await;

    // After the hold the nickname is free again.
    tokio::time::sleep(HOLD.saturating_sub(erased.elapsed()) + Duration::from_millis(500)).await;
    let (status, stranger) = sign_up(api, "stranger@example.com", "Bob").await;
    assert_eq!(status, 201, "{stranger}");
    let stranger_id = stranger["id"].as_str().unwrap().to_owned();
    assert_ne!(stranger_id, bob.id);

    // A direct chat by the name is a new room with the new holder; the old one is untouched.
    let (status, second) = open_direct(api, &ada, "Bob").await;
    assert_eq!(status, 201, "a new room, not the erased user's: {second}");
    assert_ne!(second["id"], first["id"]);
    let members: Vec<&str> = second["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["user_id"].as_str().unwrap())
        .collect();
    assert!(members.contains(&stranger_id.as_str()), "{second}");
    assert!(!members.contains(&bob.id.as_str()), "{second}");
    let second_room = second["id"].as_str().unwrap().to_owned();
    eventually(|| async {
        let (old, new) = (
            inbox_entry(api, &ada, &first_room).await,
            inbox_entry(api, &ada, &second_room).await,
        );
        old.is_some_and(|room| {
            room["peer"]["user_id"] == bob.id.as_str() && room["peer"]["nickname"].is_null()
        }) && new.is_some_and(|room| {
            room["peer"]["user_id"] == stranger_id.as_str() && room["peer"]["nickname"] == "Bob"
        })
    })
    .await;
    // The old room's members are the two it was opened with.
    let (status, old) = api.get(&ada, &format!("/v1/rooms/{first_room}")).await;
    assert_eq!(status, 200, "{old}");
    assert!(!old.to_string().contains(&stranger_id), "{old}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_erased_nickname_is_held_on_the_single_server() {
    let data = tempfile::tempdir().unwrap();
    let hold = format!("{}s", HOLD.as_secs());
    let api = Api::start(&[
        "--data-dir",
        data.path().to_str().unwrap(),
        "--nickname-hold",
        &hold,
    ]);
    nicknames_of_erased_users_are_held(&api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_erased_nickname_is_held_behind_the_gateway() {
    let hold = format!("{}s", HOLD.as_secs());
    let Some((_deployment, gateway)) =
        Microservices::start(&[("user", &["--nickname-hold", &hold])]).await
    else {
        return;
    };
    nicknames_of_erased_users_are_held(&Api::at(gateway)).await;
}
