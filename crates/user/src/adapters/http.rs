//! The user context's HTTP API: thin handlers that parse, call the service and map its answer.

use std::sync::Arc;

use axum::extract::{FromRef, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use msa_http::auth::{Caller, TokenVerifier};
use msa_http::{page_limit, BearerAuth, FieldError, Problem, StrictJson, StrictQuery};
use msa_http::{ClientAddress, Fields, TrustedProxies};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

use crate::adapters::directory::{self, DirectoryPage};
use crate::adapters::tokens::{TokenPair, Tokens};
use crate::adapters::web_session;
use crate::application::KakaoOutcome;
use crate::application::ProfileView;
use crate::application::{ErasureConfirmation, ProfileChange, UserService, UserServiceError};
use crate::domain::{AvatarUrl, Bio, Email, Nickname, Password};
use msa_http::auth::Jwks;
use msa_sql::SqlReadModelStore;

#[derive(Clone)]
pub struct UserApi {
    pub service: Arc<UserService>,
    /// The sessions' tokens: their lifetimes, and the public keys that check them.
    pub tokens: Arc<Tokens>,
    /// The query database, for the directory's search.
    pub read_models: Arc<SqlReadModelStore>,
    pub verifier: Arc<TokenVerifier>,
    /// Whose `X-Forwarded-For` names the client (the login throttle keys on its address).
    pub trusted_proxies: Arc<TrustedProxies>,
}

impl FromRef<UserApi> for Arc<TrustedProxies> {
    fn from_ref(api: &UserApi) -> Self {
        api.trusted_proxies.clone()
    }
}

impl FromRef<UserApi> for Arc<TokenVerifier> {
    fn from_ref(api: &UserApi) -> Self {
        api.verifier.clone()
    }
}

pub fn routes(api: UserApi) -> Router {
    Router::new()
        .route("/v1/users", post(register).get(search))
        .route("/v1/users/me", get(me).patch(change_profile).delete(erase))
        .route("/v1/users/me/password", axum::routing::put(change_password))
        .route("/v1/users/{id}", get(public_profile))
        .route("/v1/users/by-nickname/{nickname}", get(profile_by_nickname))
        .route("/v1/auth/token", post(log_in))
        .route("/v1/auth/refresh", post(refresh))
        .route("/v1/auth/logout", post(log_out))
        .route("/v1/auth/kakao/start", get(kakao_start))
        .route("/v1/auth/kakao/callback", get(kakao_callback))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/.well-known/revocations.json", get(revocations))
        .route(
            "/v1/users/me/sessions",
            axum::routing::delete(log_out_everywhere),
        )
        .with_state(api)
}

/// The user context's part of a person's export (profile, account history, sessions), for the
/// caller's own token: user-chat composes the whole export (`GET /v1/users/me/export`, where the
/// gateway sends clients) and calls this one, mounted only where the user service runs alone. In
/// the single server user-chat asks [`UserService::export`](crate::UserService::export)
/// in-process and serves the path itself.
pub fn account_export_routes(api: UserApi) -> Router {
    Router::new()
        .route("/v1/users/me/export", get(export))
        .with_state(api)
}

/// The user context's part of the OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    paths(register, search, me, change_profile, erase, change_password, public_profile, profile_by_nickname, log_in, refresh, log_out,
        kakao_start, kakao_callback, jwks, revocations, log_out_everywhere),
    modifiers(&BearerAuth),
    tags((name = "users", description = "Accounts, profiles and the user directory"),
         (name = "auth", description = "Login tokens"))
)]
pub struct UserApiDoc;

