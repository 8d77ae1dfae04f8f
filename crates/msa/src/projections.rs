//! `msa projections list|rebuild`: every read model of the system, and rebuilding one.

use std::io::Write;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use msa_context::BoundedContext;
use msa_kernel::{ProjectionRunner, ReadModelStore};
use msa_sql::Backend;

use crate::cli::{RebuildArgs, StorageArgs};
use crate::storage;

/// The context whose projection is called `name` (names do not depend on the backend).
fn context_of(name: &str) -> Option<&'static dyn BoundedContext> {
    crate::contexts::all().into_iter().find(|context| {
        context
            .projections(Backend::Sqlite)
            .iter()
            .any(|projection| projection.name() == name)
    })
}

/// Every projection's name, by context.
fn names() -> Vec<&'static str> {
    crate::contexts::all()
        .iter()
        .flat_map(|context| context.projections(Backend::Sqlite))
        .map(|projection| projection.name())
        .collect()
}

pub async fn list(args: StorageArgs) -> Result<()> {
    for context in crate::contexts::all() {
        let stores = storage::open(&args, context.name()).await?;
        for projection in context.projections(stores.read_models.backend()) {
            show(&stores, projection.name()).await?;
        }
    }
    Ok(())
}

/// One line of `msa projections list`: the live generation and how far it applied the log.
async fn show(stores: &storage::ContextStores, name: &str) -> Result<()> {
    let mut tx = stores.read_models.begin().await?;
    let live = stores.read_models.live_generation(&mut tx, name).await?;
    let checkpoint = match live {
        Some(generation) => Some(
            stores
                .read_models
                .checkpoint(&mut tx, name, generation)
                .await?,
        ),
        None => None,
    };
    let head = stores.events.head_position().await?;
    match (live, checkpoint) {
        (Some(generation), Some(at)) => println!(
            "{name:<24} context {:<8} generation {generation:<4} at {} of {head}",
            stores.context, at.position
        ),
        _ => println!("{name:<24} context {:<8} not built yet", stores.context),
    }
    Ok(())
}

pub async fn rebuild(args: RebuildArgs) -> Result<()> {
    let Some(context) = context_of(&args.name) else {
        bail!(
            "no projection is named `{}` (known: {})",
            args.name,
            names().join(", ")
        );
    };
    let stores = storage::open(&args.storage, context.name()).await?;
    let total = stores.events.head_position().await?;
    let events: Arc<dyn msa_kernel::EventStore> = match context.name() {
        // The user context's events hold sealed personal data: read them as its service does.
        "user" => crate::user::sealed_events(&args.storage, &stores).await?.0,
        _ => stores.events.clone(),
    };
    let runner = ProjectionRunner::new(events, stores.read_models.clone());
    eprintln!(
        "rebuilding {} from the {} events…",
        args.name,
        context.name()
    );
    let progress = move |applied: u64| {
        eprint!("\r  {applied} events applied (log head at position {total})");
        let _ = std::io::stderr().flush();
    };
    let projection = context
        .projections(stores.read_models.backend())
        .into_iter()
        .find(|projection| projection.name() == args.name)
        .context("the projection is the context's")?;
    let applied = runner
        .rebuild_reporting(&*projection, &progress)
        .await
        .with_context(|| format!("rebuilding {}", args.name))?;
    eprintln!();
    println!(
        "rebuilt {} from {applied} events; the new tables are live",
        args.name
    );
    Ok(())
}
