//! A person's export (`GET /v1/users/me/export`, issue 27 item 8) on the single server (SQLite)
//! and behind the gateway (PostgreSQL, Kafka, one process per service): one JSON document with
//! everything the system keeps about them (profile, account history, sessions, rooms, messages
//! they sent with earlier bodies, reactions, read markers, open invitations, payments with
//! refunds, ledger lines),
//! shaped as the API document says, paged through (more messages than a page holds), and never
//! holding anyone else's data.

mod common;

use std::collections::BTreeSet;

use common::api::{eventually, Api, Person};

use common::microservices::Microservices;
use reqwest::Method;
use serde_json::{json, Value};

/// More than one page of messages (pages hold 500).
const MESSAGES: usize = 510;

async fn send(api: &Api, who: &Person, room: &str, txn_id: &str, body: &str) -> Value {
    loop {
        let (status, posted) = api.send(who, room, txn_id, body).await;
        match status {
            201 | 200 => return posted,
            // The per-user rate limit: wait and send again (the txn_id makes it one message).
            429 => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            _ => panic!("{status}: {posted}"),
        }
    }
}

async fn export(api: &Api, who: &Person) -> (u16, Value) {
    let response = api
        .client
        .get(format!("{}/v1/users/me/export", api.server.base))
        .bearer_auth(&who.token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    if status == 200 {
        assert_eq!(response.headers()["content-type"], "application/json");
        assert!(response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment"));
    }
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap())
}

fn ids(list: &Value, field: &str) -> BTreeSet<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item[field].as_str().unwrap().to_owned())
        .collect()
}

/// Buys 100 credits and refunds 300 of 1,000; the payment's id.
async fn buy_and_refund(api: &Api, who: &Person, key: &str) -> String {
    let (status, payment) = api.request_payment(who, key, "credits-100").await;
    assert_eq!(status, 201, "{payment}");
    let id = payment["id"].as_str().unwrap().to_owned();
    let confirm = json!({"payment_key": format!("approve-{key}"), "amount": 1000});
    let (status, confirmed) = api
        .post(who, &format!("/v1/payments/{id}/confirm"), confirm)
        .await;
    assert_eq!(status, 200, "{confirmed}");
    eventually(|| async { api.get(who, "/v1/wallet").await.1["balance"] == 100 }).await;
    let refund = json!({"amount": 300, "reason": "changed my mind"});
    let (status, refunded) = api
        .post(who, &format!("/v1/payments/{id}/refunds"), refund)
        .await;
    assert_eq!(status, 201, "{refunded}");
    id
}