impl From<UserServiceError> for Problem {
    fn from(error: UserServiceError) -> Self {
        match error {
            UserServiceError::Invalid(errors) => Problem::invalid(errors),
            UserServiceError::EmailTaken => Problem::conflict("email-taken", error.to_string()),
            UserServiceError::NicknameTaken => {
                Problem::conflict("nickname-taken", error.to_string())
            }
            UserServiceError::BadCredentials
            | UserServiceError::BadRefreshToken(_)
            | UserServiceError::LoginRefused(_)
            | UserServiceError::Deactivated => Problem::unauthorized(error.to_string()),
            UserServiceError::KakaoNotConfigured => Problem::not_found(error.to_string()),
            UserServiceError::KakaoTaken => Problem::conflict("kakao-taken", error.to_string()),
            UserServiceError::Upstream(_) => {
                Problem::new(StatusCode::BAD_GATEWAY, "upstream", error.to_string())
            }
            UserServiceError::Throttled(seconds) => {
                Problem::too_many_requests(error.to_string(), seconds)
            }
            UserServiceError::NotFound => Problem::not_found(error.to_string()),
            UserServiceError::Busy => Problem::unavailable(error.to_string(), 1),
            UserServiceError::StaleLogIn => Problem::forbidden(error.to_string()),
            UserServiceError::Store(error) => Problem::storage(&error),
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SignUp {
    email: Option<String>,
    password: Option<String>,
    nickname: Option<String>,
}

#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = SignUp,
    responses((status = 201, description = "Registered; `Location` names the new user", body = UserCreated),
        (status = 400, body = Problem), (status = 409, description = "Email or nickname taken", body = Problem),
        (status = 422, body = Problem)))]
async fn register(
    State(api): State<UserApi>,
    StrictJson(body): StrictJson<SignUp>,
) -> Result<impl IntoResponse, Problem> {
    let mut fields = Fields::default();
    let email = fields.parse("email", body.email.as_deref(), Email::parse);
    let password = fields.parse("password", body.password.as_deref(), Password::parse);
    let nickname = fields.parse("nickname", body.nickname.as_deref(), Nickname::parse);
    fields.finish()?;
    let (Some(email), Some(password), Some(nickname)) = (email, password, nickname) else {
        unreachable!("finish() refuses missing fields")
    };
    let registered = api.service.register(email, password, nickname).await?;
    let location = format!("/v1/users/{}", registered.user_id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(UserCreated {
            id: registered.user_id,
            email: registered.email.as_str().to_owned(),
            nickname: registered.nickname.as_str().to_owned(),
            created_at: registered.registered_at,
        }),
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: Option<String>,
    password: Option<String>,
}

#[utoipa::path(post, path = "/v1/auth/token", tag = "auth", request_body = Credentials,
    description = "With `X-Requested-With` (the web client's cookie mode) the refresh token is not in the answer: it is set as the HttpOnly, SameSite=Strict cookie `msa_refresh` (Path=/v1/auth).",
    params(("X-Requested-With" = Option<String>, Header, description = "Cookie mode (the web client sends `msa-web`)")),
    responses((status = 200, body = TokenPair), (status = 401, description = "Wrong email or password (the same answer for both)", body = Problem),
        (status = 403, description = "Cookie mode from another site", body = Problem),
        (status = 422, body = Problem), (status = 429, description = "Too many failed logins; see Retry-After", body = Problem)))]
async fn log_in(
    State(api): State<UserApi>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    StrictJson(body): StrictJson<Credentials>,
) -> Result<Response, Problem> {
    let mut fields = Fields::default();
    let email = fields.parse("email", body.email.as_deref(), Email::parse);
    let password = fields.text("password", body.password.as_deref());
    fields.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        unreachable!("finish() refuses missing fields")
    };
    if web_session::wanted(&headers) {
        web_session::check_same_site(&headers)?;
    }
    let tokens = api.service.log_in(&email, &password, client).await?;
    Ok(tokens_answer(&api, &headers, tokens))
}

/// The token pair as JSON, or in cookie mode the access token as JSON and the refresh token in
/// its cookie.
fn tokens_answer(api: &UserApi, headers: &HeaderMap, tokens: TokenPair) -> Response {
    if !web_session::wanted(headers) {
        return Json(tokens).into_response();
    }
    let cookie = web_session::set(
        headers,
        &tokens.refresh_token,
        api.tokens.refresh_lifetime().as_secs(),
    );
    (
        [(header::SET_COOKIE, cookie)],
        Json(serde_json::json!({
            "access_token": tokens.access_token,
            "token_type": tokens.token_type,
            "expires_in": tokens.expires_in,
        })),
    )
        .into_response()
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct RefreshToken {
    refresh_token: Option<String>,
}

impl RefreshToken {
    fn required(self) -> Result<String, Problem> {
        self.refresh_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Problem::invalid(vec![FieldError::new("refresh_token", "required")]))
    }
}

/// Where a refresh or log-out finds its token: the body (API clients), else the web client's
/// cookie, read only from a same-site request.
enum Presented {
    Body(String),
    Cookie(Option<String>),
}

