//! The chat context (a core service): rooms, their members and roles, messages and history. It
//! knows users only by id (the access token's `sub`) and references no other context.
//!
//! - [`domain`]: the `Room` aggregate (membership, roles, bans, the per-room sequence) and the
//!   `DirectPair` claim that keeps one direct room per pair of users;
//! - [`application`]: the use cases ([`ChatService`]), callable in-process (user-chat) or over HTTP;
//! - [`adapters`]: HTTP (`/v1/rooms`) and the history projection.

pub mod adapters;
pub mod application;
pub mod domain;

pub use application::{ChatError, ChatService};

/// What other services may use of the chat context: its events, DTOs and the use cases they call
/// in-process (the architecture test holds application services to this module).
pub mod contract {
    pub use crate::adapters::export::{
        ChatRecords, ExportedInvitation, ExportedMessage, ExportedReaction, ExportedReadMarker,
        ExportedRoom, RecordPage,
    };
    pub use crate::adapters::http::{
        parse_new_message, parse_new_room, room_answer, NewMessage, NewRoom,
    };
    pub use crate::application::sends::{SendOutcome, SendRef, MAX_SENDS_ASKED};
    pub use crate::application::views::{MessageView, RoomCursor, RoomSummary};
    pub use crate::application::{PostedMessage, RoomPage, RoomView};
    pub use crate::domain::{
        MessageBody, Role, Room, RoomCommand, RoomEvent, RoomKind, RoomName, TxnId,
        MAX_TXN_ID_BYTES,
    };
}

/// The chat context's own query-side tables (versions 3000 and up).
pub fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.set_ignore_missing(true);
    migrator
}

/// The chat context, as the composition root sees it (`msa_context`).
pub struct Context;

#[async_trait::async_trait]
impl msa_context::BoundedContext for Context {
    fn name(&self) -> &'static str {
        "chat"
    }

    fn migrator(&self) -> sqlx::migrate::Migrator {
        migrator()
    }

    fn projections(
        &self,
        backend: msa_sql::Backend,
    ) -> Vec<std::sync::Arc<dyn msa_kernel::Projection<msa_sql::Tx>>> {
        vec![
            std::sync::Arc::new(adapters::history::History),
            std::sync::Arc::new(adapters::invites::Invites),
            std::sync::Arc::new(adapters::search::Search { backend }),
        ]
    }

    /// An index built by an earlier version is built again first (searches answer 503
    /// meanwhile); history and invitations follow the log as usual.
    async fn before_following(
        &self,
        name: &str,
        runner: &msa_kernel::ProjectionRunner<msa_sql::SqlReadModelStore>,
        read_models: &msa_sql::SqlReadModelStore,
    ) -> Result<u64, msa_kernel::RunError> {
        if name != adapters::search::Search::NAME {
            return Ok(0);
        }
        let search = adapters::search::Search {
            backend: read_models.backend(),
        };
        adapters::search::rebuild_if_due(runner, read_models, &search).await
    }

    fn api_document(&self) -> utoipa::openapi::OpenApi {
        <adapters::http::ChatApiDoc as utoipa::OpenApi>::openapi()
    }

    fn events(&self, document: &mut serde_json::Value) -> Vec<(String, serde_json::Value)> {
        let mut events = msa_http::asyncapi::event_payloads::<domain::RoomEvent>(
            <domain::RoomEvent as msa_kernel::DomainEvent>::CONTEXT,
            document,
        );
        events.extend(
            msa_http::asyncapi::event_payloads::<domain::DirectPairEvent>(
                <domain::DirectPairEvent as msa_kernel::DomainEvent>::CONTEXT,
                document,
            ),
        );
        events
    }
}
