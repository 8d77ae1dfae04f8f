//! Gap safety of the PostgreSQL global log: a reader following it never passes a transaction that
//! has not committed yet, so no event is ever skipped, and never sees a rolled-back one, also when
//! readers share a tail of the log (`SharedTail`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use msa_kernel::repository::encode;
use msa_kernel::shared_tail::QUIET;
use msa_kernel::{
    EventMetadata, EventStore, LogPosition, NewEvent, ProjectionRunner, SharedTail, StreamId,
    Upcasters,
};
use msa_testkit::tally::{upcasters, TallyEvent, TallyTotals};
use msa_testkit::{eventually, TestStores};
use rand::{Rng, SeedableRng};
use uuid::Uuid;

fn event(amount: i64) -> NewEvent {
    encode(
        &TallyEvent::Added { amount },
        &EventMetadata::new_conversation(None),
    )
    .unwrap()
}

async fn follow(
    store: &dyn EventStore,
    position: &mut LogPosition,
) -> Vec<msa_kernel::RecordedEvent> {
    let batch = store.read_all(*position, 1000).await.unwrap();
    if let Some(last) = batch.last() {
        *position = last.position;
    }
    batch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_waits_for_a_held_transaction_instead_of_passing_it() {
    let Some(stores) = TestStores::postgres(Upcasters::new()).await else {
        return;
    };
    let pg = stores.postgres.clone().unwrap();
    let held_stream = StreamId::new("tally.tally", "held");
    let later_stream = StreamId::new("tally.tally", "later");

    // The held writer takes its position first and keeps its transaction open...
    let mut held = pg.pool().begin().await.unwrap();
    let held_events = pg
        .append_in(&mut held, &held_stream, 0, vec![event(1)])
        .await
        .unwrap();
    // ...while later writers commit.
    let mut later_ids = Vec::new();
    for version in 0..3 {
        let recorded = pg
            .append(&later_stream, version, vec![event(2)], None)
            .await
            .unwrap();
        later_ids.push(recorded[0].event_id);
    }
    assert!(
        later_ids.len() == 3 && held_events[0].position.position < 2,
        "the held event took an earlier position"
    );

    // A reader cannot see the later events yet; the last committed position includes them.
    assert_eq!(
        stores.events.last_position().await.unwrap(),
        LogPosition::START
    );
    let later_end = pg.read_stream(&later_stream, 0).await.unwrap()[2].position;
    assert_eq!(
        stores.events.last_committed_position().await.unwrap(),
        later_end
    );

    let mut position = LogPosition::START;
    for _ in 0..3 {
        let seen = follow(&*stores.events, &mut position).await;
        assert!(
            seen.is_empty(),
            "the reader passed a held transaction: {seen:?}"
        );
    }

    held.commit().await.unwrap();
    // The horizon is cluster-wide: other tests' open transactions may hold it back a moment.
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.len() < 4 && Instant::now() < deadline {
        seen.extend(
            follow(&*stores.events, &mut position)
                .await
                .into_iter()
                .map(|e| e.event_id),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut expected = vec![held_events[0].event_id];
    expected.extend(later_ids);
    assert_eq!(seen, expected);
    assert!(follow(&*stores.events, &mut position).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_applies_an_event_the_horizon_hid_without_waiting_for_its_idle_poll() {
    let Some(stores) = TestStores::postgres(upcasters()).await else {
        return;
    };
    let pg = stores.postgres.clone().unwrap();
    // Only its own appends (and what it finds looking again after them) can wake this runner.
    let runner = ProjectionRunner::new(stores.events.clone(), stores.read_models.clone())
        .with_idle_poll(Duration::from_secs(3600));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let live = tokio::spawn(async move { runner.run(&TallyTotals, stopped).await });
    let total = |name: &'static str| {
        let pool = stores.read_models.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT total FROM tally_totals WHERE stream_id = $1")
                .bind(StreamId::new("tally.tally", name).as_str())
                .fetch_optional(&pool)
                .await
                .ok()
                .flatten()
        }
    };
    let open = |name: &'static str, amount: i64| {
        let events = stores.events.clone();
        async move {
            let stream = StreamId::new("tally.tally", name);
            events
                .append(&stream, 0, vec![event(amount)], None)
                .await
                .unwrap();
        }
    };
    open("first", 1).await;
    eventually(Some(1), || total("first")).await;

    // A transaction elsewhere on the server holds the horizon while the next append commits: the
    // append wakes the runner, whose read comes back empty.
    let mut elsewhere = pg.pool().begin().await.unwrap();
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *elsewhere)
        .await
        .unwrap();
    open("hidden", 5).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(total("hidden").await, None, "the horizon hides the event");
    elsewhere.commit().await.unwrap();
    eventually(Some(5), || total("hidden")).await;

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), live)
        .await
        .expect("the runner stops")
        .unwrap();
}

const WRITERS: usize = 8;
const EVENTS_PER_WRITER: usize = 10_000;
const STREAMS_PER_WRITER: usize = 10;

