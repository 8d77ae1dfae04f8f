//! The event-store conformance suite: the same test code runs against SQLite and PostgreSQL.
//! Each scenario is an async fn taking fresh stores; the macro at the bottom instantiates it twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::future::join_all;
use msa_kernel::repository::{encode, IdempotencyKey};
use msa_kernel::shared_tail::HELD_FOR;
use msa_kernel::{
    AppendError, CommandError, EventMetadata, IdempotencyRecord, LogPosition, NewEvent,
    ProjectionRunner, ReadModelStore, RecordedEvent, Repository, Snapshot, StreamId,
};
use msa_testkit::tally::{upcasters, Tally, TallyCommand, TallyError, TallyEvent, TallyTotals};
use msa_testkit::{eventually, TestStores, VISIBLE_WITHIN};
use serde_json::json;
use sqlx::Row;
use uuid::Uuid;

fn meta() -> EventMetadata {
    EventMetadata::new_conversation(Some("test".into()))
}

fn added(amount: i64) -> NewEvent {
    encode(&TallyEvent::Added { amount }, &meta()).unwrap()
}

fn raw(event_type: &str, schema_version: u32, payload: serde_json::Value) -> NewEvent {
    NewEvent {
        event_type: event_type.into(),
        schema_version,
        payload,
        ..added(0)
    }
}

fn stream(name: &str) -> StreamId {
    StreamId::new("tally.tally", format!("{name}-{}", Uuid::now_v7()))
}

async fn open_tally(repo: &Repository<Tally>, name: &str) -> StreamId {
    let id = stream(name);
    repo.execute(&id, &TallyCommand::Open { name: name.into() }, &meta())
        .await
        .unwrap();
    id
}

