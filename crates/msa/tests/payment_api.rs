//! The payment service's HTTP API on the spawned binary with the sandbox provider, on SQLite and
//! on PostgreSQL: products, idempotent payment requests, confirmations (approved, declined,
//! timed out and resolved), signed webhooks, refunds, the wallet and its ledger, and
//! `msa payments reconcile`; behaviours named for what they show, each with its own people,
//! sharing one server per backend.

mod common;

use std::time::Duration;

use common::api::{eventually, Api, Person};
use common::behaviour;
use msa_payment::adapters::webhook_signature::WebhookSecret;
use reqwest::Method;
use serde_json::{json, Value};

const WEBHOOK_SECRET: &str = "whsec_test_3f9a";

fn start(storage: &[&str]) -> Api {
    let mut args = vec![
        "--sandbox-webhook-secret",
        WEBHOOK_SECRET,
        "--payment-sweep-every",
        "300ms",
    ];
    args.extend(storage);
    Api::start(&args)
}

async fn request(api: &Api, who: &Person, key: Option<&str>, body: Value) -> (u16, Value, String) {
    let mut request = api
        .client
        .post(format!("{}/v1/payments", api.server.base))
        .bearer_auth(&who.token)
        .json(&body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    if status >= 400 {
        assert_eq!(
            response.headers()["content-type"],
            "application/problem+json"
        );
    }
    let body = response.json().await.unwrap();
    (status, body, replayed)
}

async fn buy(api: &Api, who: &Person, key: &str) -> Value {
    let (status, payment, _) =
        request(api, who, Some(key), json!({"product_id": "credits-100"})).await;
    assert_eq!(status, 201, "{payment}");
    payment
}

async fn confirm(api: &Api, who: &Person, payment: &Value, key: &str, amount: i64) -> (u16, Value) {
    let path = format!("/v1/payments/{}/confirm", payment["id"].as_str().unwrap());
    api.call(
        Method::POST,
        &path,
        &who.token,
        Some(json!({"payment_key": key, "amount": amount})),
    )
    .await
}

async fn balance(api: &Api, who: &Person) -> i64 {
    let (status, wallet) = api.call(Method::GET, "/v1/wallet", &who.token, None).await;
    assert_eq!(status, 200, "{wallet}");
    wallet["balance"].as_i64().unwrap()
}

async fn wait_for_balance(api: &Api, who: &Person, expected: i64) {
    eventually(|| async { balance(api, who).await == expected }).await;
}

async fn deliver(api: &Api, body: &Value, signed_at: i64, secret: &str) -> (u16, Value) {
    let bytes = serde_json::to_vec(body).unwrap();
    let signature = WebhookSecret::new(secret.as_bytes()).sign(signed_at, &bytes);
    let request = api
        .client
        .post(format!("{}/v1/payments/webhooks/sandbox", api.server.base))
        .header("content-type", "application/json")
        .header("Sandbox-Timestamp", signed_at.to_string())
        .header("Sandbox-Signature", signature)
        .body(bytes);
    api.answer(request).await
}

fn field_names(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .map(|errors| errors.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default()
}

async fn the_catalog_is_public(api: &Api) {
    let (status, products) = api.call(Method::GET, "/v1/products", "", None).await;
    assert_eq!(status, 200);
    assert_eq!(
        products["items"][0],
        json!({"id": "credits-100", "credits": 100, "amount": 1000, "currency": "KRW"})
    );
}

async fn a_request_needs_an_idempotency_key_and_a_retry_answers_the_first(api: &Api) {
    let ada = api.someone("Ada").await;
    let (status, problem, _) = request(api, &ada, None, json!({"product_id": "credits-100"})).await;
    assert_eq!(
        (status, field_names(&problem)),
        (400, vec!["Idempotency-Key"]),
        "{problem}"
    );
    let credits_100 = || json!({"product_id": "credits-100"});
    let (status, first, replayed) = request(api, &ada, Some("buy-1"), credits_100()).await;
    assert_eq!((status, replayed.as_str()), (201, "false"), "{first}");
    assert_eq!(first["status"], "requested");
    assert_eq!(
        (first["amount"].as_i64(), first["currency"].as_str()),
        (Some(1000), Some("KRW"))
    );
    let (status, again, replayed) = request(api, &ada, Some("buy-1"), credits_100()).await;
    assert_eq!((status, replayed.as_str(), &again), (201, "true", &first));
    let other_product = json!({"product_id": "credits-550"});
    let (status, problem, _) = request(api, &ada, Some("buy-1"), other_product).await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (409, Some("urn:msa:problem:idempotency-key-reused"))
    );
    let (status, problem, _) =
        request(api, &ada, Some("buy-x"), json!({"product_id": "credits-7"})).await;
    assert_eq!((status, field_names(&problem)), (422, vec!["product_id"]));
    let (status, _, _) = request(api, &ada, Some("buy-y"), json!({"product": "credits-100"})).await;
    assert_eq!(status, 422);
}

async fn a_confirmation_takes_the_orders_amount_from_its_owner_and_credits_once(api: &Api) {
    let (ada, bob) = (api.someone("Ada").await, api.someone("Bob").await);
    let payment = buy(api, &ada, "buy-1").await;
    for bad_key in ["   ", "approve\n0", &"k".repeat(201)] {
        let (status, problem) = confirm(api, &ada, &payment, bad_key, 1000).await;
        assert_eq!(
            (status, field_names(&problem)),
            (422, vec!["payment_key"]),
            "{bad_key:?}: {problem}"
        );
    }
    let (status, problem) = confirm(api, &ada, &payment, "approve-0", 999).await;
    assert_eq!(
        (status, field_names(&problem)),
        (422, vec!["amount"]),
        "{problem}"
    );
    assert_eq!(confirm(api, &bob, &payment, "approve-0", 1000).await.0, 404);
    let (status, approved) = confirm(api, &ada, &payment, "approve-0", 1000).await;
    assert_eq!(
        (status, approved["status"].as_str()),
        (200, Some("approved")),
        "{approved}"
    );
    let (status, again) = confirm(api, &ada, &payment, "approve-0", 1000).await;
    assert_eq!((status, again["status"].as_str()), (200, Some("approved")));
    wait_for_balance(api, &ada, 100).await;
}

async fn a_decline_fails_the_payment(api: &Api) {
    let ada = api.someone("Ada").await;
    let declined = buy(api, &ada, "buy-2").await;
    let (status, failed) = confirm(api, &ada, &declined, "decline-1", 1000).await;
    assert_eq!((status, failed["status"].as_str()), (200, Some("failed")));
    assert!(failed["failure"]
        .as_str()
        .unwrap()
        .contains("REJECT_CARD_PAYMENT"));
}

/// A timeout leaves the outcome unknown (202); asking again looks it up, never charges again,
/// and the background sweeper resolves one nobody asks about again.
async fn a_timeout_leaves_the_outcome_unknown_until_a_look_up_resolves_it(api: &Api) {
    let ada = api.someone("Ada").await;
    let lost = buy(api, &ada, "buy-3").await;
    let (status, unknown) = confirm(api, &ada, &lost, "timeout-1", 1000).await;
    assert_eq!((status, unknown["status"].as_str()), (202, Some("unknown")));
    let (status, found) = confirm(api, &ada, &lost, "timeout-1", 1000).await;
    assert_eq!(
        (status, found["status"].as_str()),
        (200, Some("approved")),
        "{found}"
    );
    let swept = buy(api, &ada, "buy-4").await;
    let (status, _) = confirm(api, &ada, &swept, "timeout-2", 1000).await;
    assert_eq!(status, 202);
    let path = format!("/v1/payments/{}", swept["id"].as_str().unwrap());
    eventually(|| async {
        api.call(Method::GET, &path, &ada.token, None).await.1["status"] == "approved"
    })
    .await;
    wait_for_balance(api, &ada, 200).await;
}

/// Webhooks: signed, at least once, out of order; handled once. (The provider charged a
/// payment whose confirmation never reached us: its records have it.)
async fn webhooks_are_signed_and_handled_once_in_any_order(api: &Api, provider_db: &str) {
    let ada = api.someone("Ada").await;
    let hooked = buy(api, &ada, "buy-5").await;
    provider_db_execute(
        provider_db,
        &format!(
            "INSERT INTO sandbox_payments (payment_key, order_id, amount, status, approved_at)
             VALUES ('approve-wh', '{}', 1000, 'DONE', '{}')",
            hooked["order_id"].as_str().unwrap(),
            chrono::Utc::now().to_rfc3339()
        ),
    )
    .await;
    let now = chrono::Utc::now().timestamp();
    // Signed, but with a key that is no key: refused, and the payment stays open.
    let keyless = json!({"delivery_id": "d-x", "order_id": hooked["order_id"], "payment_key": " ",
        "status": "DONE", "amount": 1000});
    let (status, problem) = deliver(api, &keyless, now, WEBHOOK_SECRET).await;
    assert_eq!(status, 400, "{problem}");
    let done = json!({"delivery_id": "d-1", "order_id": hooked["order_id"], "payment_key": "approve-wh",
        "status": "DONE", "amount": 1000});
    let (status, answer) = deliver(api, &done, now, WEBHOOK_SECRET).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("approved")),
        "{answer}"
    );
    assert_eq!(deliver(api, &done, now, WEBHOOK_SECRET).await.0, 200);
    let aborted = json!({"delivery_id": "d-0", "order_id": hooked["order_id"], "payment_key": "approve-wh",
        "status": "ABORTED", "amount": 1000});
    let (status, answer) = deliver(api, &aborted, now, WEBHOOK_SECRET).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("approved")),
        "a late report changes nothing"
    );
    let (status, problem) = deliver(api, &done, now, "not-the-secret").await;
    assert_eq!(status, 401, "{problem}");
    assert_eq!(
        deliver(api, &done, now - 600, WEBHOOK_SECRET).await.0,
        401,
        "stale"
    );
    let stranger = json!({"delivery_id": "d-9", "order_id": "order-0000", "payment_key": "approve-x",
        "status": "DONE", "amount": 1000});
    assert_eq!(deliver(api, &stranger, now, WEBHOOK_SECRET).await.0, 404);
    let (status, _) = api
        .call(
            Method::POST,
            "/v1/payments/webhooks/toss",
            "",
            Some(done.clone()),
        )
        .await;
    assert_eq!(status, 404, "this deployment uses the sandbox");
    wait_for_balance(api, &ada, 100).await;
}

