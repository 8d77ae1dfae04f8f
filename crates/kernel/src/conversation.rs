//! The conversation a piece of work belongs to, and the trace it runs in.
//!
//! A request at the edge starts a [`Conversation`] (a correlation id, the request id, the W3C
//! trace context); work caused by an event continues the event's (same correlation id, caused by
//! that event). The current conversation rides along the task (a tokio task-local), so a command
//! deep in an application service stamps its events with it through
//! [`EventMetadata::current`](crate::EventMetadata::current) without every port passing it on.
//!
//! Traces: spans are `tracing` spans; when the process exports them over OpenTelemetry (the
//! `tracing-opentelemetry` layer is installed), [`traceparent_of`] reads a span's W3C context and
//! [`continue_trace`] / [`link_to`] attach a span to a remote one. With no such layer these find
//! no context and cost a lookup each: the OpenTelemetry API, not the SDK, is all this needs.

use std::future::Future;

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use crate::RecordedEvent;

/// Who and what a piece of work belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// Shared by everything one user request set off, across every context.
    pub correlation_id: Uuid,
    /// The event (or request) that directly caused this work.
    pub causation_id: Option<Uuid>,
    /// The request id given at the edge, for log lines.
    pub request_id: Option<String>,
    /// W3C trace context of the span doing the work (or of the caller when nothing is exported).
    pub traceparent: Option<String>,
}

tokio::task_local! {
    static CURRENT: Conversation;
}

impl Conversation {
    /// The conversation `event` belongs to, continued by work it causes.
    pub fn caused_by(event: &RecordedEvent) -> Self {
        Self {
            correlation_id: event.metadata.correlation_id,
            causation_id: Some(event.event_id),
            request_id: None,
            traceparent: event.metadata.traceparent.clone(),
        }
    }

    /// The conversation of the work this task is doing, if it runs in one.
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `work` in this conversation.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }
}

/// A W3C `traceparent` parsed: `00-<trace id>-<parent span id>-<flags>`.
fn parse(traceparent: &str) -> Option<SpanContext> {
    let mut parts = traceparent.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || version.len() != 2 || version == "ff" || flags.len() != 2 {
        return None;
    }
    if trace.len() != 32 || span.len() != 16 {
        return None;
    }
    let trace = TraceId::from_hex(trace).ok()?;
    let span = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let context = SpanContext::new(
        trace,
        span,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    context.is_valid().then_some(context)
}

/// Whether `traceparent` is a well-formed W3C trace context.
pub fn is_traceparent(traceparent: &str) -> bool {
    parse(traceparent).is_some()
}

/// The trace id of a `traceparent` (its second field), for log lines.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1)
}

static EXPORTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Says that this process exports its spans (it installed an OpenTelemetry layer), so spans get
/// their ids from it; otherwise code that needs ids (log lines, headers) makes its own.
pub fn set_exporting() {
    EXPORTING.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether this process exports its spans ([`set_exporting`]).
pub fn exporting() -> bool {
    EXPORTING.load(std::sync::atomic::Ordering::Relaxed)
}

/// The W3C context of `span` when it is exported, else `None`.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

/// Makes `span` a child of the remote span `traceparent` names (a request's caller).
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(remote) = traceparent.and_then(parse) {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
}

/// Links `span` to the span `traceparent` names (an event's producer): the OpenTelemetry
/// messaging conventions link a consumer to its producer rather than nest it, so a replay does
/// not grow the producer's trace without end.
pub fn link_to(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(remote) = traceparent.and_then(parse) {
        span.add_link(remote);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_trace_contexts_parse() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(is_traceparent(good));
        assert_eq!(trace_id_of(good), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(!is_traceparent(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn work_sees_the_conversation_it_runs_in() {
        assert_eq!(Conversation::current(), None);
        let conversation = Conversation {
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            request_id: Some("r-1".into()),
            traceparent: None,
        };
        let seen = conversation
            .clone()
            .scope(async { Conversation::current() })
            .await;
        assert_eq!(seen, Some(conversation));
    }
}
