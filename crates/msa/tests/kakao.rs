//! Kakao Login against a local stand-in that follows Kakao's documented REST contract:
//! `POST /oauth/token` (form-encoded authorization_code grant, single-use codes, `invalid_grant`
//! errors) and `GET /v2/user/me` (bearer access token; `id`, `kakao_account.email`,
//! `is_email_verified`, `profile.nickname`).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use common::serve;
use serde_json::{json, Value};

const CLIENT_ID: &str = "test-rest-api-key";
const CLIENT_SECRET: &str = "test-client-secret";
const REDIRECT_URI: &str = "http://app.example/v1/auth/kakao/callback";

/// The stand-in's memory: codes a consenting user would get, and the access tokens issued.
#[derive(Clone, Default)]
struct StandIn {
    codes: Arc<Mutex<HashMap<String, Value>>>,
    tokens: Arc<Mutex<HashMap<String, Value>>>,
}

impl StandIn {
    /// What Kakao's consent page does: issue `code` for the Kakao user `account`.
    fn consent(&self, code: &str, account: Value) {
        self.codes.lock().unwrap().insert(code.to_owned(), account);
    }
}

async fn token(
    State(kakao): State<StandIn>,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, Json<Value>) {
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("grant_type") != Some("authorization_code")
        || field("client_id") != Some(CLIENT_ID)
        || field("client_secret") != Some(CLIENT_SECRET)
        || field("redirect_uri") != Some(REDIRECT_URI)
    {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_client", "error_description": "bad client"})),
        );
    }
    let code = field("code").unwrap_or_default();
    // Codes are single use.
    let Some(account) = kakao.codes.lock().unwrap().remove(code) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": "invalid_grant", "error_description": format!("authorization code not found for code={code}"), "error_code": "KOE320"}),
            ),
        );
    };
    let access_token = format!("kakao-access-{code}");
    kakao
        .tokens
        .lock()
        .unwrap()
        .insert(access_token.clone(), account);
    (
        StatusCode::OK,
        Json(
            json!({"token_type": "bearer", "access_token": access_token, "expires_in": 21599,
                    "refresh_token": "kakao-refresh", "refresh_token_expires_in": 5183999}),
        ),
    )
}

async fn user_me(State(kakao): State<StandIn>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    match kakao.tokens.lock().unwrap().get(token) {
        Some(account) => (StatusCode::OK, Json(account.clone())),
        None => (
            StatusCode::UNAUTHORIZED,
            Json(json!({"msg": "this access token does not exist", "code": -401})),
        ),
    }
}

