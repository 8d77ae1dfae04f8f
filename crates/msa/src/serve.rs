//! `msa serve`: the single server.

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use msa_http::Problem;
use msa_kernel::LogPosition;
use serde_json::{json, Value};

use crate::cli::ServeArgs;
use crate::storage::{self, ContextStores};

const PLACEHOLDER_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>msa</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto">
<h1>msa is running</h1>
<p>The event store of every context is open. The chat web client arrives here with the user, chat
and payment services; until then this page only shows that the server is up.</p>
<p>Health: <a href="/healthz">/healthz</a> (alive), <a href="/readyz">/readyz</a> (stores answer),
<a href="/metrics">/metrics</a> (Prometheus)</p>
</body></html>"#;

pub async fn run(args: ServeArgs) -> Result<()> {
    let metrics = crate::telemetry::metrics()?;
    let kafka = crate::bus::kafka_config(&args.kafka)?;
    let stores = storage::open_all(&args.storage).await?;
    let relays = match &kafka {
        Some(kafka) => Some(crate::bus::start_relays(
            &stores,
            kafka,
            args.kafka.kafka_partitions,
        )?),
        None => None,
    };
    let (stop_background, stopped) = tokio::sync::watch::channel(false);
    let user = crate::user::start(
        &args.storage,
        storage::context(&stores, "user")?,
        &args.user,
        stopped.clone(),
    )
    .await?;
    let chat = crate::chat::start(
        storage::context(&stores, "chat")?,
        user.verifier.clone(),
        stop_background.subscribe(),
    )
    .await?;
    let payment = crate::payment::start(
        storage::context(&stores, "payment")?,
        user.verifier.clone(),
        &args.payment,
        stop_background.subscribe(),
    )
    .await?;
    let directory =
        crate::user_chat::directory(&args.storage, storage::context(&stores, "user")?).await?;
    let user_chat = crate::user_chat::start(
        storage::context(&stores, "user-chat")?,
        chat.service.clone(),
        payment.wallets.clone(),
        directory.clone(),
        user.verifier.clone(),
    )
    .await?;
    let consumers = crate::bus::start_consumers(
        &stores,
        kafka.as_ref(),
        crate::consumers::ConsumerDeps {
            payment_events: storage::context(&stores, "payment")?.events.clone(),
            directory,
            free_messages_per_day: args.payment.free_messages_per_day,
        },
        stopped,
    )?;
    let stores = Arc::new(stores);
    let app = Router::new()
        .route("/openapi.json", get(|| async { Json(api_document()) }))
        .route(
            "/metrics",
            get(move || std::future::ready(metrics.render())),
        )
        .route("/", get(|| async { Html(PLACEHOLDER_PAGE) }))
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(readiness))
        .with_state(stores)
        .merge(user.routes)
        .merge(chat.routes)
        .merge(payment.routes)
        .merge(user_chat)
        .fallback(|| async { Problem::not_found("no such resource") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this resource does not answer that method",
            )
        });
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("MSA_LISTEN: cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    println!("msa is serving on http://{address}/ (open it in a browser; Ctrl-C stops)");
    tracing::info!(%address, "listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("serving HTTP")?;
    let _ = stop_background.send(true);
    for task in consumers
        .into_iter()
        .chain([user.projections, chat.projections])
        .chain(payment.tasks)
    {
        let _ = task.await;
    }
    if let Some(relays) = relays {
        relays.shut_down().await;
    }
    Ok(())
}

/// The OpenAPI document of every context's HTTP API.
pub fn api_document() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    let mut document = msa_user::adapters::http::UserApiDoc::openapi();
    document.merge(msa_chat::adapters::http::ChatApiDoc::openapi());
    document.merge(msa_payment::adapters::http::PaymentApiDoc::openapi());
    document.merge(msa_user_chat::adapters::http::UserChatApiDoc::openapi());
    document.info.title = "msa".into();
    document.info.version = env!("CARGO_PKG_VERSION").into();
    document.info.description = Some(
        "A chat platform with user accounts and paid message credits. Errors are RFC 9457 \
         application/problem+json; ids are UUIDv7; times RFC 3339 UTC."
            .into(),
    );
    document
}

/// Ready when every context's event store and query database answer.
async fn readiness(State(stores): State<Arc<Vec<ContextStores>>>) -> (StatusCode, Json<Value>) {
    let mut ready = true;
    let mut checks = serde_json::Map::new();
    for context in stores.iter() {
        let events = context.events.read_all(LogPosition::START, 1).await;
        let query = sqlx::query("SELECT 1")
            .execute(context.read_models.pool())
            .await;
        let ok = events.is_ok() && query.is_ok();
        if !ok {
            tracing::warn!(
                context = context.context,
                ?events,
                ?query,
                "store not ready"
            );
        }
        ready &= ok;
        checks.insert(
            context.context.into(),
            json!(if ok { "ok" } else { "unavailable" }),
        );
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "status": if ready { "ready" } else { "unavailable" }, "stores": checks })),
    )
}

pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("install the SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down");
}
