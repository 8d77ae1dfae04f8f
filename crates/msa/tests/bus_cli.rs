//! The event bus as an operator meets it: `msa relay` killed and restarted, `msa serve` while
//! Kafka is away, `msa dlq`, `msa bench bus`. Real broker (tansu), processes on random ports.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{kafka_flags, msa, serve, Running};
use msa_kafka::{ensure_topics, KafkaDeadLetters, KafkaPublisher, KafkaSubscription};
use msa_kernel::bus::{events_topic, DeadLetter, DeadLetters, Delivery, Subscription};
use msa_kernel::consumer::{Consumer, RetryPolicy};
use msa_kernel::repository::encode;
use msa_kernel::{EventMetadata, EventStore, ReadModelStore, RecordedEvent, StreamId};
use msa_sql::SqlReadModelStore;
use msa_sqlite::SqliteEventStore;
use msa_testkit::bus::{effects, keep_appending, wait_for_effects, RecordingHandler};
use msa_testkit::tally::TallyEvent;
use msa_testkit::{Broker, TestStores};
use serde_json::Value;
use tokio::sync::watch;

fn relay(data: &std::path::Path, broker: &Broker) -> Running {
    let mut args = vec![
        "relay",
        "--context",
        "chat",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    let kafka = kafka_flags(broker);
    args.extend(kafka.iter().map(String::as_str));
    Running::spawn(&args, |_| {})
}

async fn chat_store(data: &std::path::Path) -> Arc<dyn EventStore> {
    Arc::new(
        SqliteEventStore::open(&data.join("chat.events.sqlite"))
            .await
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_process_killed_mid_run_and_restarted_loses_nothing() {
    let Some(broker) = Broker::start().await else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let events = chat_store(data.path()).await;
    let topic = events_topic("chat");
    ensure_topics(&broker.kafka(), std::slice::from_ref(&topic), 4)
        .await
        .unwrap();

    // A consumer of chat's events, with its own query database.
    let consumer_stores = TestStores::sqlite(Default::default()).await;
    let db = consumer_stores.read_models.clone();
    RecordingHandler::create_table(&db).await;
    let handler = Arc::new(RecordingHandler::new("probe.killed"));
    let (stop, stopped) = watch::channel(false);
    let mut subscription =
        KafkaSubscription::new(&broker.kafka(), &handler.name, &[&topic]).unwrap();
    let consumer = Consumer::new(db.clone(), db.clone(), RetryPolicy::default());
    let running = handler.clone();
    tokio::spawn(async move { consumer.run(&*running, &mut subscription, stopped).await });

    let mut first = relay(data.path(), &broker);
    let load = keep_appending(events.clone(), "kill", 30, 3000, Duration::from_millis(2));
    // Kill it once it has published part of the load.
    let deadline = Instant::now() + Duration::from_secs(60);
    while effects(&db, &handler.name).await.per_event.len() < 500 {
        assert!(
            Instant::now() < deadline,
            "the first relay published nothing"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill();
    let handled_at_kill = effects(&db, &handler.name).await.per_event.len();
    let second = relay(data.path(), &broker);

    tokio::time::timeout(Duration::from_secs(90), load)
        .await
        .expect("the load finishes")
        .unwrap();
    wait_for_effects(&db, &handler.name, 3000, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(handled_at_kill < 3000, "the kill came after the load");
    effects(&db, &handler.name)
        .await
        .assert_each_once_in_order(&handler.name, 3000);
    // The restarted relay waited for the dead one's lease, then took over.
    assert!(second.log().contains("relay is active"), "{}", second.log());
    stop.send(true).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_kafka_is_away_the_server_serves_says_so_once_and_events_flow_when_it_returns() {
    let Some(broker) = Broker::start().await else {
        return;
    };
    broker.cut();
    let data = tempfile::tempdir().unwrap();
    let mut args = vec![
        "--data-dir",
        data.path().to_str().unwrap(),
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    let kafka = kafka_flags(&broker);
    args.extend(kafka.iter().map(String::as_str));
    let server = serve(&args);

    // Ready (commands are accepted), and says the bus is away.
    let readiness = || async {
        let answer = reqwest::get(format!("{}/readyz", server.base))
            .await
            .unwrap();
        let status = answer.status().as_u16();
        (status, answer.json::<Value>().await.unwrap())
    };
    let (status, ready) = readiness().await;
    assert_eq!(
        (status, ready["bus"].as_str()),
        (200, Some("unreachable")),
        "{ready}"
    );
    let events = chat_store(data.path()).await;
    let metadata = EventMetadata::new_conversation(None);
    let stream = StreamId::new("tally.tally", "waiting");
    let event = encode(&TallyEvent::Opened { name: "t".into() }, &metadata).unwrap();
    let appended = events.append(&stream, 0, vec![event], None).await.unwrap();
    server
        .process
        .wait_for_log("cannot create the topics", 3, Duration::from_secs(30));
    // Retries go on every few seconds, quietly.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let log = server.process.log();
    assert_eq!(
        log.matches("cannot create the topics").count(),
        3,
        "once per context:\n{log}"
    );

    broker.restore().await;
    server.process.wait_for_log(
        "Kafka reachable; topics created",
        3,
        Duration::from_secs(30),
    );
    // The probe's client reconnects with librdkafka's backoff: give it a few seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, ready) = readiness().await;
        if (status, ready["bus"].as_str()) == (200, Some("ok")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ready}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut subscription =
        KafkaSubscription::new(&broker.kafka(), "probe.returned", &["chat.events"]).unwrap();
    let delivery = tokio::time::timeout(Duration::from_secs(30), subscription.next())
        .await
        .expect("the waiting event arrives once Kafka is back")
        .unwrap();
    assert_eq!(delivery.event.event_id, appended[0].event_id);
    let log = server.process.log();
    assert_eq!(
        log.matches("cannot create the topics").count(),
        3,
        "no flood:\n{log}"
    );

    // Metrics are not on the API's address, only on their own.
    let on_api = reqwest::get(format!("{}/metrics", server.base))
        .await
        .unwrap();
    assert_eq!(on_api.status(), 404);
    let metrics_url = server
        .metrics
        .clone()
        .expect("the metrics address is printed");
    let metrics = reqwest::get(metrics_url).await.unwrap();
    assert_eq!(metrics.status(), 200);
    let metrics = metrics.text().await.unwrap();
    assert!(
        metrics.contains("msa_chat_relay_events_published_total 1"),
        "{metrics}"
    );
}

fn letter_for(consumer: &str, event: RecordedEvent, topic: &str) -> DeadLetter {
    DeadLetter {
        consumer: consumer.into(),
        delivery: Delivery {
            offset: event.position.position,
            event,
            topic: topic.into(),
            partition: 0,
        },
        error: "credit wallet not found".into(),
        attempts: 5,
        dead_at: chrono::Utc::now(),
    }
}

fn dlq(args: &[&str]) -> (bool, String, String) {
    let output = msa().arg("dlq").args(args).output().unwrap();
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// A data directory with every context's stores migrated by `msa migrate`.
fn migrated_data_dir() -> tempfile::TempDir {
    let data = tempfile::tempdir().unwrap();
    let output = msa()
        .args(["migrate", "--data-dir", data.path().to_str().unwrap()])
        .output()
        .unwrap();
    common::succeeded(&output);
    data
}

#[tokio::test]
async fn dlq_list_shows_open_letters_and_hides_settled_ones() {
    let data = migrated_data_dir();
    let dir = data.path().to_str().unwrap();
    let user_events = SqliteEventStore::open(&data.path().join("user.events.sqlite"))
        .await
        .unwrap();
    let metadata = EventMetadata::new_conversation(None);
    let event = encode(&TallyEvent::Opened { name: "t".into() }, &metadata).unwrap();
    let recorded = user_events
        .append(&StreamId::new("tally.tally", "x"), 0, vec![event], None)
        .await
        .unwrap();
    let chat = SqlReadModelStore::connect(&format!(
        "sqlite://{}",
        data.path().join("chat.query.sqlite").display()
    ))
    .await
    .unwrap();
    chat.send(&letter_for(
        "chat.greeter",
        recorded[0].clone(),
        "user.events",
    ))
    .await
    .unwrap();

    let (ok, out, err) = dlq(&["list", "--data-dir", dir]);
    assert!(ok, "{err}");
    assert!(
        out.contains("chat.greeter") && out.contains("open") && out.contains("tally.Opened"),
        "{out}"
    );
    assert!(out.contains("credit wallet not found"), "{out}");
    let (_, out, _) = dlq(&["list", "--data-dir", dir, "--json"]);
    let line: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(line["status"], "open");
    assert_eq!(line["event"]["event_id"], recorded[0].event_id.to_string());

    // Once the consumer's inbox has the event (a replay handled it), the letter is settled.
    let mut tx = chat.begin().await.unwrap();
    assert!(chat
        .record_handled(&mut tx, "chat.greeter", recorded[0].event_id)
        .await
        .unwrap());
    chat.commit(tx).await.unwrap();
    let (_, out, _) = dlq(&["list", "--data-dir", dir]);
    assert!(out.trim().is_empty(), "{out}");
    let (_, out, _) = dlq(&["list", "--data-dir", dir, "--all"]);
    assert!(out.contains("settled"), "{out}");

    let (ok, _, err) = dlq(&["replay", "--data-dir", dir, "--consumer", "chat.nobody"]);
    assert!(!ok);
    // (A bare data directory gets a master key first, said in a warning above the error.)
    assert!(
        err.lines().any(|line| line.starts_with(
            "error: MSA_DLQ_CONSUMER (--consumer): no consumer is named `chat.nobody`"
        )),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_list_reads_the_kafka_dead_letter_topics() {
    let Some(broker) = Broker::start().await else {
        return;
    };
    let data = migrated_data_dir();
    let dir = data.path().to_str().unwrap();
    ensure_topics(
        &broker.kafka(),
        &["payment.events".into(), "payment.events.dlq".into()],
        2,
    )
    .await
    .unwrap();
    let payment = SqliteEventStore::open(&data.path().join("payment.events.sqlite"))
        .await
        .unwrap();
    let event = encode(
        &TallyEvent::Opened { name: "t".into() },
        &EventMetadata::new_conversation(None),
    )
    .unwrap();
    let recorded = payment
        .append(&StreamId::new("tally.tally", "y"), 0, vec![event], None)
        .await
        .unwrap();
    let dead_letters = KafkaDeadLetters::new(
        KafkaPublisher::new(&broker.kafka(), Duration::from_secs(10)).unwrap(),
    );
    dead_letters
        .send(&letter_for(
            "user.credits",
            recorded[0].clone(),
            "payment.events",
        ))
        .await
        .unwrap();

    let mut args = vec!["list", "--data-dir", dir];
    let kafka = kafka_flags(&broker);
    args.extend(kafka.iter().map(String::as_str));
    let args: Vec<String> = args.into_iter().map(String::from).collect();
    let (ok, out, err) = tokio::task::spawn_blocking(move || {
        dlq(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(
        out.contains("user.credits") && out.contains("open"),
        "{out}"
    );
    assert!(out.contains(&recorded[0].event_id.to_string()), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_benchmark_reports_figures_beside_its_baseline() {
    let Some(broker) = Broker::start().await else {
        return;
    };
    let mut args = vec![
        "bench",
        "bus",
        "--events",
        "1000",
        "--rate",
        "200",
        "--duration",
        "2s",
        "--json",
    ];
    let flags = kafka_flags(&broker);
    args.extend(flags.iter().map(String::as_str));
    let args: Vec<String> = args.into_iter().map(String::from).collect();
    let output = tokio::task::spawn_blocking(move || msa().args(&args).output().unwrap())
        .await
        .unwrap();
    common::succeeded(&output);
    let report: Value = serde_json::from_slice(&output.stdout).expect("one JSON object");
    for key in [
        "relay_events_per_sec",
        "baseline_produce_per_sec",
        "throughput_ratio",
        "end_to_end_p50_ms",
        "end_to_end_p99_ms",
        "baseline_p99_ms",
    ] {
        assert!(
            report[key].as_f64().is_some_and(|v| v > 0.0),
            "{key} in {report}"
        );
    }
    assert_eq!(report["end_to_end_delivered"], 400, "{report}");
    assert_eq!(report["baseline_delivered"], 400, "{report}");
}

/// Runs the SQL `statement` on the payment context's event store (SQLite) as an operator would.
async fn on_payment_events(data: &std::path::Path, statement: &str) {
    let store = SqliteEventStore::open(&data.join("payment.events.sqlite"))
        .await
        .unwrap();
    sqlx::query(statement)
        .execute(store.writer())
        .await
        .unwrap();
}

/// The wallet process manager cannot write one user's wallet (a trigger refuses it), so the
/// approval of that user's payment is retried, then dead-lettered; once the wallet accepts writes
/// again, `msa dlq replay` credits it, exactly once.
async fn a_poison_event_is_replayed_once_the_handler_accepts_it(bus_flags: &[String]) {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap().to_owned();
    let mut args = vec!["--data-dir", &dir];
    args.extend(bus_flags.iter().map(String::as_str));
    let api = common::api::Api::start(&args);
    let ada = api.person("Ada").await;
    on_payment_events(
        data.path(),
        &format!(
            "CREATE TRIGGER frozen_wallet BEFORE INSERT ON events
             WHEN NEW.stream_id = 'payment.wallet-{}'
             BEGIN SELECT RAISE(ABORT, 'wallet frozen by the test'); END",
            ada.id
        ),
    )
    .await;
    let (status, payment) = api.request_payment(&ada, "buy-1", "credits-100").await;
    assert_eq!(status, 201, "{payment}");
    let path = format!("/v1/payments/{}/confirm", payment["id"].as_str().unwrap());
    let body = serde_json::json!({"payment_key": "approve-1", "amount": 1000});
    let (status, _) = api
        .call(reqwest::Method::POST, &path, &ada.token, Some(body))
        .await;
    assert_eq!(status, 200);

    let mut list = vec!["list", "--data-dir", &dir];
    list.extend(bus_flags.iter().map(String::as_str));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, out, _) = dlq(&list);
        if out.contains("payment.wallet-credits") && out.contains("wallet frozen by the test") {
            assert!(
                out.contains("open") && out.contains("payment.PaymentApproved"),
                "{out}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no dead letter within 60 s: {out}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let balance = || async {
        api.call(reqwest::Method::GET, "/v1/wallet", &ada.token, None)
            .await
            .1["balance"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(balance().await, 0);

    let mut replay = vec![
        "replay",
        "--data-dir",
        &dir,
        "--consumer",
        "payment.wallet-credits",
    ];
    replay.extend(bus_flags.iter().map(String::as_str));
    let (ok, out, _) = dlq(&replay);
    assert!(!ok && out.contains("still failing"), "{out}");
    on_payment_events(data.path(), "DROP TRIGGER frozen_wallet").await;
    let (ok, out, err) = dlq(&replay);
    assert!(ok, "{out}{err}");
    assert!(out.contains("handled payment.PaymentApproved"), "{out}");
    assert_eq!(balance().await, 100);
    // Settled: replaying again handles nothing, and the list shows nothing open.
    let (ok, out, err) = dlq(&replay);
    assert!(ok && out.trim().is_empty(), "{out}{err}");
    assert!(err.contains("0 dead letters handled"), "{err}");
    let (_, out, _) = dlq(&list);
    assert!(out.trim().is_empty(), "{out}");
    assert_eq!(balance().await, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_on_the_in_process_bus_is_replayed_by_msa_dlq() {
    a_poison_event_is_replayed_once_the_handler_accepts_it(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_on_kafka_lands_in_the_dlq_topic_and_is_replayed_by_msa_dlq() {
    let Some(broker) = Broker::start().await else {
        return;
    };
    a_poison_event_is_replayed_once_the_handler_accepts_it(&kafka_flags(&broker)).await;
}
