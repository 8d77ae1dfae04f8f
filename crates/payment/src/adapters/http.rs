//! The payment context's HTTP API: thin handlers over [`Payments`] and [`Wallets`].

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRef, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use msa_http::auth::{Caller, TokenVerifier};
use msa_http::service_identity::{ServiceCaller, TrustedServices};
use msa_http::{
    next_cursor, BearerAuth, FieldError, Fields, PageQuery, Problem, RecordsQuery, StrictJson,
    StrictQuery,
};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};
use uuid::Uuid;

use crate::adapters::payment_list::PaymentView;
use crate::adapters::webhook_signature::{WebhookSecret, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::application::payments::export::{PaymentRecordPage, PaymentRecords};
use crate::application::payments::{Payments, RefundView};
use crate::application::views::LedgerEntry;
use crate::application::wallets::{WalletView, Wallets};
use crate::application::PaymentsError;
use crate::domain::{
    PaymentError, PaymentKey, PaymentStatus, Product, ProviderVerdict, RefundReason, SpendKey,
    WalletError,
};

#[derive(Clone)]
pub struct PaymentApi {
    pub payments: Arc<Payments>,
    pub wallets: Arc<Wallets>,
    pub verifier: Arc<TokenVerifier>,
    /// Checks the sandbox provider's webhook signatures.
    pub sandbox_webhooks: Arc<WebhookSecret>,
}

impl FromRef<PaymentApi> for Arc<TokenVerifier> {
    fn from_ref(api: &PaymentApi) -> Self {
        api.verifier.clone()
    }
}

pub fn routes(api: PaymentApi) -> Router {
    Router::new()
        .route("/v1/products", get(products))
        .route("/v1/payments", post(request_payment).get(my_payments))
        .route("/v1/payments/{id}", get(payment))
        .route("/v1/payments/{id}/confirm", post(confirm))
        .route("/v1/payments/{id}/cancel", post(cancel))
        .route("/v1/payments/{id}/refunds", post(refund))
        .route("/v1/payments/webhooks/{provider}", post(webhook))
        .route("/v1/wallet", get(wallet))
        .route("/v1/wallet/ledger", get(wallet_ledger))
        .with_state(api)
}

/// What the internal routes answer with: the API, and the services whose calls they take.
#[derive(Clone)]
struct InternalApi {
    api: PaymentApi,
    callers: Arc<TrustedServices>,
}

impl FromRef<InternalApi> for Arc<TrustedServices> {
    fn from_ref(internal: &InternalApi) -> Self {
        internal.callers.clone()
    }
}

/// Spending and giving back message credits, for user-chat's credit policy between
/// microservices (in the single server it calls [`Wallets`] in-process). Only `callers`
/// (services proving who they are) are answered, for the wallet the path names; an end user's
/// token is 403. Not part of the public API; the gateway does not route `/internal`.
pub fn internal_routes(api: PaymentApi, callers: Arc<TrustedServices>) -> Router {
    Router::new()
        .route("/internal/v1/wallets/{user_id}/spends", post(spend))
        .route(
            "/internal/v1/wallets/{user_id}/spends/{spend_key}",
            axum::routing::delete(refund_spend),
        )
        .route("/internal/v1/users/{user_id}/records/{part}", get(records))
        .with_state(InternalApi { api, callers })
}

/// A person's payments (with refunds) or ledger lines, a page at a time: user-chat's export
/// between microservices (in the single server it calls [`Payments::records`] in-process).
#[utoipa::path(get, path = "/internal/v1/users/{user_id}/records/{part}", tag = "payments", security(("bearer" = [])),
    params(("user_id" = Uuid, Path), ("part" = String, Path, description = "payments or ledger"), RecordsQuery),
    description = "For services only (user-chat's export between microservices). Items are ExportedPayment or LedgerEntry by part, newest first.",
    responses((status = 200, body = PaymentRecordPage), (status = 401, body = Problem),
        (status = 403, description = "Not a service", body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn records(
    State(internal): State<InternalApi>,
    _service: ServiceCaller,
    Path((user_id, part)): Path<(String, String)>,
    StrictQuery(query): StrictQuery<RecordsQuery>,
) -> Result<impl IntoResponse, Problem> {
    let user_id = wallet_owner(&user_id)?;
    let part = PaymentRecords::parse(&part).ok_or_else(|| Problem::not_found("no such part"))?;
    let limit = query.limit()?;
    let page = internal
        .api
        .payments
        .records(user_id, part, query.cursor.as_deref(), limit)
        .await?;
    Ok(Json(page))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSpend {
    spend_key: String,
}

fn wallet_owner(user_id: &str) -> Result<Uuid, Problem> {
    user_id
        .parse()
        .map_err(|_| Problem::invalid(vec![FieldError::new("user_id", "a user id (UUID)")]))
}

async fn spend(
    State(internal): State<InternalApi>,
    _service: ServiceCaller,
    Path(user_id): Path<String>,
    StrictJson(body): StrictJson<NewSpend>,
) -> Result<impl IntoResponse, Problem> {
    let user_id = wallet_owner(&user_id)?;
    let spend_key = Fields::one("spend_key", SpendKey::parse(&body.spend_key))?;
    let spent = internal.api.wallets.spend(user_id, &spend_key).await?;
    // 201 for the call that made the spend, 200 for a replay: only the maker may give it back.
    let status = if spent.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(spent)))
}

async fn refund_spend(
    State(internal): State<InternalApi>,
    _service: ServiceCaller,
    Path((user_id, spend_key)): Path<(String, String)>,
) -> Result<impl IntoResponse, Problem> {
    let user_id = wallet_owner(&user_id)?;
    let spend_key = Fields::one("spend_key", SpendKey::parse(&spend_key))?;
    internal
        .api
        .wallets
        .refund_spend(user_id, &spend_key)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The payment context's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(products, request_payment, my_payments, payment, confirm, cancel, refund, webhook, wallet, wallet_ledger),
    modifiers(&BearerAuth),
    tags((name = "payments", description = "Credit packs, payments through providers, refunds"),
        (name = "wallet", description = "Message credits: the balance, the daily free allowance, the ledger"))
)]
pub struct PaymentApiDoc;

impl From<PaymentsError> for Problem {
    fn from(error: PaymentsError) -> Self {
        let detail = error.to_string();
        match error {
            PaymentsError::Invalid(errors) => Problem::invalid(errors),
            PaymentsError::UnknownProduct(_) => {
                Problem::invalid(vec![FieldError::new("product_id", detail)])
            }
            PaymentsError::Payment(refusal) => match refusal {
                PaymentError::NotFound | PaymentError::NotYours => {
                    Problem::not_found("no such payment")
                }
                PaymentError::AmountMismatch { .. } | PaymentError::InvalidRefundAmount => {
                    Problem::invalid(vec![FieldError::new("amount", detail)])
                }
                PaymentError::RefundExceedsRemaining { .. } => {
                    Problem::conflict("refund-exceeds-remaining", detail)
                }
                PaymentError::AlreadyExists
                | PaymentError::NotConfirmable(_)
                | PaymentError::OutcomePending
                | PaymentError::NotCancelable(_)
                | PaymentError::NotRefundable(_)
                | PaymentError::RefundWindowClosed => Problem::conflict("payment-state", detail),
                PaymentError::HoldOutdated => Problem::unavailable(detail, 1),
            },
            PaymentsError::Wallet(WalletError::OutOfCredits) => {
                Problem::new(StatusCode::PAYMENT_REQUIRED, "out-of-credits", detail)
            }
            PaymentsError::Wallet(WalletError::InDebt { .. }) => {
                Problem::new(StatusCode::PAYMENT_REQUIRED, "wallet-in-debt", detail)
            }
            PaymentsError::Wallet(WalletError::CreditsSpent { .. }) => {
                Problem::conflict("credits-spent", detail)
            }
            PaymentsError::Wallet(WalletError::TooManyCredits) => {
                Problem::invalid(vec![FieldError::new("credits", detail)])
            }
            PaymentsError::DeliveryNotOurs => Problem::unauthorized(detail),
            PaymentsError::TooManyOpenPayments(_) => {
                let mut problem = Problem::too_many_requests(detail, 30);
                problem.kind = "urn:msa:problem:too-many-open-payments".into();
                problem
            }
            PaymentsError::IdempotencyKeyReused(_) => {
                Problem::conflict("idempotency-key-reused", detail)
            }
            PaymentsError::UnknownSpend(_) => Problem::not_found(detail),
            PaymentsError::SpendRefunded(_) => Problem::conflict("spend-refunded", detail),
            PaymentsError::ProviderRefused { .. } => {
                Problem::new(StatusCode::BAD_GATEWAY, "provider-refused", detail)
            }
            PaymentsError::ProviderUnavailable | PaymentsError::Busy => {
                Problem::unavailable(detail, 2)
            }
            PaymentsError::Store(error) => Problem::storage(&error),
        }
    }
}

fn payment_id(raw: &str) -> Result<Uuid, Problem> {
    raw.parse()
        .map_err(|_| Problem::not_found("no such payment"))
}

/// The `Idempotency-Key` header: required, 1 to 255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<String, Problem> {
    msa_http::idempotency_key(headers)?.ok_or_else(|| {
        msa_http::bad_idempotency_key(
            "this request moves money and needs an Idempotency-Key header (a UUID, say)",
        )
    })
}

