//! [`RoomStore`] over the Durable Object's SQLite storage.
//!
//! The schema is created and migrated here, in one place, versioned by `meta.schema_version`.
//! Every query is parameterised and pages by key (`seq`), never by OFFSET: on Durable Objects
//! every row scanned is billed, and a join must not slow down as history grows.

use serde::Deserialize;
use shared::assistant::Summary;
use shared::limits::UNREAD_COUNT_CAP;
use shared::moderation::{AuditEntry, Invite, MemberRecord};
use shared::protocol::http::SearchHit;
use shared::protocol::{
    AnswerView, Author, Event, EventKind, Member, MessageView, Millis, Reaction, Role, Seq,
    ThreadSummary, UnreadCounts,
};
use shared::room::RoomStore;
use shared::search::{self, SearchQuery};
use worker::{SqlStorage, SqlStorageValue};

use crate::audit::AuditRow;

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
    // v3 (rooms): threads, reactions, pins, members, read positions, mentions, and full-text
    // search. The FTS5 index reads its text from `messages` (external content, so the text is
    // stored once) and triggers keep it true on every change of `messages.text`, from any
    // code path: an edit replaces the indexed words, a delete (text set to '') removes them.
    "ALTER TABLE messages ADD COLUMN author_id TEXT;
    UPDATE messages SET author_id = json_extract(author, '$.id');
    ALTER TABLE messages ADD COLUMN thread INTEGER;
    ALTER TABLE messages ADD COLUMN in_main INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE messages ADD COLUMN reply_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN last_reply_at INTEGER;
    ALTER TABLE messages ADD COLUMN reactions TEXT;
    ALTER TABLE messages ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX messages_by_thread ON messages (thread, seq) WHERE thread IS NOT NULL;
    CREATE INDEX messages_pinned ON messages (seq) WHERE pinned = 1;
    CREATE TABLE members (
        user_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        last_seen INTEGER NOT NULL
    );
    CREATE INDEX members_by_last_seen ON members (last_seen);
    CREATE TABLE reads (user_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
    CREATE TABLE mentions (
        user_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (user_id, seq)
    ) WITHOUT ROWID;
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        text, content = 'messages', content_rowid = 'seq',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
    END;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
        INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
    END;",
    // roles: who belongs to the room and how (role, ban, mute; `members` above only tracks
    // names and last visits for mentions), its invite links, and the audit log.
    "CREATE TABLE member_roles (
        user_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        banned INTEGER NOT NULL DEFAULT 0,
        muted_until INTEGER,
        joined_at INTEGER NOT NULL,
        renamed_at INTEGER
    );
    CREATE INDEX member_roles_by_rename ON member_roles (renamed_at) WHERE renamed_at IS NOT NULL;
    CREATE TABLE invites (
        token TEXT PRIMARY KEY,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        max_uses INTEGER,
        uses INTEGER NOT NULL DEFAULT 0,
        revoked_at INTEGER
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor_id TEXT NOT NULL,
        actor_name TEXT NOT NULL,
        action TEXT NOT NULL,
        target_id TEXT,
        detail TEXT NOT NULL
    );",
    // watch: a deleted message's mentions, for the watchers of unread counts.
    "CREATE INDEX mentions_by_seq ON mentions (seq);",
];

/// Splits a migration into statements at `;`, keeping a trigger's `BEGIN … END` body (which
/// has its own semicolons) in one statement.
fn statements(migration: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for piece in migration.split(';') {
        current.push_str(piece);
        let open_trigger =
            current.contains("CREATE TRIGGER") && !current.trim_end().ends_with("END");
        if open_trigger {
            current.push(';');
            continue;
        }
        if !current.trim().is_empty() {
            out.push(std::mem::take(&mut current));
        }
        current.clear();
    }
    out
}

/// The columns a [`MessageRow`] reads.
const MESSAGE_COLUMNS: &str = "seq, at, author, client_id, text, edited_at, deleted, answer, \
    thread, in_main, reply_count, last_reply_at, reactions, pinned";

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
    thread: Option<f64>,
    in_main: f64,
    reply_count: f64,
    last_reply_at: Option<f64>,
    reactions: Option<String>,
    pinned: f64,
    /// The author's name now (pages only), which replaces the one stamped at posting.
    #[serde(default)]
    current_name: Option<String>,
}