/// What one writer committed and rolled back.
#[derive(Default)]
struct Written {
    committed: Vec<Uuid>,
    rolled_back: Vec<Uuid>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_with_rollbacks_reach_a_subscriber_exactly_once_in_order() {
    let Some(stores) = TestStores::postgres(Upcasters::new()).await else {
        return;
    };
    let pg = stores.postgres.clone().unwrap();
    let run = Uuid::now_v7().simple().to_string();

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let pg = pg.clone();
            let run = run.clone();
            tokio::spawn(async move {
                let mut rng = rand::rngs::StdRng::from_entropy();
                let streams: Vec<_> = (0..STREAMS_PER_WRITER)
                    .map(|s| StreamId::new("tally.tally", format!("{run}-w{w}-s{s}")))
                    .collect();
                let mut versions = [0u64; STREAMS_PER_WRITER];
                let mut written = Written::default();
                let mut attempted = 0;
                while attempted < EVENTS_PER_WRITER {
                    let s = rng.gen_range(0..STREAMS_PER_WRITER);
                    let n = rng.gen_range(1..=5).min(EVENTS_PER_WRITER - attempted);
                    attempted += n;
                    let mut tx = pg.pool().begin().await.unwrap();
                    let events = (0..n).map(|i| event(i as i64)).collect();
                    let recorded = pg
                        .append_in(&mut tx, &streams[s], versions[s], events)
                        .await
                        .unwrap();
                    // Hold some transactions open a little, so commits land out of order.
                    if rng.gen_bool(0.2) {
                        tokio::time::sleep(Duration::from_micros(rng.gen_range(100..3000))).await;
                    }
                    let ids = recorded.iter().map(|e| e.event_id);
                    if rng.gen_bool(0.15) {
                        tx.rollback().await.unwrap();
                        written.rolled_back.extend(ids);
                    } else {
                        tx.commit().await.unwrap();
                        versions[s] += n as u64;
                        written.committed.extend(ids);
                    }
                }
                written
            })
        })
        .collect();

    // Subscribers follow the log while the writers run, then until they have everything: one
    // alone on the store as the services use it, three sharing a tail that holds only 64 events
    // (so they read from it, past it and behind it), reading 1000, 37 and 5 events at a time.
    let (done, writers_done) = tokio::sync::watch::channel(false);
    let small_tail: Arc<dyn EventStore> = Arc::new(SharedTail::holding(Arc::new(pg.clone()), 64));
    let subscribers = [
        (stores.events.clone(), 1000),
        (small_tail.clone(), 1000),
        (small_tail.clone(), 37),
        (small_tail, 5),
    ]
    .map(|(events, limit)| {
        tokio::spawn(subscribe(events, run.clone(), limit, writers_done.clone()))
    });

    let mut committed = HashSet::new();
    let mut rolled_back = HashSet::new();
    for writer in writers {
        let written = writer.await.unwrap();
        committed.extend(written.committed);
        rolled_back.extend(written.rolled_back);
    }
    done.send(true).unwrap();
    assert!(
        !rolled_back.is_empty(),
        "the test must roll some transactions back"
    );
    for (n, subscriber) in subscribers.into_iter().enumerate() {
        let seen = subscriber.await.unwrap();
        eprintln!("subscriber {n}: {} events", seen.len());
        check(&seen, &committed, &rolled_back);
    }
}

/// Follows the log `limit` events at a time, keeping the events of this `run`, until the writers
/// are done and a read comes back empty.
async fn subscribe(
    events: Arc<dyn EventStore>,
    run: String,
    limit: usize,
    writers_done: tokio::sync::watch::Receiver<bool>,
) -> Vec<(Uuid, String, u64)> {
    let mut position = LogPosition::START;
    let mut seen = Vec::new();
    let mut finished_at = None;
    let deadline = Instant::now() + Duration::from_secs(240);
    while Instant::now() < deadline {
        if finished_at.is_none() && *writers_done.borrow() {
            finished_at = Some(Instant::now());
        }
        // Once every writer has finished, an empty read made `QUIET` later means everything was
        // read (a shared tail may answer "nothing new" that old about appends made around it).
        let settled = finished_at.is_some_and(|at: Instant| at.elapsed() >= QUIET);
        let batch = events.read_all(position, limit).await.unwrap();
        let Some(last) = batch.last() else {
            if settled {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        position = last.position;
        seen.extend(
            batch
                .into_iter()
                .filter(|e| e.stream_id.as_str().contains(&run))
                .map(|e| (e.event_id, e.stream_id.to_string(), e.version)),
        );
    }
    seen
}

/// Every committed event exactly once, no rolled-back one, each stream in order.
fn check(seen: &[(Uuid, String, u64)], committed: &HashSet<Uuid>, rolled_back: &HashSet<Uuid>) {
    let seen_ids: HashSet<_> = seen.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(seen_ids.len(), seen.len(), "an event was delivered twice");
    assert!(
        seen_ids.is_disjoint(rolled_back),
        "a rolled-back event was delivered"
    );
    let missing = committed.difference(&seen_ids).count();
    assert_eq!(missing, 0, "{missing} committed events were skipped");
    assert_eq!(&seen_ids, committed);

    let mut last_version: HashMap<&str, u64> = HashMap::new();
    for (_, stream, version) in seen {
        let previous = last_version.insert(stream, *version).unwrap_or(0);
        assert_eq!(*version, previous + 1, "{stream} out of order");
    }
}