/// Refunds never go over what remains; the wallet holds the credits first, and gives them back
/// when the provider refunded. Returns the refunded payment (the sandbox's `approve-1`), which
/// reconciliation checks afterwards.
async fn refunds_never_exceed_what_remains_and_take_the_credits_back(api: &Api) -> Value {
    let (ada, bob) = (api.someone("Ada").await, api.someone("Bob").await);
    let payment = buy(api, &ada, "buy-1").await;
    let (status, approved) = confirm(api, &ada, &payment, "approve-1", 1000).await;
    assert_eq!(
        (status, approved["status"].as_str()),
        (200, Some("approved"))
    );
    wait_for_balance(api, &ada, 100).await;
    let refunds = format!("/v1/payments/{}/refunds", payment["id"].as_str().unwrap());
    let refund = |amount: i64| Some(json!({"amount": amount, "reason": "changed my mind"}));
    let (status, problem) = api
        .call(Method::POST, &refunds, &ada.token, refund(1001))
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (409, Some("urn:msa:problem:refund-exceeds-remaining"))
    );
    let (status, problem) = api
        .call(Method::POST, &refunds, &ada.token, refund(0))
        .await;
    assert_eq!((status, field_names(&problem)), (422, vec!["amount"]));
    for bad_reason in ["  ".to_owned(), "r".repeat(201)] {
        let body = json!({"amount": 100, "reason": bad_reason});
        let (status, problem) = api
            .call(Method::POST, &refunds, &ada.token, Some(body))
            .await;
        assert_eq!(
            (status, field_names(&problem)),
            (422, vec!["reason"]),
            "{problem}"
        );
    }
    let (status, _) = api
        .call(Method::POST, &refunds, &bob.token, refund(100))
        .await;
    assert_eq!(status, 404, "somebody else's payment");
    let (status, partial) = api
        .call(Method::POST, &refunds, &ada.token, refund(300))
        .await;
    assert_eq!(
        (status, partial["status"].as_str()),
        (201, Some("completed")),
        "{partial}"
    );
    assert_eq!(partial["payment"]["status"], "partially_refunded");
    assert_eq!(partial["payment"]["refundable_amount"], 700);
    wait_for_balance(api, &ada, 70).await;
    let (status, rest) = api
        .call(Method::POST, &refunds, &ada.token, refund(700))
        .await;
    assert_eq!(
        (status, rest["payment"]["status"].as_str()),
        (201, Some("refunded"))
    );
    assert_eq!(
        api.call(Method::POST, &refunds, &ada.token, refund(1))
            .await
            .0,
        409
    );
    wait_for_balance(api, &ada, 0).await;

    // The ledger: every movement, newest first, with the balance after each (a projection: it
    // shows the last refund a moment after the wallet). Each refund held its credits (out of
    // the available balance) and settled the hold when the provider refunded.
    let newest_four = || async {
        let (status, ledger) = api
            .call(Method::GET, "/v1/wallet/ledger?limit=4", &ada.token, None)
            .await;
        assert_eq!(status, 200, "{ledger}");
        ledger
    };
    let kinds = |ledger: &Value| -> Vec<String> {
        ledger["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect()
    };
    eventually(|| async {
        kinds(&newest_four().await)
            == [
                "hold_settled",
                "credits_held",
                "hold_settled",
                "credits_held",
            ]
    })
    .await;
    let ledger = newest_four().await;
    assert_eq!(ledger["items"][0]["balance"], 0);
    assert_eq!(
        (&ledger["items"][0]["from"], &ledger["items"][0]["to"]),
        (&json!("held"), &json!("purchases"))
    );
    assert_eq!(
        (&ledger["items"][1]["from"], &ledger["items"][1]["to"]),
        (&json!("wallet"), &json!("held"))
    );
    assert_eq!(ledger["items"][1]["balance"], 0);
    assert_eq!(ledger["items"][3]["balance"], 70);
    let cursor = ledger["next_cursor"].as_str().unwrap();
    let (_, older) = api
        .call(
            Method::GET,
            &format!("/v1/wallet/ledger?cursor={cursor}"),
            &ada.token,
            None,
        )
        .await;
    let purchases = older["items"].as_array().unwrap();
    assert_eq!(purchases.len(), 1, "credited once: {older}");
    assert!(purchases
        .iter()
        .all(|e| e["kind"] == "credits_purchased" && e["to"] == "wallet"));
    payment
}