fn presented(headers: &HeaderMap, body: RefreshToken) -> Result<Presented, Problem> {
    if body.refresh_token.as_deref().is_some_and(|t| !t.is_empty()) {
        return Ok(Presented::Body(body.required()?));
    }
    let cookie = web_session::token(headers);
    if cookie.is_none() && !web_session::wanted(headers) {
        return Err(body.required().expect_err("no token in the body"));
    }
    web_session::check_same_site(headers)?;
    Ok(Presented::Cookie(cookie))
}

#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshToken,
    description = "Without `refresh_token` in the body, the web client's cookie `msa_refresh` is used (only with the `X-Requested-With` header, from this site); the next refresh token is then set in the cookie, not returned.",
    params(("X-Requested-With" = Option<String>, Header, description = "Cookie mode (the web client sends `msa-web`)")),
    responses((status = 200, description = "A new pair; the presented refresh token is used up", body = TokenPair),
        (status = 401, description = "Unknown, expired, revoked or reused (a reuse revokes the whole session); no cookie", body = Problem),
        (status = 403, description = "A cookie without X-Requested-With, or from another site", body = Problem)))]
async fn refresh(
    State(api): State<UserApi>,
    headers: HeaderMap,
    StrictJson(body): StrictJson<RefreshToken>,
) -> Result<Response, Problem> {
    match presented(&headers, body)? {
        Presented::Body(token) => Ok(Json(api.service.refresh(&token).await?).into_response()),
        Presented::Cookie(None) => Err(Problem::unauthorized("no session cookie: log in")),
        Presented::Cookie(Some(token)) => match api.service.refresh(&token).await {
            Ok(tokens) => Ok(tokens_answer(&api, &headers, tokens)),
            Err(error) => {
                let mut refused = Problem::from(error).into_response();
                if refused.status() == StatusCode::UNAUTHORIZED {
                    refused
                        .headers_mut()
                        .insert(header::SET_COOKIE, web_session::clear(&headers));
                }
                Ok(refused)
            }
        },
    }
}

#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = RefreshToken,
    description = "Without `refresh_token` in the body, the web client's cookie is revoked and cleared (with `X-Requested-With`, from this site).",
    responses((status = 204, description = "The session's refresh tokens are revoked"),
        (status = 403, description = "A cookie without X-Requested-With, or from another site", body = Problem),
        (status = 422, body = Problem)))]
async fn log_out(
    State(api): State<UserApi>,
    headers: HeaderMap,
    StrictJson(body): StrictJson<RefreshToken>,
) -> Result<Response, Problem> {
    match presented(&headers, body)? {
        Presented::Body(token) => {
            api.service.log_out(&token).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Presented::Cookie(token) => {
            if let Some(token) = token {
                match api.service.log_out(&token).await {
                    // An unknown or spent token: the session is over anyway.
                    Ok(()) | Err(UserServiceError::BadRefreshToken(_)) => {}
                    Err(error) => return Err(error.into()),
                }
            }
            Ok((
                StatusCode::NO_CONTENT,
                [(header::SET_COOKIE, web_session::clear(&headers))],
            )
                .into_response())
        }
    }
}

/// What confirms an account's deletion.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ErasureRequest {
    /// The account's password (an account linked to Kakao may leave it out within 10 minutes
    /// of a log-in).
    password: Option<String>,
}

#[utoipa::path(delete, path = "/v1/users/me", tag = "users", security(("bearer" = [])), request_body = ErasureRequest,
    description = "Deletes my account: deactivated at once, personal data erased (crypto-shredded). Confirmed with the password, so a token alone (a stolen one) cannot do it; an account linked to Kakao may instead delete within 10 minutes of a log-in (its tokens' `auth_time`, which a refresh does not renew).",
    responses((status = 204, description = "Deactivated; personal data erased"), (status = 401, body = Problem),
        (status = 403, description = "No password given, and the log-in was too long ago", body = Problem),
        (status = 422, description = "The password is missing or does not match", body = Problem)))]
