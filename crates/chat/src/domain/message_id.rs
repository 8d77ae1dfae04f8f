//! A message's id names its place: the room and the room's `seq` of its post. So a command about
//! a message finds the post in the room's stream (the event at version `seq`) without asking a
//! read model, and a message posted a moment ago is found like any other.
//!
//! The id is a UUIDv8 (RFC 9562's custom layout): the first 60 bits are the `seq`, big-endian
//! (a room's ids sort in posting order), the last 62 bits a SHA-256 of the room id (ids of
//! different rooms differ). Messages posted before ids carried their place have UUIDv7 ids;
//! [`MessageId::seq_in`] answers `None` for them.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The largest `seq` an id can hold (2^60 - 1).
const MAX_SEQ: u64 = (1 << 60) - 1;

pub struct MessageId;

impl MessageId {
    /// The id of the message posted in `room_id` with `seq`.
    pub fn of(room_id: Uuid, seq: u64) -> Uuid {
        let seq = seq & MAX_SEQ;
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&(seq >> 12).to_be_bytes()[2..]);
        bytes[6] = 0x80 | ((seq >> 8) & 0x0f) as u8;
        bytes[7] = seq as u8;
        bytes[8..].copy_from_slice(&Self::room_mark(room_id));
        Uuid::from_bytes(bytes)
    }

    /// The `seq` `id` names in `room_id`, if it is an id of that room's kind.
    pub fn seq_in(room_id: Uuid, id: Uuid) -> Option<u64> {
        let bytes = id.as_bytes();
        if id.get_version_num() != 8 || bytes[8..] != Self::room_mark(room_id) {
            return None;
        }
        let mut high = [0u8; 8];
        high[2..].copy_from_slice(&bytes[..6]);
        let seq = (u64::from_be_bytes(high) << 12)
            | (u64::from(bytes[6] & 0x0f) << 8)
            | u64::from(bytes[7]);
        Some(seq)
    }

    /// 62 bits of the room id's digest, behind the RFC 4122 variant bits.
    fn room_mark(room_id: Uuid) -> [u8; 8] {
        let digest = Sha256::digest(room_id.as_bytes());
        let mut mark = [0u8; 8];
        mark.copy_from_slice(&digest[..8]);
        mark[0] = 0x80 | (mark[0] & 0x3f);
        mark
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_names_its_room_and_seq() {
        let room = Uuid::now_v7();
        for seq in [1, 2, 255, 256, 4_095, 4_096, 1 << 40, MAX_SEQ] {
            let id = MessageId::of(room, seq);
            assert_eq!(id.get_version_num(), 8);
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
            assert_eq!(MessageId::seq_in(room, id), Some(seq), "{seq}");
            assert_eq!(MessageId::seq_in(Uuid::now_v7(), id), None);
        }
        assert_eq!(MessageId::seq_in(room, Uuid::now_v7()), None);
        assert!(MessageId::of(room, 9) < MessageId::of(room, 10));
        assert!(MessageId::of(room, 255) < MessageId::of(room, 4_096));
    }
}
