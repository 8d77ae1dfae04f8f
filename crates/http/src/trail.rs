//! Trails ([`msa_kernel::trail`]) over HTTP, for admins only:
//!
//! - [`part_routes`]: a service's part, `POST /internal/v1/trail/{conversations,events,handlings}`;
//! - [`RemoteTrail`]: such a part asked over HTTP, with the admin's own token;
//! - [`admin_routes`]: `GET /v1/admin/trail/{id}`, the whole trail composed from sources (every
//!   context's stores in the single server; user-chat's own and the other services' parts
//!   between microservices).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::{FromRef, Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use msa_kernel::trail::{
    self, Trail, TrailError, TrailEvent, TrailHandling, TrailSource, MOST_CONVERSATIONS,
    MOST_EVENTS, MOST_NAMING,
};
use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{Caller, TokenVerifier};
use crate::{FieldError, Problem, StrictJson};

/// The sources of one admin's trail (remote ones call with the admin's token).
pub type Sources = Arc<dyn Fn(&Caller) -> Vec<Arc<dyn TrailSource>> + Send + Sync>;

#[derive(Clone)]
struct TrailApi<T> {
    of: T,
    verifier: Arc<TokenVerifier>,
}

impl<T> FromRef<TrailApi<T>> for Arc<TokenVerifier> {
    fn from_ref(api: &TrailApi<T>) -> Self {
        api.verifier.clone()
    }
}

fn admin_only(caller: &Caller) -> Result<(), Problem> {
    match caller.is_admin() {
        true => Ok(()),
        false => Err(Problem::forbidden("only an admin may read trails")),
    }
}

fn answer(error: TrailError) -> Problem {
    match error {
        TrailError::Store(error) => Problem::storage(&error),
        TrailError::Unavailable(detail) => {
            tracing::warn!(%detail, "a trail's part could not be read");
            Problem::unavailable("a service's part of the trail is unavailable; try again", 2)
        }
    }
}

/// `GET /v1/admin/trail/{id}` over `sources`.
pub fn admin_routes(sources: Sources, verifier: Arc<TokenVerifier>) -> Router {
    Router::new()
        .route("/v1/admin/trail/{id}", get(whole))
        .with_state(TrailApi {
            of: sources,
            verifier,
        })
}

/// Everything one request set off, across every context, in causal order.
#[utoipa::path(get, path = "/v1/admin/trail/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "A correlation id, an event id, or the id of what the events name (a message, a payment, a room, a user)")),
    responses(
        (status = 200, description = "The steps (`event`, `published`, `handled`) in causal order, and whether limits cut the trail short", body = Object),
        (status = 401, description = "No valid access token", body = Problem),
        (status = 403, description = "The caller is no admin", body = Problem),
        (status = 422, description = "`id` is no UUID", body = Problem),
        (status = 503, description = "A store or service is unavailable", body = Problem)))]