#[derive(Serialize, ToSchema)]
struct ProductList {
    items: Vec<Product>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/products", tag = "payments",
    responses((status = 200, description = "The credit packs on sale", body = ProductList)))]
async fn products(State(api): State<PaymentApi>) -> Json<ProductList> {
    Json(ProductList {
        items: api.payments.catalog().products().to_vec(),
        next_cursor: None,
    })
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewPayment {
    /// A product of `GET /v1/products`.
    product_id: String,
}

#[utoipa::path(post, path = "/v1/payments", tag = "payments", security(("bearer" = [])), request_body = NewPayment,
    params(("Idempotency-Key" = String, Header, description = "Names this request: a retry with the same key and body answers the first response")),
    responses((status = 201, description = "Requested; confirm it with the provider's payment key", body = PaymentView),
        (status = 400, description = "No or a bad Idempotency-Key", body = Problem), (status = 401, body = Problem),
        (status = 409, description = "The key was used with another body", body = Problem), (status = 422, body = Problem),
        (status = 429, description = "Too many open payments (requested or unknown) of this user: confirm or cancel one first", body = Problem)))]
async fn request_payment(
    State(api): State<PaymentApi>,
    caller: Caller,
    headers: HeaderMap,
    StrictJson(body): StrictJson<NewPayment>,
) -> Result<impl IntoResponse, Problem> {
    let key = idempotency_key(&headers)?;
    let (payment, created) = api
        .payments
        .request(caller.user_id, &body.product_id, &key)
        .await?;
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, format!("/v1/payments/{}", payment.id)),
            (
                header::HeaderName::from_static("idempotent-replayed"),
                (!created).to_string(),
            ),
        ],
        Json(payment),
    ))
}

