//! `msa serve`: the single server.

use msa_http::telemetry::observed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use axum::{Json, Router};
use msa_chat::adapters::live_limits::LiveLimitSettings;
use msa_http::auth::TokenVerifier;
use msa_http::service_identity::{ServiceIdentity, TrustedServices};
use msa_http::Problem;
use msa_kernel::LogPosition;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::{PaymentArgs, ProviderKind, ServeArgs, ServiceName};
use crate::consumers::ConsumerDeps;
use crate::storage::{self, ContextStores};

/// What a lone service (`msa serve <service>`) shows at `/`.
const PLACEHOLDER_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>msa</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto">
<h1>msa is running</h1>
<p>The user, chat, payment and user-chat APIs answer under <code>/v1</code>: their reference is at
<a href="/docs/">/docs</a>, the document behind it at <a href="/openapi.json">/openapi.json</a>;
the WebSocket stream's frames and the Kafka topics' events at <a href="/asyncapi.json">/asyncapi.json</a> (AsyncAPI 3.0).
This process is one service of the microservice deployment: the web client is served by the
gateway (and by the single server, <code>msa serve</code>).</p>
<p>Health: <a href="/healthz">/healthz</a> (alive), <a href="/readyz">/readyz</a> (stores answer; the bus is reported),
<a href="/metrics">/metrics</a> (Prometheus)</p>
</body></html>"#;

/// What the started services give the process: routes, their API document, background tasks,
/// and what their consumers need.
struct Started {
    routes: Router,
    document: utoipa::openapi::OpenApi,
    tasks: Vec<JoinHandle<()>>,
    consumers: ConsumerDeps,
    /// The single server checks tokens at its edge for its rate limits; a service leaves the
    /// limits to the gateway.
    edge_verifier: Option<Arc<TokenVerifier>>,
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let metrics = crate::telemetry::metrics()?;
    let kafka = crate::bus::kafka_config(&args.kafka)?;
    let contexts = match args.service {
        None => crate::contexts::names(),
        Some(service) => vec![service.context()],
    };
    let events_document = crate::asyncapi::document(&contexts);
    let mut stores = Vec::with_capacity(contexts.len());
    for context in contexts {
        stores.push(storage::open(&args.storage, context).await?);
    }
    let relays = match &kafka {
        Some(kafka) => Some(crate::bus::start_relays(
            &stores,
            kafka,
            args.kafka.kafka_partitions,
        )?),
        None => None,
    };
    let (stop_background, stopped) = watch::channel(false);
    let started = match args.service {
        None => everything(&args, &stores, stopped.clone()).await?,
        Some(service) => one(service, &args, &stores, stopped.clone()).await?,
    };
    let consumers =
        crate::bus::start_consumers(&stores, kafka.as_ref(), started.consumers, stopped)?;
    let bus = kafka
        .as_ref()
        .map(msa_kafka::BrokerProbe::new)
        .transpose()
        .map_err(|error| anyhow::anyhow!("MSA_KAFKA_BROKERS (--kafka-brokers): {error}"))?;
    let readiness = Readiness { stores, bus };
    if let Some(address) = args.metrics_listen {
        crate::telemetry::serve_metrics(address, metrics).await?;
    }
    let web_client = match args.service {
        None => Some(web_client(&args.payment)?),
        Some(_) => None,
    };
    let mut app = app(
        started.routes,
        started.document,
        events_document,
        readiness,
        web_client,
    );
    if let Some(verifier) = started.edge_verifier {
        let proxies = msa_http::TrustedProxies::parse(&args.user.trusted_proxies)
            .map_err(|error| anyhow::anyhow!("MSA_TRUSTED_PROXIES (--trusted-proxies): {error}"))?;
        app = crate::edge::limited(app, args.rate_limits.settings(), verifier, proxies);
    }
    // Outermost, so a browser's preflight is answered before anything else looks at it.
    let cors = msa_http::cors::policy(&args.cors.cors_origins)
        .map_err(|error| anyhow::anyhow!("MSA_CORS_ORIGINS (--cors-origins): {error}"))?;
    let app = app.layer(cors);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("MSA_LISTEN: cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    match args.service {
        None => {
            println!("msa is serving on http://{address}/ (open it in a browser; Ctrl-C stops)")
        }
        Some(service) => println!(
            "msa is serving on http://{address}/ (the {} service; Ctrl-C stops)",
            service.context()
        ),
    }
    tracing::info!(%address, "listening");
    // Peer addresses are recorded: the limits per address (requests, stream sockets) use them.
    let server = args.rate_limits.server();
    msa_http::server::serve(listener, app, server, crate::shutdown::signal())
        .await
        .context("serving HTTP")?;
    let _ = stop_background.send(true);
    for task in consumers.into_iter().chain(started.tasks) {
        let _ = task.await;
    }
    if let Some(relays) = relays {
        relays.shut_down().await;
    }
    Ok(())
}

