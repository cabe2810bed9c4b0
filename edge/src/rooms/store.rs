//! [`RoomStore`] over the Durable Object's SQLite storage.
//!
//! The schema is created and migrated here, in one place, versioned by `meta.schema_version`.
//! Every query is parameterised and pages by key (`seq`), never by OFFSET: on Durable Objects
//! every row scanned is billed, and a join must not slow down as history grows.

use serde::Deserialize;
use shared::assistant::Summary;
use shared::protocol::{AnswerView, Author, Event, EventKind, MessageView, Seq};
use shared::room::RoomStore;
use worker::{SqlStorage, SqlStorageValue};

/// Schema migrations, applied in order; index + 1 is the version they bring the room to.
const MIGRATIONS: &[&str] = &[
    // v1: the event log, the current state of messages, and the edit history.
    "CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        author_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        target INTEGER,
        body TEXT NOT NULL
    );
    CREATE UNIQUE INDEX events_by_mutation ON events (author_id, client_id);
    CREATE INDEX events_by_target ON events (target) WHERE target IS NOT NULL;
    CREATE TABLE messages (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        author TEXT NOT NULL,
        client_id TEXT NOT NULL,
        text TEXT NOT NULL,
        edited_at INTEGER,
        deleted INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE message_versions (
        seq INTEGER NOT NULL,
        replaced_at INTEGER NOT NULL,
        text TEXT NOT NULL,
        PRIMARY KEY (seq, replaced_at)
    );",
    // v2: the assistant. An answer is a message with its assistant state as JSON; the state
    // is also a column so the few unfinished answers are found by index on wake.
    "ALTER TABLE messages ADD COLUMN answer TEXT;
    ALTER TABLE messages ADD COLUMN answer_state TEXT;
    CREATE INDEX messages_unfinished ON messages (answer_state)
        WHERE answer_state IN ('queued', 'streaming');",
];

/// The columns a [`MessageRow`] reads.
const MESSAGE_COLUMNS: &str = "seq, at, author, client_id, text, edited_at, deleted, answer";

/// The room's SQLite storage.
#[derive(Clone)]
pub struct SqlStore {
    sql: SqlStorage,
}

#[derive(Deserialize)]
struct MetaValue {
    value: String,
}

#[derive(Deserialize)]
struct HeadRow {
    head: Option<f64>,
}

#[derive(Deserialize)]
struct SeqRow {
    seq: f64,
}

#[derive(Deserialize)]
struct BodyRow {
    body: String,
}

#[derive(Deserialize)]
struct MessageRow {
    seq: f64,
    at: f64,
    author: String,
    client_id: String,
    text: String,
    edited_at: Option<f64>,
    deleted: f64,
    answer: Option<String>,
}

impl MessageRow {
    fn into_view(self) -> worker::Result<MessageView> {
        let author: Author = serde_json::from_str(&self.author)
            .map_err(|e| worker::Error::RustError(format!("corrupt author JSON: {e}")))?;
        Ok(MessageView {
            seq: self.seq as Seq,
            at: self.at as i64,
            author,
            client_id: self.client_id,
            text: self.text,
            edited_at: self.edited_at.map(|t| t as i64),
            deleted: self.deleted != 0.0,
            answer: self
                .answer
                .map(|a| serde_json::from_str::<AnswerView>(&a))
                .transpose()
                .map_err(|e| worker::Error::RustError(format!("corrupt answer JSON: {e}")))?,
        })
    }
}

/// The largest integer a JavaScript number holds exactly (values cross into JS as numbers).
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

fn int(value: u64) -> SqlStorageValue {
    SqlStorageValue::Integer(value as i64)
}

impl SqlStore {
    /// Opens the store, creating or migrating the schema.
    pub fn open(sql: SqlStorage) -> worker::Result<Self> {
        let store = SqlStore { sql };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> worker::Result<()> {
        self.sql.exec(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            None,
        )?;
        let version: usize = self
            .meta("schema_version")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version) {
            // All statements of one migration and the version bump run without an await in
            // between, so the runtime commits them as one transaction.
            for statement in migration.split(';').filter(|s| !s.trim().is_empty()) {
                self.sql.exec(statement, None)?;
            }
            self.set_meta("schema_version", &(i + 1).to_string())?;
        }
        Ok(())
    }

    /// A value from the room's key-value metadata.
    pub fn meta(&self, key: &str) -> worker::Result<Option<String>> {
        let rows: Vec<MetaValue> = self
            .sql
            .exec("SELECT value FROM meta WHERE key = ?", vec![key.into()])?
            .to_array()?;
        Ok(rows.into_iter().next().map(|r| r.value))
    }

