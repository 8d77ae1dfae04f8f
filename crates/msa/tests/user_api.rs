//! The user service's HTTP API on the spawned binary, on SQLite and on PostgreSQL.

mod common;

use std::time::{Duration, Instant};

use common::api::numbered;
use common::{behaviour, serve, Server};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};

/// Cheap password hashing: these tests are about behaviour, not hashing cost.
const FAST_HASHING: [&str; 6] = [
    "--password-hash-memory-kib",
    "64",
    "--password-hash-iterations",
    "1",
    // Tests sign many people up from one address.
    "--password-attempts-per-minute",
    "100000",
];

struct Api {
    server: Server,
    client: reqwest::Client,
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Api {
    fn sqlite(extra: &[&str]) -> (Api, tempfile::TempDir) {
        let data = tempfile::tempdir().unwrap();
        let mut args = vec!["--data-dir", data.path().to_str().unwrap()];
        args.extend(FAST_HASHING);
        args.extend(extra);
        (Api::new(serve(&args)), data)
    }

    async fn postgres() -> Option<(Api, String)> {
        let url = msa_testkit::postgres_database().await?;
        let mut args = vec!["--database-url", url.as_str()];
        args.extend(FAST_HASHING);
        Some((Api::new(serve(&args)), url))
    }

    fn new(server: Server) -> Api {
        Api {
            server,
            client: reqwest::Client::new(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        if status >= 400 {
            let kind = headers["content-type"].to_str().unwrap();
            assert_eq!(kind, "application/problem+json", "{status} {body}");
        }
        Answer {
            status,
            headers,
            body,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base)
    }

    async fn post(&self, path: &str, body: Value, token: Option<&str>) -> Answer {
        let mut request = self.client.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Answer {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    async fn patch(&self, path: &str, body: Value, token: &str) -> Answer {
        self.send(
            self.client
                .patch(self.url(path))
                .json(&body)
                .bearer_auth(token),
        )
        .await
    }

    async fn sign_up(&self, email: &str, nickname: &str) -> Answer {
        self.post(
            "/v1/users",
            json!({"email": email, "password": "correct horse battery", "nickname": nickname}),
            None,
        )
        .await
    }

    async fn log_in(&self, email: &str, password: &str) -> Answer {
        self.post(
            "/v1/auth/token",
            json!({"email": email, "password": password}),
            None,
        )
        .await
    }
}

fn field_names(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors in {problem}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

/// An account of its own: its nickname (`name` and a number), its email in mixed case (as
/// typed) and its id.
struct Account {
    nickname: String,
    email: String,
    id: String,
}

impl Api {
    async fn account(&self, name: &str) -> Account {
        let nickname = numbered(name);
        let email = format!("{nickname}@Example.com");
        let created = self.sign_up(&email, &nickname).await;
        assert_eq!(created.status, 201, "{}", created.body);
        Account {
            id: created.body["id"].as_str().unwrap().to_owned(),
            nickname,
            email,
        }
    }

    /// `account`'s access and refresh tokens.
    async fn tokens(&self, account: &Account) -> (String, String) {
        let tokens = self.log_in(&account.email, "correct horse battery").await;
        assert_eq!(tokens.status, 200, "{}", tokens.body);
        let token = |name: &str| tokens.body[name].as_str().unwrap().to_owned();
        (token("access_token"), token("refresh_token"))
    }

    async fn refresh(&self, refresh_token: &str) -> Answer {
        self.post(
            "/v1/auth/refresh",
            json!({"refresh_token": refresh_token}),
            None,
        )
        .await
    }
}

async fn a_sign_up_answers_the_account_and_email_and_nickname_stay_unique(api: &Api) {
    let nickname = numbered("Ada");
    let email = format!("{nickname}@Example.com");
    let created = api.sign_up(&email, &nickname).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    assert_eq!(
        created.headers["location"],
        format!("/v1/users/{id}").as_str()
    );
    assert_eq!(created.body["nickname"], nickname.as_str());
    assert!(created.body["created_at"].as_str().unwrap().ends_with('Z'));
    // Case-insensitively.
    let again = api
        .sign_up(&email.to_uppercase(), &numbered("Someone"))
        .await;
    assert_eq!(
        (again.status, again.body["type"].as_str()),
        (409, Some("urn:msa:problem:email-taken"))
    );
    let other = format!("{}@example.com", numbered("other"));
    let again = api.sign_up(&other, &nickname.to_uppercase()).await;
    assert_eq!(
        (again.status, again.body["type"].as_str()),
        (409, Some("urn:msa:problem:nickname-taken"))
    );
    // The refused sign-up left its email free.
    assert_eq!(api.sign_up(&other, &numbered("Grace")).await.status, 201);
}

async fn a_bad_sign_up_names_every_wrong_field(api: &Api) {
    let refused = |body: Value| async move {
        let bad = api.post("/v1/users", body, None).await;
        assert_eq!(bad.status, 422, "{}", bad.body);
        field_names(&bad.body)
    };
    assert_eq!(
        refused(json!({"email": "not-an-email", "password": "short", "nickname": "x".repeat(33)}))
            .await,
        ["email", "password", "nickname"]
    );
    assert_eq!(
        refused(json!({"email": "a@b.co", "password": "long enough!", "nickname": "bell\u{7}"}))
            .await,
        ["nickname"]
    );
    assert_eq!(
        refused(json!({"email": 7, "password": "long enough!", "nickname": "n"})).await,
        ["email"]
    );
    assert_eq!(
        refused(
            json!({"email": "a@b.co", "password": "long enough!", "nickname": "n", "admin": true})
        )
        .await,
        ["admin"]
    );
    assert_eq!(refused(json!({})).await, ["email", "password", "nickname"]);
    let unparsable = api
        .send(
            api.client
                .post(api.url("/v1/users"))
                .header("content-type", "application/json")
                .body("{nope"),
        )
        .await;
    assert_eq!(unparsable.status, 400);
}

async fn a_login_gives_tokens_the_published_keys_verify_and_never_says_which_part_was_wrong(
    api: &Api,
) {
    let ada = api.account("Ada").await;
    let wrong = api.log_in(&ada.email, "not the password").await;
    let unknown = api
        .log_in(
            &format!("{}@example.com", numbered("nobody")),
            "not the password",
        )
        .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.body, unknown.body);
    assert_eq!(wrong.headers["www-authenticate"], "Bearer");
    // The email in any case.
    let tokens = api
        .log_in(&ada.email.to_uppercase(), "correct horse battery")
        .await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert_eq!(tokens.body["token_type"], "Bearer");
    assert_eq!(tokens.body["expires_in"], 900);
    let access = tokens.body["access_token"].as_str().unwrap();
    // The access token verifies with the published keys and names the user.
    let jwks = api.get("/.well-known/jwks.json", None).await;
    let jwks: msa_http::auth::Jwks = serde_json::from_value(jwks.body).unwrap();
    let claims = msa_http::auth::TokenVerifier::new(&jwks)
        .verify(access)
        .unwrap();
    assert_eq!(claims.sub.to_string(), ada.id);
    assert_eq!(claims.roles, ["user"]);
    assert!((claims.exp - claims.iat - 900).abs() <= 1);
}

async fn a_profile_changes_and_the_old_nickname_is_free_again(api: &Api) {
    let ada = api.account("Ada").await;
    let (access, _) = api.tokens(&ada).await;
    let me = api.get("/v1/users/me", Some(&access)).await;
    assert_eq!(
        (me.status, me.body["email"].as_str()),
        (200, Some(ada.email.as_str())),
        "the email as it was typed"
    );
    let renamed = format!("{} L", ada.nickname);
    let changed = api
        .patch("/v1/users/me", json!({"nickname": renamed, "bio": "Analyst", "avatar_url": "https://example.com/ada.png"}), &access)
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert_eq!(changed.body["nickname"], renamed.as_str());
    let bad = api
        .patch(
            "/v1/users/me",
            json!({"avatar_url": "ftp://x", "nickname": ""}),
            &access,
        )
        .await;
    assert_eq!(field_names(&bad.body), ["nickname", "avatar_url"]);
    // The old nickname is free again; the new one is taken.
    let someone = |n| format!("{}@example.com", numbered(n));
    let old = ada.nickname.to_lowercase();
    assert_eq!(api.sign_up(&someone("third"), &old).await.status, 201);
    let taken = api
        .sign_up(&someone("fourth"), &renamed.to_lowercase())
        .await;
    assert_eq!(taken.status, 409);
    let public = api.get(&format!("/v1/users/{}", ada.id), None).await;
    assert_eq!(public.body["nickname"], renamed.as_str());
    assert!(public.body.get("email").is_none(), "{}", public.body);
    assert_eq!(api.get("/v1/users/not-a-uuid", None).await.status, 422);
    let missing = api
        .get("/v1/users/01a20d49-b793-726d-81e9-4fc681e97995", None)
        .await;
    assert_eq!(missing.status, 404);
    // The exact look-up by nickname reads the claim: found at once, in any case.
    let path = format!("/v1/users/by-nickname/{}%20l", ada.nickname.to_uppercase());
    let by_nickname = api.get(&path, None).await;
    assert_eq!(
        (by_nickname.status, &by_nickname.body["id"]),
        (200, &json!(ada.id))
    );
    assert!(
        by_nickname.body.get("email").is_none(),
        "{}",
        by_nickname.body
    );
    let third = api.get(&format!("/v1/users/by-nickname/{old}"), None).await;
    assert_eq!(third.status, 200);
    assert_ne!(
        third.body["id"],
        json!(ada.id),
        "the old nickname is someone else's now"
    );
    assert_eq!(
        api.get("/v1/users/by-nickname/nobody", None).await.status,
        404
    );
    let blank = api.get("/v1/users/by-nickname/%20", None).await;
    assert_eq!(field_names(&blank.body), ["nickname"]);
}

async fn the_directory_finds_people_by_nickname_prefix_for_the_signed_in(api: &Api) {
    let ada = api.account("Ada").await;
    api.account("Bob").await;
    let (access, _) = api.tokens(&ada).await;
    // A projection: a moment later. (The space after the number leaves out Ada10 when this
    // is Ada1.)
    let renamed = format!("{} L", ada.nickname);
    let changed = api
        .patch("/v1/users/me", json!({"nickname": renamed}), &access)
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    let query = format!(
        "/v1/users?query={}%20&limit=10",
        ada.nickname.to_uppercase()
    );
    let found = eventually(|| async {
        let page = api.get(&query, Some(&access)).await;
        (page.body["items"].as_array().unwrap().len() == 1).then_some(page)
    })
    .await;
    assert_eq!(found.body["items"][0]["id"], ada.id.as_str());
    assert_eq!(found.body["next_cursor"], Value::Null);
    assert_eq!(
        api.get("/v1/users?query=", None).await.status,
        401,
        "the directory is for signed-in users"
    );
    // A page at a time.
    let first = api.get("/v1/users?query=&limit=1", Some(&access)).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 1);
    let cursor = first.body["next_cursor"].as_str().expect("more pages");
    let second = api
        .get(
            &format!("/v1/users?query=&limit=1&cursor={cursor}"),
            Some(&access),
        )
        .await;
    assert_ne!(second.body["items"][0]["id"], first.body["items"][0]["id"]);
    // Bad queries are named; other methods are not allowed.
    for bad in ["limit=500", "cursor=%%%", "nickname=ada"] {
        let answer = api.get(&format!("/v1/users?{bad}"), Some(&access)).await;
        assert_eq!(answer.status, 422, "{bad}: {}", answer.body);
    }
    let wrong_method = api.send(api.client.put(api.url("/v1/users"))).await;
    assert_eq!(wrong_method.status, 405);
}

async fn refresh_tokens_rotate_and_a_reused_one_ends_the_login(api: &Api) {
    let ada = api.account("Ada").await;
    let (_, refresh) = api.tokens(&ada).await;
    let rotated = api.refresh(&refresh).await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let next = rotated.body["refresh_token"].as_str().unwrap();
    assert_ne!(next, refresh);
    assert_eq!(api.refresh(&refresh).await.status, 401, "used before");
    assert_eq!(api.refresh(next).await.status, 401, "the family is revoked");
    // Logging out ends the session; another login is not affected.
    let (_, session) = api.tokens(&ada).await;
    let (_, other) = api.tokens(&ada).await;
    let out = api
        .post("/v1/auth/logout", json!({"refresh_token": session}), None)
        .await;
    assert_eq!(out.status, 204);
    assert_eq!(api.refresh(&session).await.status, 401);
    assert_eq!(api.refresh(&other).await.status, 200);
}

async fn missing_forged_and_garbage_tokens_are_refused_with_www_authenticate(api: &Api) {
    let (access, _) = api.tokens(&api.account("Ada").await).await;
    let missing = api.get("/v1/users/me", None).await;
    assert_eq!(
        (missing.status, &missing.headers["www-authenticate"]),
        (401, &"Bearer".parse().unwrap())
    );
    let mut forged = access.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for refused in [forged.as_str(), "garbage"] {
        let answer = api.get("/v1/users/me", Some(refused)).await;
        assert_eq!(answer.status, 401, "{refused}");
        assert_eq!(answer.headers["www-authenticate"], "Bearer");
    }
    assert_eq!(api.get("/v1/users/me", Some(&access)).await.status, 200);
}

async fn accounts_tokens_and_profiles(api: &Api) {
    behaviour!(a_sign_up_answers_the_account_and_email_and_nickname_stay_unique(api));
    behaviour!(a_bad_sign_up_names_every_wrong_field(api));
    behaviour!(
        a_login_gives_tokens_the_published_keys_verify_and_never_says_which_part_was_wrong(api)
    );
    behaviour!(a_profile_changes_and_the_old_nickname_is_free_again(api));
    behaviour!(the_directory_finds_people_by_nickname_prefix_for_the_signed_in(api));
    behaviour!(refresh_tokens_rotate_and_a_reused_one_ends_the_login(api));
    behaviour!(missing_forged_and_garbage_tokens_are_refused_with_www_authenticate(api));
}

async fn eventually<F, Fut, T>(mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = attempt().await {
            return value;
        }
        assert!(Instant::now() < deadline, "not within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn fifty_sign_ups_with_one_email_let_exactly_one_win(api: &Api) {
    let attempts = (0..50).map(|i| {
        let nickname = format!("racer {i}");
        async move { api.sign_up("race@example.com", &nickname).await.status }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert_eq!(
        statuses.iter().filter(|&&s| s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        49,
        "{statuses:?}"
    );
    // A loser's nickname was never taken (or was given back): it can sign up with another email.
    let loser = statuses.iter().position(|&s| s == 409).unwrap();
    let retry = api
        .sign_up("late@example.com", &format!("racer {loser}"))
        .await;
    assert_eq!(retry.status, 201, "{}", retry.body);
}

#[tokio::test]
async fn accounts_tokens_and_profiles_on_sqlite() {
    let (api, _data) = Api::sqlite(&[]);
    accounts_tokens_and_profiles(&api).await;
}

#[tokio::test]
async fn accounts_tokens_and_profiles_on_postgres() {
    let Some((api, _)) = Api::postgres().await else {
        return;
    };
    accounts_tokens_and_profiles(&api).await;
}

#[tokio::test]
async fn the_sign_up_race_on_sqlite() {
    let (api, _data) = Api::sqlite(&[]);
    fifty_sign_ups_with_one_email_let_exactly_one_win(&api).await;
}

#[tokio::test]
async fn the_sign_up_race_on_postgres() {
    let Some((api, _)) = Api::postgres().await else {
        return;
    };
    fifty_sign_ups_with_one_email_let_exactly_one_win(&api).await;
}

impl Api {
    /// A login as if from `client`, through a proxy on loopback (trusted by default).
    async fn log_in_from(&self, client: &str, email: &str, password: &str) -> Answer {
        self.send(
            self.client
                .post(self.url("/v1/auth/token"))
                .header("x-forwarded-for", client)
                .json(&json!({"email": email, "password": password})),
        )
        .await
    }
}

#[tokio::test]
async fn a_stranger_guessing_from_one_address_does_not_lock_the_owner_out() {
    let (api, _data) = Api::sqlite(&[]);
    assert_eq!(api.sign_up("ivy@example.com", "Ivy").await.status, 201);
    let stranger = "203.0.113.7";
    for _ in 0..8 {
        let status = api
            .log_in_from(stranger, "ivy@example.com", "wrong password")
            .await
            .status;
        assert!(status == 401 || status == 429, "{status}");
    }
    // The stranger's address is locked out of the account, even with the right password…
    let locked = api
        .log_in_from(stranger, "ivy@example.com", "correct horse battery")
        .await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    assert!(locked.headers.contains_key("retry-after"));
    // …the owner, from another address, is not.
    let owner = api
        .log_in_from("198.51.100.9", "ivy@example.com", "correct horse battery")
        .await;
    assert_eq!(owner.status, 200, "{}", owner.body);
}

#[tokio::test]
async fn a_client_cannot_pick_its_address_with_x_forwarded_for() {
    // Loopback (where this test connects from) is not a trusted proxy here: the header is
    // ignored, so changing it does not escape the lock.
    let (api, _data) = Api::sqlite(&["--trusted-proxies", "192.0.2.1"]);
    assert_eq!(api.sign_up("jay@example.com", "Jay").await.status, 201);
    for i in 0..6 {
        api.log_in_from(
            &format!("203.0.113.{i}"),
            "jay@example.com",
            "wrong password",
        )
        .await;
    }
    let spoofed = api
        .log_in_from("198.51.100.9", "jay@example.com", "correct horse battery")
        .await;
    assert_eq!(spoofed.status, 429, "{}", spoofed.body);
}

#[tokio::test]
async fn repeated_failed_logins_slow_the_account_down() {
    let (api, _data) = Api::sqlite(&[]);
    assert_eq!(api.sign_up("grace@example.com", "Grace").await.status, 201);
    for _ in 0..5 {
        assert_eq!(
            api.log_in("grace@example.com", "wrong password")
                .await
                .status,
            401
        );
    }
    let throttled = api
        .log_in("grace@example.com", "correct horse battery")
        .await;
    assert_eq!(throttled.status, 429, "{}", throttled.body);
    let retry_after: u64 = throttled.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    // Another account is not affected.
    assert_eq!(
        api.log_in("other@example.com", "wrong password")
            .await
            .status,
        401
    );
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(
        api.log_in("grace@example.com", "correct horse battery")
            .await
            .status,
        200
    );
}

/// The roles an access token carries (its payload, unverified: the server signed it).
fn token_roles(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice::<Value>(&json).unwrap()["roles"].clone()
}

/// `msa users grant-admin|revoke-admin EMAIL` on `data`.
fn admin_command(data: &std::path::Path, command: &str, email: &str) -> std::process::Output {
    common::msa()
        .args([
            "users",
            command,
            email,
            "--data-dir",
            data.to_str().unwrap(),
        ])
        .output()
        .unwrap()
}

#[tokio::test]
async fn only_the_operator_makes_admins_and_an_address_does_not_carry_the_role() {
    let (api, data) = Api::sqlite(&[]);
    // Registering what used to be the configured admin address makes no admin.
    assert_eq!(api.sign_up("Root@Example.com", "root").await.status, 201);
    let root = api
        .log_in("root@example.com", "correct horse battery")
        .await;
    let token = root.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token_roles(&token), json!(["user"]));

    // The operator grants it; the next token carries it.
    let granted = admin_command(data.path(), "grant-admin", "ROOT@example.com");
    common::succeeded(&granted);
    assert!(String::from_utf8_lossy(&granted.stdout).contains("is now an admin"));
    let admin = api
        .log_in("root@example.com", "correct horse battery")
        .await;
    let admin_token = admin.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token_roles(&admin_token), json!(["user", "admin"]));
    let me = api.get("/v1/users/me", Some(&admin_token)).await;
    assert_eq!(me.body["roles"], json!(["user", "admin"]));
    // Audited: the account's history shows the grant, by the operator.
    let export = api.get("/v1/users/me/export", Some(&admin_token)).await;
    assert!(
        export.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event_type"] == "user.RoleGranted"),
        "{}",
        export.body
    );

    // Nobody else became one; an unknown address is an error.
    assert_eq!(api.sign_up("user@example.com", "user").await.status, 201);
    let user = api
        .log_in("user@example.com", "correct horse battery")
        .await;
    assert_eq!(
        token_roles(user.body["access_token"].as_str().unwrap()),
        json!(["user"])
    );
    assert!(
        !admin_command(data.path(), "grant-admin", "nobody@example.com")
            .status
            .success()
    );

    // Taken away: the tokens that carried it are refused within seconds; the next has none.
    common::succeeded(&admin_command(
        data.path(),
        "revoke-admin",
        "root@example.com",
    ));
    eventually(|| async {
        (api.get("/v1/users/me", Some(&admin_token)).await.status == 401).then_some(())
    })
    .await;
    let again = api
        .log_in("root@example.com", "correct horse battery")
        .await;
    let again = again.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token_roles(&again), json!(["user"]));

    // Granted again, then the admin erases the account: whoever registers the address next is
    // a new user, without the role.
    common::succeeded(&admin_command(
        data.path(),
        "grant-admin",
        "root@example.com",
    ));
    let admin = api
        .log_in("root@example.com", "correct horse battery")
        .await;
    let admin_token = admin.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(token_roles(&admin_token), json!(["user", "admin"]));
    let erased = api
        .erase(&admin_token, json!({"password": "correct horse battery"}))
        .await;
    assert_eq!(erased.status, 204);
    // The address is free at once (the nickname is held after an erasure: another one).
    assert_eq!(api.sign_up("root@example.com", "root2").await.status, 201);
    let newcomer = api
        .log_in("root@example.com", "correct horse battery")
        .await;
    assert_eq!(
        token_roles(newcomer.body["access_token"].as_str().unwrap()),
        json!(["user"])
    );
}

#[tokio::test]
async fn rebuilding_the_directory_from_the_events_yields_the_same_rows() {
    let (api, data) = Api::sqlite(&[]);
    for (email, nickname) in [
        ("a@example.com", "Ann"),
        ("b@example.com", "Bea"),
        ("c@example.com", "Cid"),
    ] {
        assert_eq!(api.sign_up(email, nickname).await.status, 201);
    }
    let bea = api.log_in("b@example.com", "correct horse battery").await;
    let token = bea.body["access_token"].as_str().unwrap();
    api.patch(
        "/v1/users/me",
        json!({"nickname": "Beatrix", "bio": "hi"}),
        token,
    )
    .await;
    let directory =
        || async { api.get("/v1/users?limit=100", Some(token)).await.body["items"].clone() };
    let before = eventually(|| async {
        let items = directory().await;
        (items.as_array().unwrap().len() == 3 && items[1]["nickname"] == "Beatrix").then_some(items)
    })
    .await;

    let dir = data.path().to_str().unwrap().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        common::msa()
            .args([
                "projections",
                "rebuild",
                "user.directory",
                "--data-dir",
                &dir,
            ])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    common::succeeded(&output);
    assert!(stdout.contains("rebuilt user.directory from"), "{stdout}");
    assert_eq!(directory().await, before);

    let dir = data.path().to_str().unwrap().to_owned();
    let listed = tokio::task::spawn_blocking(move || {
        common::msa()
            .args(["projections", "list", "--data-dir", &dir])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(
        listed.contains("user.directory") && listed.contains("generation 2"),
        "{listed}"
    );

    let unknown = common::msa()
        .args(["projections", "rebuild", "nope"])
        .output()
        .unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no projection is named `nope`"));
}

/// Where a test server keeps its data, as `msa` flags and as raw stored events.
enum Storage {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Storage {
    fn flags(&self) -> Vec<String> {
        match self {
            Storage::Sqlite(dir) => vec!["--data-dir".into(), dir.path().to_str().unwrap().into()],
            Storage::Postgres(url) => vec!["--database-url".into(), url.clone()],
        }
    }

    /// Everything the user context's event store holds, as text: the SQLite files' bytes (WAL
    /// included), or every stored payload in PostgreSQL.
    async fn stored_events(&self) -> String {
        match self {
            Storage::Sqlite(dir) => event_store_bytes(dir.path()),
            Storage::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                let text: Option<String> =
                    sqlx::query_scalar("SELECT string_agg(event_type || ' ' || payload::text, ' ') FROM msa_user.events")
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                text.unwrap_or_default()
            }
        }
    }
}

/// Every byte the user context's event store keeps on disk (database, WAL), as text.
fn event_store_bytes(data: &std::path::Path) -> String {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(data).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("user.events.sqlite")
        {
            all.extend(std::fs::read(&path).unwrap());
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test]
async fn erasure_shreds_personal_data_on_sqlite() {
    let (api, data) = Api::sqlite(&[]);
    erasure_shreds_personal_data_and_export_shows_it_all_before(api, Storage::Sqlite(data)).await;
}

#[tokio::test]
async fn erasure_shreds_personal_data_on_postgres() {
    let Some((api, url)) = Api::postgres().await else {
        return;
    };
    erasure_shreds_personal_data_and_export_shows_it_all_before(api, Storage::Postgres(url)).await;
}

impl Api {
    /// Deletes the account of `token`, confirmed by `body`.
    async fn erase(&self, token: &str, body: Value) -> Answer {
        self.send(
            self.client
                .delete(self.url("/v1/users/me"))
                .bearer_auth(token)
                .json(&body),
        )
        .await
    }

    /// Whether the directory, as `reader` searches it, lists the person called `nickname`.
    async fn lists(&self, reader: &str, nickname: &str) -> bool {
        let page = self
            .get(
                &format!("/v1/users?query={nickname}&limit=100"),
                Some(reader),
            )
            .await;
        page.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|item| item["nickname"] == nickname)
    }
}

async fn the_export_holds_every_personal_datum_and_no_password_hash(api: &Api) {
    let erin = api.account("Erin").await;
    let (token, _) = api.tokens(&erin).await;
    api.patch("/v1/users/me", json!({"bio": "likes quiet trains"}), &token)
        .await;
    let export = api.get("/v1/users/me/export", Some(&token)).await;
    assert_eq!(export.status, 200, "{}", export.body);
    assert_eq!(export.body["profile"]["email"], erin.email.as_str());
    let events = export.body["events"].as_array().unwrap();
    assert_eq!(events[0]["event_type"], "user.UserRegistered");
    assert_eq!(events[0]["data"]["email"], erin.email.as_str());
    assert_eq!(events[1]["data"]["bio"], "likes quiet trains");
    assert!(
        !export.body.to_string().contains("$argon2"),
        "{}",
        export.body
    );
    assert_eq!(export.body["sessions"].as_array().unwrap().len(), 1);
}

async fn personal_data_is_never_stored_in_clear(api: &Api, storage: &Storage) {
    let erin = api.account("Erin").await;
    let (token, _) = api.tokens(&erin).await;
    let bio = format!("likes quiet trains, says {}", erin.id);
    api.patch("/v1/users/me", json!({"bio": bio}), &token).await;
    let stored = storage.stored_events().await;
    assert!(
        stored.contains("user.UserRegistered"),
        "the events are there"
    );
    for secret in [&erin.email, &bio, &erin.nickname] {
        for form in [secret.clone(), secret.to_lowercase()] {
            assert!(!stored.contains(&form), "{form} stored in clear");
        }
    }
}

async fn erasure_takes_the_password_and_ends_every_way_in_and_every_listing(api: &Api) {
    let (finn, erin) = (api.account("Finn").await, api.account("Erin").await);
    let (reader, _) = api.tokens(&finn).await;
    let (token, refresh) = api.tokens(&erin).await;
    eventually(|| async { api.lists(&reader, &erin.nickname).await.then_some(()) }).await;
    // A token alone does not delete an account: the password confirms it.
    for (body, problem) in [
        (
            json!({}),
            "required: the account's password confirms its deletion",
        ),
        (json!({"password": "not it"}), "does not match"),
    ] {
        let refused = api.erase(&token, body).await;
        assert_eq!(
            (refused.status, refused.body["errors"][0]["field"].as_str()),
            (422, Some("password")),
            "{}",
            refused.body
        );
        assert_eq!(refused.body["errors"][0]["message"], problem);
    }
    let erased = api
        .erase(&token, json!({"password": "correct horse battery"}))
        .await;
    assert_eq!(erased.status, 204);
    assert_eq!(api.get("/v1/users/me", Some(&token)).await.status, 401);
    let login = api.log_in(&erin.email, "correct horse battery").await;
    assert_eq!(login.status, 401);
    assert_eq!(api.refresh(&refresh).await.status, 401);
    let profile = api.get(&format!("/v1/users/{}", erin.id), None).await;
    assert_eq!(profile.status, 404);
    let by_nickname = format!("/v1/users/by-nickname/{}", erin.nickname);
    assert_eq!(api.get(&by_nickname, None).await.status, 404);
    eventually(|| async { (!api.lists(&reader, &erin.nickname).await).then_some(()) }).await;
    // The email is free again at once; the nickname is held (--nickname-hold, 30 days here).
    let other = format!("{}@example.com", numbered("other"));
    assert_eq!(api.sign_up(&other, &erin.nickname).await.status, 409);
    let again = api.sign_up(&erin.email, &numbered("Erin")).await;
    assert_eq!(again.status, 201, "{}", again.body);
}

async fn a_rebuilt_directory_lists_the_erased_no_more(api: &Api, storage: &Storage) {
    let (finn, erin) = (api.account("Finn").await, api.account("Erin").await);
    let (reader, _) = api.tokens(&finn).await;
    let (token, _) = api.tokens(&erin).await;
    let erased = api
        .erase(&token, json!({"password": "correct horse battery"}))
        .await;
    assert_eq!(erased.status, 204);
    let flags = storage.flags();
    let rebuilt = tokio::task::spawn_blocking(move || {
        common::msa()
            .args(["projections", "rebuild", "user.directory"])
            .args(flags)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    common::succeeded(&rebuilt);
    assert!(api.lists(&reader, &finn.nickname).await);
    assert!(!api.lists(&reader, &erin.nickname).await);
}

async fn erasure_shreds_personal_data_and_export_shows_it_all_before(api: Api, storage: Storage) {
    behaviour!(the_export_holds_every_personal_datum_and_no_password_hash(
        &api
    ));
    behaviour!(personal_data_is_never_stored_in_clear(&api, &storage));
    behaviour!(erasure_takes_the_password_and_ends_every_way_in_and_every_listing(&api));
    behaviour!(a_rebuilt_directory_lists_the_erased_no_more(&api, &storage));
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_only_real_ones() {
    let (api, _data) = Api::sqlite(&[]);
    let document = api.get("/openapi.json", None).await;
    assert_eq!(document.status, 200);
    // Its reference for people, Swagger UI reading that document (as the gateway serves it).
    let docs = api.client.get(api.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
    let config = api
        .client
        .get(api.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap();
    assert!(config.text().await.unwrap().contains("/openapi.json"));
    assert!(document.body["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(
        document.body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let paths = document.body["paths"].as_object().unwrap();
    let mut documented: Vec<_> = paths.keys().cloned().collect();
    documented.sort();
    assert_eq!(
        documented,
        [
            "/.well-known/jwks.json",
            "/.well-known/revocations.json",
            "/v1/admin/trail/{id}",
            "/v1/auth/kakao/callback",
            "/v1/auth/kakao/start",
            "/v1/auth/logout",
            "/v1/auth/refresh",
            "/v1/auth/token",
            "/v1/direct-chats",
            "/v1/inbox",
            "/v1/invites",
            "/v1/invites/{room_id}",
            "/v1/payments",
            "/v1/payments/webhooks/{provider}",
            "/v1/payments/{id}",
            "/v1/payments/{id}/cancel",
            "/v1/payments/{id}/confirm",
            "/v1/payments/{id}/refunds",
            "/v1/products",
            "/v1/rooms",
            "/v1/rooms/{id}",
            "/v1/rooms/{id}/bans",
            "/v1/rooms/{id}/bans/{user_id}",
            "/v1/rooms/{id}/invites",
            "/v1/rooms/{id}/members",
            "/v1/rooms/{id}/members/{user_id}",
            "/v1/rooms/{id}/members/{user_id}/role",
            "/v1/rooms/{id}/messages",
            "/v1/rooms/{id}/messages/{message_id}",
            "/v1/rooms/{id}/messages/{message_id}/edits",
            "/v1/rooms/{id}/messages/{message_id}/reactions/{emoji}",
            "/v1/rooms/{id}/read",
            "/v1/rooms/{id}/read-markers",
            "/v1/search/messages",
            "/v1/users",
            "/v1/users/by-nickname/{nickname}",
            "/v1/users/me",
            "/v1/users/me/export",
            "/v1/users/me/password",
            "/v1/users/me/sessions",
            "/v1/users/{id}",
            "/v1/wallet",
            "/v1/wallet/ledger",
        ]
    );
    // Paths two services share keep both services' operations.
    let methods = |path: &str| {
        let mut methods: Vec<_> = paths[path].as_object().unwrap().keys().cloned().collect();
        methods.sort();
        methods
    };
    assert_eq!(methods("/v1/rooms/{id}/messages"), ["get", "post"]);
    assert_eq!(methods("/v1/rooms/{id}/members"), ["get", "post"]);
    // Every documented operation is served: none answers "no such resource" or 405.
    for (path, operations) in paths {
        let url = api.url(
            &path
                .replace("{id}", "01a20d49-b793-726d-81e9-4fc681e97995")
                .replace("{user_id}", "01a20d49-b793-726d-81e9-4fc681e97996")
                .replace("{message_id}", "01a20d49-b793-726d-81e9-4fc681e97997")
                .replace("{emoji}", ":tada:")
                .replace("{provider}", "sandbox"),
        );
        for method in operations.as_object().unwrap().keys() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = api
                .client
                .request(method.clone(), &url)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body = response.text().await.unwrap();
            assert!(
                status != 405 && !body.contains("no such resource"),
                "{method} {path}: {status} {body}"
            );
        }
    }
}

#[tokio::test]
async fn a_password_change_ends_every_session_and_access_tokens_expire() {
    let (api, _data) = Api::sqlite(&["--access-token-ttl", "1s"]);
    assert_eq!(api.sign_up("hal@example.com", "Hal").await.status, 201);
    let session = api.log_in("hal@example.com", "correct horse battery").await;
    assert_eq!(session.body["expires_in"], 1);
    let token = session.body["access_token"].as_str().unwrap().to_owned();
    let refresh = session.body["refresh_token"].as_str().unwrap().to_owned();
    let change = |current: &str, new: &str| {
        api.send(
            api.client
                .put(api.url("/v1/users/me/password"))
                .bearer_auth(&token)
                .json(&json!({"current_password": current, "new_password": new})),
        )
    };
    let wrong = change("not it at all", "a brand new password").await;
    assert_eq!(
        (wrong.status, field_names(&wrong.body)),
        (422, vec!["current_password".to_owned()])
    );
    let short = change("correct horse battery", "short").await;
    assert_eq!(field_names(&short.body), ["new_password"]);
    assert_eq!(
        change("correct horse battery", "a brand new password")
            .await
            .status,
        204
    );
    assert_eq!(
        api.log_in("hal@example.com", "correct horse battery")
            .await
            .status,
        401
    );
    assert_eq!(
        api.log_in("hal@example.com", "a brand new password")
            .await
            .status,
        200
    );
    assert_eq!(api.refresh(&refresh).await.status, 401, "the old session");

    // Past its lifetime (and the verifier's 5 s leeway) an access token is refused.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let expired = api.get("/v1/users/me", Some(&token)).await;
    assert_eq!(expired.status, 401);
    assert!(
        expired.body["detail"].as_str().unwrap().contains("expired"),
        "{}",
        expired.body
    );
}