async fn erase(
    State(api): State<UserApi>,
    caller: Caller,
    StrictJson(request): StrictJson<ErasureRequest>,
) -> Result<impl IntoResponse, Problem> {
    let confirmation = ErasureConfirmation {
        password: request.password,
        logged_in_at: caller.logged_in_at,
    };
    api.service.erase(caller.user_id, confirmation).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The account's part of the export (not in the API document: clients get the whole export from
/// user-chat at this path).
async fn export(State(api): State<UserApi>, caller: Caller) -> Result<impl IntoResponse, Problem> {
    Ok(Json(api.service.export(caller.user_id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct PasswordChange {
    current_password: Option<String>,
    new_password: Option<String>,
}

#[utoipa::path(put, path = "/v1/users/me/password", tag = "users", security(("bearer" = [])), request_body = PasswordChange,
    responses((status = 204, description = "Changed; every session (refresh token) is revoked"), (status = 401, body = Problem),
        (status = 422, description = "The current password does not match, or the new one is too short", body = Problem)))]
async fn change_password(
    State(api): State<UserApi>,
    caller: Caller,
    StrictJson(body): StrictJson<PasswordChange>,
) -> Result<impl IntoResponse, Problem> {
    let mut fields = Fields::default();
    let current = fields.text("current_password", body.current_password.as_deref());
    let new = fields.parse(
        "new_password",
        body.new_password.as_deref(),
        Password::parse,
    );
    fields.finish()?;
    let (Some(current), Some(new)) = (current, new) else {
        unreachable!("finish() refuses missing fields")
    };
    api.service
        .change_password(caller.user_id, &current, new)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = ProfileView), (status = 401, body = Problem)))]
async fn me(State(api): State<UserApi>, caller: Caller) -> Result<impl IntoResponse, Problem> {
    Ok(Json(api.service.me(caller.user_id).await?))
}

/// Only the fields given change; `bio: ""` clears the bio.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ProfilePatch {
    nickname: Option<String>,
    bio: Option<String>,
    avatar_url: Option<String>,
}

#[utoipa::path(patch, path = "/v1/users/me", tag = "users", security(("bearer" = [])), request_body = ProfilePatch,
    responses((status = 200, body = ProfileView), (status = 401, body = Problem), (status = 409, description = "Nickname taken", body = Problem), (status = 422, body = Problem)))]
async fn change_profile(
    State(api): State<UserApi>,
    caller: Caller,
    StrictJson(body): StrictJson<ProfilePatch>,
) -> Result<impl IntoResponse, Problem> {
    let mut fields = Fields::default();
    let change = ProfileChange {
        nickname: fields.optional("nickname", body.nickname.as_deref(), Nickname::parse),
        bio: fields.optional("bio", body.bio.as_deref(), Bio::parse),
        avatar_url: fields.optional("avatar_url", body.avatar_url.as_deref(), AvatarUrl::parse),
    };
    fields.finish()?;
    Ok(Json(
        api.service.change_profile(caller.user_id, change).await?,
    ))
}

