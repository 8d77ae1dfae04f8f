//! Crypto-shredding. Personal data inside the user context's events (email, nickname, bio,
//! avatar URL, Kakao id) is stored encrypted with a key of the user's own
//! (ChaCha20-Poly1305, ring). Erasing a user destroys the key: the events stay (the log is never
//! rewritten), but nothing in them can be read any more, so a replay or a projection rebuild shows
//! the user as erased.
//!
//! [`ShreddingStore`] wraps the context's [`EventStore`]: it encrypts on append and decrypts on
//! read, so aggregates and projections see plain events. The relay reads the store underneath, so
//! the bus carries only ciphertext, and other contexts hold no personal data to erase.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::Utc;
use msa_kernel::{
    AppendError, EventStore, IdempotencyRecord, LogPosition, NewEvent, RecordedEvent, Snapshot,
    StoreError, StreamId,
};
use msa_sql::SqlReadModelStore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value;
use sqlx::Row;
use tokio::sync::Notify;

use crate::adapters::master_key::MasterKey;
use crate::application::ports::{PersonalDataShredder, SealingEventStore};
use crate::domain::User;
use msa_kernel::Aggregate;

/// What an erased personal datum reads as.
pub const ERASED: &str = "[erased]";
const PREFIX: &str = "pd1:";

/// The personal fields of each event type of a user stream.
fn personal_fields(event_type: &str) -> &'static [&'static str] {
    match event_type {
        "user.UserRegistered" => &["email", "nickname"],
        "user.ProfileChanged" => &["nickname", "bio", "avatar_url"],
        "user.KakaoLinked" => &["kakao_id"],
        _ => &[],
    }
}

fn store_error(error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(error.to_string().into())
}

/// The per-user keys, in the user context's key vault, each stored encrypted under the master
/// key.
pub struct PersonalDataKeys {
    db: Arc<SqlReadModelStore>,
    master: Arc<MasterKey>,
    random: SystemRandom,
}

/// What a subject's stored key is bound to (the master key's associated data).
fn label(subject: &str) -> String {
    format!("personal_data_key:{subject}")
}

impl PersonalDataKeys {
    pub fn new(db: Arc<SqlReadModelStore>, master: Arc<MasterKey>) -> Self {
        Self {
            db,
            master,
            random: SystemRandom::new(),
        }
    }

    /// Encrypts under the master key the keys an earlier version stored in clear.
    pub async fn seal_stored(&self) -> Result<usize, StoreError> {
        let rows = sqlx::query("SELECT subject, key FROM personal_data_keys")
            .fetch_all(self.db.pool())
            .await
            .map_err(store_error)?;
        let mut sealed = 0;
        for row in &rows {
            let stored: &str = row.get("key");
            if !MasterKey::is_clear(stored) || !self.master.encrypts() {
                continue;
            }
            let subject: &str = row.get("subject");
            let key = self.master.open(&label(subject), stored)?;
            sqlx::query("UPDATE personal_data_keys SET key = $1 WHERE subject = $2 AND key = $3")
                .bind(self.master.seal(&label(subject), &key)?)
                .bind(subject)
                .bind(stored)
                .execute(self.db.pool())
                .await
                .map_err(store_error)?;
            sealed += 1;
        }
        Ok(sealed)
    }

    /// The subject's key, created on first use.
    async fn key_for(&self, subject: &str) -> Result<Vec<u8>, StoreError> {
        if let Some(key) = self.keys_of(&[subject]).await?.remove(subject) {
            return Ok(key);
        }
        let mut key = vec![0u8; 32];
        self.random
            .fill(&mut key)
            .map_err(|_| store_error("no randomness"))?;
        // A concurrent first use may win; then its key is the one.
        sqlx::query(
            "INSERT INTO personal_data_keys (subject, key, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (subject) DO NOTHING",
        )
        .bind(subject)
        .bind(self.master.seal(&label(subject), &key)?)
        .bind(Utc::now().to_rfc3339())
        .execute(self.db.pool())
        .await
        .map_err(store_error)?;
        self.keys_of(&[subject])
            .await?
            .remove(subject)
            .ok_or_else(|| store_error("the personal data key vanished"))
    }

