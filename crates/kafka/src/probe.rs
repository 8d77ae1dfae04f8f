//! Whether the brokers answer, for readiness checks.

use std::sync::Arc;
use std::time::Duration;

use msa_kernel::bus::BusError;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::{KafkaConfig, QuietContext};

/// Asks the brokers for their metadata over one long-lived client, so a check costs a request,
/// not a new connection each time.
#[derive(Clone)]
pub struct BrokerProbe(Arc<BaseConsumer<QuietContext>>);

impl BrokerProbe {
    pub fn new(kafka: &KafkaConfig) -> Result<Self, BusError> {
        let client = kafka
            .client(|_| {})
            .create_with_context(QuietContext)
            .map_err(|e| BusError::Other(e.to_string()))?;
        Ok(Self(Arc::new(client)))
    }

    /// Ok when a broker answered a metadata request within `timeout`.
    pub async fn check(&self, timeout: Duration) -> Result<(), BusError> {
        let client = self.0.clone();
        // librdkafka's metadata call blocks its thread until the answer or the timeout.
        tokio::task::spawn_blocking(move || client.fetch_metadata(None, timeout).map(drop))
            .await
            .map_err(|e| BusError::Other(e.to_string()))?
            .map_err(|e| BusError::Unavailable(e.to_string()))
    }
}
