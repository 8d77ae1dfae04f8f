//! The query side's storage port: transactions that carry a read-model change together with its
//! checkpoint (projections) or its inbox entry (bus consumers), and the table generations that let
//! a projection be rebuilt beside the live one.

use async_trait::async_trait;
use uuid::Uuid;

use crate::{LogPosition, StoreError, TableSpec};

/// A query database: read-model tables, projection checkpoints and the consumer inbox.
///
/// A projection's tables exist in generations (`user_directory_g2`); a view with the plain name
/// (`user_directory`) points at the live generation, so readers never see a half-built rebuild.
#[async_trait]
pub trait ReadModelStore: Send + Sync + 'static {
    /// One transaction; dropping it without [`commit`](Self::commit) rolls it back.
    type Tx: Send;

    async fn begin(&self) -> Result<Self::Tx, StoreError>;

    async fn commit(&self, tx: Self::Tx) -> Result<(), StoreError>;

    /// Ends `tx` without its changes. Prefer it to dropping a transaction: a dropped one may sit
    /// unfinished in a pool, and on PostgreSQL an unfinished transaction that wrote or locked
    /// holds back every gap-safe log reader.
    async fn rollback(&self, tx: Self::Tx) -> Result<(), StoreError>;

    /// The projection's live generation, or `None` before its first run.
    async fn live_generation(
        &self,
        tx: &mut Self::Tx,
        projection: &str,
    ) -> Result<Option<u32>, StoreError>;

    /// The live generation and where it has read the log up to, `None` before the projection's
    /// first run; locked like [`live_generation`](Self::live_generation). A runner asks this
    /// before every batch it applies: one statement, where the store can.
    async fn live_checkpoint(
        &self,
        tx: &mut Self::Tx,
        projection: &str,
    ) -> Result<Option<(u32, LogPosition)>, StoreError>;

    /// The highest generation ever created for the projection (0 when none).
    async fn latest_generation(&self, projection: &str) -> Result<u32, StoreError>;

    /// Where a generation of a projection has read the global log up to.
    async fn checkpoint(
        &self,
        tx: &mut Self::Tx,
        projection: &str,
        generation: u32,
    ) -> Result<LogPosition, StoreError>;

    async fn save_checkpoint(
        &self,
        tx: &mut Self::Tx,
        projection: &str,
        generation: u32,
        position: LogPosition,
    ) -> Result<(), StoreError>;

    /// Creates the empty tables of a new generation, dropping leftovers of an abandoned rebuild.
    async fn create_generation(
        &self,
        projection: &str,
        tables: &[TableSpec],
        generation: u32,
    ) -> Result<(), StoreError>;

    /// In one transaction: points the views at `generation` and drops the tables it replaces.
    async fn activate_generation(
        &self,
        projection: &str,
        tables: &[TableSpec],
        generation: u32,
    ) -> Result<(), StoreError>;

    /// The inbox: records that `consumer` handled `event_id`, inside `tx`. Returns false when it
    /// already had, in which case the caller must skip the effect.
    async fn record_handled(
        &self,
        tx: &mut Self::Tx,
        consumer: &str,
        event_id: Uuid,
    ) -> Result<bool, StoreError>;
}
