//! `msa bench store`: the command side's cost per command against the cost of a plain insert.
//!
//! Scenario: C workers, each on its own rooms, post messages as fast as each is acknowledged. One
//! command = load the room (snapshot + newer events), decide, append one event, durable commit.
//! Baseline: the same workers run one INSERT per transaction into a table shaped like the events
//! table (same columns, same indexes) on the same database. Both phases run in this invocation, so
//! the ratio compares like with like on whatever machine runs it.

use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chrono::Utc;
use msa_kernel::repository::encode;
use msa_kernel::{EventMetadata, EventStore, Repository, Snapshot, StreamId};
use msa_postgres::PgEventStore;
use msa_sqlite::SqliteEventStore;
use serde::Serialize;
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use uuid::Uuid;

use crate::cli::{BenchStoreArgs, StoreKind};
use crate::Latencies;
use msa_chat::domain::{MessageBody, Role, Room, RoomCommand, RoomEvent, RoomKind};
use msa_postgres::schema::{ensure_schema, with_search_path};

const BODY: &str = "Shall we meet at the station at seven? I'll bring the tickets.";

/// The database under test, with the baseline's plain insert.
enum Target {
    Sqlite {
        store: SqliteEventStore,
        _dir: tempfile::TempDir,
    },
    Postgres {
        store: PgEventStore,
        url: String,
        schema: String,
    },
}

impl Target {
    async fn open(args: &BenchStoreArgs) -> Result<Self> {
        match args.store {
            StoreKind::Sqlite => {
                let dir = tempfile::tempdir().context("creating a temporary directory")?;
                let store = SqliteEventStore::open(&dir.path().join("bench.events.sqlite")).await?;
                sqlx::query(SQLITE_BASELINE_TABLE)
                    .execute(store.writer())
                    .await?;
                Ok(Target::Sqlite { store, _dir: dir })
            }
            StoreKind::Postgres => {
                let schema = format!("bench_{}", Uuid::now_v7().simple());
                ensure_schema(&args.database_url, &schema).await?;
                let options =
                    PgConnectOptions::from_str(&with_search_path(&args.database_url, &schema))?;
                let store = PgEventStore::connect(options, args.concurrency + 4).await?;
                // Same columns, defaults, constraints and indexes as the events table.
                sqlx::query("CREATE TABLE bench_baseline (LIKE events INCLUDING ALL)")
                    .execute(store.pool())
                    .await?;
                Ok(Target::Postgres {
                    store,
                    url: args.database_url.clone(),
                    schema,
                })
            }
        }
    }

    fn events(&self) -> Arc<dyn EventStore> {
        match self {
            Target::Sqlite { store, .. } => Arc::new(store.clone()),
            Target::Postgres { store, .. } => Arc::new(store.clone()),
        }
    }

    /// One plain INSERT in its own transaction.
    async fn insert_baseline_row(&self, stream_id: &str, version: i64) -> Result<()> {
        let payload = json!({ "seq": version, "sender_id": Uuid::now_v7(), "body": BODY });
        match self {
            Target::Sqlite { store, .. } => {
                sqlx::query(BASELINE_INSERT)
                    .bind(Uuid::now_v7().to_string())
                    .bind(stream_id)
                    .bind(version)
                    .bind(payload.to_string())
                    .bind(Utc::now())
                    .bind(Uuid::now_v7().to_string())
                    .execute(store.writer())
                    .await?;
            }
            Target::Postgres { store, .. } => {
                sqlx::query(BASELINE_INSERT)
                    .bind(Uuid::now_v7())
                    .bind(stream_id)
                    .bind(version)
                    .bind(payload)
                    .bind(Utc::now())
                    .bind(Uuid::now_v7())
                    .execute(store.pool())
                    .await?;
            }
        }
        Ok(())
    }

    async fn clean_up(self) -> Result<()> {
        if let Target::Postgres { store, url, schema } = self {
            store.pool().close().await;
            let mut conn =
                sqlx::ConnectOptions::connect(&PgConnectOptions::from_str(&url)?).await?;
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut conn)
                .await?;
        }
        Ok(())
    }
}

const SQLITE_BASELINE_TABLE: &str = "CREATE TABLE bench_baseline (
    global_position INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL,
    stream_id TEXT NOT NULL, version INTEGER NOT NULL, event_type TEXT NOT NULL,
    schema_version INTEGER NOT NULL, payload TEXT NOT NULL, occurred_at TEXT NOT NULL,
    correlation_id TEXT NOT NULL, causation_id TEXT, actor TEXT, traceparent TEXT,
    UNIQUE (stream_id, version))";

