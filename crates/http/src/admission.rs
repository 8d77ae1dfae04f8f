//! Admission: how many requests of one kind a process works on at once, and how long one may wait
//! for a place. Under more load than the process can take, what does not find a place soon is
//! refused at once (503 `overloaded` with `Retry-After`) instead of joining queues (database
//! pools, the store's writer) until every caller times out: the latency of what is accepted stays
//! bounded, and a refused client knows to come back.
//!
//! Hand-written on a tokio [`Semaphore`] rather than tower's `GlobalConcurrencyLimit` and
//! `LoadShed`: those either wait without a bound or refuse without waiting, and as a layer they
//! would hold a place while a slow client trickles its body in. A handler enters after its body
//! is read and checked, right before the work that costs.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Problem;

#[derive(Debug, Clone, Copy)]
pub struct AdmissionSettings {
    /// Requests worked on at once.
    pub in_flight: usize,
    /// How long a request may wait for a place before it is refused.
    pub wait: Duration,
}

pub struct Admission {
    /// What is admitted, for the refusal's detail ("sends").
    what: &'static str,
    places: Arc<Semaphore>,
    /// Requests waiting for a place; at most `in_flight` wait, more are refused at once.
    waiting: AtomicUsize,
    settings: AdmissionSettings,
}

/// A place among the requests at work; given back when dropped.
pub struct Place {
    _held: OwnedSemaphorePermit,
}

/// One of the waiting; counted out when dropped (the caller may leave while waiting).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Admission {
    pub fn new(what: &'static str, settings: AdmissionSettings) -> Admission {
        let settings = AdmissionSettings {
            in_flight: settings.in_flight.max(1),
            ..settings
        };
        Admission {
            what,
            places: Arc::new(Semaphore::new(settings.in_flight)),
            waiting: AtomicUsize::new(0),
            settings,
        }
    }

    /// A place, or 503 with `Retry-After` when none frees up within the wait.
    pub async fn enter(&self) -> Result<Place, Problem> {
        if let Ok(place) = self.places.clone().try_acquire_owned() {
            return Ok(Place { _held: place });
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.settings.in_flight {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(self.refusal());
        }
        let _waiting = Waiting(&self.waiting);
        match tokio::time::timeout(self.settings.wait, self.places.clone().acquire_owned()).await {
            Ok(Ok(place)) => Ok(Place { _held: place }),
            _ => Err(self.refusal()),
        }
    }

    fn refusal(&self) -> Problem {
        Problem::overloaded(format!(
            "too many {} at once right now; try again after Retry-After",
            self.what
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(in_flight: usize, wait_ms: u64) -> Admission {
        Admission::new(
            "sends",
            AdmissionSettings {
                in_flight,
                wait: Duration::from_millis(wait_ms),
            },
        )
    }

    /// Another request waiting for a place: whether it got one.
    fn waiting(admission: &Arc<Admission>) -> tokio::task::JoinHandle<bool> {
        let admission = admission.clone();
        tokio::spawn(async move { admission.enter().await.is_ok() })
    }

    #[tokio::test]
    async fn a_place_freed_within_the_wait_is_taken() {
        let admission = Arc::new(admission(1, 1_000));
        let first = admission.enter().await.unwrap();
        let waiter = waiting(&admission);
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(first);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn no_place_within_the_wait_is_503_with_retry_after() {
        let admission = admission(1, 20);
        let _first = admission.enter().await.unwrap();
        let refused = admission.enter().await.err().expect("refused");
        assert_eq!(refused.status, 503);
        assert!(refused.kind.ends_with("overloaded"));
        let response = axum::response::IntoResponse::into_response(refused);
        assert_eq!(response.headers()["retry-after"], "1");
    }

    #[tokio::test]
    async fn past_as_many_waiting_as_places_a_request_is_refused_without_waiting() {
        let admission = Arc::new(admission(1, 60_000));
        let _first = admission.enter().await.unwrap();
        let waiter = waiting(&admission);
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        assert!(admission.enter().await.is_err());
        assert!(started.elapsed() < Duration::from_secs(5));
        waiter.abort();
        // The waiter that left is counted out: the next one waits again.
        let _ = waiter.await;
        assert_eq!(admission.waiting.load(Ordering::Acquire), 0);
    }
}
