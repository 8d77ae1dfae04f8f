//! The bounded contexts this binary composes, by their descriptors (`msa_context`). Everything
//! that goes over every context (stores, migrations, projections, relays, dead letters, the API
//! and events documents) iterates these lists instead of naming contexts.

use msa_context::{BoundedContext, SelfContained};

/// The contexts composed by hand (`crate::serve`): each needs parts of the others (user-chat
/// calls the core services; the user context's key vault and master key; payment's provider).
fn composed() -> [&'static dyn BoundedContext; 4] {
    [
        &msa_user::Context,
        &msa_chat::Context,
        &msa_payment::Context,
        &msa_user_chat::Context,
    ]
}

/// The contexts served by their descriptor alone. Adding one is its crate and one line here.
pub fn self_contained() -> Vec<&'static dyn SelfContained> {
    vec![
        #[cfg(feature = "template")]
        &msa_template::Context,
    ]
}

/// Every context, the composed ones first.
pub fn all() -> Vec<&'static dyn BoundedContext> {
    let mut all = composed().to_vec();
    all.extend(
        self_contained()
            .into_iter()
            .map(|context| context as &'static dyn BoundedContext),
    );
    all
}

/// Every context's name: each has its stores (user-chat's event store stays empty: it owns no
/// source of truth).
pub fn names() -> Vec<&'static str> {
    all().iter().map(|context| context.name()).collect()
}

/// The contexts that keep events and publish them (`<context>.events`).
pub fn event_sources() -> Vec<&'static str> {
    all()
        .iter()
        .filter(|context| context.records_events())
        .map(|context| context.name())
        .collect()
}

/// The context called `name`.
pub fn named(name: &str) -> Option<&'static dyn BoundedContext> {
    all().into_iter().find(|context| context.name() == name)
}