async fn appends_keep_per_stream_order(stores: TestStores) {
    let a = stream("a");
    let b = stream("b");
    for i in 0..5u64 {
        stores
            .events
            .append(&a, i, vec![added(i as i64)], None)
            .await
            .unwrap();
        if i < 3 {
            stores
                .events
                .append(&b, i, vec![added(10 + i as i64)], None)
                .await
                .unwrap();
        }
    }
    let read = stores.events.read_stream(&a, 0).await.unwrap();
    assert_eq!(
        read.iter().map(|e| e.version).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    assert!(read.iter().all(|e| e.stream_id == a));
    assert_eq!(read[4].payload, json!({ "amount": 4 }));
    let tail = stores.events.read_stream(&a, 3).await.unwrap();
    assert_eq!(tail.iter().map(|e| e.version).collect::<Vec<_>>(), [4, 5]);
    // One event by its version: that stream's, none past the end or at 0.
    let third = stores.events.read_event(&a, 3).await.unwrap().unwrap();
    assert_eq!((third.stream_id.clone(), third.version), (a.clone(), 3));
    assert_eq!(third.payload, json!({ "amount": 2 }));
    assert!(stores.events.read_event(&a, 6).await.unwrap().is_none());
    assert!(stores.events.read_event(&a, 0).await.unwrap().is_none());
    assert!(stores.events.read_event(&b, 4).await.unwrap().is_none());
    // A multi-event append lands as consecutive versions.
    let batch = stores
        .events
        .append(&b, 3, vec![added(1), added(2), added(3)], None)
        .await
        .unwrap();
    assert_eq!(
        batch.iter().map(|e| e.version).collect::<Vec<_>>(),
        [4, 5, 6]
    );
    assert_eq!(stores.events.read_stream(&b, 0).await.unwrap().len(), 6);
}

async fn stale_or_future_expected_version_conflicts(stores: TestStores) {
    let s = stream("conflict");
    stores
        .events
        .append(&s, 0, vec![added(1), added(2)], None)
        .await
        .unwrap();
    for expected in [0, 1, 3, 7] {
        match stores
            .events
            .append(&s, expected, vec![added(3)], None)
            .await
        {
            Err(AppendError::Conflict {
                expected: e,
                actual,
                ..
            }) => {
                assert_eq!((e, actual), (expected, 2));
            }
            other => panic!("expected a conflict at {expected}, got {other:?}"),
        }
    }
    assert_eq!(stores.events.read_stream(&s, 0).await.unwrap().len(), 2);
}

async fn concurrent_appends_at_one_version_let_exactly_one_win(stores: TestStores) {
    let s = stream("race");
    let attempts = (0..16).map(|_| {
        let events = stores.events.clone();
        let s = s.clone();
        async move { events.append(&s, 0, vec![added(1), added(1)], None).await }
    });
    let outcomes = join_all(attempts).await;
    let wins = outcomes.iter().filter(|o| o.is_ok()).count();
    let conflicts = outcomes
        .iter()
        .filter(|o| matches!(o, Err(AppendError::Conflict { .. })))
        .count();
    assert_eq!((wins, conflicts), (1, 15), "{outcomes:?}");
    assert_eq!(stores.events.read_stream(&s, 0).await.unwrap().len(), 2);

    // Through the repository, racing commands are decided again and all take effect.
    let repo = Repository::<Tally>::new(stores.events.clone());
    let id = open_tally(&repo, "busy").await;
    let commands = (0..4).map(|_| {
        let repo = repo.clone();
        let id = id.clone();
        async move {
            repo.execute(&id, &TallyCommand::Add { amount: 1 }, &meta())
                .await
        }
    });
    for outcome in join_all(commands).await {
        outcome.unwrap();
    }
    assert_eq!(repo.load(&id).await.unwrap().state.total, 4);

    // Two repositories with caches of their own, as two processes would have, stay correct.
    let elsewhere = Repository::<Tally>::new(stores.events.clone());
    for (i, repo) in [&repo, &elsewhere, &elsewhere, &repo]
        .into_iter()
        .enumerate()
    {
        let add = TallyCommand::Add { amount: 10 };
        let executed = repo.execute(&id, &add, &meta()).await.unwrap();
        assert_eq!(executed.state.total, 14 + 10 * i as i64);
    }
    assert_eq!(elsewhere.load(&id).await.unwrap().version, 9);
}

/// Appends that reach the store together (SQLite commits them as one group) succeed or fail each
/// on its own: a conflict or a used idempotency key takes nothing of the others with it.
async fn appends_arriving_together_succeed_or_fail_each_on_their_own(stores: TestStores) {
    let record = |key: &str| IdempotencyRecord {
        scope: "tally.add:together".into(),
        key: key.into(),
        fingerprint: "f".into(),
        result: json!({}),
    };
    let taken = stream("taken");
    stores
        .events
        .append(&taken, 0, vec![added(1), added(1)], Some(record("used")))
        .await
        .unwrap();
    let fresh: Vec<StreamId> = (0..40).map(|i| stream(&format!("together-{i}"))).collect();
    let appends = fresh.iter().enumerate().map(|(i, s)| {
        let (events, s, taken) = (stores.events.clone(), s.clone(), taken.clone());
        let key = record(&format!("k-{i}"));
        async move {
            match i % 4 {
                0 => events.append(&taken, 1, vec![added(1)], None).await,
                1 => {
                    events
                        .append(&s, 0, vec![added(1)], Some(record("used")))
                        .await
                }
                _ => {
                    events
                        .append(&s, 0, vec![added(1), added(2)], Some(key))
                        .await
                }
            }
        }
    });
    let outcomes = join_all(appends).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        match i % 4 {
            0 => assert!(
                matches!(outcome, Err(AppendError::Conflict { actual: 2, .. })),
                "{i}: {outcome:?}"
            ),
            1 => assert!(
                matches!(outcome, Err(AppendError::DuplicateIdempotencyKey { .. })),
                "{i}: {outcome:?}"
            ),
            _ => assert_eq!(outcome.as_ref().unwrap().len(), 2, "{i}"),
        }
    }
    let placed = |events: &[RecordedEvent]| {
        let placed: Vec<_> = events.iter().map(|e| (e.version, e.position)).collect();
        assert!(placed.windows(2).all(|w| w[0].1 < w[1].1), "{placed:?}");
        placed
    };
    for (i, s) in fresh.iter().enumerate() {
        let stored = stores.events.read_stream(s, 0).await.unwrap();
        let kept = stores
            .events
            .idempotency_record("tally.add:together", &format!("k-{i}"))
            .await
            .unwrap();
        assert_eq!(
            (stored.len(), kept.is_some()),
            if i % 4 < 2 { (0, false) } else { (2, true) },
            "{s}"
        );
        // Each answer says where its events went in the log, in version order.
        if let Ok(answered) = &outcomes[i] {
            assert_eq!(placed(answered), placed(&stored), "{s}");
        }
    }
    assert_eq!(stores.events.read_stream(&taken, 0).await.unwrap().len(), 2);
}

