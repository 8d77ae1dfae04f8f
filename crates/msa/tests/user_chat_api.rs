//! user-chat on the spawned single server (SQLite and PostgreSQL): direct chats by nickname, the
//! credit policy (free allowance, then credits, 402, compensation, concurrent sends), the inbox
//! and member lists with profiles that follow profile changes and erasure.

mod common;

use common::api::{eventually, numbered, Api, Person};
use common::behaviour;
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

async fn open_direct(api: &Api, who: &Person, nickname: &str) -> (u16, Value) {
    api.post(who, "/v1/direct-chats", json!({"nickname": nickname}))
        .await
}

/// The direct room of `who` and the person called `other`, opened by `who`.
async fn direct_room(api: &Api, who: &Person, other: &str) -> String {
    let (status, room) = open_direct(api, who, other).await;
    assert_eq!(status, 201, "{room}");
    room["id"].as_str().unwrap().to_owned()
}

async fn a_direct_chat_is_opened_by_nickname_and_found_again_from_either_side(api: &Api) {
    let (ada, bob) = (api.someone("Ada").await, api.someone("Bob").await);
    // The nickname is matched case-insensitively.
    let (status, room) = open_direct(api, &ada, &bob.nickname.to_lowercase()).await;
    assert_eq!(
        (status, room["kind"].as_str()),
        (201, Some("direct")),
        "{room}"
    );
    let (status, again) = open_direct(api, &bob, &ada.nickname.to_uppercase()).await;
    assert_eq!((status, &again["id"]), (200, &room["id"]));
    assert_eq!(open_direct(api, &ada, "nobody").await.0, 404);
    let (status, problem) = open_direct(api, &ada, &ada.nickname.to_lowercase()).await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (422, Some("nickname")),
        "not with oneself"
    );
}

async fn a_refused_post_gives_its_credit_back_and_its_txn_id_is_spent(api: &Api) {
    let (ada, bob) = (api.someone("Ada").await, api.someone("Bob").await);
    let (status, group) = api
        .post(&bob, "/v1/rooms", json!({"kind": "group", "name": "Bob's"}))
        .await;
    assert_eq!(status, 201);
    let group_id = group["id"].as_str().unwrap();
    assert_eq!(
        send(api, &ada, group_id, "t-0").await.0,
        403,
        "not a member"
    );
    assert_eq!(wallet(api, &ada).await, (3, 0), "the credit came back");
    assert_eq!(send(api, &ada, group_id, "t-0").await.0, 409);
}

async fn the_free_allowance_comes_first_then_credits_and_retries_cost_nothing(api: &Api) {
    let (ada, bob) = (api.someone("Ada").await, api.someone("Bob").await);
    let room = direct_room(api, &ada, &bob.nickname).await;
    // The free allowance (3 a day here), then 402.
    for n in 1..=3 {
        let (status, posted) = send(api, &ada, &room, &format!("t-{n}")).await;
        assert_eq!(status, 201, "{posted}");
    }
    let (status, problem) = send(api, &ada, &room, "t-4").await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (402, Some("urn:msa:problem:out-of-credits"))
    );
    assert_eq!(
        send(api, &ada, &room, "t-1").await.0,
        200,
        "a retry of a sent message"
    );
    // Credits bought through the sandbox provider carry on.
    buy_credits(api, &ada).await;
    assert_eq!(send(api, &ada, &room, "t-4").await.0, 201);
    assert_eq!(wallet(api, &ada).await, (0, 99));
}

async fn parallel_sends_spend_no_more_than_the_allowance(api: &Api) {
    let (bob, ada) = (api.someone("Bob").await, api.someone("Ada").await);
    let room = direct_room(api, &bob, &ada.nickname).await;
    let sends = (0..10).map(|n| {
        let (room, bob) = (&room, &bob);
        async move { send(api, bob, room, &format!("b-{n}")).await.0 }
    });
    let mut statuses = futures::future::join_all(sends).await;
    statuses.sort();
    assert_eq!(statuses, [201, 201, 201, 402, 402, 402, 402, 402, 402, 402]);
}

/// The inbox entry of `room` as `who` sees it, once it is there (a projection).
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

async fn the_inbox_shows_a_direct_room_with_its_peer_and_what_is_unread(api: &Api) {
    let (ada, bob) = (api.someone("Ada").await, api.someone("Bob").await);
    let room = direct_room(api, &ada, &bob.nickname).await;
    for n in 1..=3 {
        assert_eq!(send(api, &bob, &room, &format!("b-{n}")).await.0, 201);
    }
    eventually(|| async {
        inbox_entry(api, &ada, &room)
            .await
            .is_some_and(|entry| entry["unread"] == 3)
    })
    .await;
    let entry = inbox_entry(api, &ada, &room).await.unwrap();
    assert_eq!(entry["peer"]["nickname"], bob.nickname.as_str(), "{entry}");
    assert_eq!(entry["last_message"]["body"], "message b-3", "{entry}");
    // Bob's inbox names Ada, with nothing unread (his own messages).
    eventually(|| async {
        inbox_entry(api, &bob, &room).await.is_some_and(|entry| {
            entry["peer"]["nickname"] == ada.nickname.as_str() && entry["unread"] == 0
        })
    })
    .await;
}

async fn members_see_each_others_profiles_as_they_change_until_erasure(api: &Api) {
    let (ada, bob) = (api.someone("Ada").await, api.someone("Bob").await);
    let cy = api.someone("Cy").await;
    let room = direct_room(api, &ada, &bob.nickname).await;
    let names_seen_by_ada = |expected: Vec<Value>| {
        let (ada, room) = (&ada, &room);
        async move {
            eventually(|| async { nicknames(&members(api, ada, room).await.1) == expected }).await
        }
    };
    names_seen_by_ada(vec![json!(ada.nickname), json!(bob.nickname)]).await;
    assert_eq!(members(api, &cy, &room).await.0, 403, "members only");
    let renamed = numbered("Robert");
    let (status, _) = api
        .call(
            Method::PATCH,
            "/v1/users/me",
            &bob.token,
            Some(json!({"nickname": renamed})),
        )
        .await;
    assert_eq!(status, 200);
    names_seen_by_ada(vec![json!(ada.nickname), json!(renamed)]).await;
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
    // (Where the nameless sorts depends on the database.)
    eventually(|| async {
        let mut names = nicknames(&members(api, &ada, &room).await.1);
        names.sort_by_key(Value::is_null);
        names == [json!(ada.nickname), Value::Null]
    })
    .await;
    // The inbox still names the erased person by id, without a nickname (a deleted account).
    eventually(|| async {
        inbox_entry(api, &ada, &room).await.is_some_and(|entry| {
            entry["peer"]["user_id"] == bob.id.as_str() && entry["peer"]["nickname"].is_null()
        })
    })
    .await;
}

async fn user_chat(api: &Api) {
    behaviour!(a_direct_chat_is_opened_by_nickname_and_found_again_from_either_side(api));
    behaviour!(a_refused_post_gives_its_credit_back_and_its_txn_id_is_spent(api));
    behaviour!(the_free_allowance_comes_first_then_credits_and_retries_cost_nothing(api));
    behaviour!(parallel_sends_spend_no_more_than_the_allowance(api));
    behaviour!(the_inbox_shows_a_direct_room_with_its_peer_and_what_is_unread(api));
    behaviour!(members_see_each_others_profiles_as_they_change_until_erasure(api));
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
