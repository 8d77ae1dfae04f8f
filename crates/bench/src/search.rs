//! `msa bench search`: message search latency on a large history.
//!
//! Scenario: N messages (1,000,000 by default) in R rooms, appended to a fresh chat event store
//! as the system would store them, projected by the real `chat.search` projection (and the
//! membership part of `chat.history`, which search reads), then one searcher, a member of M of
//! the rooms, runs each query shape Q times in a row through the same function the HTTP
//! handler calls. Bodies are drawn from a fixed vocabulary of English and Korean words (with
//! particles attached), so each shape finds a known share of the messages. Baseline: reading
//! the searcher's rooms, the least every search does, on the same database.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use async_trait::async_trait;
use msa_chat::adapters::history::History;
use msa_chat::adapters::search::{Found, MessageSearch, Search, SearchText, Searched};
use msa_chat::application::ports::MessageIndex;
use msa_chat::domain::{MessageBody, Role, Room, RoomEvent, RoomKind};
use msa_kernel::repository::encode;
use msa_kernel::{
    EventMetadata, EventStore, Projection, ProjectionError, ProjectionRunner, RecordedEvent,
    Repository, TableNames, TableSpec,
};
use msa_postgres::PgEventStore;
use msa_sql::SqlReadModelStore;
use msa_sqlite::SqliteEventStore;
use serde::Serialize;
use sqlx::postgres::PgConnectOptions;
use uuid::Uuid;

use crate::cli::{BenchSearchArgs, StoreKind};
use crate::Latencies;
use msa_postgres::schema::{ensure_schema, with_search_path};

/// The searcher, a member of the first `--member-of` rooms.
const SEARCHER: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001);
/// Who posts every message (a member of every room).
const POSTER: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);
/// Members of the rooms the searcher is not in.
const OTHER: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0003);

/// Words every body is made of (6 to 11 of them).
const VOCABULARY: &[&str] = &[
    "shall",
    "we",
    "meet",
    "at",
    "the",
    "station",
    "tomorrow",
    "bring",
    "tickets",
    "lunch",
    "coffee",
    "later",
    "today",
    "please",
    "review",
    "thanks",
    "sounds",
    "good",
    "project",
    "update",
    "release",
    "notes",
    "bug",
    "fixed",
    "test",
    "build",
    "server",
    "client",
    "design",
    "schedule",
    "call",
    "morning",
    "evening",
    "weekend",
    "plan",
    "budget",
    "report",
    "draft",
    "send",
    "check",
    "오늘",
    "내일",
    "점심",
    "같이",
    "먹어요",
    "확인",
    "부탁드립니다",
    "감사합니다",
    "좋아요",
    "일정",
    "보고서",
    "초안",
    "검토",
    "배포",
    "서버",
    "문제",
    "해결",
    "했어요",
    "주말",
    "저녁",
    "커피",
    "역에서",
    "만나요",
    "프로젝트",
    "업데이트",
    "테스트",
    "빌드",
    "디자인",
];

/// Words put into a known share of the bodies, one in `every` messages, for the query shapes.
const PLANTED: &[(&str, u64)] = &[
    ("meeting", 10),     // common
    ("엔진룸에서", 100), // a Korean noun with a particle
    ("deployment", 100), // found by a prefix
    ("회의", 100),       // two syllables: no trigram
    ("quasar", 10_000),  // rare
];

/// A query shape: what is asked, and of which rooms.
struct Shape {
    name: &'static str,
    q: &'static str,
    one_room: bool,
    second_page: bool,
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "rare word (1 in 10,000)",
        q: "quasar",
        one_room: false,
        second_page: false,
    },
    Shape {
        name: "common word (1 in 10)",
        q: "meeting",
        one_room: false,
        second_page: false,
    },
    Shape {
        name: "common word, 2nd page",
        q: "meeting",
        one_room: false,
        second_page: true,
    },
    Shape {
        name: "Korean word + particle (1 in 100)",
        q: "엔진룸",
        one_room: false,
        second_page: false,
    },
    Shape {
        name: "prefix (1 in 100)",
        q: "deplo",
        one_room: false,
        second_page: false,
    },
    Shape {
        name: "two words (1 in 1,000)",
        q: "meeting 엔진룸",
        one_room: false,
        second_page: false,
    },
    Shape {
        name: "two syllables, no index (1 in 100)",
        q: "회의",
        one_room: false,
        second_page: false,
    },
    Shape {
        name: "no match",
        q: "xylophone",
        one_room: false,
        second_page: false,
    },
    Shape {
        name: "common word, one room",
        q: "meeting",
        one_room: true,
        second_page: false,
    },
];