impl MessageRow {
    fn into_view(self) -> worker::Result<MessageView> {
        let mut author: Author = serde_json::from_str(&self.author)
            .map_err(|e| worker::Error::RustError(format!("corrupt author JSON: {e}")))?;
        if let Some(name) = self.current_name {
            author.name = name;
        }
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
            thread: self.thread.map(|t| t as Seq),
            also_in_room: self.thread.is_some() && self.in_main != 0.0,
            replies: self.last_reply_at.map(|at| ThreadSummary {
                count: self.reply_count as u32,
                last_at: at as i64,
            }),
            reactions: self
                .reactions
                .map(|r| serde_json::from_str::<Vec<Reaction>>(&r))
                .transpose()
                .map_err(|e| worker::Error::RustError(format!("corrupt reactions JSON: {e}")))?
                .unwrap_or_default(),
            pinned: self.pinned != 0.0,
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

    /// Drops the triggers that keep the search index, so the bench can measure the send path
    /// without it (`BENCH_NO_FTS=1`, never in wrangler.toml). Search then misses new messages.
    pub fn drop_search_index_triggers(&self) -> worker::Result<()> {
        for trigger in [
            "messages_fts_insert",
            "messages_fts_update",
            "messages_fts_delete",
        ] {
            self.sql
                .exec(&format!("DROP TRIGGER IF EXISTS {trigger}"), None)?;
        }
        Ok(())
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
            for statement in statements(migration) {
                self.sql.exec(&statement, None)?;
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
            // A reply's `target` stays NULL: `target` finds the events whose text a delete of
            // the target must erase, and deleting a thread's root leaves its replies standing.
            EventKind::Message { .. } | EventKind::Answer { .. } | EventKind::Reply { .. } => None,
            EventKind::Edit { target, .. }
            | EventKind::Delete { target }
            | EventKind::AnswerStatus { target, .. }
            | EventKind::Feedback { target, .. }
            | EventKind::React { target, .. }
            | EventKind::Pin { target, .. } => Some(*target),
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
            EventKind::Message { .. } | EventKind::Answer { .. } | EventKind::Reply { .. } => {
                let Some(view) = MessageView::from_event(event) else {
                    return Ok(());
                };
                let author = serde_json::to_string(&event.author)
                    .map_err(|e| worker::Error::RustError(format!("author JSON: {e}")))?;
                let (answer, state) = answer_columns(&view)?;
                self.sql.exec(
                    "INSERT INTO messages (seq, at, author, client_id, text, answer, answer_state,
                        author_id, thread, in_main, flags)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    vec![
                        int(event.seq),
                        event.at.into(),
                        author.into(),
                        event.client_id.as_str().into(),
                        view.text.as_str().into(),
                        answer.into(),
                        state.into(),
                        event.author.id.as_str().into(),
                        view.thread.map(|t| t as i64).into(),
                        i64::from(view.in_timeline()).into(),
                        i64::from(search::flags(&view.text)).into(),
                    ],
                )?;
                if let Some(root) = view.thread {
                    self.sql.exec(
                        "UPDATE messages SET reply_count = reply_count + 1, last_reply_at = ?
                         WHERE seq = ?",
                        vec![event.at.into(), int(root)],
                    )?;
                }
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
                    "UPDATE messages SET text = ?, edited_at = ?, flags = ?
                     WHERE seq = ? AND deleted = 0",
                    vec![
                        text.as_str().into(),
                        event.at.into(),
                        i64::from(search::flags(text)).into(),
                        int(*target),
                    ],
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
            EventKind::React { target, .. } => {
                let Some(mut view) = self.message(*target)? else {
                    return Ok(());
                };
                if view.apply(event) {
                    let reactions = (!view.reactions.is_empty())
                        .then(|| serde_json::to_string(&view.reactions))
                        .transpose()
                        .map_err(|e| worker::Error::RustError(format!("reactions JSON: {e}")))?;
                    self.sql.exec(
                        "UPDATE messages SET reactions = ? WHERE seq = ?",
                        vec![reactions.into(), int(*target)],
                    )?;
                }
            }
            EventKind::Pin { target, pinned } => {
                self.sql.exec(
                    "UPDATE messages SET pinned = ? WHERE seq = ? AND deleted = 0",
                    vec![i64::from(*pinned).into(), int(*target)],
                )?;
            }
            EventKind::Unknown => {}
            EventKind::Delete { target } => {
                // A deleted message's words leave storage entirely: its current text, its
                // earlier versions, and the text inside the events that posted and edited it
                // (so a replay never carries them again).
                self.sql.exec(
                    "UPDATE messages SET text = '', deleted = 1, answer_state = NULL,
                        answer = json_set(answer, '$.previous', json('[]')),
                        reactions = NULL, pinned = 0, flags = 0
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
                    // Each author's current name (renames show on old messages too): one
                    // primary-key lookup per row of the page.
                    "SELECT {MESSAGE_COLUMNS},
                        (SELECT r.name FROM member_roles r WHERE r.user_id = messages.author_id)
                            AS current_name
                     FROM messages
                     WHERE seq < ? AND in_main = 1 ORDER BY seq DESC LIMIT ?"
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

    fn thread_replies(&self, root: Seq, limit: usize) -> worker::Result<(Vec<MessageView>, bool)> {
        let rows: Vec<MessageRow> = self
            .sql
            .exec(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread = ?
                     ORDER BY seq DESC LIMIT ?"
                ),
                vec![int(root), int(limit as u64 + 1)],
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

    fn pinned(&self, limit: usize) -> worker::Result<Vec<MessageView>> {
        let rows: Vec<MessageRow> = self
            .sql
            .exec(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE pinned = 1
                     ORDER BY seq DESC LIMIT ?"
                ),
                vec![int(limit as u64)],
            )?
            .to_array()?;
        rows.into_iter().map(MessageRow::into_view).collect()
    }

    fn record_member(&mut self, member: &Member, now: Millis) -> worker::Result<bool> {
        #[derive(Deserialize)]
        struct Known {
            known: f64,
        }
        let known: Vec<Known> = self
            .sql
            .exec(
                "SELECT COUNT(*) AS known FROM members WHERE user_id = ?",
                vec![member.user_id.as_str().into()],
            )?
            .to_array()?;
        self.sql.exec(
            "INSERT INTO members (user_id, name, last_seen) VALUES (?, ?, ?)
             ON CONFLICT (user_id) DO UPDATE SET name = excluded.name,
                 last_seen = excluded.last_seen",
            vec![
                member.user_id.as_str().into(),
                member.name.as_str().into(),
                now.into(),
            ],
        )?;
        Ok(known.first().is_none_or(|k| k.known == 0.0))
    }

    fn members(&self, limit: usize) -> worker::Result<Vec<Member>> {
        let rows: Vec<Member> = self
            .sql
            .exec(
                "SELECT user_id, name FROM members ORDER BY last_seen DESC LIMIT ?",
                vec![int(limit.min(MAX_SAFE_INTEGER as usize) as u64)],
            )?
            .to_array()?;
        Ok(rows)
    }

    fn mentioned(&self, seq: Seq) -> worker::Result<Vec<String>> {
        #[derive(Deserialize)]
        struct Row {
            user_id: String,
        }
        let rows: Vec<Row> = self
            .sql
            .exec("SELECT user_id FROM mentions WHERE seq = ?", vec![int(seq)])?
            .to_array()?;
        Ok(rows.into_iter().map(|r| r.user_id).collect())
    }

    fn add_mentions(&mut self, seq: Seq, user_ids: &[&str]) -> worker::Result<()> {
        for id in user_ids {
            self.sql.exec(
                "INSERT OR IGNORE INTO mentions (user_id, seq) VALUES (?, ?)",
                vec![(*id).into(), int(seq)],
            )?;
        }
        Ok(())
    }

    fn read_position(&self, user_id: &str) -> worker::Result<Option<Seq>> {
        let rows: Vec<SeqRow> = self
            .sql
            .exec(
                "SELECT seq FROM reads WHERE user_id = ?",
                vec![user_id.into()],
            )?
            .to_array()?;
        Ok(rows.into_iter().next().map(|r| r.seq as Seq))
    }

    fn set_read_position(&mut self, user_id: &str, seq: Seq) -> worker::Result<()> {
        self.sql.exec(
            "INSERT INTO reads (user_id, seq) VALUES (?, ?)
             ON CONFLICT (user_id) DO UPDATE SET seq = excluded.seq",
            vec![user_id.into(), int(seq)],
        )?;
        Ok(())
    }

    fn unread_counts(&self, user_id: &str, read: Seq) -> worker::Result<UnreadCounts> {
        #[derive(Deserialize)]
        struct Counts {
            unread: f64,
            mentions: f64,
        }
        // Both counts stop at the cap, so a member far behind costs a bounded scan.
        let rows: Vec<Counts> = self
            .sql
            .exec(
                "SELECT
                   (SELECT COUNT(*) FROM (SELECT 1 FROM messages
                      WHERE seq > ?1 AND in_main = 1 AND deleted = 0 AND author_id != ?2
                      LIMIT ?3)) AS unread,
                   (SELECT COUNT(*) FROM (SELECT 1 FROM mentions mn
                      JOIN messages m ON m.seq = mn.seq
                      WHERE mn.user_id = ?2 AND mn.seq > ?1 AND m.deleted = 0
                      LIMIT ?3)) AS mentions",
                vec![int(read), user_id.into(), int(u64::from(UNREAD_COUNT_CAP))],
            )?
            .to_array()?;
        Ok(rows
            .first()
            .map_or(UnreadCounts::default(), |c| UnreadCounts {
                unread: c.unread as u32,
                mentions: c.mentions as u32,
            }))
    }

    fn member(&self, user_id: &str) -> worker::Result<Option<MemberRecord>> {
        let rows: Vec<MemberRow> = self
            .sql
            .exec(
                &format!("SELECT {MEMBER_COLUMNS} FROM member_roles WHERE user_id = ?"),
                vec![user_id.into()],
            )?
            .to_array()?;
        Ok(rows.into_iter().next().map(MemberRow::into_record))
    }

    fn put_member(&mut self, m: &MemberRecord) -> worker::Result<()> {
        self.sql.exec(
            "INSERT INTO member_roles (user_id, name, role, banned, muted_until, joined_at, renamed_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (user_id) DO UPDATE SET name = excluded.name, role = excluded.role,
               banned = excluded.banned, muted_until = excluded.muted_until,
               renamed_at = excluded.renamed_at",
            vec![
                m.user_id.as_str().into(),
                m.name.as_str().into(),
                role_str(m.role).into(),
                i64::from(m.banned).into(),
                m.muted_until.into(),
                m.joined_at.into(),
                m.renamed_at.into(),
            ],
        )?;
        Ok(())
    }

    fn member_records(&self) -> worker::Result<Vec<MemberRecord>> {
        // Bounded: a member list is for people, not for scanning a huge room.
        let rows: Vec<MemberRow> = self
            .sql
            .exec(
                &format!(
                    "SELECT {MEMBER_COLUMNS} FROM member_roles ORDER BY joined_at, user_id LIMIT 1000"
                ),
                None,
            )?
            .to_array()?;
        Ok(rows.into_iter().map(MemberRow::into_record).collect())
    }

    fn renamed_since(&self, at: i64) -> worker::Result<Vec<MemberRecord>> {
        // Bounded like the member list; renames are rare next to messages.
        let rows: Vec<MemberRow> = self
            .sql
            .exec(
                &format!(
                    "SELECT {MEMBER_COLUMNS} FROM member_roles WHERE renamed_at > ?
                     ORDER BY renamed_at LIMIT 1000"
                ),
                vec![at.into()],
            )?
            .to_array()?;
        Ok(rows.into_iter().map(MemberRow::into_record).collect())
    }

    fn append_audit(&mut self, e: &AuditEntry) -> worker::Result<()> {
        self.sql.exec(
            "INSERT INTO audit (at, actor_id, actor_name, action, target_id, detail)
             VALUES (?, ?, ?, ?, ?, ?)",
            vec![
                e.at.into(),
                e.actor_id.as_str().into(),
                e.actor_name.as_str().into(),
                e.action.as_str().into(),
                e.target_id.as_deref().into(),
                e.detail.as_str().into(),
            ],
        )?;
        Ok(())
    }

    fn audit_before(&self, before: Option<u64>, limit: usize) -> worker::Result<Vec<AuditEntry>> {
        let rows: Vec<AuditRow> = self
            .sql
            .exec(
                "SELECT id, at, actor_id, actor_name, action, target_id, detail FROM audit
                 WHERE id < ? ORDER BY id DESC LIMIT ?",
                vec![
                    SqlStorageValue::Integer(before.map_or(MAX_SAFE_INTEGER, |b| b as i64)),
                    int(limit as u64),
                ],
            )?
            .to_array()?;
        Ok(rows.into_iter().map(AuditEntry::from).collect())
    }

    fn invite(&self, token: &str) -> worker::Result<Option<Invite>> {
        let rows: Vec<InviteRow> = self
            .sql
            .exec(
                &format!("SELECT {INVITE_COLUMNS} FROM invites WHERE token = ?"),
                vec![token.into()],
            )?
            .to_array()?;
        Ok(rows.into_iter().next().map(InviteRow::into_invite))
    }

    fn put_invite(&mut self, i: &Invite) -> worker::Result<()> {
        self.sql.exec(
            "INSERT INTO invites (token, created_by, created_at, expires_at, max_uses, uses, revoked_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (token) DO UPDATE SET uses = excluded.uses,
               revoked_at = excluded.revoked_at",
            vec![
                i.token.as_str().into(),
                i.created_by.as_str().into(),
                i.created_at.into(),
                i.expires_at.into(),
                i.max_uses.map(i64::from).into(),
                i64::from(i.uses).into(),
                i.revoked_at.into(),
            ],
        )?;
        Ok(())
    }

    fn invites(&self) -> worker::Result<Vec<Invite>> {
        let rows: Vec<InviteRow> = self
            .sql
            .exec(
                &format!("SELECT {INVITE_COLUMNS} FROM invites ORDER BY created_at DESC LIMIT 200"),
                None,
            )?
            .to_array()?;
        Ok(rows.into_iter().map(InviteRow::into_invite).collect())
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

#[derive(Deserialize)]
struct HitRow {
    seq: f64,
    at: f64,
    author: String,
    thread: Option<f64>,
    snippet: String,
    rank: f64,
}

impl HitRow {
    fn into_hit(self, slug: &str) -> worker::Result<SearchHit> {
        Ok(SearchHit {
            slug: slug.to_owned(),
            seq: self.seq as Seq,
            at: self.at as i64,
            author: serde_json::from_str(&self.author)
                .map_err(|e| worker::Error::RustError(format!("corrupt author JSON: {e}")))?,
            thread: self.thread.map(|t| t as Seq),
            snippet: self.snippet,
            // bm25 is lower-is-better; the API's score is higher-is-better.
            score: -self.rank,
        })
    }
}

/// The search filters over `messages m`, numbered `?2`..`?6` ([`filter_args`]); `?1` is the
/// match expression or candidate list and `?7` the limit.
const SEARCH_FILTERS: &str = "m.deleted = 0
    AND (?2 IS NULL OR m.author_id = ?2 OR json_extract(m.author, '$.name') = ?2 COLLATE NOCASE)
    AND (?3 = 0 OR m.thread IS NOT NULL)
    AND (m.flags & ?4) = ?4
    AND (?5 IS NULL OR m.at >= ?5)
    AND (?6 IS NULL OR m.at < ?6)";

/// Full-text search ranks at most this many matches, the newest (see [`SqlStore::search`]).
pub const RANK_WINDOW: u32 = 20_000;

fn filter_args(first: SqlStorageValue, query: &SearchQuery, limit: u32) -> Vec<SqlStorageValue> {
    vec![
        first,
        query.from.clone().into(),
        i64::from(query.in_thread).into(),
        i64::from(query.required_flags()).into(),
        query.after.into(),
        query.before.into(),
        int(u64::from(limit)),
    ]
}

impl SqlStore {
    /// Full-text search with filters, best first: FTS5 over the current text of messages that
    /// are not deleted, ranked by bm25 among the newest `window` ([`RANK_WINDOW`]) matches, with
    /// highlighted snippets. A query with filters only lists the newest matching messages.
    pub fn search(
        &self,
        slug: &str,
        query: &SearchQuery,
        limit: u32,
        window: u32,
    ) -> worker::Result<Vec<SearchHit>> {
        let filters = SEARCH_FILTERS;
        let mut args = filter_args(query.fts_match().unwrap_or_default().into(), query, limit);
        let sql = if query.fts_match().is_some() {
            // FTS5's `ORDER BY rank` scores every match, which for a word in most messages of
            // a large room takes most of a second. So only the newest `window` matches are
            // ranked: walking matches newest first to find where that window starts costs far
            // less than scoring them.
            let offset = window.max(1) - 1;
            let walk_text = "SELECT rowid AS seq FROM messages_fts WHERE messages_fts MATCH ?1
                             ORDER BY rowid DESC LIMIT 1 OFFSET ?2";
            let mut rows: Vec<SeqRow> = self
                .sql
                .exec(walk_text, vec![args[0].clone(), int(u64::from(offset))])?
                .to_array()?;
            // Filters only remove matches: if the text alone has fewer than the window, so do
            // the filtered ones, and the walk with the join (which costs more) is skipped.
            if !rows.is_empty() && query.is_filtered() {
                let walk_filtered = format!(
                    "SELECT messages_fts.rowid AS seq
                     FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid
                     WHERE messages_fts MATCH ?1 AND {filters}
                     ORDER BY messages_fts.rowid DESC LIMIT 1 OFFSET ?7"
                );
                rows = self
                    .sql
                    .exec(&walk_filtered, filter_args(args[0].clone(), query, offset))?
                    .to_array()?;
            }
            match rows.first() {
                // Fewer matches than the window: rank them all, as FTS5 does best.
                None => format!(
                    "SELECT m.seq, m.at, m.author, m.thread,
                        snippet(messages_fts, 0, char(2), char(3), '…', 16) AS snippet,
                        messages_fts.rank AS rank
                     FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid
                     WHERE messages_fts MATCH ?1 AND {filters}
                     ORDER BY messages_fts.rank LIMIT ?7"
                ),
                // FTS5's rank sort would still score every match despite the rowid bound;
                // sorting by bm25() scores only the rows in the window.
                Some(first) => {
                    args.push(int(first.seq as u64));
                    format!(
                        "SELECT m.seq, m.at, m.author, m.thread,
                            snippet(messages_fts, 0, char(2), char(3), '…', 16) AS snippet,
                            bm25(messages_fts) AS rank
                         FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid
                         WHERE messages_fts MATCH ?1 AND messages_fts.rowid >= ?8 AND {filters}
                         ORDER BY rank LIMIT ?7"
                    )
                }
            }
        } else {
            // `?1` is still bound (unused) so the numbering stays the same.
            args[0] = SqlStorageValue::Null;
            format!(
                "SELECT m.seq, m.at, m.author, m.thread, substr(m.text, 1, 160) AS snippet,
                    0.0 AS rank
                 FROM messages m WHERE (?1 IS NULL) AND {filters}
                 ORDER BY m.seq DESC LIMIT ?7"
            )
        };
        let rows: Vec<HitRow> = self.sql.exec(&sql, args)?.to_array()?;
        rows.into_iter().map(|r| r.into_hit(slug)).collect()
    }

    /// Hybrid search (production, with Vectorize): the full-text candidates and `semantic`
    /// (message seqs nearest in meaning, best first) fused by reciprocal rank, each result read
    /// back from SQLite with the same filters, so deleted or filtered-out messages never show.
    pub fn search_hybrid(
        &self,
        slug: &str,
        query: &SearchQuery,
        limit: u32,
        semantic: &[Seq],
        window: u32,
    ) -> worker::Result<Vec<SearchHit>> {
        let full_text = self.search(slug, query, crate::rooms::semantic::CANDIDATES, window)?;
        if semantic.is_empty() {
            return Ok(full_text.into_iter().take(limit as usize).collect());
        }
        let fts_seqs: Vec<Seq> = full_text.iter().map(|h| h.seq).collect();
        let fused = search::hybrid_rank(&fts_seqs, semantic, limit as usize);
        let others: Vec<Seq> = fused
            .iter()
            .map(|(seq, _)| *seq)
            .filter(|seq| !fts_seqs.contains(seq))
            .collect();
        let mut pool = full_text;
        if !others.is_empty() {
            let ids = serde_json::to_string(&others)
                .map_err(|e| worker::Error::RustError(e.to_string()))?;
            let rows: Vec<HitRow> = self
                .sql
                .exec(
                    &format!(
                        "SELECT m.seq, m.at, m.author, m.thread, substr(m.text, 1, 160) AS snippet,
                            0.0 AS rank
                         FROM messages m
                         WHERE m.seq IN (SELECT value FROM json_each(?1)) AND {SEARCH_FILTERS}
                         LIMIT ?7"
                    ),
                    filter_args(ids.into(), query, limit),
                )?
                .to_array()?;
            for row in rows {
                pool.push(row.into_hit(slug)?);
            }
        }
        Ok(fused
            .into_iter()
            .filter_map(|(seq, score)| {
                let mut hit = pool.iter().find(|h| h.seq == seq)?.clone();
                hit.score = score;
                Some(hit)
            })
            .collect())
    }

    /// The page around message `seq`: for a timeline message, up to `side` timeline messages
    /// on each side; for a thread-only reply, its thread (root first). `None` if there is no
    /// such message.
    pub fn context(
        &self,
        seq: Seq,
        side: usize,
    ) -> worker::Result<Option<(Option<Seq>, Vec<MessageView>)>> {
        let Some(target) = self.message(seq)? else {
            return Ok(None);
        };
        if !target.in_timeline() {
            let root = target.thread.unwrap_or(seq);
            let (replies, _) = self.thread_replies(root, shared::limits::THREAD_PAGE)?;
            let mut messages: Vec<MessageView> = self.message(root)?.into_iter().collect();
            messages.extend(replies);
            return Ok(Some((Some(root), messages)));
        }
        let (mut messages, _) = self.messages_before(Some(seq + 1), side + 1)?;
        let rows: Vec<MessageRow> = self
            .sql
            .exec(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                     WHERE seq > ? AND in_main = 1 ORDER BY seq LIMIT ?"
                ),
                vec![int(seq), int(side as u64)],
            )?
            .to_array()?;
        for row in rows {
            messages.push(row.into_view()?);
        }
        Ok(Some((None, messages)))
    }
}

const MEMBER_COLUMNS: &str = "user_id, name, role, banned, muted_until, joined_at, renamed_at";
const INVITE_COLUMNS: &str =
    "token, created_by, created_at, expires_at, max_uses, uses, revoked_at";

fn role_str(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Moderator => "moderator",
        Role::Member => "member",
        Role::ReadOnly | Role::Unknown => "read_only",
    }
}

#[derive(Deserialize)]
struct MemberRow {
    user_id: String,
    name: String,
    role: String,
    banned: f64,
    muted_until: Option<f64>,
    joined_at: f64,
    renamed_at: Option<f64>,
}

impl MemberRow {
    fn into_record(self) -> MemberRecord {
        MemberRecord {
            user_id: self.user_id,
            name: self.name,
            // An unreadable role grants nothing (Unknown is refused everything).
            role: serde_json::from_value(serde_json::Value::String(self.role))
                .unwrap_or(Role::Unknown),
            banned: self.banned != 0.0,
            muted_until: self.muted_until.map(|t| t as i64),
            joined_at: self.joined_at as i64,
            renamed_at: self.renamed_at.map(|t| t as i64),
        }
    }
}

#[derive(Deserialize)]
struct InviteRow {
    token: String,
    created_by: String,
    created_at: f64,
    expires_at: Option<f64>,
    max_uses: Option<f64>,
    uses: f64,
    revoked_at: Option<f64>,
}

impl InviteRow {
    fn into_invite(self) -> Invite {
        Invite {
            token: self.token,
            created_by: self.created_by,
            created_at: self.created_at as i64,
            expires_at: self.expires_at.map(|t| t as i64),
            max_uses: self.max_uses.map(|n| n as u32),
            uses: self.uses as u32,
            revoked_at: self.revoked_at.map(|t| t as i64),
        }
    }
}
