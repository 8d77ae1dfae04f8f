//! The chat history: rooms, members and messages as tables, a projection of the room streams.

use std::collections::BTreeMap;

use async_trait::async_trait;
use msa_kernel::repository::decode;
use msa_kernel::{
    Aggregate, Projection, ProjectionError, RecordedEvent, StoreError, TableNames, TableSpec,
};
use msa_sql::Bind::{Int, Text};
use msa_sql::{Bind, SqlReadModelStore};
use sqlx::Row;
use uuid::Uuid;

use crate::application::ports::RoomHistory;
pub use crate::application::views::{
    EarlierBody, MessageView, ReactionCount, RoomCursor, RoomSummary, Window,
};
use crate::domain::{room_of, Message, Room, RoomEvent};

pub struct History;

pub const HISTORY_TABLES: &[TableSpec] = &[
    TableSpec {
        name: "chat_rooms",
        create: &["CREATE TABLE {table} (room_id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT, created_at TEXT NOT NULL, last_seq BIGINT NOT NULL)"],
    },
    TableSpec {
        name: "chat_members",
        create: &[
            "CREATE TABLE {table} (room_id TEXT NOT NULL, user_id TEXT NOT NULL, role TEXT NOT NULL, PRIMARY KEY (room_id, user_id))",
            "CREATE INDEX {table}_by_user ON {table} (user_id)",
        ],
    },
    TableSpec {
        name: "chat_messages",
        create: &[
            "CREATE TABLE {table} (room_id TEXT NOT NULL, seq BIGINT NOT NULL, message_id TEXT NOT NULL, sender_id TEXT NOT NULL, body TEXT NOT NULL, reply_to TEXT, created_at TEXT NOT NULL, edited_at TEXT, redacted BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (room_id, seq))",
            "CREATE UNIQUE INDEX {table}_by_id ON {table} (message_id)",
        ],
    },
    // Earlier bodies of edited messages (gone with a redaction). `seq` is the edit's log position
    // (edits stored on the room's stream before messages had streams were keyed by their room
    // seq, which is below any later position): unique, and in the order the edits were made.
    TableSpec {
        name: "chat_message_edits",
        create: &["CREATE TABLE {table} (room_id TEXT NOT NULL, seq BIGINT NOT NULL, message_id TEXT NOT NULL, body TEXT NOT NULL, edited_at TEXT NOT NULL, PRIMARY KEY (room_id, seq))"],
    },
    TableSpec {
        name: "chat_reactions",
        create: &["CREATE TABLE {table} (room_id TEXT NOT NULL, message_id TEXT NOT NULL, user_id TEXT NOT NULL, emoji TEXT NOT NULL, PRIMARY KEY (message_id, user_id, emoji))"],
    },
];

#[async_trait]
impl Projection<msa_sql::Tx> for History {
    fn name(&self) -> &'static str {
        "chat.history"
    }

    fn tables(&self) -> &'static [TableSpec] {
        HISTORY_TABLES
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

    /// Messages posted one after another (most of a busy batch) are written together: their rows
    /// in one insert and each room's last seq in one update, instead of two statements each.
    async fn apply_all(
        &self,
        tx: &mut msa_sql::Tx,
        tables: &TableNames,
        events: &[&RecordedEvent],
    ) -> Result<(), ProjectionError> {
        let mut posted = PostedRun::default();
        for event in events {
            match decode::<RoomEvent>(event)? {
                RoomEvent::MessagePosted {
                    seq,
                    message_id,
                    sender_id,
                    body,
                    reply_to,
                } => posted.push(
                    event,
                    seq,
                    sender_id,
                    vec![
                        Text(message_id.to_string()),
                        Text(sender_id.to_string()),
                        Text(body.as_str().to_owned()),
                        reply_to.map(|r| r.to_string()).into(),
                    ],
                ),
                change => {
                    posted.write(tx, tables).await?;
                    self.apply_change(tx, tables, event, change).await?;
                }
            }
        }
        posted.write(tx, tables).await
    }
}

/// Messages posted one after another, not written yet.
#[derive(Default)]
struct PostedRun {
    /// `chat_messages` rows: room_id, seq, message_id, sender_id, body, reply_to, created_at.
    messages: Vec<Vec<Bind>>,
    /// Each room's last seq in the run (a room's posts come in seq order, so the last one wins).
    last_seqs: BTreeMap<String, i64>,
    /// Each sender's last post per room: whoever posts has read the room up to there.
    read_up_to: BTreeMap<(String, String), i64>,
}

