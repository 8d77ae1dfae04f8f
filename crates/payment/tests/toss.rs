//! The Toss Payments adapter against a local stand-in that follows Toss's documented API v1:
//! Basic authentication with the secret key, `Idempotency-Key` on POSTs, the Payment object on
//! success and `{code, message}` on failure.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use msa_payment::adapters::toss::TossProvider;
use msa_payment::application::provider::{
    Cancellation, Confirmation, PaymentProvider, ProviderError,
};
use msa_payment::domain::{PaymentKey, ProviderVerdict, RECORD_MISMATCH};
use serde_json::{json, Value};

const SECRET: &str = "test_sk_zXLkKEypNArWmo50nX3lmeaxYG5R";

#[derive(Default)]
struct Toss {
    /// paymentKey -> (totalAmount, balanceAmount, status)
    payments: HashMap<String, (i64, i64, &'static str)>,
    /// paymentKey -> orderId (`order-x` when not here)
    orders: HashMap<String, String>,
    /// Idempotency keys of cancels already applied.
    cancels: Vec<String>,
    requests: Vec<(String, Value, Option<String>)>,
}

type Shared = Arc<Mutex<Toss>>;

fn failure(status: StatusCode, code: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({ "code": code, "message": format!("{code} (stand-in)") })),
    )
}

fn payment_object(key: &str, order: &str, total: i64, balance: i64, status: &str) -> Value {
    json!({
        "mId": "tosspayments", "version": "2022-11-16", "paymentKey": key, "orderId": order,
        "orderName": "100 credits", "currency": "KRW", "method": "카드", "status": status,
        "totalAmount": total, "balanceAmount": balance, "suppliedAmount": total, "vat": 0,
        "requestedAt": "2026-11-27T21:00:00+09:00", "approvedAt": "2026-11-27T21:00:05+09:00",
        "cancels": null
    })
}

/// Every request must carry `Authorization: Basic base64(secret + ":")`.
fn authorized(headers: &HeaderMap) -> bool {
    use base64::Engine;
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{SECRET}:"));
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Basic {expected}"))
}

async fn confirm(
    State(toss): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) {
        return failure(StatusCode::UNAUTHORIZED, "UNAUTHORIZED_KEY");
    }
    let idempotency = headers
        .get("idempotency-key")
        .map(|v| v.to_str().unwrap().to_owned());
    let key = body["paymentKey"].as_str().unwrap_or_default().to_owned();
    let amount = body["amount"].as_i64().unwrap_or_default();
    let order = body["orderId"].as_str().unwrap_or_default().to_owned();
    toss.lock()
        .unwrap()
        .requests
        .push(("confirm".into(), body.clone(), idempotency));
    let charge_elsewhere = |order: &str, amount: i64| {
        let mut toss = toss.lock().unwrap();
        toss.payments.insert(key.clone(), (amount, amount, "DONE"));
        toss.orders.insert(key.clone(), order.to_owned());
    };
    match key.as_str() {
        // The key was charged for another order (or amount): one charge, two orders.
        "taken" => {
            charge_elsewhere("order-someone-else", amount);
            failure(StatusCode::BAD_REQUEST, "ALREADY_PROCESSED_PAYMENT")
        }
        "taken-cheaper" => {
            charge_elsewhere(&order, 10);
            failure(StatusCode::BAD_REQUEST, "ALREADY_PROCESSED_PAYMENT")
        }
        // Charged for another order, and the answer is lost: a look-up finds that record.
        "slow-taken" => {
            charge_elsewhere("order-someone-else", amount);
            tokio::time::sleep(Duration::from_secs(3)).await;
            failure(StatusCode::BAD_REQUEST, "ALREADY_PROCESSED_PAYMENT")
        }
        "reject" => failure(StatusCode::FORBIDDEN, "REJECT_CARD_PAYMENT"),
        "boom" => failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            "FAILED_INTERNAL_SYSTEM_PROCESSING",
        ),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            (
                StatusCode::OK,
                Json(payment_object(&key, &order, amount, amount, "DONE")),
            )
        }
        "processed" => {
            charge_elsewhere(&order, amount);
            failure(StatusCode::BAD_REQUEST, "ALREADY_PROCESSED_PAYMENT")
        }
        _ => {
            charge_elsewhere(&order, amount);
            (
                StatusCode::OK,
                Json(payment_object(&key, &order, amount, amount, "DONE")),
            )
        }
    }
}

