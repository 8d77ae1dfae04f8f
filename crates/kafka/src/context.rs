//! librdkafka reports every failed connection attempt, many per second while a broker is away.
//! The relay and the consumers already say once, in their own words, that the bus is unreachable
//! and once that it is back; so librdkafka's own reports go to the debug level.

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;

#[derive(Clone, Default)]
pub struct QuietContext;

impl ClientContext for QuietContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        tracing::debug!(?level, facility, message, "librdkafka");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(%error, reason, "librdkafka");
    }
}

impl ConsumerContext for QuietContext {}
