//! Starting a context's projections by its descriptor (`msa_context::BoundedContext`): their
//! tables made, the ones it names caught up before the process serves, then each following the
//! log after the work due before it. Nothing here names a context.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use msa_context::BoundedContext;
use msa_kernel::{EventStore, Projection, ProjectionRunner};
use msa_sql::{SqlReadModelStore, Tx};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long a projection waits to try the work due before it again after a failure.
const RETRY_AFTER: Duration = Duration::from_secs(10);

/// `context`'s projections over `events` (its log, or what its service reads the log through)
/// into `read_models`, until `stop`.
pub async fn start(
    context: &'static dyn BoundedContext,
    events: Arc<dyn EventStore>,
    read_models: &Arc<SqlReadModelStore>,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>> {
    let runner = ProjectionRunner::new(events, read_models.clone());
    let projections = context.projections(read_models.backend());
    // A name that is not one of its projections would leave what it guards stale at start.
    for name in context.caught_up_before_serving() {
        if !projections
            .iter()
            .any(|projection| projection.name() == *name)
        {
            anyhow::bail!(
                "{} names {name} to catch up before serving, but has no such projection",
                context.name()
            );
        }
    }
    for projection in &projections {
        runner
            .ensure_tables(&**projection)
            .await
            .with_context(|| format!("creating the tables of {}", projection.name()))?;
    }
    for projection in &projections {
        if context
            .caught_up_before_serving()
            .contains(&projection.name())
        {
            runner
                .catch_up(&**projection)
                .await
                .with_context(|| format!("bringing {} up to date", projection.name()))?;
        }
    }
    let read_models = read_models.clone();
    Ok(tokio::spawn(async move {
        futures::future::join_all(
            projections.iter().map(|projection| {
                follow(context, &runner, &read_models, &**projection, stop.clone())
            }),
        )
        .await;
    }))
}

/// Does the work due before `projection` (trying again after a failure), then follows the log.
async fn follow(
    context: &dyn BoundedContext,
    runner: &ProjectionRunner<SqlReadModelStore>,
    read_models: &SqlReadModelStore,
    projection: &dyn Projection<Tx>,
    mut stop: watch::Receiver<bool>,
) {
    let name = projection.name();
    loop {
        match context.before_following(name, runner, read_models).await {
            Ok(0) => break,
            Ok(applied) => {
                tracing::info!(
                    projection = name,
                    applied,
                    "rebuilt before following the log"
                );
                break;
            }
            Err(error) => tracing::error!(projection = name, %error,
                "the work due before following the log failed; trying again in 10 s"),
        }
        tokio::select! {
            _ = tokio::time::sleep(RETRY_AFTER) => {}
            // Stopped, or nobody left to say stop.
            changed = stop.changed() => if changed.is_err() || *stop.borrow() {
                return;
            }
        }
    }
    runner.run(projection, stop).await
}
