//! user-chat, the application service: it composes the core services and owns no source of truth.
//!
//! - [`ports`]: what it needs from chat, payment and user (in-process calls in the single server,
//!   HTTP to internal endpoints between microservices; the adapters live in the composition root);
//! - [`application`]: the credit policy for sending (spend, post, refund the spend if the post is
//!   refused), direct chats by nickname, the inbox and member lists with profiles;
//! - [`send_recovery`]: the process manager that completes or refunds every send left half-done
//!   (a credit spent, no post), from the wallet events and what chat's store says of the send;
//! - [`export`]: a person's export, composed of every core service's part of it;
//! - [`adapters`]: HTTP, and the consumers that keep its read models (profiles from user events,
//!   room members from chat events, open spends from wallet events).
//!
//! It uses the core services only through their `contract` modules (checked by
//! `crates/msa/tests/architecture.rs`).

pub mod adapters;
pub mod application;
pub mod export;
pub mod ports;
pub mod send_recovery;

pub use application::UserChat;

/// user-chat's query-side tables (versions 5000 and up).
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}
