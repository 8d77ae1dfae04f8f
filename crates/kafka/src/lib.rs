//! The event bus on Kafka (librdkafka through `rdkafka`):
//!
//! - [`KafkaPublisher`]: the relay's publisher; idempotent producer, `acks=all`, each event keyed
//!   by its stream id with the whole envelope in headers and the payload as JSON;
//! - [`KafkaSubscription`]: a consumer-group member; offsets are committed only after the event
//!   was handled (or dead-lettered), so a crash means redelivery, which the inbox absorbs;
//! - [`KafkaDeadLetters`]: the `<topic>.dlq` topics, and reading them back for `msa dlq`;
//! - [`ensure_topics`]: creates the topics at start;
//! - [`BrokerProbe`]: whether the brokers answer, for `/readyz`.

mod admin;
mod context;
mod dead_letters;
mod envelope;
mod probe;
mod publisher;
mod subscription;

pub use admin::ensure_topics;
pub use context::QuietContext;
pub use dead_letters::KafkaDeadLetters;
pub use envelope::{event_from_message, headers_of, DEAD_LETTER_HEADERS, HEADERS};
pub use probe::BrokerProbe;
pub use publisher::KafkaPublisher;
pub use subscription::KafkaSubscription;

use rdkafka::ClientConfig;

/// How to reach the brokers: bootstrap servers, plus librdkafka properties for every client
/// (TLS and SASL settings, or tuning such as `batch.num.messages`), applied last.
#[derive(Debug, Clone, Default)]
pub struct KafkaConfig {
    pub brokers: String,
    pub properties: Vec<(String, String)>,
}

impl KafkaConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        Self {
            brokers: brokers.into(),
            properties: Vec::new(),
        }
    }

    /// Adds a librdkafka property (`key`, `value`).
    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.properties.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Parses `key=value` pairs, as given on the command line.
    pub fn with_pairs<'a>(
        mut self,
        pairs: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, String> {
        for pair in pairs {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("`{pair}` is not key=value"))?;
            self = self.with(key.trim(), value.trim());
        }
        Ok(self)
    }

    /// The settings a client starts from; `tune` sets the client's own, then the user's
    /// properties override both.
    pub(crate) fn client(&self, tune: impl FnOnce(&mut ClientConfig)) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            // Quiet librdkafka's own logging; failures reach us as errors and are logged once.
            .set("log_level", "3");
        tune(&mut config);
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        // librdkafka's debug contexts (e.g. `fetch,protocol`) for diagnosing a broker, to stderr.
        if let Ok(contexts) = std::env::var("MSA_KAFKA_DEBUG") {
            config.set("debug", contexts).set("log_level", "7");
        }
        config
    }
}