async fn global_log_holds_every_event_once_in_append_order(stores: TestStores) {
    let streams: Vec<_> = (0..5).map(|i| stream(&format!("g{i}"))).collect();
    let mut appended = Vec::new();
    for round in 0..8u64 {
        for s in &streams {
            let recorded = stores
                .events
                .append(s, round, vec![added(round as i64)], None)
                .await
                .unwrap();
            appended.extend(recorded.into_iter().map(|e| e.event_id));
        }
    }
    let mut seen = Vec::new();
    let mut position = LogPosition::START;
    let deadline = Instant::now() + VISIBLE_WITHIN;
    while seen.len() < appended.len() && Instant::now() < deadline {
        let batch = stores.events.read_all(position, 7).await.unwrap();
        let Some(last) = batch.last() else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        assert!(batch.windows(2).all(|w| w[0].position < w[1].position));
        assert!(batch[0].position > position);
        position = last.position;
        seen.extend(batch.into_iter().map(|e| e.event_id));
    }
    assert_eq!(seen, appended);
    assert!(stores
        .events
        .read_all(position, 7)
        .await
        .unwrap()
        .is_empty());
    // A reader that wants only what comes next starts where the log ends. (The horizon is
    // cluster-wide on PostgreSQL, so other tests' transactions may hold it back a moment.)
    eventually(position, || async {
        stores.events.last_position().await.unwrap()
    })
    .await;
}

async fn snapshots_shorten_loads_and_stale_ones_are_ignored(stores: TestStores) {
    // Without the state cache, so every load goes through the snapshot.
    let repo = Repository::<Tally>::new(stores.events.clone()).with_state_cache(0);
    let id = open_tally(&repo, "snap").await;
    for amount in 1..=11 {
        repo.execute(&id, &TallyCommand::Add { amount }, &meta())
            .await
            .unwrap();
    }
    // 12 events, a snapshot every 5: the latest is at version 10.
    let snapshot = stores
        .events
        .load_snapshot(&id)
        .await
        .unwrap()
        .expect("a snapshot");
    assert_eq!(snapshot.version, 10);
    let loaded = repo.load(&id).await.unwrap();
    assert_eq!(
        (loaded.version, loaded.state.total, loaded.state.additions),
        (12, 66, 11)
    );

    // A snapshot whose state shape is not the aggregate's current one is ignored.
    stores
        .events
        .save_snapshot(&Snapshot {
            state_version: 99,
            state: json!("garbage"),
            ..snapshot
        })
        .await
        .unwrap();
    let loaded = repo.load(&id).await.unwrap();
    assert_eq!((loaded.version, loaded.state.total), (12, 66));
}

