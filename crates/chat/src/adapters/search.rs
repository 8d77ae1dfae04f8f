//! Message search: a projection into an n-gram index of each database (FTS5's `trigram`
//! tokenizer on SQLite, `pg_trgm`'s GIN index on PostgreSQL), so a word is found inside longer
//! ones: `엔진룸` in `엔진룸에서` (Korean attaches particles to words), a prefix in the whole
//! word. Edits replace the indexed body; redactions remove it.
//!
//! Every word of a search must occur in a body, as written (case aside), anywhere in it. Words of
//! three characters or more are found through the index; shorter ones (`회의`, `hi`) have no
//! trigram, so they only filter what the longer words found, or, alone, are looked for by
//! reading the caller's rooms' messages newest first (slower on large rooms: see
//! `docs/benchmarks.md`). User text is never query syntax: each word is an FTS5 string or a
//! LIKE pattern with its wildcards escaped, bound as a parameter.

use async_trait::async_trait;
use msa_kernel::projection::{physical_table, RunError};
use msa_kernel::repository::decode;
use msa_kernel::{
    Aggregate, Projection, ProjectionError, ProjectionRunner, RecordedEvent, StoreError,
    TableNames, TableSpec,
};
use msa_sql::Bind::{Int, Text};
use msa_sql::{Backend, Bind, SqlReadModelStore};
use sqlx::Row;
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use crate::application::ports::MessageIndex;
pub use crate::application::views::{Found, MessageSearch, SearchHit, Searched};
pub use crate::domain::SearchText;
use crate::domain::{Message, Room, RoomEvent};

pub struct Search {
    pub backend: Backend,
}

/// SQLite: the messages in a plain table (filters, order, what a hit shows) and their bodies'
/// trigrams in a contentless FTS5 table whose rowid is the message's `id`. `id` grows in log
/// order (never reused: AUTOINCREMENT), so newest first is `id` descending, which FTS5 walks
/// without sorting, and a rebuild gives every message the same `id` again.
const SQLITE_TABLES: &[TableSpec] = &[
    TableSpec {
        name: "chat_search",
        create: &[
            "CREATE TABLE {table} (id INTEGER PRIMARY KEY AUTOINCREMENT, message_id TEXT NOT NULL UNIQUE, room_id TEXT NOT NULL, seq BIGINT NOT NULL, sender_id TEXT NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL, posted_us BIGINT NOT NULL)",
            "CREATE INDEX {table}_by_room ON {table} (room_id, id)",
        ],
    },
    TableSpec {
        name: "chat_search_trigrams",
        create: &["CREATE VIRTUAL TABLE {table} USING fts5(body, content='', contentless_delete=1, tokenize='trigram')"],
    },
];

/// PostgreSQL: one table, its bodies' trigrams in a GIN index (`pg_trgm`, which also answers
/// `ILIKE '%…%'`). The extension is made in the context's schema if the database lacks it; it
/// may live in another schema (one database holding several contexts' or deployments' schemas
/// has it once), so the index names its operator class in whichever schema holds it.
const POSTGRES_TABLES: &[TableSpec] = &[TableSpec {
    name: "chat_search",
    create: &[
        "CREATE TABLE {table} (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, message_id TEXT NOT NULL UNIQUE, room_id TEXT NOT NULL, seq BIGINT NOT NULL, sender_id TEXT NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL, posted_us BIGINT NOT NULL)",
        "CREATE INDEX {table}_by_room ON {table} (room_id, id)",
        "DO $$ DECLARE trgm_schema TEXT; BEGIN
           CREATE EXTENSION IF NOT EXISTS pg_trgm;
           SELECT extnamespace::regnamespace::text INTO trgm_schema FROM pg_extension WHERE extname = 'pg_trgm';
           EXECUTE format('CREATE INDEX {table}_trigrams ON {table} USING GIN (body %s.gin_trgm_ops)', trgm_schema);
         END $$",
    ],
}];

