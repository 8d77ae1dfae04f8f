//! `msa bench chat`: users in rooms, each sending as fast as its sends are acknowledged (or, with
//! `--rate`, on a schedule), against a running deployment. Reports send throughput and latency, and delivery latency (send to the
//! other members' WebSockets), beside a baseline of bare HTTP round trips (`GET /healthz`) by the
//! same number of clients for the same time.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::cli::BenchChatArgs;
use crate::Latencies;

#[derive(Serialize)]
struct Report {
    target: String,
    users: u32,
    room_size: u32,
    duration_s: f64,
    /// Messages per second offered (`--rate`); none when each user sent as fast as acknowledged.
    offered_per_sec: Option<u32>,
    sent: u64,
    sends_per_sec: f64,
    send_p50_ms: f64,
    send_p99_ms: f64,
    delivered: u64,
    delivery_p50_ms: f64,
    delivery_p99_ms: f64,
    failed_sends: u64,
    /// Sends the deployment refused early (503 `overloaded`, 429): nothing was spent.
    refused_sends: u64,
    refused_per_sec: f64,
    /// WebSockets that closed before the end: messages to them are missing from the deliveries.
    streams_closed_early: usize,
    baseline_requests_per_sec: f64,
    baseline_p50_ms: f64,
    baseline_p99_ms: f64,
    /// Sends per second over bare round trips per second.
    throughput_ratio: f64,
}

#[derive(Clone)]
pub struct User {
    pub id: String,
    pub token: String,
}

/// A client of a deployment's public API (also `msa chaos`'s).
pub struct Bench {
    pub target: String,
    pub client: reqwest::Client,
}

