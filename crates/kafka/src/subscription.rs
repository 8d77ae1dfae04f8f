use std::collections::HashMap;

use async_trait::async_trait;
use msa_kernel::bus::{BusError, Delivery, Subscription};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::envelope::event_from_message;
use crate::KafkaConfig;

/// A member of a Kafka consumer group.
pub struct KafkaSubscription {
    consumer: StreamConsumer<crate::QuietContext>,
    /// Per partition, the offset after the last message delivered.
    next_offsets: HashMap<(String, i32), i64>,
}

impl KafkaSubscription {
    /// Joins `group` (the consumer's name) on `topics`; a new group starts at the beginning.
    pub fn new(kafka: &KafkaConfig, group: &str, topics: &[&str]) -> Result<Self, BusError> {
        let consumer: StreamConsumer<crate::QuietContext> = kafka
            .client(|config| {
                config
                    .set("group.id", group)
                    .set("enable.auto.commit", "false")
                    .set("auto.offset.reset", "earliest")
                    .set("session.timeout.ms", "10000")
                    // Answer fetches quickly: delivery latency is bounded by this wait whenever
                    // a broker hands out less than is waiting.
                    .set("fetch.wait.max.ms", "10")
                    // A subscribed topic that does not exist yet (its owner starts after this
                    // service) is noticed at the next metadata refresh: five minutes by default,
                    // during which nothing of it arrives. A small metadata request every few
                    // seconds per consumer costs little beside the fetches.
                    .set("topic.metadata.refresh.interval.ms", "3000");
            })
            .create_with_context(crate::QuietContext)
            .map_err(|e| BusError::Other(e.to_string()))?;
        consumer
            .subscribe(topics)
            .map_err(|e| BusError::Other(e.to_string()))?;
        Ok(Self {
            consumer,
            next_offsets: HashMap::new(),
        })
    }
}

impl KafkaSubscription {
    /// The partition's high watermark as of the last fetch response. rdkafka wraps only the
    /// variant that asks the broker (a blocking round trip), so this calls librdkafka directly.
    fn cached_high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        let topic = std::ffi::CString::new(topic).ok()?;
        let (mut low, mut high) = (-1i64, -1i64);
        // SAFETY: the client pointer lives as long as `self.consumer`; librdkafka only reads the
        // NUL-terminated topic name and writes the two offsets, which outlive the call.
        let result = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
                &mut low,
                &mut high,
            )
        };
        (result == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
            .then_some(high)
    }
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            let message = self
                .consumer
                .recv()
                .await
                .map_err(|e| BusError::Unavailable(e.to_string()))?;
            self.next_offsets.insert(
                (
                    rdkafka::Message::topic(&message).to_owned(),
                    rdkafka::Message::partition(&message),
                ),
                rdkafka::Message::offset(&message) + 1,
            );
            match event_from_message(&message) {
                Ok(event) => {
                    return Ok(Delivery {
                        event,
                        topic: rdkafka::Message::topic(&message).to_owned(),
                        partition: rdkafka::Message::partition(&message),
                        offset: rdkafka::Message::offset(&message),
                    })
                }
                // Not an event of ours: nothing could ever handle it, so skip it loudly.
                Err(error) => {
                    tracing::error!(%error, "skipping a message that is not an event");
                    let mut offsets = TopicPartitionList::new();
                    offsets
                        .add_partition_offset(
                            rdkafka::Message::topic(&message),
                            rdkafka::Message::partition(&message),
                            Offset::Offset(rdkafka::Message::offset(&message) + 1),
                        )
                        .map_err(|e| BusError::Other(e.to_string()))?;
                    let _ = self.consumer.commit(&offsets, CommitMode::Async);
                }
            }
        }
    }

    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(
                &delivery.topic,
                delivery.partition,
                Offset::Offset(delivery.offset + 1),
            )
            .map_err(|e| BusError::Other(e.to_string()))?;
        self.consumer
            .commit(&offsets, CommitMode::Async)
            .map_err(|e| BusError::Unavailable(e.to_string()))
    }

    /// From the high watermarks librdkafka last saw in fetch responses (no broker round trip).
    async fn backlog(&mut self) -> Result<u64, BusError> {
        let assignment = self
            .consumer
            .assignment()
            .map_err(|e| BusError::Other(e.to_string()))?;
        let mut waiting = 0;
        for element in assignment.elements() {
            let key = (element.topic().to_owned(), element.partition());
            let Some(next) = self.next_offsets.get(&key) else {
                continue;
            };
            if let Some(high) = self.cached_high_watermark(element.topic(), element.partition()) {
                waiting += (high - next).max(0) as u64;
            }
        }
        Ok(waiting)
    }
}