const BASELINE_INSERT: &str = "INSERT INTO bench_baseline (event_id, stream_id, version, event_type, \
     schema_version, payload, occurred_at, correlation_id) VALUES ($1, $2, $3, 'bench.MessagePosted', 1, $4, $5, $6)";

/// What one phase measured.
struct Phase {
    latencies: Latencies,
    elapsed: Duration,
    errors: u64,
}

impl Phase {
    fn per_sec(&self) -> f64 {
        self.latencies.count() as f64 / self.elapsed.as_secs_f64()
    }
}

type Op = Arc<dyn Fn(u32, u64) -> Pin<Box<dyn Future<Output = Result<()>> + Send>> + Send + Sync>;

/// Runs `op(worker, iteration)` on `workers` tasks until `duration` has passed.
async fn run_phase(workers: u32, duration: Duration, op: Op) -> Result<Phase> {
    let started = Instant::now();
    let deadline = started + duration;
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Latencies::new();
                let mut errors = 0u64;
                let mut first_error = None;
                let mut iteration = 0;
                while Instant::now() < deadline {
                    let start = Instant::now();
                    match op(worker, iteration).await {
                        Ok(()) => latencies.record(start.elapsed()),
                        Err(error) => {
                            errors += 1;
                            first_error.get_or_insert(error);
                        }
                    }
                    iteration += 1;
                }
                (latencies, errors, first_error)
            })
        })
        .collect();
    let mut phase = Phase {
        latencies: Latencies::new(),
        elapsed: Duration::ZERO,
        errors: 0,
    };
    for task in tasks {
        let (latencies, errors, first_error) = task.await?;
        phase.latencies.merge(&latencies);
        phase.errors += errors;
        if let Some(error) = first_error {
            tracing::warn!(%error, "a benchmark operation failed");
        }
    }
    phase.elapsed = started.elapsed();
    Ok(phase)
}

/// The chat room `room` of the benchmark: the chat context's own `Room` aggregate.
fn room_stream(room: u32) -> StreamId {
    Repository::<Room>::stream_id(Uuid::from_u128(room as u128 + 1))
}

/// Who owns every benchmark room and posts in it.
const POSTER: Uuid = Uuid::from_u128(u128::MAX);

fn body() -> MessageBody {
    MessageBody::parse(BODY).expect("a valid body")
}

/// A group room owned by the poster.
fn room_created(room: u32) -> RoomEvent {
    RoomEvent::RoomCreated {
        seq: 1,
        kind: RoomKind::Group,
        name: Some(format!("room {room}")),
        creator: POSTER,
        members: [(POSTER, Role::Owner)].into_iter().collect(),
    }
}

