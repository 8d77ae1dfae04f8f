//! A service running as several instances behind one gateway: live delivery across instances,
//! and the gateway taking instances in turn and leaving out one that is gone.

mod common;

use common::api::Api;
use common::live;
use common::microservices::Microservices;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_chat_instances_deliver_each_others_messages_and_the_gateway_skips_a_dead_one() {
    let Some((mut deployment, gateway)) = Microservices::start_scaled(&[], 2).await else {
        return;
    };
    let api = Api::at(gateway);
    let (ada, bob) = (api.person("Ada").await, api.person("Bob").await);
    let (status, room) = api
        .post(&ada, "/v1/direct-chats", json!({"nickname": "Bob"}))
        .await;
    assert!(status == 201 || status == 200, "{room}");
    let room = room["id"].as_str().unwrap().to_owned();

    // Bob's stream is on the second instance; Ada's message is posted on the first (user-chat
    // posts there): it reaches Bob through the store both share.
    let mut second = Api::at(deployment.more_chats.remove(0));
    let mut stream = live::connect(&second, &bob, None, false).await;
    for n in 0..3 {
        let (status, sent) = api
            .send(&ada, &room, &format!("across-{n}"), "across")
            .await;
        assert_eq!(status, 201, "{sent}");
    }
    let got = live::messages(&mut stream, 3).await;
    assert_eq!(got.len(), 3, "Bob's stream on the other instance: {got:?}");
    assert!(got.iter().all(|frame| frame["data"]["body"] == "across"));

    // Through the gateway every request is answered, whichever instance takes it...
    for _ in 0..6 {
        let (status, rooms) = api.get(&bob, "/v1/rooms").await;
        assert_eq!(status, 200, "{rooms}");
    }
    // ...also once the second instance is gone: a refused connection goes to the next one.
    second.server.process.kill();
    for _ in 0..6 {
        let (status, rooms) = api.get(&bob, "/v1/rooms").await;
        assert_eq!(status, 200, "{rooms}");
        assert_eq!(rooms["items"][0]["id"], room.as_str());
    }
}
