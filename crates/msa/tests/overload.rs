//! Back-pressure: sends past what the server works on at once are refused early (503
//! `overloaded` with Retry-After, problem+json) before anything is spent, and go through when
//! tried again.

mod common;

use common::api::{eventually, Api};
use common::microservices::Microservices;
use serde_json::json;

/// One place for a send and a 1 ms wait, on user-chat (the single server, or its own service).
const ONE_PLACE: &[&str] = &["--sends-in-flight", "1", "--send-queue-wait", "1ms"];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sends_past_the_admission_limit_are_refused_early_and_spend_nothing() {
    let data = tempfile::tempdir().unwrap();
    let mut args = vec!["--data-dir", data.path().to_str().unwrap()];
    args.extend(ONE_PLACE);
    args.extend([
        "--rate-limit-per-user",
        "100000",
        "--rate-limit-per-address",
        "100000",
    ]);
    burst_is_refused_early(&Api::start(&args)).await;
}

/// Through the gateway: user-chat's 503 reaches the client with its Retry-After, and the
/// gateway neither tries it on another instance nor takes the instance out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_gateway_passes_an_overloaded_send_on_with_its_retry_after() {
    let Some((_deployment, gateway)) = Microservices::start(&[("user-chat", ONE_PLACE)]).await
    else {
        return;
    };
    burst_is_refused_early(&Api::at(gateway)).await;
}

/// The same send many times at once while places are scarce: some are refused, none is
/// charged or posted twice, and a retry afterwards finds the one message.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_send_repeated_at_once_under_overload_posts_and_charges_once() {
    let data = tempfile::tempdir().unwrap();
    let mut args = vec!["--data-dir", data.path().to_str().unwrap()];
    args.extend(ONE_PLACE);
    args.extend([
        "--rate-limit-per-user",
        "100000",
        "--rate-limit-per-address",
        "100000",
    ]);
    let api = Api::start(&args);
    let (ada, _bob) = (api.person("Ada").await, api.person("Bob").await);
    let (_, room) = api
        .post(&ada, "/v1/direct-chats", json!({"nickname": "Bob"}))
        .await;
    let room = room["id"].as_str().unwrap().to_owned();
    let sends = (0..10).map(|_| api.send(&ada, &room, "same", "only once"));
    let statuses: Vec<u16> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    assert!(
        statuses.iter().all(|s| matches!(s, 200 | 201 | 503)),
        "{statuses:?}"
    );
    let (status, again) = api.send(&ada, &room, "same", "only once").await;
    assert!(status == 200 || status == 201, "{again}");
    let history = format!("/v1/rooms/{room}/messages?limit=100");
    let ledger = "/v1/wallet/ledger?limit=100";
    // Both read models follow the events within moments.
    eventually(|| async {
        let (_, spent) = api.get(&ada, ledger).await;
        let (_, messages) = api.get(&ada, &history).await;
        !spent["items"].as_array().unwrap().is_empty()
            && !messages["items"].as_array().unwrap().is_empty()
    })
    .await;
    let (_, messages) = api.get(&ada, &history).await;
    let posted: Vec<&serde_json::Value> = messages["items"].as_array().unwrap().iter().collect();
    assert_eq!(posted.len(), 1, "{messages}");
    assert_eq!(posted[0]["id"], again["id"]);
    let (_, spent) = api.get(&ada, ledger).await;
    assert_eq!(spent["items"].as_array().unwrap().len(), 1, "{spent}");
    assert_eq!(spent["items"][0]["kind"], "message_spent", "{spent}");
}

async fn burst_is_refused_early(api: &Api) {
    let (ada, _bob) = (api.person("Ada").await, api.person("Bob").await);
    let (status, room) = api
        .post(&ada, "/v1/direct-chats", json!({"nickname": "Bob"}))
        .await;
    assert!(status == 201 || status == 200, "{room}");
    let room = room["id"].as_str().unwrap().to_owned();
    let url = format!("{}/v1/rooms/{room}/messages", api.server.base);

    // Twenty sends at once; the free allowance (20 a day) pays for every one that is taken.
    let sends = (0..20).map(|n| {
        let request = api
            .client
            .post(&url)
            .bearer_auth(&ada.token)
            .json(&json!({"txn_id": format!("burst-{n}"), "body": format!("burst {n}")}));
        async move {
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            let retry_after = answer.headers().get("retry-after").cloned();
            let kind = answer.headers().get("content-type").cloned();
            let body: serde_json::Value = answer.json().await.unwrap();
            (n, status, retry_after, kind, body)
        }
    });
    let answers = futures::future::join_all(sends).await;
    let mut refused = Vec::new();
    for (n, status, retry_after, kind, body) in &answers {
        match status {
            201 => {}
            503 => {
                assert_eq!(body["type"], "urn:msa:problem:overloaded", "{body}");
                assert_eq!(kind.as_ref().unwrap(), "application/problem+json");
                assert!(retry_after.is_some(), "a 503 without Retry-After: {body}");
                refused.push(*n);
            }
            other => panic!("send {n}: {other} {body}"),
        }
    }
    assert!(
        !refused.is_empty(),
        "twenty sends at once with one place and a 1 ms wait: none was refused"
    );

    // A refused send spent nothing: the ledger holds one spend per message posted (the ledger
    // and history are read models: they follow the events within moments).
    let taken = answers.len() - refused.len();
    let spends = || async {
        let (_, ledger) = api.get(&ada, "/v1/wallet/ledger?limit=100").await;
        ledger["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "message_spent")
            .count()
    };
    eventually(|| async { spends().await == taken }).await;

    // Tried again one at a time, each refused send goes through.
    for n in &refused {
        let (status, sent) = api
            .send(&ada, &room, &format!("burst-{n}"), &format!("burst {n}"))
            .await;
        assert_eq!(status, 201, "{sent}");
    }
    let history = format!("/v1/rooms/{room}/messages?limit=100");
    eventually(|| async {
        let (_, history) = api.get(&ada, &history).await;
        history["items"].as_array().unwrap().len() == 20
    })
    .await;
    // The ledger is payment's read model: it follows payment's events, not chat's history.
    eventually(|| async { spends().await == 20 }).await;
}