/// Grows every room's stream to `length` events the way the system would have: events in order,
/// and a snapshot at the last multiple of the room's snapshot interval.
async fn pregrow(events: Arc<dyn EventStore>, rooms: u32, length: u64, workers: u32) -> Result<()> {
    let done = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let every = <Room as msa_kernel::Aggregate>::SNAPSHOT_EVERY.unwrap_or(u64::MAX);
    let tasks: Vec<_> = (0..workers.min(rooms))
        .map(|worker| {
            let events = events.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let metadata = EventMetadata::new_conversation(Some("system:bench".into()));
                for room in (worker..rooms).step_by(workers as usize) {
                    let stream_id = room_stream(room);
                    let mut version = 0;
                    while version < length {
                        let chunk = (length - version).min(500);
                        let batch = (version..version + chunk)
                            .map(|v| {
                                let event = if v == 0 {
                                    room_created(room)
                                } else {
                                    RoomEvent::MessagePosted {
                                        seq: v + 1,
                                        message_id: Uuid::now_v7(),
                                        sender_id: POSTER,
                                        body: body(),
                                        reply_to: None,
                                    }
                                };
                                encode(&event, &metadata)
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        events.append(&stream_id, version, batch, None).await?;
                        version += chunk;
                    }
                    let snapshot_at = length / every * every;
                    if snapshot_at > 0 {
                        let mut state =
                            <Room as msa_kernel::Aggregate>::fold([&room_created(room)]);
                        state.last_seq = snapshot_at;
                        events
                            .save_snapshot(&Snapshot {
                                stream_id,
                                version: snapshot_at,
                                state_version: <Room as msa_kernel::Aggregate>::STATE_VERSION,
                                state: serde_json::to_value(state)?,
                            })
                            .await?;
                    }
                    let finished = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if finished.is_multiple_of((rooms / 10).max(1)) {
                        eprintln!("  pre-grown {finished}/{rooms} rooms");
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

#[derive(Serialize)]
struct Report {
    store: &'static str,
    concurrency: u32,
    aggregates: u32,
    stream_length: u64,
    state_cache: usize,
    duration_s: f64,
    commands: u64,
    commands_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
    baseline_inserts: u64,
    baseline_per_sec: f64,
    baseline_p50_ms: f64,
    baseline_p99_ms: f64,
    baseline_errors: u64,
    ratio: f64,
}

pub async fn run(args: BenchStoreArgs) -> Result<()> {
    let store_name = match args.store {
        StoreKind::Sqlite => "sqlite",
        StoreKind::Postgres => "postgres",
    };
    eprintln!(
        "bench store: {store_name}, {} workers, {} rooms of {} events, state cache {}, {:?} per phase",
        args.concurrency, args.aggregates, args.stream_length, args.state_cache, args.duration
    );
    let target = Arc::new(Target::open(&args).await?);
    let outcome = measure(&args, store_name, target.clone()).await;
    if let Some(target) = Arc::into_inner(target) {
        target
            .clean_up()
            .await
            .context("cleaning up the benchmark schema")?;
    }
    let report = outcome?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        println!(
            "{:<44} {:>10.0}/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
            "event store: post a message (load+decide+append)",
            report.commands_per_sec,
            report.p50_ms,
            report.p99_ms
        );
        println!(
            "{:<44} {:>10.0}/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
            "baseline: one INSERT per transaction",
            report.baseline_per_sec,
            report.baseline_p50_ms,
            report.baseline_p99_ms
        );
        println!("ratio (event store / baseline): {:.2}", report.ratio);
        if report.errors + report.baseline_errors > 0 {
            println!(
                "errors: {} commands, {} baseline inserts (see the log)",
                report.errors, report.baseline_errors
            );
        }
    }
    Ok(())
}

async fn measure(
    args: &BenchStoreArgs,
    store_name: &'static str,
    target: Arc<Target>,
) -> Result<Report> {
    let events = target.events();
    eprintln!("pre-growing the room streams…");
    pregrow(
        events.clone(),
        args.aggregates,
        args.stream_length,
        args.concurrency,
    )
    .await?;

    eprintln!("phase 1/2: baseline, one INSERT per transaction…");
    let run_id = Uuid::now_v7().simple().to_string();
    let baseline = run_phase(
        args.concurrency,
        args.duration,
        Arc::new(move |worker, iteration| {
            let stream_id = format!("baseline-{run_id}-{worker}");
            let target = target.clone();
            Box::pin(async move {
                target
                    .insert_baseline_row(&stream_id, iteration as i64 + 1)
                    .await
            })
        }),
    )
    .await?;

    eprintln!("phase 2/2: event store, post a message to a room…");
    let repository = Repository::<Room>::new(events).with_state_cache(args.state_cache);
    let (workers, rooms) = (args.concurrency, args.aggregates);
    let commands = run_phase(
        args.concurrency,
        args.duration,
        Arc::new(move |worker, iteration| {
            let repository = repository.clone();
            // Worker w owns rooms w, w + C, w + 2C, …; it posts to them in turn.
            let owned = (rooms - worker).div_ceil(workers).max(1);
            let room = worker + (iteration % owned as u64) as u32 * workers;
            Box::pin(async move {
                let command = RoomCommand::Post {
                    room_id: Uuid::from_u128(u128::from(room % rooms) + 1),
                    sender_id: POSTER,
                    body: body(),
                    reply_to: None,
                };
                let metadata = EventMetadata::new_conversation(None);
                repository
                    .execute(&room_stream(room % rooms), &command, &metadata)
                    .await?;
                Ok(())
            })
        }),
    )
    .await?;

    Ok(Report {
        store: store_name,
        concurrency: args.concurrency,
        aggregates: args.aggregates,
        stream_length: args.stream_length,
        state_cache: args.state_cache,
        duration_s: args.duration.as_secs_f64(),
        commands: commands.latencies.count(),
        commands_per_sec: commands.per_sec(),
        p50_ms: commands.latencies.quantile_ms(0.50),
        p99_ms: commands.latencies.quantile_ms(0.99),
        errors: commands.errors,
        baseline_inserts: baseline.latencies.count(),
        baseline_per_sec: baseline.per_sec(),
        baseline_p50_ms: baseline.latencies.quantile_ms(0.50),
        baseline_p99_ms: baseline.latencies.quantile_ms(0.99),
        baseline_errors: baseline.errors,
        ratio: commands.per_sec() / baseline.per_sec().max(f64::MIN_POSITIVE),
    })
}
