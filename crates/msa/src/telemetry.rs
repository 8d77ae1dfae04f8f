//! Logging: `RUST_LOG` filters (default `info`), text for people or JSON for collectors; a JSON
//! line carries the fields of the spans it was written in (the request's request id,
//! correlation id, trace id and span id).
//! Traces: with an OTLP endpoint (`--otlp-endpoint`, `OTEL_EXPORTER_OTLP_ENDPOINT`), every span
//! is exported over OTLP/HTTP (protobuf) in batches, from a thread of its own; without one no
//! exporter exists and spans cost only what `tracing` costs. The SDK reads the usual `OTEL_*`
//! variables (`OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, …).
//! Metrics: the `metrics` facade, rendered in the Prometheus text format at `/metrics`; every
//! `_seconds` metric is a histogram with [`msa_kernel::metric::SECONDS_BUCKETS`].

use anyhow::Context;
use opentelemetry::trace::TracerProvider;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Level;
use tracing_subscriber::filter::{filter_fn, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::cli::LogFormat;

/// Where traces go, when anywhere.
pub struct Export {
    /// The collector's base URL (`http://localhost:4318`) or its traces URL (`…/v1/traces`).
    pub endpoint: String,
    pub service_name: String,
}

/// Flushes the spans still waiting when the process ends.
pub struct Flush(Option<SdkTracerProvider>);

impl Drop for Flush {
    fn drop(&mut self) {
        if let Some(provider) = self.0.take() {
            if let Err(error) = provider.shutdown() {
                eprintln!("traces not all exported at exit: {error}");
            }
        }
    }
}

/// What the logs take unless `RUST_LOG` says otherwise.
const DEFAULT_LOGS: &str = "info,sqlx=warn";

/// Logs, and traces when `export` is given.
///
/// Per-layer filters (`Layer::with_filter`) are avoided where they can be: with one,
/// tracing-subscriber now and then judged a request's span disabled for that layer alone (a log
/// line of the request lacked its ids; an exported request span went missing, so the spans
/// under it began traces of their own). The logs alone filter with the subscriber's global
/// filter; with an exporter, a global filter admits what either the logs or the traces take,
/// the exporter's layer has no filter of its own, and only the logs keep one (so there, rarely,
/// a log line may lack its request's ids).
pub fn init(format: LogFormat, export: Option<Export>) -> anyhow::Result<Flush> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOGS));
    let Some(provider) = export.map(tracer_provider).transpose()? else {
        tracing_subscriber::registry()
            .with(filter)
            .with(log_layer(format))
            .init();
        return Ok(Flush(None));
    };
    // What the logs may take, for the global filter: `RUST_LOG` as plain target=level
    // directives, or, when it holds more than that, whatever its most verbose level admits.
    let logged = std::env::var("RUST_LOG")
        .as_deref()
        .unwrap_or(DEFAULT_LOGS)
        .parse::<Targets>()
        .unwrap_or_else(|_| {
            Targets::new().with_default(filter.max_level_hint().unwrap_or(LevelFilter::TRACE))
        });
    // Traces take their own targets: `RUST_LOG=warn` quiets the logs, not the traces. The spans
    // of each command, append, delivery and batch are at debug, so that the logs do not pay for
    // them (the text and JSON formatters format every span they see) and, with no exporter,
    // nothing does; the exporter takes them. The HTTP stack's own spans stay out (the exporter
    // sends with it: no span about a span).
    let traced = Targets::new()
        .with_default(Level::INFO)
        .with_targets(
            [
                "msa_kernel",
                "msa_chat::adapters::live_routes",
                "msa_user_chat::adapters::remote",
                "msa_http::trail",
            ]
            .map(|target| (target, Level::DEBUG)),
        )
        .with_targets(
            [
                "sqlx",
                "hyper",
                "hyper_util",
                "h2",
                "reqwest",
                "rdkafka",
                "tower",
            ]
            .map(|target| (target, LevelFilter::OFF)),
        );
    let global = filter_fn(move |metadata| {
        traced.would_enable(metadata.target(), metadata.level())
            || logged.would_enable(metadata.target(), metadata.level())
    });
    msa_kernel::conversation::set_exporting();
    tracing_subscriber::registry()
        .with(global)
        .with(log_layer(format).with_filter(filter))
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("msa")))
        .init();
    Ok(Flush(Some(provider)))
}

/// Log lines on stderr, as text or one JSON object per line.
fn log_layer<S>(format: LogFormat) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().flatten_event(true).boxed(),
    }
}

fn tracer_provider(export: Export) -> anyhow::Result<SdkTracerProvider> {
    let base = export.endpoint.trim_end_matches('/');
    let endpoint = match base.ends_with("/v1/traces") {
        true => base.to_owned(),
        false => format!("{base}/v1/traces"),
    };
    url::Url::parse(&endpoint).with_context(|| {
        format!("OTEL_EXPORTER_OTLP_ENDPOINT (--otlp-endpoint): not a URL: {base}")
    })?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(endpoint)
        .build()
        .context("OTEL_EXPORTER_OTLP_ENDPOINT (--otlp-endpoint): building the OTLP exporter")?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(export.service_name)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Installs the process-wide metrics recorder; the handle renders `/metrics`. Every 5 s the
/// histograms' recent samples are folded into their buckets (the recorder keeps samples until
/// then, so without it a process nobody scrapes would grow).
pub fn metrics() -> anyhow::Result<metrics_exporter_prometheus::PrometheusHandle> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Suffix("_seconds".into()),
            msa_kernel::metric::SECONDS_BUCKETS,
        )
        .map_err(|error| anyhow::anyhow!("histogram buckets: {error}"))?
        .install_recorder()
        .map_err(|error| anyhow::anyhow!("installing the metrics recorder: {error}"))?;
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(5));
        loop {
            every.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Serves `/metrics` on `address`, apart from the API so clients cannot read them.
pub async fn serve_metrics(
    address: std::net::SocketAddr,
    metrics: metrics_exporter_prometheus::PrometheusHandle,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("MSA_METRICS_LISTEN: cannot listen on {address}"))?;
    println!("msa metrics on http://{}/metrics", listener.local_addr()?);
    let metrics = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || std::future::ready(metrics.render())),
    );
    tokio::spawn(async move { axum::serve(listener, metrics).await });
    Ok(())
}
