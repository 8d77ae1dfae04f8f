//! Composition of the user context: its service, HTTP routes and directory projection.

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use msa_http::auth::TokenVerifier;
use msa_http::TrustedProxies;
use msa_user::adapters::http::{account_export_routes, routes, UserApi};
use msa_user::adapters::kakao::{Kakao, KakaoConfig};
use msa_user::adapters::passwords::{HashCost, Passwords};
use msa_user::adapters::personal_data::{PersonalDataKeys, ShreddingStore};
use msa_user::adapters::revocations;
use msa_user::adapters::throttle::LoginThrottle;
use msa_user::adapters::tokens::{TokenLifetimes, Tokens};
use msa_user::application::roles::{OperatorRoles, RoleChange};
use msa_user::domain::{Email, Role};
use msa_user::UserService;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::{StorageArgs, UserArgs};
use crate::storage::ContextStores;

/// The user context's events with personal data opened (see `msa_user::sealed_events`), and
/// the keys that open them.
pub async fn sealed_events(
    storage: &StorageArgs,
    stores: &ContextStores,
) -> Result<(Arc<ShreddingStore>, Arc<PersonalDataKeys>)> {
    let key_vault = Arc::new(crate::storage::open_key_vault(storage, "user").await?);
    msa_user::migrator()
        .run(key_vault.pool())
        .await
        .context("migrating the user context's key vault")?;
    let master = crate::storage::master_key(storage)?;
    Ok(msa_user::sealed_events(
        stores.events.clone(),
        key_vault,
        master,
    ))
}

/// Kakao Login's settings, when a client id is configured.
fn kakao_config(args: &UserArgs) -> Result<Option<KakaoConfig>> {
    let Some(client_id) = args.kakao_client_id.clone() else {
        return Ok(None);
    };
    let redirect_uri = args.kakao_redirect_uri.clone().context(
        "MSA_KAKAO_REDIRECT_URI (--kakao-redirect-uri) is required with MSA_KAKAO_CLIENT_ID: \
         the public URL of /v1/auth/kakao/callback registered with Kakao",
    )?;
    Ok(Some(KakaoConfig {
        client_id,
        client_secret: args.kakao_client_secret.clone(),
        redirect_uri,
        auth_url: args.kakao_auth_url.trim_end_matches('/').to_owned(),
        api_url: args.kakao_api_url.trim_end_matches('/').to_owned(),
    }))
}

/// Revocations are kept for the access tokens' lifetime and this much more (the verifiers'
/// leeway on expiry, clock skew between processes).
const DENY_LIST_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);

/// The user context, running.
pub struct UserContext {
    pub routes: Router,
    /// The account's part of a person's export at `/v1/users/me/export`: mounted only by
    /// `serve user` (in the single server user-chat serves that path, asking [`Self::service`]).
    pub account_export: Router,
    pub service: Arc<UserService>,
    /// Checks the access tokens this context issues; every other context uses it.
    pub verifier: Arc<TokenVerifier>,
    pub projections: JoinHandle<()>,
}

