//! What chat keeps about one person, for their export (`GET /v1/users/me/export`, composed by
//! user-chat): the rooms they are in, the messages they sent (with the earlier bodies of edited
//! ones), their reactions, their read markers and their open invitations. Read from the history tables a page at a time,
//! so a person with 100,000 messages is exported in pages of at most [`MAX_PAGE`] rows, never
//! one allocation; each page is keyed by what the rows are ordered by, so paging costs no
//! offset scans. There is no index by sender: a full export walks the message table in id order
//! once (a read of the whole history, but only once per export).
//!
//! Between microservices user-chat reads it at `GET /internal/v1/users/{user_id}/records/{part}`
//! with its service identity ([`internal_routes`]); in the single server it calls [`page`].

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRef, Path, State};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use msa_http::service_identity::{ServiceCaller, TrustedServices};
use msa_http::{FieldError, Problem, RecordsQuery, StrictQuery};
use msa_kernel::StoreError;
use msa_sql::SqlReadModelStore;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;
use utoipa::ToSchema;
use uuid::Uuid;

/// The most rows a page holds.
pub const MAX_PAGE: u32 = msa_http::MAX_RECORDS;

/// A part of what chat keeps about a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatRecords {
    Rooms,
    Messages,
    Reactions,
    ReadMarkers,
    Invitations,
}

impl ChatRecords {
    pub const ALL: [ChatRecords; 5] = [
        ChatRecords::Rooms,
        ChatRecords::Messages,
        ChatRecords::Reactions,
        ChatRecords::ReadMarkers,
        ChatRecords::Invitations,
    ];

    /// Its name in the export document and its path segment.
    pub fn as_str(self) -> &'static str {
        match self {
            ChatRecords::Rooms => "rooms",
            ChatRecords::Messages => "messages",
            ChatRecords::Reactions => "reactions",
            ChatRecords::ReadMarkers => "read_markers",
            ChatRecords::Invitations => "invitations",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|part| part.as_str() == raw)
    }
}

/// A page of one part: its items (each one of the `Exported…` shapes) and where the next page
/// starts (`null`: this was the last).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct RecordPage {
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
}

/// A room the person is a member of.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExportedRoom {
    pub room_id: Uuid,
    /// `direct` or `group`.
    pub kind: String,
    pub name: Option<String>,
    /// Their role in it: `owner`, `admin` or `member`.
    pub role: String,
    pub created_at: String,
}

/// A message the person sent, as it stands, with the bodies it had before edits.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExportedMessage {
    pub message_id: Uuid,
    pub room_id: Uuid,
    pub seq: i64,
    /// Empty once deleted.
    pub body: String,
    pub reply_to: Option<Uuid>,
    pub created_at: String,
    pub edited_at: Option<String>,
    pub redacted: bool,
    /// Earlier bodies, oldest first (gone with a deletion).
    pub earlier_bodies: Vec<EarlierBody>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EarlierBody {
    pub body: String,
    /// When it was replaced.
    pub edited_at: String,
}

/// A reaction the person put on a message.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExportedReaction {
    pub room_id: Uuid,
    pub message_id: Uuid,
    pub emoji: String,
}

/// How far the person has read a room.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExportedReadMarker {
    pub room_id: Uuid,
    pub seq: i64,
}

/// An invitation to a room the person has not answered yet.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExportedInvitation {
    pub room_id: Uuid,
    pub invited_by: Uuid,
    pub invited_at: String,
}

/// A cursor that does not come from this part's pages.
#[derive(Debug)]
pub struct BadCursor;

