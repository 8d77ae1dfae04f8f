//! The consumer side of the bus: the same scenarios on the in-process bus and on Kafka (a real
//! broker, events published by the outbox relay). Every wait has a deadline.

use std::sync::Arc;
use std::time::Duration;

use msa_kernel::consumer::{Consumer, RetryPolicy};
use msa_kernel::repository::encode;
use msa_kernel::{EventMetadata, StreamId};
use msa_testkit::bus::{effects, wait_for_effects, BusUnderTest, RecordingHandler};
use msa_testkit::tally::TallyEvent;
use tokio::sync::watch;

const AGGREGATES: u64 = 100;
const EVENTS_PER_AGGREGATE: u64 = 100;
/// A scenario's own deadlines are shorter; this bounds what they cannot reach (see `within`).
const SCENARIO_LIMIT: Duration = Duration::from_secs(420);

fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        first_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
    }
}

/// Appends `per_aggregate` events to each of `aggregates` streams, interleaved.
async fn append_events(bus: &BusUnderTest, prefix: &str, aggregates: u64, per_aggregate: u64) {
    let metadata = EventMetadata::new_conversation(None);
    for version in 0..per_aggregate {
        for aggregate in 0..aggregates {
            let stream = StreamId::new("tally.tally", format!("{prefix}-{aggregate}"));
            let event = encode(&TallyEvent::Added { amount: 1 }, &metadata).unwrap();
            bus.source
                .events
                .append(&stream, version, vec![event], None)
                .await
                .unwrap();
        }
    }
}

/// Runs `handler` on its own subscription until the returned sender says stop.
fn run_consumer(bus: &BusUnderTest, handler: Arc<RecordingHandler>) -> watch::Sender<bool> {
    let (stop, stopped) = watch::channel(false);
    let consumer = Consumer::new(bus.consumer_db.clone(), bus.dead_letters(), quick_retries());
    let mut subscription = bus.subscribe(&handler.name);
    tokio::spawn(async move { consumer.run(&*handler, &mut *subscription, stopped).await });
    stop
}

async fn every_event_reaches_each_consumer_once_in_aggregate_order(bus: BusUnderTest) {
    RecordingHandler::create_table(&bus.consumer_db).await;
    let total = (AGGREGATES * EVENTS_PER_AGGREGATE) as usize;
    let handlers = ["tally.audit", "tally.stats"].map(|name| Arc::new(RecordingHandler::new(name)));
    let stops: Vec<_> = handlers
        .iter()
        .map(|h| run_consumer(&bus, h.clone()))
        .collect();
    append_events(&bus, "order", AGGREGATES, EVENTS_PER_AGGREGATE).await;
    for handler in &handlers {
        wait_for_effects(
            &bus.consumer_db,
            &handler.name,
            total,
            Duration::from_secs(180),
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // room for a stray duplicate to show
    for handler in &handlers {
        let found = effects(&bus.consumer_db, &handler.name).await;
        assert_eq!(found.per_event.len(), total, "{}", handler.name);
        assert!(
            found.per_event.values().all(|&n| n == 1),
            "{}: an effect happened twice",
            handler.name
        );
        assert_eq!(found.per_stream.len(), AGGREGATES as usize);
        for (stream, versions) in &found.per_stream {
            let expected: Vec<u64> = (1..=EVENTS_PER_AGGREGATE).collect();
            assert_eq!(
                versions, &expected,
                "{}: {stream} out of order",
                handler.name
            );
        }
    }
    for stop in stops {
        stop.send(true).unwrap();
    }
}

async fn a_poison_event_is_dead_lettered_and_replayed_once_accepted(bus: BusUnderTest) {
    RecordingHandler::create_table(&bus.consumer_db).await;
    let handler = Arc::new(RecordingHandler::new("tally.picky"));
    let metadata = EventMetadata::new_conversation(None);
    let poison = encode(&TallyEvent::Added { amount: 13 }, &metadata).unwrap();
    handler.poison.lock().unwrap().push(poison.event_id);
    let stream = StreamId::new("tally.tally", "poisoned");
    bus.source
        .events
        .append(&stream, 0, vec![poison.clone()], None)
        .await
        .unwrap();
    let stop = run_consumer(&bus, handler.clone());
    append_events(&bus, "after", 3, 2).await;

    // The consumer gives up on the poison event and goes on with the others.
    wait_for_effects(&bus.consumer_db, &handler.name, 6, Duration::from_secs(60)).await;
    let letters = bus.dead_letters_of(&handler.name).await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0].delivery.event.event_id, poison.event_id);
    assert_eq!(letters[0].attempts, 3);
    assert!(letters[0].error.contains("poison"), "{}", letters[0].error);

    // Once the handler accepts it, replaying the dead letters handles it, once.
    handler.poison.lock().unwrap().clear();
    let consumer = Consumer::new(bus.consumer_db.clone(), bus.dead_letters(), quick_retries());
    // (`msa dlq replay` runs this same call on the letters its listing found open.)
    let replayed = consumer.replay(&*handler, &letters).await;
    assert_eq!(
        (
            replayed.handled.len(),
            replayed.settled_before,
            replayed.failing.len()
        ),
        (1, 0, 0)
    );
    let again = consumer.replay(&*handler, &letters).await;
    assert_eq!(
        (
            again.handled.len(),
            again.settled_before,
            again.failing.len()
        ),
        (0, 1, 0)
    );
    let found = effects(&bus.consumer_db, &handler.name).await;
    assert_eq!(found.per_event.get(&poison.event_id.to_string()), Some(&1));
    assert_eq!(found.per_event.len(), 7);
    stop.send(true).unwrap();
}

async fn a_consumer_restarted_from_its_committed_position_repeats_no_effect(bus: BusUnderTest) {
    RecordingHandler::create_table(&bus.consumer_db).await;
    let handler = Arc::new(RecordingHandler::new("tally.restarting"));
    let stop = run_consumer(&bus, handler.clone());
    append_events(&bus, "first", 10, 5).await;
    wait_for_effects(&bus.consumer_db, &handler.name, 50, Duration::from_secs(60)).await;
    stop.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let stop = run_consumer(&bus, handler.clone());
    append_events(&bus, "second", 10, 5).await;
    wait_for_effects(
        &bus.consumer_db,
        &handler.name,
        100,
        Duration::from_secs(60),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let found = effects(&bus.consumer_db, &handler.name).await;
    assert_eq!(found.per_event.len(), 100);
    assert!(found.per_event.values().all(|&n| n == 1));
    stop.send(true).unwrap();
}

macro_rules! bus_conformance {
    ($($scenario:ident),* $(,)?) => {
        mod in_process {
            $(
                #[test]
                fn $scenario() {
                    msa_testkit::within(super::SCENARIO_LIMIT, async {
                        super::$scenario(msa_testkit::bus::BusUnderTest::in_process().await).await;
                    });
                }
            )*
        }
        mod kafka {
            $(
                #[test]
                fn $scenario() {
                    msa_testkit::within(super::SCENARIO_LIMIT, async {
                        let Some(bus) = msa_testkit::bus::BusUnderTest::kafka().await else { return };
                        super::$scenario(bus).await;
                    });
                }
            )*
        }
    };
}

bus_conformance!(
    every_event_reaches_each_consumer_once_in_aggregate_order,
    a_poison_event_is_dead_lettered_and_replayed_once_accepted,
    a_consumer_restarted_from_its_committed_position_repeats_no_effect,
);
