//! The chat context's language: rooms (group or direct), members with roles, messages with a
//! per-room sequence number.

pub mod body;
pub mod direct_pair;
pub mod emoji;
pub mod message;
pub mod message_id;
pub mod room;
pub mod room_name;
pub mod search_text;
pub mod topic;
pub mod txn_id;

pub use body::MessageBody;
pub use direct_pair::{DirectPair, DirectPairCommand, DirectPairEvent, PairTaken};
pub use emoji::Emoji;
pub use message::{room_of, Earlier, Message, MessageCommand, Posted};
pub use message_id::MessageId;
pub use room::{MembershipChange, Role, Room, RoomCommand, RoomError, RoomEvent, RoomKind};
pub use room_name::RoomName;
pub use search_text::SearchText;
pub use topic::Topic;
pub use txn_id::{TxnId, MAX_TXN_ID_BYTES};

pub use msa_kernel::invalid::Invalid;
