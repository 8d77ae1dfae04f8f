//! The `Room` aggregate: given past events, when a command, then events or a refusal.

use std::collections::BTreeMap;

use msa_chat::domain::{
    MessageBody, MessageId, Role, Room, RoomCommand, RoomError, RoomEvent, RoomKind, RoomName,
    Topic,
};
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
            name: Some(RoomName::parse(" Tea ").unwrap()),
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
fn each_event_takes_the_next_seq_and_a_message_id_names_its_room_and_seq() {
    let room_id = user(50);
    let message_id = MessageId::of(room_id, 2);
    given::<Room>([created()])
        .when(RoomCommand::Post {
            room_id,
            sender_id: user(MEMBER),
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
            room_id: user(50),
            sender_id: user(OUTSIDER),
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
            room_id: user(50),
            sender_id: user(OWNER),
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

#[test]
fn changing_details_keeps_what_is_left_out_and_clears_a_null_topic() {
    let topic = |text: &str| Topic::parse(text).unwrap();
    let with_topic = RoomEvent::DetailsChanged {
        seq: 2,
        name: Some("Tea".into()),
        topic: Some("oolong".into()),
        by: user(OWNER),
    };
    // A new topic alone keeps the name.
    given::<Room>([created()])
        .when(RoomCommand::ChangeDetails {
            by: user(OWNER),
            name: None,
            topic: Some(topic("oolong")),
        })
        .then([with_topic.clone()]);
    // A new name alone keeps the topic; a null topic clears it.
    given::<Room>([created(), with_topic.clone()])
        .when(RoomCommand::ChangeDetails {
            by: user(OWNER),
            name: Some(RoomName::parse("Coffee").unwrap()),
            topic: None,
        })
        .then([RoomEvent::DetailsChanged {
            seq: 3,
            name: Some("Coffee".into()),
            topic: Some("oolong".into()),
            by: user(OWNER),
        }]);
    given::<Room>([created(), with_topic.clone()])
        .when(RoomCommand::ChangeDetails {
            by: user(OWNER),
            name: None,
            topic: Some(None),
        })
        .then([RoomEvent::DetailsChanged {
            seq: 3,
            name: Some("Tea".into()),
            topic: None,
            by: user(OWNER),
        }]);
    // What already is changes nothing; members who are not admins change nothing at all.
    given::<Room>([created(), with_topic])
        .when(RoomCommand::ChangeDetails {
            by: user(OWNER),
            name: Some(RoomName::parse("Tea").unwrap()),
            topic: Some(topic("oolong")),
        })
        .then([]);
    given::<Room>([created()])
        .when(RoomCommand::ChangeDetails {
            by: user(MEMBER),
            name: None,
            topic: Some(topic("mine")),
        })
        .then_error(|e| *e == RoomError::Forbidden);
}

#[test]
fn an_outsider_learns_nothing_of_a_direct_room_not_even_its_kind() {
    let direct = RoomEvent::RoomCreated {
        seq: 1,
        kind: RoomKind::Direct,
        name: None,
        creator: user(OWNER),
        members: BTreeMap::from([(user(OWNER), Role::Owner), (user(MEMBER), Role::Owner)]),
    };
    let (by, user_id) = (user(OUTSIDER), user(MEMBER));
    for command in [
        RoomCommand::Invite { by, user_id },
        RoomCommand::Kick { by, user_id },
        RoomCommand::Ban { by, user_id },
        RoomCommand::Unban { by, user_id },
        RoomCommand::SetRole {
            by,
            user_id,
            role: Role::Admin,
        },
        RoomCommand::ChangeDetails {
            by,
            name: None,
            topic: Some(None),
        },
    ] {
        given::<Room>([direct.clone()])
            .when(command)
            .then_error(|e| *e == RoomError::NotAMember);
    }
    // Joining it is refused as joining an uninvited group is.
    given::<Room>([direct.clone()])
        .when(RoomCommand::Join { user_id: by })
        .then_error(|e| *e == RoomError::NotInvited);
    // Its members are told it is a direct room.
    given::<Room>([direct])
        .when(RoomCommand::Unban {
            by: user(OWNER),
            user_id: user(OUTSIDER),
        })
        .then_error(|e| *e == RoomError::DirectRoom);
}