async fn old_schema_versions_are_upcast_on_read(stores: TestStores) {
    let s = stream("old");
    let opened = encode(&TallyEvent::Opened { name: "old".into() }, &meta()).unwrap();
    let v1 = raw("tally.Added", 1, json!({ "n": 41 }));
    stores
        .events
        .append(&s, 0, vec![opened, v1], None)
        .await
        .unwrap();
    let read = stores.events.read_stream(&s, 0).await.unwrap();
    assert_eq!(
        (read[1].schema_version, &read[1].payload),
        (2, &json!({ "amount": 41 }))
    );
    let upcast_in_log = || async {
        let log = stores
            .events
            .read_all(LogPosition::START, 10)
            .await
            .unwrap();
        log.get(1).map(|e| e.payload.clone())
    };
    eventually(Some(json!({ "amount": 41 })), upcast_in_log).await;
    let repo = Repository::<Tally>::new(stores.events.clone());
    repo.execute(&s, &TallyCommand::Add { amount: 1 }, &meta())
        .await
        .unwrap();
    assert_eq!(repo.load(&s).await.unwrap().state.total, 42);
}

async fn idempotency_keys_map_to_the_first_result(stores: TestStores) {
    let repo = Repository::<Tally>::new(stores.events.clone());
    let id = open_tally(&repo, "idem").await;
    let key = |fingerprint: &str| IdempotencyKey {
        scope: "tally.add:alice".into(),
        key: "k-1".into(),
        fingerprint: fingerprint.into(),
    };
    let respond = |state: &Tally, _: &[TallyEvent]| json!({ "total": state.total });
    let add = TallyCommand::Add { amount: 5 };
    let first = repo
        .execute_idempotent(&id, &add, &meta(), key("f"), respond)
        .await
        .unwrap();
    let again = repo
        .execute_idempotent(&id, &add, &meta(), key("f"), respond)
        .await
        .unwrap();
    assert_eq!((first.replayed, again.replayed), (false, true));
    assert_eq!(first.result, again.result);
    assert!(matches!(
        repo.execute_idempotent(&id, &add, &meta(), key("other"), respond)
            .await,
        Err(CommandError::IdempotencyKeyReused { .. })
    ));

    // Ten concurrent retries of one new key append once and all answer the same.
    let racing = (0..10).map(|_| {
        let repo = repo.clone();
        let id = id.clone();
        async move {
            let key = IdempotencyKey {
                key: "k-2".into(),
                ..key("f")
            };
            repo.execute_idempotent(
                &id,
                &TallyCommand::Add { amount: 100 },
                &meta(),
                key,
                respond,
            )
            .await
        }
    });
    let answers: Vec<_> = join_all(racing)
        .await
        .into_iter()
        .map(|a| a.unwrap().result)
        .collect();
    assert!(
        answers.iter().all(|a| *a == json!({ "total": 105 })),
        "{answers:?}"
    );
    assert_eq!(repo.load(&id).await.unwrap().state.total, 105);

    // A used key named on another stream answers the first result and leaves no event there:
    // the key and the events go in together or not at all.
    let elsewhere = open_tally(&repo, "idem-elsewhere").await;
    let before = repo.load(&elsewhere).await.unwrap().version;
    let replayed = repo
        .execute_idempotent(&elsewhere, &add, &meta(), key("f"), respond)
        .await
        .unwrap();
    assert_eq!(
        (replayed.replayed, replayed.result),
        (true, first.result.clone())
    );
    let fresh = Repository::<Tally>::new(stores.events.clone());
    assert_eq!(fresh.load(&elsewhere).await.unwrap().version, before);

    // A refusal can be remembered too, without events.
    let refusal = msa_kernel::IdempotencyRecord {
        scope: "tally.add:alice".into(),
        key: "k-3".into(),
        fingerprint: "f".into(),
        result: json!({ "error": "no" }),
    };
    stores
        .events
        .save_idempotency_record(&refusal)
        .await
        .unwrap();
    assert!(matches!(
        stores.events.save_idempotency_record(&refusal).await,
        Err(AppendError::DuplicateIdempotencyKey { .. })
    ));
    let stored = stores
        .events
        .idempotency_record("tally.add:alice", "k-3")
        .await
        .unwrap();
    assert_eq!(stored, Some(refusal));
}

