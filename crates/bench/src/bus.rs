//! `msa bench bus`: what the outbox relay and the consumer runner cost on top of the broker.
//!
//! Four phases on one broker, in this invocation:
//! 1. baseline throughput: the relay's producer publishes N ready-made events, no store involved;
//! 2. relay throughput: N events wait in a fresh SQLite store; the relay publishes them all;
//! 3. baseline latency: at a fixed rate, produce one event and time it until a bare consumer
//!    receives it;
//! 4. end-to-end latency: at the same rate, append one event to the store and time it until the
//!    consumer runner's handler sees it (relay, broker, consumer group, inbox transaction).
//!
//! Latencies are measured from each event's scheduled time, so a stall delays the measured
//! events too instead of hiding (no coordinated omission).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use async_trait::async_trait;
use msa_kafka::{ensure_topics, KafkaConfig, KafkaPublisher, KafkaSubscription};
use msa_kernel::bus::{events_topic, EventPublisher, Subscription};
use msa_kernel::consumer::{Consumer, EventHandler, HandlerError, RetryPolicy};
use msa_kernel::relay::{Relay, RelaySettings};
use msa_kernel::repository::encode;
use msa_kernel::{EventMetadata, EventStore, LogPosition, RecordedEvent, StreamId};
use msa_sql::SqlReadModelStore;
use msa_sqlite::SqliteEventStore;
use serde::Serialize;
use tokio::sync::watch;
use uuid::Uuid;

use crate::cli::BenchBusArgs;
use crate::Latencies;
use msa_chat::domain::{MessageBody, RoomEvent};

/// Streams the events are spread over (keys, hence partitions).
const ROOMS: u64 = 100;

#[derive(Debug, Serialize)]
struct Report {
    partitions: i32,
    events: u64,
    relay_events_per_sec: f64,
    baseline_produce_per_sec: f64,
    throughput_ratio: f64,
    offered_per_sec: u32,
    duration_s: f64,
    end_to_end_delivered: u64,
    end_to_end_p50_ms: f64,
    end_to_end_p99_ms: f64,
    end_to_end_max_ms: f64,
    baseline_delivered: u64,
    baseline_p50_ms: f64,
    baseline_p99_ms: f64,
}

/// When each in-flight event was due, by event id; whoever receives it records the latency.
#[derive(Default, Clone)]
struct InFlight(Arc<Mutex<(HashMap<Uuid, Instant>, Latencies)>>);

impl InFlight {
    fn sent(&self, event_id: Uuid, due: Instant) {
        self.0.lock().unwrap().0.insert(event_id, due);
    }

    fn received(&self, event_id: Uuid) {
        let mut guard = self.0.lock().unwrap();
        let (due, latencies) = &mut *guard;
        if let Some(due) = due.remove(&event_id) {
            latencies.record(due.elapsed());
        }
    }

    fn latencies(&self) -> Latencies {
        let mut copy = Latencies::new();
        copy.merge(&self.0.lock().unwrap().1);
        copy
    }
}

/// The end-to-end phase's handler: notes that the event arrived.
struct Arrivals {
    in_flight: InFlight,
}

#[async_trait]
impl EventHandler<msa_sql::Tx> for Arrivals {
    fn name(&self) -> &str {
        "bench.arrivals"
    }

    async fn handle(&self, _: &mut msa_sql::Tx, event: &RecordedEvent) -> Result<(), HandlerError> {
        self.in_flight.received(event.event_id);
        Ok(())
    }
}

fn room_event(i: u64) -> Result<(StreamId, msa_kernel::NewEvent)> {
    let stream = StreamId::new("bench.room", format!("room-{:03}", i % ROOMS));
    let event = RoomEvent::MessagePosted {
        seq: i / ROOMS + 1,
        message_id: Uuid::now_v7(),
        sender_id: Uuid::now_v7(),
        body: MessageBody::parse("Shall we meet at the station at seven? I'll bring the tickets.")?,
        reply_to: None,
    };
    let metadata = EventMetadata::new_conversation(None);
    Ok((stream, encode(&event, &metadata)?))
}

/// A fresh store in `dir`: the events, and a query database for the relay's and consumer's
/// bookkeeping.
async fn open_store(
    dir: &std::path::Path,
) -> Result<(Arc<dyn EventStore>, Arc<SqlReadModelStore>)> {
    let events = SqliteEventStore::open(&dir.join("bench.events.sqlite")).await?;
    let query = SqlReadModelStore::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.join("bench.query.sqlite").display()
    ))
    .await?;
    Ok((Arc::new(events), Arc::new(query)))
}