/// A deterministic generator (xorshift64*), so every run searches the same bodies.
struct Words(u64);

impl Words {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The body of the `n`th message.
    fn body(&mut self, n: u64) -> MessageBody {
        let count = 6 + self.next() % 6;
        let mut words: Vec<&str> = (0..count)
            .map(|_| VOCABULARY[(self.next() % VOCABULARY.len() as u64) as usize])
            .collect();
        for (i, (word, every)) in PLANTED.iter().enumerate() {
            // Each word's messages are picked by a hash of its own, so two words meet in about
            // the product of their shares.
            if mix(n ^ ((i as u64 + 1) << 40)).is_multiple_of(*every) {
                let at = (self.next() % (words.len() as u64 + 1)) as usize;
                words.insert(at, word);
            }
        }
        MessageBody::parse(&words.join(" ")).expect("a valid body")
    }
}

/// The id of room number `room`.
fn room_id(room: u32) -> Uuid {
    Uuid::from_u128(room as u128 + 1)
}

/// SplitMix64's finalizer: a well-spread hash of `x`.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The database under test: a fresh chat event store and query database.
struct Target {
    events: Arc<dyn EventStore>,
    read_models: Arc<SqlReadModelStore>,
    cleanup: Cleanup,
}

enum Cleanup {
    Directory(#[allow(dead_code)] tempfile::TempDir),
    Schema { url: String, schema: String },
}

impl Target {
    async fn open(args: &BenchSearchArgs) -> Result<Self> {
        match args.store {
            StoreKind::Sqlite => {
                let dir = tempfile::tempdir().context("creating a temporary directory")?;
                let events = SqliteEventStore::open(&dir.path().join("chat.events.sqlite")).await?;
                let query = dir.path().join("chat.query.sqlite");
                let read_models =
                    SqlReadModelStore::connect(&format!("sqlite://{}?mode=rwc", query.display()))
                        .await?;
                Ok(Self {
                    events: Arc::new(events),
                    read_models: Arc::new(read_models),
                    cleanup: Cleanup::Directory(dir),
                })
            }
            StoreKind::Postgres => {
                let schema = format!("bench_{}", Uuid::now_v7().simple());
                ensure_schema(&args.database_url, &schema).await?;
                let url = with_search_path(&args.database_url, &schema);
                let events = PgEventStore::connect(PgConnectOptions::from_str(&url)?, 8).await?;
                let read_models = SqlReadModelStore::connect_with(&url, 4).await?;
                Ok(Self {
                    events: Arc::new(events),
                    read_models: Arc::new(read_models),
                    cleanup: Cleanup::Schema {
                        url: args.database_url.clone(),
                        schema,
                    },
                })
            }
        }
    }

    async fn clean_up(self) -> Result<()> {
        self.read_models.pool().close().await;
        if let Cleanup::Schema { url, schema } = self.cleanup {
            let mut conn =
                sqlx::ConnectOptions::connect(&PgConnectOptions::from_str(&url)?).await?;
            sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&mut conn)
                .await?;
        }
        Ok(())
    }
}

/// `chat.history` for its membership only: search reads `chat_members`; the messages' part of
/// history is not what this benchmark measures, and would double the loading time.
struct Members;

#[async_trait]
impl Projection<msa_sql::Tx> for Members {
    fn name(&self) -> &'static str {
        History.name()
    }

    fn tables(&self) -> &'static [TableSpec] {
        History.tables()
    }

    fn wants(&self, event: &RecordedEvent) -> bool {
        History.wants(event) && !event.event_type.ends_with("MessagePosted")
    }

    async fn apply(
        &self,
        tx: &mut msa_sql::Tx,
        tables: &TableNames,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        History.apply(tx, tables, event).await
    }
}

