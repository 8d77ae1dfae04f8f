//! The `Room` aggregate: given past events, when a command, then events or a refusal.

use std::collections::BTreeMap;

use msa_chat::domain::{MessageBody, Role, Room, RoomCommand, RoomError, RoomEvent, RoomKind};
use msa_kernel::testing::given;
use uuid::Uuid;

fn user(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

const OWNER: u128 = 1;
const MEMBER: u128 = 2;
const OUTSIDER: u128 = 3;

fn created() -> RoomEvent {
    RoomEvent::RoomCreated {
        seq: 1,
        kind: RoomKind::Group,
        name: Some("Tea".into()),
        creator: user(OWNER),
        members: BTreeMap::from([(user(OWNER), Role::Owner), (user(MEMBER), Role::Member)]),
    }
}

fn body(text: &str) -> MessageBody {
    MessageBody::parse(text).unwrap()
}

#[test]
fn the_creator_owns_a_group_room_and_the_others_are_invited_not_made_members() {
    given::<Room>([])
        .when(RoomCommand::Create {
            kind: RoomKind::Group,
            name: Some("Tea".into()),
            creator: user(OWNER),
            members: vec![user(MEMBER), user(OWNER), user(MEMBER)],
        })
        .then([
            RoomEvent::RoomCreated {
                seq: 1,
                kind: RoomKind::Group,
                name: Some("Tea".into()),
                creator: user(OWNER),
                members: BTreeMap::from([(user(OWNER), Role::Owner)]),
            },
            RoomEvent::MemberInvited {
                seq: 2,
                user_id: user(MEMBER),
                by: user(OWNER),
            },
        ]);
}

#[test]
fn a_room_holds_a_bounded_number_of_members_and_invitations() {
    use msa_chat::domain::room::MAX_MEMBERS;
    let crowd: Vec<Uuid> = (10..10 + MAX_MEMBERS as u128).map(user).collect();
    given::<Room>([])
        .when(RoomCommand::Create {
            kind: RoomKind::Group,
            name: None,
            creator: user(OWNER),
            members: crowd.clone(),
        })
        .then_error(|e| *e == RoomError::Full);
    let mut history = vec![created()];
    history.extend(
        crowd[..MAX_MEMBERS - 2]
            .iter()
            .zip(2..)
            .map(|(invitee, seq)| RoomEvent::MemberInvited {
                seq,
                user_id: *invitee,
                by: user(OWNER),
            }),
    );
    given::<Room>(history)
        .when(RoomCommand::Invite {
            by: user(OWNER),
            user_id: user(OUTSIDER),
        })
        .then_error(|e| *e == RoomError::Full);
}

#[test]
fn nobody_moderates_themself_so_a_room_never_loses_its_last_owner() {
    for command in [
        RoomCommand::Ban {
            by: user(OWNER),
            user_id: user(OWNER),
        },
        RoomCommand::Kick {
            by: user(OWNER),
            user_id: user(OWNER),
        },
    ] {
        given::<Room>([created()])
            .when(command)
            .then_error(|e| *e == RoomError::NotYourself);
    }
}

#[test]
fn each_event_takes_the_next_seq() {
    let message_id = user(100);
    given::<Room>([created()])
        .when(RoomCommand::Post {
            sender_id: user(MEMBER),
            message_id,
            body: body("hi"),
            reply_to: None,
        })
        .then([RoomEvent::MessagePosted {
            seq: 2,
            message_id,
            sender_id: user(MEMBER),
            body: body("hi"),
            reply_to: None,
        }]);
}

#[test]
fn only_members_post_and_members_cannot_moderate() {
    given::<Room>([created()])
        .when(RoomCommand::Post {
            sender_id: user(OUTSIDER),
            message_id: user(9),
            body: body("hi"),
            reply_to: None,
        })
        .then_error(|e| *e == RoomError::NotAMember);
    given::<Room>([created()])
        .when(RoomCommand::Kick {
            by: user(MEMBER),
            user_id: user(OWNER),
        })
        .then_error(|e| *e == RoomError::Forbidden);
    given::<Room>([created()])
        .when(RoomCommand::Invite {
            by: user(MEMBER),
            user_id: user(OUTSIDER),
        })
        .then_error(|e| *e == RoomError::Forbidden);
    given::<Room>([])
        .when(RoomCommand::Post {
            sender_id: user(OWNER),
            message_id: user(9),
            body: body("hi"),
            reply_to: None,
        })
        .then_error(|e| *e == RoomError::NotFound);
}

#[test]
fn the_banned_cannot_come_back() {
    let banned = RoomEvent::MemberBanned {
        seq: 2,
        user_id: user(MEMBER),
        by: user(OWNER),
    };
    given::<Room>([created(), banned.clone()])
        .when(RoomCommand::Invite {
            by: user(OWNER),
            user_id: user(MEMBER),
        })
        .then_error(|e| *e == RoomError::Banned);
    given::<Room>([created(), banned])
        .when(RoomCommand::Join {
            user_id: user(MEMBER),
        })
        .then_error(|e| *e == RoomError::Banned);
}

#[test]
fn the_last_owner_hands_over_before_leaving() {
    given::<Room>([created()])
        .when(RoomCommand::Leave {
            user_id: user(OWNER),
        })
        .then_error(|e| *e == RoomError::LastOwner);
    let promoted = RoomEvent::RoleChanged {
        seq: 2,
        user_id: user(MEMBER),
        role: Role::Owner,
        by: user(OWNER),
    };
    given::<Room>([created(), promoted])
        .when(RoomCommand::Leave {
            user_id: user(OWNER),
        })
        .then([RoomEvent::MemberLeft {
            seq: 3,
            user_id: user(OWNER),
        }]);
}

#[test]
fn a_direct_room_is_between_two_equals() {
    given::<Room>([])
        .when(RoomCommand::Create {
            kind: RoomKind::Direct,
            name: None,
            creator: user(OWNER),
            members: vec![],
        })
        .then_error(|e| *e == RoomError::DirectNeedsOnePeer);
    let direct = RoomEvent::RoomCreated {
        seq: 1,
        kind: RoomKind::Direct,
        name: None,
        creator: user(OWNER),
        members: BTreeMap::from([(user(OWNER), Role::Owner), (user(MEMBER), Role::Owner)]),
    };
    given::<Room>([])
        .when(RoomCommand::Create {
            kind: RoomKind::Direct,
            name: None,
            creator: user(OWNER),
            members: vec![user(MEMBER)],
        })
        .then([direct.clone()]);
    given::<Room>([direct])
        .when(RoomCommand::Invite {
            by: user(OWNER),
            user_id: user(OUTSIDER),
        })
        .then_error(|e| *e == RoomError::DirectRoom);
}

fn facts(sender: u128, redacted: bool) -> msa_chat::domain::MessageFacts {
    msa_chat::domain::MessageFacts {
        message_id: user(100),
        sender_id: user(sender),
        redacted,
    }
}

#[test]
fn only_the_sender_edits_and_the_sender_or_a_moderator_deletes() {
    given::<Room>([created()])
        .when(RoomCommand::Edit {
            editor: user(OWNER),
            message: facts(MEMBER, false),
            body: body("mine now"),
        })
        .then_error(|e| *e == RoomError::NotTheSender);
    given::<Room>([created()])
        .when(RoomCommand::Edit {
            editor: user(MEMBER),
            message: facts(MEMBER, true),
            body: body("again"),
        })
        .then_error(|e| *e == RoomError::MessageGone);
    given::<Room>([created()])
        .when(RoomCommand::Redact {
            by: user(MEMBER),
            message: facts(OWNER, false),
        })
        .then_error(|e| *e == RoomError::Forbidden);
    given::<Room>([created()])
        .when(RoomCommand::Redact {
            by: user(OWNER),
            message: facts(MEMBER, false),
        })
        .then([RoomEvent::MessageRedacted {
            seq: 2,
            message_id: user(100),
            by: user(OWNER),
        }]);
}

#[test]
fn a_reaction_is_added_once_and_removed_once() {
    let thumbs = msa_chat::domain::Emoji::parse("👍").unwrap();
    let react = |present, add| RoomCommand::React {
        user_id: user(MEMBER),
        message: facts(OWNER, false),
        emoji: thumbs.clone(),
        present,
        add,
    };
    given::<Room>([created()])
        .when(react(false, true))
        .then([RoomEvent::ReactionAdded {
            seq: 2,
            message_id: user(100),
            user_id: user(MEMBER),
            emoji: thumbs.clone(),
        }]);
    given::<Room>([created()]).when(react(true, true)).then([]);
    given::<Room>([created()])
        .when(react(false, false))
        .then([]);
}

#[test]
fn an_invitee_may_decline_and_is_then_no_longer_invited() {
    let invited = RoomEvent::MemberInvited {
        seq: 2,
        user_id: user(OUTSIDER),
        by: user(OWNER),
    };
    given::<Room>([created(), invited.clone()])
        .when(RoomCommand::Decline {
            user_id: user(OUTSIDER),
        })
        .then([RoomEvent::InviteDeclined {
            seq: 3,
            user_id: user(OUTSIDER),
        }]);
    let declined = RoomEvent::InviteDeclined {
        seq: 3,
        user_id: user(OUTSIDER),
    };
    given::<Room>([created(), invited, declined])
        .when(RoomCommand::Join {
            user_id: user(OUTSIDER),
        })
        .then_error(|e| *e == RoomError::NotInvited);
    given::<Room>([created()])
        .when(RoomCommand::Decline {
            user_id: user(MEMBER),
        })
        .then_error(|e| *e == RoomError::AlreadyMember);
}

/// History applies a deletion a moment after it is appended; until then it still reports the
/// message as there. The room itself remembers its recent deletions, so an edit or a reaction
/// right after a deletion is refused, and the text never comes back.
#[test]
fn a_deleted_message_stays_deleted_while_history_catches_up() {
    let posted = RoomEvent::MessagePosted {
        seq: 2,
        message_id: user(100),
        sender_id: user(MEMBER),
        body: body("secret"),
        reply_to: None,
    };
    let deleted = RoomEvent::MessageRedacted {
        seq: 3,
        message_id: user(100),
        by: user(OWNER),
    };
    // What history says a moment after the deletion: not deleted.
    let stale = facts(MEMBER, false);
    given::<Room>([created(), posted.clone(), deleted.clone()])
        .when(RoomCommand::Edit {
            editor: user(MEMBER),
            message: stale,
            body: body("secret again"),
        })
        .then_error(|e| *e == RoomError::MessageGone);
    given::<Room>([created(), posted.clone(), deleted.clone()])
        .when(RoomCommand::React {
            user_id: user(OWNER),
            message: stale,
            emoji: msa_chat::domain::Emoji::parse("👍").unwrap(),
            present: false,
            add: true,
        })
        .then_error(|e| *e == RoomError::MessageGone);
    given::<Room>([created(), posted, deleted])
        .when(RoomCommand::Redact {
            by: user(MEMBER),
            message: stale,
        })
        .then([]);
}
