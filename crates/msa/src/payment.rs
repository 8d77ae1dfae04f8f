//! Composition of the payment context: its provider, use cases, HTTP routes, projections and
//! the background sweeper; and `msa payments reconcile`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use msa_http::auth::TokenVerifier;
use msa_http::service_identity::TrustedServices;
use msa_kernel::ProjectionRunner;
use msa_payment::adapters::http::{internal_routes, routes, PaymentApi};
use msa_payment::adapters::payment_list::PaymentList;
use msa_payment::adapters::sandbox::SandboxProvider;
use msa_payment::adapters::toss::TossProvider;
use msa_payment::adapters::webhook_signature::WebhookSecret;
use msa_payment::application::payments::{PaymentSettings, Payments};
use msa_payment::application::provider::PaymentProvider;
use msa_payment::application::wallets::Wallets;
use msa_payment::domain::Catalog;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::{PaymentArgs, ProviderKind, ReconcileArgs};
use crate::storage::ContextStores;

/// The payment context, running.
pub struct PaymentContext {
    pub routes: Router,
    api: PaymentApi,
    /// The wallets, for user-chat's in-process port.
    pub wallets: Arc<Wallets>,
    pub tasks: Vec<JoinHandle<()>>,
}

/// How long credits held for a refund wait for the refund to reach its payment before the
/// sweeper may release them (twice this after the hold).
const REFUND_HOLD_TIMEOUT: chrono::TimeDelta = chrono::TimeDelta::seconds(30);

/// The provider that serves: the one named. With none named, the sandbox (no money) only for a
/// server that listens on a loopback address (a trial on one machine) or for a command that
/// serves nothing (`listen` None); a server reachable from other machines refuses to start.
pub fn chosen_provider(args: &PaymentArgs, listen: Option<SocketAddr>) -> Result<ProviderKind> {
    match (args.payment_provider, listen) {
        (Some(kind), _) => Ok(kind),
        (None, None) => Ok(ProviderKind::Sandbox),
        (None, Some(address)) if address.ip().is_loopback() => Ok(ProviderKind::Sandbox),
        (None, Some(address)) => anyhow::bail!(
            "no payment provider chosen, and {address} accepts other machines: set \
             MSA_PAYMENT_PROVIDER=toss (--payment-provider toss, with MSA_TOSS_SECRET_KEY), or \
             MSA_PAYMENT_PROVIDER=sandbox for a trial without money (any `approve…` key then \
             grants credits)"
        ),
    }
}

/// The payment use cases over `stores`, configured by `args`; `listen` is the address the
/// server listens on (None for a command that serves nothing).
pub async fn services(
    stores: &ContextStores,
    args: &PaymentArgs,
    listen: Option<SocketAddr>,
) -> Result<(Arc<Payments>, Arc<Wallets>)> {
    msa_payment::migrator()
        .run(stores.read_models.pool())
        .await
        .context("migrating the payment context's query database")?;
    let catalog = Catalog::parse(&args.products)
        .map_err(|error| anyhow::anyhow!("MSA_PRODUCTS (--products): {error}"))?;
    let provider: Arc<dyn PaymentProvider> = match chosen_provider(args, listen)? {
        ProviderKind::Sandbox => {
            if listen.is_some() {
                tracing::warn!(
                    "PAYMENT PROVIDER: SANDBOX. No money moves: any `approve…` payment key \
                     approves a payment and grants credits. For real payments start with \
                     --payment-provider toss (MSA_PAYMENT_PROVIDER=toss)."
                );
            }
            Arc::new(SandboxProvider::new(stores.read_models.clone()))
        }
        ProviderKind::Toss => {
            let secret = args.toss_secret_key.as_deref().context(
                "MSA_TOSS_SECRET_KEY (--toss-secret-key) is required with --payment-provider toss",
            )?;
            Arc::new(
                TossProvider::new(secret, &args.toss_base_url, args.provider_timeout)
                    .map_err(|error| anyhow::anyhow!("MSA_TOSS_SECRET_KEY: {error}"))?,
            )
        }
    };
    let wallets = Arc::new(Wallets::new(
        stores.events.clone(),
        args.free_messages_per_day,
    ));
    let settings = PaymentSettings {
        refund_window: chrono::Duration::from_std(args.refund_window)
            .context("MSA_REFUND_WINDOW (--refund-window) is too long")?,
        expire_after: chrono::Duration::from_std(args.payment_expiry)
            .context("MSA_PAYMENT_EXPIRY (--payment-expiry) is too long")?,
        hold_timeout: REFUND_HOLD_TIMEOUT,
        open_payments_per_user: args.open_payments_per_user,
    };
    let payments = Arc::new(Payments::new(
        stores.events.clone(),
        stores.read_models.clone(),
        catalog,
        provider,
        wallets.clone(),
        settings,
    ));
    Ok((payments, wallets))
}

