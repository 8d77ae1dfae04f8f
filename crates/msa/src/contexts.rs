//! The bounded contexts this binary composes, by name.

/// The bounded contexts that keep events and publish them (`<context>.events`).
pub const EVENT_SOURCES: &[&str] = &["user", "chat", "payment"];

/// Every context with stores: the event sources, and user-chat, whose query database holds read
/// models built from the others' events (its event store stays empty: it owns no source of truth).
pub const CONTEXTS: &[&str] = &["user", "chat", "payment", "user-chat"];