/// Appends `count` events, one per append, `ROOMS` streams round-robin.
async fn append(events: &dyn EventStore, from: u64, count: u64) -> Result<Vec<RecordedEvent>> {
    let mut recorded = Vec::with_capacity(count as usize);
    for i in from..from + count {
        let (stream, event) = room_event(i)?;
        recorded.extend(events.append(&stream, i / ROOMS, vec![event], None).await?);
    }
    Ok(recorded)
}

pub async fn run(args: BenchBusArgs) -> Result<()> {
    let kafka = KafkaConfig::new(args.kafka_brokers.clone())
        .with_pairs(args.kafka_config.iter().map(String::as_str))
        .map_err(|error| anyhow::anyhow!("MSA_KAFKA_CONFIG (--kafka-config): {error}"))?;
    let run = format!("bench-{}", Uuid::now_v7().simple());
    let (relay_topic, baseline_topic) = (events_topic(&run), format!("{run}.baseline"));
    eprintln!(
        "bench bus: broker {}, {} partitions, {} events, {}/s for {:?}",
        kafka.brokers, args.kafka_partitions, args.events, args.rate, args.duration
    );
    ensure_topics(
        &kafka,
        &[relay_topic.clone(), baseline_topic.clone()],
        args.kafka_partitions,
    )
    .await
    .with_context(|| {
        format!(
            "MSA_KAFKA_BROKERS: cannot create topics on {}",
            kafka.brokers
        )
    })?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let (events, bookkeeping) = open_store(dir.path()).await?;
    let publisher = Arc::new(KafkaPublisher::new(&kafka, Duration::from_secs(30))?);
    let settings = RelaySettings::default();

    eprintln!("preparing {} events in the store…", args.events);
    let prepared = append(&*events, 0, args.events).await?;

    eprintln!(
        "phase 1/4: baseline, bare produce of {} events…",
        args.events
    );
    let started = Instant::now();
    for batch in prepared.chunks(settings.batch_size) {
        let published = publisher.publish(&baseline_topic, batch).await;
        if let Some(error) = published.error {
            anyhow::bail!("the baseline produce failed: {error}");
        }
    }
    let baseline_produce_per_sec = args.events as f64 / started.elapsed().as_secs_f64();

    eprintln!("phase 2/4: relay, store to broker, {} events…", args.events);
    let relay = Relay::new(
        &run,
        events.clone(),
        bookkeeping.clone(),
        publisher.clone(),
        settings,
    );
    let started = Instant::now();
    let mut relayed = 0;
    while relayed < args.events as usize {
        relayed += relay.step().await.context("the relay failed")?;
    }
    let relay_events_per_sec = args.events as f64 / started.elapsed().as_secs_f64();

    eprintln!(
        "phase 3/4: baseline, produce -> consume at {}/s…",
        args.rate
    );
    let baseline = InFlight::default();
    let mut subscription =
        KafkaSubscription::new(&kafka, &format!("{run}.probe"), &[&baseline_topic])?;
    // Drain phase 1's events, so only this phase's arrive late.
    drain(&mut subscription, args.events).await?;
    let receiver = {
        let baseline = baseline.clone();
        tokio::spawn(async move {
            while let Ok(delivery) = subscription.next().await {
                baseline.received(delivery.event.event_id);
            }
        })
    };
    let mut next = args.events;
    offer(args.rate, args.duration, |due| {
        let (publisher, baseline, topic) =
            (publisher.clone(), baseline.clone(), baseline_topic.clone());
        let i = next;
        next += 1;
        async move {
            let (stream, event) = room_event(i)?;
            // As the relay would publish it, without a store.
            let position = LogPosition {
                commit: 0,
                position: i as i64 + 1,
            };
            let recorded = event.recorded(stream, i / ROOMS + 1, position);
            baseline.sent(recorded.event_id, due);
            let published = publisher
                .publish(&topic, std::slice::from_ref(&recorded))
                .await;
            published.error.map_or(Ok(()), |e| Err(e.into()))
        }
    })
    .await?;
    settle(&baseline).await;
    receiver.abort();

    eprintln!(
        "phase 4/4: append -> relay -> consumer handler at {}/s…",
        args.rate
    );
    let arrivals = InFlight::default();
    let (stop, stopped) = watch::channel(false);
    let relay = Arc::new(relay);
    let relay_task = {
        let (relay, stopped) = (relay.clone(), stopped.clone());
        tokio::spawn(async move { relay.run(stopped).await })
    };
    let consumer_task = {
        let consumer = Consumer::new(
            bookkeeping.clone(),
            bookkeeping.clone(),
            RetryPolicy::default(),
        );
        let handler = Arrivals {
            in_flight: arrivals.clone(),
        };
        let mut subscription = KafkaSubscription::new(&kafka, "bench.arrivals", &[&relay_topic])?;
        drain(&mut subscription, args.events).await?;
        tokio::spawn(async move { consumer.run(&handler, &mut subscription, stopped).await })
    };
    let mut next = args.events;
    offer(args.rate, args.duration, |due| {
        let (events, arrivals) = (events.clone(), arrivals.clone());
        let i = next;
        next += 1;
        async move {
            let (stream, event) = room_event(i)?;
            arrivals.sent(event.event_id, due);
            events.append(&stream, i / ROOMS, vec![event], None).await?;
            Ok(())
        }
    })
    .await?;
    settle(&arrivals).await;
    let _ = stop.send(true);
    let _ = tokio::join!(relay_task, consumer_task);

    let (e2e, base) = (arrivals.latencies(), baseline.latencies());
    let report = Report {
        partitions: args.kafka_partitions,
        events: args.events,
        relay_events_per_sec,
        baseline_produce_per_sec,
        throughput_ratio: relay_events_per_sec / baseline_produce_per_sec.max(f64::MIN_POSITIVE),
        offered_per_sec: args.rate,
        duration_s: args.duration.as_secs_f64(),
        end_to_end_delivered: e2e.count(),
        end_to_end_p50_ms: e2e.quantile_ms(0.50),
        end_to_end_p99_ms: e2e.quantile_ms(0.99),
        end_to_end_max_ms: e2e.quantile_ms(1.0),
        baseline_delivered: base.count(),
        baseline_p50_ms: base.quantile_ms(0.50),
        baseline_p99_ms: base.quantile_ms(0.99),
    };
    print(&report, args.json)
}

