//! Metric names: `msa_<context>_<thing>_<unit>`, one family per context, so a dashboard selects a
//! context by name and an operator reads where a number comes from without its labels.

use std::collections::HashSet;
use std::sync::{OnceLock, RwLock};

/// `msa_<context>_<thing>` for a context (`user-chat` becomes `user_chat`). Interned: callers
/// name their metrics once, and recording one then allocates nothing for its name.
pub fn name(context: &str, thing: &str) -> &'static str {
    intern(&format!("msa_{}_{thing}", context.replace('-', "_")))
}

/// `text` as a `&'static str`, kept once for the life of the process. Only for the bounded
/// sets of metric names and label values (routes, statuses), never for client input.
pub fn intern(text: &str) -> &'static str {
    static INTERNED: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    let interned = INTERNED.get_or_init(Default::default);
    if let Some(known) = interned.read().unwrap_or_else(|p| p.into_inner()).get(text) {
        return known;
    }
    let mut interned = interned.write().unwrap_or_else(|p| p.into_inner());
    match interned.get(text) {
        Some(known) => known,
        None => {
            let leaked: &'static str = Box::leak(text.to_owned().into_boxed_str());
            interned.insert(leaked);
            leaked
        }
    }
}

/// The context of a component named `<context>.<component>` (consumers, projections).
pub fn context_of(component: &str) -> &str {
    component.split('.').next().unwrap_or(component)
}

/// Buckets of every `_seconds` histogram: 0.5 ms to 30 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[cfg(test)]
mod tests {
    #[test]
    fn a_name_is_kept_once() {
        let first = super::name("chat", "x_total");
        assert!(std::ptr::eq(first, super::name("chat", "x_total")));
    }

    #[test]
    fn names_follow_the_context() {
        assert_eq!(
            super::name(
                super::context_of("user-chat.open-spends"),
                "consumer_lag_events"
            ),
            "msa_user_chat_consumer_lag_events"
        );
        assert_eq!(super::context_of("chat"), "chat");
    }
}