#[async_trait]
impl Projection<msa_sql::Tx> for Search {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn tables(&self) -> &'static [TableSpec] {
        match self.backend {
            Backend::Sqlite => SQLITE_TABLES,
            Backend::Postgres => POSTGRES_TABLES,
        }
    }

    /// Posts, edits and deletions only: another event would cut a run of posts in two.
    fn wants(&self, event: &RecordedEvent) -> bool {
        matches!(event.stream_id.category(), Room::KIND | Message::KIND)
            && matches!(
                event.event_type.as_str(),
                "chat.MessagePosted" | "chat.MessageEdited" | "chat.MessageRedacted"
            )
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
                    Text(message_id.to_string()),
                    Text(event.stream_id.id().to_owned()),
                    Int(seq as i64),
                    Text(sender_id.to_string()),
                    Text(indexed(body.as_str())),
                    Text(event.occurred_at.to_rfc3339()),
                    Int(event.occurred_at.timestamp_micros()),
                ]);
                continue;
            }
            self.insert_posted(tx, tables, &mut posted).await?;
            for (sql, binds) in self.change_statements(tables, change) {
                msa_sql::execute(tx, &sql, binds)
                    .await
                    .map_err(ProjectionError::apply)?;
            }
        }
        self.insert_posted(tx, tables, &mut posted).await
    }
}

/// The body as indexed and shown in hits: NFC, as searches are, so text typed with decomposed
/// Hangul (jamo, as some keyboards send it) finds text typed with syllables and back.
fn indexed(body: &str) -> String {
    body.nfc().collect()
}

impl Search {
    /// Writes the rows of messages posted one after another, in one insert (and on SQLite one
    /// more for their trigrams).
    async fn insert_posted(
        &self,
        tx: &mut msa_sql::Tx,
        tables: &TableNames,
        posted: &mut Vec<Vec<Bind>>,
    ) -> Result<(), ProjectionError> {
        if posted.is_empty() {
            return Ok(());
        }
        let messages = tables.table("chat_search");
        let before: i64 = match self.backend {
            Backend::Sqlite => {
                sqlx::query_scalar(&format!("SELECT coalesce(max(id), 0) FROM {messages}"))
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(ProjectionError::apply)?
            }
            Backend::Postgres => 0,
        };
        msa_sql::execute_rows(
            tx,
            |n| {
                format!(
                    "INSERT INTO {messages} (message_id, room_id, seq, sender_id, body, created_at, posted_us) VALUES {}",
                    msa_sql::placeholders(n, 7)
                )
            },
            std::mem::take(posted),
        )
        .await
        .map_err(ProjectionError::apply)?;
        if self.backend == Backend::Sqlite {
            // The rows just inserted are the ones above the largest id before.
            let trigrams = tables.table("chat_search_trigrams");
            msa_sql::execute(
                tx,
                &format!(
                    "INSERT INTO {trigrams} (rowid, body) SELECT id, body FROM {messages} WHERE id > $1"
                ),
                vec![Int(before)],
            )
            .await
            .map_err(ProjectionError::apply)?;
        }
        Ok(())
    }

    /// The statements of an edit or a redaction (a post is inserted with its run).
    fn change_statements(
        &self,
        tables: &TableNames,
        change: RoomEvent,
    ) -> Vec<(String, Vec<Bind>)> {
        let messages = tables.table("chat_search");
        let trigrams = tables.table("chat_search_trigrams");
        let sqlite = self.backend == Backend::Sqlite;
        let forget_trigrams = format!(
            "DELETE FROM {trigrams} WHERE rowid = (SELECT id FROM {messages} WHERE message_id = $1)"
        );
        match change {
            RoomEvent::MessageEdited {
                message_id, body, ..
            } => {
                let id = Text(message_id.to_string());
                let mut statements = vec![(
                    format!("UPDATE {messages} SET body = $1 WHERE message_id = $2"),
                    vec![Text(indexed(body.as_str())), id.clone()],
                )];
                if sqlite {
                    statements.push((forget_trigrams, vec![id.clone()]));
                    statements.push((
                        format!("INSERT INTO {trigrams} (rowid, body) SELECT id, body FROM {messages} WHERE message_id = $1"),
                        vec![id],
                    ));
                }
                statements
            }
            RoomEvent::MessageRedacted { message_id, .. } => {
                let id = Text(message_id.to_string());
                let mut statements = Vec::new();
                if sqlite {
                    statements.push((forget_trigrams, vec![id.clone()]));
                }
                statements.push((
                    format!("DELETE FROM {messages} WHERE message_id = $1"),
                    vec![id],
                ));
                statements
            }
            _ => Vec::new(),
        }
    }
}