async fn start_stand_in() -> (StandIn, String) {
    let kakao = StandIn::default();
    let app = Router::new()
        .route("/oauth/token", post(token))
        .route("/v2/user/me", get(user_me))
        .with_state(kakao.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (kakao, base)
}

fn kakao_user(id: i64, nickname: &str, email: Option<&str>) -> Value {
    json!({
        "id": id,
        "connected_at": "2026-11-24T10:00:00Z",
        "kakao_account": {
            "profile_nickname_needs_agreement": false,
            "profile": {"nickname": nickname, "is_default_image": true},
            "has_email": email.is_some(),
            "email": email,
            "is_email_valid": true,
            "is_email_verified": email.is_some(),
        }
    })
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// Starts a login (or a link, with `token`) and returns the `state` sent to Kakao.
    async fn start(&self, kakao_base: &str, token: Option<&str>) -> String {
        let mut request = self.http.get(format!("{}/v1/auth/kakao/start", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 302);
        let location =
            reqwest::Url::parse(response.headers()["location"].to_str().unwrap()).unwrap();
        assert_eq!(
            location.as_str().split('?').next().unwrap(),
            format!("{kakao_base}/oauth/authorize")
        );
        let query: HashMap<_, _> = location.query_pairs().into_owned().collect();
        assert_eq!(query["client_id"], CLIENT_ID);
        assert_eq!(query["redirect_uri"], REDIRECT_URI);
        assert_eq!(query["response_type"], "code");
        query["state"].clone()
    }

    async fn callback(&self, query: &[(&str, &str)]) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}/v1/auth/kakao/callback", self.base))
            .query(query)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn me(&self, token: &str) -> Value {
        let response = self
            .http
            .get(format!("{}/v1/users/me", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }
}

#[tokio::test]
async fn kakao_login_creates_an_account_logs_in_again_and_links_to_an_existing_one() {
    let (kakao, kakao_base) = start_stand_in().await;
    let data = tempfile::tempdir().unwrap();
    let server = serve(&[
        "--data-dir",
        data.path().to_str().unwrap(),
        "--password-hash-memory-kib",
        "64",
        "--password-hash-iterations",
        "1",
        "--kakao-client-id",
        CLIENT_ID,
        "--kakao-client-secret",
        CLIENT_SECRET,
        "--kakao-redirect-uri",
        REDIRECT_URI,
        "--kakao-auth-url",
        &kakao_base,
        "--kakao-api-url",
        &kakao_base,
    ]);
    let client = Client {
        base: server.base.clone(),
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
    };

    // A first Kakao login creates the account, with the verified Kakao email and nickname.
    let state = client.start(&kakao_base, None).await;
    kakao.consent("code-1", kakao_user(1001, "Kim", Some("kim@kakao.example")));
    let (status, first) = client
        .callback(&[("code", "code-1"), ("state", &state)])
        .await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["created"], true);
    let me = client.me(first["access_token"].as_str().unwrap()).await;
    assert_eq!(
        (me["email"].as_str(), me["nickname"].as_str()),
        (Some("kim@kakao.example"), Some("Kim"))
    );
    // A state is single use.
    let (status, _) = client
        .callback(&[("code", "code-1"), ("state", &state)])
        .await;
    assert_eq!(status, 401);

    // Logging in again finds the same account.
    let state = client.start(&kakao_base, None).await;
    kakao.consent("code-2", kakao_user(1001, "Kim", Some("kim@kakao.example")));
    let (status, again) = client
        .callback(&[("code", "code-2"), ("state", &state)])
        .await;
    assert_eq!((status, &again["created"]), (200, &json!(false)), "{again}");
    assert_eq!(
        client.me(again["access_token"].as_str().unwrap()).await["id"],
        me["id"]
    );

    // Without a verified email, and with a taken nickname, the account still gets made.
    let state = client.start(&kakao_base, None).await;
    kakao.consent("code-3", kakao_user(2002, "Kim", None));
    let (status, other) = client
        .callback(&[("code", "code-3"), ("state", &state)])
        .await;
    assert_eq!(status, 200, "{other}");
    let other_me = client.me(other["access_token"].as_str().unwrap()).await;
    assert_eq!(other_me["nickname"], "Kim 2002");
    assert!(
        other_me["email"].as_str().unwrap().ends_with(".invalid"),
        "{other_me}"
    );

    // An account made with Kakao has no password: it is deleted within minutes of a log-in,
    // which its tokens carry (`auth_time`) and a refresh does not renew.
    let logged_in_at = |token: &str| -> i64 {
        use base64::Engine;
        let payload = token.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()["auth_time"]
            .as_i64()
            .expect("auth_time in an access token")
    };
    let first_login = logged_in_at(other["access_token"].as_str().unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((now - first_login).abs() <= 60, "{first_login} vs {now}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let refreshed: Value = client
        .http
        .post(format!("{}/v1/auth/refresh", server.base))
        .json(&json!({"refresh_token": other["refresh_token"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let refreshed_token = refreshed["access_token"].as_str().expect("refreshed");
    assert_eq!(
        logged_in_at(refreshed_token),
        first_login,
        "a refresh is no log-in"
    );
    let erased = client
        .http
        .delete(format!("{}/v1/users/me", server.base))
        .bearer_auth(refreshed_token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(erased.status(), 204, "a log-in moments ago deletes it");

    // A logged-in user links a Kakao account; then that Kakao account logs them in.
    let signed_up = client
        .http
        .post(format!("{}/v1/users", server.base))
        .json(&json!({"email": "ada@example.com", "password": "correct horse battery", "nickname": "Ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_up.status(), 201);
    let ada: Value = client
        .http
        .post(format!("{}/v1/auth/token", server.base))
        .json(&json!({"email": "ada@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ada_token = ada["access_token"].as_str().unwrap();
    let state = client.start(&kakao_base, Some(ada_token)).await;
    kakao.consent("code-4", kakao_user(3003, "Ada K", None));
    let (status, linked) = client
        .callback(&[("code", "code-4"), ("state", &state)])
        .await;
    assert_eq!(status, 200, "{linked}");
    assert_eq!(linked["nickname"], "Ada");
    let state = client.start(&kakao_base, None).await;
    kakao.consent("code-5", kakao_user(3003, "Ada K", None));
    let (_, via_kakao) = client
        .callback(&[("code", "code-5"), ("state", &state)])
        .await;
    assert_eq!(
        client.me(via_kakao["access_token"].as_str().unwrap()).await["id"],
        linked["id"]
    );

    // A Kakao account linked to someone else cannot be linked again.
    let state = client.start(&kakao_base, Some(ada_token)).await;
    kakao.consent("code-6", kakao_user(1001, "Kim", Some("kim@kakao.example")));
    let (status, taken) = client
        .callback(&[("code", "code-6"), ("state", &state)])
        .await;
    assert_eq!(
        (status, taken["type"].as_str()),
        (409, Some("urn:msa:problem:kakao-taken"))
    );

    // Refusals: a code Kakao does not know, a denied consent, a forged state, a bad token.
    let state = client.start(&kakao_base, None).await;
    let (status, refused) = client
        .callback(&[("code", "never-issued"), ("state", &state)])
        .await;
    assert_eq!(status, 401, "{refused}");
    assert!(
        refused["detail"]
            .as_str()
            .unwrap()
            .contains("invalid_grant"),
        "{refused}"
    );
    let state = client.start(&kakao_base, None).await;
    let (status, _) = client
        .callback(&[
            ("error", "access_denied"),
            ("error_description", "User denied access"),
            ("state", &state),
        ])
        .await;
    assert_eq!(status, 401);
    let (status, _) = client.callback(&[("code", "x"), ("state", "forged")]).await;
    assert_eq!(status, 401);
    let (status, missing) = client.callback(&[]).await;
    assert_eq!(status, 422, "{missing}");
    let response = client
        .http
        .get(format!("{}/v1/auth/kakao/start", server.base))
        .bearer_auth("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn without_a_kakao_client_id_kakao_login_is_not_offered() {
    let data = tempfile::tempdir().unwrap();
    let server = serve(&["--data-dir", data.path().to_str().unwrap()]);
    let response = reqwest::get(format!("{}/v1/auth/kakao/start", server.base))
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
}
