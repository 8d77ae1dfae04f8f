//! The given/when/then harness on the sample aggregate.

use msa_kernel::testing::given;
use msa_testkit::tally::{Tally, TallyCommand, TallyError, TallyEvent};

fn opened() -> TallyEvent {
    TallyEvent::Opened {
        name: "groceries".into(),
    }
}

#[test]
fn an_open_tally_accepts_a_positive_amount() {
    given::<Tally>([opened()])
        .when(TallyCommand::Add { amount: 3 })
        .then([TallyEvent::Added { amount: 3 }]);
}

#[test]
fn a_tally_opens_once() {
    given::<Tally>([])
        .when(TallyCommand::Open { name: "a".into() })
        .then([TallyEvent::Opened { name: "a".into() }]);
    given::<Tally>([opened()])
        .when(TallyCommand::Open { name: "b".into() })
        .then_error(|e| *e == TallyError::AlreadyOpen);
}

#[test]
fn refusals_are_typed() {
    given::<Tally>([])
        .when(TallyCommand::Add { amount: 1 })
        .then_error(|e| *e == TallyError::NotOpen);
    given::<Tally>([opened(), TallyEvent::Added { amount: 2 }])
        .when(TallyCommand::Add { amount: 0 })
        .then_error(|e| *e == TallyError::NotPositive);
}

#[test]
#[should_panic(expected = "the command produced other events")]
fn the_harness_fails_on_other_events() {
    given::<Tally>([opened()])
        .when(TallyCommand::Add { amount: 3 })
        .then([TallyEvent::Added { amount: 4 }]);
}
