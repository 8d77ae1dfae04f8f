//! Given/when/then for aggregates: given past events, when a command, then these events or this
//! error.
//!
//! ```ignore
//! given::<Room>([RoomEvent::Created { .. }])
//!     .when(RoomCommand::Post { .. })
//!     .then([RoomEvent::MessagePosted { .. }]);
//! ```

use std::fmt::Debug;

use crate::Aggregate;

/// The state built from past events.
pub struct Given<A: Aggregate> {
    state: A,
}

/// Starts a scenario from the fold of `events`.
pub fn given<A: Aggregate>(events: impl IntoIterator<Item = A::Event>) -> Given<A> {
    let events: Vec<_> = events.into_iter().collect();
    Given {
        state: A::fold(&events),
    }
}

impl<A: Aggregate> Given<A> {
    pub fn when(self, command: A::Command) -> Then<A> {
        Then {
            outcome: self.state.decide(&command),
        }
    }
}

/// The outcome of the command, to be checked.
pub struct Then<A: Aggregate> {
    outcome: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Then<A>
where
    A::Event: PartialEq + Debug,
{
    /// Asserts the command produced exactly `expected`.
    #[track_caller]
    pub fn then(self, expected: impl IntoIterator<Item = A::Event>) {
        let expected: Vec<_> = expected.into_iter().collect();
        match self.outcome {
            Ok(events) => assert_eq!(events, expected, "the command produced other events"),
            Err(error) => panic!("expected events {expected:?}, the command failed: {error}"),
        }
    }

    /// Asserts the command was refused with an error `check` accepts.
    #[track_caller]
    pub fn then_error(self, check: impl FnOnce(&A::Error) -> bool) {
        match self.outcome {
            Ok(events) => panic!("expected an error, the command produced {events:?}"),
            Err(error) => assert!(check(&error), "the command failed otherwise: {error}"),
        }
    }
}
