//! A bus under test: a source context's stores, a consumer's query database, and the events
//! flowing between them either in-process or through a real broker via the outbox relay.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use msa_kafka::{ensure_topics, KafkaConfig, KafkaDeadLetters, KafkaPublisher, KafkaSubscription};
use msa_kernel::bus::{dead_letter_topic, events_topic, DeadLetter, DeadLetters, Subscription};
use msa_kernel::consumer::{EventHandler, HandlerError};
use msa_kernel::in_process::LogSubscription;
use msa_kernel::relay::{Relay, RelaySettings};
use msa_kernel::{RecordedEvent, Upcasters};
use msa_sql::SqlReadModelStore;
use sqlx::Row;
use tokio::sync::watch;
use uuid::Uuid;

use crate::{Broker, TestStores};

/// The source context of the events in these tests.
pub const CONTEXT: &str = "tally";

pub enum Transport {
    InProcess,
    Kafka {
        broker: Broker,
        stop_relay: watch::Sender<bool>,
    },
}

pub struct BusUnderTest {
    pub source: TestStores,
    pub consumer_db: Arc<SqlReadModelStore>,
    pub transport: Transport,
    _consumer_stores: TestStores,
}

impl BusUnderTest {
    pub async fn in_process() -> Self {
        let consumer = TestStores::sqlite(Upcasters::new()).await;
        Self {
            source: TestStores::sqlite(Upcasters::new()).await,
            consumer_db: consumer.read_models.clone(),
            transport: Transport::InProcess,
            _consumer_stores: consumer,
        }
    }

    /// Events go through tansu: the relay publishes them, consumer groups receive them.
    pub async fn kafka() -> Option<Self> {
        let broker = Broker::start().await?;
        let topic = events_topic(CONTEXT);
        ensure_topics(
            &broker.kafka(),
            &[topic.clone(), dead_letter_topic(&topic)],
            4,
        )
        .await
        .expect("create the topics");
        let source = TestStores::sqlite(Upcasters::new()).await;
        let stop_relay = start_relay(&source, &broker.kafka());
        let consumer = TestStores::sqlite(Upcasters::new()).await;
        Some(Self {
            source,
            consumer_db: consumer.read_models.clone(),
            transport: Transport::Kafka { broker, stop_relay },
            _consumer_stores: consumer,
        })
    }

    pub fn kafka_config(&self) -> Option<KafkaConfig> {
        match &self.transport {
            Transport::Kafka { broker, .. } => Some(broker.kafka()),
            Transport::InProcess => None,
        }
    }

    pub fn subscribe(&self, consumer: &str) -> Box<dyn Subscription> {
        match &self.transport {
            Transport::InProcess => Box::new(LogSubscription::new(
                CONTEXT,
                consumer,
                self.source.events.clone(),
                self.consumer_db.clone(),
            )),
            Transport::Kafka { broker, .. } => Box::new(
                KafkaSubscription::new(&broker.kafka(), consumer, &[&events_topic(CONTEXT)])
                    .expect("join the consumer group"),
            ),
        }
    }

    pub fn dead_letters(&self) -> Arc<dyn DeadLetters> {
        match &self.transport {
            Transport::InProcess => self.consumer_db.clone(),
            Transport::Kafka { broker, .. } => Arc::new(KafkaDeadLetters::new(
                KafkaPublisher::new(&broker.kafka(), Duration::from_secs(10)).unwrap(),
            )),
        }
    }

    /// The dead letters of `consumer`.
    pub async fn dead_letters_of(&self, consumer: &str) -> Vec<DeadLetter> {
        let all = self
            .dead_letters()
            .list(&events_topic(CONTEXT))
            .await
            .unwrap();
        all.into_iter().filter(|l| l.consumer == consumer).collect()
    }
}

impl Drop for BusUnderTest {
    fn drop(&mut self) {
        if let Transport::Kafka { stop_relay, .. } = &self.transport {
            let _ = stop_relay.send(true);
        }
    }
}

/// Runs the source's relay to `kafka` until the returned sender says stop.
pub fn start_relay(source: &TestStores, kafka: &KafkaConfig) -> watch::Sender<bool> {
    let (stop, stopped) = watch::channel(false);
    let relay = Relay::new(
        CONTEXT,
        source.events.clone(),
        source.read_models.clone(),
        Arc::new(KafkaPublisher::new(kafka, Duration::from_secs(5)).expect("a producer")),
        RelaySettings {
            idle_poll: Duration::from_millis(50),
            ..RelaySettings::default()
        },
    );
    tokio::spawn(async move { relay.run(stopped).await });
    stop
}