#[derive(Serialize, ToSchema)]
struct PaymentPage {
    items: Vec<PaymentView>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/payments", tag = "payments", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, description = "My payments, newest first", body = PaymentPage),
        (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn my_payments(
    State(api): State<PaymentApi>,
    caller: Caller,
    StrictQuery(query): StrictQuery<PageQuery>,
) -> Result<impl IntoResponse, Problem> {
    let limit = query.limit()?;
    let items = api
        .payments
        .payments_of(caller.user_id, query.cursor::<Uuid>()?, limit)
        .await?;
    let next_cursor = next_cursor(&items, limit, |p| Some(p.id.to_string()));
    Ok(Json(PaymentPage { items, next_cursor }))
}

#[utoipa::path(get, path = "/v1/payments/{id}", tag = "payments", security(("bearer" = [])), params(("id" = Uuid, Path)),
    responses((status = 200, body = PaymentView), (status = 401, body = Problem), (status = 404, body = Problem)))]
async fn payment(
    State(api): State<PaymentApi>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let payment = api
        .payments
        .payment(caller.user_id, caller.is_admin(), payment_id(&id)?)
        .await?;
    Ok(Json(payment))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Confirm {
    /// The provider's key for this payment (from its checkout).
    payment_key: String,
    /// The amount the buyer was shown; must be the order's.
    amount: i64,
}

/// 200 once the provider decided; 202 while the outcome is unknown (it is looked up).
fn decided_or_accepted(payment: &PaymentView) -> StatusCode {
    if payment.status == PaymentStatus::Unknown {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    }
}

#[utoipa::path(post, path = "/v1/payments/{id}/confirm", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = Confirm,
    responses((status = 200, description = "Approved or failed", body = PaymentView),
        (status = 202, description = "The provider did not answer in time: status unknown, resolved by a look-up (never charged twice)", body = PaymentView),
        (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, description = "The amount is not the order's (`amount`), or `payment_key` is blank, over 200 bytes or has control characters", body = Problem)))]
