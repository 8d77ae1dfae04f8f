use std::time::Duration;

use async_trait::async_trait;
use msa_kernel::bus::{dead_letter_topic, BusError, DeadLetter, DeadLetters, Delivery};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

use crate::envelope::{event_from_message, headers_of};
use crate::{KafkaConfig, KafkaPublisher};

/// Puts given-up events on `<topic>.dlq`, with the envelope and why.
#[derive(Clone)]
pub struct KafkaDeadLetters {
    publisher: KafkaPublisher,
}

impl KafkaDeadLetters {
    pub fn new(publisher: KafkaPublisher) -> Self {
        Self { publisher }
    }
}

#[async_trait]
impl DeadLetters for KafkaDeadLetters {
    async fn send(&self, letter: &DeadLetter) -> Result<(), BusError> {
        let event = &letter.delivery.event;
        let attempts = letter.attempts.to_string();
        let dead_at = letter.dead_at.to_rfc3339();
        let source = format!(
            "{}/{}/{}",
            letter.delivery.topic, letter.delivery.partition, letter.delivery.offset
        );
        let headers = headers_of(event)
            .insert(Header {
                key: "dlq_consumer",
                value: Some(letter.consumer.as_str()),
            })
            .insert(Header {
                key: "dlq_error",
                value: Some(letter.error.as_str()),
            })
            .insert(Header {
                key: "dlq_attempts",
                value: Some(attempts.as_str()),
            })
            .insert(Header {
                key: "dlq_source",
                value: Some(source.as_str()),
            })
            .insert(Header {
                key: "dlq_dead_at",
                value: Some(dead_at.as_str()),
            });
        let payload = event.payload.to_string();
        let topic = dead_letter_topic(&letter.delivery.topic);
        let record = FutureRecord::to(&topic)
            .key(event.stream_id.as_str())
            .payload(&payload)
            .headers(headers);
        let sent = self
            .publisher
            .producer()?
            .send(record, Duration::from_secs(10))
            .await;
        sent.map(|_| ()).map_err(|(e, _)| {
            self.publisher.discard_producer();
            BusError::Unavailable(e.to_string())
        })
    }

    async fn list(&self, topic: &str) -> Result<Vec<DeadLetter>, BusError> {
        let (kafka, topic) = (self.publisher.kafka().clone(), topic.to_owned());
        tokio::task::spawn_blocking(move || {
            read_dead_letters(&kafka, &topic, Duration::from_secs(10))
        })
        .await
        .map_err(|e| BusError::Other(e.to_string()))?
    }
}

/// Reads every dead letter on `<topic>.dlq`, without joining a group (so reading moves nothing).
fn read_dead_letters(
    kafka: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<DeadLetter>, BusError> {
    let dlq = dead_letter_topic(topic);
    let consumer: BaseConsumer<crate::QuietContext> = kafka
        .client(|config| {
            config
                .set(
                    "group.id",
                    format!("msa.dlq-reader.{}", uuid::Uuid::now_v7()),
                )
                .set("enable.auto.commit", "false");
        })
        .create_with_context(crate::QuietContext)
        .map_err(|e| BusError::Other(e.to_string()))?;
    let metadata = consumer
        .fetch_metadata(Some(&dlq), timeout)
        .map_err(|e| BusError::Unavailable(e.to_string()))?;
    let mut assignment = TopicPartitionList::new();
    let mut ends = Vec::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer
            .fetch_watermarks(&dlq, partition.id(), timeout)
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        if high > low {
            assignment
                .add_partition_offset(&dlq, partition.id(), Offset::Offset(low))
                .map_err(|e| BusError::Other(e.to_string()))?;
            ends.push((partition.id(), high));
        }
    }
    if ends.is_empty() {
        return Ok(Vec::new());
    }
    consumer
        .assign(&assignment)
        .map_err(|e| BusError::Other(e.to_string()))?;
    let mut letters = Vec::new();
    let deadline = std::time::Instant::now() + timeout;
    let mut remaining: std::collections::HashMap<i32, i64> = ends.into_iter().collect();
    while !remaining.is_empty() && std::time::Instant::now() < deadline {
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.map_err(|e| BusError::Unavailable(e.to_string()))?;
        if let Some(high) = remaining.get(&message.partition()) {
            if message.offset() + 1 >= *high {
                remaining.remove(&message.partition());
            }
        }
        let header = |name: &str| {
            message.headers().and_then(|h| {
                h.iter()
                    .find(|x| x.key == name)
                    .and_then(|x| x.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            })
        };
        let event = event_from_message(&message)?;
        let source = header("dlq_source").unwrap_or_default();
        let mut parts = source.rsplitn(3, '/');
        let offset = parts.next().and_then(|o| o.parse().ok()).unwrap_or(-1);
        let partition = parts.next().and_then(|p| p.parse().ok()).unwrap_or(-1);
        letters.push(DeadLetter {
            consumer: header("dlq_consumer").unwrap_or_default(),
            error: header("dlq_error").unwrap_or_default(),
            attempts: header("dlq_attempts")
                .and_then(|a| a.parse().ok())
                .unwrap_or(0),
            dead_at: header("dlq_dead_at")
                .and_then(|at| chrono::DateTime::parse_from_rfc3339(&at).ok())
                .map(|at| at.with_timezone(&chrono::Utc))
                .unwrap_or_default(),
            delivery: Delivery {
                event,
                topic: topic.to_owned(),
                partition,
                offset,
            },
        });
    }
    if !remaining.is_empty() {
        return Err(BusError::Unavailable(format!(
            "{dlq} could not be read to its end in time"
        )));
    }
    Ok(letters)
}
