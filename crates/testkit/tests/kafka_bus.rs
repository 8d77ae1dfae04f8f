//! Failure scenarios of the Kafka bus against a real broker (tansu). Every wait has a deadline.

use std::sync::Arc;
use std::time::{Duration, Instant};

use msa_kafka::{ensure_topics, KafkaPublisher, KafkaSubscription};
use msa_kernel::bus::{EventPublisher, Subscription};
use msa_kernel::consumer::{Consumer, RetryPolicy};
use msa_kernel::relay::{Relay, RelaySettings};
use msa_kernel::repository::encode;
use msa_kernel::ReadModelStore;
use msa_kernel::{EventMetadata, LogPosition, StreamId};
use msa_testkit::broker::Broker;
use msa_testkit::bus::{
    effects, keep_appending, wait_for_effects, BusUnderTest, RecordingHandler, Transport, CONTEXT,
};
use msa_testkit::tally::TallyEvent;
use tokio::sync::watch;

/// Each scenario's own waits have deadlines; this bounds what they cannot reach (see `within`).
const SCENARIO_LIMIT: Duration = Duration::from_secs(420);

fn consumer_for(bus: &BusUnderTest) -> Consumer<msa_sql::SqlReadModelStore> {
    Consumer::new(
        bus.consumer_db.clone(),
        bus.dead_letters(),
        RetryPolicy::default(),
    )
}

fn run_member(bus: &BusUnderTest, handler: Arc<RecordingHandler>) -> watch::Sender<bool> {
    let (stop, stopped) = watch::channel(false);
    let consumer = consumer_for(bus);
    let mut subscription = bus.subscribe(&handler.name);
    tokio::spawn(async move { consumer.run(&*handler, &mut *subscription, stopped).await });
    stop
}

