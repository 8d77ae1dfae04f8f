//! The export's ports answered over HTTP, between microservices: the user service's own export
//! of the account (with the caller's access token, as the caller), chat's and payment's
//! `/internal/v1/users/{id}/records/{part}` (with user-chat's service identity).

use async_trait::async_trait;
use msa_chat::contract::ChatRecords;
use msa_http::Problem;
use msa_payment::contract::PaymentRecords;
use reqwest::Method;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::remote::Service;
use crate::application::export::ports::{
    AccountRecordsPort, ChatRecordsPort, PaymentRecordsPort, RecordPage,
};
use crate::application::ports::{Requester, ServiceError};

/// A page of a person's records at a service's internal endpoint.
async fn records_page(
    service: &Service,
    user_id: Uuid,
    part: &str,
    cursor: Option<&str>,
) -> Result<RecordPage, Problem> {
    let user = user_id.to_string();
    // No limit: the services' page of records (`msa_http::RECORDS_PAGE`).
    let query: Vec<(&str, &str)> = cursor
        .map(|cursor| ("cursor", cursor))
        .into_iter()
        .collect();
    let request = service
        .internal(
            Method::GET,
            &["internal", "v1", "users", &user, "records", part],
        )
        .query(&query);
    let (_, page) = service.call_internal(request).await?;
    Ok(page)
}

pub struct RemoteAccountRecords(pub Service);

#[async_trait]
impl AccountRecordsPort for RemoteAccountRecords {
    async fn account(&self, caller: &Requester) -> Result<Map<String, Value>, ServiceError> {
        let request = self
            .0
            .request(Method::GET, &["v1", "users", "me", "export"], Some(caller));
        let (_, account) = self.0.call(request).await?;
        Ok(account)
    }
}

pub struct RemoteChatRecords(pub Service);

#[async_trait]
impl ChatRecordsPort for RemoteChatRecords {
    async fn page(
        &self,
        user_id: Uuid,
        part: ChatRecords,
        cursor: Option<&str>,
    ) -> Result<RecordPage, ServiceError> {
        Ok(records_page(&self.0, user_id, part.as_str(), cursor).await?)
    }
}

pub struct RemotePaymentRecords(pub Service);

#[async_trait]
impl PaymentRecordsPort for RemotePaymentRecords {
    async fn page(
        &self,
        user_id: Uuid,
        part: PaymentRecords,
        cursor: Option<&str>,
    ) -> Result<RecordPage, ServiceError> {
        Ok(records_page(&self.0, user_id, part.as_str(), cursor).await?)
    }
}