/// Appends the rooms and their messages, printing progress every second.
async fn load(events: Arc<dyn EventStore>, args: &BenchSearchArgs) -> Result<()> {
    let appended = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let progress = {
        let appended = appended.clone();
        let total = args.messages;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let n = appended.load(Ordering::Relaxed);
                eprint!(
                    "\r  appending messages: {n} of {total} ({:.0}/s)   ",
                    n as f64 / started.elapsed().as_secs_f64()
                );
            }
        })
    };
    let per_room = args.messages / args.rooms as u64;
    let workers = 4.min(args.rooms);
    let tasks: Vec<_> = (0..workers)
        .map(|worker| {
            let events = events.clone();
            let appended = appended.clone();
            let (rooms, member_of, messages) = (args.rooms, args.member_of, args.messages);
            tokio::spawn(async move {
                let metadata = EventMetadata::new_conversation(Some("system:bench".into()));
                let mine: Vec<u32> = (worker..rooms).step_by(workers as usize).collect();
                // Where each room stands: its stream's version, its words, what it still posts.
                let mut rooms_left: Vec<(u32, u64, Words, u64)> = Vec::new();
                for &room in &mine {
                    let stream = Repository::<Room>::stream_id(room_id(room));
                    let member = if room < member_of { SEARCHER } else { OTHER };
                    let created = RoomEvent::RoomCreated {
                        seq: 1,
                        kind: RoomKind::Group,
                        name: Some(format!("room {room}")),
                        creator: POSTER,
                        members: [(POSTER, Role::Owner), (member, Role::Member)]
                            .into_iter()
                            .collect(),
                    };
                    events
                        .append(&stream, 0, vec![encode(&created, &metadata)?], None)
                        .await?;
                    // The last room takes what does not divide evenly.
                    let count = if room == rooms - 1 {
                        messages - per_room * (rooms as u64 - 1)
                    } else {
                        per_room
                    };
                    let words = Words(0x9E37_79B9_7F4A_7C15 ^ (room as u64 + 1));
                    rooms_left.push((room, 1, words, count));
                }
                // Rounds of up to CHUNK messages a room, so every room's messages are spread
                // over the whole log as they would be in a live system (the searcher's rooms
                // are neither all old nor all new).
                const CHUNK: u64 = 100;
                while rooms_left.iter().any(|(.., left)| *left > 0) {
                    for (room, version, words, left) in rooms_left.iter_mut() {
                        if *left == 0 {
                            continue;
                        }
                        let take = (*left).min(CHUNK);
                        let batch = (0..take)
                            .map(|i| {
                                let seq = *version + i + 1;
                                let posted = RoomEvent::MessagePosted {
                                    seq,
                                    message_id: Uuid::now_v7(),
                                    sender_id: POSTER,
                                    body: words.body(*room as u64 * per_room + seq),
                                    reply_to: None,
                                };
                                encode(&posted, &metadata)
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                        let stream = Repository::<Room>::stream_id(room_id(*room));
                        events.append(&stream, *version, batch, None).await?;
                        *version += take;
                        *left -= take;
                        appended.fetch_add(take, Ordering::Relaxed);
                    }
                }
                anyhow::Ok(())
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    progress.abort();
    eprintln!(
        "\r  appended {} messages in {} rooms in {:.0} s                 ",
        args.messages,
        args.rooms,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Builds the projections from the log, printing progress.
async fn project(target: &Target) -> Result<()> {
    let runner = ProjectionRunner::new(target.events.clone(), target.read_models.clone())
        .with_batch_size(2_000);
    let head = target.events.head_position().await?;
    let members = Members;
    let search = Search {
        backend: target.read_models.backend(),
    };
    let projections: [(&str, &dyn Projection<msa_sql::Tx>); 2] =
        [("memberships", &members), ("search index", &search)];
    for (what, projection) in projections {
        let started = Instant::now();
        // At most one line a second, rewritten in place.
        let printed = std::sync::Mutex::new(Instant::now());
        let progress = move |applied: u64| {
            let mut printed = printed.lock().expect("not poisoned");
            if printed.elapsed() >= Duration::from_secs(1) {
                *printed = Instant::now();
                eprint!(
                    "\r  building the {what}: {applied} events (log head at position {head}), {:.0} s   ",
                    started.elapsed().as_secs_f64()
                );
            }
        };
        runner
            .rebuild_reporting(projection, &progress)
            .await
            .with_context(|| format!("building the {what}"))?;
        eprintln!(
            "\r  built the {what} in {:.0} s                                              ",
            started.elapsed().as_secs_f64()
        );
    }
    if target.read_models.backend() == msa_sql::Backend::Postgres {
        // What a server's autovacuum would have done by now: the planner's statistics.
        sqlx::query("ANALYZE")
            .execute(target.read_models.pool())
            .await?;
    }
    Ok(())
}

#[derive(Serialize)]
struct ShapeReport {
    shape: &'static str,
    q: &'static str,
    hits: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

#[derive(Serialize)]
struct Report {
    store: String,
    messages: u64,
    rooms: u32,
    member_of: u32,
    queries: u32,
    baseline_p50_ms: f64,
    baseline_p99_ms: f64,
    shapes: Vec<ShapeReport>,
}

async fn found(db: &SqlReadModelStore, query: &MessageSearch) -> Result<Found> {
    match db.search(SEARCHER, query).await? {
        Searched::Found(found) => Ok(found),
        Searched::Rebuilding => anyhow::bail!("the index says it is being rebuilt"),
    }
}

pub async fn run(args: BenchSearchArgs) -> Result<()> {
    anyhow::ensure!(
        args.member_of <= args.rooms,
        "--member-of ({}) must not exceed --rooms ({})",
        args.member_of,
        args.rooms
    );
    let target = Target::open(&args).await?;
    msa_chat::migrator()
        .run(target.read_models.pool())
        .await
        .context("migrating the chat query database")?;
    eprintln!(
        "msa bench search: {} messages in {} rooms on {:?}, the searcher in {} of them",
        args.messages, args.rooms, args.store, args.member_of
    );
    load(target.events.clone(), &args).await?;
    project(&target).await?;
    let db = &*target.read_models;

    let mut baseline = Latencies::new();
    for _ in 0..args.queries {
        let started = Instant::now();
        let rooms: Vec<String> =
            sqlx::query_scalar("SELECT room_id FROM chat_members WHERE user_id = $1")
                .bind(SEARCHER.to_string())
                .fetch_all(db.pool())
                .await?;
        baseline.record(started.elapsed());
        anyhow::ensure!(
            rooms.len() == args.member_of as usize,
            "the searcher's rooms"
        );
    }
    let mut shapes = Vec::new();
    for shape in SHAPES {
        let mut query = MessageSearch {
            text: SearchText::parse(shape.q).map_err(anyhow::Error::msg)?,
            room: shape.one_room.then(|| room_id(0)),
            sender: None,
            before: None,
            after: None,
            cursor: None,
            limit: 50,
        };
        if shape.second_page {
            query.cursor = found(db, &query).await?.next_cursor;
        }
        let mut latencies = Latencies::new();
        let mut hits = 0;
        for _ in 0..args.queries {
            let started = Instant::now();
            hits = found(db, &query).await?.hits.len();
            latencies.record(started.elapsed());
        }
        eprintln!("  {}: p50 {:.2} ms", shape.name, latencies.quantile_ms(0.5));
        shapes.push(ShapeReport {
            shape: shape.name,
            q: shape.q,
            hits,
            p50_ms: latencies.quantile_ms(0.5),
            p99_ms: latencies.quantile_ms(0.99),
            max_ms: latencies.max_ms(),
        });
    }
    let report = Report {
        store: format!("{:?}", args.store).to_lowercase(),
        messages: args.messages,
        rooms: args.rooms,
        member_of: args.member_of,
        queries: args.queries,
        baseline_p50_ms: baseline.quantile_ms(0.5),
        baseline_p99_ms: baseline.quantile_ms(0.99),
        shapes,
    };
    target.clean_up().await?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "search on {}: {} messages, {} rooms, the searcher in {}; {} queries per shape, 50 hits a page",
        report.store, report.messages, report.rooms, report.member_of, report.queries
    );
    println!(
        "{:<36} {:<16} {:>5} {:>9} {:>9} {:>9}",
        "shape", "q", "hits", "p50 ms", "p99 ms", "max ms"
    );
    for shape in &report.shapes {
        println!(
            "{:<36} {:<16} {:>5} {:>9.2} {:>9.2} {:>9.2}",
            shape.shape, shape.q, shape.hits, shape.p50_ms, shape.p99_ms, shape.max_ms
        );
    }
    println!(
        "{:<36} {:<16} {:>5} {:>9.2} {:>9.2}",
        "baseline: the searcher's rooms", "", "", report.baseline_p50_ms, report.baseline_p99_ms
    );
    Ok(())
}
