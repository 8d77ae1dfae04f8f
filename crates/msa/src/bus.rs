//! Composition of the event bus. Embedded default: nothing to start, consumers follow the source
//! context's log in-process. With `--kafka-brokers`: each context's topics are created at start
//! and its outbox relay publishes to them; when the brokers cannot be reached, commands are still
//! accepted and the events wait in the store (the relay and topic set-up retry and say so once).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use msa_kafka::{ensure_topics, KafkaConfig, KafkaDeadLetters, KafkaPublisher, KafkaSubscription};
use msa_kernel::bus::{dead_letter_topic, events_topic, DeadLetters, Subscription};
use msa_kernel::consumer::{Consumer, RetryPolicy};
use msa_kernel::in_process::LogSubscription;
use msa_kernel::relay::{Relay, RelaySettings};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cli::KafkaArgs;
use crate::storage::ContextStores;

/// How long a published event may wait for the brokers before the relay counts it as failed
/// and keeps it in the store for the next round.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The Kafka settings of the command line; `None` for the in-process bus.
pub fn kafka_config(args: &KafkaArgs) -> Result<Option<KafkaConfig>> {
    let Some(brokers) = &args.kafka_brokers else {
        return Ok(None);
    };
    let config = KafkaConfig::new(brokers.clone())
        .with_pairs(args.kafka_config.iter().map(String::as_str))
        .map_err(|error| anyhow::anyhow!("MSA_KAFKA_CONFIG (--kafka-config): {error}"))?;
    Ok(Some(config))
}

/// The topics of one context: its events and their dead letters.
pub fn topics_of(context: &str) -> Vec<String> {
    let events = events_topic(context);
    vec![dead_letter_topic(&events), events]
}

/// Where the consumers of `stores`' context put their dead letters.
pub fn dead_letters_for(
    kafka: Option<&KafkaConfig>,
    stores: &ContextStores,
) -> Result<Arc<dyn DeadLetters>> {
    Ok(match kafka {
        Some(kafka) => Arc::new(KafkaDeadLetters::new(
            KafkaPublisher::new(kafka, DELIVERY_TIMEOUT).context("creating a Kafka producer")?,
        )),
        None => stores.read_models.clone(),
    })
}

/// Running relays, one per context.
pub struct Relays {
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Relays {
    /// Stops every relay and waits until each gave its lease up.
    pub async fn shut_down(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Starts the relay of each context in `stores`; each first creates its context's topics
/// (retrying until the brokers answer).
pub fn start_relays(
    stores: &[ContextStores],
    kafka: &KafkaConfig,
    partitions: i32,
) -> Result<Relays> {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    let sources = stores
        .iter()
        .filter(|s| crate::contexts::event_sources().contains(&s.context));
    for context in sources {
        let publisher = KafkaPublisher::new(kafka, DELIVERY_TIMEOUT)
            .with_context(|| format!("creating the {} relay's Kafka producer", context.context))?;
        let relay = Relay::new(
            context.context,
            context.events.clone(),
            context.read_models.clone(),
            Arc::new(publisher),
            RelaySettings::default(),
        );
        let (kafka, name, stopped) = (kafka.clone(), context.context, stopped.clone());
        tasks.push(tokio::spawn(async move {
            if create_topics(&kafka, name, partitions, stopped.clone()).await {
                relay.run(stopped).await;
            }
        }));
    }
    tracing::info!(brokers = %kafka.brokers, contexts = stores.len(), "outbox relays started");
    Ok(Relays { stop, tasks })
}

/// Creates `context`'s topics, retrying every few seconds (logging the first failure only) until
/// it works or `stop` turns true. Returns whether they exist.
async fn create_topics(
    kafka: &KafkaConfig,
    context: &str,
    partitions: i32,
    mut stop: watch::Receiver<bool>,
) -> bool {
    let mut warned = false;
    loop {
        match ensure_topics(kafka, &topics_of(context), partitions).await {
            Ok(()) => {
                if warned {
                    tracing::info!(context, "Kafka reachable; topics created");
                }
                return true;
            }
            Err(error) => {
                if !warned {
                    tracing::warn!(
                        context, %error,
                        "cannot create the topics; commands are still accepted and their events \
                         wait in the store until Kafka answers"
                    );
                    warned = true;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3)) => {}
            _ = stop.changed() => return false,
        }
    }
}

/// Runs the registered consumers `deps` allow (see [`crate::consumers`]) until `stop` turns
/// true: over Kafka, one group member per consumer on its sources' topics; in-process, one
/// subscription per source context following that context's log (so the source's store must be
/// open in this process).
pub fn start_consumers(
    stores: &[ContextStores],
    kafka: Option<&KafkaConfig>,
    deps: crate::consumers::ConsumerDeps,
    stop: watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>> {
    let by_name = |name: &str| {
        stores
            .iter()
            .find(|s| s.context == name)
            .with_context(|| format!("no stores for context {name}"))
    };
    let mut tasks = Vec::new();
    for spec in crate::consumers::all(deps) {
        let home = by_name(spec.home)?;
        let consumer = Arc::new(Consumer::new(
            home.read_models.clone(),
            dead_letters_for(kafka, home)?,
            RetryPolicy::default(),
        ));
        let mut subscriptions: Vec<Box<dyn Subscription>> = Vec::new();
        match kafka {
            Some(kafka) => {
                let topics: Vec<_> = spec.sources.iter().map(|s| events_topic(s)).collect();
                let topics: Vec<_> = topics.iter().map(String::as_str).collect();
                subscriptions.push(Box::new(KafkaSubscription::new(kafka, spec.name, &topics)?));
            }
            None => {
                for source in spec.sources {
                    if !stores.iter().any(|s| s.context == *source) {
                        anyhow::bail!(
                            "MSA_KAFKA_BROKERS (--kafka-brokers) is required: {} follows the {source} \
                             service's events, which another process keeps",
                            spec.name
                        );
                    }
                    subscriptions.push(Box::new(LogSubscription::new(
                        source,
                        spec.name,
                        by_name(source)?.events.clone(),
                        home.read_models.clone(),
                    )));
                }
            }
        }
        for mut subscription in subscriptions {
            let (consumer, handler, stop) = (consumer.clone(), spec.handler.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                consumer.run(&*handler, &mut *subscription, stop).await
            }));
        }
    }
    Ok(tasks)
}

/// `msa relay`: runs the relays of the chosen contexts until SIGINT or SIGTERM.
pub async fn relay(args: crate::cli::RelayArgs) -> Result<()> {
    let kafka = kafka_config(&args.kafka)?
        .context("MSA_KAFKA_BROKERS (--kafka-brokers) is required: the relay publishes to Kafka")?;
    let mut stores = Vec::new();
    for context in crate::contexts::event_sources() {
        if args.contexts.is_empty() || args.contexts.iter().any(|c| c == context) {
            stores.push(crate::storage::open(&args.storage, context).await?);
        }
    }
    let relays = start_relays(&stores, &kafka, args.kafka.kafka_partitions)?;
    println!(
        "msa relay: publishing {} to {} (Ctrl-C stops)",
        stores
            .iter()
            .map(|s| s.context)
            .collect::<Vec<_>>()
            .join(", "),
        kafka.brokers
    );
    crate::shutdown::signal().await;
    relays.shut_down().await;
    Ok(())
}
