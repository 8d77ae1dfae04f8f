//! `msa gateway`: the API gateway in front of the microservices.

use anyhow::{Context, Result};
use msa_gateway::{GatewayConfig, Upstreams};

use crate::cli::GatewayArgs;

pub async fn run(args: GatewayArgs) -> Result<()> {
    let metrics = crate::telemetry::metrics()?;
    if let Some(address) = args.metrics_listen {
        crate::telemetry::serve_metrics(address, metrics).await?;
    }
    let instances = |setting: &str, list: &str| -> Result<Vec<String>> {
        let urls: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect();
        anyhow::ensure!(!urls.is_empty(), "{setting}: no URL given");
        for url in &urls {
            let parsed =
                url::Url::parse(url).with_context(|| format!("{setting}: not a URL: {url}"))?;
            anyhow::ensure!(
                matches!(parsed.scheme(), "http" | "https"),
                "{setting}: not an http(s) URL: {url}"
            );
        }
        Ok(urls)
    };
    let config = GatewayConfig {
        upstreams: Upstreams::new(
            instances("MSA_USER_URL (--user)", &args.user)?,
            instances("MSA_CHAT_URL (--chat)", &args.chat)?,
            instances("MSA_PAYMENT_URL (--payment)", &args.payment)?,
            instances("MSA_USER_CHAT_URL (--user-chat)", &args.user_chat)?,
        ),
        rate_limits: args.rate_limits.settings(),
        max_body_bytes: args.max_body_bytes,
        upstream_timeout: args.upstream_timeout,
        cors_origins: args.cors.cors_origins,
        trusted_proxies: msa_http::TrustedProxies::parse(&args.trusted_proxies)
            .map_err(|error| anyhow::anyhow!("MSA_TRUSTED_PROXIES (--trusted-proxies): {error}"))?,
        web_client: crate::cli::web_client(args.toss_client_key.as_deref())?,
    };
    let app = msa_gateway::app(config)
        .await
        .map_err(|error| anyhow::anyhow!("MSA_CORS_ORIGINS (--cors-origins): {error}"))?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("MSA_LISTEN: cannot listen on {}", args.listen))?;
    let address = listener.local_addr()?;
    println!("msa is serving on http://{address}/ (the gateway; Ctrl-C stops)");
    tracing::info!(%address, "gateway listening");
    let server = args.rate_limits.server();
    msa_http::server::serve(listener, app, server, crate::shutdown::signal())
        .await
        .context("serving HTTP")
}
