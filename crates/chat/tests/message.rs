//! The `Message` aggregate: a message's changes, decided on its own stream with the post's facts
//! read from the room's stream.

use msa_chat::domain::{
    Earlier, Emoji, Message, MessageBody, MessageCommand, Posted, Role, RoomError, RoomEvent,
};
use msa_kernel::testing::given;
use uuid::Uuid;

fn user(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

const OWNER: u128 = 1;
const MEMBER: u128 = 2;

fn body(text: &str) -> MessageBody {
    MessageBody::parse(text).unwrap()
}

fn thumbs() -> Emoji {
    Emoji::parse("👍").unwrap()
}

/// A message `MEMBER` posted at seq 7.
fn posted() -> Posted {
    Posted {
        message_id: user(100),
        seq: 7,
        sender_id: user(MEMBER),
        earlier: None,
    }
}

fn deleted() -> RoomEvent {
    RoomEvent::MessageRedacted {
        seq: 7,
        message_id: user(100),
        by: user(OWNER),
    }
}

fn react(add: bool) -> MessageCommand {
    MessageCommand::React {
        user_id: user(OWNER),
        posted: posted(),
        emoji: thumbs(),
        add,
    }
}

#[test]
fn only_the_sender_edits_and_the_sender_or_a_moderator_deletes() {
    given::<Message>([])
        .when(MessageCommand::Edit {
            editor: user(OWNER),
            posted: posted(),
            body: body("mine now"),
        })
        .then_error(|e| *e == RoomError::NotTheSender);
    given::<Message>([])
        .when(MessageCommand::Edit {
            editor: user(MEMBER),
            posted: posted(),
            body: body("better"),
        })
        .then([RoomEvent::MessageEdited {
            seq: 7,
            message_id: user(100),
            body: body("better"),
        }]);
    given::<Message>([])
        .when(MessageCommand::Redact {
            by: user(OWNER),
            role: Role::Member,
            posted: posted(),
        })
        .then_error(|e| *e == RoomError::Forbidden);
    given::<Message>([])
        .when(MessageCommand::Redact {
            by: user(OWNER),
            role: Role::Admin,
            posted: posted(),
        })
        .then([deleted()]);
}

/// The bug this aggregate exists for: an edit right after a deletion brought the text back,
/// because the edit was decided on history, which had not applied the deletion yet.
#[test]
fn a_deleted_message_stays_deleted() {
    given::<Message>([deleted()])
        .when(MessageCommand::Edit {
            editor: user(MEMBER),
            posted: posted(),
            body: body("secret again"),
        })
        .then_error(|e| *e == RoomError::MessageGone);
    given::<Message>([deleted()])
        .when(react(true))
        .then_error(|e| *e == RoomError::MessageGone);
    given::<Message>([deleted()])
        .when(MessageCommand::Redact {
            by: user(MEMBER),
            role: Role::Member,
            posted: posted(),
        })
        .then([]);
}

#[test]
fn a_reaction_is_added_once_and_removed_once() {
    let added = RoomEvent::ReactionAdded {
        seq: 7,
        message_id: user(100),
        user_id: user(OWNER),
        emoji: thumbs(),
    };
    let removed = RoomEvent::ReactionRemoved {
        seq: 7,
        message_id: user(100),
        user_id: user(OWNER),
        emoji: thumbs(),
    };
    given::<Message>([]).when(react(true)).then([added.clone()]);
    given::<Message>([added.clone()]).when(react(true)).then([]);
    given::<Message>([]).when(react(false)).then([]);
    given::<Message>([added.clone()])
        .when(react(false))
        .then([removed.clone()]);
    given::<Message>([added.clone(), removed])
        .when(react(true))
        .then([added]);
}

#[test]
fn one_person_puts_a_bounded_number_of_reactions_on_a_message() {
    let shortcode = |n: usize| Emoji::parse(&format!(":r{n}:")).unwrap();
    let past: Vec<RoomEvent> = (0..msa_chat::domain::message::MAX_REACTIONS_PER_USER)
        .map(|n| RoomEvent::ReactionAdded {
            seq: 7,
            message_id: user(100),
            user_id: user(OWNER),
            emoji: shortcode(n),
        })
        .collect();
    given::<Message>(past)
        .when(react(true))
        .then_error(|e| *e == RoomError::TooManyReactions);
}

/// A message posted before messages had streams: what history knew of it then counts until the
/// message's own stream says otherwise.
#[test]
fn an_older_message_keeps_what_happened_to_it_before() {
    let earlier = |redacted, reacted| Posted {
        earlier: Some(Earlier { redacted, reacted }),
        ..posted()
    };
    given::<Message>([])
        .when(MessageCommand::Edit {
            editor: user(MEMBER),
            posted: earlier(true, false),
            body: body("back"),
        })
        .then_error(|e| *e == RoomError::MessageGone);
    given::<Message>([])
        .when(MessageCommand::React {
            user_id: user(OWNER),
            posted: earlier(false, true),
            emoji: thumbs(),
            add: true,
        })
        .then([]);
    given::<Message>([RoomEvent::ReactionRemoved {
        seq: 7,
        message_id: user(100),
        user_id: user(OWNER),
        emoji: thumbs(),
    }])
    .when(MessageCommand::React {
        user_id: user(OWNER),
        posted: earlier(false, true),
        emoji: thumbs(),
        add: true,
    })
    .then([RoomEvent::ReactionAdded {
        seq: 7,
        message_id: user(100),
        user_id: user(OWNER),
        emoji: thumbs(),
    }]);
}
