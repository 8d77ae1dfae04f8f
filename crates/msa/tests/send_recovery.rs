//! Sends left half-done are completed or refunded without the client, exactly once (issue 24
//! item 1), with the failure made real: on the single server, chat's store locked by another
//! process (posts fail after SQLite's busy timeout) and the process SIGKILLed mid-send; on the
//! microservices, chat SIGKILLed and started again, user-chat SIGKILLed while its post hangs,
//! and answers of chat and payment lost on the way back (a proxy between user-chat and them that
//! forwards the request and drops the answer).
//!
//! "Completed" means the message exists once and its credit was spent once; "refunded" that the
//! wallet's ledger shows the spend and one refund, and a retry of the same `txn_id` is refused
//! (409 `spend-refunded`) rather than posting for free.

mod common;

use std::time::Duration;

use common::api::{within, Api, Person};
use common::microservices::HASH_FLAGS;
use common::{free_port, kafka_flags, spawn_serving, Server};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long after its spend a half-done send is settled, in these tests: longer than a failing
/// send takes here (SQLite's busy timeout is 10 s, and chat's writer fails two sends one after
/// the other) plus the client's retry, which must come before the recovery to complete the send.
const RECOVERY_AFTER: &str = "30s";
/// Time enough for the recovery to act: the setting, a round (a sixth of it), a margin.
const RECOVERED_WITHIN: Duration = Duration::from_secs(60);

async fn open_direct(api: &Api, from: &Person, to_nickname: &str) -> String {
    let (status, room) = api
        .post(from, "/v1/direct-chats", json!({ "nickname": to_nickname }))
        .await;
    assert!(status == 201 || status == 200, "{room}");
    room["id"].as_str().unwrap().to_owned()
}

/// The ledger entries of `who`'s wallet about the spend of (`room`, `txn_id`): how many spends
/// and how many refunds.
async fn spend_entries(api: &Api, who: &Person, room: &str, txn_id: &str) -> (usize, usize) {
    let (status, ledger) = api.get(who, "/v1/wallet/ledger?limit=100").await;
    assert_eq!(status, 200, "{ledger}");
    let key = format!("message:{room}:{txn_id}");
    let count = |kind: &str| {
        ledger["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|entry| entry["kind"] == kind && entry["reference"] == key.as_str())
            .count()
    };
    (count("message_spent"), count("spend_refunded"))
}

/// The messages of `room` with `body`.
async fn messages_with(api: &Api, who: &Person, room: &str, body: &str) -> usize {
    let (status, history) = api
        .get(who, &format!("/v1/rooms/{room}/messages?limit=100"))
        .await;
    if status != 200 {
        return usize::MAX; // not readable now (a service coming back): never "once"
    }
    history["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["body"] == body)
        .count()
}

/// Waits until the spend is given back, then checks it was given back once and stays so, and
/// that a retry of the send is refused rather than posted.
async fn refunded_once(api: &Api, who: &Person, room: &str, txn_id: &str) {
    within(RECOVERED_WITHIN, "the half-done send refunded", || async {
        spend_entries(api, who, room, txn_id).await == (1, 1)
    })
    .await;
    let (status, refused) = api.send(who, room, txn_id, &format!("body {txn_id}")).await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["type"]
            .as_str()
            .unwrap()
            .ends_with("spend-refunded"),
        "{refused}"
    );
    // Another round of the recovery gives nothing more.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(spend_entries(api, who, room, txn_id).await, (1, 1));
    assert_eq!(
        messages_with(api, who, room, &format!("body {txn_id}")).await,
        0
    );
}

/// Checks a send that finished was left alone (call it once the recovery had time to look at
/// its spend): one message, one spend, no refund.
async fn completed_once(api: &Api, who: &Person, room: &str, txn_id: &str) {
    let body = format!("body {txn_id}");
    within(
        Duration::from_secs(30),
        "the message in history",
        || async { messages_with(api, who, room, &body).await == 1 },
    )
    .await;
    assert_eq!(spend_entries(api, who, room, txn_id).await, (1, 0));
}

// ---------------------------------------------------------------------------------------------
// The single server (SQLite, in-process bus)

fn single_server(data_dir: &std::path::Path) -> Api {
    let dir = data_dir.to_str().unwrap();
    Api::start(&["--data-dir", dir, "--send-recovery-after", RECOVERY_AFTER])
}

/// Holds SQLite's write lock of chat's event store, as another process writing would: appends
/// wait for it and fail after the busy timeout (10 s).
async fn lock_chat_store(data_dir: &std::path::Path) -> sqlx::SqliteConnection {
    use sqlx::Connection;
    let path = data_dir.join("chat.events.sqlite");
    let mut connection = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut connection)
        .await
        .unwrap();
    connection
}