/// One page of `part` of what chat keeps about `user_id`, after `cursor` (a page's
/// `next_cursor`), at most `limit` (up to [`MAX_PAGE`]) items.
pub async fn page(
    db: &SqlReadModelStore,
    user_id: Uuid,
    part: ChatRecords,
    cursor: Option<&str>,
    limit: u32,
) -> Result<Result<RecordPage, BadCursor>, StoreError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let user = user_id.to_string();
    // Every cursor is the last row's key; keys of ids are checked to be ids.
    let after = cursor.unwrap_or("");
    let (sql, binds): (&str, Vec<String>) = match part {
        ChatRecords::Rooms => (
            "SELECT m.room_id, m.role, r.kind, r.name, r.created_at FROM chat_members m
             JOIN chat_rooms r ON r.room_id = m.room_id
             WHERE m.user_id = $1 AND m.room_id > $2 ORDER BY m.room_id LIMIT $3",
            vec![user, after.to_owned()],
        ),
        ChatRecords::Messages => (
            "SELECT room_id, seq, message_id, body, reply_to, created_at, edited_at, redacted
             FROM chat_messages WHERE sender_id = $1 AND message_id > $2
             ORDER BY message_id LIMIT $3",
            vec![user, after.to_owned()],
        ),
        ChatRecords::Reactions => {
            // The key is the message id and the emoji (ids hold no ':').
            let (message, emoji) = match cursor {
                None => (String::new(), String::new()),
                Some(raw) => match raw.split_once(':') {
                    Some((message, emoji)) if message.parse::<Uuid>().is_ok() => {
                        (message.to_owned(), emoji.to_owned())
                    }
                    _ => return Ok(Err(BadCursor)),
                },
            };
            (
                "SELECT room_id, message_id, emoji FROM chat_reactions
                 WHERE user_id = $1 AND (message_id > $2 OR (message_id = $2 AND emoji > $3))
                 ORDER BY message_id, emoji LIMIT $4",
                vec![user, message, emoji],
            )
        }
        ChatRecords::ReadMarkers => (
            "SELECT room_id, seq FROM chat_read_markers WHERE user_id = $1 AND room_id > $2
             ORDER BY room_id LIMIT $3",
            vec![user, after.to_owned()],
        ),
        ChatRecords::Invitations => (
            "SELECT room_id, invited_by, invited_at FROM chat_invites
             WHERE user_id = $1 AND room_id > $2 ORDER BY room_id LIMIT $3",
            vec![user, after.to_owned()],
        ),
    };
    if part != ChatRecords::Reactions && cursor.is_some_and(|c| c.parse::<Uuid>().is_err()) {
        return Ok(Err(BadCursor));
    }
    let mut query = sqlx::query(sql);
    for bind in binds {
        query = query.bind(bind);
    }
    let rows = query
        .bind(i64::from(limit))
        .fetch_all(db.pool())
        .await
        .map_err(StoreError::backend)?;
    let full = rows.len() == limit as usize;
    let (items, last_key) = match part {
        ChatRecords::Rooms => items(&rows, room, |r| r.room_id.to_string())?,
        ChatRecords::Messages => {
            let (mut messages, last) = typed(&rows, message, |m| m.message_id.to_string())?;
            earlier_bodies(db, &mut messages).await?;
            (to_values(&messages)?, last)
        }
        ChatRecords::Reactions => {
            items(&rows, reaction, |r| format!("{}:{}", r.message_id, r.emoji))?
        }
        ChatRecords::ReadMarkers => items(&rows, read_marker, |r| r.room_id.to_string())?,
        ChatRecords::Invitations => items(&rows, invitation, |i| i.room_id.to_string())?,
    };
    Ok(Ok(RecordPage {
        items,
        next_cursor: if full { last_key } else { None },
    }))
}

fn typed<T>(
    rows: &[AnyRow],
    read: fn(&AnyRow) -> Result<T, StoreError>,
    key: fn(&T) -> String,
) -> Result<(Vec<T>, Option<String>), StoreError> {
    let typed = rows.iter().map(read).collect::<Result<Vec<_>, _>>()?;
    let last = typed.last().map(key);
    Ok((typed, last))
}

fn items<T: Serialize>(
    rows: &[AnyRow],
    read: fn(&AnyRow) -> Result<T, StoreError>,
    key: fn(&T) -> String,
) -> Result<(Vec<Value>, Option<String>), StoreError> {
    let (typed, last) = typed(rows, read, key)?;
    Ok((to_values(&typed)?, last))
}

fn to_values<T: Serialize>(items: &[T]) -> Result<Vec<Value>, StoreError> {
    items
        .iter()
        .map(|item| serde_json::to_value(item).map_err(StoreError::backend))
        .collect()
}

fn text(row: &AnyRow, column: &str) -> Result<String, StoreError> {
    row.try_get::<String, _>(column)
        .map_err(StoreError::backend)
}

fn id(row: &AnyRow, column: &str) -> Result<Uuid, StoreError> {
    text(row, column)?.parse().map_err(StoreError::backend)
}

fn room(row: &AnyRow) -> Result<ExportedRoom, StoreError> {
    Ok(ExportedRoom {
        room_id: id(row, "room_id")?,
        kind: text(row, "kind")?,
        name: row.try_get("name").map_err(StoreError::backend)?,
        role: text(row, "role")?,
        created_at: text(row, "created_at")?,
    })
}

fn message(row: &AnyRow) -> Result<ExportedMessage, StoreError> {
    let reply_to: Option<String> = row.try_get("reply_to").map_err(StoreError::backend)?;
    Ok(ExportedMessage {
        message_id: id(row, "message_id")?,
        room_id: id(row, "room_id")?,
        seq: row.try_get("seq").map_err(StoreError::backend)?,
        body: text(row, "body")?,
        reply_to: reply_to
            .map(|r| r.parse())
            .transpose()
            .map_err(StoreError::backend)?,
        created_at: text(row, "created_at")?,
        edited_at: row.try_get("edited_at").map_err(StoreError::backend)?,
        redacted: row
            .try_get::<i64, _>("redacted")
            .map_err(StoreError::backend)?
            != 0,
        earlier_bodies: vec![],
    })
}

