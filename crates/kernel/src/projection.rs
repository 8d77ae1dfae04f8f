//! Projections: read models fed by the global log, each with its own checkpoint committed in the
//! same transaction as its changes, each rebuildable from zero.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::watch;
use tracing::Instrument;

use crate::{
    metric, DecodeError, EventStore, LogPosition, Lookout, ReadModelStore, RecordedEvent,
    StoreError,
};

/// A read-model table: its logical name (the view readers query) and the statements that create
/// one generation of it, with `{table}` standing for the generation's physical name.
#[derive(Debug, Clone, Copy)]
pub struct TableSpec {
    pub name: &'static str,
    pub create: &'static [&'static str],
}

/// The physical table names of one generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableNames {
    pub generation: u32,
}

impl TableNames {
    /// The physical name of a logical table in this generation (`user_directory_g2`).
    pub fn table(&self, logical: &str) -> String {
        physical_table(logical, self.generation)
    }
}

pub fn physical_table(logical: &str, generation: u32) -> String {
    format!("{logical}_g{generation}")
}

/// Why a projection could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Apply(String),
}

impl ProjectionError {
    pub fn apply(error: impl std::fmt::Display) -> Self {
        Self::Apply(error.to_string())
    }
}

/// A read model built from events. `Tx` is the query database's transaction type.
#[async_trait]
pub trait Projection<Tx: Send>: Send + Sync {
    /// Unique per context, `<context>.<read model>` (`user.directory`).
    fn name(&self) -> &'static str;

    fn tables(&self) -> &'static [TableSpec];

    /// Whether the event changes this read model. Only wanted events are applied; a run of
    /// unwanted ones is passed over without a transaction (a payment list need not pay for every
    /// message credit spent). The default wants everything.
    fn wants(&self, _event: &RecordedEvent) -> bool {
        true
    }