#[utoipa::path(get, path = "/v1/users/{id}", tag = "users", params(("id" = Uuid, Path, description = "User id")),
    responses((status = 200, description = "The public profile", body = ProfileView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn public_profile(
    State(api): State<UserApi>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let id: Uuid = id
        .parse()
        .map_err(|_| Problem::invalid(vec![FieldError::new("id", "not a user id (UUID)")]))?;
    Ok(Json(api.service.public_profile(id).await?))
}

#[utoipa::path(get, path = "/v1/users/by-nickname/{nickname}", tag = "users",
    description = "The active user with exactly this nickname (case-insensitive), found as soon as the sign-up is answered (the directory search may lag).",
    params(("nickname" = String, Path, description = "The whole nickname")),
    responses((status = 200, description = "The public profile", body = ProfileView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn profile_by_nickname(
    State(api): State<UserApi>,
    Path(nickname): Path<String>,
) -> Result<impl IntoResponse, Problem> {
    let nickname = Fields::one("nickname", Nickname::parse(&nickname))?;
    Ok(Json(api.service.profile_by_nickname(&nickname).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SearchQuery {
    /// Nickname prefix, case-insensitive (empty: everyone).
    #[serde(default)]
    query: String,
    /// Page size, 1 to 100 (default 50).
    #[param(value_type = Option<u32>)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// What a sign-up answers.
#[derive(Serialize, ToSchema)]
struct UserCreated {
    id: Uuid,
    email: String,
    nickname: String,
    created_at: chrono::DateTime<chrono::Utc>,
}

#[utoipa::path(get, path = "/v1/users", tag = "users", params(SearchQuery), security(("bearer" = [])),
    description = "For signed-in users only: the directory is not for crawling.",
    responses((status = 200, description = "Active users by nickname", body = DirectoryPage), (status = 401, body = Problem), (status = 422, body = Problem)))]
async fn search(
    State(api): State<UserApi>,
    _caller: Caller,
    StrictQuery(params): StrictQuery<SearchQuery>,
) -> Result<impl IntoResponse, Problem> {
    let limit = page_limit(params.limit.as_deref())?;
    let page = directory::search(
        &api.read_models,
        &params.query,
        limit,
        params.cursor.as_deref(),
    )
    .await
    .map_err(|e| Problem::internal(&e))?;
    Ok(Json(Fields::one("cursor", page)?))
}

#[utoipa::path(get, path = "/v1/auth/kakao/start", tag = "auth",
    description = "Starts Kakao Login. With a bearer token, links the Kakao account to the caller instead.",
    responses((status = 302, description = "To Kakao's consent page; the body repeats the URL", body = KakaoStart),
        (status = 401, body = Problem), (status = 404, description = "Kakao login is not configured", body = Problem)))]
async fn kakao_start(
    State(api): State<UserApi>,
    headers: axum::http::HeaderMap,
    caller: Result<Caller, Problem>,
) -> Result<impl IntoResponse, Problem> {
    // No token: a login. A token: a link, and then it must be valid.
    let link_user = match headers.contains_key(header::AUTHORIZATION) {
        false => None,
        true => Some(caller?.user_id),
    };
    let authorize_url = api.service.kakao_start(link_user).await?;
    Ok((
        StatusCode::FOUND,
        [(header::LOCATION, authorize_url.clone())],
        Json(KakaoStart { authorize_url }),
    ))
}

#[derive(Serialize, ToSchema)]
struct KakaoStart {
    authorize_url: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct KakaoCallback {
    /// The authorization code Kakao issued.
    code: Option<String>,
    state: Option<String>,
    /// Set by Kakao when the user did not consent.
    error: Option<String>,
    error_description: Option<String>,
}

/// What a Kakao callback answers: tokens after a login, the profile after a link.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
enum KakaoResult {
    LoggedIn {
        #[serde(flatten)]
        tokens: TokenPair,
        /// Whether this login created the account.
        created: bool,
    },
    Linked(ProfileView),
}

#[utoipa::path(get, path = "/v1/auth/kakao/callback", tag = "auth", params(KakaoCallback),
    responses((status = 200, description = "Tokens after a login; the profile after a link", body = KakaoResult),
        (status = 401, description = "Unknown or used state, a refused code, or no consent", body = Problem),
        (status = 409, description = "The Kakao account is linked to another user", body = Problem),
        (status = 502, description = "Kakao failed", body = Problem)))]
async fn kakao_callback(
    State(api): State<UserApi>,
    StrictQuery(params): StrictQuery<KakaoCallback>,
) -> Result<impl IntoResponse, Problem> {
    if let Some(error) = params.error {
        let detail = params.error_description.unwrap_or(error);
        return Err(Problem::unauthorized(format!(
            "Kakao login was not completed: {detail}"
        )));
    }
    let mut fields = Fields::default();
    let code = fields.text("code", params.code.as_deref());
    let state = fields.text("state", params.state.as_deref());
    fields.finish()?;
    let (Some(code), Some(state)) = (code, state) else {
        unreachable!("finish() refuses missing fields")
    };
    Ok(Json(
        match api.service.kakao_callback(&code, &state).await? {
            KakaoOutcome::LoggedIn { tokens, created } => KakaoResult::LoggedIn { tokens, created },
            KakaoOutcome::Linked(profile) => KakaoResult::Linked(profile),
        },
    ))
}

#[utoipa::path(delete, path = "/v1/users/me/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 204, description = "Logged out everywhere: every refresh token is revoked, and every access token issued until now is refused by every service within seconds (open streams close with 4401)"),
        (status = 401, body = Problem)))]
async fn log_out_everywhere(
    State(api): State<UserApi>,
    caller: Caller,
) -> Result<impl IntoResponse, Problem> {
    api.service.log_out_everywhere(caller.user_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/.well-known/revocations.json", tag = "auth",
    responses((status = 200, description = "The deny list: users whose access tokens issued before an instant are void (recent ones only; older tokens have expired). Every process that checks tokens polls it.", body = msa_http::RevocationList)))]
async fn revocations(State(api): State<UserApi>) -> impl IntoResponse {
    Json(msa_http::RevocationList {
        items: api.verifier.revocations().list(),
    })
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "auth",
    responses((status = 200, description = "The public keys that verify access tokens", body = Jwks)))]
async fn jwks(State(api): State<UserApi>) -> impl IntoResponse {
    Json(api.tokens.jwks().clone())
}
