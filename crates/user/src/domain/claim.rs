//! Claims keep emails and nicknames unique. An event-sourced `User` cannot lean on a unique
//! index, so each normalized email and nickname is its own tiny aggregate, a `Claim`, whose
//! stream the store's version guard serializes: of any number of concurrent sign-ups taking one
//! claim, exactly one append succeeds and the others, decided again on the new state, are refused.
//!
//! A nickname is not free the moment its holder erases their account: others knew that person by
//! it, and a stranger answering to it would inherit their trust. Erasure releases a claim with the
//! time it happened (`ClaimReleasedOnErasure`), and a take within the hold after that is refused
//! (`ClaimError::Held`). The hold is the operator's setting, passed with each take, so the claim's
//! events decide it, not a timer: changing the setting applies to every claim at once.

use chrono::{DateTime, Duration, Utc};
use msa_kernel::{Aggregate, DomainEvent, StreamId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// What a claim makes unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimKind {
    Email,
    Nickname,
    /// What a nickname looks like ([`Nickname::look`](super::Nickname::look), its confusables
    /// skeleton): look-alike nicknames collide on it. Taken beside the `Nickname` claim, which
    /// exact look-ups use.
    NicknameLook,
    /// A Kakao account id: one Kakao account signs in to one user.
    Kakao,
}

impl ClaimKind {
    fn as_str(self) -> &'static str {
        match self {
            ClaimKind::Email => "email",
            ClaimKind::Nickname => "nickname",
            ClaimKind::NicknameLook => "nickname-look",
            ClaimKind::Kakao => "kakao",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", content = "data")]
pub enum ClaimEvent {
    ClaimTaken {
        user_id: Uuid,
    },
    ClaimReleased {
        user_id: Uuid,
    },
    /// The holder erased their account at `erased_at`: the claim is free once the hold after
    /// that has passed.
    ClaimReleasedOnErasure {
        user_id: Uuid,
        erased_at: DateTime<Utc>,
    },
}

impl DomainEvent for ClaimEvent {
    const CONTEXT: &'static str = "user";
}

#[derive(Debug, Clone, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum ClaimCommand {
    /// Take the claim at `at`; a claim released by an erasure stays held for `erasure_hold`.
    Take {
        user_id: Uuid,
        at: DateTime<Utc>,
        erasure_hold: Duration,
    },
    Release {
        user_id: Uuid,
    },
    /// The holder's account was erased at `at`.
    ReleaseOnErasure {
        user_id: Uuid,
        at: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("already taken")]
    Taken { holder: Uuid },
    /// Its last holder erased their account; free from `until`.
    #[error("held after an erasure until {until}")]
    Held { until: DateTime<Utc> },
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub holder: Option<Uuid>,
    /// When the last holder erased their account, if that is how it was released.
    #[serde(default)]
    pub erased_at: Option<DateTime<Utc>>,
}

impl Claim {
    /// The claim's stream. The value is hashed, so stream ids (which outlive an account's erasure)
    /// hold no email or nickname in clear.
    pub fn stream(kind: ClaimKind, normalized: &str) -> StreamId {
        let digest = Sha256::digest(format!("{}:{normalized}", kind.as_str()).as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        StreamId::new(Self::KIND, format!("{}-{hex}", kind.as_str()))
    }
}

impl Aggregate for Claim {
    const KIND: &'static str = "user.claim";

    type Command = ClaimCommand;
    type Event = ClaimEvent;
    type Error = ClaimError;

    fn apply(&mut self, event: &ClaimEvent) {
        match event {
            ClaimEvent::ClaimTaken { user_id } => {
                self.holder = Some(*user_id);
                self.erased_at = None;
            }
            ClaimEvent::ClaimReleased { .. } => self.holder = None,
            ClaimEvent::ClaimReleasedOnErasure { erased_at, .. } => {
                self.holder = None;
                self.erased_at = Some(*erased_at);
            }
        }
    }

    fn command_name(command: &Self::Command) -> &'static str {
        command.into()
    }

    fn decide(&self, command: &ClaimCommand) -> Result<Vec<ClaimEvent>, ClaimError> {
        match (command, self.holder) {
            // Taking one's own claim again changes nothing (a retried sign-up).
            (ClaimCommand::Take { user_id, .. }, Some(holder)) if holder == *user_id => Ok(vec![]),
            (ClaimCommand::Take { .. }, Some(holder)) => Err(ClaimError::Taken { holder }),
            (
                ClaimCommand::Take {
                    user_id,
                    at,
                    erasure_hold,
                },
                None,
            ) => match self.erased_at.map(|erased_at| erased_at + *erasure_hold) {
                Some(until) if *at < until => Err(ClaimError::Held { until }),
                _ => Ok(vec![ClaimEvent::ClaimTaken { user_id: *user_id }]),
            },
            (ClaimCommand::Release { user_id }, Some(holder)) if holder == *user_id => {
                Ok(vec![ClaimEvent::ClaimReleased { user_id: *user_id }])
            }
            (ClaimCommand::ReleaseOnErasure { user_id, at }, Some(holder))
                if holder == *user_id =>
            {
                Ok(vec![ClaimEvent::ClaimReleasedOnErasure {
                    user_id: *user_id,
                    erased_at: *at,
                }])
            }
            // Releasing what one does not hold changes nothing.
            (ClaimCommand::Release { .. } | ClaimCommand::ReleaseOnErasure { .. }, _) => Ok(vec![]),
        }
    }
}
