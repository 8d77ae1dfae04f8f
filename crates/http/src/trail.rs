//! Trails ([`msa_kernel::trail`]) over HTTP, for admins only:
//!
//! - [`admin_routes`]: `GET /v1/admin/trail/{id}`, the whole trail composed from sources (every
//!   context's stores in the single server; user-chat's own and the other services' parts
//!   between microservices);
//! - [`part_routes`]: a service's part, `POST /v1/admin/trail-parts/{conversations,events,handlings}`.
//!   They take the admin's own access token, like the whole, so they are admin endpoints, not
//!   `/internal` ones (which take services' tokens only); the gateway routes none of them;
//! - [`RemoteTrail`]: such a part asked over HTTP, with the admin's token.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::extract::FromRequestParts;
use axum::extract::{FromRef, Path, State};
use axum::http::request::Parts;
use axum::routing::{get, post};
use axum::{Json, Router};
use msa_kernel::trail::{
    self, Trail, TrailError, TrailEvent, TrailHandling, TrailSource, MOST_CONVERSATIONS,
    MOST_EVENTS, MOST_NAMING,
};
use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tracing::Instrument;
use uuid::Uuid;

use crate::auth::{Caller, TokenVerifier};
use crate::{FieldError, Problem, StrictJson};

/// The sources of one admin's trail (remote ones call with the admin's token).
pub type Sources = Arc<dyn Fn(&Caller) -> Vec<Arc<dyn TrailSource>> + Send + Sync>;

/// What the trail's handlers share: where the trail is read from, and the token checks.
#[derive(Clone)]
struct TrailApi<T> {
    read_from: T,
    verifier: Arc<TokenVerifier>,
}

impl<T> FromRef<TrailApi<T>> for Arc<TokenVerifier> {
    fn from_ref(api: &TrailApi<T>) -> Self {
        api.verifier.clone()
    }
}

/// A caller with the `admin` role, checked before any body is read.
struct Admin(Caller);

impl<S> FromRequestParts<S> for Admin
where
    Arc<TokenVerifier>: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        match caller.is_admin() {
            true => Ok(Admin(caller)),
            false => Err(Problem::forbidden("only an admin may read trails")),
        }
    }
}

/// The answer to a trail that could not be read: a store or service away is a 503 (try again);
/// a service that refused its part (a token that expired meanwhile, a part of another version)
/// a 502 saying which.
fn problem_of(error: TrailError) -> Problem {
    match error {
        TrailError::Store(error) => Problem::storage(&error),
        TrailError::Unavailable(detail) => {
            tracing::warn!(%detail, "a trail's part could not be read");
            Problem::unavailable("a service's part of the trail is unavailable; try again", 2)
        }
        TrailError::Refused(detail) => {
            tracing::warn!(%detail, "a service refused its part of a trail");
            Problem::new(axum::http::StatusCode::BAD_GATEWAY, "upstream", detail)
        }
    }
}

/// `GET /v1/admin/trail/{id}` over `sources`.
pub fn admin_routes(sources: Sources, verifier: Arc<TokenVerifier>) -> Router {
    Router::new()
        .route("/v1/admin/trail/{id}", get(whole))
        .with_state(TrailApi {
            read_from: sources,
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
        (status = 502, description = "A service refused its part", body = Problem),
        (status = 503, description = "A store or service is unavailable", body = Problem)))]
async fn whole(
    State(api): State<TrailApi<Sources>>,
    Admin(caller): Admin,
    Path(id): Path<String>,
) -> Result<Json<Trail>, Problem> {
    let id: Uuid = id.parse().map_err(|_| {
        Problem::invalid(vec![FieldError::new(
            "id",
            "a correlation, event, message or payment id (a UUID)",
        )])
    })?;
    let sources = (api.read_from)(&caller);
    Ok(Json(trail::trail(&sources, id).await.map_err(problem_of)?))
}

/// The admin trail's API document.
#[derive(utoipa::OpenApi)]
#[openapi(paths(whole), components(schemas(Problem)))]
pub struct TrailApiDoc;

