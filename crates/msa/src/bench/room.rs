//! The benchmark's room: the shape of the chat context's room aggregate on the hot path (members
//! may post; each message gets the next sequence number), kept here so the store benchmark does not
//! depend on a service crate.

use msa_kernel::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct BenchRoom {
    pub open: bool,
    pub last_seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum BenchRoomEvent {
    RoomOpened {
        name: String,
    },
    MessagePosted {
        seq: u64,
        sender_id: Uuid,
        body: String,
    },
}

impl DomainEvent for BenchRoomEvent {
    const CONTEXT: &'static str = "bench";
}

pub struct PostMessage {
    pub sender_id: Uuid,
    pub body: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the room is not open")]
pub struct RoomNotOpen;

impl Aggregate for BenchRoom {
    const KIND: &'static str = "bench.room";
    /// Loads read at most this many events after the snapshot, whatever the room's history.
    const SNAPSHOT_EVERY: Option<u64> = Some(50);

    type Command = PostMessage;
    type Event = BenchRoomEvent;
    type Error = RoomNotOpen;

    fn apply(&mut self, event: &BenchRoomEvent) {
        match event {
            BenchRoomEvent::RoomOpened { .. } => self.open = true,
            BenchRoomEvent::MessagePosted { seq, .. } => self.last_seq = *seq,
        }
    }

    fn decide(&self, command: &PostMessage) -> Result<Vec<BenchRoomEvent>, RoomNotOpen> {
        if !self.open {
            return Err(RoomNotOpen);
        }
        Ok(vec![BenchRoomEvent::MessagePosted {
            seq: self.last_seq + 1,
            sender_id: command.sender_id,
            body: command.body.clone(),
        }])
    }
}
