//! The chat load of `msa chaos`: people in rooms sending on a schedule as a patient client
//! would (a failed send is tried again with the same `txn_id` until it is answered or the client
//! gives up), each reading their stream and resuming it from the last cursor after any drop.
//! Everything sent, answered and received is written down for the audit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use msa_bench::chat::{make_rooms, people_with_credits, Bench, User};

/// How long a client keeps trying one send before it gives up on it.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

/// What became of a send, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    InFlight,
    /// Answered 201/200: the message is posted (at `acknowledged` after the load's start).
    Acknowledged,
    /// Refused for good (a 4xx other than 402/429), e.g. 409 after the send was withdrawn.
    Refused(u16),
    /// Still failing when the client gave up.
    GaveUp,
}

pub struct Send {
    pub person: usize,
    pub outcome: Outcome,
    /// When the attempt that was acknowledged started and ended (since the load's start).
    pub acknowledged: Option<(Duration, Duration)>,
}

/// What the clients saw.
#[derive(Default)]
pub struct Record {
    /// By txn_id.
    pub sends: HashMap<String, Send>,
    /// How many times each person's stream carried each message (by body).
    pub deliveries: HashMap<(usize, String), u32>,
    /// Failed attempts, by when (since the load's start) and what came back.
    pub failures: Vec<(Duration, String)>,
}

pub struct Person {
    pub user: User,
    pub room: usize,
    buying: AtomicBool,
    bought: AtomicU64,
}

pub struct Load {
    pub bench: Bench,
    pub people: Vec<Person>,
    /// Room ids, and the people in each.
    pub rooms: Vec<(String, Vec<usize>)>,
    pub record: Mutex<Record>,
    pub started: Instant,
    pub reconnects: AtomicU64,
    /// Streams that have said they are ready once.
    pub streams_ready: AtomicU64,
    /// Sends being tried at once, at most [`MAX_IN_FLIGHT`].
    sending: Arc<tokio::sync::Semaphore>,
    /// Sends not made because [`MAX_IN_FLIGHT`] were being tried (during an outage).
    pub held_back: AtomicU64,
}

/// Sends the clients try at once: during an outage every send waits for its answer or its
/// timeout, and the client process has a limited number of sockets.
const MAX_IN_FLIGHT: usize = 4_096;

/// The body of the message a txn_id sends: unique, so history and streams name it.
pub fn body_of(txn_id: &str) -> String {
    format!("{BODY_PREFIX}{txn_id}")
}

/// The txn_id a body was sent under (the body itself when it is none of ours).
pub fn txn_of(body: &str) -> &str {
    body.strip_prefix(BODY_PREFIX).unwrap_or(body)
}

const BODY_PREFIX: &str = "chaos ";