/// The single server: every context in this process, user-chat calling the others in-process.
async fn everything(
    args: &ServeArgs,
    stores: &[ContextStores],
    stop: watch::Receiver<bool>,
) -> Result<Started> {
    let user = crate::user::start(
        &args.storage,
        storage::context(stores, "user")?,
        &args.user,
        stop.clone(),
    )
    .await?;
    let chat = crate::chat::start(
        storage::context(stores, "chat")?,
        user.verifier.clone(),
        LiveLimitSettings {
            per_address: Some(args.rate_limits.streams_per_address as usize),
            ..LiveLimitSettings::default()
        },
        stop.clone(),
    )
    .await?;
    let payment = crate::payment::start(
        storage::context(stores, "payment")?,
        user.verifier.clone(),
        &args.payment,
        args.listen,
        stop.clone(),
    )
    .await?;
    let directory =
        crate::user_chat::directory(&args.storage, storage::context(stores, "user")?).await?;
    let user_chat = crate::user_chat::start(
        storage::context(stores, "user-chat")?,
        chat.service.clone(),
        chat.sends.clone(),
        payment.wallets.clone(),
        directory.clone(),
        user.verifier.clone(),
        &args.user_chat,
        stop.clone(),
    )
    .await?;
    // A person's export: user-chat's, over the services in this process.
    let export = crate::user_chat_export::in_process(
        user.service.clone(),
        storage::context(stores, "chat")?.read_models.clone(),
        payment.payments(),
        user.verifier.clone(),
    );
    let mut tasks = vec![user.projections, chat.projections, user_chat.recovery];
    tasks.extend(payment.tasks);
    let mut routes = observed("user", user.routes)
        .merge(observed("chat", chat.routes))
        .merge(observed("payment", payment.routes))
        .merge(observed("user-chat", user_chat.routes.merge(export)))
        .merge(crate::trail::in_process(stores, user.verifier.clone()));
    for context in crate::contexts::self_contained() {
        let started = crate::self_contained::start(
            context,
            storage::context(stores, context.name())?,
            user.verifier.clone(),
            stop.clone(),
        )
        .await?;
        routes = routes.merge(observed(context.name(), started.routes));
        tasks.push(started.projections);
    }
    Ok(Started {
        routes,
        document: api_document(),
        tasks,
        edge_verifier: Some(user.verifier.clone()),
        consumers: ConsumerDeps {
            payment_events: Some(storage::context(stores, "payment")?.events.clone()),
            directory: Some(directory),
            free_messages_per_day: args.payment.free_messages_per_day,
        },
    })
}

