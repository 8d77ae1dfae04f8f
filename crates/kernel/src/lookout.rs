//! How a reader of the global log waits after reading nothing.

use std::time::Duration;

/// The first look again after the log moved.
const FIRST_LOOK: Duration = Duration::from_millis(2);

/// When a log reader that read nothing looks again.
///
/// An event appended a moment ago may not be readable yet, though its append has woken the reader
/// ([`EventStore::appended`](crate::EventStore::appended)): PostgreSQL's log is read only below
/// its horizon, the oldest transaction still running on the whole server (see its `read_all`), so
/// a projection batch or an append of any other database on that server hides the newest events
/// for a few milliseconds. A reader that would then sleep for its idle poll would deliver such an
/// event hundreds of milliseconds late. So after the log moved (an append woke the reader, or a
/// read found events) an empty read is tried again after 2, 4, 8, ... ms, until something is
/// found or the pause reaches the idle poll: a handful of cheap reads after each burst.
#[derive(Debug, Default)]
pub struct Lookout {
    next: Option<Duration>,
}

impl Lookout {
    /// The log moved: an append woke the reader, or a read found events.
    pub fn log_moved(&mut self) {
        self.next = Some(FIRST_LOOK);
    }

    /// How long to wait after a read that found nothing: a short, growing pause while the log
    /// has moved lately, `idle` once that pause would reach it.
    pub fn pause(&mut self, idle: Duration) -> Duration {
        match self.next {
            Some(pause) if pause < idle => {
                self.next = Some(pause * 2);
                pause
            }
            _ => {
                self.next = None;
                idle
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_the_log_moved_the_pauses_grow_up_to_the_idle_poll() {
        let idle = Duration::from_millis(20);
        let mut lookout = Lookout::default();
        assert_eq!(lookout.pause(idle), idle, "a quiet log waits the idle poll");
        lookout.log_moved();
        let pauses: Vec<u64> = (0..5)
            .map(|_| lookout.pause(idle).as_millis() as u64)
            .collect();
        assert_eq!(pauses, [2, 4, 8, 16, 20]);
        assert_eq!(lookout.pause(idle), idle);
        lookout.log_moved();
        assert_eq!(lookout.pause(idle), FIRST_LOOK, "each move starts over");
    }
}
