//! A person's export (`GET /v1/users/me/export`): everything the system keeps about them, in one
//! JSON document ([`PersonalExport`] is its schema). user-chat owns none of it: the user service
//! gives the account's part (profile, account history, sessions), chat the rooms, sent messages,
//! reactions, read markers and open invitations, payment the payments with their refunds and the ledger, each
//! through its port ([`ports`]).
//!
//! The document is streamed, not built: the account's part and the first page of every other
//! part are fetched before answering (so a refusal or a service that is down is a clean problem
//! document), then each part is written page by page (at most 500 items a page, and at most
//! [`PAGES_AHEAD`] pages waiting for the client), so exporting 100,000 messages holds a few
//! pages, never the whole history. A service failing after the answer started cuts the body
//! off (the transfer does not complete and the JSON does not parse): ask again.

pub mod ports;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::Stream;
use msa_chat::contract::{
    ChatRecords, ExportedInvitation, ExportedMessage, ExportedReaction, ExportedReadMarker,
    ExportedRoom,
};
use msa_payment::contract::{ExportedPayment, LedgerEntry, PaymentRecords};
use msa_user::contract::ProfileView;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::ports::{Requester, ServiceError};
use ports::{AccountRecordsPort, ChatRecordsPort, PaymentRecordsPort, RecordPage};

/// The document's `version`; a change that is not an addition raises it.
pub const EXPORT_VERSION: u32 = 1;

/// Pages written ahead of a slow client (the rest waits for it).
pub const PAGES_AHEAD: usize = 2;

/// Everything the system keeps about one person (`GET /v1/users/me/export`). Lists are in the
/// owning service's order: rooms, reactions and read markers by id, messages oldest first,
/// payments and ledger lines newest first.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // the schema of a document that is streamed, never built as one value
pub struct PersonalExport {
    /// The version of this document's shape ([`EXPORT_VERSION`]).
    version: u32,
    user_id: Uuid,
    exported_at: DateTime<Utc>,
    /// The account as its owner sees it.
    profile: ProfileView,
    /// The account's history (user events), personal data opened, password hashes left out.
    #[schema(value_type = Vec<Object>)]
    events: Vec<Value>,
    /// Login sessions (refresh tokens, without the tokens).
    #[schema(value_type = Vec<Object>)]
    sessions: Vec<Value>,
    /// The rooms they are a member of now.
    rooms: Vec<ExportedRoom>,
    /// Every message they sent, in any room, deleted ones included (without their text).
    messages: Vec<ExportedMessage>,
    reactions: Vec<ExportedReaction>,
    read_markers: Vec<ExportedReadMarker>,
    /// Invitations to rooms they have not answered yet.
    invitations: Vec<ExportedInvitation>,
    /// Their payments, each with its refunds.
    payments: Vec<ExportedPayment>,
    /// Their credit wallet's ledger lines.
    ledger: Vec<LedgerEntry>,
}

/// A part of the document that comes in pages.
#[derive(Debug, Clone, Copy)]
enum Part {
    Chat(ChatRecords),
    Payment(PaymentRecords),
}

impl Part {
    const ALL: [Part; 7] = [
        Part::Chat(ChatRecords::Rooms),
        Part::Chat(ChatRecords::Messages),
        Part::Chat(ChatRecords::Reactions),
        Part::Chat(ChatRecords::ReadMarkers),
        Part::Chat(ChatRecords::Invitations),
        Part::Payment(PaymentRecords::Payments),
        Part::Payment(PaymentRecords::Ledger),
    ];

    fn name(self) -> &'static str {
        match self {
            Part::Chat(part) => part.as_str(),
            Part::Payment(part) => part.as_str(),
        }
    }
}

/// A chunk of the document, or why it stopped.
pub type Chunk = Result<Vec<u8>, std::io::Error>;

pub struct Exports {
    account: Arc<dyn AccountRecordsPort>,
    chat: Arc<dyn ChatRecordsPort>,
    payments: Arc<dyn PaymentRecordsPort>,
}

impl Exports {
    pub fn new(
        account: Arc<dyn AccountRecordsPort>,
        chat: Arc<dyn ChatRecordsPort>,
        payments: Arc<dyn PaymentRecordsPort>,
    ) -> Self {
        Self {
            account,
            chat,
            payments,
        }
    }

    /// The caller's export, as a stream of the document's chunks. Refused (the account's part
    /// refused: a deactivated account) or unavailable (a service down) before anything is sent.
    pub async fn export(
        self: &Arc<Self>,
        caller: &Requester,
    ) -> Result<impl Stream<Item = Chunk> + Send + 'static, ServiceError> {
        let account = self.account.account(caller).await?;
        let user_id = caller.user_id;
        let mut first_pages = Vec::with_capacity(Part::ALL.len());
        for part in Part::ALL {
            first_pages.push(self.page(user_id, part, None).await?);
        }
        let (chunks, waiting) = tokio::sync::mpsc::channel(PAGES_AHEAD);
        let exports = self.clone();
        tokio::spawn(async move {
            if let Err(error) = exports.write(user_id, account, first_pages, &chunks).await {
                tracing::warn!(%user_id, %error, "an export stopped before its end");
                let _ = chunks.send(Err(error)).await;
            }
        });
        Ok(futures::stream::unfold(waiting, |mut waiting| async move {
            waiting.recv().await.map(|chunk| (chunk, waiting))
        }))
    }

    async fn page(
        &self,
        user_id: Uuid,
        part: Part,
        cursor: Option<&str>,
    ) -> Result<RecordPage, ServiceError> {
        match part {
            Part::Chat(part) => self.chat.page(user_id, part, cursor).await,
            Part::Payment(part) => self.payments.page(user_id, part, cursor).await,
        }
    }

    /// Writes the document into `chunks`: its head and the account's part, then each part page
    /// by page. Stops quietly when the client has gone.
    async fn write(
        &self,
        user_id: Uuid,
        account: Map<String, Value>,
        first_pages: Vec<RecordPage>,
        chunks: &tokio::sync::mpsc::Sender<Chunk>,
    ) -> Result<(), std::io::Error> {
        let mut head = Map::new();
        head.insert("version".into(), EXPORT_VERSION.into());
        head.insert("user_id".into(), user_id.to_string().into());
        head.insert("exported_at".into(), Utc::now().to_rfc3339().into());
        head.extend(account);
        // The head is an object; the parts go in before its closing brace.
        let mut text = serde_json::to_string(&Value::Object(head))?;
        text.pop();
        if chunks.send(Ok(text.into_bytes())).await.is_err() {
            return Ok(());
        }
        for (part, first) in Part::ALL.into_iter().zip(first_pages) {
            let mut chunk = format!(",\"{}\":[", part.name()).into_bytes();
            let (mut page, mut written) = (first, 0usize);
            loop {
                for item in &page.items {
                    if written > 0 {
                        chunk.push(b',');
                    }
                    serde_json::to_writer(&mut chunk, item)?;
                    written += 1;
                }
                let Some(cursor) = page.next_cursor.take() else {
                    break;
                };
                if chunks.send(Ok(std::mem::take(&mut chunk))).await.is_err() {
                    return Ok(());
                }
                page = self
                    .page(user_id, part, Some(&cursor))
                    .await
                    .map_err(|error| std::io::Error::other(format!("{}: {error}", part.name())))?;
            }
            chunk.push(b']');
            if chunks.send(Ok(chunk)).await.is_err() {
                return Ok(());
            }
        }
        let _ = chunks.send(Ok(b"}".to_vec())).await;
        Ok(())
    }
}
