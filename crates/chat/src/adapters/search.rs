//! Message search: a projection into the database's own full-text index (FTS5 on SQLite,
//! `tsvector` with a GIN index on PostgreSQL). Edits replace the indexed body; redactions remove it.

use async_trait::async_trait;
use msa_kernel::projection::physical_table;
use msa_kernel::repository::decode;
use msa_kernel::{
    Aggregate, Projection, ProjectionError, RecordedEvent, StoreError, TableNames, TableSpec,
};
use msa_sql::Bind::{Int, Text};
use msa_sql::{Backend, SqlReadModelStore};
use serde::Serialize;
use sqlx::Row;
use uuid::Uuid;

use crate::domain::{Message, Room, RoomEvent};

pub struct Search {
    pub backend: Backend,
}

const SQLITE_TABLES: &[TableSpec] = &[TableSpec {
    name: "chat_search",
    create: &["CREATE VIRTUAL TABLE {table} USING fts5(body, message_id UNINDEXED, room_id UNINDEXED, seq UNINDEXED, sender_id UNINDEXED, created_at UNINDEXED)"],
}];

const POSTGRES_TABLES: &[TableSpec] = &[TableSpec {
    name: "chat_search",
    create: &[
        "CREATE TABLE {table} (message_id TEXT PRIMARY KEY, room_id TEXT NOT NULL, seq BIGINT NOT NULL, sender_id TEXT NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL, tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED)",
        "CREATE INDEX {table}_tsv ON {table} USING GIN (tsv)",
    ],
}];

#[async_trait]
impl Projection<msa_sql::Tx> for Search {
    fn name(&self) -> &'static str {
        "chat.search"
    }

    fn tables(&self) -> &'static [TableSpec] {
        match self.backend {
            Backend::Sqlite => SQLITE_TABLES,
            Backend::Postgres => POSTGRES_TABLES,
        }
    }

    fn wants(&self, event: &RecordedEvent) -> bool {
        matches!(event.stream_id.category(), Room::KIND | Message::KIND)
    }

    async fn apply(
        &self,
        tx: &mut msa_sql::Tx,
        tables: &TableNames,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        self.apply_all(tx, tables, &[event]).await
    }

    /// Messages posted one after another go in one insert.
    async fn apply_all(
        &self,
        tx: &mut msa_sql::Tx,
        tables: &TableNames,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let table = tables.table("chat_search");
        let mut posted = Vec::new();
        for event in events {
            let change = decode::<RoomEvent>(event)?;
            if let RoomEvent::MessagePosted {
                seq,
                message_id,
                sender_id,
                body,
                ..
            } = change
            {
                posted.push(vec![
                    Text(body.as_str().to_owned()),
                    Text(message_id.to_string()),
                    Text(event.stream_id.id().to_owned()),
                    Int(seq as i64),
                    Text(sender_id.to_string()),
                    Text(event.occurred_at.to_rfc3339()),
                ]);
                continue;
            }
            insert_posted(tx, &table, &mut posted).await?;
            if let Some((sql, binds)) = Self::change_statement(&table, change) {
                msa_sql::execute(tx, &sql, binds)
                    .await
                    .map_err(ProjectionError::apply)?;
            }
        }
        insert_posted(tx, &table, &mut posted).await
    }
}

/// Writes the rows of messages posted one after another, in one insert.
async fn insert_posted(
    tx: &mut msa_sql::Tx,
    table: &str,
    posted: &mut Vec<Vec<msa_sql::Bind>>,
) -> Result<(), ProjectionError> {
    if posted.is_empty() {
        return Ok(());
    }
    msa_sql::execute_rows(
        tx,
        |n| {
            format!(
                "INSERT INTO {table} (body, message_id, room_id, seq, sender_id, created_at) VALUES {}",
                msa_sql::placeholders(n, 6)
            )
        },
        std::mem::take(posted),
    )
    .await
    .map_err(ProjectionError::apply)?;
    Ok(())
}

impl Search {
    /// The statement of an edit or a redaction (a post is inserted with its run).
    fn change_statement(table: &str, change: RoomEvent) -> Option<(String, Vec<msa_sql::Bind>)> {
        Some(match change {
            RoomEvent::MessageEdited {
                message_id, body, ..
            } => (
                format!("UPDATE {table} SET body = $1 WHERE message_id = $2"),
                vec![Text(body.as_str().to_owned()), Text(message_id.to_string())],
            ),
            RoomEvent::MessageRedacted { message_id, .. } => (
                format!("DELETE FROM {table} WHERE message_id = $1"),
                vec![Text(message_id.to_string())],
            ),
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SearchHit {
    pub id: String,
    pub room_id: String,
    pub seq: i64,
    pub sender_id: String,
    pub body: String,
    pub created_at: String,
}

/// FTS5 reads its own query language; every word of the user's text becomes a quoted term, so
/// the search is for all the words, whatever characters they hold.
fn fts5_query(text: &str) -> String {
    text.split_whitespace()
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Messages with all the words of `text`, in the rooms `user_id` belongs to, best first.
pub async fn search(
    db: &SqlReadModelStore,
    user_id: Uuid,
    text: &str,
    limit: u32,
) -> Result<Vec<SearchHit>, StoreError> {
    let projection = Search {
        backend: db.backend(),
    };
    let Some(generation) = db.live_generation_to_read(projection.name()).await? else {
        return Ok(Vec::new());
    };
    // The physical table: FTS5's MATCH does not work through the view.
    let table = physical_table("chat_search", generation);
    let member_rooms = "room_id IN (SELECT room_id FROM chat_members WHERE user_id = $2)";
    let (sql, query) = match db.backend() {
        Backend::Sqlite => (
            format!(
                "SELECT message_id, room_id, seq, sender_id, body, created_at FROM {table}
                 WHERE {table} MATCH $1 AND {member_rooms} ORDER BY rank LIMIT $3"
            ),
            fts5_query(text),
        ),
        Backend::Postgres => (
            format!(
                "SELECT message_id, room_id, seq, sender_id, body, created_at FROM {table}
                 WHERE tsv @@ plainto_tsquery('simple', $1) AND {member_rooms}
                 ORDER BY ts_rank(tsv, plainto_tsquery('simple', $1)) DESC, seq DESC LIMIT $3"
            ),
            text.to_owned(),
        ),
    };
    let rows = sqlx::query(&sql)
        .bind(query)
        .bind(user_id.to_string())
        .bind(limit as i64)
        .fetch_all(db.pool())
        .await
        .map_err(StoreError::backend)?;
    Ok(rows
        .iter()
        .map(|row| SearchHit {
            id: row.get("message_id"),
            room_id: row.get("room_id"),
            seq: row.get("seq"),
            sender_id: row.get("sender_id"),
            body: row.get("body"),
            created_at: row.get("created_at"),
        })
        .collect())
}
