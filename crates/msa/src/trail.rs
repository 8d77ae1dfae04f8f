//! `msa trail <id>`: everything one request set off, across every context, in causal order
//! ([`msa_kernel::trail`]), read from the stores: works with tracing off and for events of any
//! age, on both deployments (the single server's SQLite files, or the contexts' PostgreSQL
//! databases).
//!
//! Over HTTP, for admins: `GET /v1/admin/trail/{id}` ([`msa_http::trail`]); the single server
//! answers it from every context's stores ([`in_process`]), between microservices user-chat
//! composes it from its own stores and the other services' parts ([`composed`]), which each
//! service serves from its own ([`part_routes`], `/v1/admin/trail-parts/…`).

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use msa_http::auth::TokenVerifier;
use msa_http::trail::{RemoteTrail, Sources};
use msa_kernel::trail::{Step, TrailHandling, TrailSource, MOST_CONVERSATIONS, MOST_EVENTS};
use msa_sql::StoreTrail;

use crate::cli::{ServiceUrls, TrailArgs};
use crate::storage::{self, ContextStores};

fn source(stores: &ContextStores) -> Arc<dyn TrailSource> {
    Arc::new(StoreTrail::new(
        stores.context,
        stores.events.clone(),
        stores.read_models.clone(),
    ))
}

/// The single server's `GET /v1/admin/trail/{id}`, over every context's stores.
pub fn in_process(stores: &[ContextStores], verifier: Arc<TokenVerifier>) -> Router {
    let sources: Vec<Arc<dyn TrailSource>> = stores.iter().map(source).collect();
    msa_http::trail::admin_routes(Arc::new(move |_| sources.clone()), verifier)
}

/// A service's part of trails, over its own stores.
pub fn part_routes(stores: &ContextStores, verifier: Arc<TokenVerifier>) -> Router {
    msa_http::trail::part_routes(source(stores), verifier)
}

/// user-chat's `GET /v1/admin/trail/{id}` between microservices: its own stores, and the user,
/// chat and payment services' parts asked with the admin's token.
pub fn composed(
    stores: &ContextStores,
    urls: &ServiceUrls,
    verifier: Arc<TokenVerifier>,
) -> Result<Router> {
    let own = source(stores);
    let mut services = Vec::new();
    for name in ["user", "chat", "payment"] {
        let url = urls.require(name, "`serve user-chat`")?;
        let base: reqwest::Url = url
            .parse()
            .with_context(|| format!("the {name} service's URL {url}"))?;
        services.push((name, base));
    }
    let client = RemoteTrail::client(urls.upstream_timeout)?;
    let sources: Sources = Arc::new(move |caller| {
        let mut sources = vec![own.clone()];
        for (name, base) in &services {
            let remote = RemoteTrail::new(name, base.clone(), client.clone(), caller.token.clone());
            sources.push(Arc::new(remote));
        }
        sources
    });
    Ok(msa_http::trail::admin_routes(sources, verifier))
}

pub async fn run(args: TrailArgs) -> Result<()> {
    let contexts = crate::contexts::names();
    let mut urls = HashMap::new();
    for pair in &args.context_databases {
        let (context, url) = pair
            .split_once('=')
            .filter(|(context, _)| contexts.contains(context))
            .with_context(|| {
                format!("--context-database {pair}: not CONTEXT=URL with a context of {contexts:?}")
            })?;
        urls.insert(context, url.to_owned());
    }
    let mut sources = Vec::with_capacity(contexts.len());
    for context in contexts.iter().copied() {
        let mut storage = args.storage.clone();
        if let Some(url) = urls.get(context) {
            storage.database_url = Some(url.clone());
        }
        sources.push(source(&storage::open(&storage, context).await?));
    }
    let trail = msa_kernel::trail::trail(&sources, args.id).await?;
    anyhow::ensure!(
        !trail.items.is_empty(),
        "no event in any context names {}",
        args.id
    );
    for step in &trail.items {
        match args.json {
            true => println!("{}", serde_json::to_string(step)?),
            false => println!("{}", line(step)),
        }
    }
    if trail.truncated {
        eprintln!(
            "the trail is cut short: at most {MOST_CONVERSATIONS} conversations and {MOST_EVENTS} events"
        );
    }
    Ok(())
}

fn line(step: &Step) -> String {
    match step {
        Step::Event {
            at,
            context,
            event_type,
            event_id,
            stream_id,
            version,
            causation_id,
            actor,
            ..
        } => format!(
            "{}  {context:<9}  {event_type} {stream_id}@{version} (event {event_id}{}{})",
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            causation_id
                .map(|cause| format!(", caused by {cause}"))
                .unwrap_or_default(),
            actor
                .as_deref()
                .map(|actor| format!(", by {actor}"))
                .unwrap_or_default(),
        ),
        Step::Published {
            context,
            topic,
            event_id,
        } => format!(
            "{:<24}  {context:<9}    published to {topic} (event {event_id})",
            "(relayed; time not kept)"
        ),
        Step::Handled(TrailHandling {
            at,
            context,
            consumer,
            event_id,
        }) => format!(
            "{}  {context:<9}    handled by {consumer} (event {event_id})",
            at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    }
}