pub async fn start(
    storage: &StorageArgs,
    stores: &ContextStores,
    args: &UserArgs,
    stop: watch::Receiver<bool>,
) -> Result<UserContext> {
    msa_user::migrator()
        .run(stores.read_models.pool())
        .await
        .context("migrating the user context's query database")?;
    let (events, keys) = sealed_events(storage, stores).await?;
    let passwords = Passwords::new(HashCost {
        memory_kib: args.password_hash_memory_kib,
        iterations: args.password_hash_iterations,
    })
    .map_err(|e| anyhow::anyhow!("MSA_PASSWORD_HASH_*: {e}"))?;
    let lifetimes = TokenLifetimes {
        access: args.access_token_ttl,
        refresh: args.refresh_token_ttl,
    };
    keys.seal_stored()
        .await
        .context("encrypting the personal-data keys stored in clear")?;
    let master = crate::storage::master_key(storage)?;
    let tokens = Arc::new(
        Tokens::open(stores.read_models.clone(), lifetimes, &master)
            .await
            .context("loading the token signing keys")?,
    );
    let verifier = Arc::new(tokens.verifier());
    let kakao = kakao_config(args)?.map(|config| Kakao::new(config, stores.read_models.clone()));
    let throttle = Arc::new(LoginThrottle::default());
    let nickname_hold = chrono::Duration::from_std(args.nickname_hold)
        .context("MSA_NICKNAME_HOLD (--nickname-hold) is too long")?;
    let service = UserService::new(
        events,
        keys,
        stores.read_models.clone(),
        Arc::new(passwords),
        tokens.clone(),
        throttle,
    )
    .with_nickname_hold(nickname_hold);
    let service = Arc::new(match kakao {
        Some(kakao) => service.with_kakao(Arc::new(kakao)),
        None => service,
    });
    // Projections read through the service's store, which opens the sealed personal data. The
    // directory (existing nicknames take their look once) and the deny list are caught up first.
    let projections = crate::projection_start::start(
        &msa_user::Context,
        service.events(),
        &stores.read_models,
        stop.clone(),
    )
    .await?;
    service
        .upgrade()
        .await
        .context("upgrading stored user data")?;
    // The deny list: loaded before the process serves, then followed.
    let retain = args.access_token_ttl + DENY_LIST_MARGIN;
    verifier.revocations().replace(
        revocations::recent(&stores.read_models, retain)
            .await
            .context("loading the deny list")?,
    );
    let follower = revocations::follow(
        stores.read_models.clone(),
        verifier.revocations().clone(),
        retain,
        stop.clone(),
    );
    let projections = tokio::spawn(async move {
        let (projections, _) = tokio::join!(projections, follower);
        if let Err(error) = projections {
            tracing::error!(%error, "the user context's projections ended abnormally");
        }
    });
    let api = UserApi {
        service: service.clone(),
        tokens,
        read_models: stores.read_models.clone(),
        verifier: verifier.clone(),
        trusted_proxies: Arc::new(
            TrustedProxies::parse(&args.trusted_proxies)
                .map_err(|e| anyhow::anyhow!("MSA_TRUSTED_PROXIES (--trusted-proxies): {e}"))?,
        ),
    };
    Ok(UserContext {
        routes: routes(api.clone()),
        account_export: account_export_routes(api),
        service,
        verifier,
        projections,
    })
}

/// `msa users grant-admin EMAIL` / `revoke-admin EMAIL`: the operator's role commands, on the
/// user context's stores directly (a running server sees the change at the user's next token).
pub async fn change_admin(args: crate::cli::UserRoleArgs, grant: bool) -> Result<()> {
    let email = Email::parse(&args.email).map_err(|e| anyhow::anyhow!("EMAIL: {e}"))?;
    let stores = crate::storage::open(&args.storage, "user").await?;
    let (events, _) = sealed_events(&args.storage, &stores).await?;
    let roles = OperatorRoles::new(events);
    let outcome = if grant {
        roles.grant(&email, Role::Admin).await
    } else {
        roles.revoke(&email, Role::Admin).await
    };
    let (user_id, change) = outcome.map_err(|error| match error {
        msa_user::UserServiceError::NotFound => {
            anyhow::anyhow!("no active account is registered with {}", email.as_str())
        }
        other => anyhow::anyhow!(other),
    })?;
    let done = match (grant, change) {
        (true, RoleChange::Changed) => "is now an admin (from their next token)",
        (true, RoleChange::AsItWas) => "was already an admin",
        (false, RoleChange::Changed) => {
            "is no longer an admin (their access tokens are void; the next one has no admin role)"
        }
        (false, RoleChange::AsItWas) => "was not an admin",
    };
    println!("{} (user {user_id}) {done}", email.as_str());
    Ok(())
}

/// The user context's query database, migrated (where the signing keys are).
async fn signing_key_store(storage: &StorageArgs) -> Result<ContextStores> {
    let stores = crate::storage::open(storage, "user").await?;
    msa_user::migrator()
        .run(stores.read_models.pool())
        .await
        .context("migrating the user context's query database")?;
    Ok(stores)
}

/// `msa users rotate-signing-key`.
pub async fn rotate_signing_key(storage: StorageArgs) -> Result<()> {
    let stores = signing_key_store(&storage).await?;
    let master = crate::storage::master_key(&storage)?;
    let kid = Tokens::add_signing_key(&stores.read_models, &master).await?;
    for (key, created_at) in Tokens::signing_keys(&stores.read_models).await? {
        let note = if key == kid {
            "  (new: signs after a restart)"
        } else {
            ""
        };
        println!("{key}  {created_at}{note}");
    }
    println!(
        "restart the user service's instances to sign with {kid}; retire older keys with \
         `msa users retire-signing-key KID` once the access-token lifetime has passed"
    );
    Ok(())
}

/// `msa users retire-signing-key KID`.
pub async fn retire_signing_key(args: crate::cli::RetireKeyArgs) -> Result<()> {
    let stores = signing_key_store(&args.storage).await?;
    if !Tokens::retire_signing_key(&stores.read_models, &args.kid).await? {
        anyhow::bail!("no signing key {}", args.kid);
    }
    println!(
        "signing key {} removed; restart the user service's instances so their JWKS drops it",
        args.kid
    );
    Ok(())
}
