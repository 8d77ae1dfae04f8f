//! Names that look like others and text that shows nothing: nicknames are folded (NFKC), refuse
//! invisible and bidirectional-control characters, and collide with look-alikes (409); a message
//! of only invisible characters is empty (422).

mod common;

use common::api::Api;
use reqwest::Method;
use serde_json::json;

async fn rename(api: &Api, token: &str, nickname: &str) -> (u16, serde_json::Value) {
    api.call(
        Method::PATCH,
        "/v1/users/me",
        token,
        Some(json!({"nickname": nickname})),
    )
    .await
}

#[tokio::test]
async fn look_alike_nicknames_collide_and_invisible_text_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let api = Api::start(&["--data-dir", data.path().to_str().unwrap()]);
    let paypal = api.person("paypal").await;
    let sign_up = |email: String, nickname: &str| {
        let body =
            json!({"email": email, "password": "correct horse battery", "nickname": nickname});
        async { api.call(Method::POST, "/v1/users", "", Some(body)).await }
    };
    for (i, look_alike) in [
        "p\u{0430}ypal",        // Cyrillic а
        "ｐａｙｐａｌ",         // full width
        "PayPal",               // case
        "pay_pal",              // a separator
        "\u{0440}\u{0430}ypal", // Cyrillic р and а
    ]
    .into_iter()
    .enumerate()
    {
        let (status, problem) = sign_up(format!("alike{i}@example.com"), look_alike).await;
        assert_eq!(status, 409, "{look_alike:?}: {problem}");
        assert!(problem["type"]
            .as_str()
            .unwrap()
            .ends_with("nickname-taken"));
    }
    for (i, hidden) in [
        "paypal\u{200B}",
        "\u{202E}lapyap",
        "pay\u{00AD}pal",
        "\u{3164}",
    ]
    .into_iter()
    .enumerate()
    {
        let (status, problem) = sign_up(format!("hidden{i}@example.com"), hidden).await;
        assert_eq!(status, 422, "{hidden:?}: {problem}");
        assert_eq!(problem["errors"][0]["field"], "nickname", "{problem}");
    }
    // The full-width spelling of a free nickname is stored folded.
    let (status, created) = sign_up("ada@example.com".into(), "Ａｄａ").await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["nickname"], "Ada");

    // A rename meets the same rules; a rename within one's own look is fine.
    let bob = api.person("Bob").await;
    assert_eq!(
        rename(&api, &bob.token, "p\u{0430}yp\u{0430}l").await.0,
        409
    );
    assert_eq!(rename(&api, &bob.token, "bob_").await.0, 200);
    assert_eq!(rename(&api, &bob.token, "Bob").await.0, 200);
    // Released by an erasure, the look is held too (for --nickname-hold, 30 days here): a
    // look-alike of the erased name is still refused.
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/users/me",
            &paypal.token,
            Some(json!({"password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(rename(&api, &bob.token, "p\u{0430}ypal").await.0, 409);

    // A message of only zero-width spaces is empty.
    let (status, room) = api
        .post(
            &bob,
            "/v1/rooms",
            json!({"kind": "group", "name": "Tea", "members": []}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let room = room["id"].as_str().unwrap();
    let (status, problem) = api.send(&bob, room, "t1", "\u{200B}\u{200B}\u{200B}").await;
    assert_eq!(status, 422, "{problem}");
    let (status, problem) = api.send(&bob, room, "t2", "see \u{202E}txt.exe").await;
    assert_eq!(status, 422, "{problem}");
    let (status, _) = api.send(&bob, room, "t3", "hello\u{200B}").await;
    assert_eq!(status, 201);
}
