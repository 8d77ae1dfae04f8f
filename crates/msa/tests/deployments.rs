//! One end-to-end scenario on both deployments, every part a real process on loopback:
//! (a) the single server on SQLite with the in-process bus; (b) the gateway in front of the four
//! services on PostgreSQL and a Kafka-protocol broker (tansu).
//!
//! Two people sign up and log in; one opens a direct chat by nickname; they exchange messages and
//! see them live on their WebSockets; edit, delete, react; unread counts and read markers; the
//! sender runs out of free messages (402), buys credits through the sandbox provider and goes on;
//! a refund; a profile change shows in the other's member list; a service is killed and
//! restarted mid-scenario and nothing is lost.

mod common;

use std::time::{Duration, Instant};

use common::api::{Api, Person};
use common::{free_port, kafka_flags, live, spawn_serving, Server};
use reqwest::Method;
use serde_json::{json, Value};

/// Something the scenario can kill (SIGKILL) and start again on the same address.
struct Restartable {
    args: Vec<String>,
}

impl Restartable {
    fn start(&self) -> Server {
        spawn_serving(&self.args.iter().map(String::as_str).collect::<Vec<_>>())
    }
}

/// Retries `attempt` while the answer is a 5xx (a service coming back), for up to 60 s.
async fn through_outage<F, Fut>(mut attempt: F) -> (u16, Value)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (u16, Value)>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = attempt().await;
        if answer.0 < 500 || Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (up to 30 s: events cross a broker in one deployment) until `check` holds.
async fn soon<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    common::api::within(Duration::from_secs(30), what, check).await
}

async fn send(api: &Api, who: &Person, room: &str, txn_id: &str, body: &str) -> (u16, Value) {
    let path = format!("/v1/rooms/{room}/messages");
    let body = json!({"txn_id": txn_id, "body": body});
    api.call(Method::POST, &path, &who.token, Some(body)).await
}

async fn history(api: &Api, who: &Person, room: &str) -> Vec<Value> {
    let path = format!("/v1/rooms/{room}/messages?limit=100");
    let (_, page) = api.call(Method::GET, &path, &who.token, None).await;
    page["items"].as_array().cloned().unwrap_or_default()
}