/// An FTS5 query of the words, each a string (`"…"`, quotes doubled): with the trigram
/// tokenizer a string matches wherever its characters occur in a row, case aside; the strings
/// side by side must all match. Nothing in a word is read as FTS5 syntax (`OR`, `NEAR(`, `*`).
fn fts5_query<'a>(words: impl Iterator<Item = &'a str>) -> String {
    words
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A LIKE pattern for `word` anywhere in a body, its wildcards (`%`, `_`) and the escape
/// character itself escaped with `\` (used with `ESCAPE '\'`).
fn like_pattern(word: &str) -> String {
    let mut pattern = String::with_capacity(word.len() + 2);
    pattern.push('%');
    for c in word.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

impl Search {
    pub const NAME: &'static str = "chat.search";
}

/// Adds a parameter; returns its placeholder (`$n`: parameters are numbered in order of use).
fn next(binds: &mut Vec<Bind>, value: Bind) -> String {
    binds.push(value);
    format!("${}", binds.len())
}

/// Whether the live generation of the index was built by an earlier version (word indexes)
/// and must be built again: migration 3002 says so for a database that had one.
pub async fn rebuild_due(db: &SqlReadModelStore) -> Result<bool, StoreError> {
    let due: i64 = sqlx::query_scalar("SELECT count(*) FROM chat_search_rebuilds")
        .fetch_one(db.pool())
        .await
        .map_err(StoreError::backend)?;
    Ok(due > 0)
}

/// Builds the index again beside the live generation, if an upgrade asked for it, and makes it
/// live; until then searches answer [`Searched::Rebuilding`]. The projection's runner must not
/// follow the log meanwhile (its statements are for the new tables). Returns the events applied.
pub async fn rebuild_if_due(
    runner: &ProjectionRunner<SqlReadModelStore>,
    db: &SqlReadModelStore,
    projection: &Search,
) -> Result<u64, RunError> {
    if !rebuild_due(db).await? {
        return Ok(0);
    }
    let applied = runner.rebuild(projection).await?;
    sqlx::query("DELETE FROM chat_search_rebuilds")
        .execute(db.pool())
        .await
        .map_err(StoreError::backend)?;
    Ok(applied)
}

#[async_trait]
impl MessageIndex for SqlReadModelStore {
    /// Messages holding every word of `search.text`, in the rooms `user_id` is a member of now
    /// (`chat_members`, history's live membership), newest first.
    async fn search(&self, user_id: Uuid, search: &MessageSearch) -> Result<Searched, StoreError> {
        // One round trip tells which generation is live and whether it is an old one being rebuilt.
        let state = sqlx::query(
            "SELECT live_generation, (SELECT count(*) FROM chat_search_rebuilds) AS due
         FROM projections WHERE name = $1",
        )
        .bind(Search::NAME)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::backend)?;
        let Some(state) = state else {
            return Ok(Searched::Found(Found {
                hits: Vec::new(),
                next_cursor: None,
            }));
        };
        let due: i64 = state.get("due");
        let generation: Option<i64> = state.get("live_generation");
        let Some(generation) = generation.filter(|_| due == 0) else {
            return Ok(Searched::Rebuilding);
        };
        let generation = generation as u32;
        let messages = physical_table("chat_search", generation);
        let mut binds = vec![Text(user_id.to_string())];
        let mut conditions =
            vec!["m.room_id IN (SELECT room_id FROM chat_members WHERE user_id = $1)".to_owned()];
        let indexed: Vec<&str> = search.text.indexed_words().collect();
        let (from, order) = match self.backend() {
            // The physical tables: FTS5's MATCH does not work through the view.
            // In one room, reading that room's messages newest first (its index) until the page is
            // full costs less than walking every room's matches for the few in that room (a common
            // word in one room: 424 ms at p50 through the index, 1,000,000 messages).
            Backend::Sqlite if !indexed.is_empty() && search.room.is_none() => {
                let trigrams = physical_table("chat_search_trigrams", generation);
                let matching = next(&mut binds, Text(fts5_query(indexed.iter().copied())));
                conditions.push(format!("{trigrams} MATCH {matching}"));
                let order = format!("{trigrams}.rowid");
                if let Some(cursor) = search.cursor {
                    conditions.push(format!("{order} < {}", next(&mut binds, Int(cursor))));
                }
                // CROSS JOIN keeps the index outside: SQLite then walks the matches newest first
                // (FTS5 gives them in rowid order) and stops at the page's end, instead of probing
                // the index once for each message of the caller's rooms.
                (
                    format!("{trigrams} CROSS JOIN {messages} m ON m.id = {order}"),
                    order,
                )
            }
            backend => {
                let like = match backend {
                    Backend::Postgres => "ILIKE",
                    Backend::Sqlite => "LIKE",
                };
                for word in &indexed {
                    let pattern = next(&mut binds, Text(like_pattern(word)));
                    conditions.push(format!("m.body {like} {pattern} ESCAPE '\\'"));
                }
                if let Some(cursor) = search.cursor {
                    conditions.push(format!("m.id < {}", next(&mut binds, Int(cursor))));
                }
                // With words the index knows, PostgreSQL is kept from walking the primary key
                // backwards and testing every row (`+ 0` is no index's order): it guesses a word is
                // common and hopes to fill the page early, so a word found nowhere read all
                // 1,000,000 rows (1.6 s at p50). Through the trigram index a search costs what it
                // finds instead.
                let order = if backend == Backend::Postgres && !indexed.is_empty() {
                    "m.id + 0"
                } else {
                    "m.id"
                };
                (format!("{messages} m"), order.to_owned())
            }
        };
        let like = match self.backend() {
            Backend::Postgres => "ILIKE",
            Backend::Sqlite => "LIKE",
        };
        for word in search.text.short_words() {
            let pattern = next(&mut binds, Text(like_pattern(word)));
            conditions.push(format!("m.body {like} {pattern} ESCAPE '\\'"));
        }
        if let Some(room) = search.room {
            conditions.push(format!(
                "m.room_id = {}",
                next(&mut binds, Text(room.to_string()))
            ));
        }
        if let Some(sender) = search.sender {
            conditions.push(format!(
                "m.sender_id = {}",
                next(&mut binds, Text(sender.to_string()))
            ));
        }
        if let Some(before) = search.before {
            let at = next(&mut binds, Int(before.timestamp_micros()));
            conditions.push(format!("m.posted_us < {at}"));
        }
        if let Some(after) = search.after {
            let at = next(&mut binds, Int(after.timestamp_micros()));
            conditions.push(format!("m.posted_us > {at}"));
        }
        // One more than a page tells whether there is a next one.
        let limit = next(&mut binds, Int(search.limit as i64 + 1));
        let sql = format!(
            "SELECT m.id, m.message_id, m.room_id, m.seq, m.sender_id, m.body, m.created_at
         FROM {from} WHERE {} ORDER BY {order} DESC LIMIT {limit}",
            conditions.join(" AND ")
        );
        let mut query = sqlx::query(&sql);
        for bind in binds {
            query = match bind {
                Text(text) => query.bind(text),
                Int(number) => query.bind(number),
                Bind::Null => query.bind(None::<String>),
            };
        }
        let rows = query
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::backend)?;
        let more = rows.len() > search.limit as usize;
        let rows = &rows[..rows.len().min(search.limit as usize)];
        Ok(Searched::Found(Found {
            next_cursor: more
                .then(|| rows.last().map(|row| row.get::<i64, _>("id")))
                .flatten(),
            hits: rows
                .iter()
                .map(|row| SearchHit {
                    id: row.get("message_id"),
                    room_id: row.get("room_id"),
                    seq: row.get("seq"),
                    sender_id: row.get("sender_id"),
                    body: row.get("body"),
                    created_at: row.get("created_at"),
                })
                .collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_nfc_unique_and_bounded() {
        // Decomposed Hangul (jamo) is composed into syllables.
        let jamo = "\u{1100}\u{1161}\u{11A8}";
        assert_eq!(SearchText::parse(jamo).unwrap().words(), ["각"]);
        assert_eq!(
            SearchText::parse(" tea  tea\u{200B} 차 ").unwrap().words(),
            ["tea", "tea\u{200B}", "차"]
        );
        for bad in ["", "   ", "\u{200B}", "a\u{0}b", &"x".repeat(201)] {
            assert!(SearchText::parse(bad).is_err(), "{bad:?}");
        }
        let seventeen = vec!["w"; 17].join(" ");
        assert!(SearchText::parse(&seventeen).is_ok(), "repeats count once");
        let seventeen: Vec<String> = (0..17).map(|i| format!("w{i}")).collect();
        assert!(SearchText::parse(&seventeen.join(" ")).is_err());
    }

    #[test]
    fn user_text_is_never_query_syntax() {
        assert_eq!(
            fts5_query(["a\"b", "OR", "NEAR(x"].into_iter()),
            "\"a\"\"b\" \"OR\" \"NEAR(x\""
        );
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