async fn cancel(
    State(toss): State<Shared>,
    Path(key): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) {
        return failure(StatusCode::UNAUTHORIZED, "UNAUTHORIZED_KEY");
    }
    let Some(idempotency) = headers
        .get("idempotency-key")
        .map(|v| v.to_str().unwrap().to_owned())
    else {
        return failure(StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    };
    let mut toss = toss.lock().unwrap();
    toss.requests
        .push(("cancel".into(), body.clone(), Some(idempotency.clone())));
    let Some((total, balance, _)) = toss.payments.get(&key).copied() else {
        return failure(StatusCode::NOT_FOUND, "NOT_FOUND_PAYMENT");
    };
    let order = toss.orders.get(&key).cloned().unwrap_or("order-x".into());
    if toss.cancels.contains(&idempotency) {
        let status = if balance == 0 {
            "CANCELED"
        } else {
            "PARTIAL_CANCELED"
        };
        return (
            StatusCode::OK,
            Json(payment_object(&key, &order, total, balance, status)),
        );
    }
    let amount = body["cancelAmount"].as_i64().unwrap_or(balance);
    if body["cancelReason"].as_str().is_none_or(str::is_empty) {
        return failure(StatusCode::BAD_REQUEST, "INVALID_REQUEST");
    }
    if amount > balance {
        return failure(StatusCode::FORBIDDEN, "NOT_CANCELABLE_AMOUNT");
    }
    let left = balance - amount;
    let status = if left == 0 {
        "CANCELED"
    } else {
        "PARTIAL_CANCELED"
    };
    toss.payments.insert(key.clone(), (total, left, status));
    toss.cancels.push(idempotency);
    (
        StatusCode::OK,
        Json(payment_object(&key, &order, total, left, status)),
    )
}

async fn look_up(
    State(toss): State<Shared>,
    Path(key): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    if !authorized(&headers) {
        return failure(StatusCode::UNAUTHORIZED, "UNAUTHORIZED_KEY");
    }
    let toss = toss.lock().unwrap();
    let order = toss.orders.get(&key).map_or("order-x", String::as_str);
    match toss.payments.get(&key) {
        Some((total, balance, status)) => (
            StatusCode::OK,
            Json(payment_object(&key, order, *total, *balance, status)),
        ),
        None => failure(StatusCode::NOT_FOUND, "NOT_FOUND_PAYMENT"),
    }
}

async fn stand_in() -> (String, Shared) {
    let toss: Shared = Arc::default();
    let app = Router::new()
        .route("/v1/payments/confirm", post(confirm))
        .route("/v1/payments/{key}/cancel", post(cancel))
        .route("/v1/payments/{key}", get(look_up))
        .with_state(toss.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), toss)
}

fn confirmation(key: &str) -> Confirmation {
    Confirmation {
        payment_key: key.into(),
        order_id: "order-0193".into(),
        amount: 1000,
        currency: "KRW".into(),
    }
}

#[tokio::test]
async fn confirm_sends_the_documented_request_and_reads_the_payment_object() {
    let (base, toss) = stand_in().await;
    let provider = TossProvider::new(SECRET, &base, Duration::from_secs(2)).unwrap();
    let verdict = provider.confirm(&confirmation("tgen_ok")).await.unwrap();
    let ProviderVerdict::Approved {
        payment_key,
        amount,
        approved_at,
    } = verdict
    else {
        panic!("not approved: {verdict:?}");
    };
    assert_eq!((payment_key.as_str(), amount), ("tgen_ok", 1000));
    assert_eq!(approved_at.to_rfc3339(), "2026-11-27T12:00:05+00:00");
    let (kind, body, idempotency) = toss.lock().unwrap().requests[0].clone();
    assert_eq!(kind, "confirm");
    assert_eq!(
        body,
        json!({ "paymentKey": "tgen_ok", "orderId": "order-0193", "amount": 1000 })
    );
    assert_eq!(idempotency.as_deref(), Some("order-0193"));
}

#[tokio::test]
async fn declines_timeouts_and_failures_of_toss_are_told_apart() {
    let (base, _) = stand_in().await;
    let provider = TossProvider::new(SECRET, &base, Duration::from_millis(500)).unwrap();
    assert_eq!(
        provider.confirm(&confirmation("reject")).await,
        Ok(ProviderVerdict::Declined {
            code: "REJECT_CARD_PAYMENT".into(),
            message: "REJECT_CARD_PAYMENT (stand-in)".into()
        })
    );
    assert_eq!(
        provider.confirm(&confirmation("slow")).await,
        Err(ProviderError::Timeout)
    );
    assert!(matches!(
        provider.confirm(&confirmation("boom")).await,
        Err(ProviderError::Unavailable(_))
    ));
    // Confirmed before (our answer was lost): the adapter asks Toss what it has.
    assert!(matches!(
        provider.confirm(&confirmation("processed")).await,
        Ok(ProviderVerdict::Approved { .. })
    ));
    // ... but only if what it has is this order, amount and currency: one charge never approves
    // two orders.
    for taken in ["taken", "taken-cheaper"] {
        assert!(
            matches!(
                provider.confirm(&confirmation(taken)).await,
                Ok(ProviderVerdict::Declined { ref code, .. }) if code == RECORD_MISMATCH
            ),
            "{taken}"
        );
    }
    let wrong_key = TossProvider::new("test_sk_wrong", &base, Duration::from_secs(2)).unwrap();
    assert!(matches!(
        wrong_key.confirm(&confirmation("tgen_ok")).await,
        Err(ProviderError::Unavailable(_))
    ));
}