async fn an_unconfirmed_payment_can_be_canceled_and_then_not_confirmed(api: &Api) {
    let ada = api.someone("Ada").await;
    let dropped = buy(api, &ada, "buy-6").await;
    let cancel = format!("/v1/payments/{}/cancel", dropped["id"].as_str().unwrap());
    let (status, canceled) = api.call(Method::POST, &cancel, &ada.token, None).await;
    assert_eq!(
        (status, canceled["status"].as_str()),
        (200, Some("canceled"))
    );
    assert_eq!(confirm(api, &ada, &dropped, "approve-2", 1000).await.0, 409);
}

async fn my_payments_are_listed_newest_first_a_page_at_a_time_and_only_to_me(api: &Api) {
    let (ada, bob) = (api.someone("Ada").await, api.someone("Bob").await);
    let approved = buy(api, &ada, "list-1").await;
    assert_eq!(
        confirm(api, &ada, &approved, "approve-list", 1000).await.0,
        200
    );
    let failed = buy(api, &ada, "list-2").await;
    assert_eq!(
        confirm(api, &ada, &failed, "decline-list", 1000).await.0,
        200
    );
    let dropped = buy(api, &ada, "list-3").await;
    let cancel = format!("/v1/payments/{}/cancel", dropped["id"].as_str().unwrap());
    assert_eq!(
        api.call(Method::POST, &cancel, &ada.token, None).await.0,
        200
    );
    let mut seen = Vec::new();
    let mut path = "/v1/payments?limit=2".to_owned();
    loop {
        let (status, page) = eventually_listed(api, &ada, &path).await;
        assert_eq!(status, 200);
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["status"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/payments?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["canceled", "failed", "approved"].map(|s| json!(s)));
    let (_, bobs) = api
        .call(Method::GET, "/v1/payments", &bob.token, None)
        .await;
    assert_eq!(bobs["items"], json!([]));
}

/// Every behaviour of payments, refunds and wallets, on one server; `provider_db` is the
/// sandbox provider's records (in the payment query database). Returns the refunded payment.
async fn payments_refunds_and_wallets(api: &Api, provider_db: &str) -> Value {
    behaviour!(the_catalog_is_public(api));
    behaviour!(a_request_needs_an_idempotency_key_and_a_retry_answers_the_first(api));
    behaviour!(a_confirmation_takes_the_orders_amount_from_its_owner_and_credits_once(api));
    behaviour!(a_decline_fails_the_payment(api));
    behaviour!(a_timeout_leaves_the_outcome_unknown_until_a_look_up_resolves_it(api));
    behaviour!(webhooks_are_signed_and_handled_once_in_any_order(
        api,
        provider_db
    ));
    let refunded = behaviour!(refunds_never_exceed_what_remains_and_take_the_credits_back(
        api
    ));
    behaviour!(an_unconfirmed_payment_can_be_canceled_and_then_not_confirmed(api));
    behaviour!(my_payments_are_listed_newest_first_a_page_at_a_time_and_only_to_me(api));
    refunded
}

/// The list is a projection: wait until it shows the last change.
async fn eventually_listed(api: &Api, who: &Person, path: &str) -> (u16, Value) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answer = api.call(Method::GET, path, &who.token, None).await;
        if path.contains("cursor") || answer.1["items"][0]["status"] == "canceled" {
            return answer;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not listed within 10 s: {}",
            answer.1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The provider "forgets" a refund: `msa payments reconcile` finds and records the difference.
fn reconcile_finds(storage: &[&str], expected: Option<&str>) {
    let output = common::msa()
        .args(["payments", "reconcile"])
        .args(storage)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    match expected {
        None => assert!(
            output.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        ),
        Some(payment_id) => {
            assert!(!output.status.success());
            assert!(
                stdout.contains(&format!("mismatch {payment_id}")),
                "{stdout}"
            );
            assert!(
                stdout.contains("provider approved 1000 KRW, refunded 0"),
                "{stdout}"
            );
        }
    }
}

async fn provider_db_execute(query_url: &str, statement: &str) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(query_url).await.unwrap();
    sqlx::query(statement).execute(&pool).await.unwrap();
    pool.close().await;
}

const FORGET_REFUNDS: &str =
    "UPDATE sandbox_payments SET refunded = 0, status = 'DONE' WHERE payment_key = 'approve-1'";

#[tokio::test(flavor = "multi_thread")]
async fn payments_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let api = start(&["--data-dir", dir]);
    let provider_db = format!("sqlite://{dir}/payment.query.sqlite");
    let refunded = payments_refunds_and_wallets(&api, &provider_db).await;
    reconcile_finds(&["--data-dir", dir], None);
    provider_db_execute(&provider_db, FORGET_REFUNDS).await;
    reconcile_finds(&["--data-dir", dir], Some(refunded["id"].as_str().unwrap()));
}

