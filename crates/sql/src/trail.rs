//! A context's part of trails ([`msa_kernel::trail`]), read from its own stores: its events by
//! conversation, its relay's checkpoint (published or not yet), its consumers' inbox.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use msa_kernel::bus::events_topic;
use msa_kernel::relay::checkpoint_name;
use msa_kernel::trail::{TrailError, TrailEvent, TrailHandling, TrailSource};
use msa_kernel::{EventStore, StoreError};
use uuid::Uuid;

use crate::SqlReadModelStore;

pub struct StoreTrail {
    context: &'static str,
    events: Arc<dyn EventStore>,
    read_models: Arc<SqlReadModelStore>,
}

impl StoreTrail {
    pub fn new(
        context: &'static str,
        events: Arc<dyn EventStore>,
        read_models: Arc<SqlReadModelStore>,
    ) -> Self {
        Self {
            context,
            events,
            read_models,
        }
    }
}

#[async_trait]
impl TrailSource for StoreTrail {
    async fn holds_conversation(&self, id: Uuid) -> Result<bool, TrailError> {
        Ok(!self.events.correlated(id, 1).await?.is_empty())
    }

    async fn conversations_naming(&self, id: Uuid, most: usize) -> Result<Vec<Uuid>, TrailError> {
        let naming = self.events.naming(id, most).await?;
        let conversations: BTreeSet<Uuid> = naming
            .iter()
            .map(|event| event.metadata.correlation_id)
            .collect();
        Ok(conversations.into_iter().collect())
    }

    async fn events_of(
        &self,
        conversations: &[Uuid],
        most: usize,
    ) -> Result<Vec<TrailEvent>, TrailError> {
        // A relay that never ran (the single server's bus reads the log itself) says nothing;
        // one that runs saves its checkpoint every 100 ms, so the newest events may not show yet.
        let relayed = self
            .read_models
            .published_to(&checkpoint_name(self.context))
            .await?;
        let ran = relayed.position > 0 || relayed.commit > 0;
        let topic = events_topic(self.context);
        let mut found = Vec::new();
        for conversation in conversations {
            let room = most.saturating_sub(found.len());
            if room == 0 {
                break;
            }
            for event in self.events.correlated(*conversation, room).await? {
                let published = ran && relayed >= event.position;
                found.push(TrailEvent {
                    at: event.occurred_at,
                    context: self.context.to_owned(),
                    event_type: event.event_type,
                    event_id: event.event_id,
                    stream_id: event.stream_id.to_string(),
                    version: event.version,
                    correlation_id: event.metadata.correlation_id,
                    causation_id: event.metadata.causation_id,
                    actor: event.metadata.actor,
                    position: event.position.position,
                    published_to: published.then(|| topic.clone()),
                });
            }
        }
        Ok(found)
    }

    async fn handlings_of(&self, event_ids: &[Uuid]) -> Result<Vec<TrailHandling>, TrailError> {
        let rows = self.read_models.handlings(event_ids).await?;
        rows.into_iter()
            .map(|(event_id, consumer, at)| {
                let at = DateTime::parse_from_rfc3339(&at).map_err(|_| {
                    StoreError::Backend(format!("{consumer}'s inbox: not a time: {at}").into())
                })?;
                Ok(TrailHandling {
                    at: at.with_timezone(&Utc),
                    context: self.context.to_owned(),
                    consumer,
                    event_id,
                })
            })
            .collect()
    }
}