async fn confirm(
    State(api): State<PaymentApi>,
    caller: Caller,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<Confirm>,
) -> Result<impl IntoResponse, Problem> {
    let payment_id = payment_id(&id)?;
    let payment_key = Fields::one("payment_key", PaymentKey::parse(&body.payment_key))?;
    let payment = api
        .payments
        .confirm(caller.user_id, payment_id, &payment_key, body.amount)
        .await?;
    Ok((decided_or_accepted(&payment), Json(payment)))
}

#[utoipa::path(post, path = "/v1/payments/{id}/cancel", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path)),
    responses((status = 200, body = PaymentView), (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "Confirmed already", body = Problem)))]
async fn cancel(
    State(api): State<PaymentApi>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    Ok(Json(
        api.payments
            .cancel(caller.user_id, payment_id(&id)?)
            .await?,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewRefund {
    /// In the payment's currency's minor units; at most what remains to refund.
    amount: i64,
    reason: String,
}

#[utoipa::path(post, path = "/v1/payments/{id}/refunds", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path)), request_body = NewRefund,
    responses((status = 201, description = "Refunded", body = RefundView),
        (status = 202, description = "Reserved; the provider has not confirmed it yet (retried in the background)", body = RefundView),
        (status = 401, body = Problem), (status = 404, body = Problem),
        (status = 409, description = "Over the remaining amount, outside the refund window, or the credits it bought are not all available (spent, or held by another refund): `credits-spent`", body = Problem),
        (status = 422, body = Problem), (status = 502, description = "The provider refused", body = Problem)))]
async fn refund(
    State(api): State<PaymentApi>,
    caller: Caller,
    Path(id): Path<String>,
    StrictJson(body): StrictJson<NewRefund>,
) -> Result<impl IntoResponse, Problem> {
    let payment_id = payment_id(&id)?;
    let reason = Fields::one("reason", RefundReason::parse(&body.reason))?;
    let refund = api
        .payments
        .refund(
            caller.user_id,
            caller.is_admin(),
            payment_id,
            body.amount,
            &reason,
        )
        .await?;
    let status = if refund.status == "pending" {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(refund)))
}

/// A sandbox delivery: the provider's status of a payment.
#[derive(Deserialize, ToSchema)]
struct SandboxDelivery {
    /// The delivery's id; a delivery may arrive more than once and out of order.
    #[allow(dead_code)]
    delivery_id: String,
    order_id: String,
    payment_key: String,
    /// `DONE`, `ABORTED`, `EXPIRED` or `CANCELED` (Toss's payment statuses).
    status: String,
    amount: i64,
    approved_at: Option<DateTime<Utc>>,
}

/// A Toss Payments `PAYMENT_STATUS_CHANGED` delivery (only the fields read).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TossDelivery {
    data: TossDeliveryData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TossDeliveryData {
    order_id: String,
    payment_key: String,
    status: String,
}

/// Our order ids are `order-<payment id without dashes>`.
fn payment_of_order(order_id: &str) -> Result<Uuid, Problem> {
    order_id
        .strip_prefix("order-")
        .and_then(|hex| Uuid::try_parse(hex).ok())
        .ok_or_else(|| Problem::not_found("no payment has this order id"))
}

