//! The `msa bench` subcommand's arguments.

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Event-store throughput and latency for "post a message to a room aggregate", beside one
    /// plain INSERT per transaction on the same database.
    Store(BenchStoreArgs),
    /// Relay throughput (store to broker) and append-to-handler latency at a fixed rate, beside
    /// a bare produce/consume round trip on the same broker.
    Bus(BenchBusArgs),
    /// Users in rooms sending as fast as acknowledged against a running deployment (the single
    /// server or the gateway): send throughput and latency, delivery latency to the other
    /// members' WebSockets, beside a bare HTTP round trip (`/healthz`) at the same concurrency.
    Chat(BenchChatArgs),
    /// Message search latency (p50/p99 per query shape) on a large history loaded into a fresh
    /// chat store and search index, beside reading the searcher's rooms on the same database.
    Search(BenchSearchArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BenchSearchArgs {
    /// Which database to measure (its event store and search index).
    #[arg(long, env = "MSA_BENCH_STORE", value_enum, default_value_t = StoreKind::Sqlite)]
    pub store: StoreKind,

    /// PostgreSQL to measure (with --store postgres); the run uses a fresh schema and drops it.
    #[arg(
        long,
        env = "MSA_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,

    /// Messages loaded before measuring (appended as events, then indexed by the projection).
    #[arg(long, env = "MSA_BENCH_MESSAGES", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1_000..))]
    pub messages: u64,

    /// Rooms the messages are spread over, evenly.
    #[arg(long, env = "MSA_BENCH_ROOMS", default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rooms: u32,

    /// Rooms the searcher is a member of (the others' messages are there but not theirs to find).
    #[arg(long, env = "MSA_BENCH_MEMBER_OF", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub member_of: u32,

    /// Searches run per query shape (one after another; the first page of 50 hits each).
    #[arg(long, env = "MSA_BENCH_QUERIES", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub queries: u32,

    /// Print one JSON object instead of the table.
    #[arg(long, env = "MSA_BENCH_JSON")]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BenchChatArgs {
    /// The deployment to measure: the single server's or the gateway's address.
    #[arg(
        long,
        env = "MSA_BENCH_TARGET",
        default_value = "http://127.0.0.1:8080"
    )]
    pub target: String,

    /// Users sending at once (each signs up, buys credits with the sandbox provider, joins a room).
    #[arg(long, env = "MSA_BENCH_USERS", default_value_t = 200, value_parser = clap::value_parser!(u32).range(2..=10_000))]
    pub users: u32,

    /// Members per room.
    #[arg(long, env = "MSA_BENCH_ROOM_SIZE", default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub room_size: u32,

    /// How long each phase (baseline, sending) runs, e.g. 10s.
    #[arg(long, env = "MSA_BENCH_DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Messages per second offered by all users together, each sending on a schedule whether or
    /// not its last send was answered (latency at a load the system keeps up with). Without it,
    /// each user sends as soon as its last send is acknowledged (the most the system takes).
    #[arg(long, env = "MSA_BENCH_RATE", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub rate: Option<u32>,

    /// Print one JSON object instead of the table.
    #[arg(long, env = "MSA_BENCH_JSON")]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Args)]
pub struct BenchStoreArgs {
    /// Which event store to measure.
    #[arg(long, env = "MSA_BENCH_STORE", value_enum, default_value_t = StoreKind::Sqlite)]
    pub store: StoreKind,

    /// PostgreSQL to measure (with --store postgres); the run uses a fresh schema and drops it.
    #[arg(
        long,
        env = "MSA_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub database_url: String,

    /// Workers issuing commands at once, each on its own aggregates.
    #[arg(long, env = "MSA_BENCH_CONCURRENCY", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=512))]
    pub concurrency: u32,

    /// Room aggregates, shared out among the workers.
    #[arg(long, env = "MSA_BENCH_AGGREGATES", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub aggregates: u32,

    /// How long each of the two phases (event store, baseline) runs, e.g. 15s or 1m.
    #[arg(long, env = "MSA_BENCH_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Events each room stream holds before measuring, to show whether cost grows with history.
    #[arg(long, env = "MSA_BENCH_STREAM_LENGTH", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub stream_length: u64,

    /// Aggregate states each worker pool keeps in memory (0: every load starts from the snapshot).
    #[arg(long, env = "MSA_BENCH_STATE_CACHE", default_value_t = msa_kernel::repository::DEFAULT_STATE_CACHE)]
    pub state_cache: usize,

    /// Print one JSON object instead of the table.
    #[arg(long, env = "MSA_BENCH_JSON")]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct BenchBusArgs {
    /// Kafka bootstrap servers of the broker to measure.
    #[arg(long, env = "MSA_KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub kafka_brokers: String,

    /// Extra librdkafka properties, key=value, comma-separated (applied to every client).
    #[arg(long, env = "MSA_KAFKA_CONFIG", value_delimiter = ',')]
    pub kafka_config: Vec<String>,

    /// Partitions of the benchmark's topics (created fresh for the run).
    #[arg(long, env = "MSA_KAFKA_PARTITIONS", default_value_t = 8, value_parser = clap::value_parser!(i32).range(1..=10_000))]
    pub kafka_partitions: i32,

    /// Events the relay publishes in the throughput phase (and the bare producer in its baseline).
    #[arg(long, env = "MSA_BENCH_EVENTS", default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(100..))]
    pub events: u64,

    /// Events per second offered in the latency phase.
    #[arg(long, env = "MSA_BENCH_RATE", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub rate: u32,

    /// How long the latency phase (and its baseline) offers events, e.g. 10s.
    #[arg(long, env = "MSA_BENCH_DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Print one JSON object instead of the table.
    #[arg(long, env = "MSA_BENCH_JSON")]
    pub json: bool,
}