/// One service of the microservice deployment. Access tokens are checked with the user
/// service's public keys; user-chat calls the others over HTTP.
async fn one(
    service: ServiceName,
    args: &ServeArgs,
    stores: &[ContextStores],
    stop: watch::Receiver<bool>,
) -> Result<Started> {
    use utoipa::OpenApi;
    let stores = &stores[0];
    let needed_by = format!("`serve {}`", service.context());
    let verifier = || async {
        let user = args.services.require("user", &needed_by)?;
        crate::remote::verifier(&user, stop.clone()).await
    };
    // The internal endpoints of chat and payment answer user-chat only. (The user service's URL
    // is asked for first: without it nothing can be checked.)
    let callers = |audience: &str| -> Result<Arc<TrustedServices>> {
        args.services.require("user", &needed_by)?;
        let user_chat = args.services.require("user-chat", &needed_by)?;
        Ok(Arc::new(TrustedServices::new(
            audience,
            &[("user-chat", &user_chat)],
            reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()?,
        )))
    };
    let mut consumers = ConsumerDeps {
        free_messages_per_day: args.payment.free_messages_per_day,
        ..ConsumerDeps::default()
    };
    let (routes, document, tasks) = match service {
        ServiceName::User => {
            let user = crate::user::start(&args.storage, stores, &args.user, stop.clone()).await?;
            let trail = crate::trail::part_routes(stores, user.verifier.clone());
            (
                // user-chat asks for the account's part of an export here.
                user.routes.merge(user.account_export).merge(trail),
                msa_user::adapters::http::UserApiDoc::openapi(),
                vec![user.projections],
            )
        }
        ServiceName::Chat => {
            let callers = callers("chat")?;
            // Behind the gateway every socket comes from its address: it counts them per client.
            let live = LiveLimitSettings {
                per_address: None,
                ..LiveLimitSettings::default()
            };
            let verifier = verifier().await?;
            let trail = crate::trail::part_routes(stores, verifier.clone());
            let chat = crate::chat::start(stores, verifier, live, stop.clone()).await?;
            let internal = chat.internal_routes(callers);
            (
                chat.routes.merge(internal).merge(trail),
                msa_chat::adapters::http::ChatApiDoc::openapi(),
                vec![chat.projections],
            )
        }
        ServiceName::Payment => {
            let verifier = verifier().await?;
            let trail = crate::trail::part_routes(stores, verifier.clone());
            let payment =
                crate::payment::start(stores, verifier, &args.payment, args.listen, stop.clone())
                    .await?;
            consumers.payment_events = Some(stores.events.clone());
            let internal = payment.internal_routes(callers("payment")?);
            (
                payment.routes.merge(internal).merge(trail),
                msa_payment::adapters::http::PaymentApiDoc::openapi(),
                payment.tasks,
            )
        }
        ServiceName::UserChat => {
            if args.kafka.kafka_brokers.is_none() {
                anyhow::bail!(
                    "MSA_KAFKA_BROKERS (--kafka-brokers) is required by `serve user-chat`: it \
                     follows the user and chat services' events"
                );
            }
            let identity =
                Arc::new(ServiceIdentity::generate("user-chat").map_err(|e| anyhow::anyhow!(e))?);
            let services = crate::user_chat::remote_services(&args.services, identity.clone())?;
            let ports = crate::user_chat::remote_ports(&services);
            consumers.directory = Some(ports.directory.clone());
            let verifier = verifier().await?;
            let export = crate::user_chat_export::remote(&services, verifier.clone());
            let trail = crate::trail::composed(stores, &args.services, verifier.clone())?;
            let user_chat = crate::user_chat::start_with(
                stores,
                ports,
                verifier,
                &args.user_chat,
                stop.clone(),
            )
            .await?;
            (
                user_chat
                    .routes
                    .merge(export)
                    .merge(trail)
                    .merge(identity.jwks_route()),
                {
                    let mut document = msa_user_chat::adapters::http::UserChatApiDoc::openapi();
                    document.merge(msa_http::trail::TrailApiDoc::openapi());
                    document
                },
                vec![user_chat.recovery],
            )
        }
    };
    Ok(Started {
        routes: observed(service.context(), routes),
        document,
        tasks,
        consumers,
        edge_verifier: None,
    })
}

