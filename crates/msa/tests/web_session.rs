//! What the web client needs from the spawned single server, over plain HTTP: the page with its
//! security headers, the cookie session (the refresh token in an HttpOnly cookie, read only
//! from the page's own site), and sending a message again with the same txn_id after buying
//! the credits it lacked. (The page itself is driven in a real browser by the browser tests.)

mod common;

use common::api::{eventually, Api};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};

const WEB: (&str, &str) = ("X-Requested-With", "msa-web");

fn cookie_of(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// `msa_refresh=<token>` out of a Set-Cookie line.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn the_single_server_serves_the_web_client_with_its_security_headers() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(&["--data-dir", data.path().to_str().unwrap()]);
    let page = api
        .client
        .get(format!("{}/", api.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    assert_eq!(headers["cache-control"], "no-cache");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    let csp = headers["content-security-policy"].to_str().unwrap();
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(rule), "{rule} missing from {csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<script type=\"module\" src=\"/assets/"),
        "{html}"
    );
    let script = html
        .split("src=\"")
        .find_map(|rest| rest.split('"').next().filter(|s| s.ends_with("/app.js")))
        .unwrap()
        .to_owned();
    let app = api
        .client
        .get(format!("{}{script}", api.server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(app.status(), 200);
    assert_eq!(
        app.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(app.headers()["cache-control"]
        .to_str()
        .unwrap()
        .contains("immutable"));
    // The API is not shadowed by the page.
    let (status, _) = api.call(Method::GET, "/v1/wallet", "", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn the_web_session_keeps_its_refresh_token_in_a_same_site_http_only_cookie() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(&["--data-dir", data.path().to_str().unwrap()]);
    let base = api.server.base.clone();
    let body =
        json!({"email": "ada@example.com", "password": "correct horse battery", "nickname": "Ada"});
    let (status, _) = api.call(Method::POST, "/v1/users", "", Some(body)).await;
    assert_eq!(status, 201);
    let credentials = json!({"email": "ada@example.com", "password": "correct horse battery"});

    // Log in, cookie mode: the refresh token is a cookie, never in the JSON.
    let answer = api
        .client
        .post(format!("{base}/v1/auth/token"))
        .header(WEB.0, WEB.1)
        .json(&credentials)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let cookies = cookie_of(answer.headers());
    let tokens: Value = answer.json().await.unwrap();
    assert!(tokens["access_token"].is_string());
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = &cookies[0];
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/v1/auth", "Max-Age="] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    // Plain http to a loopback address: not Secure (the browser would drop it); behind https it is.
    assert!(!cookie.contains("Secure"), "{cookie}");
    let first = pair(cookie);
    assert!(first.starts_with("msa_refresh=") && first.len() > "msa_refresh=".len());

    // Refresh by cookie: a new access token, the next refresh token in the cookie.
    let refresh = |cookie: String, headers: Vec<(&'static str, &'static str)>| {
        let mut request = api
            .client
            .post(format!("{base}/v1/auth/refresh"))
            .header("cookie", cookie)
            .json(&json!({}));
        for (name, value) in headers {
            request = request.header(name, value);
        }
        request.send()
    };
    let answer = refresh(first.clone(), vec![WEB]).await.unwrap();
    assert_eq!(answer.status(), 200);
    let next = pair(&cookie_of(answer.headers())[0]);
    assert_ne!(next, first, "the refresh token rotates");
    let tokens: Value = answer.json().await.unwrap();
    assert!(tokens["access_token"].is_string() && tokens.get("refresh_token").is_none());

    // Without the CSRF header, or from another site, the cookie is not read.
    let answer = refresh(next.clone(), vec![]).await.unwrap();
    assert_eq!(answer.status(), 403);
    let answer = refresh(next.clone(), vec![WEB, ("sec-fetch-site", "cross-site")])
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    let answer = refresh(next.clone(), vec![WEB, ("origin", "https://evil.example")])
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    // Without a cookie: 401, so the page shows the log-in form.
    let answer = api
        .client
        .post(format!("{base}/v1/auth/refresh"))
        .header(WEB.0, WEB.1)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 401);
    // The refused attempts did not use the token up: the page's own refresh still works.
    let answer = refresh(next.clone(), vec![WEB, ("sec-fetch-site", "same-origin")])
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let current = pair(&cookie_of(answer.headers())[0]);

    // Log out: the session is revoked and the cookie cleared.
    let answer = api
        .client
        .post(format!("{base}/v1/auth/logout"))
        .header("cookie", current.clone())
        .header(WEB.0, WEB.1)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
    let cleared = &cookie_of(answer.headers())[0];
    assert!(cleared.starts_with("msa_refresh=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let answer = refresh(current, vec![WEB]).await.unwrap();
    assert_eq!(answer.status(), 401, "the session is over");

    // API clients keep the JSON flow, with no cookie.
    let (status, tokens) = api
        .call(Method::POST, "/v1/auth/token", "", Some(credentials))
        .await;
    assert_eq!(status, 200);
    let answer = api
        .client
        .post(format!("{base}/v1/auth/refresh"))
        .json(&json!({"refresh_token": tokens["refresh_token"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(cookie_of(answer.headers()).is_empty());
    let tokens: Value = answer.json().await.unwrap();
    assert!(tokens["refresh_token"].is_string());
}

#[tokio::test]
async fn a_message_refused_for_lack_of_credits_goes_out_with_the_same_txn_id_after_paying() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(&[
        "--data-dir",
        data.path().to_str().unwrap(),
        "--free-messages-per-day",
        "0",
    ]);
    let ada = api.person("Ada").await;
    let _bo = api.person("Bo").await;
    let (status, room) = api
        .post(&ada, "/v1/direct-chats", json!({"nickname": "Bo"}))
        .await;
    assert_eq!(status, 201, "{room}");
    let room = room["id"].as_str().unwrap().to_owned();
    let (status, refused) = api.send(&ada, &room, "txn-1", "hello").await;
    assert_eq!(status, 402, "{refused}");

    // What the page's "Pay" does with the sandbox provider.
    let (status, payment) = api.request_payment(&ada, "key-1", "credits-100").await;
    assert_eq!(status, 201, "{payment}");
    let id = payment["id"].as_str().unwrap();
    let (status, confirmed) = api
        .post(
            &ada,
            &format!("/v1/payments/{id}/confirm"),
            json!({"payment_key": "approve-web-1", "amount": payment["amount"]}),
        )
        .await;
    assert_eq!(status, 200, "{confirmed}");
    eventually(|| async {
        let (_, wallet) = api.get(&ada, "/v1/wallet").await;
        wallet["balance"] == 100
    })
    .await;

    let (status, posted) = api.send(&ada, &room, "txn-1", "hello").await;
    assert_eq!(status, 201, "{posted}");
    let (status, again) = api.send(&ada, &room, "txn-1", "hello").await;
    assert_eq!(status, 200, "a retry answers the first message");
    assert_eq!(again["id"], posted["id"]);
    let (_, wallet) = api.get(&ada, "/v1/wallet").await;
    assert_eq!(wallet["balance"], 99, "one credit for one message");
}

/// Through the gateway: the page, and the session cookie both ways, with the browser's own
/// origin accepted (the gateway tells the user service the host the browser addressed).
#[tokio::test]
async fn the_gateway_serves_the_page_and_carries_the_session_cookie() {
    let data = tempfile::tempdir().unwrap();
    let user = Api::start(&["--data-dir", data.path().to_str().unwrap()]);
    user.person("Ada").await;
    let nobody = format!("http://127.0.0.1:{}", common::free_port());
    let gateway = common::spawn_serving(&[
        "gateway",
        "--listen",
        "127.0.0.1:0",
        "--user",
        &user.server.base,
        "--chat",
        &nobody,
        "--payment",
        &nobody,
        "--user-chat",
        &nobody,
    ]);
    let base = gateway.base.clone();
    let client = reqwest::Client::new();
    let page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert!(page.text().await.unwrap().contains("/app.js"));

    let answer = client
        .post(format!("{base}/v1/auth/token"))
        .header(WEB.0, WEB.1)
        .header("origin", &base)
        .json(&json!({"email": "ada@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let cookie = pair(&cookie_of(answer.headers())[0]);
    let answer = client
        .post(format!("{base}/v1/auth/refresh"))
        .header(WEB.0, WEB.1)
        .header("origin", &base)
        .header("sec-fetch-site", "same-origin")
        .header("cookie", cookie)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
}
