//! Every event handler of the system, by consumer name: what a service subscribes to its source
//! contexts' events, and what `msa dlq replay` hands dead letters back to.
//!
//! Core contexts react to no other context; a core context may follow its own events (the
//! payment context's wallet process manager). user-chat keeps its read models from user and chat
//! events, and the spends of message credits from payment's wallet events (its send recovery).

use std::sync::Arc;

use msa_kernel::consumer::EventHandler;
use msa_kernel::EventStore;
use msa_payment::application::wallet_credits::{WalletCredits, CONSUMER as WALLET_CREDITS};
use msa_payment::application::wallets::Wallets;
use msa_user_chat::adapters::members::{Members, CONSUMER as MEMBERS};
use msa_user_chat::adapters::open_spends::{OpenSpends, CONSUMER as OPEN_SPENDS};
use msa_user_chat::adapters::profiles::{Profiles, CONSUMER as PROFILES};
use msa_user_chat::application::ports::DirectoryPort;

/// One consumer: a handler, the contexts whose events it receives, and the context whose query
/// database holds its effects, inbox and (in-process) dead letters.
pub struct ConsumerSpec {
    /// `<home context>.<handler>`: also its Kafka consumer group.
    pub name: &'static str,
    pub home: &'static str,
    pub sources: &'static [&'static str],
    pub handler: Arc<dyn EventHandler<msa_sql::Tx>>,
}

/// What the handlers need: the payment context's event store (the wallet process manager
/// writes wallets) and the user directory (user-chat's profiles). A process that runs only some
/// services has only some of these; the consumers whose needs are missing are not its to run.
#[derive(Default)]
pub struct ConsumerDeps {
    pub payment_events: Option<Arc<dyn EventStore>>,
    pub directory: Option<Arc<dyn DirectoryPort>>,
    pub free_messages_per_day: u32,
}

/// The consumers `deps` can run.
pub fn all(deps: ConsumerDeps) -> Vec<ConsumerSpec> {
    let mut specs = Vec::new();
    if let Some(events) = deps.payment_events {
        let wallets = Arc::new(Wallets::new(events.clone(), deps.free_messages_per_day));
        specs.push(ConsumerSpec {
            name: WALLET_CREDITS,
            home: "payment",
            sources: &["payment"],
            handler: Arc::new(WalletCredits::new(events, wallets)),
        });
    }
    if let Some(directory) = deps.directory {
        specs.push(ConsumerSpec {
            name: PROFILES,
            home: "user-chat",
            sources: &["user"],
            handler: Arc::new(Profiles { directory }),
        });
        specs.push(ConsumerSpec {
            name: MEMBERS,
            home: "user-chat",
            sources: &["chat"],
            handler: Arc::new(Members),
        });
        specs.push(ConsumerSpec {
            name: OPEN_SPENDS,
            home: "user-chat",
            sources: &["payment"],
            handler: Arc::new(OpenSpends),
        });
    }
    specs
}

/// The context a consumer's name says is its home (`chat.notify` lives in `chat`).
pub fn home_of(consumer: &str) -> &str {
    consumer.split('.').next().unwrap_or(consumer)
}
