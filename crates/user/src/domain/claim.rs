//! Claims keep emails and nicknames unique. An event-sourced `User` cannot lean on a unique
//! index, so each normalized email and nickname is its own tiny aggregate, a `Claim`, whose
//! stream the store's version guard serializes: of any number of concurrent sign-ups taking one
//! claim, exactly one append succeeds and the others, decided again on the new state, are refused.

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
    ClaimTaken { user_id: Uuid },
    ClaimReleased { user_id: Uuid },
}

impl DomainEvent for ClaimEvent {
    const CONTEXT: &'static str = "user";
}

#[derive(Debug, Clone)]
pub enum ClaimCommand {
    Take { user_id: Uuid },
    Release { user_id: Uuid },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("already taken")]
    Taken { holder: Uuid },
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claim {
    pub holder: Option<Uuid>,
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
            ClaimEvent::ClaimTaken { user_id } => self.holder = Some(*user_id),
            ClaimEvent::ClaimReleased { .. } => self.holder = None,
        }
    }

    fn decide(&self, command: &ClaimCommand) -> Result<Vec<ClaimEvent>, ClaimError> {
        match (command, self.holder) {
            // Taking one's own claim again changes nothing (a retried sign-up).
            (ClaimCommand::Take { user_id }, Some(holder)) if holder == *user_id => Ok(vec![]),
            (ClaimCommand::Take { .. }, Some(holder)) => Err(ClaimError::Taken { holder }),
            (ClaimCommand::Take { user_id }, None) => {
                Ok(vec![ClaimEvent::ClaimTaken { user_id: *user_id }])
            }
            (ClaimCommand::Release { user_id }, Some(holder)) if holder == *user_id => {
                Ok(vec![ClaimEvent::ClaimReleased { user_id: *user_id }])
            }
            // Releasing what one does not hold changes nothing.
            (ClaimCommand::Release { .. }, _) => Ok(vec![]),
        }
    }
}
