//! Posting a message, idempotent by the sender's `txn_id`.

use chrono::{DateTime, Utc};
use msa_kernel::repository::IdempotencyKey;
use msa_kernel::{CommandError, FieldError, Repository, StoreError};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{metadata, sends, ChatError, ChatService};
use crate::domain::{MessageBody, MessageId, Room, RoomCommand, RoomError, RoomEvent, TxnId};

/// A posted message, as the sender gets it back (also on a retry with the same `txn_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PostedMessage {
    pub id: Uuid,
    pub room_id: Uuid,
    pub seq: u64,
    pub sender_id: Uuid,
    pub body: String,
    pub reply_to: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

impl ChatService {
    /// Posts a message. `txn_id` names the send: a retry with the same `txn_id` by the same sender
    /// returns the first answer and posts nothing (the store keeps the key with the event).
    /// Returns the message and whether this call posted it.
    pub async fn post(
        &self,
        sender_id: Uuid,
        room_id: Uuid,
        txn_id: &TxnId,
        body: MessageBody,
        reply_to: Option<Uuid>,
    ) -> Result<(PostedMessage, bool), ChatError> {
        if let Some(original) = reply_to {
            // A reply names a message of the same room.
            match self.posted(room_id, original, None).await {
                Ok(_) => {}
                Err(ChatError::MessageNotFound) => {
                    return Err(ChatError::Invalid(vec![FieldError::new(
                        "reply_to",
                        "no such message in this room",
                    )]))
                }
                Err(other) => return Err(other),
            }
        }
        let fingerprint: String = Sha256::digest(
            format!(
                "{room_id}\n{}\n{}",
                body.as_str(),
                reply_to.map(|r| r.to_string()).unwrap_or_default()
            )
            .as_bytes(),
        )
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
        let key = IdempotencyKey {
            scope: sends::send_scope(sender_id),
            key: txn_id.as_str().to_owned(),
            fingerprint,
        };
        let command = RoomCommand::Post {
            room_id,
            sender_id,
            body: body.clone(),
            reply_to,
        };
        let created_at = Utc::now();
        let outcome = self
            .rooms
            .execute_idempotent(
                &Repository::<Room>::stream_id(room_id),
                &command,
                &metadata(sender_id),
                key,
                |state, events| {
                    // The id the room gave the post (it names the room and the seq).
                    let id = match events.first() {
                        Some(RoomEvent::MessagePosted { message_id, .. }) => *message_id,
                        _ => MessageId::of(room_id, state.last_seq),
                    };
                    serde_json::to_value(PostedMessage {
                        id,
                        room_id,
                        seq: state.last_seq,
                        sender_id,
                        body: body.as_str().to_owned(),
                        reply_to,
                        created_at,
                    })
                    .unwrap_or_default()
                },
            )
            .await
            .map_err(|error| match error {
                CommandError::Domain(RoomError::NotFound) => ChatError::Room(RoomError::NotFound),
                other => other.into(),
            })?;
        let message: PostedMessage =
            serde_json::from_value(outcome.result).map_err(StoreError::backend)?;
        Ok((message, !outcome.replayed))
    }
}
