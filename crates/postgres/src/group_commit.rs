//! Appends committed in groups: a committer takes every append waiting for it when it starts and
//! stores them in one transaction, so they share one commit and one WAL flush.
//!
//! A commit waits for the WAL to reach the disk. With a commit per append, PostgreSQL flushed
//! about 0.6 times per commit under the chat benchmark (1,500 flushes a second at 1,000 messages a
//! second, a send being two appends), and the flushes, not the statements, were the largest cost
//! of a send in the database: with `synchronous_commit = off` (not an option for a store of
//! payments) the same deployment took 40% more messages. SQLite's writer does the same
//! (`msa_sqlite`'s `group_commit.rs`).
//!
//! Each append stays the one statement of [`crate::append::AppendStatement`]: within the group's
//! transaction a stream appended to earlier in the group is seen by the next append's guard,
//! so a stale expected version is a conflict as before. A statement that fails (a used
//! idempotency key, a writer elsewhere that won the same version) aborts the transaction: the
//! group is rolled back and every append of it is stored again on its own, so each gets its own
//! answer and none is lost. Under light load a group is one append in its own implicit
//! transaction, as before, so nothing waits for company.
//!
//! Committers work side by side, each with a share of the streams (by a hash of the stream id), so
//! light load keeps the parallelism of a connection per append. A stream always goes to the same
//! committer: two groups in flight at once that append to the same stream (two members posting
//! to one room) would make the later one wait for the earlier one's commit and then fail on the
//! version's unique key, rolling back every append of it. (With one committer for all streams
//! every append waited for the round trips of the group before it: at 500 sends a second the
//! send p50 was 29 ms against 10 ms without groups, in one pairing.)

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use msa_kernel::{AppendError, IdempotencyRecord, NewEvent, StoreError, StreamId};
use sqlx::postgres::PgRow;
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Notify};

use crate::append::{recorded, AppendStatement, Outcome};

/// Appends taken into one transaction at most.
const MAX_GROUP: usize = 128;

/// Committers per store, each holding a pooled connection while it commits.
const COMMITTERS: usize = 4;

/// One caller's append, waiting for the committer.
pub(crate) struct Pending {
    pub stream_id: StreamId,
    pub expected_version: u64,
    pub events: Vec<NewEvent>,
    pub idempotency: Option<IdempotencyRecord>,
    pub answer: oneshot::Sender<Outcome>,
}

impl Pending {
    fn statement(&self) -> AppendStatement<'_> {
        AppendStatement {
            stream_id: &self.stream_id,
            expected_version: self.expected_version,
            events: &self.events,
            idempotency: self.idempotency.as_ref(),
        }
    }
}

/// The committers of a store; they stop when it is dropped.
pub(crate) struct Committers {
    queues: Vec<mpsc::UnboundedSender<Pending>>,
    hasher: RandomState,
}

impl Committers {
    pub(crate) fn start(pool: &PgPool, appended: &Arc<Notify>) -> Self {
        let queues = (0..COMMITTERS)
            .map(|_| committer(pool.clone(), appended.clone()))
            .collect();
        Self {
            queues,
            hasher: RandomState::new(),
        }
    }

    /// Hands the append to its stream's committer.
    pub(crate) fn send(&self, pending: Pending) -> Result<(), StoreError> {
        let shard = self.hasher.hash_one(pending.stream_id.as_str()) as usize % self.queues.len();
        self.queues[shard].send(pending).map_err(|_| stopped())
    }
}

fn committer(pool: PgPool, appended: Arc<Notify>) -> mpsc::UnboundedSender<Pending> {
    let (sender, mut waiting) = mpsc::unbounded_channel::<Pending>();
    tokio::spawn(async move {
        while let Some(first) = waiting.recv().await {
            let mut group = vec![first];
            while group.len() < MAX_GROUP {
                match waiting.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            if group.len() == 1 {
                let pending = group.pop().expect("one append");
                alone(&pool, pending).await;
            } else {
                together(&pool, group).await;
            }
            appended.notify_waiters();
        }
    });
    sender
}

/// One append in its own implicit transaction: one round trip.
async fn alone(pool: &PgPool, pending: Pending) {
    let rows = match pool.acquire().await {
        Ok(mut conn) => pending.statement().execute(&mut conn).await,
        Err(error) => Err(msa_sql::store_error(error).into()),
    };
    reply(pending, rows);
}

fn reply(pending: Pending, rows: Result<Option<Vec<PgRow>>, AppendError>) {
    let Pending {
        stream_id,
        expected_version,
        events,
        answer,
        ..
    } = pending;
    let outcome = rows.and_then(|rows| recorded(&stream_id, expected_version, events, rows));
    // A caller that stopped waiting has gone; its events are stored all the same.
    let _ = answer.send(outcome);
}

/// The group in one transaction; when a statement fails, each append again on its own.
async fn together(pool: &PgPool, group: Vec<Pending>) {
    let mut tx = match pool.begin().await {
        Ok(tx) => tx,
        Err(error) => return answer_all(group, &msa_sql::store_error(error)),
    };
    let mut stored = Vec::with_capacity(group.len());
    for pending in &group {
        match pending.statement().run(&mut tx).await {
            Ok(rows) => stored.push(rows),
            Err(_) => {
                // Nothing of the group stays: the statement's error already aborted it.
                let _ = tx.rollback().await;
                for pending in group {
                    alone(pool, pending).await;
                }
                return;
            }
        }
    }
    if let Err(error) = tx.commit().await {
        // Whether it committed is unknown: the callers hear so, as from a failed single append.
        return answer_all(group, &msa_sql::store_error(error));
    }
    for (pending, rows) in group.into_iter().zip(stored) {
        let rows = pending.statement().outcome(Ok(rows));
        reply(pending, rows);
    }
}

/// The committer is gone (its task ended with the runtime), or dropped an append unanswered.
pub(crate) fn stopped() -> StoreError {
    StoreError::Backend("the store's committer has stopped".into())
}

fn answer_all(group: Vec<Pending>, error: &StoreError) {
    for pending in group {
        let _ = pending.answer.send(Err(error.copied().into()));
    }
}
