//! `msa projections list|rebuild`: every read model of the system, and rebuilding one.

use std::io::Write;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use msa_kernel::{Projection, ProjectionRunner, ReadModelStore};
use msa_sql::Backend;

use crate::cli::{RebuildArgs, StorageArgs};
use crate::storage;

/// A projection and the context whose events it follows.
pub struct ProjectionSpec {
    pub context: &'static str,
    pub name: &'static str,
    /// The projection for the query database's backend (some use its own full-text index).
    pub projection: fn(Backend) -> Arc<dyn Projection<msa_sql::Tx>>,
}

/// Every projection of the system.
pub fn all() -> Vec<ProjectionSpec> {
    vec![
        ProjectionSpec {
            context: "user",
            name: "user.directory",
            projection: |_| Arc::new(msa_user::adapters::directory::Directory),
        },
        ProjectionSpec {
            context: "user",
            name: "user.revocations",
            projection: |_| Arc::new(msa_user::adapters::revocations::RevocationsProjection),
        },
        ProjectionSpec {
            context: "chat",
            name: "chat.history",
            projection: |_| Arc::new(msa_chat::adapters::history::History),
        },
        ProjectionSpec {
            context: "chat",
            name: "chat.invites",
            projection: |_| Arc::new(msa_chat::adapters::invites::Invites),
        },
        ProjectionSpec {
            context: "chat",
            name: "chat.search",
            projection: |backend| Arc::new(msa_chat::adapters::search::Search { backend }),
        },
        ProjectionSpec {
            context: "payment",
            name: "payment.payments",
            projection: |_| Arc::new(msa_payment::adapters::payment_list::PaymentList),
        },
        ProjectionSpec {
            context: "payment",
            name: "payment.ledger",
            projection: |_| Arc::new(msa_payment::adapters::ledger::Ledger),
        },
        ProjectionSpec {
            context: "payment",
            name: "payment.holds",
            projection: |_| Arc::new(msa_payment::adapters::holds::Holds),
        },
        ProjectionSpec {
            context: "payment",
            name: "payment.uncredited",
            projection: |_| Arc::new(msa_payment::adapters::uncredited::Uncredited),
        },
    ]
}

pub async fn list(args: StorageArgs) -> Result<()> {
    for spec in all() {
        let stores = storage::open(&args, spec.context).await?;
        let name = spec.name;
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
                spec.context, at.position
            ),
            _ => println!("{name:<24} context {:<8} not built yet", spec.context),
        }
    }
    Ok(())
}

pub async fn rebuild(args: RebuildArgs) -> Result<()> {
    let specs = all();
    let Some(spec) = specs.iter().find(|s| s.name == args.name) else {
        let names: Vec<_> = specs.iter().map(|s| s.name).collect();
        bail!(
            "no projection is named `{}` (known: {})",
            args.name,
            names.join(", ")
        );
    };
    let stores = storage::open(&args.storage, spec.context).await?;
    let total = stores.events.head_position().await?;
    let events: Arc<dyn msa_kernel::EventStore> = match spec.context {
        // The user context's events hold sealed personal data: read them as its service does.
        "user" => crate::user::sealed_events(&args.storage, &stores).await?.0,
        _ => stores.events.clone(),
    };
    let runner = ProjectionRunner::new(events, stores.read_models.clone());
    eprintln!("rebuilding {} from the {} events…", args.name, spec.context);
    let progress = move |applied: u64| {
        eprint!("\r  {applied} events applied (log head at position {total})");
        let _ = std::io::stderr().flush();
    };
    let applied = runner
        .rebuild_reporting(&*(spec.projection)(stores.read_models.backend()), &progress)
        .await
        .with_context(|| format!("rebuilding {}", args.name))?;
    eprintln!();
    println!(
        "rebuilt {} from {applied} events; the new tables are live",
        args.name
    );
    Ok(())
}