/// `naming` absent: whether `id` is a conversation here (`[id]` or `[]`); given: the
/// conversations of up to that many events that name `id`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConversationsOf {
    id: Uuid,
    naming: Option<usize>,
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

/// The path of a service's part (the gateway routes none).
const PARTS: &str = "/v1/admin/trail-parts";

/// A service's part of trails, over its own stores.
pub fn part_routes(source: Arc<dyn TrailSource>, verifier: Arc<TokenVerifier>) -> Router {
    Router::new()
        .route(&format!("{PARTS}/conversations"), post(conversations))
        .route(&format!("{PARTS}/events"), post(events))
        .route(&format!("{PARTS}/handlings"), post(handlings))
        .with_state(TrailApi {
            read_from: source,
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
    _: Admin,
    StrictJson(asked): StrictJson<ConversationsOf>,
) -> Result<Json<Items<Uuid>>, Problem> {
    let source = &api.read_from;
    let items = match asked.naming {
        None => match source.holds_conversation(asked.id).await {
            Ok(true) => vec![asked.id],
            Ok(false) => vec![],
            Err(error) => return Err(problem_of(error)),
        },
        Some(most) => {
            at_most("naming", most, MOST_NAMING)?;
            source
                .conversations_naming(asked.id, most)
                .await
                .map_err(problem_of)?
        }
    };
    Ok(Json(Items { items }))
}

async fn events(
    State(api): State<TrailApi<Arc<dyn TrailSource>>>,
    _: Admin,
    StrictJson(asked): StrictJson<EventsOf>,
) -> Result<Json<Items<TrailEvent>>, Problem> {
    at_most(
        "conversations",
        asked.conversations.len(),
        MOST_CONVERSATIONS,
    )?;
    at_most("most", asked.most, MOST_EVENTS + 1)?;
    let items = api
        .read_from
        .events_of(&asked.conversations, asked.most)
        .await
        .map_err(problem_of)?;
    Ok(Json(Items { items }))
}

async fn handlings(
    State(api): State<TrailApi<Arc<dyn TrailSource>>>,
    _: Admin,
    StrictJson(asked): StrictJson<HandlingsOf>,
) -> Result<Json<Items<TrailHandling>>, Problem> {
    at_most("event_ids", asked.event_ids.len(), MOST_EVENTS)?;
    let items = api
        .read_from
        .handlings_of(&asked.event_ids)
        .await
        .map_err(problem_of)?;
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
    /// The client the parts are asked with; `timeout` bounds each question.
    pub fn client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder().timeout(timeout).build()
    }

    /// The part of the service `name` at `base` (an http(s) URL), asked with `token`.
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
            .extend(PARTS.trim_start_matches('/').split('/'))
            .push(part);
        let span = tracing::debug_span!(
            "trail part",
            otel.kind = "client",
            server.address = self.name,
            part
        );
        let mut request = self.client.post(url).bearer_auth(&self.token).json(body);
        for (name, value) in crate::telemetry::outgoing(&span) {
            request = request.header(name, value);
        }
        let response = request
            .send()
            .instrument(span)
            .await
            .map_err(|error| unavailable(error.without_url().to_string()))?;
        let status = response.status();
        if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            return Err(unavailable(format!("answered {status}")));
        }
        if !status.is_success() {
            return Err(TrailError::Refused(format!(
                "the {} service answered {status} to its part of the trail ({part})",
                self.name
            )));
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
    async fn holds_conversation(&self, id: Uuid) -> Result<bool, TrailError> {
        let asked = ConversationsOf { id, naming: None };
        let held: Vec<Uuid> = self.ask("conversations", &asked).await?;
        Ok(held.contains(&id))
    }

    async fn conversations_naming(&self, id: Uuid, most: usize) -> Result<Vec<Uuid>, TrailError> {
        let asked = ConversationsOf {
            id,
            naming: Some(most),
        };
        self.ask("conversations", &asked).await
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
