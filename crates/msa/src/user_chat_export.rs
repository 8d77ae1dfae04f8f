//! A person's export (`GET /v1/users/me/export`, user-chat's `crate::export`) composed in both
//! deployments: in the single server its ports are in-process calls into the user, chat and
//! payment services; between microservices HTTP calls (`msa_user_chat::adapters::remote_records`).

use std::sync::Arc;

use anyhow::Result;
use async_trait::async_trait;
use axum::Router;
use msa_chat::adapters::export::{self as chat_export, BadCursor, ChatRecords};
use msa_http::auth::TokenVerifier;
use msa_http::{FieldError, Problem};
use msa_payment::application::payments::export::PaymentRecords;
use msa_payment::application::payments::Payments;
use msa_sql::SqlReadModelStore;
use msa_user::UserService;
use msa_user_chat::adapters::export_http::{routes, ExportApi};
use msa_user_chat::adapters::remote_records::{
    RemoteAccountRecords, RemoteChatRecords, RemotePaymentRecords,
};
use msa_user_chat::application::export::ports::{
    AccountRecordsPort, ChatRecordsPort, PaymentRecordsPort, RecordPage,
};
use msa_user_chat::application::export::Exports;
use msa_user_chat::application::ports::{Requester, ServiceError};

use crate::user_chat::answer;
use serde_json::{Map, Value};
use uuid::Uuid;

/// Items a page holds in-process.
const PAGE: u32 = msa_kernel::page::RECORDS_PAGE;

struct InProcessAccount(Arc<UserService>);

#[async_trait]
impl AccountRecordsPort for InProcessAccount {
    async fn account(&self, caller: &Requester) -> Result<Map<String, Value>, ServiceError> {
        let export = self.0.export(caller.user_id).await.map_err(answer)?;
        match serde_json::to_value(export).map_err(|e| Problem::internal(&e))? {
            Value::Object(account) => Ok(account),
            _ => Err(Problem::internal(&"the account's export is not an object").into()),
        }
    }
}

struct InProcessChatRecords(Arc<SqlReadModelStore>);

#[async_trait]
impl ChatRecordsPort for InProcessChatRecords {
    async fn page(
        &self,
        user_id: Uuid,
        part: ChatRecords,
        cursor: Option<&str>,
    ) -> Result<RecordPage, ServiceError> {
        match chat_export::page(&self.0, user_id, part, cursor, PAGE)
            .await
            .map_err(|e| answer(Problem::storage(&e)))?
        {
            Ok(page) => Ok(RecordPage {
                items: page.items,
                next_cursor: page.next_cursor,
            }),
            Err(BadCursor) => Err(Problem::invalid(vec![FieldError::new(
                "cursor",
                "not a cursor this API gave out",
            )])
            .into()),
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
    ) -> Result<RecordPage, ServiceError> {
        let page = self
            .0
            .records(user_id, part, cursor, PAGE)
            .await
            .map_err(answer)?;
        Ok(RecordPage {
            items: page.items,
            next_cursor: page.next_cursor,
        })
    }
}

/// The export's route in the single server, over the services in this process.
pub fn in_process(
    user: Arc<UserService>,
    chat_records: Arc<SqlReadModelStore>,
    payments: Arc<Payments>,
    verifier: Arc<TokenVerifier>,
) -> Router {
    let exports = Exports::new(
        Arc::new(InProcessAccount(user)),
        Arc::new(InProcessChatRecords(chat_records)),
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