impl Load {
    /// Signs `users` people up, buys them credits and puts them in rooms of `room_size`.
    pub async fn set_up(target: &str, users: usize, room_size: usize) -> Result<Arc<Load>> {
        let bench = Bench {
            target: target.to_owned(),
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(users)
                .timeout(Duration::from_secs(15))
                .build()?,
        };
        let users_made = people_with_credits(&bench, "chaos", users).await?;
        let ids = make_rooms(&bench, &users_made, room_size).await?;
        let people = users_made
            .into_iter()
            .enumerate()
            .map(|(i, user)| Person {
                user,
                room: i / room_size,
                buying: AtomicBool::new(false),
                bought: AtomicU64::new(1),
            })
            .collect::<Vec<_>>();
        let rooms = ids
            .into_iter()
            .enumerate()
            .map(|(r, id)| {
                let members = (0..people.len()).filter(|&i| people[i].room == r).collect();
                (id, members)
            })
            .collect();
        Ok(Arc::new(Load {
            bench,
            people,
            rooms,
            record: Mutex::new(Record::default()),
            started: Instant::now(),
            reconnects: AtomicU64::new(0),
            streams_ready: AtomicU64::new(0),
            sending: Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT)),
            held_back: AtomicU64::new(0),
        }))
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn failed(&self, what: String) {
        let at = self.now();
        self.record.lock().unwrap().failures.push((at, what));
    }

    /// Reads `person`'s stream until `stop`, resuming after every drop from the last cursor.
    pub async fn read_stream(
        self: Arc<Self>,
        person: usize,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut cursor: Option<String> = None;
        let mut first = true;
        loop {
            if *stop.borrow() {
                return;
            }
            if !first {
                self.reconnects.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            first = false;
            let socket = match self.open_stream(person, cursor.as_deref()).await {
                Ok(socket) => socket,
                Err(_) => continue,
            };
            let (_, mut frames) = socket.split();
            loop {
                let frame = tokio::select! {
                    _ = stop.wait_for(|stop| *stop) => return,
                    frame = tokio::time::timeout(Duration::from_secs(90), frames.next()) => frame,
                };
                let Ok(Some(Ok(Message::Text(text)))) = frame else {
                    match frame {
                        Ok(Some(Ok(_))) => continue,
                        _ => break,
                    }
                };
                let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
                    continue;
                };
                if frame["type"] == "MessagePosted" {
                    if let Some(body) = frame["data"]["body"].as_str() {
                        let mut record = self.record.lock().unwrap();
                        *record
                            .deliveries
                            .entry((person, body.to_owned()))
                            .or_default() += 1;
                    }
                }
                // The ready frame's cursor is where a fresh stream starts; after a resume,
                // only the events' cursors say how far it got.
                if frame["type"] != "ready" || cursor.is_none() {
                    if frame["type"] == "ready" {
                        self.streams_ready.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(at) = frame["cursor"].as_str() {
                        cursor = Some(at.to_owned());
                    }
                }
            }
        }
    }

    async fn open_stream(
        &self,
        person: usize,
        since: Option<&str>,
    ) -> Result<
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
    > {
        let mut url = format!("{}/v1/stream", self.bench.target.replacen("http", "ws", 1));
        if let Some(since) = since {
            url.push_str(&format!("?since={since}"));
        }
        let mut request = url.into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.people[person].user.token).parse()?,
        );
        let (socket, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(request),
        )
        .await??;
        Ok(socket)
    }

    /// `person` sends every `every` until `stop`.
    pub async fn send_on_schedule(
        self: Arc<Self>,
        person: usize,
        every: Duration,
        offset: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        tokio::time::sleep(offset).await;
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut in_flight = tokio::task::JoinSet::new();
        for n in 1.. {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => break,
                _ = ticks.tick() => {}
            }
            let load = self.clone();
            let Ok(place) = self.sending.clone().try_acquire_owned() else {
                self.held_back.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            in_flight.spawn(async move {
                load.send(person, format!("p{person}-{n}")).await;
                drop(place);
            });
            while in_flight.try_join_next().is_some() {}
        }
        while in_flight.join_next().await.is_some() {}
    }

    /// One send, tried again with the same txn_id until it is answered for good.
    async fn send(&self, person: usize, txn_id: String) {
        let who = &self.people[person];
        let path = format!("/v1/rooms/{}/messages", self.rooms[who.room].0);
        self.record.lock().unwrap().sends.insert(
            txn_id.clone(),
            Send {
                person,
                outcome: Outcome::InFlight,
                acknowledged: None,
            },
        );
        let give_up = Instant::now() + GIVE_UP_AFTER;
        let mut pause = Duration::from_millis(250);
        let outcome = loop {
            let attempt = self.now();
            let answer = self
                .bench
                .call(
                    reqwest::Method::POST,
                    &path,
                    Some(&who.user.token),
                    Some(json!({"txn_id": txn_id, "body": body_of(&txn_id)})),
                )
                .await;
            match answer {
                Ok((200 | 201, _)) => {
                    let done = self.now();
                    let mut record = self.record.lock().unwrap();
                    if let Some(send) = record.sends.get_mut(&txn_id) {
                        send.acknowledged = Some((attempt, done));
                    }
                    break Outcome::Acknowledged;
                }
                Ok((402, _)) => self.buy_more(person).await,
                Ok((status, answer)) if status == 429 || status >= 500 => {
                    self.failed(answered(status, &answer));
                }
                Ok((status, answer)) => {
                    self.failed(answered(status, &answer));
                    break Outcome::Refused(status);
                }
                Err(error) => self.failed(kind_of(&error)),
            }
            if Instant::now() + pause > give_up {
                break Outcome::GaveUp;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        };
        if let Some(send) = self.record.lock().unwrap().sends.get_mut(&txn_id) {
            send.outcome = outcome;
        }
    }

    /// Buys another pack of credits for `person`, unless a purchase is already under way.
    async fn buy_more(&self, person: usize) {
        let who = &self.people[person];
        if who.buying.swap(true, Ordering::AcqRel) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            return;
        }
        let n = who.bought.fetch_add(1, Ordering::Relaxed);
        let key = format!("chaos-{}-more-{n}", who.user.id);
        if let Err(error) = self.bench.buy_credits(&who.user, &key).await {
            self.failed(format!("buying credits: {error:#}"));
        }
        who.buying.store(false, Ordering::Release);
    }
}

/// A refusal as the report shows it: the status and the problem's detail, without the ids in it.
fn answered(status: u16, problem: &Value) -> String {
    let detail = problem["detail"].as_str().unwrap_or_default();
    let general: String = detail
        .split_whitespace()
        .filter(|word| !word.chars().any(|c| c.is_ascii_digit()))
        .collect::<Vec<_>>()
        .join(" ");
    format!("{status} {}", general.chars().take(70).collect::<String>())
}

/// What kind of transport failure an error was.
fn kind_of(error: &anyhow::Error) -> String {
    match error.downcast_ref::<reqwest::Error>() {
        Some(e) if e.is_timeout() => "timeout".into(),
        Some(e) if e.is_connect() => "connection refused".into(),
        Some(_) => "connection broken".into(),
        None => format!("{error:#}"),
    }
}
