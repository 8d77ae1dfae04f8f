//! Composition of the payment context: its provider, use cases, HTTP routes, projections and
//! the background sweeper; and `msa payments reconcile`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Router;
use msa_http::auth::TokenVerifier;
use msa_kernel::ProjectionRunner;
use msa_payment::adapters::http::{internal_routes, routes, PaymentApi};
use msa_payment::adapters::ledger::Ledger;
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
    /// Spending credits, for user-chat between microservices (`/internal`).
    pub internal_routes: Router,
    /// The wallets, for user-chat's in-process port.
    pub wallets: Arc<Wallets>,
    pub tasks: Vec<JoinHandle<()>>,
}

/// The payment use cases over `stores`, configured by `args`.
pub async fn services(
    stores: &ContextStores,
    args: &PaymentArgs,
) -> Result<(Arc<Payments>, Arc<Wallets>)> {
    msa_payment::migrator()
        .run(stores.read_models.pool())
        .await
        .context("migrating the payment context's query database")?;
    let catalog = Catalog::parse(&args.products)
        .map_err(|error| anyhow::anyhow!("MSA_PRODUCTS (--products): {error}"))?;
    let provider: Arc<dyn PaymentProvider> = match args.payment_provider {
        ProviderKind::Sandbox => Arc::new(SandboxProvider::new(stores.read_models.clone())),
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

/// `verifier` checks the user service's access tokens (payment knows users only by their id).
pub async fn start(
    stores: &ContextStores,
    verifier: Arc<TokenVerifier>,
    args: &PaymentArgs,
    stop: watch::Receiver<bool>,
) -> Result<PaymentContext> {
    let (payments, wallets) = services(stores, args).await?;
    let runner = ProjectionRunner::new(stores.events.clone(), stores.read_models.clone());
    runner
        .ensure_tables(&PaymentList)
        .await
        .context("creating the payment list tables")?;
    runner
        .ensure_tables(&Ledger)
        .await
        .context("creating the ledger tables")?;
    let projections = {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::join!(
                runner.run(&PaymentList, stop.clone()),
                runner.run(&Ledger, stop)
            );
        })
    };
    let sweeper = tokio::spawn(sweep(payments.clone(), args.payment_sweep_every, stop));
    let secret = match &args.sandbox_webhook_secret {
        Some(secret) => secret.as_bytes().to_vec(),
        None => {
            use rand::RngCore;
            let mut random = vec![0u8; 32];
            rand::thread_rng().fill_bytes(&mut random);
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
        internal_routes: internal_routes(api.clone()),
        routes: routes(api),
        tasks: vec![projections, sweeper],
    })
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
    let (payments, _) = services(&stores, &args.payment).await?;
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
