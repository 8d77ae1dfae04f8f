//! One process's readers of a global log share their reads of its end.
//!
//! A context's log has several readers in one process: its relay, each projection, chat's live
//! feed, the in-process bus. Each used to read the log's end on its own, so one append cost every
//! reader a query (PostgreSQL: about a thousand log reads a second at a thousand messages a
//! second, a fifth of the database's statements). [`SharedTail`] wraps the context's event store
//! and keeps the stretch of the log last read at its end in memory: a reader inside that stretch
//! is answered from memory, and the readers that reach its end wait for one read instead of
//! making one each.
//!
//! Why this is sound: every read of the global log is gap-safe (the store never returns an event
//! while an earlier one may still commit), so the events a read returned after a position are
//! the log's events after it, for good. The stretch held is always such a read, or reads joined
//! end to start; nothing appended is put in it before a read returns it.
//!
//! Events are never changed, but an operator may repair a bad one by hand (a projection stalls on
//! it until then). So an event is held for [`HELD_FOR`] after it was read, no longer: a reader
//! that retries after its backoff reads the repaired log.
//!
//! Readers also look again quickly after the log moved (see [`Lookout`](crate::lookout::Lookout)):
//! an event this process appended may be hidden for a moment behind PostgreSQL's horizon. Once
//! every event appended through this tail has been read, those looks can find only what other
//! processes appended, which readers find by polling anyway; so for [`QUIET`] after a read that
//! reached the end, such a reader is told "nothing new" from memory. Without this, each append
//! cost every reader of a quiet log half a dozen empty reads (PostgreSQL: about twenty log reads
//! per message at ten messages a second).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::{
    AppendError, EventStore, IdempotencyRecord, LogPosition, NewEvent, RecordedEvent, Snapshot,
    StoreError, StreamId,
};

/// Events held by default: a few seconds of a busy context, a few MiB.
pub const DEFAULT_HELD: usize = 4096;

/// How long an event is held after it was read.
pub const HELD_FOR: Duration = Duration::from_secs(1);

/// Events asked for when the end of the log is read for the readers waiting at it.
const READ_AT_END: usize = 500;

/// How long "nothing new" read at the end stands for readers at the end, while nothing appended
/// through this tail is unread: the most it delays events other processes append (which readers
/// find by polling, every 200-500 ms).
pub const QUIET: Duration = Duration::from_millis(100);

/// An event store whose log readers share the log's end (see the module docs). Everything but
/// `read_all` goes straight to the wrapped store.
pub struct SharedTail {
    inner: Arc<dyn EventStore>,
    held: usize,
    tail: Mutex<Option<Tail>>,
    /// Held by the one reader reading at the tail's end; the others wait and look again. Holds
    /// when the last such read started, if it reached the end of what the log showed.
    reading: tokio::sync::Mutex<Option<Instant>>,
    appending: Mutex<Appending>,
}

/// What was appended through the tail: the appends still running, and the last event stored.
#[derive(Default)]
struct Appending {
    running: usize,
    end: LogPosition,
}

/// One append through the tail, counted as running until it has answered or was given up.
struct RunningAppend<'a> {
    appending: &'a Mutex<Appending>,
    /// The last event the append stored, once it has answered.
    stored: Option<LogPosition>,
}

impl<'a> RunningAppend<'a> {
    fn start(appending: &'a Mutex<Appending>) -> Self {
        lock(appending).running += 1;
        Self {
            appending,
            stored: None,
        }
    }

    fn stored(mut self, events: &[RecordedEvent]) {
        self.stored = events.iter().map(|event| event.position).max();
    }
}

impl Drop for RunningAppend<'_> {
    /// Ends the append and moves the end to what it stored under one lock, so no reader sees it
    /// ended without its events. An append that failed with an unknown outcome or was given up
    /// (its caller dropped it) may still be stored: readers then find it at most [`QUIET`] late.
    fn drop(&mut self) {
        let mut appending = lock(self.appending);
        appending.running -= 1;
        if let Some(last) = self.stored {
            appending.end = appending.end.max(last);
        }
    }
}

/// A panic while holding one of the tail's locks cannot leave it half-changed: each change under
/// them is a whole event pushed or popped, or a counter or position set.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A stretch of the log: every event after `start` up to the last one held, in log order, each
/// with when it was read.
struct Tail {
    start: LogPosition,
    events: VecDeque<(Instant, RecordedEvent)>,
}

impl Tail {
    fn end(&self) -> LogPosition {
        self.events
            .back()
            .map_or(self.start, |(_, event)| event.position)
    }

    /// The held events after `after` (up to `limit`), or `None` when `after` is outside the
    /// stretch. Empty when `after` is its end.
    fn after(&mut self, after: LogPosition, limit: usize) -> Option<Vec<RecordedEvent>> {
        self.forget(usize::MAX);
        if after < self.start || after > self.end() {
            return None;
        }
        let first = self
            .events
            .partition_point(|(_, event)| event.position <= after);
        let held = self.events.range(first..).take(limit);
        Some(held.map(|(_, event)| event.clone()).collect())
    }