    /// Sets a metadata value.
    pub fn set_meta(&self, key: &str, value: &str) -> worker::Result<()> {
        self.sql.exec(
            "INSERT INTO meta (key, value) VALUES (?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            vec![key.into(), value.into()],
        )?;
        Ok(())
    }

    /// Messages ever posted (deleted ones included), kept as a counter so the directory update
    /// never scans the table.
    pub fn message_count(&self) -> worker::Result<u64> {
        Ok(self
            .meta("message_count")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// When the newest message was posted.
    pub fn last_message_at(&self) -> worker::Result<Option<i64>> {
        #[derive(Deserialize)]
        struct AtRow {
            at: f64,
        }
        let rows: Vec<AtRow> = self
            .sql
            .exec("SELECT at FROM messages ORDER BY seq DESC LIMIT 1", None)?
            .to_array()?;
        Ok(rows.into_iter().next().map(|r| r.at as i64))
    }
}

impl RoomStore for SqlStore {
    type Error = worker::Error;

    fn head(&self) -> worker::Result<Seq> {
        let rows: Vec<HeadRow> = self
            .sql
            .exec("SELECT MAX(seq) AS head FROM events", None)?
            .to_array()?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.head)
            .map_or(0, |h| h as Seq))
    }

    fn find_mutation(&self, author_id: &str, client_id: &str) -> worker::Result<Option<Seq>> {
        let rows: Vec<SeqRow> = self
            .sql
            .exec(
                "SELECT seq FROM events WHERE author_id = ? AND client_id = ?",
                vec![author_id.into(), client_id.into()],
            )?
            .to_array()?;
        Ok(rows.into_iter().next().map(|r| r.seq as Seq))
    }

    fn message(&self, seq: Seq) -> worker::Result<Option<MessageView>> {
        let rows: Vec<MessageRow> = self
            .sql
            .exec(
                &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE seq = ?"),
                vec![int(seq)],
            )?
            .to_array()?;
        rows.into_iter()
            .next()
            .map(MessageRow::into_view)
            .transpose()
    }

