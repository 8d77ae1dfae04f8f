//! Every event handler of the system, by consumer name: what a service subscribes to its source
//! contexts' events, and what `msa dlq replay` hands dead letters back to.
//!
//! The application services (user-chat) register theirs here as they arrive; core contexts react
//! to no one.

use std::sync::Arc;

use msa_kernel::consumer::EventHandler;

/// One consumer: a handler, the contexts whose events it receives, and the context whose query
/// database holds its effects, inbox and (in-process) dead letters.
pub struct ConsumerSpec {
    /// `<home context>.<handler>`: also its Kafka consumer group.
    pub name: &'static str,
    pub home: &'static str,
    pub sources: &'static [&'static str],
    pub handler: Arc<dyn EventHandler<msa_sql::Tx>>,
}

/// Every consumer of the system.
pub fn all() -> Vec<ConsumerSpec> {
    Vec::new()
}

/// The context a consumer's name says is its home (`chat.notify` lives in `chat`).
pub fn home_of(consumer: &str) -> &str {
    consumer.split('.').next().unwrap_or(consumer)
}
