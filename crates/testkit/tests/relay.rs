//! The outbox relay's bookkeeping, on a real SQLite store with a publisher that records what it
//! was given (the broker itself is covered by `kafka_bus.rs`): every event is published once and
//! in log order, a backlog read ahead included; the checkpoint is where the bus stopped taking
//! events; and a relay that takes over publishes nothing twice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use msa_kernel::bus::{BusError, EventPublisher, Published};
use msa_kernel::relay::{Relay, RelayError, RelaySettings};
use msa_kernel::{EventStore, LogPosition, ReadModelStore, RecordedEvent, Upcasters};
use msa_sql::SqlReadModelStore;
use msa_testkit::bus::keep_appending;
use msa_testkit::TestStores;
use tokio::sync::watch;

const CONTEXT: &str = "tally";

/// Records the global positions it publishes. With `fail_at`, the call that would take the
/// total past that many events takes only up to it and fails (a broker going away mid-batch);
/// the calls after it go through.
#[derive(Default)]
struct Recorder {
    positions: Mutex<Vec<i64>>,
    fail_at: Mutex<Option<usize>>,
}

#[async_trait]
impl EventPublisher for Recorder {
    async fn publish(&self, topic: &str, events: &[RecordedEvent]) -> Published {
        assert_eq!(topic, "tally.events");
        let mut positions = self.positions.lock().unwrap();
        let mut fail_at = self.fail_at.lock().unwrap();
        let room = fail_at.map_or(usize::MAX, |n| n.saturating_sub(positions.len()));
        let taken = room.min(events.len());
        if taken < events.len() {
            *fail_at = None;
        }
        positions.extend(events[..taken].iter().map(|e| e.position.position));
        Published {
            acknowledged: taken,
            error: (taken < events.len()).then(|| BusError::Unavailable("broker gone".into())),
        }
    }
}

impl Recorder {
    fn positions(&self) -> Vec<i64> {
        self.positions.lock().unwrap().clone()
    }
}

fn relay(stores: &TestStores, publisher: Arc<Recorder>) -> Relay<SqlReadModelStore> {
    Relay::new(
        CONTEXT,
        stores.events.clone(),
        stores.read_models.clone(),
        publisher,
        RelaySettings {
            batch_size: 100,
            ..RelaySettings::default()
        },
    )
}

async fn append(stores: &TestStores, prefix: &'static str, count: u64) -> Vec<i64> {
    keep_appending(stores.events.clone(), prefix, 7, count, Duration::ZERO)
        .await
        .unwrap();
    // The whole log, from the store itself: a read through the shared tail may stop at the end
    // of what it holds.
    let all = stores
        .sqlite
        .as_ref()
        .expect("a SQLite test store")
        .read_all(LogPosition::START, 100_000)
        .await
        .unwrap();
    all.iter().map(|e| e.position.position).collect()
}

async fn stored_checkpoint(stores: &TestStores) -> i64 {
    let mut tx = stores.read_models.begin().await.unwrap();
    let position = stores
        .read_models
        .checkpoint(&mut tx, "relay.tally", 0)
        .await
        .unwrap()
        .position;
    stores.read_models.commit(tx).await.unwrap();
    position
}

/// Steps until the relay finds nothing more to publish.
async fn drain(relay: &Relay<SqlReadModelStore>) {
    while relay.step().await.unwrap() > 0 {}
}

#[tokio::test]
async fn a_backlog_goes_out_once_in_order_and_a_successor_starts_where_it_ended() {
    let stores = TestStores::sqlite(Upcasters::new()).await;
    let log = append(&stores, "backlog", 1_234).await;
    let first = Arc::new(Recorder::default());
    let active = Arc::new(relay(&stores, first.clone()));

    // Running until caught up, then stopped: the checkpoint is the last event, the lease free.
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn({
        let active = active.clone();
        async move { active.run(stopped).await }
    });
    tokio::time::timeout(Duration::from_secs(20), async {
        while first.positions().len() < log.len() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the backlog published within 20 s");
    stop.send(true).unwrap();
    running.await.unwrap();
    assert_eq!(first.positions(), log, "each event once, in log order");
    assert_eq!(stored_checkpoint(&stores).await, *log.last().unwrap());

    let second = Arc::new(Recorder::default());
    let successor = relay(&stores, second.clone());
    drain(&successor).await;
    assert!(second.positions().is_empty(), "nothing published twice");
    let log = append(&stores, "later", 5).await;
    drain(&successor).await;
    assert_eq!(second.positions(), log[log.len() - 5..]);
}

#[tokio::test]
async fn a_bus_failing_mid_batch_keeps_the_checkpoint_on_the_last_event_it_took() {
    let stores = TestStores::sqlite(Upcasters::new()).await;
    let log = append(&stores, "outage", 250).await;
    let recorder = Arc::new(Recorder::default());
    let relay = relay(&stores, recorder.clone());
    *recorder.fail_at.lock().unwrap() = Some(130);
    // The first batch (100) goes out and is read ahead of; the second fails after 30 events.
    assert_eq!(relay.step().await.unwrap(), 100);
    match relay.step().await {
        Err(RelayError::Bus { published, .. }) => assert_eq!(published, 30),
        other => panic!("expected the bus to fail mid-batch, got {other:?}"),
    }
    assert_eq!(stored_checkpoint(&stores).await, log[129]);

    // The bus is back: the relay goes on from there, skipping and repeating nothing.
    drain(&relay).await;
    assert_eq!(recorder.positions(), log);
}

#[tokio::test]
async fn a_relay_stands_by_while_another_holds_the_lease() {
    let stores = TestStores::sqlite(Upcasters::new()).await;
    append(&stores, "lease", 10).await;
    let active = relay(&stores, Arc::new(Recorder::default()));
    let standby_publisher = Arc::new(Recorder::default());
    let standby = relay(&stores, standby_publisher.clone());
    assert_eq!(active.step().await.unwrap(), 10);
    assert!(matches!(standby.step().await, Err(RelayError::NotLeader)));
    assert!(standby_publisher.positions().is_empty());
}