async fn unlock(mut connection: sqlx::SqliteConnection) {
    sqlx::query("ROLLBACK")
        .execute(&mut connection)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn single_server_settles_every_half_done_send() {
    let data = tempfile::tempdir().unwrap();
    let api = single_server(data.path());
    let (ada, _bob) = (api.person("Ada").await, api.person("Bob").await);
    let room = open_direct(&api, &ada, "Bob").await;

    // Refused by chat (a reply to nothing): refunded at once, and once only.
    let reply =
        json!({"txn_id": "refused", "body": "body refused", "reply_to": uuid::Uuid::now_v7()});
    let (status, refused) = api
        .post(&ada, &format!("/v1/rooms/{room}/messages"), reply)
        .await;
    assert_eq!(status, 422, "{refused}");
    within(
        Duration::from_secs(10),
        "the refused post's refund in the ledger",
        || async { spend_entries(&api, &ada, &room, "refused").await == (1, 1) },
    )
    .await;

    // Chat's store cannot be written: both sends fail (5xx) after their credit was spent.
    let lock = lock_chat_store(data.path()).await;
    let (retried, abandoned) = tokio::join!(
        api.send(&ada, &room, "retried", "body retried"),
        api.send(&ada, &room, "abandoned", "body abandoned"),
    );
    assert!(retried.0 >= 500, "{retried:?}");
    assert!(abandoned.0 >= 500, "{abandoned:?}");
    assert_eq!(spend_entries(&api, &ada, &room, "retried").await, (1, 0));
    unlock(lock).await;
    // The client retries one: it completes at no further cost.
    let (status, posted) = api.send(&ada, &room, "retried", "body retried").await;
    assert_eq!(status, 201, "{posted}");
    // The other is never retried: its credit comes back by itself.
    refunded_once(&api, &ada, &room, "abandoned").await;
    completed_once(&api, &ada, &room, "retried").await;
    // The refused one was refunded once, whatever the recovery did since.
    assert_eq!(spend_entries(&api, &ada, &room, "refused").await, (1, 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn single_server_killed_between_spend_and_post_refunds_after_restart() {
    let data = tempfile::tempdir().unwrap();
    let mut api = single_server(data.path());
    let (ada, _bob) = (api.person("Ada").await, api.person("Bob").await);
    let room = open_direct(&api, &ada, "Bob").await;

    // The post waits for chat's store; the process dies meanwhile.
    let lock = lock_chat_store(data.path()).await;
    let sending = {
        let (client, base, token, room) = (
            api.client.clone(),
            api.server.base.clone(),
            ada.token.clone(),
            room.clone(),
        );
        tokio::spawn(async move {
            client
                .post(format!("{base}/v1/rooms/{room}/messages"))
                .bearer_auth(token)
                .json(&json!({"txn_id": "cut", "body": "body cut"}))
                .send()
                .await
        })
    };
    within(Duration::from_secs(5), "the credit spent", || async {
        spend_entries(&api, &ada, &room, "cut").await == (1, 0)
    })
    .await;
    api.server.process.kill();
    assert!(sending.await.unwrap().is_err(), "the send had no answer");
    unlock(lock).await;

    api = single_server(data.path());
    refunded_once(&api, &ada, &room, "cut").await;
}

/// Two single servers on one PostgreSQL database (two instances of every context, user-chat's
/// recovery included): a send cut by the death of the instance that made it is refunded once,
/// whichever instance sweeps, also after the dead one is started again.
#[tokio::test(flavor = "multi_thread")]
async fn two_instances_on_postgres_refund_a_cut_send_once() {
    let Some(url) = msa_testkit::postgres_database().await else {
        eprintln!("skipped: PostgreSQL missing");
        return;
    };
    let flags = [
        "--database-url",
        url.as_str(),
        "--send-recovery-after",
        RECOVERY_AFTER,
    ];
    let mut first = Api::start(&flags);
    let second = Api::start(&flags);
    let (ada, _bob) = (first.person("Ada").await, first.person("Bob").await);
    let room = open_direct(&first, &ada, "Bob").await;

    // Chat's appends wait for a lock another session holds; the instance posting dies meanwhile.
    use sqlx::Connection;
    let mut lock = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut lock).await.unwrap();
    sqlx::query("LOCK TABLE msa_chat.events IN SHARE MODE")
        .execute(&mut lock)
        .await
        .unwrap();
    let sending = {
        let (client, base, token, room) = (
            first.client.clone(),
            first.server.base.clone(),
            ada.token.clone(),
            room.clone(),
        );
        tokio::spawn(async move {
            client
                .post(format!("{base}/v1/rooms/{room}/messages"))
                .bearer_auth(token)
                .json(&json!({"txn_id": "cut", "body": "body cut"}))
                .send()
                .await
        })
    };
    within(Duration::from_secs(10), "the credit spent", || async {
        spend_entries(&second, &ada, &room, "cut").await == (1, 0)
    })
    .await;
    first.server.process.kill();
    assert!(sending.await.unwrap().is_err(), "the send had no answer");
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();

    // Both instances run the recovery from here.
    first = Api::start(&flags);
    refunded_once(&second, &ada, &room, "cut").await;
    assert_eq!(spend_entries(&first, &ada, &room, "cut").await, (1, 1));
}

// ---------------------------------------------------------------------------------------------
// The microservices (PostgreSQL, Kafka), with faults between user-chat and the services it calls

/// What a [`FaultyLink`] does to the connections it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Carries both ways.
    None,
    /// Delivers each request, waits for the answer to start, and drops it (closes the client).
    LoseAnswers,
    /// Takes requests and never answers.
    Hang,
}

/// A TCP link user-chat calls a service through, whose faults the test switches. Switching
/// closes every connection open, so none carries on under the old behaviour.
struct FaultyLink {
    url: String,
    fault: watch::Sender<Fault>,
}

impl FaultyLink {
    async fn to(upstream: &str) -> FaultyLink {
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (fault, watching) = watch::channel(Fault::None);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, mut watching) = (upstream.clone(), watching.clone());
                let fault = *watching.borrow_and_update();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = carry(client, &upstream, fault) => {}
                        _ = watching.changed() => {}
                    }
                });
            }
        });
        FaultyLink { url, fault }
    }

    async fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
        // Let user-chat's pool see its connections closed.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn carry(mut client: TcpStream, upstream: &str, fault: Fault) {
    match fault {
        Fault::Hang => {
            let _ = tokio::io::copy(&mut client, &mut tokio::io::sink()).await;
            std::future::pending::<()>().await;
        }
        Fault::None => {
            if let Ok(mut server) = TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        }
        Fault::LoseAnswers => {
            let Ok(server) = TcpStream::connect(upstream).await else {
                return;
            };
            let (mut from_client, _to_client) = client.into_split();
            let (mut from_server, mut to_server) = server.into_split();
            let forward =
                tokio::spawn(
                    async move { tokio::io::copy(&mut from_client, &mut to_server).await },
                );
            let mut first = [0u8; 1];
            let _ = from_server.read(&mut first).await; // the request was handled
            forward.abort();
        }
    }
}