    /// The keys of `subjects` that still exist.
    async fn keys_of(&self, subjects: &[&str]) -> Result<HashMap<String, Vec<u8>>, StoreError> {
        if subjects.is_empty() {
            return Ok(HashMap::new());
        }
        let placeholders: Vec<_> = (1..=subjects.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT subject, key FROM personal_data_keys WHERE subject IN ({})",
            placeholders.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for subject in subjects {
            query = query.bind(*subject);
        }
        let rows = query.fetch_all(self.db.pool()).await.map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let subject = row.get::<String, _>("subject");
                let key = self
                    .master
                    .open(&label(&subject), row.get::<&str, _>("key"))?;
                Ok((subject, key))
            })
            .collect()
    }

    fn seal(
        &self,
        key: &[u8],
        subject: &str,
        field: &str,
        value: &Value,
    ) -> Result<Value, StoreError> {
        let sealing =
            LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).map_err(store_error)?);
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| store_error("no randomness"))?;
        let mut sealed = serde_json::to_vec(value).map_err(store_error)?;
        sealing
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(format!("{subject}/{field}")),
                &mut sealed,
            )
            .map_err(store_error)?;
        let mut stored = nonce.to_vec();
        stored.extend(sealed);
        Ok(Value::String(format!(
            "{PREFIX}{}",
            STANDARD.encode(stored)
        )))
    }

    fn open(key: &[u8], subject: &str, field: &str, sealed: &str) -> Result<Value, StoreError> {
        let bytes = STANDARD.decode(sealed).map_err(store_error)?;
        if bytes.len() < NONCE_LEN {
            return Err(store_error("a sealed personal datum is too short"));
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let opening =
            LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).map_err(store_error)?);
        let mut buffer = ciphertext.to_vec();
        let plain = opening
            .open_in_place(
                Nonce::try_assume_unique_for_key(nonce).map_err(store_error)?,
                Aad::from(format!("{subject}/{field}")),
                &mut buffer,
            )
            .map_err(|_| {
                store_error(format!(
                    "personal datum {field} of {subject} does not decrypt"
                ))
            })?;
        serde_json::from_slice(plain).map_err(store_error)
    }
}