    fn append(&mut self, event: &Event) -> worker::Result<()> {
        // No await between these statements: the runtime commits them atomically.
        let body = serde_json::to_string(event)
            .map_err(|e| worker::Error::RustError(format!("event JSON: {e}")))?;
        let target = match &event.kind {
            EventKind::Message { .. } | EventKind::Answer { .. } => None,
            EventKind::Edit { target, .. }
            | EventKind::Delete { target }
            | EventKind::AnswerStatus { target, .. }
            | EventKind::Feedback { target, .. } => Some(*target),
            EventKind::Unknown => {
                return Err(worker::Error::RustError(
                    "refusing to store an event of unknown kind".into(),
                ))
            }
        };
        self.sql.exec(
            "INSERT INTO events (seq, at, author_id, client_id, target, body)
             VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                int(event.seq),
                event.at.into(),
                event.author.id.as_str().into(),
                event.client_id.as_str().into(),
                target.map(|t| t as i64).into(),
                body.into(),
            ],
        )?;
        match &event.kind {
            EventKind::Message { .. } | EventKind::Answer { .. } => {
                let Some(view) = MessageView::from_event(event) else {
                    return Ok(());
                };
                let author = serde_json::to_string(&event.author)
                    .map_err(|e| worker::Error::RustError(format!("author JSON: {e}")))?;
                let (answer, state) = answer_columns(&view)?;
                self.sql.exec(
                    "INSERT INTO messages (seq, at, author, client_id, text, answer, answer_state)
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                    vec![
                        int(event.seq),
                        event.at.into(),
                        author.into(),
                        event.client_id.as_str().into(),
                        view.text.as_str().into(),
                        answer.into(),
                        state.into(),
                    ],
                )?;
                self.sql.exec(
                    "INSERT INTO meta (key, value) VALUES ('message_count', '1')
                     ON CONFLICT (key) DO UPDATE SET value = CAST(value AS INTEGER) + 1",
                    None,
                )?;
            }
            EventKind::Edit { target, text } => {
                self.sql.exec(
                    "INSERT INTO message_versions (seq, replaced_at, text)
                     SELECT seq, ?, text FROM messages WHERE seq = ? AND deleted = 0",
                    vec![event.at.into(), int(*target)],
                )?;
                self.sql.exec(
                    "UPDATE messages SET text = ?, edited_at = ? WHERE seq = ? AND deleted = 0",
                    vec![text.as_str().into(), event.at.into(), int(*target)],
                )?;
            }
            EventKind::AnswerStatus { target, .. } | EventKind::Feedback { target, .. } => {
                let Some(mut view) = self.message(*target)? else {
                    return Ok(());
                };
                if view.apply(event) {
                    let (answer, state) = answer_columns(&view)?;
                    self.sql.exec(
                        "UPDATE messages SET text = ?, answer = ?, answer_state = ? WHERE seq = ?",
                        vec![
                            view.text.as_str().into(),
                            answer.into(),
                            state.into(),
                            int(*target),
                        ],
                    )?;
                }
            }
            EventKind::Unknown => {}
            EventKind::Delete { target } => {
                // A deleted message's words leave storage entirely: its current text, its
                // earlier versions, and the text inside the events that posted and edited it
                // (so a replay never carries them again).
                self.sql.exec(
                    "UPDATE messages SET text = '', deleted = 1, answer_state = NULL,
                        answer = json_set(answer, '$.previous', json('[]'))
                     WHERE seq = ?",
                    vec![int(*target)],
                )?;
                self.sql.exec(
                    "DELETE FROM message_versions WHERE seq = ?",
                    vec![int(*target)],
                )?;
                self.sql.exec(
                    "UPDATE events SET body = json_set(body, '$.kind.text', '')
                     WHERE (seq = ?1 OR target = ?1) AND json_extract(body, '$.kind.text') IS NOT NULL",
                    vec![int(*target)],
                )?;
            }
        }
        Ok(())
    }

    fn events_after(&self, after: Seq, limit: usize) -> worker::Result<Vec<Event>> {
        let rows: Vec<BodyRow> = self
            .sql
            .exec(
                "SELECT body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                vec![int(after), int(limit as u64)],
            )?
            .to_array()?;
        rows.into_iter()
            .map(|r| {
                serde_json::from_str(&r.body)
                    .map_err(|e| worker::Error::RustError(format!("corrupt event JSON: {e}")))
            })
            .collect()
    }

    fn messages_before(
        &self,
        before: Option<Seq>,
        limit: usize,
    ) -> worker::Result<(Vec<MessageView>, bool)> {
        // One row more than asked tells whether an older page exists.
        let rows: Vec<MessageRow> = self
            .sql
            .exec(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE seq < ? ORDER BY seq DESC LIMIT ?"
                ),
                vec![
                    SqlStorageValue::Integer(before.map_or(MAX_SAFE_INTEGER, |b| b as i64)),
                    int(limit as u64 + 1),
                ],
            )?
            .to_array()?;
        let has_more = rows.len() > limit;
        let mut page = rows
            .into_iter()
            .take(limit)
            .map(MessageRow::into_view)
            .collect::<worker::Result<Vec<_>>>()?;
        page.reverse();
        Ok((page, has_more))
    }

    fn set_answer_text(&mut self, seq: Seq, text: &str) -> worker::Result<()> {
        self.sql.exec(
            "UPDATE messages SET text = ? WHERE seq = ?",
            vec![text.into(), int(seq)],
        )?;
        Ok(())
    }

    fn unfinished_answers(&self) -> worker::Result<Vec<MessageView>> {
        let rows: Vec<MessageRow> = self
            .sql
            .exec(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                     WHERE answer_state IN ('queued', 'streaming') ORDER BY seq"
                ),
                None,
            )?
            .to_array()?;
        rows.into_iter().map(MessageRow::into_view).collect()
    }

    fn summary(&self) -> worker::Result<Option<Summary>> {
        Ok(self
            .meta("ai_summary")?
            .and_then(|json| serde_json::from_str(&json).ok()))
    }

    fn set_summary(&mut self, summary: &Summary) -> worker::Result<()> {
        let json = serde_json::to_string(summary)
            .map_err(|e| worker::Error::RustError(format!("summary JSON: {e}")))?;
        self.set_meta("ai_summary", &json)
    }
}

/// The answer JSON and state columns of a message (both NULL for people's messages).
fn answer_columns(view: &MessageView) -> worker::Result<(Option<String>, Option<String>)> {
    let Some(answer) = &view.answer else {
        return Ok((None, None));
    };
    let json = serde_json::to_string(answer)
        .map_err(|e| worker::Error::RustError(format!("answer JSON: {e}")))?;
    let state = serde_json::to_value(answer.state)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned));
    Ok((Some(json), state))
}