/// The microservice deployment with user-chat behind faulty links, each process restartable on
/// its address.
struct Deployment {
    api: Api,
    chat: Server,
    chat_args: Vec<String>,
    user_chat: Server,
    user_chat_args: Vec<String>,
    to_chat: FaultyLink,
    to_payment: FaultyLink,
    _others: Vec<Server>,
    _broker: msa_testkit::Broker,
}

async fn microservices() -> Option<Deployment> {
    let database = msa_testkit::postgres_database().await?;
    let broker = msa_testkit::Broker::start().await?;
    let kafka = kafka_flags(&broker);
    let url = |port: u16| format!("http://127.0.0.1:{port}");
    let (user, chat, payment, user_chat) = (
        url(free_port()),
        url(free_port()),
        url(free_port()),
        url(free_port()),
    );
    let to_chat = FaultyLink::to(&chat).await;
    let to_payment = FaultyLink::to(&payment).await;
    let args = |name: &str, base: &str, flags: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = vec![
            "serve".into(),
            name.into(),
            "--listen".into(),
            base.trim_start_matches("http://").into(),
            "--database-url".into(),
            database.clone(),
        ];
        args.extend(kafka.iter().cloned());
        args.extend(flags.iter().map(|f| f.to_string()));
        args
    };
    let start =
        |args: &[String]| spawn_serving(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let user_server = start(&args("user", &user, &HASH_FLAGS));
    let chat_args = args("chat", &chat, &["--user", &user, "--user-chat", &user_chat]);
    let chat_server = start(&chat_args);
    let payment_server = start(&args(
        "payment",
        &payment,
        &["--user", &user, "--user-chat", &user_chat],
    ));
    let user_chat_args = args(
        "user-chat",
        &user_chat,
        &[
            "--user",
            &user,
            "--chat",
            &to_chat.url,
            "--payment",
            &to_payment.url,
            "--send-recovery-after",
            RECOVERY_AFTER,
        ],
    );
    let user_chat_server = start(&user_chat_args);
    let gateway = spawn_serving(&[
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--user",
        &user,
        "--chat",
        &chat,
        "--payment",
        &payment,
        "--user-chat",
        &user_chat,
    ]);
    Some(Deployment {
        api: Api::at(gateway),
        chat: chat_server,
        chat_args,
        user_chat: user_chat_server,
        user_chat_args,
        to_chat,
        to_payment,
        _others: vec![user_server, payment_server],
        _broker: broker,
    })
}

