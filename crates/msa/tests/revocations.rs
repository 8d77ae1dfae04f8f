//! The deny list: after an erasure, a password change or a log-out everywhere, the user's earlier
//! access tokens are refused by every service within seconds, and their open streams close with
//! 4401; tokens issued after it work. On the single server and through the gateway.

mod common;

use std::time::{Duration, Instant};

use common::api::Api;
use common::live::{connect, Socket};
use common::microservices::Microservices;
use futures::StreamExt;
use reqwest::Method;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// Within how long a revocation must reach every process.
const WITHIN: Duration = Duration::from_secs(5);

/// One endpoint of each service that checks tokens.
const CHECKED: [&str; 4] = [
    "/v1/users/me", // user
    "/v1/rooms",    // chat
    "/v1/wallet",   // payment
    "/v1/inbox",    // user-chat
];

async fn statuses(api: &Api, token: &str) -> Vec<u16> {
    let mut statuses = Vec::new();
    for path in CHECKED {
        statuses.push(api.call(Method::GET, path, token, None).await.0);
    }
    statuses
}

/// Waits until every service refuses `token`.
async fn refused_everywhere(api: &Api, token: &str, what: &str) {
    let deadline = Instant::now() + WITHIN;
    loop {
        let now = statuses(api, token).await;
        if now.iter().all(|s| *s == 401) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the old token still answers {now:?} on {CHECKED:?} after {WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for the stream to close; returns its close code.
async fn closed_with(socket: &mut Socket, what: &str) -> u16 {
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next())
            .await
            .unwrap_or_else(|_| panic!("{what}: the stream is still open after {WITHIN:?}"));
        match message {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => {
                panic!("{what}: the stream ended without a close code")
            }
            Some(Ok(_)) => {}
        }
    }
}

async fn log_in(api: &Api, name: &str, password: &str) -> (u16, String) {
    let email = format!("{}@example.com", name.to_lowercase());
    let (status, tokens) = api
        .call(
            Method::POST,
            "/v1/auth/token",
            "",
            Some(json!({"email": email, "password": password})),
        )
        .await;
    (
        status,
        tokens["access_token"].as_str().unwrap_or("").to_owned(),
    )
}

/// Runs the three revocations; returns the revoked tokens.
async fn scenario(api: &Api) -> Vec<String> {
    let ada = api.person("Ada").await;
    let bob = api.person("Bob").await;
    let cy = api.person("Cy").await;
    let dee = api.person("Dee").await;
    // Everyone is let in before.
    for who in [&ada, &bob, &cy, &dee] {
        assert_eq!(statuses(api, &who.token).await, [200; 4]);
    }
    let mut streams = Vec::new();
    for who in [&ada, &bob, &cy] {
        streams.push(connect(api, who, None, false).await);
    }
    let [mut ada_stream, mut bob_stream, mut cy_stream] =
        <[Socket; 3]>::try_from(streams).ok().unwrap();

    // Erasure.
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/users/me",
            &ada.token,
            Some(json!({"password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, 204);
    refused_everywhere(api, &ada.token, "after erasure").await;
    assert_eq!(closed_with(&mut ada_stream, "after erasure").await, 4401);

    // A password change: the old token is refused, one from a login with the new password works.
    let (status, _) = api
        .call(
            Method::PUT,
            "/v1/users/me/password",
            &bob.token,
            Some(json!({"current_password": "correct horse battery", "new_password": "a brand new password"})),
        )
        .await;
    assert_eq!(status, 204);
    refused_everywhere(api, &bob.token, "after a password change").await;
    assert_eq!(
        closed_with(&mut bob_stream, "after a password change").await,
        4401
    );
    let (status, fresh) = log_in(api, "Bob", "a brand new password").await;
    assert_eq!(status, 200);
    assert_eq!(
        statuses(api, &fresh).await,
        [200; 4],
        "a token issued after"
    );

    // Log out everywhere.
    let (status, _) = api
        .call(Method::DELETE, "/v1/users/me/sessions", &cy.token, None)
        .await;
    assert_eq!(status, 204);
    refused_everywhere(api, &cy.token, "after a log-out everywhere").await;
    assert_eq!(
        closed_with(&mut cy_stream, "after a log-out everywhere").await,
        4401
    );
    let (status, fresh) = log_in(api, "Cy", "correct horse battery").await;
    assert_eq!(status, 200);
    assert_eq!(
        statuses(api, &fresh).await,
        [200; 4],
        "a token issued after"
    );

    // Nobody else is touched.
    assert_eq!(statuses(api, &dee.token).await, [200; 4]);
    vec![ada.token, bob.token, cy.token]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_are_refused_and_streams_close_on_the_single_server() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(&["--data-dir", data.path().to_str().unwrap()]);
    scenario(&api).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn revoked_tokens_are_refused_and_streams_close_through_the_gateway() {
    let Some((services, gateway)) = Microservices::start(&[]).await else {
        return;
    };
    let api = Api::at(gateway);
    let revoked = scenario(&api).await;
    // Not only the edge: each service refuses them too, asked directly.
    let client = reqwest::Client::new();
    for (base, path) in [
        (&services.user, CHECKED[0]),
        (&services.chat, CHECKED[1]),
        (&services.payment, CHECKED[2]),
        (&services.user_chat, CHECKED[3]),
    ] {
        for token in &revoked {
            // Each process polls the list on its own (every second): within seconds, not at once.
            common::api::within(
                std::time::Duration::from_secs(10),
                &format!("{base}{path} refuses a revoked token"),
                || async {
                    let answer = client
                        .get(format!("{base}{path}"))
                        .bearer_auth(token)
                        .send()
                        .await
                        .unwrap();
                    answer.status() == 401
                },
            )
            .await;
        }
    }
}

/// A service started after the revocation loads the deny list before it serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_single_server_still_refuses_a_revoked_token() {
    let data = tempfile::tempdir().unwrap();
    let storage = ["--data-dir", data.path().to_str().unwrap()];
    let mut api = Api::start(&storage);
    let ada = api.person("Ada").await;
    let (status, _) = api
        .call(Method::DELETE, "/v1/users/me/sessions", &ada.token, None)
        .await;
    assert_eq!(status, 204);
    api.server.process.kill();
    api = Api::start(&storage);
    assert_eq!(statuses(&api, &ada.token).await, [401; 4]);
}
