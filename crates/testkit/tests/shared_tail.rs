//! The shared tail (`SharedTail`): a process's log readers share their reads of the log's end,
//! and every reader still gets exactly what the store's own log holds. On SQLite and PostgreSQL.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::join_all;
use msa_kernel::repository::encode;
use msa_kernel::shared_tail::{HELD_FOR, QUIET};
use msa_kernel::{
    AppendError, EventMetadata, EventStore, IdempotencyRecord, LogPosition, NewEvent,
    RecordedEvent, SharedTail, Snapshot, StoreError, StreamId,
};
use msa_testkit::tally::{upcasters, TallyEvent};
use msa_testkit::{TestStores, VISIBLE_WITHIN};
use rand::{Rng, SeedableRng};
use tokio::sync::Notify;
use uuid::Uuid;

fn added(amount: i64) -> NewEvent {
    encode(
        &TallyEvent::Added { amount },
        &EventMetadata::new_conversation(None),
    )
    .unwrap()
}

fn stream(name: &str) -> StreamId {
    StreamId::new("tally.tally", format!("{name}-{}", Uuid::now_v7()))
}

/// The store itself, without a tail: what every answer is checked against.
fn raw(stores: &TestStores) -> Arc<dyn EventStore> {
    match (&stores.postgres, &stores.sqlite) {
        (Some(pg), _) => Arc::new(pg.clone()),
        (_, Some(sqlite)) => Arc::new(sqlite.clone()),
        _ => unreachable!("a test store is SQLite or PostgreSQL"),
    }
}

/// Appends `n` events, one stream of `streams` after another.
async fn append(store: &dyn EventStore, streams: &mut [(StreamId, u64)], n: usize) {
    for i in 0..n {
        let (id, version) = &mut streams[i % streams.len()];
        store
            .append(id, *version, vec![added(i as i64)], None)
            .await
            .unwrap();
        *version += 1;
    }
}

