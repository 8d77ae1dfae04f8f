//! `msa bench …`: measurements reported as figures beside a baseline run in the same invocation,
//! so a figure is read as a ratio on whatever machine runs it. The `msa` binary hands its `bench`
//! subcommand ([`BenchCommand`]) to [`run`]; the server itself depends on none of this.
//!
//! - [`store`]: the event store against plain INSERTs on the same database;
//! - [`bus`]: the relay and a consumer against a bare produce/consume on the same broker;
//! - [`chat`]: sends and deliveries on a running deployment against `/healthz` round trips;
//! - [`search`]: message search on a large history against reading the searcher's rooms.

pub mod bus;
pub mod chat;
mod cli;
pub mod search;
pub mod store;

pub use cli::{
    BenchBusArgs, BenchChatArgs, BenchCommand, BenchSearchArgs, BenchStoreArgs, StoreKind,
};

use std::time::Duration;

use hdrhistogram::Histogram;

/// Runs the benchmark `command` names.
pub async fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Store(args) => store::run(args).await,
        BenchCommand::Bus(args) => bus::run(args).await,
        BenchCommand::Chat(args) => chat::run(args).await,
        BenchCommand::Search(args) => search::run(args).await,
    }
}

/// Latencies of one phase, recorded in microseconds.
#[derive(Clone)]
pub struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self::new()
    }
}

impl Latencies {
    pub fn new() -> Self {
        Self(Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds"))
    }

    pub fn record(&mut self, elapsed: Duration) {
        self.0.saturating_record(elapsed.as_micros().max(1) as u64);
    }

    pub fn merge(&mut self, other: &Latencies) {
        self.0.add(&other.0).expect("histograms of equal bounds");
    }

    pub fn count(&self) -> u64 {
        self.0.len()
    }

    pub fn quantile_ms(&self, q: f64) -> f64 {
        self.0.value_at_quantile(q) as f64 / 1000.0
    }

    pub fn max_ms(&self) -> f64 {
        self.0.max() as f64 / 1000.0
    }

    /// What was recorded since `earlier`, a copy of these latencies taken before.
    pub fn since(&self, earlier: &Latencies) -> Latencies {
        let mut later = self.0.clone();
        later
            .subtract(&earlier.0)
            .expect("an earlier copy holds no more than the later one");
        Self(later)
    }
}