#[tokio::test(flavor = "multi_thread")]
async fn payments_on_postgres() {
    let Some(url) = msa_testkit::postgres_database().await else {
        return;
    };
    let api = start(&["--database-url", &url]);
    let provider_db = format!("{url}?options=-c%20search_path%3Dmsa_payment");
    let refunded = payments_refunds_and_wallets(&api, &provider_db).await;
    reconcile_finds(&["--database-url", &url], None);
    provider_db_execute(&provider_db, FORGET_REFUNDS).await;
    reconcile_finds(
        &["--database-url", &url],
        Some(refunded["id"].as_str().unwrap()),
    );
}

/// Every money path at once, each with its expected answer: parallel confirms of one payment
/// charge it once; two parallel full refunds with credits for one: one 201, one 409 and no
/// shortfall anywhere; a webhook of another amount is recorded and listed by reconcile; a
/// cancellation at the provider after approval takes the credits back (a debt when spent).
#[tokio::test(flavor = "multi_thread")]
async fn parallel_money_paths_through_the_api() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let api = start(&["--data-dir", dir, "--free-messages-per-day", "0"]);
    let ada = api.person("Ada").await;

    // Five confirms of one payment at once: each answers the payment (approved, or unknown
    // while the first is with the provider); it is charged and credited once.
    let once = buy(&api, &ada, "buy-once").await;
    let confirms = (0..5).map(|_| confirm(&api, &ada, &once, "approve-once", 1000));
    for (status, payment) in futures::future::join_all(confirms).await {
        assert!(matches!(status, 200 | 202), "{status} {payment}");
    }
    let path = format!("/v1/payments/{}", once["id"].as_str().unwrap());
    eventually(|| async {
        api.call(Method::GET, &path, &ada.token, None).await.1["status"] == "approved"
    })
    .await;
    wait_for_balance(&api, &ada, 100).await;

    let first = buy(&api, &ada, "buy-a").await;
    let second = buy(&api, &ada, "buy-b").await;
    assert_eq!(confirm(&api, &ada, &first, "approve-a", 1000).await.0, 200);
    assert_eq!(confirm(&api, &ada, &second, "approve-b", 1000).await.0, 200);
    wait_for_balance(&api, &ada, 300).await;
    let refund_of =
        |payment: &Value| format!("/v1/payments/{}/refunds", payment["id"].as_str().unwrap());
    let full = json!({"amount": 1000, "reason": "changed my mind"});
    let (status, _) = api
        .call(
            Method::POST,
            &refund_of(&once),
            &ada.token,
            Some(full.clone()),
        )
        .await;
    assert_eq!(status, 201);
    wait_for_balance(&api, &ada, 200).await;

    // Spend the credits of one pack.
    let (status, room) = api
        .post(
            &ada,
            "/v1/rooms",
            json!({"kind": "group", "name": "Notes", "members": []}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let room = room["id"].as_str().unwrap();
    for n in 0..100 {
        let (status, sent) = api.send(&ada, room, &format!("t-{n}"), "note").await;
        assert_eq!(status, 201, "{sent}");
    }
    wait_for_balance(&api, &ada, 100).await;

    // Two full refunds at once, credits for one left: one 201, one 409, nothing owed.
    let (first_refund, second_refund) = (refund_of(&first), refund_of(&second));
    let (a, b) = tokio::join!(
        api.call(Method::POST, &first_refund, &ada.token, Some(full.clone())),
        api.call(Method::POST, &second_refund, &ada.token, Some(full.clone())),
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{} {}", a.1, b.1);
    let refused = if a.0 == 409 { &a.1 } else { &b.1 };
    assert_eq!(
        refused["type"], "urn:msa:problem:credits-spent",
        "{refused}"
    );
    let (_, wallet) = api.call(Method::GET, "/v1/wallet", &ada.token, None).await;
    assert_eq!(
        (&wallet["balance"], &wallet["held"], &wallet["debt"]),
        (&json!(0), &json!(0), &json!(0)),
        "{wallet}"
    );
    // The whole ledger, newest first, a page at a time.
    let kinds = || async {
        let mut kinds = Vec::new();
        let mut path = "/v1/wallet/ledger?limit=100".to_owned();
        loop {
            let (_, ledger) = api.call(Method::GET, &path, &ada.token, None).await;
            kinds.extend(
                ledger["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["kind"].as_str().unwrap().to_owned()),
            );
            match ledger["next_cursor"].as_str() {
                Some(cursor) => path = format!("/v1/wallet/ledger?limit=100&cursor={cursor}"),
                None => return kinds,
            }
        }
    };
    eventually(|| async { kinds().await[..2] == ["hold_settled", "credits_held"] }).await;
    let all = kinds().await;
    assert_eq!(all.iter().filter(|k| *k == "hold_settled").count(), 2);
    assert!(!all.contains(&"credits_revoked".to_owned()), "{all:?}");
    let kept = if a.0 == 409 { &first } else { &second };

    // A webhook of another amount for the approved payment: recorded, listed by reconcile.
    let now = chrono::Utc::now().timestamp();
    let key = if a.0 == 409 { "approve-a" } else { "approve-b" };
    let cheaper = json!({"delivery_id": "d-1", "order_id": kept["order_id"], "payment_key": key,
        "status": "DONE", "amount": 999});
    assert_eq!(deliver(&api, &cheaper, now, WEBHOOK_SECRET).await.0, 200);
    let kept_id = kept["id"].as_str().unwrap();
    let listed = || {
        let output = common::msa()
            .args(["payments", "reconcile", "--data-dir", dir])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    eventually(|| async { listed().contains(&format!("recorded {kept_id}")) }).await;
    assert!(listed().contains("approved 999"), "{}", listed());

    // The provider cancels the approved payment: refunded here too, its spent credits a debt.
    let canceled = json!({"delivery_id": "d-2", "order_id": kept["order_id"], "payment_key": key,
        "status": "CANCELED", "amount": 1000});
    let (status, answer) = deliver(&api, &canceled, now, WEBHOOK_SECRET).await;
    assert_eq!(
        (status, answer["status"].as_str()),
        (200, Some("refunded")),
        "{answer}"
    );
    let (_, wallet) = api.call(Method::GET, "/v1/wallet", &ada.token, None).await;
    assert_eq!(
        (&wallet["balance"], &wallet["debt"]),
        (&json!(0), &json!(100)),
        "{wallet}"
    );
    let (status, problem) = api.send(&ada, room, "t-debt", "note").await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (402, Some("urn:msa:problem:wallet-in-debt")),
        "{problem}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_has_at_most_five_open_payments() {
    let data = tempfile::tempdir().unwrap();
    let api = start(&["--data-dir", data.path().to_str().unwrap()]);
    let (ada, bob) = (api.person("Ada").await, api.person("Bob").await);
    for n in 0..5 {
        buy(&api, &ada, &format!("open-{n}")).await;
    }
    let (status, problem, _) = request(
        &api,
        &ada,
        Some("open-5"),
        json!({"product_id": "credits-100"}),
    )
    .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (429, Some("urn:msa:problem:too-many-open-payments")),
        "{problem}"
    );
    // A retry of one made is answered; another user is not affected; a canceled one frees a slot.
    let (status, first, _) = request(
        &api,
        &ada,
        Some("open-0"),
        json!({"product_id": "credits-100"}),
    )
    .await;
    assert_eq!(status, 201);
    buy(&api, &bob, "open-0").await;
    let cancel = format!("/v1/payments/{}/cancel", first["id"].as_str().unwrap());
    assert_eq!(
        api.call(Method::POST, &cancel, &ada.token, None).await.0,
        200
    );
    eventually(|| async {
        request(
            &api,
            &ada,
            Some("open-5"),
            json!({"product_id": "credits-100"}),
        )
        .await
        .0 == 201
    })
    .await;
}

/// Impossible amounts are refused with a problem naming the field (or the remaining amount),
/// never wrapped, never a panic or a 500.
#[tokio::test(flavor = "multi_thread")]
async fn impossible_amounts_are_refused_never_wrapped() {
    let data = tempfile::tempdir().unwrap();
    let api = start(&["--data-dir", data.path().to_str().unwrap()]);
    let ada = api.person("Ada").await;
    let payment = buy(&api, &ada, "buy-1").await;
    for amount in [i64::MIN, -1, i64::MAX] {
        let (status, problem) = confirm(&api, &ada, &payment, "approve-1", amount).await;
        assert_eq!(
            (status, field_names(&problem)),
            (422, vec!["amount"]),
            "{amount}: {problem}"
        );
    }
    assert_eq!(
        confirm(&api, &ada, &payment, "approve-1", 1000).await.0,
        200
    );
    wait_for_balance(&api, &ada, 100).await;
    let refunds = format!("/v1/payments/{}/refunds", payment["id"].as_str().unwrap());
    let refund = |amount: Value| json!({"amount": amount, "reason": "changed my mind"});
    let (status, _) = api
        .call(Method::POST, &refunds, &ada.token, Some(refund(json!(300))))
        .await;
    assert_eq!(status, 201);
    // 300 refunded before: 300 + i64::MAX would wrap.
    let (status, problem) = api
        .call(
            Method::POST,
            &refunds,
            &ada.token,
            Some(refund(json!(i64::MAX))),
        )
        .await;
    assert_eq!(
        (status, problem["type"].as_str()),
        (409, Some("urn:msa:problem:refund-exceeds-remaining")),
        "{problem}"
    );
    for amount in [json!(i64::MIN), json!(0)] {
        let (status, problem) = api
            .call(
                Method::POST,
                &refunds,
                &ada.token,
                Some(refund(amount.clone())),
            )
            .await;
        assert_eq!(
            (status, field_names(&problem)),
            (422, vec!["amount"]),
            "{amount}: {problem}"
        );
    }
    for amount in [json!(1e30), json!("700"), json!(18446744073709551615u64)] {
        let (status, problem) = api
            .call(
                Method::POST,
                &refunds,
                &ada.token,
                Some(refund(amount.clone())),
            )
            .await;
        assert_eq!(status, 422, "{amount}: {problem}");
    }
    let (_, wallet) = api.call(Method::GET, "/v1/wallet", &ada.token, None).await;
    assert_eq!(wallet["balance"], 70, "{wallet}");
}

/// Ten messages sent at once with three credits left (the day's free ones): three are posted,
/// seven answered 402, and the wallet never goes below zero.
#[tokio::test(flavor = "multi_thread")]
async fn parallel_sends_at_the_last_credits_spend_each_credit_once() {
    let data = tempfile::tempdir().unwrap();
    let api = start(&[
        "--data-dir",
        data.path().to_str().unwrap(),
        "--free-messages-per-day",
        "3",
    ]);
    let ada = api.person("Ada").await;
    let (status, room) = api
        .post(
            &ada,
            "/v1/rooms",
            json!({"kind": "group", "name": "Notes", "members": []}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let room = room["id"].as_str().unwrap();
    let txn_ids: Vec<String> = (0..10).map(|n| format!("last-{n}")).collect();
    let sends = txn_ids.iter().map(|txn| api.send(&ada, room, txn, "hi"));
    let mut statuses: Vec<u16> = futures::future::join_all(sends)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    statuses.sort();
    assert_eq!(statuses, [201, 201, 201, 402, 402, 402, 402, 402, 402, 402]);
    let (_, wallet) = api.call(Method::GET, "/v1/wallet", &ada.token, None).await;
    assert_eq!(
        (&wallet["balance"], &wallet["free_left_today"]),
        (&json!(0), &json!(0)),
        "{wallet}"
    );
}

/// A stand-in for Toss's API that approves every confirmation as the order asked and counts
/// look-ups (`GET /v1/payments/{key}`).
async fn toss_stand_in() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use axum::extract::{Path, State};
    use axum::routing::{get, post};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let look_ups = Arc::new(AtomicUsize::new(0));
    let object = |key: &str, order: &str, amount: i64| {
        json!({"paymentKey": key, "orderId": order, "currency": "KRW", "status": "DONE",
            "totalAmount": amount, "balanceAmount": amount,
            "approvedAt": "2026-11-27T21:00:05+09:00"})
    };
    let app = axum::Router::new()
        .route(
            "/v1/payments/confirm",
            post(move |axum::Json(body): axum::Json<Value>| async move {
                axum::Json(object(
                    body["paymentKey"].as_str().unwrap(),
                    body["orderId"].as_str().unwrap(),
                    body["amount"].as_i64().unwrap(),
                ))
            }),
        )
        .route(
            "/v1/payments/{key}",
            get(
                |State(look_ups): State<Arc<AtomicUsize>>, Path(_key): Path<String>| async move {
                    look_ups.fetch_add(1, Ordering::SeqCst);
                    (
                        axum::http::StatusCode::NOT_FOUND,
                        axum::Json(json!({"code": "NOT_FOUND_PAYMENT", "message": "no"})),
                    )
                },
            ),
        )
        .with_state(look_ups.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), look_ups)
}

/// Toss's deliveries are unsigned: one that does not name our payment key is refused before
/// anything is asked of Toss, and one for a payment already decided asks nothing either.
#[tokio::test(flavor = "multi_thread")]
async fn unsigned_toss_deliveries_are_checked_before_any_look_up() {
    let (toss, look_ups) = toss_stand_in().await;
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(&[
        "--data-dir",
        data.path().to_str().unwrap(),
        "--payment-provider",
        "toss",
        "--toss-secret-key",
        "test_sk_stand_in",
        "--toss-base-url",
        &toss,
    ]);
    let ada = api.person("Ada").await;
    let payment = buy(&api, &ada, "buy-1").await;
    let (status, approved) = confirm(&api, &ada, &payment, "tkey_1", 1000).await;
    assert_eq!(
        (status, approved["status"].as_str()),
        (200, Some("approved")),
        "{approved}"
    );
    let delivery = |key: &str, status: &str| {
        json!({"eventType": "PAYMENT_STATUS_CHANGED", "createdAt": "2026-11-27T21:00:06.000000",
            "data": {"paymentKey": key, "orderId": payment["order_id"], "status": status}})
    };
    let webhooks = "/v1/payments/webhooks/toss";
    for _ in 0..20 {
        let (status, problem) = api
            .call(
                Method::POST,
                webhooks,
                "",
                Some(delivery("tkey_forged", "CANCELED")),
            )
            .await;
        assert_eq!(status, 401, "{problem}");
        let (status, answer) = api
            .call(Method::POST, webhooks, "", Some(delivery("tkey_1", "DONE")))
            .await;
        assert_eq!((status, answer["status"].as_str()), (200, Some("approved")));
    }
    // A payment not confirmed yet has no key of ours to compare: a key that is no key at all
    // (blank, control characters, too long) is refused before any look-up.
    let open = buy(&api, &ada, "buy-2").await;
    for key in ["  ".to_owned(), "t\nkey".to_owned(), "k".repeat(201)] {
        let body = json!({"eventType": "PAYMENT_STATUS_CHANGED",
            "data": {"paymentKey": key, "orderId": open["order_id"], "status": "DONE"}});
        let (status, problem) = api.call(Method::POST, webhooks, "", Some(body)).await;
        assert_eq!(status, 401, "{key:?}: {problem}");
    }
    assert_eq!(
        look_ups.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no delivery made us ask Toss"
    );
}
