//! Logging: `RUST_LOG` filters (default `info`), text for people or JSON for collectors.
//! Metrics: the `metrics` facade, rendered in the Prometheus text format at `/metrics`.

use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// Installs the process-wide metrics recorder; the handle renders `/metrics`.
pub fn metrics() -> anyhow::Result<metrics_exporter_prometheus::PrometheusHandle> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|error| anyhow::anyhow!("installing the metrics recorder: {error}"))
}