/// A handler whose effect is a row per event in `effects`, stamped with a global sequence so the
/// order of effects can be checked. It refuses the events it is told to treat as poison.
pub struct RecordingHandler {
    pub name: String,
    pub poison: Mutex<Vec<Uuid>>,
    sequence: Arc<AtomicU64>,
}

impl RecordingHandler {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            poison: Mutex::new(Vec::new()),
            sequence: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Creates the effects table (once per consumer database).
    pub async fn create_table(db: &SqlReadModelStore) {
        sqlx::query("CREATE TABLE IF NOT EXISTS effects (consumer TEXT NOT NULL, event_id TEXT NOT NULL, stream_id TEXT NOT NULL, version BIGINT NOT NULL, seq BIGINT NOT NULL)")
            .execute(db.pool())
            .await
            .unwrap();
    }
}

#[async_trait]
impl EventHandler<msa_sql::Tx> for RecordingHandler {
    fn name(&self) -> &str {
        &self.name
    }

    async fn handle(
        &self,
        tx: &mut msa_sql::Tx,
        event: &RecordedEvent,
    ) -> Result<(), HandlerError> {
        if self.poison.lock().unwrap().contains(&event.event_id) {
            return Err(HandlerError::new("this event is poison"));
        }
        sqlx::query("INSERT INTO effects (consumer, event_id, stream_id, version, seq) VALUES ($1, $2, $3, $4, $5)")
            .bind(&self.name)
            .bind(event.event_id.to_string())
            .bind(event.stream_id.as_str())
            .bind(event.version as i64)
            .bind(self.sequence.fetch_add(1, Ordering::SeqCst) as i64)
            .execute(&mut **tx)
            .await
            .map_err(HandlerError::new)?;
        Ok(())
    }
}

/// Every effect of `consumer`: event ids with how many effects each had, and per stream the
/// versions in the order their effects happened.
pub struct Effects {
    pub per_event: HashMap<String, usize>,
    pub per_stream: BTreeMap<String, Vec<u64>>,
}

impl Effects {
    /// Asserts `total` events had exactly one effect each, every stream's in version order.
    pub fn assert_each_once_in_order(&self, consumer: &str, total: usize) {
        assert_eq!(self.per_event.len(), total, "{consumer}: events handled");
        assert!(
            self.per_event.values().all(|&n| n == 1),
            "{consumer}: an effect happened twice"
        );
        for (stream, versions) in &self.per_stream {
            let expected: Vec<u64> = (1..=versions.len() as u64).collect();
            assert_eq!(versions, &expected, "{consumer}: {stream} out of order");
        }
    }
}

pub async fn effects(db: &SqlReadModelStore, consumer: &str) -> Effects {
    let rows = sqlx::query(
        "SELECT event_id, stream_id, version FROM effects WHERE consumer = $1 ORDER BY seq",
    )
    .bind(consumer)
    .fetch_all(db.pool())
    .await
    .unwrap();
    let mut found = Effects {
        per_event: HashMap::new(),
        per_stream: BTreeMap::new(),
    };
    for row in rows {
        *found.per_event.entry(row.get("event_id")).or_default() += 1;
        found
            .per_stream
            .entry(row.get("stream_id"))
            .or_default()
            .push(row.get::<i64, _>("version") as u64);
    }
    found
}

/// Waits until `consumer` has `count` effects (or the deadline passes).
pub async fn wait_for_effects(
    db: &SqlReadModelStore,
    consumer: &str,
    count: usize,
    within: Duration,
) {
    let deadline = Instant::now() + within;
    loop {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM effects WHERE consumer = $1")
            .bind(consumer)
            .fetch_one(db.pool())
            .await
            .unwrap();
        if n as usize >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{consumer}: {n} of {count} effects after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Appends `count` tally events round-robin over `aggregates` streams named `<prefix>-<n>`,
/// `every` apart, in the background.
pub fn keep_appending(
    events: Arc<dyn msa_kernel::EventStore>,
    prefix: &'static str,
    aggregates: u64,
    count: u64,
    every: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let metadata = msa_kernel::EventMetadata::new_conversation(None);
        for i in 0..count {
            let stream =
                msa_kernel::StreamId::new("tally.tally", format!("{prefix}-{}", i % aggregates));
            let event = msa_kernel::repository::encode(
                &crate::tally::TallyEvent::Added { amount: 1 },
                &metadata,
            )
            .unwrap();
            events
                .append(&stream, i / aggregates, vec![event], None)
                .await
                .unwrap();
            tokio::time::sleep(every).await;
        }
    })
}