async fn domain_errors_are_typed_and_append_nothing(stores: TestStores) {
    let repo = Repository::<Tally>::new(stores.events.clone());
    let id = stream("closed");
    let refused = repo
        .execute(&id, &TallyCommand::Add { amount: 1 }, &meta())
        .await;
    assert!(matches!(
        refused,
        Err(CommandError::Domain(TallyError::NotOpen))
    ));
    assert!(stores.events.read_stream(&id, 0).await.unwrap().is_empty());
}

async fn the_inbox_lets_each_event_through_once_per_consumer(stores: TestStores) {
    let rm = &stores.read_models;
    let event_id = Uuid::now_v7();
    let mut tx = rm.begin().await.unwrap();
    assert!(rm
        .record_handled(&mut tx, "consumer-a", event_id)
        .await
        .unwrap());
    drop(tx); // rolled back: as if the handler's effect failed
    let mut tx = rm.begin().await.unwrap();
    assert!(rm
        .record_handled(&mut tx, "consumer-a", event_id)
        .await
        .unwrap());
    rm.commit(tx).await.unwrap();
    let mut tx = rm.begin().await.unwrap();
    assert!(!rm
        .record_handled(&mut tx, "consumer-a", event_id)
        .await
        .unwrap());
    assert!(rm
        .record_handled(&mut tx, "consumer-b", event_id)
        .await
        .unwrap());
    rm.commit(tx).await.unwrap();
}

async fn totals(stores: &TestStores) -> BTreeMap<String, (i64, i64)> {
    sqlx::query("SELECT stream_id, total, additions FROM tally_totals")
        .fetch_all(stores.read_models.pool())
        .await
        .unwrap()
        .into_iter()
        .map(|row| (row.get(0), (row.get(1), row.get(2))))
        .collect()
}

async fn a_rebuilt_projection_equals_the_live_one(stores: TestStores) {
    let repo = Repository::<Tally>::new(stores.events.clone());
    let runner =
        ProjectionRunner::new(stores.events.clone(), stores.read_models.clone()).with_batch_size(7);
    let mut expected = BTreeMap::new();
    for t in 0..6 {
        let id = open_tally(&repo, &format!("p{t}")).await;
        for amount in 1..=t {
            repo.execute(&id, &TallyCommand::Add { amount }, &meta())
                .await
                .unwrap();
        }
        expected.insert(id.to_string(), (t * (t + 1) / 2, t));
        // Live: the projection follows along in batches as events arrive.
        runner.catch_up(&TallyTotals).await.unwrap();
    }
    let live = || async {
        runner.catch_up(&TallyTotals).await.unwrap();
        totals(&stores).await
    };
    eventually(expected.clone(), live).await;

    let rebuilt_from = runner.rebuild(&TallyTotals).await.unwrap();
    assert!(rebuilt_from > 0);
    eventually(expected.clone(), live).await;
    assert_eq!(
        stores
            .read_models
            .latest_generation("tally.totals")
            .await
            .unwrap(),
        2
    );

    // After the swap, the live runner goes on in the new generation without re-applying.
    let id = open_tally(&repo, "late").await;
    repo.execute(&id, &TallyCommand::Add { amount: 9 }, &meta())
        .await
        .unwrap();
    expected.insert(id.to_string(), (9, 1));
    eventually(expected, live).await;
}