impl PostedRun {
    fn push(&mut self, event: &RecordedEvent, seq: u64, sender: Uuid, message: Vec<Bind>) {
        let room_id = event.stream_id.id();
        let seq = seq as i64;
        self.read_up_to
            .insert((room_id.to_owned(), sender.to_string()), seq);
        let mut row = vec![Text(room_id.to_owned()), Int(seq)];
        row.extend(message);
        row.push(Text(event.occurred_at.to_rfc3339()));
        self.messages.push(row);
        self.last_seqs.insert(room_id.to_owned(), seq);
    }

    async fn write(
        &mut self,
        tx: &mut msa_sql::Tx,
        tables: &TableNames,
    ) -> Result<(), ProjectionError> {
        if self.messages.is_empty() {
            return Ok(());
        }
        let (rooms, messages) = (tables.table("chat_rooms"), tables.table("chat_messages"));
        msa_sql::execute_rows(
            tx,
            |n| {
                format!(
                    "INSERT INTO {messages} (room_id, seq, message_id, sender_id, body, reply_to, created_at)
                     VALUES {}",
                    msa_sql::placeholders(n, 7)
                )
            },
            std::mem::take(&mut self.messages),
        )
        .await
        .map_err(ProjectionError::apply)?;
        msa_sql::execute_rows(
            tx,
            |n| {
                format!(
                    "WITH last (room_id, seq) AS (VALUES {})
                     UPDATE {rooms} SET last_seq = last.seq FROM last WHERE {rooms}.room_id = last.room_id",
                    msa_sql::placeholders(n, 2)
                )
            },
            std::mem::take(&mut self.last_seqs)
                .into_iter()
                .map(|(room_id, seq)| vec![Text(room_id), Int(seq)])
                .collect(),
        )
        .await
        .map_err(ProjectionError::apply)?;
        // Read markers are query-side state outside the generations (they move on reads too);
        // they only ever move forward, so applying a post again changes nothing.
        msa_sql::execute_rows(
            tx,
            |n| {
                format!(
                    "INSERT INTO chat_read_markers (room_id, user_id, seq) VALUES {}
                     ON CONFLICT (room_id, user_id) DO UPDATE SET seq = excluded.seq
                     WHERE chat_read_markers.seq < excluded.seq",
                    msa_sql::placeholders(n, 3)
                )
            },
            std::mem::take(&mut self.read_up_to)
                .into_iter()
                .map(|((room_id, user_id), seq)| vec![Text(room_id), Text(user_id), Int(seq)])
                .collect(),
        )
        .await
        .map_err(ProjectionError::apply)?;
        Ok(())
    }
}