/// `verifier` checks the user service's access tokens (payment knows users only by their id);
/// `listen` is where the server listens (it decides whether the sandbox may be the default).
pub async fn start(
    stores: &ContextStores,
    verifier: Arc<TokenVerifier>,
    args: &PaymentArgs,
    listen: SocketAddr,
    stop: watch::Receiver<bool>,
) -> Result<PaymentContext> {
    let (payments, wallets) = services(stores, args, Some(listen)).await?;
    let projections = crate::projection_start::start(
        &msa_payment::Context,
        stores.events.clone(),
        &stores.read_models,
        stop.clone(),
    )
    .await?;
    let sweeper = tokio::spawn(sweep(payments.clone(), args.payment_sweep_every, stop));
    let secret = match (
        &args.sandbox_webhook_secret,
        &args.sandbox_webhook_secret_file,
    ) {
        (Some(secret), _) if !secret.is_empty() => secret.as_bytes().to_vec(),
        (_, Some(path)) => {
            let secret = std::fs::read_to_string(path).with_context(|| {
                format!("reading MSA_SANDBOX_WEBHOOK_SECRET_FILE {}", path.display())
            })?;
            let secret = secret.trim();
            anyhow::ensure!(
                !secret.is_empty(),
                "MSA_SANDBOX_WEBHOOK_SECRET_FILE {} is empty",
                path.display()
            );
            secret.as_bytes().to_vec()
        }
        _ => {
            use rand::RngCore;
            let mut random = vec![0u8; 32];
            rand::thread_rng().fill_bytes(&mut random);
            if payments.provider_name() == "sandbox" {
                tracing::info!("sandbox webhook secret generated at start (not printed: no delivery verifies unless MSA_SANDBOX_WEBHOOK_SECRET is set)");
            }
            random
        }
    };
    let api = PaymentApi {
        payments,
        wallets: wallets.clone(),
        verifier,
        sandbox_webhooks: Arc::new(WebhookSecret::new(&secret)),
    };
    Ok(PaymentContext {
        wallets,
        routes: routes(api.clone()),
        api,
        tasks: vec![projections, sweeper],
    })
}

impl PaymentContext {
    /// The payment use cases, for user-chat's in-process export port.
    pub fn payments(&self) -> Arc<Payments> {
        self.api.payments.clone()
    }

    /// Spending credits, for user-chat between microservices (`/internal`), answered only to
    /// the services in `callers`.
    pub fn internal_routes(&self, callers: Arc<TrustedServices>) -> Router {
        internal_routes(self.api.clone(), callers)
    }
}

/// Every `every`: unknown payments looked up, unconfirmed refunds retried, stale ones expired.
async fn sweep(payments: Arc<Payments>, every: Duration, mut stop: watch::Receiver<bool>) {
    let mut warned = false;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        match payments.sweep().await {
            Ok(()) => warned = false,
            Err(error) if !warned => {
                tracing::warn!(%error, "payment sweep failed; retrying");
                warned = true;
            }
            Err(_) => {}
        }
    }
}

/// `msa payments reconcile`.
pub async fn reconcile(args: ReconcileArgs) -> Result<()> {
    let stores = crate::storage::open(&args.storage, "payment").await?;
    let (payments, _) = services(&stores, &args.payment, None).await?;
    // The list it walks is a projection: bring it up to date first.
    let runner = ProjectionRunner::new(stores.events.clone(), stores.read_models.clone());
    runner.ensure_tables(&PaymentList).await?;
    runner
        .catch_up(&PaymentList)
        .await
        .context("bringing the payment list up to date")?;
    eprintln!(
        "reconciling approved payments with {}…",
        payments.provider_name()
    );
    let mismatches = payments
        .reconcile(|checked| eprintln!("  {checked} payments checked"))
        .await
        .context("reconciling")?;
    for mismatch in &mismatches {
        println!(
            "mismatch {}: ours {}; provider {}",
            mismatch.payment_id, mismatch.ours, mismatch.provider
        );
    }
    // Differences recorded before (by webhooks, or earlier runs), so none goes unseen.
    let recorded = payments
        .recorded_mismatches()
        .await
        .context("reading recorded mismatches")?;
    for (payment_id, mismatch) in &recorded {
        println!("recorded {payment_id}: {mismatch}");
    }
    if mismatches.is_empty() {
        println!("every approved payment matches the provider's records");
        Ok(())
    } else {
        anyhow::bail!(
            "{} payments differ from the provider's records (recorded as MismatchFound events)",
            mismatches.len()
        )
    }
}
