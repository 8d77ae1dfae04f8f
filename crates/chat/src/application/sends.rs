//! What became of a send, as chat's store knows it: for user-chat's recovery of sends left
//! half-done (a credit spent, the post failed or never made).
//!
//! A send's `txn_id` is an idempotency key of the store (scope [`send_scope`]), written in the
//! same transaction as the message's event, so the key's record says whether the send posted and
//! where. A send that has not posted can be *withdrawn*: its key is recorded with no message, so
//! any later post with that `txn_id` is refused (409) and user-chat may give the credit back,
//! knowing no message will come of it. A post and a withdrawal racing each other both try to
//! insert the same key: the store lets exactly one of them in. Withdrawing a send that posted
//! changes nothing and answers its message.

use std::sync::Arc;

use msa_kernel::{AppendError, EventStore, IdempotencyRecord, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::ChatError;

/// The scope of a sender's `txn_id`s in the store's idempotency keys.
pub fn send_scope(sender_id: Uuid) -> String {
    format!("chat.send:{sender_id}")
}

/// One send, as the sender named it: who, where, and the `txn_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendRef {
    pub sender_id: Uuid,
    pub room_id: Uuid,
    pub txn_id: String,
}

/// What became of a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SendOutcome {
    /// The send posted this message in its room.
    Posted { message_id: Uuid },
    /// No message in this room came of the send and none ever will: it was withdrawn, or its
    /// `txn_id` posted a message in another room.
    Withdrawn,
    /// Nothing yet: a post with this `txn_id` may still come.
    Open,
}

/// At most this many sends are asked about at once.
pub const MAX_SENDS_ASKED: usize = 500;

/// Sends as the store knows them.
pub struct Sends {
    events: Arc<dyn EventStore>,
}

/// The part of a post's stored answer that says where it posted (the rest may change shape).
#[derive(Deserialize)]
struct PostedHere {
    id: Uuid,
    room_id: Uuid,
}

impl Sends {
    pub fn new(events: Arc<dyn EventStore>) -> Self {
        Self { events }
    }

    /// What became of each send, in the order asked (one key read each).
    pub async fn outcomes(&self, sends: &[SendRef]) -> Result<Vec<SendOutcome>, ChatError> {
        let mut outcomes = Vec::with_capacity(sends.len());
        for send in sends {
            outcomes.push(self.outcome(send).await?);
        }
        Ok(outcomes)
    }

    /// Makes sure `send` never posts a message if it has not yet: records its key as withdrawn.
    /// Answers what the send is now (`Open` never). Idempotent.
    pub async fn withdraw(&self, send: &SendRef) -> Result<SendOutcome, ChatError> {
        let record = IdempotencyRecord {
            scope: send_scope(send.sender_id),
            key: send.txn_id.clone(),
            fingerprint: format!("withdrawn\n{}", send.room_id),
            result: json!({ "withdrawn": { "room_id": send.room_id } }),
        };
        match self.events.save_idempotency_record(&record).await {
            Ok(()) => {
                tracing::info!(sender = %send.sender_id, room = %send.room_id, txn_id = %send.txn_id,
                    "a send that never posted was withdrawn");
                Ok(SendOutcome::Withdrawn)
            }
            // A post or an earlier withdrawal holds the key: it says what the send is.
            Err(AppendError::DuplicateIdempotencyKey { .. }) => match self.outcome(send).await? {
                SendOutcome::Open => Err(ChatError::Store(StoreError::Backend(
                    "a send's key vanished after it was found taken".into(),
                ))),
                outcome => Ok(outcome),
            },
            Err(AppendError::Store(error)) => Err(ChatError::Store(error)),
            Err(AppendError::Conflict { .. }) => Err(ChatError::Busy),
        }
    }

    async fn outcome(&self, send: &SendRef) -> Result<SendOutcome, ChatError> {
        let record = self
            .events
            .idempotency_record(&send_scope(send.sender_id), &send.txn_id)
            .await?;
        Ok(match record {
            None => SendOutcome::Open,
            Some(record) => match serde_json::from_value::<PostedHere>(record.result) {
                Ok(posted) if posted.room_id == send.room_id => SendOutcome::Posted {
                    message_id: posted.id,
                },
                // A withdrawal, or a message of another room under the same txn_id.
                _ => SendOutcome::Withdrawn,
            },
        })
    }
}