fn reaction(row: &AnyRow) -> Result<ExportedReaction, StoreError> {
    Ok(ExportedReaction {
        room_id: id(row, "room_id")?,
        message_id: id(row, "message_id")?,
        emoji: text(row, "emoji")?,
    })
}

fn read_marker(row: &AnyRow) -> Result<ExportedReadMarker, StoreError> {
    Ok(ExportedReadMarker {
        room_id: id(row, "room_id")?,
        seq: row.try_get("seq").map_err(StoreError::backend)?,
    })
}

fn invitation(row: &AnyRow) -> Result<ExportedInvitation, StoreError> {
    Ok(ExportedInvitation {
        room_id: id(row, "room_id")?,
        invited_by: id(row, "invited_by")?,
        invited_at: text(row, "invited_at")?,
    })
}

/// Fills in the earlier bodies of a page's edited messages (one query for the page).
async fn earlier_bodies(
    db: &SqlReadModelStore,
    messages: &mut [ExportedMessage],
) -> Result<(), StoreError> {
    let edited: Vec<String> = messages
        .iter()
        .filter(|m| m.edited_at.is_some())
        .map(|m| m.message_id.to_string())
        .collect();
    if edited.is_empty() {
        return Ok(());
    }
    let placeholders = (1..=edited.len())
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT message_id, body, edited_at FROM chat_message_edits
         WHERE message_id IN ({placeholders}) ORDER BY message_id, seq"
    );
    let mut query = sqlx::query(&sql);
    for id in &edited {
        query = query.bind(id);
    }
    let mut by_message: HashMap<String, Vec<EarlierBody>> = HashMap::new();
    for row in query
        .fetch_all(db.pool())
        .await
        .map_err(StoreError::backend)?
    {
        by_message
            .entry(text(&row, "message_id")?)
            .or_default()
            .push(EarlierBody {
                body: text(&row, "body")?,
                edited_at: text(&row, "edited_at")?,
            });
    }
    for message in messages {
        if let Some(bodies) = by_message.remove(&message.message_id.to_string()) {
            message.earlier_bodies = bodies;
        }
    }
    Ok(())
}

/// What the internal route answers with: chat (its query database), and the services it answers.
#[derive(Clone)]
struct Records {
    read_models: Arc<SqlReadModelStore>,
    callers: Arc<TrustedServices>,
}

impl FromRef<Records> for Arc<TrustedServices> {
    fn from_ref(records: &Records) -> Self {
        records.callers.clone()
    }
}

/// `GET /internal/v1/users/{user_id}/records/{part}`: a page of a person's records, for
/// user-chat's export between microservices. Only `callers` (services proving who they are)
/// are answered; an end user's token is 403. The gateway does not route `/internal`.
pub fn internal_routes(
    read_models: Arc<SqlReadModelStore>,
    callers: Arc<TrustedServices>,
) -> Router {
    Router::new()
        .route("/internal/v1/users/{user_id}/records/{part}", get(records))
        .with_state(Records {
            read_models,
            callers,
        })
}

#[utoipa::path(get, path = "/internal/v1/users/{user_id}/records/{part}", tag = "rooms", security(("bearer" = [])),
    params(("user_id" = Uuid, Path), ("part" = String, Path, description = "rooms, messages, reactions, read_markers or invitations"), RecordsQuery),
    description = "For services only (user-chat's export between microservices): a page of what chat keeps about one person. Items are ExportedRoom, ExportedMessage, ExportedReaction, ExportedReadMarker or ExportedInvitation by part.",
    responses((status = 200, body = RecordPage), (status = 401, body = Problem),
        (status = 403, description = "Not a service", body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn records(
    State(records): State<Records>,
    _service: ServiceCaller,
    Path((user_id, part)): Path<(String, String)>,
    StrictQuery(query): StrictQuery<RecordsQuery>,
) -> Result<impl IntoResponse, Problem> {
    let user_id: Uuid = user_id
        .parse()
        .map_err(|_| Problem::invalid(vec![FieldError::new("user_id", "a user id (UUID)")]))?;
    let part = ChatRecords::parse(&part).ok_or_else(|| Problem::not_found("no such part"))?;
    let limit = query.limit()?;
    match page(
        &records.read_models,
        user_id,
        part,
        query.cursor.as_deref(),
        limit,
    )
    .await
    .map_err(|e| Problem::storage(&e))?
    {
        Ok(page) => Ok(Json(page)),
        Err(BadCursor) => Err(Problem::invalid(vec![FieldError::new(
            "cursor",
            "not a cursor this API gave out",
        )])),
    }
}