    /// Applies one wanted event inside `tx`, writing only to `tables`' physical names.
    async fn apply(
        &self,
        tx: &mut Tx,
        tables: &TableNames,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError>;

    /// Applies a batch's wanted events, in log order, inside `tx`. The default applies them one
    /// at a time; a projection may write a run of them with fewer statements (one insert for the
    /// messages of a batch). When it fails, the runner applies the batch again one event at a
    /// time, in a transaction it rolls back, to name the event at fault.
    async fn apply_all(
        &self,
        tx: &mut Tx,
        tables: &TableNames,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        for event in events {
            self.apply(tx, tables, event).await?;
        }
        Ok(())
    }
}

/// A projection failed on a stored event: the batch was rolled back and the checkpoint kept.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("projection {projection} failed at {stream_id}@{version} ({event_type}): {source}")]
    Event {
        projection: String,
        stream_id: String,
        version: u64,
        event_type: String,
        #[source]
        source: ProjectionError,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The least time between the starts of two batches of a projection while events keep coming
/// (a backlog is still read in full batches back to back). A read model trails its log by up to
/// this much more under a steady stream, and costs a transaction (five statements or so, whatever
/// the batch holds) per pace rather than per append. Longer than a relay's pace: nothing waits
/// on a read model the way delivery waits on the bus, and at 10 ms the four projections of the
/// microservices were PostgreSQL's largest share of statements.
pub const PROJECTION_PACE: Duration = Duration::from_millis(50);

/// Runs projections over an event store's global log into a read-model store.
pub struct ProjectionRunner<R: ReadModelStore> {
    events: Arc<dyn EventStore>,
    read_models: Arc<R>,
    batch_size: usize,
    idle_poll: Duration,
}

impl<R: ReadModelStore> Clone for ProjectionRunner<R> {
    fn clone(&self) -> Self {
        Self {
            events: self.events.clone(),
            read_models: self.read_models.clone(),
            batch_size: self.batch_size,
            idle_poll: self.idle_poll,
        }
    }
}

impl<R: ReadModelStore> ProjectionRunner<R> {
    pub fn new(events: Arc<dyn EventStore>, read_models: Arc<R>) -> Self {
        Self {
            events,
            read_models,
            batch_size: 500,
            idle_poll: Duration::from_millis(500),
        }
    }

    /// Events applied per transaction.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size.max(1);
        self
    }

    /// How often an idle runner looks for events appended by other processes.
    pub fn with_idle_poll(mut self, idle_poll: Duration) -> Self {
        self.idle_poll = idle_poll;
        self
    }

    /// Creates the projection's first generation if it has none.
    pub async fn ensure_tables(&self, projection: &dyn Projection<R::Tx>) -> Result<(), RunError> {
        let mut tx = self.read_models.begin().await?;
        let live = self
            .read_models
            .live_generation(&mut tx, projection.name())
            .await?;
        // Committed, never dropped: see `step`.
        self.read_models.commit(tx).await?;
        if live.is_none() {
            let generation = self
                .read_models
                .latest_generation(projection.name())
                .await?
                + 1;
            self.read_models
                .create_generation(projection.name(), projection.tables(), generation)
                .await?;
            self.read_models
                .activate_generation(projection.name(), projection.tables(), generation)
                .await?;
        }
        Ok(())
    }

    /// Applies every event not yet applied to the live generation; returns how many.
    pub async fn catch_up(&self, projection: &dyn Projection<R::Tx>) -> Result<u64, RunError> {
        self.ensure_tables(projection).await?;
        let mut cursor = None;
        let mut applied = 0;
        loop {
            match self
                .step(projection, None, &mut cursor, Duration::ZERO)
                .await?
            {
                0 => return Ok(applied),
                n => applied += n as u64,
            }
        }
    }

    /// Catches up, then follows the log until `stop` turns true. Failures are logged and retried
    /// with a growing pause; the checkpoint never passes an event that failed.
    pub async fn run(&self, projection: &dyn Projection<R::Tx>, mut stop: watch::Receiver<bool>) {
        let appended = self.events.appended();
        let mut backoff = Duration::from_millis(100);
        // The tables are made once (and again after a failure, in case they went missing), not
        // on every step: a busy log is stepped through hundreds of times a second.
        let mut ensured = false;
        let mut cursor = None;
        let mut lookout = Lookout::default();
        loop {
            if *stop.borrow() {
                return;
            }
            let wake = appended.notified();
            let started = tokio::time::Instant::now();
            let outcome = match ensured {
                true => {
                    self.step(projection, None, &mut cursor, SAVE_PASSED_EVERY)
                        .await
                }
                false => match self.ensure_tables(projection).await {
                    Ok(()) => {
                        ensured = true;
                        self.step(projection, None, &mut cursor, SAVE_PASSED_EVERY)
                            .await
                    }
                    Err(error) => Err(error),
                },
            };
            if outcome.is_err() {
                ensured = false;
            }
            if matches!(outcome, Ok(read) if read > 0) {
                lookout.log_moved();
            }
            let pause = match outcome {
                Ok(0) => {
                    backoff = Duration::from_millis(100);
                    lookout.pause(self.idle_poll)
                }
                Ok(read) if read >= self.batch_size => continue,
                // The log is drained for now: the events appended meanwhile are read together
                // once the pace has passed, so a steady stream costs a transaction per pace
                // rather than one per append (an append after a quiet spell goes at once).
                Ok(_) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(started + PROJECTION_PACE) => {}
                        _ = stop.changed() => {}
                    }
                    continue;
                }
                Err(error) => {
                    tracing::error!(projection = projection.name(), %error, "projection stalled; retrying");
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    backoff
                }
            };
            tokio::select! {
                _ = wake => lookout.log_moved(),
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Builds a new generation from the start of the log beside the live one, then makes it live
    /// in one transaction. Returns the number of events applied.
    pub async fn rebuild(&self, projection: &dyn Projection<R::Tx>) -> Result<u64, RunError> {
        self.rebuild_reporting(projection, &|_| {}).await
    }

    /// [`rebuild`](Self::rebuild), calling `progress` with the events applied so far after each
    /// batch (for a progress line on long rebuilds).
    pub async fn rebuild_reporting(
        &self,
        projection: &dyn Projection<R::Tx>,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<u64, RunError> {
        let name = projection.name();
        let generation = self.read_models.latest_generation(name).await? + 1;
        self.read_models
            .create_generation(name, projection.tables(), generation)
            .await?;
        let mut cursor = None;
        let mut applied = 0;
        loop {
            match self
                .step(projection, Some(generation), &mut cursor, Duration::ZERO)
                .await?
            {
                0 => break,
                n => {
                    applied += n as u64;
                    progress(applied);
                }
            }
        }
        self.read_models
            .activate_generation(name, projection.tables(), generation)
            .await?;
        Ok(applied)
    }

    /// Where a runner stands (`generation` given: that one, being rebuilt; else the live one),
    /// read inside `tx`. `None` when the projection has no live generation.
    async fn locate(
        &self,
        tx: &mut R::Tx,
        name: &str,
        generation: Option<u32>,
    ) -> Result<Option<Cursor>, StoreError> {
        let (generation, stored) = match generation {
            Some(generation) => (
                generation,
                self.read_models.checkpoint(tx, name, generation).await?,
            ),
            None => match self.read_models.live_checkpoint(tx, name).await? {
                Some(live) => live,
                None => return Ok(None),
            },
        };
        Ok(Some(Cursor {
            generation,
            read: stored,
            stored,
            stored_at: Instant::now(),
        }))
    }

    /// One batch: reads after the cursor (outside any transaction), then, if the batch holds an
    /// event the projection wants, applies it and moves the checkpoint in one transaction. A batch
    /// of unwanted events only moves the cursor; its checkpoint is stored once `save_passed_every`
    /// has passed (or at the next applied batch). Returns the events read.
    async fn step(
        &self,
        projection: &dyn Projection<R::Tx>,
        generation: Option<u32>,
        cursor: &mut Option<Cursor>,
        save_passed_every: Duration,
    ) -> Result<usize, RunError> {
        let name = projection.name();
        let mut at = match cursor.take() {
            Some(at) => at,
            None => {
                let mut tx = self.read_models.begin().await?;
                let located = self.locate(&mut tx, name, generation).await;
                // Committed, never dropped: on PostgreSQL the row lock gave it a transaction id,
                // and a dropped transaction would sit in the pool unfinished, holding back every
                // gap-safe log reader (their horizon is the oldest running transaction id).
                self.read_models.commit(tx).await?;
                match located? {
                    Some(at) => at,
                    None => return Ok(0),
                }
            }
        };
        let events = self.events.read_all(at.read, self.batch_size).await?;
        let Some(last) = events.last().map(|event| event.position) else {
            if at.read != at.stored && at.stored_at.elapsed() >= save_passed_every {
                self.save_passed(name, generation, &mut at).await?;
            }
            *cursor = Some(at);
            self.record_lag(name, None).await;
            return Ok(0);
        };
        if !events.iter().any(|event| projection.wants(event)) {
            at.read = last;
            if at.stored_at.elapsed() >= save_passed_every {
                self.save_passed(name, generation, &mut at).await?;
            }
            let read = events.len();
            *cursor = Some(at);
            let newest = events.last().map(|e| (e.position.position, e.occurred_at));
            self.record_lag(name, (read >= self.batch_size).then_some(newest).flatten())
                .await;
            return Ok(read);
        }
        let span =
            tracing::debug_span!("projection batch", projection = name, events = events.len());
        let started = Instant::now();
        let wanted = events
            .iter()
            .filter(|event| projection.wants(event))
            .count();
        let newest = events.last().map(|e| (e.position.position, e.occurred_at));
        let full = events.len() >= self.batch_size;
        let applied = self
            .apply_batch(projection, generation, cursor, at, events)
            .instrument(span)
            .await?;
        let context = metric::context_of(name);
        metrics::histogram!(metric::name(context, "projection_batch_duration_seconds"), "projection" => name)
            .record(started.elapsed().as_secs_f64());
        metrics::counter!(metric::name(context, "projection_events_total"), "projection" => name)
            .increment(wanted as u64);
        self.record_lag(name, full.then_some(newest).flatten())
            .await;
        Ok(applied)
    }

    /// How far behind the projection is after a read: `behind` is the newest event read when
    /// the read was a full batch (more are waiting), `None` when it reached the end of the log.
    async fn record_lag(
        &self,
        name: &'static str,
        behind: Option<(i64, chrono::DateTime<chrono::Utc>)>,
    ) {
        let (events, age) = match behind {
            Some((position, occurred_at)) => (
                self.events
                    .head_position()
                    .await
                    .map_or(0, |head| (head - position).max(0)),
                (chrono::Utc::now() - occurred_at)
                    .to_std()
                    .unwrap_or_default(),
            ),
            None => (0, Duration::ZERO),
        };
        let context = metric::context_of(name);
        metrics::gauge!(metric::name(context, "projection_lag_events"), "projection" => name)
            .set(events as f64);
        metrics::gauge!(metric::name(context, "projection_lag_seconds"), "projection" => name)
            .set(age.as_secs_f64());
    }

    /// Applies a batch holding events the projection wants and moves its checkpoint past it, in
    /// one transaction.
    async fn apply_batch(
        &self,
        projection: &dyn Projection<R::Tx>,
        generation: Option<u32>,
        cursor: &mut Option<Cursor>,
        mut at: Cursor,
        mut events: Vec<RecordedEvent>,
    ) -> Result<usize, RunError> {
        let name = projection.name();
        let mut tx = self.read_models.begin().await?;
        // Another runner (a second instance on PostgreSQL, a rebuild's swap) may have moved the
        // checkpoint since this one last stored it: then the batch is read again from there.
        let stored = match self.locate(&mut tx, name, generation).await {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                self.read_models.commit(tx).await?;
                return Ok(0);
            }
            Err(error) => {
                self.read_models.rollback(tx).await?;
                return Err(error.into());
            }
        };
        if (stored.generation, stored.stored) != (at.generation, at.stored) {
            at = stored;
            events = match self.events.read_all(at.read, self.batch_size).await {
                Ok(events) => events,
                Err(error) => {
                    self.read_models.rollback(tx).await?;
                    return Err(error.into());
                }
            };
        }
        let Some(last) = events.last().map(|event| event.position) else {
            self.read_models.commit(tx).await?;
            *cursor = Some(at);
            return Ok(0);
        };
        let tables = TableNames {
            generation: at.generation,
        };
        let wanted: Vec<&RecordedEvent> = events
            .iter()
            .filter(|event| projection.wants(event))
            .collect();
        if let Err(source) = projection.apply_all(&mut tx, &tables, &wanted).await {
            self.read_models.rollback(tx).await?;
            return Err(self.at_fault(projection, &tables, &wanted, source).await);
        }
        self.read_models
            .save_checkpoint(&mut tx, name, at.generation, last)
            .await?;
        self.read_models.commit(tx).await?;
        *cursor = Some(Cursor {
            read: last,
            stored: last,
            stored_at: Instant::now(),
            ..at
        });
        Ok(events.len())
    }

    /// The error of a failed batch, naming the event at fault: the batch is applied again one
    /// event at a time in a transaction that is rolled back. When no event fails on its own (or
    /// that transaction cannot begin), the batch's first event is named with the batch's error.
    async fn at_fault(
        &self,
        projection: &dyn Projection<R::Tx>,
        tables: &TableNames,
        events: &[&RecordedEvent],
        batch_error: ProjectionError,
    ) -> RunError {
        let named = |event: &RecordedEvent, source| RunError::Event {
            projection: projection.name().to_owned(),
            stream_id: event.stream_id.to_string(),
            version: event.version,
            event_type: event.event_type.clone(),
            source,
        };
        let mut fault = None;
        if let Ok(mut tx) = self.read_models.begin().await {
            for event in events {
                if let Err(source) = projection.apply(&mut tx, tables, event).await {
                    fault = Some(named(event, source));
                    break;
                }
            }
            if let Err(error) = self.read_models.rollback(tx).await {
                tracing::warn!(projection = projection.name(), %error, "rolling back a trial batch failed");
            }
        }
        match (fault, events.first()) {
            (Some(fault), _) => fault,
            (None, Some(first)) => named(first, batch_error),
            // A batch of nothing failed: nothing to name but the error.
            (None, None) => RunError::Store(StoreError::backend(batch_error)),
        }
    }

    /// Stores the checkpoint of events passed over, unless another runner moved it meanwhile
    /// (then the cursor is dropped and located again).
    async fn save_passed(
        &self,
        name: &str,
        generation: Option<u32>,
        at: &mut Cursor,
    ) -> Result<(), StoreError> {
        let mut tx = self.read_models.begin().await?;
        let stored = match self.locate(&mut tx, name, generation).await {
            Ok(stored) => stored,
            Err(error) => {
                self.read_models.rollback(tx).await?;
                return Err(error);
            }
        };
        match stored {
            Some(stored) if (stored.generation, stored.stored) == (at.generation, at.stored) => {
                self.read_models
                    .save_checkpoint(&mut tx, name, at.generation, at.read)
                    .await?;
                at.stored = at.read;
                at.stored_at = Instant::now();
            }
            // Re-read from what is stored: the unwanted events are passed again, cheaply.
            Some(stored) => *at = stored,
            None => {}
        }
        self.read_models.commit(tx).await
    }
}

/// How long a following runner may keep the checkpoint of passed-over events only in memory.
/// After a restart they are read (and passed over) again; nothing is applied twice.
const SAVE_PASSED_EVERY: Duration = Duration::from_secs(1);

/// Where a runner stands in the log: the generation it feeds, what it has read up to, and the
/// checkpoint stored for it (behind `read` only by events it did not want).
#[derive(Debug, Clone, Copy)]
struct Cursor {
    generation: u32,
    read: LogPosition,
    stored: LogPosition,
    stored_at: Instant,
}