/// What the single server's web client is told: Toss's client key when payments go through
/// Toss (it then opens Toss's payment window, and its CSP admits Toss's hosts).
fn web_client(payment: &PaymentArgs) -> Result<msa_web::WebClient> {
    let key = payment.toss_client_key.as_deref();
    match payment.payment_provider {
        Some(ProviderKind::Toss) if crate::cli::toss_key(key).is_some() => {
            crate::cli::web_client(key)
        }
        Some(ProviderKind::Toss) => {
            tracing::warn!(
                "payments go through Toss but MSA_TOSS_CLIENT_KEY (--toss-client-key) is not set: \
                 the web client cannot open Toss's payment window"
            );
            Ok(msa_web::WebClient::new())
        }
        _ => Ok(msa_web::WebClient::new()),
    }
}

/// The process's HTTP app: the services' routes and what every process answers. The single
/// server (`web_client`) serves the web client at `/`; a lone service a page saying what it is.
fn app(
    routes: Router,
    document: utoipa::openapi::OpenApi,
    events_document: Value,
    readiness: Readiness,
    web_client: Option<msa_web::WebClient>,
) -> Router {
    let document = Arc::new(document);
    let events_document = Arc::new(events_document);
    let front = match web_client {
        Some(client) => msa_web::router(client),
        None => Router::new().route("/", get(|| async { Html(PLACEHOLDER_PAGE) })),
    };
    Router::new()
        .route(
            "/openapi.json",
            get(move || std::future::ready(Json(document.as_ref().clone()))),
        )
        // The stream's frames and the bus's events (AsyncAPI 3.0; `crate::asyncapi`).
        .route(
            "/asyncapi.json",
            get(move || std::future::ready(Json(events_document.as_ref().clone()))),
        )
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(ready))
        .with_state(Arc::new(readiness))
        .merge(routes)
        .merge(front)
        .merge(msa_http::api_reference())
        .fallback(|| async { Problem::not_found("no such resource") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "this resource does not answer that method",
            )
        })
}

/// The OpenAPI document of every context's HTTP API.
pub fn api_document() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    let mut documents = crate::contexts::all()
        .into_iter()
        .map(|context| context.api_document());
    let mut document = documents.next().expect("at least one context");
    for other in documents {
        document.merge(other);
    }
    document.merge(msa_http::trail::TrailApiDoc::openapi());
    document.info.title = "msa".into();
    document.info.version = env!("CARGO_PKG_VERSION").into();
    document.info.description = Some(
        "A chat platform with user accounts and paid message credits. Errors are RFC 9457 \
         application/problem+json; ids are UUIDv7 (a message id is a UUIDv8 naming its room \
         and seq); times RFC 3339 UTC. The WebSocket stream \
         (`GET /v1/stream`: its frames, close codes, resuming) and the Kafka topics' events are \
         described by the AsyncAPI document at `/asyncapi.json`."
            .into(),
    );
    document
}

/// What `/readyz` checks: the stores of this process's contexts, and the brokers when it uses
/// Kafka.
struct Readiness {
    stores: Vec<ContextStores>,
    bus: Option<msa_kafka::BrokerProbe>,
}

/// How long `/readyz` waits for the brokers' answer: well inside a Kubernetes probe's default
/// one-second timeout, so a broker outage never makes the probe itself fail.
const BUS_CHECK_TIMEOUT: Duration = Duration::from_millis(500);

/// Ready when every context's event store and query database answer. The bus is reported
/// (`ok`, `unreachable`, or `in-process`) but does not make the process unready: while the
/// brokers are away commands are still accepted and their events wait in the store.
async fn ready(State(readiness): State<Arc<Readiness>>) -> (StatusCode, Json<Value>) {
    let mut ready = true;
    let mut checks = serde_json::Map::new();
    for context in &readiness.stores {
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
    let bus = match &readiness.bus {
        None => "in-process",
        Some(probe) => match probe.check(BUS_CHECK_TIMEOUT).await {
            Ok(()) => "ok",
            Err(_) => "unreachable",
        },
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if ready { "ready" } else { "unavailable" },
            "stores": checks,
            "bus": bus,
        })),
    )
}
