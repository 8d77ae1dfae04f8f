//! user-chat's ports answered over HTTP, between microservices: chat's and payment's internal
//! endpoints (with user-chat's own service token, naming the user acted for), chat's public ones
//! (with the caller's access token) and the user service's public profiles. A problem document
//! from a service is passed on as it is; a service that cannot be reached is a 503.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use msa_chat::contract::{
    MessageBody, PostedMessage, RoomKind, RoomName, RoomPage, RoomView, TxnId,
};
use msa_http::service_identity::ServiceIdentity;
use msa_http::Problem;
use msa_payment::contract::{SpendKey, Spent};
use msa_user::contract::ProfileView;
use reqwest::{Method, RequestBuilder, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use tracing::Instrument;
use uuid::Uuid;

use crate::application::ports::{ChatPort, DirectoryPort, Requester, ServiceError, WalletPort};

/// A core service's base URL and the client that calls it.
#[derive(Clone)]
pub struct Service {
    name: &'static str,
    base: Url,
    client: reqwest::Client,
    /// Who user-chat is to the service's `/internal` endpoints.
    identity: Option<Arc<ServiceIdentity>>,
}

impl Service {
    /// `timeout` bounds each call; a call that exceeds it is a 503.
    pub fn new(name: &'static str, base: &str, timeout: Duration) -> Result<Self, String> {
        let base = Url::parse(base).map_err(|e| format!("{base}: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(format!("{base}: not an http(s) URL"));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            name,
            base,
            client,
            identity: None,
        })
    }

    /// Calls the service's `/internal` endpoints as `identity`.
    pub fn with_identity(self, identity: Arc<ServiceIdentity>) -> Self {
        Self {
            identity: Some(identity),
            ..self
        }
    }

    /// A request to an `/internal` endpoint, with this service's token for the called one.
    pub(crate) fn internal(&self, method: Method, segments: &[&str]) -> RequestBuilder {
        let request = self.request(method, segments, None);
        match &self.identity {
            Some(identity) => request.bearer_auth(identity.token_for(self.name)),
            None => request,
        }
    }

    pub(crate) fn request(
        &self,
        method: Method,
        segments: &[&str],
        caller: Option<&Requester>,
    ) -> RequestBuilder {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http(s) base URL")
            .pop_if_empty()
            .extend(segments);
        let request = self.client.request(method, url);
        match caller {
            Some(caller) => request.bearer_auth(&caller.token),
            None => request,
        }
    }

    /// Sends and reads a JSON answer with its status; a non-2xx answer is the service's problem.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<(StatusCode, T), Problem> {
        let mut request = request.build().map_err(|error| {
            Problem::internal(&format!("a call to {}: {}", self.name, error.without_url()))
        })?;
        let span = tracing::debug_span!(
            "call",
            otel.name = %request.method(),
            otel.kind = "client",
            http.request.method = %request.method(),
            server.address = self.name,
            http.response.status_code = tracing::field::Empty,
        );
        for (name, value) in msa_http::telemetry::outgoing(&span) {
            if let Ok(value) = reqwest::header::HeaderValue::from_str(&value) {
                request.headers_mut().insert(name, value);
            }
        }
        let response = self
            .client
            .execute(request)
            .instrument(span.clone())
            .await
            .map_err(|error| self.unreachable(error))?;
        span.record("http.response.status_code", response.status().as_u16());
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        let body = response
            .bytes()
            .await
            .map_err(|error| self.unreachable(error))?;
        if status.is_success() {
            let value = serde_json::from_slice(if body.is_empty() { b"null" } else { &body })
                .map_err(|error| {
                    Problem::internal(&format!("{} answered unexpected JSON: {error}", self.name))
                })?;
            return Ok((status, value));
        }
        Err(serde_json::from_slice::<Problem>(&body)
            .unwrap_or_else(|_| {
                Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream",
                    format!("{} answered {status}", self.name),
                )
            })
            .with_retry_after(retry_after))
    }

    /// [`call`](Self::call) for a request made with [`internal`](Self::internal): a 401 there
    /// refuses user-chat's service token, not the user's, so the user is told the service is
    /// unavailable (and the operator why, in the log).
    pub(crate) async fn call_internal<T: DeserializeOwned>(
        &self,
        request: RequestBuilder,
    ) -> Result<(StatusCode, T), Problem> {
        self.call(request).await.map_err(|problem| {
            if problem.status != StatusCode::UNAUTHORIZED.as_u16() {
                return problem;
            }
            tracing::error!(service = self.name, detail = %problem.detail,
                "the service refused user-chat's service token");
            Problem::unavailable(
                format!("the {} service is unavailable; try again", self.name),
                2,
            )
        })
    }

    fn unreachable(&self, error: reqwest::Error) -> Problem {
        tracing::warn!(service = self.name, error = %error.without_url(), "service call failed");
        Problem::unavailable(
            format!("the {} service is unavailable; try again", self.name),
            2,
        )
    }
}

pub struct RemoteChat(pub Service);

#[async_trait]
impl ChatPort for RemoteChat {
    async fn post(
        &self,
        sender: &Requester,
        room_id: Uuid,
        txn_id: &TxnId,
        body: MessageBody,
        reply_to: Option<Uuid>,
    ) -> Result<(PostedMessage, bool), ServiceError> {
        let room = room_id.to_string();
        let request = self
            .0
            .internal(Method::POST, &["internal", "v1", "rooms", &room, "messages"])
            .json(&json!({"sender": sender.user_id, "txn_id": txn_id.as_str(), "body": body.as_str(), "reply_to": reply_to}));
        let (status, posted) = self.0.call_internal(request).await?;
        Ok((posted, status == StatusCode::CREATED))
    }

