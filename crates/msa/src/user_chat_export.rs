//! A person's export (`GET /v1/users/me/export`, user-chat's `crate::export`) composed in both
//! deployments: in the single server its ports are in-process calls into the user, chat and
//! payment services; between microservices HTTP calls (`msa_user_chat::adapters::remote_records`).

use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;
use axum::Router;
use msa_chat::adapters::export::{self as chat_export, BadCursor, ChatRecords};
use msa_chat::ChatService;
use msa_http::auth::{Caller, TokenVerifier};
use msa_http::{FieldError, Problem};
use msa_payment::application::payments::export::PaymentRecords;
use msa_payment::application::payments::Payments;
use msa_user::UserService;
use msa_user_chat::adapters::export_http::{routes, ExportApi};
use msa_user_chat::adapters::remote_records::{
    RemoteAccountRecords, RemoteChatRecords, RemotePaymentRecords,
};
use msa_user_chat::export::ports::{
    AccountRecordsPort, ChatRecordsPort, PaymentRecordsPort, RecordPage,
};
use msa_user_chat::export::Exports;
use serde_json::{Map, Value};
use uuid::Uuid;

/// Items a page holds in-process.
const PAGE: u32 = msa_http::RECORDS_PAGE;

struct InProcessAccount(Arc<UserService>);

#[async_trait]
impl AccountRecordsPort for InProcessAccount {
    async fn account(&self, caller: &Caller) -> Result<Map<String, Value>, Problem> {
        let export = self.0.export(caller.user_id).await?;
        match serde_json::to_value(export).map_err(|e| Problem::internal(&e))? {
            Value::Object(account) => Ok(account),
            _ => Err(Problem::internal(&"the account's export is not an object")),
        }
    }
}

struct InProcessChatRecords(Arc<ChatService>);

#[async_trait]
impl ChatRecordsPort for InProcessChatRecords {
    async fn page(
        &self,
        user_id: Uuid,
        part: ChatRecords,
        cursor: Option<&str>,
    ) -> Result<RecordPage, Problem> {
        match chat_export::page(self.0.read_models(), user_id, part, cursor, PAGE)
            .await
            .map_err(|e| Problem::internal(&e))?
        {
            Ok(page) => Ok(RecordPage {
                items: page.items,
                next_cursor: page.next_cursor,
            }),
            Err(BadCursor) => Err(Problem::invalid(vec![FieldError::new(
                "cursor",
                "not a cursor this API gave out",
            )])),
        }
    }
}

struct InProcessPaymentRecords(Arc<Payments>);

#[async_trait]
impl PaymentRecordsPort for InProcessPaymentRecords {
    async fn page(
        &self,
        user_id: Uuid,
        part: PaymentRecords,
        cursor: Option<&str>,
    ) -> Result<RecordPage, Problem> {
        let page = self.0.records(user_id, part, cursor, PAGE).await?;
        Ok(RecordPage {
            items: page.items,
            next_cursor: page.next_cursor,
        })
    }
}

/// The export's route in the single server, over the services in this process.
pub fn in_process(
    user: Arc<UserService>,
    chat: Arc<ChatService>,
    payments: Arc<Payments>,
    verifier: Arc<TokenVerifier>,
) -> Router {
    let exports = Exports::new(
        Arc::new(InProcessAccount(user)),
        Arc::new(InProcessChatRecords(chat)),
        Arc::new(InProcessPaymentRecords(payments)),
    );
    routes(ExportApi {
        exports: Arc::new(exports),
        verifier,
    })
}

/// The export's route in `serve user-chat`: the other services asked over HTTP (chat's and
/// payment's internal endpoints as user-chat).
pub fn remote(services: &crate::user_chat::RemoteServices, verifier: Arc<TokenVerifier>) -> Router {
    let exports = Exports::new(
        Arc::new(RemoteAccountRecords(services.user.clone())),
        Arc::new(RemoteChatRecords(services.chat.clone())),
        Arc::new(RemotePaymentRecords(services.payment.clone())),
    );
    routes(ExportApi {
        exports: Arc::new(exports),
        verifier,
    })
}