/// Waits until the store shows `n` events after `after` (PostgreSQL shows a committed event once
/// every older transaction on the server has ended), and returns the last one's position.
async fn visible(store: &dyn EventStore, after: LogPosition, n: usize) -> LogPosition {
    let deadline = Instant::now() + VISIBLE_WITHIN;
    loop {
        let read = store.read_all(after, n).await.unwrap();
        if read.len() == n {
            return read.last().unwrap().position;
        }
        assert!(
            Instant::now() < deadline,
            "{n} events did not become visible"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The whole log after `after`, read from the store itself.
async fn log_after(store: &dyn EventStore, after: LogPosition) -> Vec<LogPosition> {
    let mut positions = Vec::new();
    let mut at = after;
    loop {
        let batch = store.read_all(at, 1000).await.unwrap();
        let Some(last) = batch.last() else {
            return positions;
        };
        at = last.position;
        positions.extend(batch.iter().map(|e| e.position));
    }
}

/// What a read returns, by position and event id.
async fn read(
    store: &dyn EventStore,
    after: LogPosition,
    limit: usize,
) -> Vec<(LogPosition, Uuid)> {
    let events = store.read_all(after, limit).await.unwrap();
    events.iter().map(|e| (e.position, e.event_id)).collect()
}

/// Readers at random places with random read sizes, through a tail holding 16 events, while
/// events keep being appended: each answer is exactly the store's own answer to the same read.
async fn every_answer_is_the_stores_answer(stores: TestStores) {
    let raw = raw(&stores);
    let tail = SharedTail::holding(raw.clone(), 16);
    let mut streams: Vec<_> = (0..3).map(|i| (stream(&format!("s{i}")), 0)).collect();
    append(&*raw, &mut streams, 40).await;
    visible(&*raw, LogPosition::START, 40).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    // Four readers; each starts at the beginning, in the middle (a position learned elsewhere)
    // or at the end.
    let known = log_after(&*raw, LogPosition::START).await;
    let mut readers: Vec<LogPosition> = vec![
        LogPosition::START,
        known[10],
        known[25],
        *known.last().unwrap(),
    ];
    for round in 0..300 {
        if round % 3 == 0 {
            append(&*raw, &mut streams, rng.gen_range(1..8)).await;
        }
        let reader = rng.gen_range(0..readers.len());
        let limit = rng.gen_range(1..40);
        let after = readers[reader];
        let got = read(&tail, after, limit).await;
        let expected = read(&*raw, after, limit).await;
        // The store may show more by now than when the tail read it, never other events.
        assert!(
            expected.starts_with(&got),
            "round {round}, reader {reader} after {after} reading {limit}: {got:?} vs {expected:?}"
        );
        if let Some((last, _)) = got.last() {
            readers[reader] = *last;
        }
    }
    // Every reader then reads on to the end: nothing skipped, nothing twice.
    let end = *log_after(&*raw, LogPosition::START).await.last().unwrap();
    for (reader, start) in readers.into_iter().enumerate() {
        let (mut at, mut rest) = (start, Vec::new());
        let deadline = Instant::now() + VISIBLE_WITHIN;
        while at != end {
            assert!(Instant::now() < deadline, "reader {reader} stopped at {at}");
            let batch = tail.read_all(at, 25).await.unwrap();
            match batch.last() {
                Some(last) => at = last.position,
                None => tokio::time::sleep(Duration::from_millis(5)).await,
            }
            rest.extend(batch.iter().map(|e| e.position));
        }
        assert_eq!(
            rest,
            log_after(&*raw, start).await,
            "reader {reader} skipped or repeated an event"
        );
    }
}

/// An event store that counts the log reads made of it.
struct Counting {
    inner: Arc<dyn EventStore>,
    reads: AtomicUsize,
}

#[async_trait]
impl EventStore for Counting {
    async fn append(
        &self,
        stream_id: &StreamId,
        expected_version: u64,
        events: Vec<NewEvent>,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<Vec<RecordedEvent>, AppendError> {
        self.inner
            .append(stream_id, expected_version, events, idempotency)
            .await
    }
    async fn read_stream(
        &self,
        stream_id: &StreamId,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream_id, after_version).await
    }
    async fn read_event(
        &self,
        stream_id: &StreamId,
        version: u64,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        self.inner.read_event(stream_id, version).await
    }
    async fn read_all(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read_all(after, limit).await
    }
    async fn head_position(&self) -> Result<i64, StoreError> {
        self.inner.head_position().await
    }
    async fn last_position(&self) -> Result<LogPosition, StoreError> {
        self.inner.last_position().await
    }
    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        self.inner.load_snapshot(stream_id).await
    }
    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }
    async fn idempotency_record(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.idempotency_record(scope, key).await
    }
    async fn save_idempotency_record(&self, record: &IdempotencyRecord) -> Result<(), AppendError> {
        self.inner.save_idempotency_record(record).await
    }
    fn appended(&self) -> Arc<Notify> {
        self.inner.appended()
    }
}

/// Eight readers caught up at the end of the log, all woken by one append: the first reads the
/// log and the other seven are answered from what it read.
async fn readers_at_the_end_share_one_read(stores: TestStores) {
    let counting = Arc::new(Counting {
        inner: raw(&stores),
        reads: AtomicUsize::new(0),
    });
    let tail = SharedTail::new(counting.clone());
    let mut streams = vec![(stream("end"), 0)];
    append(&*counting, &mut streams, 5).await;
    let end = visible(&*counting, LogPosition::START, 5).await;
    assert_eq!(
        tail.read_all(LogPosition::START, 100).await.unwrap().len(),
        5
    );
    append(&*counting, &mut streams, 3).await;
    visible(&*counting, end, 3).await;
    counting.reads.store(0, Ordering::SeqCst);

    let reads = join_all((0..8).map(|_| tail.read_all(end, 100))).await;
    for read in reads {
        assert_eq!(
            read.unwrap().len(),
            3,
            "each reader gets the three new events"
        );
    }
    assert_eq!(
        counting.reads.load(Ordering::SeqCst),
        1,
        "one read for eight readers"
    );

    // Back at the end with nothing new, once the last read is older than `QUIET`: readers that
    // asked before a read started share it; one that asked while it ran reads again (the event
    // it was woken for may have come after it). Two reads when the first read outlasts the
    // others' asking; a busy machine (the full suite on two cores) once made three.
    let new_end = tail
        .read_all(end, 100)
        .await
        .unwrap()
        .last()
        .unwrap()
        .position;
    tokio::time::sleep(QUIET).await;
    counting.reads.store(0, Ordering::SeqCst);
    let reads = join_all((0..8).map(|_| tail.read_all(new_end, 100))).await;
    assert!(reads.iter().all(|read| read.as_ref().unwrap().is_empty()));
    let made = counting.reads.load(Ordering::SeqCst);
    assert!((1..=3).contains(&made), "{made} reads for eight readers");
}

/// A reader at the end looks again soon after each append (on PostgreSQL an event may be hidden
/// for a moment). Once everything appended through the tail has been read, such looks are
/// answered from memory for `QUIET` after a read of the end; an append through the tail makes the
/// next look read; what another process appends shows once `QUIET` has passed.
async fn once_this_process_appends_are_read_looks_at_the_end_wait_for_the_poll(stores: TestStores) {
    let counting = Arc::new(Counting {
        inner: raw(&stores),
        reads: AtomicUsize::new(0),
    });
    let tail = SharedTail::new(counting.clone());
    let start = counting.last_position().await.unwrap();
    let mut streams = vec![(stream("quiet"), 0)];
    append(&tail, &mut streams, 1).await;
    let end = visible(&tail, start, 1).await;
    assert!(tail.read_all(end, 100).await.unwrap().is_empty());

    // Eight looks one after another: each would read (none asked while another read ran), but
    // the end was read a moment ago and nothing of this process's is unread. A stall of the
    // machine past `QUIET` may make one read.
    counting.reads.store(0, Ordering::SeqCst);
    for _ in 0..8 {
        assert!(tail.read_all(end, 100).await.unwrap().is_empty());
    }
    let made = counting.reads.load(Ordering::SeqCst);
    assert!(made <= 1, "{made} reads for eight quick looks");

    // An append through the tail: the next look reads the log, whenever the end was read.
    append(&tail, &mut streams, 1).await;
    counting.reads.store(0, Ordering::SeqCst);
    let _ = tail.read_all(end, 100).await.unwrap();
    assert_eq!(
        counting.reads.load(Ordering::SeqCst),
        1,
        "a look after an own append"
    );
    let own_end = visible(&tail, end, 1).await;

    // Another process's append: found by the first look after `QUIET`.
    append(&*counting, &mut streams, 1).await;
    visible(&*counting, own_end, 1).await;
    tokio::time::sleep(QUIET).await;
    assert_eq!(tail.read_all(own_end, 100).await.unwrap().len(), 1);
}

/// An operator repairs a stream by hand (deletes its events): the tail keeps answering with what
/// it read for at most `HELD_FOR`, then reads the repaired log.
async fn a_repair_by_hand_shows_once_the_held_events_expire(stores: TestStores) {
    let raw = raw(&stores);
    let tail = SharedTail::new(raw.clone());
    let start = raw.last_position().await.unwrap();
    let mut bad = vec![(stream("bad"), 0)];
    let mut good = vec![(stream("good"), 0)];
    append(&*raw, &mut bad, 1).await;
    append(&*raw, &mut good, 1).await;
    visible(&*raw, start, 2).await;
    assert_eq!(tail.read_all(start, 10).await.unwrap().len(), 2);
    stores.delete_stream(&bad[0].0).await;
    assert_eq!(
        tail.read_all(start, 10).await.unwrap().len(),
        2,
        "held a moment ago"
    );
    tokio::time::sleep(HELD_FOR + Duration::from_millis(100)).await;
    let read = tail.read_all(start, 10).await.unwrap();
    assert_eq!(
        read.iter().map(|e| &e.stream_id).collect::<Vec<_>>(),
        [&good[0].0],
        "the repaired log"
    );
}

macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(msa_testkit::TestStores::sqlite(super::upcasters()).await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    if let Some(stores) = msa_testkit::TestStores::postgres(super::upcasters()).await {
                        super::$scenario(stores).await;
                    }
                }
            )*
        }
    };
}

on_both_stores!(
    every_answer_is_the_stores_answer,
    readers_at_the_end_share_one_read,
    once_this_process_appends_are_read_looks_at_the_end_wait_for_the_poll,
    a_repair_by_hand_shows_once_the_held_events_expire,
);
