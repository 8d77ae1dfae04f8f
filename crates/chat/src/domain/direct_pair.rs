//! One direct room per pair of users: the pair is a claim whose stream the store's version guard
//! serializes, so of two racing "open a direct room" requests exactly one creates the room and the
//! other finds it.

use msa_kernel::{Aggregate, DomainEvent, StreamId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", content = "data")]
pub enum DirectPairEvent {
    DirectRoomAssigned { room_id: Uuid },
}

impl DomainEvent for DirectPairEvent {
    const CONTEXT: &'static str = "chat";
}

#[derive(Debug, Clone, strum::IntoStaticStr)]
#[strum(serialize_all = "snake_case")]
pub enum DirectPairCommand {
    Assign { room_id: Uuid },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the pair already has a direct room")]
pub struct PairTaken {
    pub room_id: Uuid,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectPair {
    pub room_id: Option<Uuid>,
}

impl DirectPair {
    /// The same stream whichever of the two asks.
    pub fn stream(a: Uuid, b: Uuid) -> StreamId {
        let (low, high) = if a <= b { (a, b) } else { (b, a) };
        let digest = Sha256::digest(format!("{low}:{high}").as_bytes());
        let hex: String = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        StreamId::new(Self::KIND, hex)
    }
}

impl Aggregate for DirectPair {
    const KIND: &'static str = "chat.direct";

    type Command = DirectPairCommand;
    type Event = DirectPairEvent;
    type Error = PairTaken;

    fn apply(&mut self, event: &DirectPairEvent) {
        let DirectPairEvent::DirectRoomAssigned { room_id } = event;
        self.room_id = Some(*room_id);
    }

    fn command_name(command: &Self::Command) -> &'static str {
        command.into()
    }

    fn decide(&self, command: &DirectPairCommand) -> Result<Vec<DirectPairEvent>, PairTaken> {
        let DirectPairCommand::Assign { room_id } = command;
        match self.room_id {
            Some(existing) => Err(PairTaken { room_id: existing }),
            None => Ok(vec![DirectPairEvent::DirectRoomAssigned {
                room_id: *room_id,
            }]),
        }
    }
}
