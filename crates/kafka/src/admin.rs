use std::time::Duration;

use msa_kernel::bus::BusError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::types::RDKafkaErrorCode;

use crate::KafkaConfig;

/// Creates `topics` with `partitions` each, leaving existing ones as they are.
pub async fn ensure_topics(
    kafka: &KafkaConfig,
    topics: &[String],
    partitions: i32,
) -> Result<(), BusError> {
    let admin: AdminClient<crate::QuietContext> = kafka
        .client(|_| {})
        .create_with_context(crate::QuietContext)
        .map_err(|e| BusError::Other(e.to_string()))?;
    let new_topics: Vec<_> = topics
        .iter()
        .map(|name| NewTopic::new(name, partitions, TopicReplication::Fixed(1)))
        .collect();
    // Without a request timeout, librdkafka waits for an unreachable broker forever.
    let options = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(5)))
        .operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|e| BusError::Unavailable(e.to_string()))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(BusError::Unavailable(format!(
                    "creating topic {topic}: {code}"
                )))
            }
        }
    }
    Ok(())
}