/// Waits for the load to finish and `consumer` to catch up, then checks its effects.
async fn all_handled_once_in_order(
    bus: &BusUnderTest,
    load: tokio::task::JoinHandle<()>,
    consumer: &str,
    total: usize,
) {
    tokio::time::timeout(Duration::from_secs(90), load)
        .await
        .expect("the load finishes")
        .unwrap();
    wait_for_effects(&bus.consumer_db, consumer, total, Duration::from_secs(120)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    effects(&bus.consumer_db, consumer)
        .await
        .assert_each_once_in_order(consumer, total);
}

#[test]
fn a_ten_second_broker_outage_under_load_loses_nothing() {
    msa_testkit::within(SCENARIO_LIMIT, async {
        msa_testkit::init_logs();
        let Some(bus) = BusUnderTest::kafka().await else {
            return;
        };
        let Transport::Kafka { broker, .. } = &bus.transport else {
            unreachable!()
        };
        RecordingHandler::create_table(&bus.consumer_db).await;
        let handler = Arc::new(RecordingHandler::new("tally.outage"));
        let stop = run_member(&bus, handler.clone());
        // ~15 s of load; the broker is unreachable for 10 s of it.
        let load = keep_appending(
            bus.source.events.clone(),
            "outage",
            20,
            3000,
            Duration::from_millis(5),
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        broker.cut();
        tokio::time::sleep(Duration::from_secs(10)).await;
        broker.restore().await;
        all_handled_once_in_order(&bus, load, &handler.name, 3000).await;
        stop.send(true).unwrap();
    });
}

#[test]
fn two_members_of_one_group_share_the_work_and_a_rebalance_loses_nothing() {
    msa_testkit::within(SCENARIO_LIMIT, async {
        msa_testkit::init_logs();
        let Some(bus) = BusUnderTest::kafka().await else {
            return;
        };
        RecordingHandler::create_table(&bus.consumer_db).await;
        // One handler instance, two members of its group: the effects' sequence spans both.
        let handler = Arc::new(RecordingHandler::new("tally.shared"));
        let first = run_member(&bus, handler.clone());
        let load = keep_appending(
            bus.source.events.clone(),
            "rebalance",
            40,
            4000,
            Duration::from_millis(2),
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        let second = run_member(&bus, handler.clone());
        tokio::time::sleep(Duration::from_secs(6)).await;
        // The first member leaves mid-run: its partitions move to the second.
        first.send(true).unwrap();
        all_handled_once_in_order(&bus, load, &handler.name, 4000).await;
        second.send(true).unwrap();
    });
}

#[test]
fn when_the_active_relay_dies_a_standby_takes_over_within_ten_seconds() {
    msa_testkit::within(SCENARIO_LIMIT, async {
        msa_testkit::init_logs();
        let Some(bus) = BusUnderTest::kafka().await else {
            return;
        };
        let kafka = bus.kafka_config().unwrap();
        // The bus's own relay is the active one; a second instance stands by.
        let standby = Relay::new(
            CONTEXT,
            bus.source.events.clone(),
            bus.source.read_models.clone(),
            Arc::new(KafkaPublisher::new(&kafka, Duration::from_secs(5)).unwrap()),
            RelaySettings::default(),
        );
        RecordingHandler::create_table(&bus.consumer_db).await;
        let handler = Arc::new(RecordingHandler::new("tally.failover"));
        let stop = run_member(&bus, handler.clone());
        let load = keep_appending(
            bus.source.events.clone(),
            "failover",
            10,
            2000,
            Duration::from_millis(5),
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(matches!(
            standby.step().await,
            Err(msa_kernel::relay::RelayError::NotLeader)
        ));

        // The active relay dies without a word: its lease is not released.
        let Transport::Kafka { stop_relay, .. } = &bus.transport else {
            unreachable!()
        };
        let died = Instant::now();
        stop_relay.send(true).unwrap();
        // (Stopping releases the lease; take it back for the dead relay, as if it had crashed.)
        take_lease_for_a_dead_relay(&bus).await;
        let (_keep, stopped) = watch::channel(false);
        let standby = Arc::new(standby);
        let running = standby.clone();
        tokio::spawn(async move { running.run(stopped).await });
        loop {
            let mut tx = bus.source.read_models.begin().await.unwrap();
            let before = bus
                .source
                .read_models
                .checkpoint(&mut tx, "relay.tally", 0)
                .await
                .unwrap();
            drop(tx);
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut tx = bus.source.read_models.begin().await.unwrap();
            let after = bus
                .source
                .read_models
                .checkpoint(&mut tx, "relay.tally", 0)
                .await
                .unwrap();
            if after > before {
                break;
            }
            assert!(
                died.elapsed() < Duration::from_secs(10),
                "no relay took over within 10 s"
            );
        }
        all_handled_once_in_order(&bus, load, &handler.name, 2000).await;
        stop.send(true).unwrap();
    });
}

/// Puts the relay lease in the hands of a holder that will never renew it.
async fn take_lease_for_a_dead_relay(bus: &BusUnderTest) {
    use msa_kernel::relay::Leases;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let leases = &bus.source.read_models;
    assert!(leases
        .acquire(
            "relay.tally",
            "dead-relay",
            RelaySettings::default().lease_ttl
        )
        .await
        .unwrap());
}

/// A service may start before the services whose topics it reads have made them (compose starts
/// them side by side): its consumer must receive from each topic within seconds of its creation.
/// librdkafka notices a subscribed topic that appears later only at its next metadata refresh,
/// five minutes by default; once the end-to-end test's user-chat waited that long for chat's
/// topic, which chat created a few seconds after user-chat had subscribed.
#[test]
fn a_consumer_that_subscribed_before_its_topics_existed_receives_once_they_do() {
    msa_testkit::within(SCENARIO_LIMIT, async {
        msa_testkit::init_logs();
        let Some(broker) = Broker::start().await else {
            return;
        };
        let kafka = broker.kafka();
        let topics = ["later.first", "later.second"];
        let mut subscription = KafkaSubscription::new(&kafka, "later", &topics).expect("subscribe");
        let publisher = KafkaPublisher::new(&kafka, Duration::from_secs(10)).unwrap();
        for (n, topic) in topics.into_iter().enumerate() {
            ensure_topics(&kafka, &[topic.to_owned()], 1)
                .await
                .expect("create the topic");
            let meta = EventMetadata::new_conversation(None);
            let event = encode(&TallyEvent::Added { amount: n as i64 }, &meta)
                .unwrap()
                .recorded(StreamId::new("tally", topic), 1, LogPosition::START);
            let published = publisher.publish(topic, std::slice::from_ref(&event)).await;
            assert_eq!(published.acknowledged, 1);
            // The group has no committed offsets, so the event comes once the topic is assigned.
            let deadline = Instant::now() + Duration::from_secs(30);
            let received = loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, subscription.next()).await {
                    Ok(Ok(delivery)) if delivery.event.event_id == event.event_id => {
                        break delivery
                    }
                    // The earlier topic's event again: nothing was committed, and the rebalance that
                    // assigns the new topic starts every partition over.
                    Ok(Ok(_)) => {}
                    Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
                    Err(_) => panic!("nothing from {topic} within 30 s of its creation"),
                }
            };
            assert_eq!(received.topic, topic);
        }
    });
}
