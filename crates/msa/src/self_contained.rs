//! Starting a self-contained context by its descriptor (`msa_context::SelfContained`): its query
//! database migrated, its projections started, its routes over its stores. Nothing here names a
//! context.

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use msa_context::{ContextParts, SelfContained};
use msa_http::auth::TokenVerifier;
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
    let projections = crate::projection_start::start(
        context,
        stores.events.clone(),
        &stores.read_models,
        stop.clone(),
    )
    .await?;
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
