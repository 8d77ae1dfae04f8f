//! What a person's export needs from each core service: its part of what it keeps about them.
//! The single server answers these in-process (`crates/msa/src/user_chat_export.rs`); between
//! microservices [`crate::adapters::remote_records`] calls the user service's own export with the
//! caller's token, and chat's and payment's `/internal/v1/users/{id}/records/{part}` with
//! user-chat's service identity.

use async_trait::async_trait;
use msa_chat::contract::ChatRecords;
use msa_payment::contract::PaymentRecords;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::application::ports::{Requester, ServiceError};

/// A page of one part of a person's records, its items as the owning service wrote them.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RecordPage {
    pub items: Vec<Value>,
    /// Where the next page starts; `None` after the last.
    pub next_cursor: Option<String>,
}

#[async_trait]
pub trait AccountRecordsPort: Send + Sync {
    /// The user service's part, for the caller themself (their profile, account history and
    /// sessions: a JSON object whose members go into the export as they are).
    async fn account(&self, caller: &Requester) -> Result<Map<String, Value>, ServiceError>;
}

#[async_trait]
pub trait ChatRecordsPort: Send + Sync {
    /// A page of `part` of what chat keeps about `user_id`, after `cursor`.
    async fn page(
        &self,
        user_id: Uuid,
        part: ChatRecords,
        cursor: Option<&str>,
    ) -> Result<RecordPage, ServiceError>;
}

#[async_trait]
pub trait PaymentRecordsPort: Send + Sync {
    /// A page of `part` of what payment keeps about `user_id`, after `cursor`.
    async fn page(
        &self,
        user_id: Uuid,
        part: PaymentRecords,
        cursor: Option<&str>,
    ) -> Result<RecordPage, ServiceError>;
}
