//! A tally: the smallest aggregate that exercises every kernel feature (typed errors, snapshots,
//! an upcast event), and a projection of it.

use async_trait::async_trait;
use msa_kernel::repository::decode;
use msa_kernel::{
    Aggregate, DomainEvent, Projection, ProjectionError, RecordedEvent, TableNames, TableSpec,
    Upcasters,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub opened: bool,
    pub total: i64,
    pub additions: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum TallyEvent {
    Opened {
        name: String,
    },
    /// Version 2; version 1 called the field `n`.
    Added {
        amount: i64,
    },
}

impl DomainEvent for TallyEvent {
    const CONTEXT: &'static str = "tally";

    fn schema_version(short_type: &str) -> u32 {
        match short_type {
            "Added" => 2,
            _ => 1,
        }
    }
}

/// The upcaster a real context would register when it renamed `n` to `amount`.
pub fn upcasters() -> Upcasters {
    Upcasters::new().register("tally.Added", 1, |mut payload: Value| {
        let n = payload
            .get_mut("n")
            .map(Value::take)
            .ok_or("v1 Added has no `n`")?;
        Ok(json!({ "amount": n }))
    })
}

#[derive(Debug, Clone)]
pub enum TallyCommand {
    Open { name: String },
    Add { amount: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TallyError {
    #[error("the tally is already open")]
    AlreadyOpen,
    #[error("the tally is not open")]
    NotOpen,
    #[error("only positive amounts can be added")]
    NotPositive,
}

impl Aggregate for Tally {
    const KIND: &'static str = "tally.tally";
    const SNAPSHOT_EVERY: Option<u64> = Some(5);

    type Command = TallyCommand;
    type Event = TallyEvent;
    type Error = TallyError;

    fn apply(&mut self, event: &TallyEvent) {
        match event {
            TallyEvent::Opened { .. } => self.opened = true,
            TallyEvent::Added { amount } => {
                self.total += amount;
                self.additions += 1;
            }
        }
    }

    fn decide(&self, command: &TallyCommand) -> Result<Vec<TallyEvent>, TallyError> {
        match command {
            TallyCommand::Open { .. } if self.opened => Err(TallyError::AlreadyOpen),
            TallyCommand::Open { name } => Ok(vec![TallyEvent::Opened { name: name.clone() }]),
            TallyCommand::Add { .. } if !self.opened => Err(TallyError::NotOpen),
            TallyCommand::Add { amount } if *amount <= 0 => Err(TallyError::NotPositive),
            TallyCommand::Add { amount } => Ok(vec![TallyEvent::Added { amount: *amount }]),
        }
    }
}

/// Totals per tally, in `tally_totals (stream_id, total, additions)`.
pub struct TallyTotals;

pub const TALLY_TABLES: &[TableSpec] = &[TableSpec {
    name: "tally_totals",
    create: &["CREATE TABLE {table} (stream_id TEXT PRIMARY KEY, total BIGINT NOT NULL, additions BIGINT NOT NULL)"],
}];

#[async_trait]
impl Projection<msa_sql::Tx> for TallyTotals {
    fn name(&self) -> &'static str {
        "tally.totals"
    }

    fn tables(&self) -> &'static [TableSpec] {
        TALLY_TABLES
    }

    async fn apply(
        &self,
        tx: &mut msa_sql::Tx,
        tables: &TableNames,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        if !event.event_type.starts_with("tally.") {
            return Ok(());
        }
        let table = tables.table("tally_totals");
        let (total, additions) = match decode::<TallyEvent>(event)? {
            TallyEvent::Opened { .. } => (0, 0),
            TallyEvent::Added { amount } => (amount, 1),
        };
        sqlx::query(&format!(
            "INSERT INTO {table} (stream_id, total, additions) VALUES ($1, $2, $3)
             ON CONFLICT (stream_id) DO UPDATE SET total = {table}.total + excluded.total,
                 additions = {table}.additions + excluded.additions"
        ))
        .bind(event.stream_id.as_str())
        .bind(total)
        .bind(additions)
        .execute(&mut **tx)
        .await
        .map_err(ProjectionError::apply)?;
        Ok(())
    }
}