impl History {
    /// One event's change to history, statement by statement (posts go in runs: `PostedRun`).
    async fn apply_change(
        &self,
        tx: &mut msa_sql::Tx,
        tables: &TableNames,
        event: &RecordedEvent,
        change: RoomEvent,
    ) -> Result<(), ProjectionError> {
        let room_id = room_of(&event.stream_id)
            .ok_or_else(|| {
                ProjectionError::apply(format!("{} is no room's stream", event.stream_id))
            })?
            .to_string();
        let (rooms, members, messages) = (
            tables.table("chat_rooms"),
            tables.table("chat_members"),
            tables.table("chat_messages"),
        );
        let (edits, reactions) = (
            tables.table("chat_message_edits"),
            tables.table("chat_reactions"),
        );
        let at = event.occurred_at.to_rfc3339();
        // A room's own events move its seq; a message's changes (on the message's stream)
        // carry the message's seq and leave the room's as it is.
        let mut statements: Vec<(String, Vec<Bind>)> = Vec::new();
        if event.stream_id.category() == Room::KIND {
            statements.push((
                format!("UPDATE {rooms} SET last_seq = $2 WHERE room_id = $1"),
                vec![Text(room_id.clone()), Int(change.seq() as i64)],
            ));
        }
        let member_upsert = format!(
            "INSERT INTO {members} (room_id, user_id, role) VALUES ($1, $2, $3)
             ON CONFLICT (room_id, user_id) DO UPDATE SET role = excluded.role"
        );
        let member_delete = format!("DELETE FROM {members} WHERE room_id = $1 AND user_id = $2");
        match change {
            RoomEvent::RoomCreated { seq, kind, name, members: roles, .. } => {
                statements.insert(0, (
                    format!("INSERT INTO {rooms} (room_id, kind, name, created_at, last_seq) VALUES ($1, $2, $3, $4, $5)"),
                    vec![Text(room_id.clone()), Text(kind.as_str().to_owned()), name.into(), Text(at.clone()), Int(seq as i64)],
                ));
                for (user_id, role) in roles {
                    statements.push((member_upsert.clone(), vec![Text(room_id.clone()), Text(user_id.to_string()), Text(role.as_str().into())]));
                }
            }
            RoomEvent::MemberJoined { user_id, .. } => statements.push((
                member_upsert,
                vec![Text(room_id.clone()), Text(user_id.to_string()), Text("member".into())],
            )),
            RoomEvent::RoleChanged { user_id, role, .. } => statements.push((
                member_upsert,
                vec![Text(room_id.clone()), Text(user_id.to_string()), Text(role.as_str().into())],
            )),
            RoomEvent::MemberLeft { user_id, .. } | RoomEvent::MemberKicked { user_id, .. } | RoomEvent::MemberBanned { user_id, .. } => {
                statements.push((member_delete, vec![Text(room_id.clone()), Text(user_id.to_string())]))
            }
            // Written with its run of posts, see `apply_all`.
            RoomEvent::MessagePosted { .. } => return Ok(()),
            RoomEvent::MessageEdited { message_id, body, .. } => {
                let id = Text(message_id.to_string());
                // The body being replaced goes to the edits.
                statements.push((
                    format!(
                        "INSERT INTO {edits} (room_id, seq, message_id, body, edited_at)
                         SELECT room_id, $3, message_id, body, $2 FROM {messages} WHERE message_id = $1 AND redacted = 0"
                    ),
                    vec![id.clone(), Text(at.clone()), Int(event.position.position)],
                ));
                statements.push((
                    format!("UPDATE {messages} SET body = $2, edited_at = $3 WHERE message_id = $1 AND redacted = 0"),
                    vec![id, Text(body.as_str().to_owned()), Text(at)],
                ));
            }
            RoomEvent::MessageRedacted { message_id, .. } => {
                let id = Text(message_id.to_string());
                statements.push((
                    format!("UPDATE {messages} SET body = '', redacted = 1 WHERE message_id = $1"),
                    vec![id.clone()],
                ));
                statements.push((format!("DELETE FROM {edits} WHERE message_id = $1"), vec![id.clone()]));
                statements.push((format!("DELETE FROM {reactions} WHERE message_id = $1"), vec![id]));
            }
            RoomEvent::ReactionAdded { message_id, user_id, emoji, .. } => statements.push((
                format!(
                    "INSERT INTO {reactions} (room_id, message_id, user_id, emoji) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (message_id, user_id, emoji) DO NOTHING"
                ),
                vec![Text(room_id.clone()), Text(message_id.to_string()), Text(user_id.to_string()), Text(emoji.as_str().to_owned())],
            )),
            RoomEvent::ReactionRemoved { message_id, user_id, emoji, .. } => statements.push((
                format!("DELETE FROM {reactions} WHERE message_id = $1 AND user_id = $2 AND emoji = $3"),
                vec![Text(message_id.to_string()), Text(user_id.to_string()), Text(emoji.as_str().to_owned())],
            )),
            RoomEvent::DetailsChanged { name, .. } => statements.push((
                format!("UPDATE {rooms} SET name = $2 WHERE room_id = $1"),
                vec![Text(room_id.clone()), name.into()],
            )),
            RoomEvent::MemberInvited { .. }
            | RoomEvent::InviteDeclined { .. }
            | RoomEvent::MemberUnbanned { .. } => {}
        }
        for (sql, binds) in statements {
            msa_sql::execute(tx, &sql, binds)
                .await
                .map_err(ProjectionError::apply)?;
        }
        Ok(())
    }
}