fn restart(args: &[String]) -> Server {
    spawn_serving(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

#[tokio::test(flavor = "multi_thread")]
async fn microservices_settle_every_half_done_send() {
    let Some(mut deployment) = microservices().await else {
        eprintln!("skipped: PostgreSQL or tansu missing");
        return;
    };
    let api = &deployment.api;
    let (ada, _bob) = (api.person("Ada").await, api.person("Bob").await);
    let room = open_direct(api, &ada, "Bob").await;
    let (status, first) = api.send(&ada, &room, "first", "body first").await;
    assert_eq!(status, 201, "{first}");

    // Refused by chat (a reply to nothing): refunded at once by the send, and once only.
    let reply =
        json!({"txn_id": "refused", "body": "body refused", "reply_to": uuid::Uuid::now_v7()});
    let (status, refused) = api
        .post(&ada, &format!("/v1/rooms/{room}/messages"), reply)
        .await;
    assert_eq!(status, 422, "{refused}");

    // Chat's answer to the post is lost: the message exists, the client got a 503. The recovery
    // leaves the spend alone, and the client's retry answers the first message.
    deployment.to_chat.set(Fault::LoseAnswers).await;
    let (status, lost) = api
        .send(&ada, &room, "answer-lost", "body answer-lost")
        .await;
    assert_eq!(status, 503, "{lost}");
    deployment.to_chat.set(Fault::None).await;

    // Payment's answer to the spend is lost: the credit is spent, nothing posted.
    deployment.to_payment.set(Fault::LoseAnswers).await;
    let (status, lost) = api.send(&ada, &room, "spend-lost", "body spend-lost").await;
    assert_eq!(status, 503, "{lost}");
    deployment.to_payment.set(Fault::None).await;

    // Chat is killed: two sends fail after their spend; chat comes back; one is retried.
    deployment.chat.process.kill();
    let (down_retried, down_abandoned) = tokio::join!(
        api.send(&ada, &room, "down-retried", "body down-retried"),
        api.send(&ada, &room, "down-abandoned", "body down-abandoned"),
    );
    assert!(down_retried.0 >= 500, "{down_retried:?}");
    assert!(down_abandoned.0 >= 500, "{down_abandoned:?}");
    deployment.chat = restart(&deployment.chat_args);
    let (status, posted) = api
        .send(&ada, &room, "down-retried", "body down-retried")
        .await;
    assert_eq!(status, 201, "{posted}");

    // user-chat is killed while its post hangs (the credit spent, no post); it comes back.
    deployment.to_chat.set(Fault::Hang).await;
    let sending = {
        let (client, base, token, room) = (
            api.client.clone(),
            api.server.base.clone(),
            ada.token.clone(),
            room.clone(),
        );
        tokio::spawn(async move {
            client
                .post(format!("{base}/v1/rooms/{room}/messages"))
                .bearer_auth(token)
                .json(&json!({"txn_id": "cut", "body": "body cut"}))
                .send()
                .await
                .map(|answer| answer.status().as_u16())
        })
    };
    within(Duration::from_secs(10), "the credit spent", || async {
        spend_entries(api, &ada, &room, "cut").await == (1, 0)
    })
    .await;
    deployment.user_chat.process.kill();
    let answer = sending.await.unwrap();
    assert!(
        answer.as_ref().map_or(true, |status| *status >= 500),
        "{answer:?}"
    );
    deployment.to_chat.set(Fault::None).await;
    deployment.user_chat = restart(&deployment.user_chat_args);

    // Without any client action: every spend without a message refunded once...
    for txn_id in ["spend-lost", "down-abandoned", "cut"] {
        refunded_once(api, &ada, &room, txn_id).await;
    }
    // The refused one stays refunded once, whatever the recovery did since.
    assert_eq!(spend_entries(api, &ada, &room, "refused").await, (1, 1));
    // ...and every one with a message left spent, its message there once.
    for txn_id in ["first", "answer-lost", "down-retried"] {
        completed_once(api, &ada, &room, txn_id).await;
    }
    let (status, again) = api
        .send(&ada, &room, "answer-lost", "body answer-lost")
        .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(spend_entries(api, &ada, &room, "answer-lost").await, (1, 0));
    assert_eq!(messages_with(api, &ada, &room, "body answer-lost").await, 1);
}