async fn everything_about_a_person_and_nobody_else(api: &Api) {
    let (ada, bob, cy) = (
        api.person("Ada").await,
        api.person("Bob").await,
        api.person("Cy").await,
    );
    let (status, direct) = api
        .post(&ada, "/v1/direct-chats", json!({"nickname": "Bob"}))
        .await;
    assert_eq!(status, 201, "{direct}");
    let room = direct["id"].as_str().unwrap().to_owned();
    let (status, group) = api
        .post(
            &ada,
            "/v1/rooms",
            json!({"kind": "group", "name": "Ada and Cy", "members": [cy.id]}),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let group = group["id"].as_str().unwrap().to_owned();

    let first = send(api, &ada, &room, "ada-0", "ada's first words").await;
    let first_id = first["id"].as_str().unwrap().to_owned();
    for n in 1..MESSAGES {
        send(
            api,
            &ada,
            &room,
            &format!("ada-{n}"),
            &format!("ada says {n}"),
        )
        .await;
    }
    let bobs = send(api, &bob, &room, "bob-0", "bob's secret words").await;
    let bobs_id = bobs["id"].as_str().unwrap().to_owned();
    let message = |id: &str| format!("/v1/rooms/{room}/messages/{id}");
    let (status, edited) = api
        .call(
            Method::PATCH,
            &message(&first_id),
            &ada.token,
            Some(json!({"body": "ada's first words, corrected"})),
        )
        .await;
    assert_eq!(status, 204, "{edited}");
    let react = |who: &Person, id: &str| {
        let path = format!("{}/reactions/%F0%9F%91%8D", message(id));
        let token = who.token.clone();
        async move { api.call(Method::PUT, &path, &token, None).await }
    };
    assert_eq!(react(&ada, &bobs_id).await.0, 204);
    assert_eq!(react(&bob, &first_id).await.0, 204);
    let seq = bobs["seq"].as_i64().unwrap();
    let (status, _) = api
        .post(
            &ada,
            &format!("/v1/rooms/{room}/read"),
            json!({ "seq": seq }),
        )
        .await;
    assert_eq!(status, 204);
    let adas_payment = buy_and_refund(api, &ada, "ada-buys").await;
    let bobs_payment = buy_and_refund(api, &bob, "bob-buys").await;

    // Everything is in once the read models caught up.
    let caught_up = |document: &Value| {
        document["messages"].as_array().unwrap().len() == MESSAGES
            && !document["reactions"].as_array().unwrap().is_empty()
            && document["ledger"].as_array().unwrap().len() >= 2
            && document["payments"][0]["refunds"][0]["status"] == "completed"
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let document = loop {
        let (status, document) = export(api, &ada).await;
        assert_eq!(status, 200, "{document}");
        if caught_up(&document) {
            break document;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the export never held it all: {document}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };

    // Shaped as the API document says: the same members, no more, no fewer.
    let (_, openapi) = api.call(Method::GET, "/openapi.json", "", None).await;
    let schema = &openapi["components"]["schemas"]["PersonalExport"]["properties"];
    let documented: BTreeSet<&String> = schema.as_object().unwrap().keys().collect();
    let exported: BTreeSet<&String> = document.as_object().unwrap().keys().collect();
    assert_eq!(exported, documented);
    assert_eq!(document["version"], 1);
    assert_eq!(document["user_id"], ada.id.as_str());
    assert_eq!(document["profile"]["email"], "ada@example.com");
    assert!(!document["events"].as_array().unwrap().is_empty());
    assert!(!document["sessions"].as_array().unwrap().is_empty());

    // Chat's part: both rooms, every message Ada sent in order (over two pages), the corrected
    // one with its earlier body, her reaction, her read marker.
    assert_eq!(
        ids(&document["rooms"], "room_id"),
        BTreeSet::from([room.clone(), group.clone()])
    );
    let messages = document["messages"].as_array().unwrap();
    let message_ids: Vec<&str> = messages
        .iter()
        .map(|m| m["message_id"].as_str().unwrap())
        .collect();
    let mut sorted = message_ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(message_ids, sorted, "oldest first, each once");
    assert_eq!(messages[0]["message_id"], first_id.as_str());
    assert_eq!(messages[0]["body"], "ada's first words, corrected");
    assert_eq!(
        messages[0]["earlier_bodies"][0]["body"],
        "ada's first words"
    );
    let reactions = document["reactions"].as_array().unwrap();
    assert_eq!(reactions.len(), 1, "{reactions:?}");
    assert_eq!(
        (
            reactions[0]["room_id"].as_str(),
            reactions[0]["message_id"].as_str()
        ),
        (Some(room.as_str()), Some(bobs_id.as_str()))
    );
    assert!(document["read_markers"]
        .as_array()
        .unwrap()
        .iter()
        .any(|marker| marker["room_id"] == room.as_str() && marker["seq"] == seq));

    // Payment's part: her payment with its refund, her ledger lines.
    assert_eq!(
        ids(&document["payments"], "id"),
        BTreeSet::from([adas_payment.clone()])
    );
    let refund = &document["payments"][0]["refunds"][0];
    assert_eq!(
        (refund["amount"].as_i64(), refund["reason"].as_str()),
        (Some(300), Some("changed my mind"))
    );
    let kinds: BTreeSet<&str> = document["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.contains("credits_purchased"), "{kinds:?}");

    // Nobody else's: Bob's words, reaction, email and payment are not in Ada's export.
    let text = document.to_string();
    for theirs in [
        "bob's secret words",
        "bob@example.com",
        &bobs_payment,
        "cy@example.com",
    ] {
        assert!(!text.contains(theirs), "{theirs} in Ada's export");
    }
    // And Bob's holds his own, not Ada's.
    let (status, bobs) = export(api, &bob).await;
    assert_eq!(status, 200);
    let text = bobs.to_string();
    assert!(text.contains("bob's secret words"));
    for hers in ["ada says 1\"", "ada@example.com", &adas_payment] {
        assert!(!text.contains(hers), "{hers} in Bob's export");
    }
    assert_eq!(bobs["reactions"][0]["message_id"], first_id.as_str());

    // Cy, invited to Ada's group and not answering, finds the invitation in his.
    let (status, cys) = export(api, &cy).await;
    assert_eq!(status, 200);
    assert_eq!(
        cys["invitations"],
        json!([{"room_id": group, "invited_by": ada.id, "invited_at": cys["invitations"][0]["invited_at"]}])
    );
    assert!(cys["messages"].as_array().unwrap().is_empty());
    assert_eq!(document["invitations"], json!([]));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_person_exports_everything_held_about_them_on_the_single_server() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(&[
        "--data-dir",
        data.path().to_str().unwrap(),
        "--free-messages-per-day",
        "100000",
    ]);
    everything_about_a_person_and_nobody_else(&api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_exports_everything_held_about_them_behind_the_gateway() {
    let Some((_deployment, gateway)) =
        Microservices::start(&[("payment", &["--free-messages-per-day", "100000"])]).await
    else {
        return;
    };
    everything_about_a_person_and_nobody_else(&Api::at(gateway)).await;
}