/// Fills in the reaction counts of `views`.
async fn add_reactions(
    db: &SqlReadModelStore,
    views: &mut [MessageView],
) -> Result<(), StoreError> {
    if views.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<_> = (1..=views.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT message_id, emoji, COUNT(*) AS n FROM chat_reactions WHERE message_id IN ({})
         GROUP BY message_id, emoji ORDER BY message_id, emoji",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql);
    for view in views.iter() {
        query = query.bind(view.id.clone());
    }
    let rows = query
        .fetch_all(db.pool())
        .await
        .map_err(StoreError::backend)?;
    for row in rows {
        let id: String = row.get("message_id");
        if let Some(view) = views.iter_mut().find(|v| v.id == id) {
            view.reactions.push(ReactionCount {
                emoji: row.get("emoji"),
                count: row.get("n"),
            });
        }
    }
    Ok(())
}

/// The ids of the messages of `room_id` that were redacted (for live catch-up).
pub async fn redacted_in(db: &SqlReadModelStore, room_id: Uuid) -> Result<Vec<String>, StoreError> {
    sqlx::query_scalar("SELECT message_id FROM chat_messages WHERE room_id = $1 AND redacted = 1")
        .bind(room_id.to_string())
        .fetch_all(db.pool())
        .await
        .map_err(StoreError::backend)
}

fn message_view(row: &sqlx::any::AnyRow) -> MessageView {
    MessageView {
        id: row.get("message_id"),
        room_id: row.get("room_id"),
        seq: row.get("seq"),
        sender_id: row.get("sender_id"),
        body: row.get("body"),
        reply_to: row.get("reply_to"),
        created_at: row.get("created_at"),
        edited_at: row.get("edited_at"),
        redacted: row.get::<i64, _>("redacted") != 0,
        reactions: Vec::new(),
    }
}

/// Where the history projection has applied the log up to. Polled by resuming live
/// connections, so read without a transaction: no SQLite write lock, no PostgreSQL row lock
/// (which waited for a running batch and held the horizon every log reader waits for).
pub async fn applied_up_to(db: &SqlReadModelStore) -> Result<msa_kernel::LogPosition, StoreError> {
    db.applied_to_read(History.name()).await
}

/// The rooms `user_id` is a member of now.
pub async fn room_ids_of(db: &SqlReadModelStore, user_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
    let ids: Vec<String> =
        sqlx::query_scalar("SELECT room_id FROM chat_members WHERE user_id = $1")
            .bind(user_id.to_string())
            .fetch_all(db.pool())
            .await
            .map_err(StoreError::backend)?;
    Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
}

#[async_trait]
impl RoomHistory for SqlReadModelStore {
    async fn messages(
        &self,
        room_id: Uuid,
        window: Window,
        limit: u32,
    ) -> Result<Vec<MessageView>, StoreError> {
        let (condition, order, bound) = match window {
            Window::Before(seq) => ("seq < $2", "DESC", seq.unwrap_or(i64::MAX)),
            Window::After(seq) => ("seq > $2", "ASC", seq),
        };
        let rows = sqlx::query(&format!(
            "SELECT room_id, seq, message_id, sender_id, body, reply_to, created_at, edited_at, redacted FROM chat_messages
             WHERE room_id = $1 AND {condition} ORDER BY seq {order} LIMIT $3"
        ))
        .bind(room_id.to_string())
        .bind(bound)
        .bind(limit as i64)
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        let mut views: Vec<MessageView> = rows.iter().map(message_view).collect();
        add_reactions(self, &mut views).await?;
        Ok(views)
    }

    /// Where history has a message of `room_id` (its seq) and whether it was deleted: for messages
    /// whose ids do not name their place (posted before they did), long applied.
    async fn message_place(
        &self,
        room_id: Uuid,
        message_id: Uuid,
    ) -> Result<Option<(u64, bool)>, StoreError> {
        let row = sqlx::query(
            "SELECT seq, redacted FROM chat_messages WHERE message_id = $1 AND room_id = $2",
        )
        .bind(message_id.to_string())
        .bind(room_id.to_string())
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::backend)?;
        Ok(row.map(|row| {
            (
                row.get::<i64, _>("seq") as u64,
                row.get::<i64, _>("redacted") != 0,
            )
        }))
    }

    /// Whether `user_id` has reacted to the message with `emoji`.
    async fn has_reaction(
        &self,
        message_id: Uuid,
        user_id: Uuid,
        emoji: &str,
    ) -> Result<bool, StoreError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM chat_reactions WHERE message_id = $1 AND user_id = $2 AND emoji = $3",
        )
        .bind(message_id.to_string())
        .bind(user_id.to_string())
        .bind(emoji)
        .fetch_optional(self.pool())
        .await
        .map_err(StoreError::backend)?;
        Ok(found.is_some())
    }

    async fn edits_of(&self, message_id: Uuid) -> Result<Vec<EarlierBody>, StoreError> {
        let rows = sqlx::query(
            "SELECT body, edited_at FROM chat_message_edits WHERE message_id = $1 ORDER BY seq",
        )
        .bind(message_id.to_string())
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        Ok(rows
            .iter()
            .map(|row| EarlierBody {
                body: row.get("body"),
                replaced_at: row.get("edited_at"),
            })
            .collect())
    }

    /// How far each member of `room_id` has read it (members who have read nothing: seq 0).
    async fn read_markers(&self, room_id: Uuid) -> Result<Vec<(String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT m.user_id, COALESCE(k.seq, 0) AS seq FROM chat_members m
         LEFT JOIN chat_read_markers k ON k.room_id = m.room_id AND k.user_id = m.user_id
         WHERE m.room_id = $1 ORDER BY m.user_id",
        )
        .bind(room_id.to_string())
        .fetch_all(self.pool())
        .await
        .map_err(StoreError::backend)?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get("user_id").map_err(StoreError::backend)?,
                    row.try_get("seq").map_err(StoreError::backend)?,
                ))
            })
            .collect()
    }

    /// Moves `user_id`'s read marker in `room_id` to `seq` (never backwards).
    async fn mark_read(&self, room_id: Uuid, user_id: Uuid, seq: i64) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO chat_read_markers (room_id, user_id, seq) VALUES ($1, $2, $3)
         ON CONFLICT (room_id, user_id) DO UPDATE SET seq = excluded.seq
         WHERE chat_read_markers.seq < excluded.seq",
        )
        .bind(room_id.to_string())
        .bind(user_id.to_string())
        .bind(seq)
        .execute(self.pool())
        .await
        .map_err(StoreError::backend)?;
        Ok(())
    }

    /// A page of the rooms `user_id` is a member of, most recently active first (by the time of the
    /// last message not deleted, or the room's creation; ties by id), after `after`. Deleted
    /// messages are neither the preview nor unread.
    async fn rooms_of(
        &self,
        user_id: Uuid,
        after: Option<&RoomCursor>,
        limit: u32,
    ) -> Result<Vec<RoomSummary>, StoreError> {
        let page = if after.is_some() {
            "WHERE q.active_at < $2 OR (q.active_at = $2 AND q.room_id > $3)"
        } else {
            ""
        };
        let limit_at = if after.is_some() { "$4" } else { "$2" };
        let sql = format!(
            "SELECT * FROM (
             SELECT r.room_id, r.kind, r.name, r.last_seq, m.role, COALESCE(l.created_at, r.created_at) AS active_at,
                    l.seq AS l_seq, l.message_id AS l_message_id, l.sender_id AS l_sender_id, l.body AS l_body,
                    l.reply_to AS l_reply_to, l.created_at AS l_created_at, l.edited_at AS l_edited_at, l.redacted AS l_redacted,
                    (SELECT COUNT(*) FROM chat_messages u WHERE u.room_id = r.room_id AND u.sender_id <> m.user_id
                       AND u.redacted = 0
                       AND u.seq > COALESCE((SELECT k.seq FROM chat_read_markers k
                                             WHERE k.room_id = r.room_id AND k.user_id = m.user_id), 0)) AS unread
             FROM chat_members m JOIN chat_rooms r ON r.room_id = m.room_id
             LEFT JOIN chat_messages l ON l.room_id = r.room_id
                  AND l.seq = (SELECT MAX(seq) FROM chat_messages x WHERE x.room_id = r.room_id AND x.redacted = 0)
             WHERE m.user_id = $1) q
             {page}
             ORDER BY q.active_at DESC, q.room_id
             LIMIT {limit_at}"
        );
        let mut query = sqlx::query(&sql).bind(user_id.to_string());
        if let Some(after) = after {
            query = query
                .bind(after.active_at.clone())
                .bind(after.room_id.to_string());
        }
        let rows = query
            .bind(i64::from(limit))
            .fetch_all(self.pool())
            .await
            .map_err(StoreError::backend)?;
        Ok(rows
            .iter()
            .map(|row| {
                let room_id: String = row.get("room_id");
                RoomSummary {
                    last_message: row.get::<Option<i64>, _>("l_seq").map(|seq| MessageView {
                        id: row.get("l_message_id"),
                        room_id: room_id.clone(),
                        seq,
                        sender_id: row.get("l_sender_id"),
                        body: row.get("l_body"),
                        reply_to: row.get("l_reply_to"),
                        created_at: row.get("l_created_at"),
                        edited_at: row.get("l_edited_at"),
                        redacted: row.get::<Option<i64>, _>("l_redacted").unwrap_or(0) != 0,
                        reactions: Vec::new(),
                    }),
                    id: room_id,
                    kind: row.get("kind"),
                    name: row.get("name"),
                    role: row.get("role"),
                    last_seq: row.get("last_seq"),
                    unread: row.get("unread"),
                    active_at: row.get("active_at"),
                }
            })
            .collect())
    }
}
