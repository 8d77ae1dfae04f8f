//! The abuse suite: what an attacker tries, against the spawned single server and the gateway
//! deployment, each case with the answer it must get. Every case here failed once (the trust
//! issue's probes); each stays so it cannot come back.

mod common;

use common::api::{Api, Person};
use common::microservices::{Microservices, HASH_FLAGS};
use serde_json::json;

async fn free_left(api: &Api, who: &Person) -> i64 {
    let (status, wallet) = api.get(who, "/v1/wallet").await;
    assert_eq!(status, 200, "{wallet}");
    wallet["free_left_today"].as_i64().unwrap()
}

async fn direct_room(api: &Api, from: &Person, to: &str) -> String {
    let (status, room) = api
        .post(from, "/v1/direct-chats", json!({"nickname": to}))
        .await;
    assert!(status == 201 || status == 200, "{status} {room}");
    room["id"].as_str().unwrap().to_owned()
}

/// A used `txn_id` sent again with another body is refused (409), and the credit of the message
/// that was posted under it stays spent: no refund for a spend an earlier call made.
async fn a_reused_txn_id_gives_no_credit_back(api: &Api, prefix: &str) {
    let mallory = api.person(&format!("{prefix}Mallory")).await;
    let _victim = api.person(&format!("{prefix}Victim")).await;
    let room = direct_room(api, &mallory, &format!("{prefix}Victim")).await;
    let before = free_left(api, &mallory).await;
    let (status, posted) = api.send(&mallory, &room, "t-1", "first").await;
    assert_eq!(status, 201, "{posted}");
    assert_eq!(free_left(api, &mallory).await, before - 1);
    for n in 0..3 {
        let (status, problem) = api
            .send(&mallory, &room, "t-1", &format!("another body {n}"))
            .await;
        assert_eq!(status, 409, "{problem}");
    }
    assert_eq!(
        free_left(api, &mallory).await,
        before - 1,
        "a refused replay gave the posted message's credit back"
    );
    // The same body again is the first message, answered again, and still costs one credit.
    let (status, again) = api.send(&mallory, &room, "t-1", "first").await;
    assert_eq!((status, &again["id"]), (200, &posted["id"]), "{again}");
    assert_eq!(free_left(api, &mallory).await, before - 1);
}