fn print(report: &Report, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(report)?);
        return Ok(());
    }
    println!(
        "{:<48} {:>10.0}/s",
        "relay: store -> broker", report.relay_events_per_sec
    );
    println!(
        "{:<48} {:>10.0}/s",
        "baseline: bare produce", report.baseline_produce_per_sec
    );
    println!(
        "throughput ratio (relay / baseline): {:.2}",
        report.throughput_ratio
    );
    println!(
        "{:<48} p50 {:>7.2} ms   p99 {:>7.2} ms   ({} of {}/s x {:.0} s)",
        "append -> relay -> consumer handler",
        report.end_to_end_p50_ms,
        report.end_to_end_p99_ms,
        report.end_to_end_delivered,
        report.offered_per_sec,
        report.duration_s
    );
    println!(
        "{:<48} p50 {:>7.2} ms   p99 {:>7.2} ms   ({} delivered)",
        "baseline: produce -> consume",
        report.baseline_p50_ms,
        report.baseline_p99_ms,
        report.baseline_delivered
    );
    Ok(())
}

/// Calls `send(due)` `rate` times a second for `duration`, each at its due time (sends that fall
/// behind go at once, keeping their due time).
async fn offer<F, Fut>(rate: u32, duration: Duration, mut send: F) -> Result<()>
where
    F: FnMut(Instant) -> Fut,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    let start = Instant::now();
    let total = (rate as f64 * duration.as_secs_f64()) as u64;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..total {
        let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
        tokio::time::sleep_until(due.into()).await;
        tasks.spawn(send(due));
    }
    while let Some(sent) = tasks.join_next().await {
        sent??;
    }
    Ok(())
}

/// Waits (up to 30 s) until every event sent has arrived.
async fn settle(in_flight: &InFlight) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !in_flight.0.lock().unwrap().0.is_empty() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let missing = in_flight.0.lock().unwrap().0.len();
    if missing > 0 {
        tracing::warn!(
            missing,
            "events did not arrive within 30 s; they count as not delivered"
        );
    }
}

/// Receives (and commits) the `count` events already on the topic.
async fn drain(subscription: &mut KafkaSubscription, count: u64) -> Result<()> {
    for _ in 0..count {
        let delivery = tokio::time::timeout(Duration::from_secs(60), subscription.next())
            .await
            .context("the events of the throughput phase did not all arrive within 60 s")??;
        subscription.commit(&delivery).await?;
    }
    Ok(())
}
