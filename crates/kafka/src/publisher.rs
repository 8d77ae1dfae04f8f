use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use msa_kernel::bus::{BusError, EventPublisher, Published};
use msa_kernel::RecordedEvent;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::envelope::headers_of;
use crate::{KafkaConfig, QuietContext};

type Producer = FutureProducer<QuietContext>;

/// Publishes events with Kafka's idempotent producer: `acks=all`, no duplicates from the
/// producer's own retries, order kept per partition.
///
/// After a failed publish the producer is replaced: once messages time out, librdkafka's
/// idempotent producer cannot go on (its sequence numbers are no longer known to be in step with
/// the broker's), so the next publish starts a fresh one. What it sends again is absorbed by the
/// consumers' inbox.
#[derive(Clone)]
pub struct KafkaPublisher {
    kafka: KafkaConfig,
    delivery_timeout: Duration,
    producer: Arc<Mutex<Option<Producer>>>,
}

impl KafkaPublisher {
    /// `delivery_timeout`: how long a message may wait for the brokers before it counts as failed
    /// (the relay then keeps it in the store and tries again later).
    pub fn new(kafka: &KafkaConfig, delivery_timeout: Duration) -> Result<Self, BusError> {
        let publisher = Self {
            kafka: kafka.clone(),
            delivery_timeout,
            producer: Arc::new(Mutex::new(None)),
        };
        drop(publisher.producer()?); // fail at start when the settings are wrong
        Ok(publisher)
    }

    pub fn kafka(&self) -> &KafkaConfig {
        &self.kafka
    }

    /// The current producer, creating one if the last was discarded.
    pub fn producer(&self) -> Result<Producer, BusError> {
        let mut slot = self.producer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(producer) = slot.as_ref() {
            return Ok(producer.clone());
        }
        let timeout = self.delivery_timeout.as_millis().to_string();
        let producer: Producer = self
            .kafka
            .client(|config| {
                config
                    .set("enable.idempotence", "true")
                    .set("acks", "all")
                    .set("linger.ms", "2")
                    .set("message.timeout.ms", &timeout);
            })
            .create_with_context(QuietContext)
            .map_err(|e| BusError::Other(e.to_string()))?;
        *slot = Some(producer.clone());
        Ok(producer)
    }

    /// Drops the current producer; the next publish creates a new one.
    pub fn discard_producer(&self) {
        self.producer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }
}

#[async_trait]
impl EventPublisher for KafkaPublisher {
    async fn publish(&self, topic: &str, events: &[RecordedEvent]) -> Published {
        let producer = match self.producer() {
            Ok(producer) => producer,
            Err(error) => {
                return Published {
                    acknowledged: 0,
                    error: Some(error),
                }
            }
        };
        // Enqueue everything first (librdkafka batches them), then wait for the acks in order.
        let mut pending = Vec::with_capacity(events.len());
        let mut error = None;
        for event in events {
            let payload = event.payload.to_string();
            let record = FutureRecord::to(topic)
                .key(event.stream_id.as_str())
                .payload(&payload)
                .headers(headers_of(event));
            match producer.send_result(record) {
                Ok(delivery) => pending.push(delivery),
                Err((e, _)) => {
                    error = Some(BusError::Unavailable(e.to_string()));
                    break;
                }
            }
        }
        let mut acknowledged = 0;
        for delivery in pending {
            match delivery.await {
                Ok(Ok(_)) if error.is_none() => acknowledged += 1,
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    error.get_or_insert(BusError::Unavailable(e.to_string()));
                }
                Err(_) => {
                    error.get_or_insert(BusError::Other("the producer was dropped".into()));
                }
            }
        }
        if error.is_some() {
            self.discard_producer();
        }
        Published {
            acknowledged,
            error,
        }
    }
}