async fn a_live_projection_catches_up_then_follows_new_events(stores: TestStores) {
    let repo = Repository::<Tally>::new(stores.events.clone());
    let before = open_tally(&repo, "before").await;
    let runner = ProjectionRunner::new(stores.events.clone(), stores.read_models.clone())
        .with_idle_poll(Duration::from_millis(50));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let live = tokio::spawn(async move { runner.run(&TallyTotals, stopped).await });

    let after = open_tally(&repo, "after").await;
    repo.execute(&after, &TallyCommand::Add { amount: 7 }, &meta())
        .await
        .unwrap();
    let expected = BTreeMap::from([(before.to_string(), (0, 0)), (after.to_string(), (7, 1))]);
    eventually(expected, || async {
        // The tables appear with the runner's first batch.
        match sqlx::query("SELECT 1 FROM tally_totals")
            .fetch_all(stores.read_models.pool())
            .await
        {
            Ok(_) => totals(&stores).await,
            Err(_) => BTreeMap::new(),
        }
    })
    .await;
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), live)
        .await
        .expect("the runner stops")
        .unwrap();
}

async fn a_bad_stored_event_is_named_and_keeps_the_checkpoint(stores: TestStores) {
    let repo = Repository::<Tally>::new(stores.events.clone());
    let runner = ProjectionRunner::new(stores.events.clone(), stores.read_models.clone());
    let good = open_tally(&repo, "good").await;
    eventually(Some((0, 0)), || async {
        runner.catch_up(&TallyTotals).await.unwrap();
        totals(&stores).await.get(good.as_str()).copied()
    })
    .await;
    let before = totals(&stores).await;

    for (bad, reason) in [
        (
            raw("tally.Added", 2, json!({ "amount": "many" })),
            "invalid type",
        ),
        (raw("tally.Vanished", 1, json!({})), "unknown variant"),
        (
            raw("tally.Added", 7, json!({ "amount": 1 })),
            "schema version 7",
        ),
    ] {
        let s = stream("bad");
        stores
            .events
            .append(&s, 0, vec![bad.clone()], None)
            .await
            .unwrap();
        // Loading the aggregate names stream, version and type.
        let error = repo.load(&s).await.unwrap_err().to_string();
        assert!(
            error.contains(s.as_str()) && error.contains(&bad.event_type),
            "{error}"
        );
        assert!(error.contains(reason), "{error}");
        // The projection stops at it without moving its checkpoint, every time it is retried.
        let failure = || async {
            runner
                .catch_up(&TallyTotals)
                .await
                .map_err(|e| e.to_string())
        };
        eventually(true, || async { failure().await.is_err() }).await;
        for _ in 0..2 {
            let error = failure().await.unwrap_err();
            assert!(
                error.contains(&format!("{s}@1")) && error.contains(&bad.event_type),
                "{error}"
            );
            assert_eq!(totals(&stores).await, before);
        }
        // Repair the data by hand the way an operator would: here, by deleting the stream's row.
        // Readers see the repair once the shared tail forgets what it read (`HELD_FOR`).
        stores.delete_stream(&s).await;
        tokio::time::sleep(HELD_FOR).await;
    }
    repo.execute(&good, &TallyCommand::Add { amount: 3 }, &meta())
        .await
        .unwrap();
    eventually(Some((3, 1)), || async {
        runner.catch_up(&TallyTotals).await.unwrap();
        totals(&stores).await.get(good.as_str()).copied()
    })
    .await;
}

macro_rules! conformance {
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
                    let Some(stores) = msa_testkit::TestStores::postgres(super::upcasters()).await else {
                        return;
                    };
                    super::$scenario(stores).await;
                }
            )*
        }
    };
}

conformance!(
    appends_keep_per_stream_order,
    stale_or_future_expected_version_conflicts,
    concurrent_appends_at_one_version_let_exactly_one_win,
    appends_arriving_together_succeed_or_fail_each_on_their_own,
    global_log_holds_every_event_once_in_append_order,
    snapshots_shorten_loads_and_stale_ones_are_ignored,
    old_schema_versions_are_upcast_on_read,
    idempotency_keys_map_to_the_first_result,
    domain_errors_are_typed_and_append_nothing,
    the_inbox_lets_each_event_through_once_per_consumer,
    a_rebuilt_projection_equals_the_live_one,
    a_live_projection_catches_up_then_follows_new_events,
    a_bad_stored_event_is_named_and_keeps_the_checkpoint,
);