impl Bench {
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<(u16, Value)> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.target));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        Self::answer(request, path).await
    }

    /// Sends `request` and reads its status and JSON answer (`null` when it is not JSON).
    pub async fn answer(request: reqwest::RequestBuilder, path: &str) -> Result<(u16, Value)> {
        let response = request
            .send()
            .await
            .with_context(|| format!("calling {path}"))?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    pub async fn sign_up(&self, email: &str, nickname: &str) -> Result<User> {
        let password = "bench password 1234";
        let (status, created) = self
            .call(
                reqwest::Method::POST,
                "/v1/users",
                None,
                Some(json!({"email": email, "password": password, "nickname": nickname})),
            )
            .await?;
        if status != 201 {
            bail!("signing up {email}: {status} {created}");
        }
        let (status, tokens) = self
            .call(
                reqwest::Method::POST,
                "/v1/auth/token",
                None,
                Some(json!({"email": email, "password": password})),
            )
            .await?;
        if status != 200 {
            bail!("logging in {email}: {status} {tokens}");
        }
        Ok(User {
            id: created["id"].as_str().unwrap_or_default().to_owned(),
            token: tokens["access_token"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        })
    }

    /// Buys the largest credit pack through the sandbox provider and waits for the credits.
    pub async fn buy_credits(&self, user: &User, key: &str) -> Result<()> {
        let (_, products) = self
            .call(reqwest::Method::GET, "/v1/products", None, None)
            .await?;
        let product = products["items"]
            .as_array()
            .and_then(|items| items.iter().max_by_key(|p| p["credits"].as_i64()))
            .context("the deployment sells no credit packs")?
            .clone();
        let request = self
            .client
            .post(format!("{}/v1/payments", self.target))
            .bearer_auth(&user.token)
            .header("Idempotency-Key", key)
            .json(&json!({"product_id": product["id"]}));
        let (status, payment) = Self::answer(request, "/v1/payments").await?;
        if status != 201 && status != 200 {
            bail!("asking to pay for credits: {status} {payment}");
        }
        let path = format!(
            "/v1/payments/{}/confirm",
            payment["id"].as_str().unwrap_or_default()
        );
        let confirm = json!({"payment_key": format!("approve-{key}"), "amount": product["amount"]});
        let (status, answer) = self
            .call(
                reqwest::Method::POST,
                &path,
                Some(&user.token),
                Some(confirm),
            )
            .await?;
        if status != 200 {
            bail!("buying credits: {status} {answer} (is the sandbox provider configured?)");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, wallet) = self
                .call(reqwest::Method::GET, "/v1/wallet", Some(&user.token), None)
                .await?;
            if wallet["balance"].as_i64().unwrap_or(0) > 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the bought credits did not arrive within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open_stream(target: &str, user: &User) -> Result<Socket> {
    let url = format!("{}/v1/stream", target.replacen("http", "ws", 1));
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {}", user.token).parse()?);
    // The client shares the machine with the server it measures: a small read buffer spares
    // it tungstenite's zeroing of 128 KiB before every read (see `WEBSOCKET_READ_BUFFER`).
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(msa_http::WEBSOCKET_READ_BUFFER);
    let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .context("opening /v1/stream")?;
    // The first frame says the stream is ready.
    tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .context("no ready frame within 10 s")?;
    Ok(socket)
}

/// One user sending messages to their room.
struct Sender {
    bench: Arc<Bench>,
    user: User,
    path: String,
    /// The clock send times are written in (the body starts with microseconds since it started).
    clock: Instant,
    sends: Arc<Mutex<Latencies>>,
    failed: Arc<std::sync::atomic::AtomicU64>,
    refused: Arc<std::sync::atomic::AtomicU64>,
}

impl Sender {
    /// Sends message `n`; out of credits, buys more for the next ones.
    async fn send(&self, n: u64) {
        let body = format!("{} message {n}", self.clock.elapsed().as_micros());
        let sent = Instant::now();
        let answer = self
            .bench
            .call(
                reqwest::Method::POST,
                &self.path,
                Some(&self.user.token),
                Some(json!({"txn_id": format!("t-{n}"), "body": body})),
            )
            .await;
        match answer {
            Ok((201, _)) => self.sends.lock().unwrap().record(sent.elapsed()),
            Ok((402, _)) => {
                let key = format!("bench-{}-more-{n}", self.user.id);
                let _ = self.bench.buy_credits(&self.user, &key).await;
            }
            Ok((429 | 503, problem)) if is_refusal(&problem) => {
                self.refused
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // As fast as acknowledged, a refused user waits a moment rather than spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ => {
                self.failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// Whether a problem says the deployment refused the send early, with nothing spent.
fn is_refusal(problem: &Value) -> bool {
    problem["type"]
        .as_str()
        .is_some_and(|kind| kind.ends_with(":overloaded") || kind.ends_with(":too-many-requests"))
}

/// When another member's message was sent (microseconds on the bench's clock, the start of its
/// body), if `message` is one.
fn sent_at(message: &Message, me: &str) -> Option<u64> {
    let Message::Text(text) = message else {
        return None;
    };
    let frame: Value = serde_json::from_str(text.as_str()).ok()?;
    if frame["type"] != "MessagePosted" || frame["data"]["sender_id"] == me {
        return None;
    }
    frame["data"]["body"]
        .as_str()?
        .split(' ')
        .next()?
        .parse()
        .ok()
}

/// Prints, each second while messages are sent, the sends answered and the messages delivered
/// in that second, so a stall shows as the second it happened in, not only in the p99.
async fn each_second(sends: Arc<Mutex<Latencies>>, deliveries: Arc<Mutex<Latencies>>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.tick().await;
    let (mut sent_before, mut delivered_before) = (Latencies::new(), Latencies::new());
    for second in 1.. {
        ticks.tick().await;
        let sent = sends.lock().unwrap().clone();
        let delivered = deliveries.lock().unwrap().clone();
        let (sent_now, delivered_now) =
            (sent.since(&sent_before), delivered.since(&delivered_before));
        let line = format!(
            "{second:>5} s  {:>6} sent, p99 {:>8.2} ms   {:>6} delivered, p99 {:>8.2} ms, max {:>8.2} ms\n",
            sent_now.count(),
            sent_now.quantile_ms(0.99),
            delivered_now.count(),
            delivered_now.quantile_ms(0.99),
            delivered_now.max_ms()
        );
        // One write, so the line reaches a pipe whole beside the report on stdout.
        let _ = std::io::stderr().write_all(line.as_bytes());
        (sent_before, delivered_before) = (sent, delivered);
    }
}

/// `users` people signed up (`<prefix>-<run>-<i>@example.com`, a run id of its own so runs
/// against one deployment do not collide), each with the largest credit pack bought.
pub async fn people_with_credits(bench: &Bench, prefix: &str, users: usize) -> Result<Vec<User>> {
    let run = &uuid::Uuid::now_v7().simple().to_string()[20..];
    each(users, 16, |i| async move {
        let user = bench
            .sign_up(
                &format!("{prefix}-{run}-{i}@example.com"),
                &format!("{prefix}{run}{i}"),
            )
            .await?;
        bench
            .buy_credits(&user, &format!("{prefix}-{run}-{i}"))
            .await?;
        Ok(user)
    })
    .await
}

/// Puts `people` in rooms of `room_size` (the first of each makes it and invites the others, who
/// join); returns the rooms' ids.
pub async fn make_rooms(bench: &Bench, people: &[User], room_size: usize) -> Result<Vec<String>> {
    let mut rooms = Vec::new();
    for room in people.chunks(room_size) {
        let members: Vec<&str> = room[1..].iter().map(|u| u.id.as_str()).collect();
        let (status, answer) = bench
            .call(
                reqwest::Method::POST,
                "/v1/rooms",
                Some(&room[0].token),
                Some(json!({"kind": "group", "name": "bench", "members": members})),
            )
            .await?;
        if status != 201 {
            bail!("creating a room: {status} {answer}");
        }
        // The others were invited; each joins.
        let id = answer["id"].as_str().unwrap_or_default().to_owned();
        let joins = format!("/v1/rooms/{id}/members");
        for member in &room[1..] {
            let (status, answer) = bench
                .call(reqwest::Method::POST, &joins, Some(&member.token), None)
                .await?;
            if status != 204 {
                bail!("joining a room: {status} {answer}");
            }
        }
        rooms.push(id);
    }
    Ok(rooms)
}

/// Runs `f(i)` for `0..n`, `at_once` at a time.
async fn each<T, F, Fut>(n: usize, at_once: usize, f: F) -> Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    futures::stream::iter((0..n).map(f))
        .buffered(at_once)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

pub async fn run(args: BenchChatArgs) -> Result<()> {
    let target = args.target.trim_end_matches('/').to_owned();
    let bench = Arc::new(Bench {
        target: target.clone(),
        client: reqwest::Client::builder()
            .pool_max_idle_per_host(args.users as usize)
            .timeout(Duration::from_secs(30))
            .build()?,
    });
    let users = args.users as usize;
    eprintln!(
        "setting up {users} users in rooms of {} at {target}…",
        args.room_size
    );
    let people = Arc::new(people_with_credits(&bench, "bench", users).await?);
    make_rooms(&bench, &people, args.room_size as usize).await?;
    let sockets = each(users, 32, |i| {
        let (target, people) = (target.clone(), people.clone());
        async move { open_stream(&target, &people[i]).await }
    })
    .await?;
    // The streams are read from now on, so they answer the server's heartbeats through the
    // baseline too (a stream left unread for a minute is closed as gone).
    let clock = Instant::now();
    let (sends, deliveries) = (
        Arc::new(Mutex::new(Latencies::new())),
        Arc::new(Mutex::new(Latencies::new())),
    );
    let (stop_reading, stopped) = tokio::sync::watch::channel(false);
    let readers: Vec<_> = sockets
        .into_iter()
        .zip(people.iter())
        .map(|(socket, me)| {
            let deliveries = deliveries.clone();
            let (me, mut stopped) = (me.id.clone(), stopped.clone());
            tokio::spawn(async move {
                let (mut sink, mut stream) = socket.split();
                let closed_early = loop {
                    let message = tokio::select! {
                        _ = stopped.wait_for(|stop| *stop) => break false,
                        message = stream.next() => message,
                    };
                    let Some(Ok(message)) = message else {
                        break true;
                    };
                    if let Some(sent_at) = sent_at(&message, &me) {
                        let now = clock.elapsed().as_micros() as u64;
                        deliveries
                            .lock()
                            .unwrap()
                            .record(Duration::from_micros(now.saturating_sub(sent_at)));
                    }
                };
                let _ = sink.close().await;
                closed_early
            })
        })
        .collect();

    eprintln!(
        "baseline: {users} clients calling GET /healthz for {:?}…",
        args.duration
    );
    let baseline = Arc::new(Mutex::new(Latencies::new()));
    let until = Instant::now() + args.duration;
    let started = Instant::now();
    let tasks: Vec<_> = (0..users)
        .map(|_| {
            let (bench, baseline) = (bench.clone(), baseline.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let sent = Instant::now();
                    if bench
                        .client
                        .get(format!("{}/healthz", bench.target))
                        .send()
                        .await
                        .is_ok()
                    {
                        baseline.lock().unwrap().record(sent.elapsed());
                    }
                }
            })
        })
        .collect();
    futures::future::join_all(tasks).await;
    let baseline_elapsed = started.elapsed().as_secs_f64();

    eprintln!("sending: {users} users for {:?}…", args.duration);
    let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let refused = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let until = Instant::now() + args.duration;
    let started = Instant::now();
    let progress = tokio::spawn(each_second(sends.clone(), deliveries.clone()));
    // Open loop (`--rate`): each user sends every `users / rate` seconds, starts staggered so
    // the offered load is even, whether or not its last send was answered.
    let pace = args
        .rate
        .map(|rate| Duration::from_secs_f64(users as f64 / rate as f64));
    let senders: Vec<_> = (0..users)
        .map(|i| {
            let (bench, people, sends, failed, refused) = (
                bench.clone(),
                people.clone(),
                sends.clone(),
                failed.clone(),
                refused.clone(),
            );
            tokio::spawn(async move {
                let user = &people[i];
                let rooms = bench
                    .call(reqwest::Method::GET, "/v1/rooms", Some(&user.token), None)
                    .await;
                let Some(room) = rooms
                    .ok()
                    .and_then(|(_, r)| r["items"][0]["id"].as_str().map(str::to_owned))
                else {
                    return;
                };
                let sender = Arc::new(Sender {
                    bench,
                    user: user.clone(),
                    path: format!("/v1/rooms/{room}/messages"),
                    clock,
                    sends,
                    failed,
                    refused,
                });
                let mut n = 0u64;
                match pace {
                    None => {
                        while Instant::now() < until {
                            n += 1;
                            sender.send(n).await;
                        }
                    }
                    Some(every) => {
                        tokio::time::sleep(every.mul_f64(i as f64 / users as f64)).await;
                        let mut ticks = tokio::time::interval(every);
                        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                        let mut in_flight = tokio::task::JoinSet::new();
                        loop {
                            ticks.tick().await;
                            if Instant::now() >= until {
                                break;
                            }
                            n += 1;
                            let sender = sender.clone();
                            in_flight.spawn(async move { sender.send(n).await });
                        }
                        while in_flight.join_next().await.is_some() {}
                    }
                }
            })
        })
        .collect();
    futures::future::join_all(senders).await;
    let elapsed = started.elapsed().as_secs_f64();
    // Messages still on their way arrive within the grace.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop_reading.send(true);
    let closed_early = futures::future::join_all(readers)
        .await
        .into_iter()
        .filter(|closed| !matches!(closed, Ok(false)))
        .count();
    progress.abort();
    // Stopped between lines, so none is cut by the report below.
    let _ = progress.await;

    let (sends, deliveries, baseline) = (
        sends.lock().unwrap(),
        deliveries.lock().unwrap(),
        baseline.lock().unwrap(),
    );
    let sends_per_sec = sends.count() as f64 / elapsed;
    let baseline_per_sec = baseline.count() as f64 / baseline_elapsed;
    let report = Report {
        target,
        users: args.users,
        room_size: args.room_size,
        duration_s: args.duration.as_secs_f64(),
        offered_per_sec: args.rate,
        sent: sends.count(),
        sends_per_sec,
        send_p50_ms: sends.quantile_ms(0.50),
        send_p99_ms: sends.quantile_ms(0.99),
        delivered: deliveries.count(),
        delivery_p50_ms: deliveries.quantile_ms(0.50),
        delivery_p99_ms: deliveries.quantile_ms(0.99),
        failed_sends: failed.load(std::sync::atomic::Ordering::Relaxed),
        refused_sends: refused.load(std::sync::atomic::Ordering::Relaxed),
        refused_per_sec: refused.load(std::sync::atomic::Ordering::Relaxed) as f64 / elapsed,
        streams_closed_early: closed_early,
        baseline_requests_per_sec: baseline_per_sec,
        baseline_p50_ms: baseline.quantile_ms(0.50),
        baseline_p99_ms: baseline.quantile_ms(0.99),
        throughput_ratio: sends_per_sec / baseline_per_sec.max(f64::MIN_POSITIVE),
    };
    if report.sent > 0 && report.delivered == 0 {
        bail!(
            "{} messages were sent and none reached another member's WebSocket",
            report.sent
        );
    }
    if closed_early > 0 {
        eprintln!(
            "warning: {closed_early} of {users} WebSockets closed before the end; \
             deliveries to them are missing"
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    if let Some(rate) = report.offered_per_sec {
        println!("{:<40} {:>10}/s", "offered", rate);
    }
    println!(
        "{:<40} {:>10.0}/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} sent, {} refused, {} failed)",
        "send (spend, post, acknowledge)",
        report.sends_per_sec,
        report.send_p50_ms,
        report.send_p99_ms,
        report.sent,
        report.refused_sends,
        report.failed_sends
    );
    println!(
        "{:<40} {:>12}   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} delivered)",
        "delivery (send -> others' WebSocket)",
        "",
        report.delivery_p50_ms,
        report.delivery_p99_ms,
        report.delivered
    );
    println!(
        "{:<40} {:>10.0}/s   p50 {:>7.2} ms   p99 {:>7.2} ms",
        "baseline: GET /healthz",
        report.baseline_requests_per_sec,
        report.baseline_p50_ms,
        report.baseline_p99_ms
    );
    println!(
        "throughput ratio (sends / bare round trips): {:.2}",
        report.throughput_ratio
    );
    Ok(())
}