/// The unread count of `room` in `who`'s inbox (-1 while the room is not there).
async fn unread(api: &Api, who: &Person, room: &str) -> i64 {
    let (_, inbox) = api.call(Method::GET, "/v1/inbox", &who.token, None).await;
    inbox["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["id"] == room).cloned())
        .map(|item| item["unread"].as_i64().unwrap_or(-1))
        .unwrap_or(-1)
}

async fn balance(api: &Api, who: &Person) -> Option<i64> {
    api.call(Method::GET, "/v1/wallet", &who.token, None)
        .await
        .1["balance"]
        .as_i64()
}

/// Runs the scenario; returns what its people typed or were given that no log line may hold.
async fn scenario(api: &mut Api, restart: &mut dyn FnMut(&mut Api)) -> Vec<String> {
    let (ada, bob) = (api.person("Ada").await, api.person("Bob").await);

    // Ada opens a direct chat with Bob by his nickname; both watch the stream.
    let (status, room) = api
        .call(
            Method::POST,
            "/v1/direct-chats",
            &ada.token,
            Some(json!({"nickname": "bob"})),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let room = room["id"].as_str().unwrap().to_owned();
    let mut ada_stream = live::connect(api, &ada, None, false).await;
    let mut bob_stream = live::connect(api, &bob, None, true).await;

    let (status, hello) = send(api, &ada, &room, "a-1", "hello Bob").await;
    assert_eq!(status, 201, "{hello}");
    let (status, _) = send(api, &bob, &room, "b-1", "hello Ada").await;
    assert_eq!(status, 201);
    let bodies = |frames: Vec<Value>| -> Vec<String> {
        frames
            .iter()
            .map(|f| f["data"]["body"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(
        bodies(live::messages(&mut bob_stream, 2).await),
        ["hello Bob", "hello Ada"]
    );
    assert_eq!(
        bodies(live::messages(&mut ada_stream, 2).await),
        ["hello Bob", "hello Ada"]
    );

    // Edit, react, delete. (Commands on a message read it from history, which has it a moment
    // after the send.)
    let message = format!(
        "/v1/rooms/{room}/messages/{}",
        hello["id"].as_str().unwrap()
    );
    soon("the first message in history", || async {
        history(api, &bob, &room)
            .await
            .iter()
            .any(|m| m["id"] == hello["id"])
    })
    .await;
    let (status, _) = api
        .call(
            Method::PATCH,
            &message,
            &ada.token,
            Some(json!({"body": "hello, Bob"})),
        )
        .await;
    assert_eq!(status, 204);
    let reaction = format!("{message}/reactions/:tada:");
    assert_eq!(
        api.call(Method::PUT, &reaction, &bob.token, None).await.0,
        204
    );
    soon("the edit and the reaction in history", || async {
        let items = history(api, &bob, &room).await;
        items
            .iter()
            .any(|m| m["body"] == "hello, Bob" && m["reactions"][0]["emoji"] == ":tada:")
    })
    .await;
    let (status, bye) = send(api, &ada, &room, "a-2", "a message to take back").await;
    assert_eq!(status, 201);
    let taken_back = format!("/v1/rooms/{room}/messages/{}", bye["id"].as_str().unwrap());
    soon("the message to take back in history", || async {
        history(api, &ada, &room)
            .await
            .iter()
            .any(|m| m["id"] == bye["id"])
    })
    .await;
    // Bob's reply moved his read marker past "hello Bob": only this one is unread.
    soon("Bob's one unread message", || async {
        unread(api, &bob, &room).await == 1
    })
    .await;
    assert_eq!(
        api.call(Method::DELETE, &taken_back, &ada.token, None)
            .await
            .0,
        204
    );

    // Unread counts and read markers: a deleted message is not unread.
    soon("nothing unread once the message is deleted", || async {
        unread(api, &bob, &room).await == 0
    })
    .await;
    let read = format!("/v1/rooms/{room}/read");
    let last = bye["seq"].as_i64().unwrap();
    let (status, _) = api
        .call(Method::POST, &read, &bob.token, Some(json!({"seq": last})))
        .await;
    assert_eq!(status, 204);
    soon("Bob has read everything", || async {
        unread(api, &bob, &room).await == 0
    })
    .await;

    // Ada's free messages (2 a day here) are gone: 402; she buys credits and goes on.
    let (status, problem) = send(api, &ada, &room, "a-3", "one more?").await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (402, Some("urn:msa:problem:out-of-credits")),
        "{problem}"
    );
    let (status, payment) = api.request_payment(&ada, "pay-1", "credits-100").await;
    assert_eq!(status, 201, "{payment}");
    let payment_id = payment["id"].as_str().unwrap().to_owned();
    let confirm = format!("/v1/payments/{payment_id}/confirm");
    let (status, approved) = api
        .call(
            Method::POST,
            &confirm,
            &ada.token,
            Some(json!({"payment_key": "approve-e2e", "amount": 1000})),
        )
        .await;
    assert_eq!(
        (status, approved["status"].as_str()),
        (200, Some("approved")),
        "{approved}"
    );
    soon("100 credits in Ada's wallet", || async {
        balance(api, &ada).await == Some(100)
    })
    .await;
    assert_eq!(send(api, &ada, &room, "a-3", "one more?").await.0, 201);

    // A refund of a tenth takes back a tenth of the credits.
    let refunds = format!("/v1/payments/{payment_id}/refunds");
    let (status, refund) = api
        .call(
            Method::POST,
            &refunds,
            &ada.token,
            Some(json!({"amount": 100, "reason": "too many"})),
        )
        .await;
    assert_eq!(status, 201, "{refund}");
    soon("the refund's credits taken back", || async {
        balance(api, &ada).await == Some(89)
    })
    .await;

    // Bob's new nickname shows in Ada's member list.
    let (status, _) = api
        .call(
            Method::PATCH,
            "/v1/users/me",
            &bob.token,
            Some(json!({"nickname": "Robert"})),
        )
        .await;
    assert_eq!(status, 200);
    let members = format!("/v1/rooms/{room}/members");
    soon("Robert in Ada's member list", || async {
        let (_, list) = api.call(Method::GET, &members, &ada.token, None).await;
        list["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|m| m["nickname"] == "Robert"))
    })
    .await;

    // A service dies mid-conversation and comes back: nothing is lost.
    restart(api);
    let (status, _) = through_outage(|| send(api, &ada, &room, "a-4", "still there?")).await;
    assert_eq!(status, 201);
    let (status, _) = through_outage(|| send(api, &bob, &room, "b-2", "yes")).await;
    assert_eq!(status, 201);
    soon("every message in history after the restart", || async {
        let items = history(api, &ada, &room).await;
        let mut bodies: Vec<String> = items
            .iter()
            .map(|m| m["body"].as_str().unwrap_or_default().to_owned())
            .collect();
        bodies.sort();
        bodies
            == [
                "",
                "hello Ada",
                "hello, Bob",
                "one more?",
                "still there?",
                "yes",
            ]
    })
    .await;
    assert_eq!(balance(api, &ada).await, Some(88));
    let mut secrets: Vec<String> = [
        "correct horse battery",
        "ada@example.com",
        "bob@example.com",
        "hello Bob",
        "hello Ada",
        "hello, Bob",
        "a message to take back",
        "one more?",
        "still there?",
        "approve-e2e",
    ]
    .map(String::from)
    .to_vec();
    secrets.extend([ada.token, bob.token]);
    secrets
}

/// The processes' logs (JSON lines) hold no password, token, email address or message body,
/// and a line written inside a request names it: request id, correlation id, trace and span.
fn logs_keep_no_secret(logs: &[String], secrets: &[String]) {
    let mut answered = 0;
    for line in logs.iter().flat_map(|log| log.lines()) {
        for secret in secrets {
            assert!(
                !line.contains(secret.as_str()),
                "a log line holds {secret:?}: {line}"
            );
        }
        let Ok(entry) = serde_json::from_str::<Value>(line) else {
            panic!("not a JSON log line: {line}");
        };
        if entry["message"] == "answered" {
            answered += 1;
            for field in ["request_id", "correlation_id", "trace_id", "span_id"] {
                assert!(entry["span"][field].is_string(), "no {field} in {line}");
            }
        }
    }
    assert!(answered > 0, "no request was logged");
}

/// What the scenario's processes log: JSON, and each request's answer (at debug).
const LOGGING: [&str; 2] = ["--log-format", "json"];

fn log_requests() {
    std::env::set_var("RUST_LOG", "info,sqlx=warn,msa_http::telemetry=debug");
}

const HASH_FLAGS: [&str; 6] = [
    "--password-hash-memory-kib",
    "64",
    "--password-hash-iterations",
    "1",
    // Tests sign many people up from one address.
    "--password-attempts-per-minute",
    "100000",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scenario_on_the_single_server() {
    let data = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = ["serve", "--listen", &format!("127.0.0.1:{}", free_port())]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(
        [
            "--data-dir",
            data.path().to_str().unwrap(),
            "--free-messages-per-day",
            "2",
        ]
        .map(String::from),
    );
    args.extend(HASH_FLAGS.map(String::from));
    args.extend(LOGGING.map(String::from));
    log_requests();
    let server = Restartable { args };
    let mut api = Api::at(server.start());
    let mut logs = Vec::new();
    let secrets = scenario(&mut api, &mut |api: &mut Api| {
        api.server.process.kill();
        logs.push(api.server.process.log());
        api.server = server.start();
    })
    .await;
    logs.push(api.server.process.log());
    logs_keep_no_secret(&logs, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_scenario_on_microservices_behind_the_gateway() {
    let Some(database) = msa_testkit::postgres_database().await else {
        return;
    };
    let Some(broker) = msa_testkit::Broker::start().await else {
        return;
    };
    let kafka = kafka_flags(&broker);
    let address = |port: u16| format!("127.0.0.1:{port}");
    let url = |port: u16| format!("http://127.0.0.1:{port}");
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let (user, chat, payment, user_chat) = (ports[0], ports[1], ports[2], ports[3]);
    let service = |name: &str, port: u16, extra: &[String]| {
        let mut args: Vec<String> = vec![
            "serve".into(),
            name.into(),
            "--listen".into(),
            address(port),
        ];
        args.extend(["--database-url".into(), database.clone()]);
        args.extend(kafka.iter().cloned());
        args.extend(extra.iter().cloned());
        args.extend(LOGGING.map(String::from));
        Restartable { args }
    };
    let to = |flag: &str, port: u16| vec![flag.to_owned(), url(port)];
    let user_service = service("user", user, &HASH_FLAGS.map(String::from));
    let mut chat_flags = to("--user", user);
    chat_flags.extend(to("--user-chat", user_chat));
    let chat_service = service("chat", chat, &chat_flags);
    let mut payment_flags = to("--user", user);
    payment_flags.extend(to("--user-chat", user_chat));
    payment_flags.extend(["--free-messages-per-day".into(), "2".into()]);
    let payment_service = service("payment", payment, &payment_flags);
    let mut user_chat_flags = to("--user", user);
    user_chat_flags.extend(to("--chat", chat));
    user_chat_flags.extend(to("--payment", payment));
    let user_chat_service = service("user-chat", user_chat, &user_chat_flags);
    log_requests();
    let user_process = user_service.start();
    let mut chat_process = Some(chat_service.start());
    let payment_process = payment_service.start();
    let user_chat_process = user_chat_service.start();
    let gateway = spawn_serving(&[
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--user",
        &url(user),
        "--chat",
        &url(chat),
        "--payment",
        &url(payment),
        "--user-chat",
        &url(user_chat),
        LOGGING[0],
        LOGGING[1],
    ]);
    let mut api = Api::at(gateway);
    let (status, ready) = through_outage(|| async {
        let answer = reqwest::get(format!("{}/readyz", api.server.base))
            .await
            .unwrap();
        (answer.status().as_u16(), answer.json().await.unwrap())
    })
    .await;
    assert_eq!(status, 200, "{ready}");
    let mut logs = Vec::new();
    let secrets = scenario(&mut api, &mut |_api: &mut Api| {
        if let Some(mut chat) = chat_process.take() {
            chat.process.kill();
            logs.push(chat.process.log());
        }
        chat_process = Some(chat_service.start());
    })
    .await;
    for process in [
        &user_process,
        &payment_process,
        &user_chat_process,
        &api.server,
    ]
    .into_iter()
    .chain(chat_process.as_ref())
    {
        logs.push(process.process.log());
    }
    logs_keep_no_secret(&logs, &secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_benchmark_reports_figures_beside_its_baseline() {
    let data = tempfile::tempdir().unwrap();
    let mut args = vec!["--data-dir", data.path().to_str().unwrap()];
    args.extend(HASH_FLAGS);
    // The bench is one client address sending as fast as it is answered: the single server's
    // own rate limits would refuse most of it (docs/benchmarks.md: how to start a server to measure).
    args.extend([
        "--rate-limit-per-address",
        "1000000",
        "--rate-limit-per-user",
        "1000000",
    ]);
    let server = common::serve(&args);
    let output = common::msa()
        .args([
            "bench",
            "chat",
            "--target",
            &server.base,
            "--users",
            "4",
            "--room-size",
            "2",
        ])
        .args(["--duration", "2s", "--json"])
        .output()
        .unwrap();
    common::succeeded(&output);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    // While sending, each second's figures go to stderr as they come.
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first_second = stderr
        .lines()
        .find_map(|line| line.trim_start().strip_prefix("1 s "))
        .unwrap_or_else(|| panic!("no line for the first second in:\n{stderr}"));
    let sent: u64 = first_second
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of sends in `{first_second}`"));
    assert!(sent > 0, "{stderr}");
    assert!(report["sent"].as_u64().unwrap() > 0, "{report}");
    assert!(report["delivered"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["failed_sends"], 0, "{report}");
    assert!(
        report["baseline_requests_per_sec"].as_f64().unwrap() > 0.0,
        "{report}"
    );
    assert!(
        report["delivery_p99_ms"].as_f64().unwrap() > 0.0,
        "{report}"
    );
}
