//! Metric names: `msa_<context>_<thing>_<unit>`, one family per context, so a dashboard selects a
//! context by name and an operator reads where a number comes from without its labels.

/// `msa_<context>_<thing>` for a context (`user-chat` becomes `user_chat`).
pub fn name(context: &str, thing: &str) -> String {
    format!("msa_{}_{thing}", context.replace('-', "_"))
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
