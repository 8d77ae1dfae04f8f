//! Starting a self-contained context by its descriptor (and any context's projections by theirs) (`msa_context::SelfContained`): its query
//! database migrated, its projections' tables made and their runners following its log, its
//! routes over its stores. Nothing here names a context.

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use msa_context::{BoundedContext, ContextParts, SelfContained};
use msa_http::auth::TokenVerifier;
use msa_kernel::ProjectionRunner;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::storage::ContextStores;

/// A self-contained context, running.
pub struct Started {
    pub routes: Router,
    /// Its projections, until `stop`.
    pub projections: JoinHandle<()>,
}

pub async fn start(
    context: &'static dyn SelfContained,
    stores: &ContextStores,
    verifier: Arc<TokenVerifier>,
    stop: watch::Receiver<bool>,
) -> Result<Started> {
    let name = context.name();
    context
        .migrator()
        .run(stores.read_models.pool())
        .await
        .with_context(|| format!("migrating the {name} context's query database"))?;
    let projections = projections(context, stores, stop.clone()).await?;
    let parts = ContextParts {
        events: stores.events.clone(),
        read_models: stores.read_models.clone(),
        verifier,
        stop: stop.clone(),
    };
    let routes = context.routes(&parts);
    Ok(Started {
        routes,
        projections,
    })
}

/// A context's projections as its descriptor lists them: their tables made, then each runner
/// following the context's log until `stop`.
pub async fn projections(
    context: &dyn BoundedContext,
    stores: &ContextStores,
    stop: watch::Receiver<bool>,
) -> Result<JoinHandle<()>> {
    let runner = ProjectionRunner::new(stores.events.clone(), stores.read_models.clone());
    let projections = context.projections(stores.read_models.backend());
    for projection in &projections {
        runner
            .ensure_tables(&**projection)
            .await
            .with_context(|| format!("creating the tables of {}", projection.name()))?;
    }
    Ok(tokio::spawn(async move {
        futures::future::join_all(
            projections
                .iter()
                .map(|projection| runner.run(&**projection, stop.clone())),
        )
        .await;
    }))
}
