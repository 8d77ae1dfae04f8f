//! The chat stream (`/v1/stream`) as a client meets it.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::api::{Api, Person};

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the stream; the token goes in the header, or (as browsers do) in the first frame.
pub async fn connect(api: &Api, who: &Person, since: Option<&str>, token_in_frame: bool) -> Socket {
    connect_with_cursor(api, who, since, token_in_frame).await.0
}

/// [`connect`], and the cursor of the stream's `ready` frame (where it starts).
pub async fn connect_with_cursor(
    api: &Api,
    who: &Person,
    since: Option<&str>,
    token_in_frame: bool,
) -> (Socket, String) {
    let base = api.server.base.replacen("http://", "ws://", 1);
    let url = match since {
        Some(cursor) => format!("{base}/v1/stream?since={cursor}"),
        None => format!("{base}/v1/stream"),
    };
    let mut request = url.into_client_request().unwrap();
    if !token_in_frame {
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", who.token).parse().unwrap(),
        );
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the stream opens");
    if token_in_frame {
        let auth = json!({"type": "auth", "token": who.token}).to_string();
        socket.send(Message::text(auth)).await.unwrap();
    }
    let ready = next_frame(&mut socket).await.expect("a ready frame");
    assert_eq!(ready["type"], "ready", "{ready}");
    let cursor = ready["cursor"].as_str().unwrap().to_owned();
    (socket, cursor)
}

/// The next JSON frame, or `None` after a quiet second.
pub async fn next_frame(socket: &mut Socket) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(1), socket.next())
            .await
            .ok()??
            .ok()?;
        match message {
            Message::Text(text) => return Some(serde_json::from_str(text.as_str()).unwrap()),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// Frames until `count` message frames arrived (or 10 s passed).
pub async fn messages(socket: &mut Socket, count: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while got.len() < count && tokio::time::Instant::now() < deadline {
        if let Some(frame) = next_frame(socket).await {
            if frame["type"] == "MessagePosted" {
                got.push(frame);
            }
        }
    }
    got
}