async fn whole(
    State(api): State<TrailApi<Sources>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Trail>, Problem> {
    admin_only(&caller)?;
    let id: Uuid = id.parse().map_err(|_| {
        Problem::invalid(vec![FieldError::new(
            "id",
            "a correlation, event, message or payment id (a UUID)",
        )])
    })?;
    let sources = (api.of)(&caller);
    Ok(Json(trail::trail(&sources, id).await.map_err(answer)?))
}

/// The admin trail's API document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(whole), components(schemas(Problem)))]
pub struct TrailApiDoc;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConversationsOf {
    id: Uuid,
    most: usize,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsOf {
    conversations: Vec<Uuid>,
    most: usize,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HandlingsOf {
    event_ids: Vec<Uuid>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

/// A service's part of trails, over its own stores (`/internal`: the gateway never routes there).
pub fn part_routes(source: Arc<dyn TrailSource>, verifier: Arc<TokenVerifier>) -> Router {
    Router::new()
        .route("/internal/v1/trail/conversations", post(conversations))
        .route("/internal/v1/trail/events", post(events))
        .route("/internal/v1/trail/handlings", post(handlings))
        .with_state(TrailApi {
            of: source,
            verifier,
        })
}

fn at_most(field: &str, value: usize, most: usize) -> Result<(), Problem> {
    match value <= most {
        true => Ok(()),
        false => Err(Problem::invalid(vec![FieldError::new(
            field,
            format!("at most {most}"),
        )])),
    }
}

async fn conversations(
    State(api): State<TrailApi<Arc<dyn TrailSource>>>,
    caller: Caller,
    StrictJson(asked): StrictJson<ConversationsOf>,
) -> Result<Json<Items<Uuid>>, Problem> {
    admin_only(&caller)?;
    at_most("most", asked.most, MOST_NAMING)?;
    let items = api
        .of
        .conversations_of(asked.id, asked.most)
        .await
        .map_err(answer)?;
    Ok(Json(Items { items }))
}

async fn events(
    State(api): State<TrailApi<Arc<dyn TrailSource>>>,
    caller: Caller,
    StrictJson(asked): StrictJson<EventsOf>,
) -> Result<Json<Items<TrailEvent>>, Problem> {
    admin_only(&caller)?;
    at_most(
        "conversations",
        asked.conversations.len(),
        MOST_CONVERSATIONS,
    )?;
    at_most("most", asked.most, MOST_EVENTS + 1)?;
    let items = api
        .of
        .events_of(&asked.conversations, asked.most)
        .await
        .map_err(answer)?;
    Ok(Json(Items { items }))
}

async fn handlings(
    State(api): State<TrailApi<Arc<dyn TrailSource>>>,
    caller: Caller,
    StrictJson(asked): StrictJson<HandlingsOf>,
) -> Result<Json<Items<TrailHandling>>, Problem> {
    admin_only(&caller)?;
    at_most("event_ids", asked.event_ids.len(), MOST_EVENTS)?;
    let items = api
        .of
        .handlings_of(&asked.event_ids)
        .await
        .map_err(answer)?;
    Ok(Json(Items { items }))
}

/// A service's part of trails, asked over HTTP as the admin whose token it holds.
pub struct RemoteTrail {
    name: &'static str,
    base: Url,
    client: reqwest::Client,
    token: String,
}

impl RemoteTrail {
    /// A client for the parts of the service at `base` (a trail's calls share it).
    pub fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("a TLS backend")
    }

    pub fn new(name: &'static str, base: Url, client: reqwest::Client, token: String) -> Self {
        Self {
            name,
            base,
            client,
            token,
        }
    }

    async fn ask<T: DeserializeOwned>(
        &self,
        part: &str,
        body: &impl Serialize,
    ) -> Result<Vec<T>, TrailError> {
        let unavailable = |why: String| TrailError::Unavailable(format!("{}: {why}", self.name));
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| unavailable("not an http(s) URL".into()))?
            .pop_if_empty()
            .extend(["internal", "v1", "trail", part]);
        let response = self
            .client
            .post(url)
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(|error| unavailable(error.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            return Err(unavailable(format!("answered {status} to /{part}")));
        }
        let items: Items<T> = response
            .json()
            .await
            .map_err(|error| unavailable(error.without_url().to_string()))?;
        Ok(items.items)
    }
}

#[async_trait]
impl TrailSource for RemoteTrail {
    async fn conversations_of(&self, id: Uuid, most: usize) -> Result<Vec<Uuid>, TrailError> {
        self.ask("conversations", &ConversationsOf { id, most })
            .await
    }

    async fn events_of(
        &self,
        conversations: &[Uuid],
        most: usize,
    ) -> Result<Vec<TrailEvent>, TrailError> {
        let asked = EventsOf {
            conversations: conversations.to_vec(),
            most,
        };
        self.ask("events", &asked).await
    }

    async fn handlings_of(&self, event_ids: &[Uuid]) -> Result<Vec<TrailHandling>, TrailError> {
        let asked = HandlingsOf {
            event_ids: event_ids.to_vec(),
        };
        self.ask("handlings", &asked).await
    }
}