#[tokio::test]
async fn partial_cancels_are_idempotent_by_key_and_never_exceed_the_balance() {
    let (base, toss) = stand_in().await;
    let provider = TossProvider::new(SECRET, &base, Duration::from_secs(2)).unwrap();
    provider.confirm(&confirmation("tgen_ok")).await.unwrap();
    let cancel = |amount, key: &str| Cancellation {
        payment_key: "tgen_ok".into(),
        amount,
        reason: "buyer asked".into(),
        idempotency_key: key.into(),
    };
    provider.cancel(&cancel(300, "refund-1")).await.unwrap();
    provider.cancel(&cancel(300, "refund-1")).await.unwrap();
    let record = provider.look_up("tgen_ok").await.unwrap();
    assert_eq!((record.total_amount, record.refunded_amount), (1000, 300));
    assert_eq!(
        provider.cancel(&cancel(800, "refund-2")).await,
        Err(ProviderError::Refused {
            code: "NOT_CANCELABLE_AMOUNT".into(),
            message: "NOT_CANCELABLE_AMOUNT (stand-in)".into()
        })
    );
    let (_, body, idempotency) = toss.lock().unwrap().requests[1].clone();
    assert_eq!(
        body,
        json!({ "cancelReason": "buyer asked", "cancelAmount": 300 })
    );
    assert_eq!(idempotency.as_deref(), Some("refund-1"));
    // Unknown to Toss: no verdict yet.
    assert_eq!(
        provider.look_up("never-seen").await.unwrap().verdict,
        ProviderVerdict::Pending
    );
}

/// The payment use cases over real stores with Toss as the provider (the stand-in).
async fn payments_with_toss(
    base: &str,
) -> (
    msa_testkit::TestStores,
    std::sync::Arc<msa_payment::application::payments::Payments>,
    tokio::sync::watch::Sender<bool>,
) {
    use msa_payment::application::payments::{PaymentSettings, Payments};
    use msa_payment::application::wallets::Wallets;
    let stores = msa_testkit::TestStores::sqlite(msa_kernel::Upcasters::new()).await;
    let provider = TossProvider::new(SECRET, base, Duration::from_millis(500)).unwrap();
    let wallets = Arc::new(Wallets::new(stores.events.clone(), 0));
    let payments = Arc::new(Payments::new(
        stores.events.clone(),
        stores.read_models.clone(),
        msa_payment::domain::Catalog::parse(msa_payment::domain::DEFAULT_CATALOG).unwrap(),
        Arc::new(provider),
        wallets,
        PaymentSettings::default(),
    ));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let runner =
        msa_kernel::ProjectionRunner::new(stores.events.clone(), stores.read_models.clone());
    runner
        .ensure_tables(&msa_payment::adapters::payment_list::PaymentList)
        .await
        .unwrap();
    tokio::spawn(async move {
        runner
            .run(&msa_payment::adapters::payment_list::PaymentList, stopped)
            .await
    });
    (stores, payments, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_toss_record_of_another_order_fails_the_payment_on_confirm_and_on_look_up() {
    use msa_payment::domain::PaymentStatus;
    let (base, _) = stand_in().await;
    let (_stores, payments, _stop) = payments_with_toss(&base).await;
    let buyer = uuid::Uuid::now_v7();

    // ALREADY_PROCESSED_PAYMENT, and Toss's record is another order's.
    let (payment, _) = payments.request(buyer, "credits-100", "k-1").await.unwrap();
    let failed = payments
        .confirm(
            buyer,
            payment.id,
            &PaymentKey::parse("taken").unwrap(),
            1000,
        )
        .await
        .unwrap();
    assert_eq!(failed.status, PaymentStatus::Failed, "{failed:?}");
    assert!(failed.failure.unwrap().starts_with(RECORD_MISMATCH));

    // The answer is lost; the look-up that resolves it finds another order's record.
    let (payment, _) = payments.request(buyer, "credits-100", "k-2").await.unwrap();
    let unknown = payments
        .confirm(
            buyer,
            payment.id,
            &PaymentKey::parse("slow-taken").unwrap(),
            1000,
        )
        .await
        .unwrap();
    assert_eq!(unknown.status, PaymentStatus::Unknown);
    let resolved = payments.resolve(payment.id).await.unwrap();
    assert_eq!(resolved.status, PaymentStatus::Failed, "{resolved:?}");
    assert!(resolved.failure.unwrap().starts_with(RECORD_MISMATCH));

    // This order's own record approves it.
    let (payment, _) = payments.request(buyer, "credits-100", "k-3").await.unwrap();
    let approved = payments
        .confirm(
            buyer,
            payment.id,
            &PaymentKey::parse("tgen_mine").unwrap(),
            1000,
        )
        .await
        .unwrap();
    assert_eq!(approved.status, PaymentStatus::Approved, "{approved:?}");
}