#[async_trait]
impl PersonalDataShredder for PersonalDataKeys {
    /// Destroys the subject's key: their personal data can never be read again.
    async fn shred(&self, subject: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM personal_data_keys WHERE subject = $1")
            .bind(subject)
            .execute(self.db.pool())
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

/// The user context's event store, with personal data sealed on the way in and opened (or shown
/// as erased) on the way out.
pub struct ShreddingStore {
    inner: Arc<dyn EventStore>,
    keys: Arc<PersonalDataKeys>,
}

impl ShreddingStore {
    pub fn new(inner: Arc<dyn EventStore>, keys: Arc<PersonalDataKeys>) -> Self {
        Self { inner, keys }
    }

    /// Whose personal data a stream's events hold (user streams only).
    fn subject(stream_id: &StreamId) -> Option<&str> {
        (stream_id.category() == User::KIND).then(|| stream_id.id())
    }

    async fn open_all(
        &self,
        mut events: Vec<RecordedEvent>,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut subjects: Vec<&str> = events
            .iter()
            .filter(|e| !personal_fields(&e.event_type).is_empty())
            .filter_map(|e| Self::subject(&e.stream_id))
            .collect();
        subjects.sort_unstable();
        subjects.dedup();
        let keys = self.keys.keys_of(&subjects).await?;
        for event in &mut events {
            let Some(subject) = Self::subject(&event.stream_id).map(str::to_owned) else {
                continue;
            };
            let key = keys.get(&subject);
            for field in personal_fields(&event.event_type) {
                let Some(value) = event.payload.get_mut(*field) else {
                    continue;
                };
                let Some(sealed) = value.as_str().and_then(|v| v.strip_prefix(PREFIX)) else {
                    continue;
                };
                *value = match key {
                    Some(key) => PersonalDataKeys::open(key, &subject, field, sealed)?,
                    None => Value::String(ERASED.into()),
                };
            }
        }
        Ok(events)
    }
}

impl SealingEventStore for ShreddingStore {}

#[async_trait]
impl EventStore for ShreddingStore {
    async fn append(
        &self,
        stream_id: &StreamId,
        expected_version: u64,
        mut events: Vec<NewEvent>,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<Vec<RecordedEvent>, AppendError> {
        if let Some(subject) = Self::subject(stream_id) {
            if events
                .iter()
                .any(|e| !personal_fields(&e.event_type).is_empty())
            {
                let key = self.keys.key_for(subject).await?;
                for event in &mut events {
                    for field in personal_fields(&event.event_type) {
                        if let Some(value) = event.payload.get_mut(*field).filter(|v| !v.is_null())
                        {
                            *value = self.keys.seal(&key, subject, field, value)?;
                        }
                    }
                }
            }
        }
        let recorded = self
            .inner
            .append(stream_id, expected_version, events, idempotency)
            .await?;
        Ok(self.open_all(recorded).await?)
    }

    async fn read_stream(
        &self,
        stream_id: &StreamId,
        after_version: u64,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self.inner.read_stream(stream_id, after_version).await?;
        self.open_all(events).await
    }

    async fn read_event(
        &self,
        stream_id: &StreamId,
        version: u64,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        let event = self.inner.read_event(stream_id, version).await?;
        Ok(self.open_all(event.into_iter().collect()).await?.pop())
    }

    async fn correlated(
        &self,
        correlation_id: uuid::Uuid,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self.inner.correlated(correlation_id, limit).await?;
        self.open_all(events).await
    }

    async fn naming(&self, id: uuid::Uuid, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self.inner.naming(id, limit).await?;
        self.open_all(events).await
    }

    async fn read_all(
        &self,
        after: LogPosition,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self.inner.read_all(after, limit).await?;
        self.open_all(events).await
    }

    async fn head_position(&self) -> Result<i64, StoreError> {
        self.inner.head_position().await
    }

    async fn last_position(&self) -> Result<LogPosition, StoreError> {
        self.inner.last_position().await
    }

    async fn last_committed_position(&self) -> Result<LogPosition, StoreError> {
        self.inner.last_committed_position().await
    }

    async fn load_snapshot(&self, stream_id: &StreamId) -> Result<Option<Snapshot>, StoreError> {
        // User streams take no snapshots (a snapshot would hold personal data in clear).
        self.inner.load_snapshot(stream_id).await
    }

    async fn save_snapshot(&self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.inner.save_snapshot(snapshot).await
    }

    async fn idempotency_record(
        &self,
        scope: &str,
        key: &str,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.idempotency_record(scope, key).await
    }

    async fn save_idempotency_record(&self, record: &IdempotencyRecord) -> Result<(), AppendError> {
        self.inner.save_idempotency_record(record).await
    }

    fn appended(&self) -> Arc<Notify> {
        self.inner.appended()
    }
}

/// The user context's events as its aggregates and projections must see them: personal data
/// sealed on append and opened on read, with keys in `key_vault`. The key vault is a database
/// apart from the query side, because projections read events (and so keys) inside their
/// query-side transactions, and SQLite gives each file one writer.
pub fn sealed_events(
    raw: Arc<dyn EventStore>,
    key_vault: Arc<SqlReadModelStore>,
    master: Arc<crate::adapters::master_key::MasterKey>,
) -> (Arc<ShreddingStore>, Arc<PersonalDataKeys>) {
    let keys = Arc::new(PersonalDataKeys::new(key_vault, master));
    (Arc::new(ShreddingStore::new(raw, keys.clone())), keys)
}
