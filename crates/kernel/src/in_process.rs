//! The in-process bus of the single server: a subscription follows the source context's global
//! log directly, from a checkpoint of its own. There is no broker to lose or reorder anything, and
//! the same consumer runner (inbox, retries, dead letters) runs on top of it.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::bus::{events_topic, BusError, Delivery, Subscription};
use crate::{EventStore, LogPosition, Lookout, ReadModelStore};

/// A subscription to one context's events, for one consumer.
pub struct LogSubscription<R: ReadModelStore> {
    context: String,
    consumer: String,
    events: Arc<dyn EventStore>,
    /// Where the consumer's checkpoint lives (the consumer's query database).
    read_models: Arc<R>,
    position: Option<LogPosition>,
    buffer: VecDeque<Delivery>,
    /// The position of the last event handed out.
    delivered: Option<LogPosition>,
    idle_poll: Duration,
    lookout: Lookout,
}

impl<R: ReadModelStore> LogSubscription<R> {
    pub fn new(
        context: &str,
        consumer: &str,
        events: Arc<dyn EventStore>,
        read_models: Arc<R>,
    ) -> Self {
        Self {
            context: context.to_owned(),
            consumer: consumer.to_owned(),
            events,
            read_models,
            position: None,
            buffer: VecDeque::new(),
            delivered: None,
            idle_poll: Duration::from_millis(200),
            lookout: Lookout::default(),
        }
    }

    fn checkpoint_name(&self) -> String {
        format!("bus.{}:{}", self.context, self.consumer)
    }

    async fn position(&mut self) -> Result<LogPosition, BusError> {
        if let Some(position) = self.position {
            return Ok(position);
        }
        let mut tx = self.read_models.begin().await.map_err(unavailable)?;
        let position = self
            .read_models
            .checkpoint(&mut tx, &self.checkpoint_name(), 0)
            .await
            .map_err(unavailable)?;
        self.read_models.commit(tx).await.map_err(unavailable)?;
        self.position = Some(position);
        Ok(position)
    }
}

fn unavailable(error: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(error.to_string())
}

#[async_trait]
impl<R: ReadModelStore> Subscription for LogSubscription<R> {
    fn system(&self) -> &'static str {
        "in_process"
    }

    async fn next(&mut self) -> Result<Delivery, BusError> {
        loop {
            if let Some(delivery) = self.buffer.pop_front() {
                self.delivered = Some(delivery.event.position);
                return Ok(delivery);
            }
            let appended = self.events.appended();
            let wake = appended.notified();
            let from = self.position().await?;
            let batch = self.events.read_all(from, 500).await.map_err(unavailable)?;
            match batch.last() {
                Some(last) => {
                    self.position = Some(last.position);
                    self.lookout.log_moved();
                }
                None => {
                    tokio::select! {
                        _ = wake => self.lookout.log_moved(),
                        _ = tokio::time::sleep(self.lookout.pause(self.idle_poll)) => {}
                    }
                    continue;
                }
            }
            let topic = events_topic(&self.context);
            self.buffer.extend(batch.into_iter().map(|event| Delivery {
                offset: event.position.position,
                event,
                topic: topic.clone(),
                partition: 0,
            }));
        }
    }

    async fn commit(&mut self, delivery: &Delivery) -> Result<(), BusError> {
        let name = self.checkpoint_name();
        let mut tx = self.read_models.begin().await.map_err(unavailable)?;
        self.read_models
            .save_checkpoint(&mut tx, &name, 0, delivery.event.position)
            .await
            .map_err(unavailable)?;
        self.read_models.commit(tx).await.map_err(unavailable)
    }

    async fn backlog(&mut self) -> Result<u64, BusError> {
        let delivered = match self.delivered {
            Some(position) => position,
            None => self.position().await?,
        };
        let head = self.events.head_position().await.map_err(unavailable)?;
        Ok((head - delivered.position).max(0) as u64)
    }
}