    async fn send_outcomes(
        &self,
        sends: &[msa_chat::contract::SendRef],
    ) -> Result<Vec<msa_chat::contract::SendOutcome>, ServiceError> {
        #[derive(Deserialize)]
        struct Outcomes {
            items: Vec<msa_chat::contract::SendOutcome>,
        }
        let request = self
            .0
            .internal(Method::POST, &["internal", "v1", "sends", "outcomes"])
            .json(&json!({ "sends": sends }));
        let (_, outcomes): (_, Outcomes) = self.0.call_internal(request).await?;
        if outcomes.items.len() != sends.len() {
            return Err(ServiceError::failed(format!(
                "chat answered {} outcomes for {} sends",
                outcomes.items.len(),
                sends.len()
            )));
        }
        Ok(outcomes.items)
    }

    async fn withdraw_send(
        &self,
        send: &msa_chat::contract::SendRef,
    ) -> Result<msa_chat::contract::SendOutcome, ServiceError> {
        let request = self
            .0
            .internal(Method::POST, &["internal", "v1", "sends", "withdrawals"])
            .json(send);
        let (_, outcome) = self.0.call_internal(request).await?;
        Ok(outcome)
    }

    async fn create_room(
        &self,
        caller: &Requester,
        kind: RoomKind,
        name: Option<RoomName>,
        members: Vec<Uuid>,
    ) -> Result<(RoomView, bool), ServiceError> {
        let request = self
            .0
            .internal(Method::POST, &["internal", "v1", "rooms"])
            .json(
                &json!({"creator": caller.user_id, "kind": kind, "name": name.as_ref().map(RoomName::as_str), "members": members}),
            );
        let (status, room) = self.0.call_internal(request).await?;
        Ok((room, status == StatusCode::CREATED))
    }

    async fn invite(
        &self,
        caller: &Requester,
        room_id: Uuid,
        user_id: Uuid,
    ) -> Result<(), ServiceError> {
        let room = room_id.to_string();
        let request = self
            .0
            .internal(Method::POST, &["internal", "v1", "rooms", &room, "invites"])
            .json(&json!({"by": caller.user_id, "user_id": user_id}));
        self.0.call_internal::<serde_json::Value>(request).await?;
        Ok(())
    }

    async fn rooms_of(
        &self,
        caller: &Requester,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<RoomPage, ServiceError> {
        let limit = limit.to_string();
        let mut query = vec![("limit", limit.as_str())];
        query.extend(cursor.map(|cursor| ("cursor", cursor)));
        let request = self
            .0
            .request(Method::GET, &["v1", "rooms"], Some(caller))
            .query(&query);
        let (_, page): (_, RoomPage) = self.0.call(request).await?;
        Ok(page)
    }
}

pub struct RemoteWallets(pub Service);

#[async_trait]
impl WalletPort for RemoteWallets {
    async fn spend(&self, user: &Requester, spend_key: &SpendKey) -> Result<Spent, ServiceError> {
        let wallet = user.user_id.to_string();
        let request = self
            .0
            .internal(
                Method::POST,
                &["internal", "v1", "wallets", &wallet, "spends"],
            )
            .json(&json!({ "spend_key": spend_key.as_str() }));
        let (status, spent): (_, Spent) = self.0.call_internal(request).await?;
        Ok(Spent {
            replayed: status != StatusCode::CREATED,
            ..spent
        })
    }

    async fn refund_spend(&self, user_id: Uuid, spend_key: &SpendKey) -> Result<(), ServiceError> {
        let wallet = user_id.to_string();
        let request = self.0.internal(
            Method::DELETE,
            &[
                "internal",
                "v1",
                "wallets",
                &wallet,
                "spends",
                spend_key.as_str(),
            ],
        );
        self.0.call_internal::<serde_json::Value>(request).await?;
        Ok(())
    }
}

pub struct RemoteDirectory(pub Service);

/// A public profile as the user service answers it.
#[derive(Deserialize)]
struct PublicProfile {
    id: Uuid,
    nickname: String,
    bio: Option<String>,
    avatar_url: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<PublicProfile> for ProfileView {
    fn from(profile: PublicProfile) -> Self {
        Self {
            id: profile.id,
            email: None,
            nickname: profile.nickname,
            bio: profile.bio,
            avatar_url: profile.avatar_url,
            roles: None,
            created_at: profile.created_at,
        }
    }
}

impl RemoteDirectory {
    /// The public profile at `segments`; `None` when the user service knows nobody there (404) or
    /// cannot take the name as one (422: such a nickname belongs to nobody).
    async fn public_profile(&self, segments: &[&str]) -> Result<Option<ProfileView>, ServiceError> {
        let request = self.0.request(Method::GET, segments, None);
        match self.0.call::<PublicProfile>(request).await {
            Ok((_, profile)) => Ok(Some(profile.into())),
            Err(problem) if problem.status == 404 || problem.status == 422 => Ok(None),
            Err(problem) => Err(problem.into()),
        }
    }
}

#[async_trait]
impl DirectoryPort for RemoteDirectory {
    async fn profile(&self, user_id: Uuid) -> Result<Option<ProfileView>, ServiceError> {
        self.public_profile(&["v1", "users", &user_id.to_string()])
            .await
    }

    async fn by_nickname(&self, nickname: &str) -> Result<Option<ProfileView>, ServiceError> {
        // The exact look-up reads the nickname's claim: no lag behind a sign-up, unlike the
        // directory search.
        self.public_profile(&["v1", "users", "by-nickname", nickname])
            .await
    }
}
