//! `notes.list`: each user's notes as rows, a projection of the note streams, and the
//! [`NoteList`] port over it. Rebuildable: `msa projections rebuild notes.list`.

use async_trait::async_trait;
use msa_kernel::repository::decode;
use msa_kernel::{
    Aggregate, Projection, ProjectionError, RecordedEvent, StoreError, TableNames, TableSpec,
};
use msa_sql::Bind::Text;
use msa_sql::SqlReadModelStore;
use sqlx::Row;
use uuid::Uuid;

use crate::application::ports::NoteList as NoteListPort;
use crate::application::views::NoteView;
use crate::domain::{Note, NoteEvent};

pub struct NoteList;

const TABLES: &[TableSpec] = &[TableSpec {
    name: "notes_list",
    create: &[
        "CREATE TABLE {table} (note_id TEXT PRIMARY KEY, author TEXT NOT NULL, text TEXT NOT NULL,
           written_at TEXT NOT NULL, edited_at TEXT)",
        "CREATE INDEX {table}_by_author ON {table} (author, note_id)",
    ],
}];

#[async_trait]
impl Projection<msa_sql::Tx> for NoteList {
    fn name(&self) -> &'static str {
        "notes.list"
    }

    fn tables(&self) -> &'static [TableSpec] {
        TABLES
    }

    fn wants(&self, event: &RecordedEvent) -> bool {
        event.stream_id.category() == Note::KIND
    }

    async fn apply(
        &self,
        tx: &mut msa_sql::Tx,
        tables: &TableNames,
        event: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let table = tables.table("notes_list");
        let note_id = Text(event.stream_id.id().to_owned());
        let (sql, binds) = match decode::<NoteEvent>(event)? {
            NoteEvent::NoteWritten { author, text, at } => (
                format!(
                    "INSERT INTO {table} (note_id, author, text, written_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (note_id) DO NOTHING"
                ),
                vec![
                    note_id,
                    Text(author.to_string()),
                    Text(text.as_str().to_owned()),
                    Text(at.to_rfc3339()),
                ],
            ),
            NoteEvent::NoteEdited { text, at } => (
                format!("UPDATE {table} SET text = $2, edited_at = $3 WHERE note_id = $1"),
                vec![
                    note_id,
                    Text(text.as_str().to_owned()),
                    Text(at.to_rfc3339()),
                ],
            ),
            NoteEvent::NoteDeleted { .. } => (
                format!("DELETE FROM {table} WHERE note_id = $1"),
                vec![note_id],
            ),
        };
        msa_sql::execute(tx, &sql, binds)
            .await
            .map_err(ProjectionError::apply)?;
        Ok(())
    }
}

#[async_trait]
impl NoteListPort for SqlReadModelStore {
    async fn notes_of(
        &self,
        author: Uuid,
        before: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<NoteView>, StoreError> {
        // Note ids are UUIDv7: newest first is descending id order.
        let before = before
            .map(|id| id.to_string())
            .unwrap_or_else(|| "~".into());
        let rows = sqlx::query(
            "SELECT note_id, text, written_at, edited_at FROM notes_list
             WHERE author = $1 AND note_id < $2 ORDER BY note_id DESC LIMIT $3",
        )
        .bind(author.to_string())
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("note_id").map_err(StoreError::backend)?;
                Ok(NoteView {
                    id: id.parse().map_err(StoreError::backend)?,
                    text: row.try_get("text").map_err(StoreError::backend)?,
                    written_at: row.try_get("written_at").map_err(StoreError::backend)?,
                    edited_at: row.try_get("edited_at").map_err(StoreError::backend)?,
                })
            })
            .collect()
    }
}
