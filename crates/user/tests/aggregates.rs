//! The user context's aggregates, given past events, when a command, then events or a refusal.

use chrono::{TimeZone, Utc};
use msa_kernel::testing::given;
use msa_user::domain::{
    Bio, Claim, ClaimCommand, ClaimError, ClaimEvent, Email, Nickname, Role, User, UserCommand,
    UserError, UserEvent,
};
use uuid::Uuid;

fn ada() -> Uuid {
    Uuid::from_u128(1)
}

fn registered() -> UserEvent {
    UserEvent::UserRegistered {
        user_id: ada(),
        email: Email::parse("ada@example.com").unwrap(),
        nickname: Nickname::parse("Ada").unwrap(),
        password_hash: "$argon2id$…".into(),
        roles: vec![Role::User],
        registered_at: Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap(),
    }
}

fn register() -> UserCommand {
    let UserEvent::UserRegistered {
        user_id,
        email,
        nickname,
        password_hash,
        roles,
        registered_at,
    } = registered()
    else {
        unreachable!()
    };
    UserCommand::Register {
        user_id,
        email,
        nickname,
        password_hash,
        roles,
        at: registered_at,
    }
}

#[test]
fn a_new_account_registers_once() {
    given::<User>([]).when(register()).then([registered()]);
    given::<User>([registered()])
        .when(register())
        .then_error(|e| *e == UserError::AlreadyRegistered);
}

#[test]
fn a_profile_change_records_only_what_differs() {
    let bio = Bio::parse("Analyst").unwrap();
    given::<User>([registered()])
        .when(UserCommand::ChangeProfile {
            nickname: Some(Nickname::parse("Ada").unwrap()),
            bio: Some(bio.clone()),
            avatar_url: None,
        })
        .then([UserEvent::ProfileChanged {
            nickname: None,
            bio: Some(bio.clone()),
            avatar_url: None,
        }]);
    given::<User>([
        registered(),
        UserEvent::ProfileChanged {
            nickname: None,
            bio: Some(bio.clone()),
            avatar_url: None,
        },
    ])
    .when(UserCommand::ChangeProfile {
        nickname: None,
        bio: Some(bio),
        avatar_url: None,
    })
    .then([]);
}

#[test]
fn a_deactivated_account_accepts_no_changes() {
    let deactivated = UserEvent::UserDeactivated {
        deactivated_at: Utc::now(),
    };
    given::<User>([registered(), deactivated.clone()])
        .when(UserCommand::ChangePassword {
            password_hash: "new".into(),
            at: Utc::now(),
        })
        .then_error(|e| *e == UserError::Deactivated);
    given::<User>([registered(), deactivated])
        .when(UserCommand::Deactivate { at: Utc::now() })
        .then_error(|e| *e == UserError::Deactivated);
    given::<User>([])
        .when(UserCommand::Deactivate { at: Utc::now() })
        .then_error(|e| *e == UserError::NotRegistered);
}

/// A take now, under the default hold.
fn take(user_id: Uuid) -> ClaimCommand {
    ClaimCommand::Take {
        user_id,
        at: Utc::now(),
        erasure_hold: msa_user::application::NICKNAME_HOLD,
    }
}

#[test]
fn a_claim_has_one_holder_at_a_time() {
    let bob = Uuid::from_u128(2);
    given::<Claim>([])
        .when(take(ada()))
        .then([ClaimEvent::ClaimTaken { user_id: ada() }]);
    given::<Claim>([ClaimEvent::ClaimTaken { user_id: ada() }])
        .when(take(bob))
        .then_error(|e| *e == ClaimError::Taken { holder: ada() });
    // Taking one's own claim again is a no-op; releasing someone else's too.
    given::<Claim>([ClaimEvent::ClaimTaken { user_id: ada() }])
        .when(take(ada()))
        .then([]);
    given::<Claim>([ClaimEvent::ClaimTaken { user_id: ada() }])
        .when(ClaimCommand::Release { user_id: bob })
        .then([]);
    given::<Claim>([
        ClaimEvent::ClaimTaken { user_id: ada() },
        ClaimEvent::ClaimReleased { user_id: ada() },
    ])
    .when(take(bob))
    .then([ClaimEvent::ClaimTaken { user_id: bob }]);
}

#[test]
fn an_erased_holders_claim_is_held_for_the_hold_after_the_erasure() {
    let bob = Uuid::from_u128(2);
    let erased_at = Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap();
    let erased = || {
        [
            ClaimEvent::ClaimTaken { user_id: ada() },
            ClaimEvent::ClaimReleasedOnErasure {
                user_id: ada(),
                erased_at,
            },
        ]
    };
    let take_at = |days: i64| ClaimCommand::Take {
        user_id: bob,
        at: erased_at + chrono::Duration::days(days),
        erasure_hold: chrono::Duration::days(30),
    };
    given::<Claim>([ClaimEvent::ClaimTaken { user_id: ada() }])
        .when(ClaimCommand::ReleaseOnErasure {
            user_id: ada(),
            at: erased_at,
        })
        .then([ClaimEvent::ClaimReleasedOnErasure {
            user_id: ada(),
            erased_at,
        }]);
    let until = erased_at + chrono::Duration::days(30);
    given::<Claim>(erased())
        .when(take_at(29))
        .then_error(|e| *e == ClaimError::Held { until });
    given::<Claim>(erased())
        .when(take_at(30))
        .then([ClaimEvent::ClaimTaken { user_id: bob }]);
    // The hold is read when a take is decided: a shorter setting frees it sooner.
    given::<Claim>(erased())
        .when(ClaimCommand::Take {
            user_id: bob,
            at: erased_at + chrono::Duration::seconds(2),
            erasure_hold: chrono::Duration::seconds(1),
        })
        .then([ClaimEvent::ClaimTaken { user_id: bob }]);
    // Only an erasure holds: a plain release (a rename) frees the claim at once, and a release
    // on erasure by someone who does not hold the claim changes nothing.
    given::<Claim>([ClaimEvent::ClaimTaken { user_id: bob }])
        .when(ClaimCommand::ReleaseOnErasure {
            user_id: ada(),
            at: erased_at,
        })
        .then([]);
}

#[test]
fn claim_streams_hide_the_value_and_ignore_case() {
    let upper = Claim::stream(
        msa_user::domain::ClaimKind::Email,
        &Email::parse("ADA@example.com").unwrap().normalized(),
    );
    let lower = Claim::stream(msa_user::domain::ClaimKind::Email, "ada@example.com");
    assert_eq!(upper, lower);
    assert!(!upper.as_str().contains("ada"), "{upper}");
    let nickname = Claim::stream(msa_user::domain::ClaimKind::Nickname, "ada@example.com");
    assert_ne!(nickname, lower, "kinds do not collide");
}
