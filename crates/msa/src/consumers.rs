//! Every event handler of the system, by consumer name: what a service subscribes to its source
//! contexts' events, and what `msa dlq replay` hands dead letters back to.
//!
//! Core contexts react to no other context; a core context may follow its own events (the
//! payment context's wallet process manager). The application services (user-chat) register
//! theirs here as they arrive.

use std::sync::Arc;

use anyhow::Result;
use msa_kernel::consumer::EventHandler;
use msa_kernel::EventStore;
use msa_payment::application::wallet_credits::{WalletCredits, CONSUMER as WALLET_CREDITS};
use msa_payment::application::wallets::Wallets;

/// One consumer: a handler, the contexts whose events it receives, and the context whose query
/// database holds its effects, inbox and (in-process) dead letters.
pub struct ConsumerSpec {
    /// `<home context>.<handler>`: also its Kafka consumer group.
    pub name: &'static str,
    pub home: &'static str,
    pub sources: &'static [&'static str],
    pub handler: Arc<dyn EventHandler<msa_sql::Tx>>,
}

/// Every consumer of the system; `events_of` opens a context's event store (a handler may need
/// its home context's aggregates).
pub fn all(
    events_of: impl Fn(&'static str) -> Result<Arc<dyn EventStore>>,
    free_messages_per_day: u32,
) -> Result<Vec<ConsumerSpec>> {
    let payment_events = events_of("payment")?;
    Ok(vec![ConsumerSpec {
        name: WALLET_CREDITS,
        home: "payment",
        sources: &["payment"],
        handler: Arc::new(WalletCredits::new(
            payment_events.clone(),
            Arc::new(Wallets::new(payment_events, free_messages_per_day)),
        )),
    }])
}

/// The context a consumer's name says is its home (`chat.notify` lives in `chat`).
pub fn home_of(consumer: &str) -> &str {
    consumer.split('.').next().unwrap_or(consumer)
}