#[utoipa::path(post, path = "/v1/payments/webhooks/{provider}", tag = "payments",
    params(("provider" = String, Path, description = "`sandbox` (signed: Sandbox-Timestamp and Sandbox-Signature headers, HMAC-SHA256 over `<timestamp>.<body>`) or `toss` (unsigned: must name our order id and payment key, then looked up when it could change the payment). A cancellation of an approved payment refunds it here too and takes its credits back (a debt when spent); an amount that disagrees with ours is recorded")),
    request_body = SandboxDelivery,
    responses((status = 200, description = "Handled (repeats and late deliveries change nothing)"),
        (status = 400, body = Problem), (status = 401, description = "Bad signature or stale timestamp; a Toss delivery of another payment key", body = Problem),
        (status = 404, body = Problem)))]
async fn webhook(
    State(api): State<PaymentApi>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<impl IntoResponse, Problem> {
    // Over the body limit (or unreadable): a problem like every other refusal, not plain text.
    let body = body.map_err(|rejection| {
        let kind = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "payload-too-large"
        } else {
            "bad-request"
        };
        Problem::new(
            rejection.status(),
            kind,
            format!("cannot read the body: {rejection}"),
        )
    })?;
    if provider != api.payments.provider_name() {
        return Err(Problem::not_found(format!(
            "this deployment takes payments through `{}`, not `{provider}`",
            api.payments.provider_name()
        )));
    }
    let bad_body = |error: serde_json::Error| {
        Problem::bad_request(format!("not a {provider} delivery: {error}"))
    };
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let payment = match provider.as_str() {
        "sandbox" => {
            api.sandbox_webhooks
                .verify(
                    header_text(TIMESTAMP_HEADER),
                    header_text(SIGNATURE_HEADER),
                    &body,
                    Utc::now(),
                )
                .map_err(|error| Problem::unauthorized(error.to_string()))?;
            let delivery: SandboxDelivery = serde_json::from_slice(&body).map_err(bad_body)?;
            let payment_key = PaymentKey::parse(&delivery.payment_key)
                .map_err(|invalid| Problem::bad_request(format!("payment_key: {invalid}")))?;
            let verdict = match delivery.status.as_str() {
                "DONE" => ProviderVerdict::Approved {
                    payment_key: payment_key.as_str().to_owned(),
                    amount: delivery.amount,
                    approved_at: delivery.approved_at.unwrap_or_else(Utc::now),
                },
                "ABORTED" => ProviderVerdict::Declined {
                    code: "ABORTED".into(),
                    message: "the provider aborted the payment".into(),
                },
                "EXPIRED" => ProviderVerdict::Expired,
                "CANCELED" => ProviderVerdict::Canceled,
                other => return Err(Problem::bad_request(format!("unknown status `{other}`"))),
            };
            api.payments
                .report(payment_of_order(&delivery.order_id)?, verdict)
                .await?
        }
        _ => {
            // Toss does not sign these: the delivery must name a payment of ours by its order id
            // and key (checked before any look-up), and only what the look-up says counts.
            let delivery: TossDelivery = serde_json::from_slice(&body).map_err(bad_body)?;
            let data = delivery.data;
            api.payments
                .report_from_provider(
                    payment_of_order(&data.order_id)?,
                    &data.payment_key,
                    &data.status,
                )
                .await?
        }
    };
    Ok(Json(
        serde_json::json!({ "received": true, "status": payment.status }),
    ))
}

#[utoipa::path(get, path = "/v1/wallet", tag = "wallet", security(("bearer" = [])),
    responses((status = 200, body = WalletView), (status = 401, body = Problem)))]
async fn wallet(
    State(api): State<PaymentApi>,
    caller: Caller,
) -> Result<impl IntoResponse, Problem> {
    Ok(Json(api.wallets.wallet(caller.user_id).await?))
}

#[derive(Serialize, ToSchema)]
struct LedgerPage {
    items: Vec<LedgerEntry>,
    next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/wallet/ledger", tag = "wallet", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, description = "My wallet's entries, newest first", body = LedgerPage),
        (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn wallet_ledger(
    State(api): State<PaymentApi>,
    caller: Caller,
    StrictQuery(query): StrictQuery<PageQuery>,
) -> Result<impl IntoResponse, Problem> {
    let limit = query.limit()?;
    let items = api
        .payments
        .ledger(caller.user_id, query.cursor::<i64>()?, limit)
        .await?;
    let next_cursor = next_cursor(&items, limit, |e| Some(e.entry.to_string()));
    Ok(Json(LedgerPage { items, next_cursor }))
}