    /// Adds a read made from the end.
    fn extend(&mut self, read: &[RecordedEvent], held: usize) {
        let now = Instant::now();
        self.events
            .extend(read.iter().map(|event| (now, event.clone())));
        self.forget(held);
    }

    /// Forgets the oldest events beyond `held`, and those read more than `HELD_FOR` ago.
    fn forget(&mut self, held: usize) {
        while let Some((read, _)) = self.events.front() {
            if self.events.len() <= held && read.elapsed() <= HELD_FOR {
                break;
            }
            let (_, forgotten) = self.events.pop_front().expect("an event");
            self.start = forgotten.position;
        }
    }
}

impl SharedTail {
    /// `events` as a process's log readers use it: behind a shared tail of the default size.
    pub fn wrap(events: impl EventStore + 'static) -> Arc<dyn EventStore> {
        Arc::new(Self::new(Arc::new(events)))
    }

    /// Over `inner`, holding up to [`DEFAULT_HELD`] events.
    pub fn new(inner: Arc<dyn EventStore>) -> Self {
        Self::holding(inner, DEFAULT_HELD)
    }

    /// Keeps at most `held` events in memory.
    pub fn holding(inner: Arc<dyn EventStore>, held: usize) -> Self {
        Self {
            inner,
            held: held.max(1),
            tail: Mutex::new(None),
            reading: tokio::sync::Mutex::new(None),
            appending: Mutex::new(Appending::default()),
        }
    }

    fn tail(&self) -> MutexGuard<'_, Option<Tail>> {
        lock(&self.tail)
    }

    /// Whether everything appended through this tail is at or before `at` (none still running).
    fn own_appends_read(&self, at: LogPosition) -> bool {
        let appending = lock(&self.appending);
        appending.running == 0 && appending.end <= at
    }

    fn held_after(&self, after: LogPosition, limit: usize) -> Option<Vec<RecordedEvent>> {
        self.tail()
            .as_mut()
            .and_then(|tail| tail.after(after, limit))
    }

    /// A reader at the end of the stretch: one of them reads the log, the others use that read.
    async fn read_at_end(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let asked = Instant::now();
        let mut last_read = self.reading.lock().await;
        match self.held_after(after, limit) {
            Some(events) if !events.is_empty() => return Ok(events),
            // A read that started after this reader asked and found the end of the log saw
            // all this reader would see.
            Some(events) if last_read.is_some_and(|started| started >= asked) => return Ok(events),
            // Nothing of this process's is unread and the end was read a moment ago.
            Some(events)
                if last_read.is_some_and(|started| started.elapsed() < QUIET)
                    && self.own_appends_read(after) =>
            {
                return Ok(events)
            }
            Some(_) => {}
            None => return self.read_elsewhere(after, limit).await,
        }
        let started = Instant::now();
        *last_read = None;
        let read = self.inner.read_all(after, limit.max(READ_AT_END)).await?;
        if read.len() < limit.max(READ_AT_END) {
            *last_read = Some(started);
        }
        let mut tail = self.tail();
        if let Some(tail) = tail.as_mut().filter(|tail| tail.end() == after) {
            tail.extend(&read, self.held);
        }
        drop(tail);
        Ok(read.into_iter().take(limit).collect())
    }

    /// A reader outside the stretch reads the log itself. When it reached the end of the log
    /// beyond the stretch (or there is none yet), its read becomes the stretch.
    async fn read_elsewhere(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let read = self.inner.read_all(after, limit).await?;
        if read.len() < limit {
            let mut tail = self.tail();
            if tail.as_ref().is_none_or(|tail| after > tail.end()) {
                let mut fresh = Tail {
                    start: after,
                    events: VecDeque::new(),
                };
                fresh.extend(&read, self.held);
                *tail = Some(fresh);
            }
        }
        Ok(read)
    }
}

#[async_trait]
impl EventStore for SharedTail {
    async fn append(
        &self,
        stream_id: &StreamId,
        expected_version: u64,
        events: Vec<NewEvent>,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<Vec<RecordedEvent>, AppendError> {
        let running = RunningAppend::start(&self.appending);
        let stored = self
            .inner
            .append(stream_id, expected_version, events, idempotency)
            .await?;
        running.stored(&stored);
        Ok(stored)
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

    async fn correlated(
        &self,
        correlation_id: uuid::Uuid,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.correlated(correlation_id, limit).await
    }

    async fn naming(&self, id: uuid::Uuid, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.naming(id, limit).await
    }

    async fn read_all(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        match self.held_after(after, limit) {
            Some(events) if !events.is_empty() => Ok(events),
            Some(_) => self.read_at_end(after, limit).await,
            None => self.read_elsewhere(after, limit).await,
        }
    }

    async fn head_position(&self) -> Result<i64, StoreError> {
        self.inner.head_position().await
    }

    async fn last_position(&self) -> Result<LogPosition, StoreError> {
        self.inner.last_position().await
    }

    async fn last_committed_position(&self) -> Result<LogPosition, StoreError> {
        self.inner.last_committed_position().await
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
