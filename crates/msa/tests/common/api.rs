//! Calling the spawned server's HTTP API as a client does: sign-up, tokens, JSON in and out.
//! Every error answer must be problem+json.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{serve, Server};

/// `name` and a number no other call of this test binary got (a nickname nobody holds yet).
pub fn numbered(name: &str) -> String {
    static TAKEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = TAKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{name}{n}")
}

pub struct Api {
    pub server: Server,
    pub client: reqwest::Client,
}

pub struct Person {
    pub id: String,
    pub nickname: String,
    pub token: String,
}

impl Api {
    /// A client of a server already running.
    pub fn at(server: Server) -> Api {
        Api {
            server,
            client: reqwest::Client::new(),
        }
    }

    pub fn start(storage: &[&str]) -> Api {
        let mut args = vec![
            "--password-hash-memory-kib",
            "64",
            "--password-hash-iterations",
            "1",
            "--password-attempts-per-minute",
            "100000",
        ];
        args.extend(storage);
        Api {
            server: serve(&args),
            client: reqwest::Client::new(),
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.server.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.answer(request).await
    }

    /// Sends a request built by the caller (for headers of its own) and reads the answer.
    pub async fn answer(&self, request: reqwest::RequestBuilder) -> (u16, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        if status >= 400 {
            assert_eq!(
                response.headers()["content-type"],
                "application/problem+json"
            );
        }
        let text = response.text().await.unwrap();
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
        )
    }

    /// `POST /v1/payments` for `product_id` under an Idempotency-Key.
    pub async fn request_payment(&self, who: &Person, key: &str, product_id: &str) -> (u16, Value) {
        let request = self
            .client
            .post(format!("{}/v1/payments", self.server.base))
            .bearer_auth(&who.token)
            .header("Idempotency-Key", key)
            .json(&json!({ "product_id": product_id }));
        self.answer(request).await
    }

    /// Someone new, named [`numbered`]: behaviours sharing a server each get their own people.
    pub async fn someone(&self, name: &str) -> Person {
        self.person(&numbered(name)).await
    }

    pub async fn person(&self, name: &str) -> Person {
        let email = format!("{}@example.com", name.to_lowercase());
        let body = json!({"email": email, "password": "correct horse battery", "nickname": name});
        let (status, created) = self
            .call(reqwest::Method::POST, "/v1/users", "", Some(body))
            .await;
        assert_eq!(status, 201, "{created}");
        let body = json!({"email": email, "password": "correct horse battery"});
        let (_, tokens) = self
            .call(reqwest::Method::POST, "/v1/auth/token", "", Some(body))
            .await;
        Person {
            id: created["id"].as_str().unwrap().to_owned(),
            nickname: name.to_owned(),
            token: tokens["access_token"].as_str().unwrap().to_owned(),
        }
    }

    pub async fn post(&self, who: &Person, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, &who.token, Some(body))
            .await
    }

    pub async fn get(&self, who: &Person, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, &who.token, None)
            .await
    }

    pub async fn send(&self, who: &Person, room: &str, txn_id: &str, body: &str) -> (u16, Value) {
        self.post(
            who,
            &format!("/v1/rooms/{room}/messages"),
            json!({"txn_id": txn_id, "body": body}),
        )
        .await
    }
}

/// Waits (up to 10 s) until `check` holds.
pub async fn eventually<F, Fut>(check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    within(Duration::from_secs(10), "the condition", check).await
}

/// Waits until `check` holds; fails naming `what` after `limit`.
pub async fn within<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
