//! The user directory: public profiles by nickname, a projection of the user streams.

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use msa_kernel::repository::decode;
use msa_kernel::{
    Aggregate, Projection, ProjectionError, RecordedEvent, StoreError, TableNames, TableSpec,
};
use msa_sql::SqlReadModelStore;
use serde::Serialize;
use sqlx::Row;

use crate::domain::{User, UserEvent};

pub struct Directory;

pub const DIRECTORY_TABLES: &[TableSpec] = &[TableSpec {
    name: "user_directory",
    create: &[
        "CREATE TABLE {table} (user_id TEXT PRIMARY KEY, nickname TEXT NOT NULL, nickname_lower TEXT NOT NULL, bio TEXT, avatar_url TEXT, active BIGINT NOT NULL, registered_at TEXT NOT NULL)",
        "CREATE INDEX {table}_by_nickname ON {table} (nickname_lower, user_id)",
    ],
}];

impl Directory {
    pub const NAME: &'static str = "user.directory";
}

#[async_trait]
impl Projection<msa_sql::Tx> for Directory {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [TableSpec] {
        DIRECTORY_TABLES
    }

    fn wants(&self, event: &RecordedEvent) -> bool {
        event.stream_id.category() == User::KIND
    }

    async fn apply(
        &self,
        tx: &mut msa_sql::Tx,
        tables: &TableNames,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let table = tables.table("user_directory");
        let user_id = event.stream_id.id().to_owned();
        let change = decode::<UserEvent>(event)?;
        // The statement borrows its SQL, so the SQL is made first.
        let sql = match &change {
            UserEvent::UserRegistered { .. } => format!(
                "INSERT INTO {table} (user_id, nickname, nickname_lower, active, registered_at) VALUES ($1, $2, $3, 1, $4)"
            ),
            UserEvent::ProfileChanged { .. } => format!(
                "UPDATE {table} SET nickname = COALESCE($2, nickname), nickname_lower = COALESCE($3, nickname_lower),
                     bio = COALESCE($4, bio), avatar_url = COALESCE($5, avatar_url) WHERE user_id = $1"
            ),
            UserEvent::UserDeactivated { .. } => format!("UPDATE {table} SET active = 0 WHERE user_id = $1"),
            UserEvent::UserErased {} => format!("DELETE FROM {table} WHERE user_id = $1"),
            UserEvent::PasswordChanged { .. }
            | UserEvent::KakaoLinked { .. }
            | UserEvent::SessionsRevoked { .. }
            | UserEvent::RoleGranted { .. }
            | UserEvent::RoleRevoked { .. } => return Ok(()),
        };
        let statement = match change {
            UserEvent::UserRegistered {
                nickname,
                registered_at,
                ..
            } => sqlx::query(&sql)
                .bind(user_id)
                .bind(nickname.as_str().to_owned())
                .bind(nickname.normalized())
                .bind(registered_at.to_rfc3339()),
            UserEvent::ProfileChanged {
                nickname,
                bio,
                avatar_url,
            } => sqlx::query(&sql)
                .bind(user_id)
                .bind(nickname.as_ref().map(|n| n.as_str().to_owned()))
                .bind(nickname.as_ref().map(|n| n.normalized()))
                .bind(bio.map(|b| b.as_str().to_owned()))
                .bind(avatar_url.map(|a| a.as_str().to_owned())),
            _ => sqlx::query(&sql).bind(user_id),
        };
        statement
            .execute(&mut **tx)
            .await
            .map_err(ProjectionError::apply)?;
        Ok(())
    }
}

/// A public profile as the directory shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DirectoryEntry {
    pub id: String,
    pub nickname: String,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
}

/// One page of a directory search.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DirectoryPage {
    pub items: Vec<DirectoryEntry>,
    pub next_cursor: Option<String>,
}

/// A cursor that is not one of ours.
#[derive(Debug, thiserror::Error)]
#[error("not a cursor this endpoint handed out")]
pub struct BadCursor;

/// Active users whose nickname starts with `prefix` (case-insensitively), by nickname.
pub async fn search(
    db: &SqlReadModelStore,
    prefix: &str,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Result<DirectoryPage, BadCursor>, StoreError> {
    let after = match cursor.map(decode_cursor) {
        Some(Ok(after)) => Some(after),
        Some(Err(bad)) => return Ok(Err(bad)),
        None => None,
    };
    let prefix = prefix.to_lowercase();
    let (after_nickname, after_id) = after.unwrap_or_default();
    let rows = sqlx::query(
        "SELECT user_id, nickname, nickname_lower, bio, avatar_url FROM user_directory
         WHERE active = 1 AND substr(nickname_lower, 1, length($1)) = $1
           AND (nickname_lower > $2 OR (nickname_lower = $2 AND user_id > $3))
         ORDER BY nickname_lower, user_id LIMIT $4",
    )
    .bind(&prefix)
    .bind(&after_nickname)
    .bind(&after_id)
    .bind(limit as i64 + 1)
    .fetch_all(db.pool())
    .await
    .map_err(StoreError::backend)?;
    let more = rows.len() > limit as usize;
    let rows = &rows[..rows.len().min(limit as usize)];
    let next_cursor = more.then(|| {
        let last = rows.last().expect("a full page has a last row");
        encode_cursor(last.get("nickname_lower"), last.get("user_id"))
    });
    Ok(Ok(DirectoryPage {
        items: rows
            .iter()
            .map(|row| DirectoryEntry {
                id: row.get("user_id"),
                nickname: row.get("nickname"),
                bio: row.get("bio"),
                avatar_url: row.get("avatar_url"),
            })
            .collect(),
        next_cursor,
    }))
}

fn encode_cursor(nickname_lower: &str, user_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{nickname_lower}\u{0}{user_id}"))
}

fn decode_cursor(cursor: &str) -> Result<(String, String), BadCursor> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| BadCursor)?;
    let text = String::from_utf8(bytes).map_err(|_| BadCursor)?;
    let (nickname, id) = text.split_once('\u{0}').ok_or(BadCursor)?;
    Ok((nickname.to_owned(), id.to_owned()))
}
