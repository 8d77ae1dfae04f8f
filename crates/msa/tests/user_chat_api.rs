//! user-chat on the spawned single server (SQLite and PostgreSQL): direct chats by nickname, the
//! credit policy (free allowance, then credits, 402, compensation, concurrent sends), the inbox
//! and member lists with profiles that follow profile changes and erasure.

mod common;

use common::api::{eventually, Api, Person};
use reqwest::Method;
use serde_json::{json, Value};

async fn send(api: &Api, who: &Person, room: &str, txn_id: &str) -> (u16, Value) {
    let path = format!("/v1/rooms/{room}/messages");
    let body = json!({"txn_id": txn_id, "body": format!("message {txn_id}")});
    api.call(Method::POST, &path, &who.token, Some(body)).await
}

async fn wallet(api: &Api, who: &Person) -> (i64, i64) {
    let (_, wallet) = api.call(Method::GET, "/v1/wallet", &who.token, None).await;
    (
        wallet["free_left_today"].as_i64().unwrap(),
        wallet["balance"].as_i64().unwrap(),
    )
}

async fn buy_credits(api: &Api, who: &Person) {
    let (status, payment) = api.request_payment(who, "credits-1", "credits-100").await;
    assert_eq!(status, 201, "{payment}");
    let path = format!("/v1/payments/{}/confirm", payment["id"].as_str().unwrap());
    let confirm = json!({"payment_key": "approve-uc", "amount": 1000});
    let (status, _) = api
        .call(Method::POST, &path, &who.token, Some(confirm))
        .await;
    assert_eq!(status, 200);
    eventually(|| async { wallet(api, who).await.1 == 100 }).await;
}

async fn members(api: &Api, who: &Person, room: &str) -> (u16, Value) {
    let path = format!("/v1/rooms/{room}/members");
    api.call(Method::GET, &path, &who.token, None).await
}

/// The members' nicknames; none while the member list (a projection) does not know the room yet
/// and answers 404.
fn nicknames(list: &Value) -> Vec<Value> {
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["nickname"].clone())
        .collect()
}

async fn user_chat(api: &Api) {
    let (ada, bob, cy) = (
        api.person("Ada").await,
        api.person("Bob").await,
        api.person("Cy").await,
    );

    // A direct chat by nickname (case-insensitive); asking again, from either side, finds it.
    let open = |who: &Person, nickname: &str| {
        let body = json!({"nickname": nickname});
        let token = who.token.clone();
        async move {
            api.call(Method::POST, "/v1/direct-chats", &token, Some(body))
                .await
        }
    };
    let (status, room) = open(&ada, "bob").await;
    assert_eq!(status, 201, "{room}");
    let room_id = room["id"].as_str().unwrap().to_owned();
    assert_eq!(room["kind"], "direct");
    let (status, again) = open(&bob, "Ada").await;
    assert_eq!(
        (status, again["id"].as_str()),
        (200, Some(room_id.as_str()))
    );
    assert_eq!(open(&ada, "nobody").await.0, 404);
    let (status, problem) = open(&ada, "ada").await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (422, Some("nickname"))
    );

    // A refused post gives its credit back; its txn_id is spent for good.
    let (status, group) = api
        .call(
            Method::POST,
            "/v1/rooms",
            &bob.token,
            Some(json!({"kind": "group", "name": "Bob's"})),
        )
        .await;
    assert_eq!(status, 201);
    let group_id = group["id"].as_str().unwrap();
    assert_eq!(send(api, &ada, group_id, "t-0").await.0, 403);
    assert_eq!(wallet(api, &ada).await, (3, 0));
    assert_eq!(send(api, &ada, group_id, "t-0").await.0, 409);

    // The free allowance (3 a day here), then 402; retries cost nothing.
    for n in 1..=3 {
        let (status, posted) = send(api, &ada, &room_id, &format!("t-{n}")).await;
        assert_eq!(status, 201, "{posted}");
    }
    let (status, problem) = send(api, &ada, &room_id, "t-4").await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (402, Some("urn:msa:problem:out-of-credits"))
    );
    assert_eq!(
        send(api, &ada, &room_id, "t-1").await.0,
        200,
        "a retry of a sent message"
    );
    // Credits bought through the sandbox provider carry on.
    buy_credits(api, &ada).await;
    assert_eq!(send(api, &ada, &room_id, "t-4").await.0, 201);
    assert_eq!(wallet(api, &ada).await, (0, 99));

    // Nobody sends more than allowance plus credits, also at once: 10 parallel sends, 3 pass.
    let sends = (0..10).map(|n| {
        let (room_id, bob) = (room_id.clone(), &bob);
        async move { send(api, bob, &room_id, &format!("b-{n}")).await.0 }
    });
    let mut statuses = futures::future::join_all(sends).await;
    statuses.sort();
    assert_eq!(statuses, [201, 201, 201, 402, 402, 402, 402, 402, 402, 402]);

    // The inbox: the direct room with the other person's profile and what is unread (the
    // inbox is a projection: the room and the last sends show in it a moment later).
    let direct_room = || async {
        let (status, inbox) = api.call(Method::GET, "/v1/inbox", &ada.token, None).await;
        assert_eq!(status, 200, "{inbox}");
        inbox["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|item| item["id"] == room_id.as_str())
            .cloned()
    };
    eventually(|| async { direct_room().await.is_some_and(|room| room["unread"] == 3) }).await;
    let direct = direct_room()
        .await
        .expect("the direct room, seen a moment ago");
    assert_eq!(direct["peer"]["nickname"], "Bob");
    assert!(direct["last_message"]["body"]
        .as_str()
        .unwrap()
        .starts_with("message "));

    // Members with profiles, for members only; a profile change shows.
    eventually(|| async {
        nicknames(&members(api, &ada, &room_id).await.1) == [json!("Ada"), json!("Bob")]
    })
    .await;
    assert_eq!(members(api, &cy, &room_id).await.0, 403);
    let (status, _) = api
        .call(
            Method::PATCH,
            "/v1/users/me",
            &bob.token,
            Some(json!({"nickname": "Robert"})),
        )
        .await;
    assert_eq!(status, 200);
    eventually(|| async {
        nicknames(&members(api, &ada, &room_id).await.1) == [json!("Ada"), json!("Robert")]
    })
    .await;
    // Erased: still a member, no profile any more.
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/users/me",
            &bob.token,
            Some(json!({"password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, 204);
    eventually(|| async {
        let (_, list) = members(api, &ada, &room_id).await;
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["nickname"].is_null())
    })
    .await;
    // The inbox still names the erased person by id, without a nickname (a deleted account).
    let (_, inbox) = api.call(Method::GET, "/v1/inbox", &ada.token, None).await;
    let peer = &inbox["items"][0]["peer"];
    assert_eq!(peer["user_id"], bob.id.as_str(), "{inbox}");
    assert!(peer["nickname"].is_null(), "{inbox}");
}

#[tokio::test(flavor = "multi_thread")]
async fn user_chat_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(&[
        "--data-dir",
        data.path().to_str().unwrap(),
        "--free-messages-per-day",
        "3",
    ]);
    user_chat(&api).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn user_chat_on_postgres() {
    let Some(url) = msa_testkit::postgres_database().await else {
        return;
    };
    let api = Api::start(&["--database-url", &url, "--free-messages-per-day", "3"]);
    user_chat(&api).await;
}