/// A group room with `owner` and `members` (invited, then joined).
async fn group(api: &Api, owner: &Person, members: &[&Person]) -> String {
    let ids: Vec<&str> = members.iter().map(|m| m.id.as_str()).collect();
    let (status, room) = api
        .post(
            owner,
            "/v1/rooms",
            json!({"kind": "group", "name": "Den", "members": ids}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let room = room["id"].as_str().unwrap().to_owned();
    for member in members {
        let (status, answer) = api
            .post(member, &format!("/v1/rooms/{room}/members"), json!(null))
            .await;
        assert_eq!(status, 204, "{answer}");
    }
    room
}

/// Nobody is put in a group without consent: the creator's list invites, and the invitee sees
/// nothing of the room until they join.
async fn a_room_creator_cannot_make_strangers_members(api: &Api) {
    let (creator, stranger) = (api.person("Spammer").await, api.person("Stranger").await);
    let (status, room) = api
        .post(
            &creator,
            "/v1/rooms",
            json!({"kind": "group", "name": "Buy now", "members": [stranger.id]}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let room = room["id"].as_str().unwrap();
    assert_eq!(api.send(&creator, room, "ad", "cheap credits").await.0, 201);
    let (status, _) = api
        .get(&stranger, &format!("/v1/rooms/{room}/messages"))
        .await;
    assert_eq!(status, 403, "an invitee reads nothing before joining");
    let (_, rooms) = api.get(&stranger, "/v1/rooms").await;
    assert_eq!(rooms["items"], json!([]), "{rooms}");
    // Ids of nobody are refused, at creation and in invitations; a nickname invites too.
    let nobody = uuid::Uuid::now_v7().to_string();
    let (status, problem) = api
        .post(
            &creator,
            "/v1/rooms",
            json!({"kind": "group", "name": "Ghosts", "members": [stranger.id, nobody]}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "members", "{problem}");
    let invites = format!("/v1/rooms/{room}/invites");
    let (status, problem) = api
        .post(&creator, &invites, json!({"user_id": nobody}))
        .await;
    assert_eq!(status, 422, "{problem}");
    let other = api.person("Invitee").await;
    let (status, problem) = api
        .post(&creator, &invites, json!({"nickname": "invitee"}))
        .await;
    assert_eq!(status, 204, "{problem}");
    let (_, view) = api.get(&creator, &format!("/v1/rooms/{room}")).await;
    assert!(
        view["invited"]
            .as_array()
            .unwrap()
            .contains(&json!(other.id)),
        "{view}"
    );
    // A name that shows nothing, or reorders what follows, is not a name.
    for name in ["\u{200B}", "\u{3164}", "\u{2800}", "\u{202E}evil"] {
        let (status, problem) = api
            .post(
                &creator,
                "/v1/rooms",
                json!({"kind": "group", "name": name}),
            )
            .await;
        assert_eq!(status, 422, "{name:?}: {problem}");
    }
    let crowd: Vec<String> = (0..1000)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let (status, problem) = api
        .post(
            &creator,
            "/v1/rooms",
            json!({"kind": "group", "name": "Crowd", "members": crowd}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
}

/// The last owner cannot ban or kick themself out of the room (which would leave it ownerless).
async fn an_owner_cannot_ban_themself(api: &Api) {
    let (owner, member) = (api.person("Owner").await, api.person("Member").await);
    let room = group(api, &owner, &[&member]).await;
    let (status, problem) = api
        .post(
            &owner,
            &format!("/v1/rooms/{room}/bans"),
            json!({"user_id": owner.id}),
        )
        .await;
    assert_eq!(status, 422, "{problem}");
    let (_, view) = api.get(&owner, &format!("/v1/rooms/{room}")).await;
    assert!(
        view["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["user_id"] == owner.id.as_str() && m["role"] == "owner"),
        "{view}"
    );
}

/// Someone kicked from a room who reconnects with a cursor from before cannot read what was
/// said there: catch-up sends only the rooms the user is in now.
async fn a_kicked_member_cannot_reread_the_room_with_an_old_cursor(api: &Api) {
    let (owner, kicked) = (api.person("Host").await, api.person("Kicked").await);
    let (_, old_cursor) = common::live::connect_with_cursor(api, &kicked, None, false).await;
    let room = group(api, &owner, &[&kicked]).await;
    assert_eq!(
        api.send(&owner, &room, "s-1", "the secret plan").await.0,
        201
    );
    let (status, answer) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/rooms/{room}/members/{}", kicked.id),
            &owner.token,
            None,
        )
        .await;
    assert_eq!(status, 204, "{answer}");
    let mut socket = common::live::connect(api, &kicked, Some(&old_cursor), false).await;
    let mut frames = Vec::new();
    while let Some(frame) = common::live::next_frame(&mut socket).await {
        frames.push(frame);
    }
    assert!(
        !frames
            .iter()
            .any(|f| f["type"] == "MessagePosted" || f.to_string().contains("secret plan")),
        "{frames:?}"
    );
}

/// A cursor after the end of the log is refused at once (422), not waited on.
async fn a_cursor_from_the_future_is_refused_at_once(api: &Api) {
    use base64::Engine;
    let who = api.person("Future").await;
    let cursor = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("999999999:999999999");
    let started = std::time::Instant::now();
    let answer = api
        .client
        .get(format!("{}/v1/stream?since={cursor}", api.server.base))
        .bearer_auth(&who.token)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 422);
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

/// Edits and reactions cost no credit, so each user has a budget of them a minute.
async fn edits_and_reactions_have_a_budget(api: &Api) {
    let (ada, bob) = (api.person("Editor").await, api.person("Reader").await);
    let room = direct_room(api, &ada, "Reader").await;
    let (_, posted) = api.send(&ada, &room, "e-1", "draft").await;
    let message = posted["id"].as_str().unwrap();
    let path = format!("/v1/rooms/{room}/messages/{message}");
    let mut statuses = Vec::new();
    for n in 0..31 {
        let (status, _) = api
            .call(
                reqwest::Method::PATCH,
                &path,
                &ada.token,
                Some(json!({"body": format!("draft {n}")})),
            )
            .await;
        statuses.push(status);
    }
    assert!(statuses[..30].iter().all(|s| *s == 204), "{statuses:?}");
    assert_eq!(statuses[30], 429, "{statuses:?}");
    // Another user's budget is their own.
    let (status, _) = api
        .call(
            reqwest::Method::PUT,
            &format!("{path}/reactions/👍"),
            &bob.token,
            None,
        )
        .await;
    assert_eq!(status, 204);
}

/// A frame larger than the stream takes is refused while it is read, before authentication,
/// and one user cannot hold sockets without bound.
async fn the_stream_bounds_frames_and_sockets(api: &Api) {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let url = format!(
        "{}/v1/stream",
        api.server.base.replacen("http://", "ws://", 1)
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let _ = socket
        .send(Message::text("x".repeat(8 * 1024 * 1024)))
        .await;
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        loop {
            match socket.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an 8 MB frame was taken");

    let who = api.person("Hoarder").await;
    let mut open = Vec::new();
    for _ in 0..8 {
        open.push(common::live::connect(api, &who, None, false).await);
    }
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            url.as_str(),
        )
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", who.token).parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429)
        }
        other => panic!("a ninth socket of one user opened: {:?}", other.map(|_| ())),
    }
}

/// Bodies over the limit are 413, and a NUL in a search is a 422, never a 500.
async fn malformed_input_is_refused_with_the_right_problem(api: &Api) {
    let who = api.person("Fuzzer").await;
    let huge = json!({"nickname": "x".repeat(3 * 1024 * 1024)});
    // Its own connection: the server answers before reading the whole body, then closes it.
    let request = reqwest::Client::new()
        .patch(format!("{}/v1/users/me", api.server.base))
        .bearer_auth(&who.token)
        .json(&huge);
    let (status, problem) = api.answer(request).await;
    assert_eq!(status, 413, "{problem}");
    // Also where the body is read raw (a provider's webhook): a problem, not plain text.
    let request = reqwest::Client::new()
        .post(format!("{}/v1/payments/webhooks/sandbox", api.server.base))
        .header("content-type", "application/json")
        .body(vec![b' '; 3 * 1024 * 1024]);
    let (status, problem) = api.answer(request).await;
    assert_eq!(status, 413, "{problem}");
    let (status, problem) = api.get(&who, "/v1/search/messages?q=a%00b").await;
    assert_eq!(status, 422, "{problem}");
    // A huge search (10,000 characters, half Korean: 50 KB escaped, under the 64 KB a URI may
    // hold) and one of query syntax and LIKE wildcards only: refused or answered, never a 500.
    let huge = "엔".repeat(5_000) + &"x".repeat(5_000);
    let path = format!("/v1/search/messages?q={}", urlencode(&huge));
    let (status, problem) = api.get(&who, &path).await;
    assert_eq!(
        (status, problem["errors"][0]["field"].as_str()),
        (422, Some("q")),
        "{problem}"
    );
    let syntax = r#"" * OR NEAR( % _ \\ ^ : AND NOT {a b} col:x"#;
    let path = format!("/v1/search/messages?q={}", urlencode(syntax));
    let (status, problem) = api.get(&who, &path).await;
    assert_eq!((status, &problem["items"]), (200, &json!([])), "{problem}");
}

/// A body that names a key twice would mean one thing to a reader keeping the first and another
/// to one keeping the last: refused, naming the key, wherever it is parsed.
async fn a_body_naming_a_key_twice_is_refused(api: &Api) {
    let (who, _) = (api.person("Twice").await, api.person("Thrice").await);
    let room = direct_room(api, &who, "Thrice").await;
    let answer = |method: reqwest::Method, path: String, body: &'static str| {
        let request = reqwest::Client::new()
            .request(method, format!("{}{path}", api.server.base))
            .bearer_auth(&who.token)
            .header("content-type", "application/json")
            .body(body);
        api.answer(request)
    };
    for (method, path, body, key) in [
        (
            reqwest::Method::POST,
            format!("/v1/rooms/{room}/messages"),
            r#"{"txn_id": "twice", "body": "a", "body": "b"}"#,
            "body",
        ),
        (
            reqwest::Method::PATCH,
            "/v1/users/me".to_owned(),
            r#"{"bio": {"x": 1}, "nickname": "One", "nickname": "Two"}"#,
            "nickname",
        ),
        (
            reqwest::Method::POST,
            "/v1/payments".to_owned(),
            r#"{"product_id": "credits-100", "idempotency": {"a": 1, "a": 2}}"#,
            "a",
        ),
    ] {
        let (status, problem) = answer(method, path.clone(), body).await;
        assert_eq!(
            (status, problem["errors"][0]["field"].as_str()),
            (422, Some(key)),
            "{path}: {problem}"
        );
    }
}

/// A client that sends a request's headers a byte at a time (slowloris) is cut off after the
/// header read timeout instead of holding its connection for as long as it likes; a client
/// that keeps to it is served.
async fn a_trickled_request_is_cut_off(base: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut trickle = tokio::net::TcpStream::connect(address).await.unwrap();
    trickle
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        // A header line every 300 ms, never the blank line that ends them.
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            if trickle.write_all(b"x-slow: 1\r\n").await.is_err() {
                return;
            }
            let mut buffer = [0u8; 256];
            match tokio::time::timeout(
                std::time::Duration::from_millis(1),
                trickle.read(&mut buffer),
            )
            .await
            {
                Ok(Ok(0)) | Ok(Err(_)) => return,
                Ok(Ok(n)) => rest.extend_from_slice(&buffer[..n]),
                Err(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a connection trickling its headers was still open after 20 s"
    );
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "cut off too early"
    );
    let healthy = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(healthy.status(), 200);
}

/// Percent-encodes every byte of `text` but ASCII letters and digits.
fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A browser's CORS preflight is answered as the gateway answers it (one policy, both
/// deployments), not with 405.
async fn a_cors_preflight_is_answered(api: &Api) {
    let answer = api
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/rooms", api.server.base),
        )
        .header("origin", "https://chat.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    assert!(answer.headers().contains_key("access-control-allow-origin"));
}

/// `/metrics` is not on the API's address, and the directory is for signed-in users.
async fn operators_pages_and_the_directory_are_not_public(api: &Api) {
    let metrics = reqwest::get(format!("{}/metrics", api.server.base))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 404);
    let directory = reqwest::get(format!("{}/v1/users?query=", api.server.base))
        .await
        .unwrap();
    assert_eq!(directory.status(), 401);
}

/// Two sends with one `txn_id` at once, the first refused late (a `reply_to` chat waits for and
/// never finds), the second with a good body: every message posted is paid for. (The first call
/// refunded its spend while the second, replaying that spend, got its body posted: free messages.)
async fn a_txn_id_raced_by_two_sends_posts_nothing_for_free(api: &Api, prefix: &str) {
    let racer = api.person(&format!("{prefix}Racer")).await;
    let _peer = api.person(&format!("{prefix}Peer")).await;
    let room = direct_room(api, &racer, &format!("{prefix}Peer")).await;
    let before = free_left(api, &racer).await;
    let mut posted = 0;
    for n in 0..4 {
        let txn = format!("race-{n}");
        let path = format!("/v1/rooms/{room}/messages");
        let late_refusal = api.post(
            &racer,
            &path,
            json!({"txn_id": txn, "body": "A", "reply_to": uuid::Uuid::now_v7()}),
        );
        let good = async {
            tokio::time::sleep(std::time::Duration::from_millis(150)).await;
            api.post(&racer, &path, json!({"txn_id": txn, "body": "B"}))
                .await
        };
        let ((first, _), (second, _)) = tokio::join!(late_refusal, good);
        posted += [first, second].iter().filter(|s| **s == 201).count() as i64;
    }
    assert_eq!(
        before - free_left(api, &racer).await,
        posted,
        "every message posted is paid for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_of_the_single_server() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(&[
        "--data-dir",
        data.path().to_str().unwrap(),
        "--header-read-timeout",
        "1s",
    ]);
    a_trickled_request_is_cut_off(&api.server.base).await;
    a_body_naming_a_key_twice_is_refused(&api).await;
    message_commands_take_only_posts_of_their_room(&api).await;
    a_member_kicked_a_moment_ago_changes_no_message(&api).await;
    room_details_change_under_races_and_only_for_members(&api).await;
    a_reused_txn_id_gives_no_credit_back(&api, "").await;
    a_txn_id_raced_by_two_sends_posts_nothing_for_free(&api, "").await;
    a_room_creator_cannot_make_strangers_members(&api).await;
    an_owner_cannot_ban_themself(&api).await;
    a_kicked_member_cannot_reread_the_room_with_an_old_cursor(&api).await;
    a_cursor_from_the_future_is_refused_at_once(&api).await;
    edits_and_reactions_have_a_budget(&api).await;
    the_stream_bounds_frames_and_sockets(&api).await;
    malformed_input_is_refused_with_the_right_problem(&api).await;
    operators_pages_and_the_directory_are_not_public(&api).await;
    an_erased_accounts_export_is_refused(&api, "").await;
    an_erased_payer_confirms_and_refunds_nothing(&api).await;
    a_cors_preflight_is_answered(&api).await;
}

/// A single server that takes 5 password attempts a minute from an address (and its data
/// directory, removed when dropped).
fn five_password_attempts_a_minute() -> (common::Server, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap();
    let mut args = vec!["--data-dir", data.path().to_str().unwrap()];
    // The cheap hash, without HASH_FLAGS' own (high) password-attempt limit.
    args.extend(&HASH_FLAGS[..4]);
    args.extend(["--password-attempts-per-minute", "5"]);
    (common::serve(&args), data)
}

/// Sign-ups and log-ins from one address are limited per minute in the single server too, so
/// a flood of them cannot slow everyone's log-in down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_flood_password_hashing() {
    let (server, _data) = five_password_attempts_a_minute();
    let client = reqwest::Client::new();
    let mut statuses = Vec::new();
    for n in 0..8 {
        let answer = client
            .post(format!("{}/v1/users", server.base))
            .json(&json!({"email": format!("flood{n}@example.com"), "password": "correct horse battery", "nickname": format!("Flood{n}")}))
            .send()
            .await
            .unwrap();
        if answer.status() == 429 {
            assert!(answer.headers().contains_key("retry-after"));
        }
        statuses.push(answer.status().as_u16());
    }
    assert_eq!(statuses[..5], [201; 5], "{statuses:?}");
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
}

/// Guessing a password through the account's deletion counts with the other password attempts
/// of the address: a stolen token cannot try passwords at will.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_account_cannot_be_used_to_guess_its_password() {
    let (server, _data) = five_password_attempts_a_minute();
    let api = Api::at(server);
    let victim = api.person("Guessed").await; // a sign-up and a log-in: 2 attempts
    let mut statuses = Vec::new();
    for n in 0..5 {
        let guess = json!({"password": format!("guess {n}")});
        let (status, _) = api
            .call(
                reqwest::Method::DELETE,
                "/v1/users/me",
                &victim.token,
                Some(guess),
            )
            .await;
        statuses.push(status);
    }
    assert_eq!(statuses, [422, 422, 422, 429, 429], "{statuses:?}");
    let (status, _) = api.get(&victim, "/v1/users/me").await;
    assert_eq!(status, 200, "the account is still there");
}

/// Commands about a message name a post of that room: another room's message, a seq of the
/// room that is not a post (its creation) and one past its end are 404, and change nothing.
async fn message_commands_take_only_posts_of_their_room(api: &Api) {
    let (ada, bea) = (api.person("Forger").await, api.person("Forged").await);
    let room = direct_room(api, &ada, "Forged").await;
    let other = group(api, &bea, &[]).await;
    let (_, elsewhere) = api.send(&bea, &other, "f-1", "not in that room").await;
    let room_id: uuid::Uuid = room.parse().unwrap();
    let ids = [
        elsewhere["id"].as_str().unwrap().to_owned(),
        msa_chat::domain::MessageId::of(room_id, 1).to_string(),
        msa_chat::domain::MessageId::of(room_id, 1_000_000).to_string(),
    ];
    for id in &ids {
        let message = format!("/v1/rooms/{room}/messages/{id}");
        for (method, path, body) in [
            (
                reqwest::Method::PATCH,
                message.clone(),
                Some(json!({"body": "forged"})),
            ),
            (reqwest::Method::DELETE, message.clone(), None),
            (
                reqwest::Method::PUT,
                format!("{message}/reactions/:tada:"),
                None,
            ),
            (reqwest::Method::GET, format!("{message}/edits"), None),
        ] {
            let (status, problem) = api.call(method.clone(), &path, &ada.token, body).await;
            assert_eq!(status, 404, "{method} {path}: {problem}");
        }
    }
    common::api::eventually(|| async {
        let (_, history) = api.get(&bea, &format!("/v1/rooms/{other}/messages")).await;
        history["items"][0]["body"] == "not in that room"
            && history["items"][0]["edited_at"].is_null()
    })
    .await;
}

/// A member kicked a moment ago changes nothing of the room's messages, their own included.
async fn a_member_kicked_a_moment_ago_changes_no_message(api: &Api) {
    let (owner, kicked) = (api.person("Kicker").await, api.person("Kickee").await);
    let room = group(api, &owner, &[&kicked]).await;
    let (_, mine) = api.send(&kicked, &room, "k-1", "my words").await;
    let message = format!("/v1/rooms/{room}/messages/{}", mine["id"].as_str().unwrap());
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            &format!("/v1/rooms/{room}/members/{}", kicked.id),
            &owner.token,
            None,
        )
        .await;
    assert_eq!(status, 204);
    for (method, path, body) in [
        (
            reqwest::Method::PATCH,
            message.clone(),
            Some(json!({"body": "changed after"})),
        ),
        (
            reqwest::Method::PUT,
            format!("{message}/reactions/:tada:"),
            None,
        ),
        (reqwest::Method::DELETE, message.clone(), None),
    ] {
        let (status, problem) = api.call(method.clone(), &path, &kicked.token, body).await;
        assert_eq!(status, 403, "{method} {path}: {problem}");
    }
    common::api::eventually(|| async {
        let (_, history) = api.get(&owner, &format!("/v1/rooms/{room}/messages")).await;
        history["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["body"] == "my words" && m["reactions"] == json!([]))
    })
    .await;
}

/// `PATCH /v1/rooms/{id}`: two admins changing the name and the topic at the same moment both
/// land (each is decided on the room's latest version, not on a view read before); a member
/// kicked a moment ago changes nothing; an outsider learns nothing of a direct room, not even
/// its kind; dot segments name no room; an oversized body is 413.
async fn room_details_change_under_races_and_only_for_members(api: &Api) {
    let (owner, admin, kicked) = (
        api.person("Namer").await,
        api.person("Topicer").await,
        api.person("Renamed").await,
    );
    let room = group(api, &owner, &[&admin, &kicked]).await;
    let path = format!("/v1/rooms/{room}");
    let role = Some(json!({"role": "admin"}));
    let promote = format!("{path}/members/{}/role", admin.id);
    let promoted = api
        .call(reqwest::Method::PUT, &promote, &owner.token, role)
        .await;
    assert_eq!(promoted.0, 204, "{}", promoted.1);
    let kick = format!("{path}/members/{}", kicked.id);
    assert_eq!(
        api.call(reqwest::Method::DELETE, &kick, &owner.token, None)
            .await
            .0,
        204
    );
    for round in 0..5 {
        let (name, topic) = (format!("Den {round}"), format!("topic {round}"));
        let (renamed, retopiced) = tokio::join!(
            api.call(
                reqwest::Method::PATCH,
                &path,
                &owner.token,
                Some(json!({"name": name}))
            ),
            api.call(
                reqwest::Method::PATCH,
                &path,
                &admin.token,
                Some(json!({"topic": topic}))
            ),
        );
        assert_eq!(
            (renamed.0, retopiced.0),
            (200, 200),
            "{renamed:?} {retopiced:?}"
        );
        let (_, now) = api.get(&owner, &path).await;
        assert_eq!(
            (&now["name"], &now["topic"]),
            (&json!(name), &json!(topic)),
            "round {round}"
        );
    }
    let change = Some(json!({"name": "Mine now"}));
    let (status, problem) = api
        .call(reqwest::Method::PATCH, &path, &kicked.token, change.clone())
        .await;
    assert_eq!(status, 403, "{problem}");
    let direct = direct_room(api, &owner, "Topicer").await;
    let (status, problem) = api
        .call(
            reqwest::Method::PATCH,
            &format!("/v1/rooms/{direct}"),
            &kicked.token,
            change.clone(),
        )
        .await;
    assert_eq!(
        status, 403,
        "an outsider is told nothing of the room: {problem}"
    );
    // Joining it answers as joining a group one was not invited to.
    let join = |room: String| {
        let token = kicked.token.clone();
        async move {
            let path = format!("/v1/rooms/{room}/members");
            api.call(reqwest::Method::POST, &path, &token, Some(json!({})))
                .await
        }
    };
    let (uninvited_group, group) = join(room.clone()).await;
    assert_eq!(uninvited_group, 403, "{group}");
    let (uninvited_direct, direct) = join(direct).await;
    assert_eq!(
        (uninvited_direct, &direct["type"]),
        (uninvited_group, &group["type"]),
        "{direct} / {group}"
    );
    for walk in ["/v1/rooms/%2e%2e", "/v1/rooms/..%2f..%2fusers"] {
        let (status, _) = api
            .call(reqwest::Method::PATCH, walk, &owner.token, change.clone())
            .await;
        assert!(status == 404 || status == 400, "{walk}: {status}");
    }
    let huge = Some(json!({"topic": "x".repeat(3 * 1024 * 1024)}));
    assert_eq!(
        api.call(reqwest::Method::PATCH, &path, &owner.token, huge)
            .await
            .0,
        413
    );
}

/// Paths that, taken as they were spelled, lead out of a public prefix: refused before routing.
const WALKS_AROUND: [&str; 9] = [
    "/v1/rooms/x/../../../internal/v1/rooms/{room}/messages",
    "/v1/rooms/x/%2e%2e/%2e%2e/%2e%2e/internal/v1/rooms/{room}/messages",
    "/v1/rooms/x/%2E%2E/%2E%2E/%2E%2E/internal/v1/rooms/{room}/messages",
    "/v1/rooms/x/.%2e/.%2e/.%2e/internal/v1/rooms/{room}/messages",
    "/v1/rooms/x%2f..%2f..%2f..%2finternal/v1/rooms/{room}/messages",
    "/v1/rooms/x/..%5c..%5c..%5cinternal/v1/rooms/{room}/messages",
    "/v1/users/../../metrics",
    "/v1/users/%2e%2e/%2e%2e/metrics",
    "/v1/rooms//../internal/v1/rooms/{room}/messages",
];

/// Through the gateway no spelling of a dot segment reaches an internal endpoint or `/metrics`;
/// each is a 400 problem and nothing is posted.
async fn dot_segments_never_leave_the_public_api(deployment: &Microservices, api: &Api) {
    let ada = api.person("Walker").await;
    let _bob = api.person("Walked").await;
    let room = direct_room(api, &ada, "Walked").await;
    let before = free_left(api, &ada).await;
    for path in WALKS_AROUND {
        let path = path.replace("{room}", &room);
        // A client that sends the path as spelled (reqwest would resolve the dots itself).
        let answer = raw_request(&deployment.gateway, "POST", &path, &ada.token).await;
        assert_eq!(answer.0, 400, "{path}: {}", answer.1);
        assert!(
            answer.1.contains("application/problem+json"),
            "{path}: {}",
            answer.1
        );
        let answer = raw_request(&deployment.gateway, "GET", &path, &ada.token).await;
        assert_eq!(answer.0, 400, "{path}: {}", answer.1);
    }
    let (_, history) = api.get(&ada, &format!("/v1/rooms/{room}/messages")).await;
    assert_eq!(history["items"], json!([]), "nothing was posted");
    assert_eq!(free_left(api, &ada).await, before);
}

/// Internal endpoints answer services only: an end user who reaches one (a neighbour on the
/// network, a proxy misconfigured) is refused with 403, and without a token with 401.
async fn internal_endpoints_refuse_end_users(deployment: &Microservices, api: &Api) {
    let eve = api.person("Eve").await;
    let _bob = api.person("Bobby").await;
    let room = direct_room(api, &eve, "Bobby").await;
    let client = reqwest::Client::new();
    let post = |token: Option<&str>| {
        let mut request = client
            .post(format!(
                "{}/internal/v1/rooms/{room}/messages",
                deployment.chat
            ))
            .json(&json!({"sender": eve.id, "txn_id": "free", "body": "free message"}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request
    };
    assert_eq!(api.answer(post(Some(&eve.token))).await.0, 403);
    assert_eq!(api.answer(post(None)).await.0, 401);
    assert_eq!(api.answer(post(Some("forged.token.here"))).await.0, 401);
    let spend = client
        .post(format!(
            "{}/internal/v1/wallets/{}/spends",
            deployment.payment, eve.id
        ))
        .bearer_auth(&eve.token)
        .json(&json!({"spend_key": "mine"}));
    assert_eq!(api.answer(spend).await.0, 403);
    let refund = client
        .delete(format!(
            "{}/internal/v1/wallets/{}/spends/message:{room}:t",
            deployment.payment, eve.id
        ))
        .bearer_auth(&eve.token);
    assert_eq!(api.answer(refund).await.0, 403);
    // Asking what became of sends, or withdrawing one (which would let its credit be given back
    // by the recovery), is user-chat's alone too.
    let send = json!({"sender_id": eve.id, "room_id": room, "txn_id": "paid"});
    for (path, body) in [
        ("outcomes", json!({ "sends": [send.clone()] })),
        ("withdrawals", send.clone()),
    ] {
        for token in [Some(eve.token.as_str()), None] {
            let mut request = client
                .post(format!("{}/internal/v1/sends/{path}", deployment.chat))
                .json(&body);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let expected = if token.is_some() { 403 } else { 401 };
            assert_eq!(api.answer(request).await.0, expected, "{path}");
        }
    }
    // And the way through user-chat, with the service's identity, still works.
    let (status, posted) = api.send(&eve, &room, "paid", "a paid message").await;
    assert_eq!(status, 201, "{posted}");
}

/// The export's internal record routes answer services only: an end user asking chat or payment
/// for someone's records with their own token is 403 (401 without one), for any part; the
/// gateway does not route them at all.
async fn export_records_answer_services_only(deployment: &Microservices, api: &Api) {
    let (eve, bob) = (api.person("Evelyn").await, api.person("Bobbie").await);
    let client = reqwest::Client::new();
    for (base, part) in [
        (&deployment.chat, "messages"),
        (&deployment.chat, "rooms"),
        (&deployment.chat, "reactions"),
        (&deployment.chat, "read_markers"),
        (&deployment.chat, "invitations"),
        (&deployment.payment, "payments"),
        (&deployment.payment, "ledger"),
    ] {
        for whose in [&bob.id, &eve.id] {
            let url = format!("{base}/internal/v1/users/{whose}/records/{part}");
            let with_token = client.get(&url).bearer_auth(&eve.token);
            assert_eq!(api.answer(with_token).await.0, 403, "{url}");
            assert_eq!(api.answer(client.get(&url)).await.0, 401, "{url}");
        }
    }
    let (status, _) = api
        .get(
            &eve,
            &format!("/internal/v1/users/{}/records/messages", bob.id),
        )
        .await;
    assert_eq!(status, 404, "the gateway routes no /internal path");
}

/// The money paths whose input changed (confirm's `payment_key`, a refund's `reason`) refuse a
/// caller erased a moment ago, whatever the body says: once the deny list has it (within about
/// two seconds, docs/security.md) the token is void before the input is looked at.
async fn an_erased_payer_confirms_and_refunds_nothing(api: &Api) {
    let payer = api.someone("Payer").await;
    let (status, payment) = api.request_payment(&payer, "erased-1", "credits-100").await;
    assert_eq!(status, 201, "{payment}");
    let id = payment["id"].as_str().unwrap();
    erase(api, &payer).await;
    let payment_path = format!("/v1/payments/{id}");
    common::api::eventually(|| async { api.get(&payer, &payment_path).await.0 == 401 }).await;
    let confirm = format!("/v1/payments/{id}/confirm");
    let refund = format!("/v1/payments/{id}/refunds");
    for (path, body) in [
        (
            &confirm,
            json!({"payment_key": "approve-erased", "amount": 1000}),
        ),
        (&confirm, json!({"payment_key": " ", "amount": 1000})),
        (&refund, json!({"amount": 1000, "reason": "gone"})),
        (&refund, json!({"amount": 1000, "reason": ""})),
    ] {
        let (status, problem) = api
            .call(reqwest::Method::POST, path, &payer.token, Some(body))
            .await;
        assert_eq!(status, 401, "{path}: {problem}");
    }
}

/// An erased account has nothing to export: its tokens are refused (401) everywhere, the
/// export's included, as documented.
async fn an_erased_accounts_export_is_refused(api: &Api, prefix: &str) {
    let gone = api.person(&format!("{prefix}Gone")).await;
    let (status, export) = api.get(&gone, "/v1/users/me/export").await;
    assert_eq!(status, 200, "{export}");
    erase(api, &gone).await;
    common::api::eventually(|| async { api.get(&gone, "/v1/users/me/export").await.0 == 401 })
        .await;
}

/// Erases `who`'s account, confirmed with its password.
async fn erase(api: &Api, who: &Person) {
    let (status, _) = api
        .call(
            reqwest::Method::DELETE,
            "/v1/users/me",
            &who.token,
            Some(json!({"password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, 204);
}

/// Sends `method path` with the path exactly as given (no URL parsing on the way) and returns
/// the status and the raw response head and body.
async fn raw_request(base: &str, method: &str, path: &str, token: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let body = r#"{"txn_id":"walk","body":"free"}"#;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abuse_of_the_gateway_deployment() {
    // (Many people sign up from this one address.)
    let timeout: &[&str] = &[
        "--header-read-timeout",
        "1s",
        "--password-attempts-per-minute",
        "100000",
    ];
    let Some((deployment, gateway)) = Microservices::start(&[("gateway", timeout)]).await else {
        return;
    };
    let api = Api::at(gateway);
    a_trickled_request_is_cut_off(&deployment.gateway).await;
    a_body_naming_a_key_twice_is_refused(&api).await;
    message_commands_take_only_posts_of_their_room(&api).await;
    a_member_kicked_a_moment_ago_changes_no_message(&api).await;
    dot_segments_never_leave_the_public_api(&deployment, &api).await;
    internal_endpoints_refuse_end_users(&deployment, &api).await;
    export_records_answer_services_only(&deployment, &api).await;
    an_erased_accounts_export_is_refused(&api, "G").await;
    a_reused_txn_id_gives_no_credit_back(&api, "G").await;
    a_txn_id_raced_by_two_sends_posts_nothing_for_free(&api, "G").await;
}

/// The auth matrix: every route the API document says needs a token refuses, with 401 and
/// `WWW-Authenticate: Bearer`, no token, an expired one, one signed with a key not the user
/// service's, one with `alg: none`, a refresh token used as an access token, and garbage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_of_the_single_server_refuses_bad_tokens() {
    let data = tempfile::tempdir().unwrap();
    let data = data.path().to_str().unwrap();
    auth_matrix(&Api::start(&[
        "--data-dir",
        data,
        "--access-token-ttl",
        "1s",
    ]))
    .await;
}

/// The same matrix through the gateway (its own token checks, then each service's).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_behind_the_gateway_refuses_bad_tokens() {
    let Some((_deployment, gateway)) =
        Microservices::start(&[("user", &["--access-token-ttl", "1s"])]).await
    else {
        return;
    };
    auth_matrix(&Api::at(gateway)).await;
}

/// Runs the matrix against a server whose access tokens live 1 s.
async fn auth_matrix(api: &Api) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let email = "matrix@example.com";
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            "/v1/users",
            "",
            Some(
                json!({"email": email, "password": "correct horse battery", "nickname": "Matrix"}),
            ),
        )
        .await;
    assert_eq!(status, 201);
    let (_, tokens) = api
        .call(
            reqwest::Method::POST,
            "/v1/auth/token",
            "",
            Some(json!({"email": email, "password": "correct horse battery"})),
        )
        .await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let (header, claims) = {
        let mut parts = access.split('.');
        (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        )
    };
    let forged = format!("{header}.{claims}.{}", URL_SAFE_NO_PAD.encode([7u8; 64]));
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let alg_none = format!("{none_header}.{claims}.");
    // Past its 1 s life and the 5 s leeway.
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let bad_tokens = [
        ("none", None),
        ("expired", Some(access.as_str())),
        ("forged", Some(forged.as_str())),
        ("alg none", Some(alg_none.as_str())),
        ("refresh as access", Some(refresh.as_str())),
        ("garbage", Some("not-a-token")),
    ];

    let document: serde_json::Value = reqwest::get(format!("{}/openapi.json", api.server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let secured = operation["security"]
                .as_array()
                .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
            // Kakao's start takes a token only to link accounts; without one it starts a login.
            if !secured || path.starts_with("/v1/auth/kakao") {
                continue;
            }
            let concrete = path
                .split('/')
                .map(|segment| {
                    if segment.starts_with('{') {
                        uuid::Uuid::now_v7().to_string()
                    } else {
                        segment.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            for (kind, token) in bad_tokens {
                let mut request = api
                    .client
                    .request(method.clone(), format!("{}{concrete}", api.server.base))
                    .json(&json!({}));
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let answer = request.send().await.unwrap();
                assert_eq!(
                    answer.status(),
                    401,
                    "{method} {path} with {kind} token: {:?}",
                    answer.text().await
                );
                assert!(
                    answer.headers().contains_key("www-authenticate"),
                    "{method} {path}"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked > 100,
        "only {checked} checks: the document lists few routes"
    );
}

/// The last column of the auth matrix, another user's token: every route about a room, a
/// message or a payment, called by someone who is not in the room and does not own the payment,
/// changes nothing and shows nothing (never a 2xx).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_lets_a_stranger_at_another_users_room_message_or_payment() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(&["--data-dir", data.path().to_str().unwrap()]);
    let (ada, bob, eve) = (
        api.person("Ada").await,
        api.person("Bob").await,
        api.person("Eve").await,
    );
    let room = group(&api, &ada, &[&bob]).await;
    let (_, message) = api.send(&ada, &room, "m-1", "private").await;
    let message = message["id"].as_str().unwrap().to_owned();
    let (status, payment) = api.request_payment(&ada, "idor-1", "credits-100").await;
    assert_eq!(status, 201, "{payment}");
    let payment = payment["id"].as_str().unwrap().to_owned();

    let document: serde_json::Value = reqwest::get(format!("{}/openapi.json", api.server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        let about_rooms = path.starts_with("/v1/rooms/{id}") || path.starts_with("/v1/invites/");
        let about_payments = path.starts_with("/v1/payments/{id}");
        if !about_rooms && !about_payments {
            continue;
        }
        let concrete = path
            .replace("{id}", if about_rooms { &room } else { &payment })
            .replace("{room_id}", &room)
            .replace("{message_id}", &message)
            .replace("{user_id}", &ada.id)
            .replace("{emoji}", "%F0%9F%91%8D");
        for method in item.as_object().unwrap().keys() {
            let method: reqwest::Method = method.to_uppercase().parse().unwrap();
            // Bodies that would be valid, so a refusal is about who asks, not what they sent.
            let body = json!({
                "txn_id": "eve-1", "body": "from eve", "user_id": eve.id, "seq": 1,
                "role": "owner", "name": "Eve's", "payment_key": "approve-eve", "amount": 1000,
                "reason": "mine now"
            });
            let request = api
                .client
                .request(method.clone(), format!("{}{concrete}", api.server.base))
                .bearer_auth(&eve.token)
                .header("idempotency-key", "eve-1")
                .json(&body);
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            assert!(
                !(200..300).contains(&status),
                "{method} {path} answered {status} to a stranger: {:?}",
                answer.text().await
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} routes checked");
    // And nothing changed: the room has one message, the payment is still only requested.
    let (_, history) = api.get(&ada, &format!("/v1/rooms/{room}/messages")).await;
    assert_eq!(history["items"].as_array().unwrap().len(), 1, "{history}");
    let (_, mine) = api.get(&ada, &format!("/v1/payments/{payment}")).await;
    assert_eq!(mine["status"], "requested", "{mine}");
}

/// Behind a load balancer the gateway counts each client by the address the balancer names,
/// never all clients as one (and, from a peer it does not trust, it believes no such header).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn behind_a_trusted_proxy_the_gateway_limits_each_client_not_all_together() {
    let limits: &[&str] = &[
        "--trusted-proxies",
        "127.0.0.1/8",
        "--password-attempts-per-minute",
        "3",
    ];
    let Some((_deployment, gateway)) = Microservices::start(&[("gateway", limits)]).await else {
        return;
    };
    let client = reqwest::Client::new();
    let attempt = |from: &'static str, n: usize| {
        let request = client
            .post(format!("{}/v1/auth/token", gateway.base))
            .header("x-forwarded-for", from)
            .json(&json!({"email": format!("nobody{n}@example.com"), "password": "wrong wrong wrong"}));
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let mut first = Vec::new();
    for n in 0..4 {
        first.push(attempt("198.51.100.1", n).await);
    }
    assert!(first[..3].iter().all(|s| *s != 429), "{first:?}");
    assert_eq!(first[3], 429, "{first:?}");
    // Another client behind the same balancer has a budget of its own.
    assert_ne!(attempt("198.51.100.2", 9).await, 429);
}
