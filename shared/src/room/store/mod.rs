//! The room's storage: one SQLite schema and every statement on it, written once over the small
//! [`Sql`] trait. The Durable Object implements the trait over its `SqlStorage`; native tests
//! implement it over `rusqlite` ([`sqlite::Sqlite`], feature `sqlite`), so the storage that runs in
//! production is the storage the tests exercise.
//!
//! What an event does to a message is [`MessageView::apply`]'s alone (the client applies the same
//! function): the store reads the message, applies the event, and writes the result back, then
//! keeps its side tables (edit history, the scrubbing of deleted words from the log, mentions).
//! Every query is parameterised and pages by key (`seq`), never by OFFSET: on Durable Objects
//! every row scanned is billed, and a join must not slow down as history grows.
//!
//! This file holds the log and the messages; `members.rs` members, reads and moderation
//! records; `search.rs` full-text search and context; `schema.rs` the versioned migrations.

pub mod attachments;
mod grounding;
mod members;
pub mod schema;
mod search;
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use members::LAST_SEEN_STEP_MS;
pub use search::{MessageContext, RANK_WINDOW};
pub use sql::{Row, Sql, SqlValue, StoreError};

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::moderation::MemberRecord;
use crate::protocol::{Event, EventKind, MessageView, Millis, Seq};
use crate::room::assistant::Summary;
use crate::sql_params;

/// The largest integer a JavaScript number holds exactly (values cross into JS as numbers on
/// the Durable Object): the "no upper bound" of keyset pages.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The columns [`message_from_row`] reads, in order.
const MESSAGE_COLUMNS: &str = "seq, at, author, client_id, text, edited_at, deleted, answer, \
    thread, in_main, reply_count, last_reply_at, reactions, pinned, attachments";

/// Every this many events the messages stored since the last batch are added to the search
/// index (see [`SqlStore::index_pending`]).
pub const SEARCH_INDEX_BATCH: u64 = 16;
/// The `meta` key of the last message in the search index.
const SEARCH_INDEXED_UPTO: &str = "fts_indexed_upto";

/// The room's SQLite storage.
#[derive(Clone)]
pub struct SqlStore<D> {
    db: D,
    /// Members read so far, by user id (`None`: not a member). Every post checks its author's
    /// standing (a mute), and [`SqlStore::put_member`] is the only writer of what it holds, so
    /// it stays true; shared by clones of the store.
    members: Rc<RefCell<HashMap<String, Option<MemberRecord>>>>,
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError(format!("JSON: {e}")))
}

/// A message row ([`MESSAGE_COLUMNS`], then optionally the author's current name).
fn message_from_row(row: &Row) -> Result<MessageView, StoreError> {
    let mut author: crate::protocol::Author = row.json(2)?;
    // Pages add the author's current name, which replaces the one stamped at posting.
    if row.0.len() > 15 {
        if let Some(name) = row.opt_text(15)? {
            author.name = name;
        }
    }
    let thread = row.opt_uint(8)?;
    let reply_count = row.int(10)?;
    Ok(MessageView {
        seq: row.uint(0)?,
        at: row.int(1)?,
        author,
        client_id: row.text(3)?,
        text: row.text(4)?,
        edited_at: row.opt_int(5)?,
        deleted: row.int(6)? != 0,
        answer: row.opt_json(7)?,
        thread,
        also_in_room: thread.is_some() && row.int(9)? != 0,
        replies: row
            .opt_int(11)?
            .map(|last_at| crate::protocol::ThreadSummary {
                count: reply_count as u32,
                last_at,
            }),
        reactions: row.opt_json(12)?.unwrap_or_default(),
        pinned: row.int(13)? != 0,
        attachments: row.opt_json(14)?.unwrap_or_default(),
    })
}

/// The answer JSON and its state column (NULL for people's messages and deleted answers, so the
/// index of unfinished answers never resumes a deleted one).
fn answer_columns(view: &MessageView) -> Result<(Option<String>, Option<String>), StoreError> {
    let Some(answer) = &view.answer else {
        return Ok((None, None));
    };
    let state = (!view.deleted)
        .then(|| serde_json::to_value(answer.state).ok())
        .flatten()
        .and_then(|v| v.as_str().map(str::to_owned));
    Ok((Some(json(answer)?), state))
}

impl<D: Sql> SqlStore<D> {
    /// Opens the store, creating or migrating the schema.
    pub fn open(db: D) -> Result<Self, StoreError> {
        let store = SqlStore {
            db,
            members: Rc::default(),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The connection, for what the room's owner keeps beside the room (tests, the Durable
    /// Object's own bookkeeping).
    pub fn db(&self) -> &D {
        &self.db
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            &[],
        )?;
        let version: usize = self
            .meta("schema_version")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if version > schema::MIGRATIONS.len() {
            return Err(StoreError(format!(
                "the room's schema is version {version}, newer than this code knows ({})",
                schema::MIGRATIONS.len()
            )));
        }
        for (i, migration) in schema::MIGRATIONS.iter().enumerate().skip(version) {
            // All statements of one migration and the version bump commit together.
            self.db.transaction(|| {
                for statement in schema::statements(migration) {
                    self.db.execute(&statement, &[])?;
                }
                self.set_meta("schema_version", &(i + 1).to_string())
            })?;
        }
        Ok(())
    }

    /// The schema version the store is at.
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        Ok(self
            .meta("schema_version")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0))
    }

    /// Stops keeping the search index, so the bench can measure the send path without it
    /// (`BENCH_NO_FTS=1`, never in wrangler.toml): its triggers go, and every message counts as
    /// indexed already. Search then misses new messages.
    pub fn drop_search_index_triggers(&self) -> Result<(), StoreError> {
        for trigger in ["messages_fts_update", "messages_fts_delete"] {
            self.db
                .execute(&format!("DROP TRIGGER IF EXISTS {trigger}"), &[])?;
        }
        self.set_meta(SEARCH_INDEXED_UPTO, &i64::MAX.to_string())
    }

    /// A value from the room's key-value metadata.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let rows = self
            .db
            .query("SELECT value FROM meta WHERE key = ?", sql_params![key])?;
        rows.first().map(|r| r.text(0)).transpose()
    }

    /// Sets a metadata value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            sql_params![key, value],
        )
    }

    /// Messages ever posted (deleted ones included). A counter brought up to date here, when
    /// the directory asks (every few seconds of activity at most), rather than written with
    /// every message: it adds the messages stored after `message_count_upto` (a primary-key
    /// range, never a scan of the table) and records the new total.
    pub fn message_count(&self) -> Result<u64, StoreError> {
        let number = |key| -> Result<u64, StoreError> {
            Ok(self.meta(key)?.and_then(|v| v.parse().ok()).unwrap_or(0))
        };
        let (counted, upto) = (number("message_count")?, number("message_count_upto")?);
        let rows = self.db.query(
            "SELECT count(*), COALESCE(max(seq), 0) FROM messages WHERE seq > ?",
            sql_params![upto as i64],
        )?;
        let (newer, newest) = match rows.first() {
            Some(row) => (row.uint(0)?, row.uint(1)?),
            None => (0, 0),
        };
        if newer == 0 {
            return Ok(counted);
        }
        let total = counted + newer;
        self.db.transaction(|| {
            self.set_meta("message_count", &total.to_string())?;
            self.set_meta("message_count_upto", &newest.to_string())
        })?;
        Ok(total)
    }

    /// When the newest message was posted.
    pub fn last_message_at(&self) -> Result<Option<Millis>, StoreError> {
        let rows = self
            .db
            .query("SELECT at FROM messages ORDER BY seq DESC LIMIT 1", &[])?;
        rows.first().map(|r| r.int(0)).transpose()
    }

    /// The highest stored sequence number (0 for an empty room).
    pub fn head(&self) -> Result<Seq, StoreError> {
        let rows = self.db.query("SELECT MAX(seq) FROM events", &[])?;
        Ok(rows
            .first()
            .map(|r| r.opt_uint(0))
            .transpose()?
            .flatten()
            .unwrap_or(0))
    }

    /// The event a mutation with this author and client id became, if it was stored.
    pub fn find_mutation(
        &self,
        author_id: &str,
        client_id: &str,
    ) -> Result<Option<Seq>, StoreError> {
        let rows = self.db.query(
            "SELECT seq FROM events WHERE author_id = ? AND client_id = ?",
            sql_params![author_id, client_id],
        )?;
        rows.first().map(|r| r.uint(0)).transpose()
    }

    /// A message in its current state.
    pub fn message(&self, seq: Seq) -> Result<Option<MessageView>, StoreError> {
        let rows = self.db.query(
            &format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE seq = ?"),
            sql_params![seq],
        )?;
        rows.first().map(message_from_row).transpose()
    }

    /// Stores an event and what it does to the message it creates or changes, atomically: the
    /// event, the message state, the de-duplication record of `(author.id, client_id)` (the
    /// unique index on `events`), and the side tables are stored together or not at all.
    pub fn append(&self, event: &Event) -> Result<(), StoreError> {
        if matches!(event.kind, EventKind::Unknown) {
            return Err(StoreError::new(
                "refusing to store an event of unknown kind",
            ));
        }
        self.db.transaction(|| {
            // A reply's `target` stays NULL: `target` finds the events whose text a delete of
            // the target must erase, and deleting a thread's root leaves its replies standing.
            self.db.execute(
                "INSERT INTO events (seq, at, author_id, client_id, target, body)
                 VALUES (?, ?, ?, ?, ?, ?)",
                sql_params![
                    event.seq,
                    event.at,
                    event.author.id.as_str(),
                    event.client_id.as_str(),
                    event.kind.target(),
                    json(event)?
                ],
            )?;
            if let Some(view) = MessageView::from_event(event) {
                self.insert_message(event, &view)?;
            }
            if let Some(seq) = event.kind.changes() {
                self.apply_to_message(seq, event)?;
            }
            if event.seq.is_multiple_of(SEARCH_INDEX_BATCH) {
                self.index_pending()?;
            }
            Ok(())
        })
    }

    /// Adds the messages stored since the last batch to the search index, with their current
    /// text. Runs every [`SEARCH_INDEX_BATCH`] events and before every search, so a search
    /// always sees every stored message.
    pub fn index_pending(&self) -> Result<(), StoreError> {
        let upto: i64 = self
            .meta(SEARCH_INDEXED_UPTO)?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        // Reads only when nothing is pending: a write, even one that changes nothing, makes a
        // Durable Object hold the search's answer until the write is durable.
        let newest = self
            .db
            .query("SELECT COALESCE(MAX(seq), 0) FROM messages", &[])?
            .first()
            .map(|r| r.int(0))
            .transpose()?
            .unwrap_or(0);
        if newest <= upto {
            return Ok(());
        }
        self.db.transaction(|| {
            self.db.execute(
                "INSERT INTO messages_fts (rowid, text)
                 SELECT seq, text FROM messages WHERE seq > ? ORDER BY seq",
                sql_params![upto],
            )?;
            self.set_meta(SEARCH_INDEXED_UPTO, &newest.to_string())
        })
    }

    fn insert_message(&self, event: &Event, view: &MessageView) -> Result<(), StoreError> {
        let (answer, state) = answer_columns(view)?;
        self.db.execute(
            "INSERT INTO messages (seq, at, author, client_id, text, answer, answer_state,
                author_id, thread, in_main, flags, attachments, tags)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            sql_params![
                event.seq,
                event.at,
                json(&event.author)?,
                event.client_id.as_str(),
                view.text.as_str(),
                answer,
                state,
                event.author.id.as_str(),
                view.thread,
                view.in_timeline(),
                crate::search::flags(&view.text)
                    | crate::search::attachment_flags(&view.attachments),
                (!view.attachments.is_empty())
                    .then(|| json(&view.attachments))
                    .transpose()?,
                crate::search::tags_column(&view.attachments)
            ],
        )?;
        self.attach_uploads(event.seq, &view.attachments)
    }

    /// Applies `event` to message `seq` with [`MessageView::apply`] and stores the result, with
    /// the edit history and the scrubbing of a deleted message's words.
    fn apply_to_message(&self, seq: Seq, event: &Event) -> Result<(), StoreError> {
        let Some(mut view) = self.message(seq)? else {
            return Ok(());
        };
        let previous = view.text.clone();
        if !view.apply(event) {
            return Ok(());
        }
        let (answer, state) = answer_columns(&view)?;
        let reactions = (!view.reactions.is_empty())
            .then(|| json(&view.reactions))
            .transpose()?;
        self.db.execute(
            "UPDATE messages SET edited_at = ?, deleted = ?, answer = ?, answer_state = ?,
                reply_count = ?, last_reply_at = ?, reactions = ?, pinned = ?
             WHERE seq = ?",
            sql_params![
                view.edited_at,
                view.deleted,
                answer,
                state,
                view.replies.map_or(0, |r| r.count),
                view.replies.map(|r| r.last_at),
                reactions,
                view.pinned,
                seq
            ],
        )?;
        // Only when the text changed: writing `text` re-indexes it for search (the FTS5
        // triggers fire on any write of the column), which reactions, pins and replies to a
        // thread must not cost.
        if view.text != previous {
            self.db.execute(
                "UPDATE messages SET text = ?, flags = ? WHERE seq = ?",
                sql_params![
                    view.text.as_str(),
                    crate::search::flags(&view.text)
                        | crate::search::attachment_flags(&view.attachments),
                    seq
                ],
            )?;
        }
        match &event.kind {
            EventKind::Edit { .. } => self.db.execute(
                "INSERT OR REPLACE INTO message_versions (seq, replaced_at, text) VALUES (?, ?, ?)",
                sql_params![seq, event.at, previous],
            ),
            EventKind::Delete { .. } => {
                // A deleted message's words leave storage entirely: its current text (above),
                // its earlier versions, and the text inside the events that posted and edited
                // it (so a replay never carries them again).
                self.db.execute(
                    "DELETE FROM message_versions WHERE seq = ?",
                    sql_params![seq],
                )?;
                // Its files go too: the row, the search flags, the names in its event, and
                // (through `gone_at`) the objects.
                self.db.execute(
                    "UPDATE messages SET attachments = NULL, tags = NULL, flags = 0 WHERE seq = ?",
                    sql_params![seq],
                )?;
                self.release_uploads(seq, event.at)?;
                self.db.execute(
                    "UPDATE events SET body = json_remove(json_set(body, '$.kind.text', ''),
                        '$.kind.attachments')
                     WHERE (seq = ?1 OR target = ?1)
                       AND json_extract(body, '$.kind.text') IS NOT NULL",
                    sql_params![seq],
                )
            }
            _ => Ok(()),
        }
    }

    /// Earlier texts of an edited message, oldest first.
    pub fn versions(&self, seq: Seq) -> Result<Vec<String>, StoreError> {
        self.db
            .query(
                "SELECT text FROM message_versions WHERE seq = ? ORDER BY replaced_at",
                sql_params![seq],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect()
    }

    /// Up to `limit` events with `seq > after`, ascending.
    pub fn events_after(&self, after: Seq, limit: usize) -> Result<Vec<Event>, StoreError> {
        self.db
            .query(
                "SELECT body FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                sql_params![after, limit as u64],
            )?
            .iter()
            .map(|r| r.json(0))
            .collect()
    }

    /// Up to `limit` timeline messages with `seq < before` (all if `None`), ascending, each
    /// with its author's current name, and whether more exist before them.
    pub fn messages_before(
        &self,
        before: Option<Seq>,
        limit: usize,
    ) -> Result<(Vec<MessageView>, bool), StoreError> {
        // One row more than asked tells whether an older page exists.
        let rows = self.db.query(
            &format!(
                // Each author's current name (renames show on old messages too): one
                // primary-key lookup per row of the page.
                "SELECT {MESSAGE_COLUMNS},
                    (SELECT r.name FROM member_roles r WHERE r.user_id = messages.author_id)
                 FROM messages
                 WHERE seq < ? AND in_main = 1 ORDER BY seq DESC LIMIT ?"
            ),
            sql_params![
                before.map_or(MAX_SAFE_INTEGER, |b| b as i64),
                (limit as u64).saturating_add(1)
            ],
        )?;
        page_of(rows, limit)
    }

    /// Replaces the text of an answer being written (persisted as it grows, not an event).
    pub fn set_answer_text(&self, seq: Seq, text: &str) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE messages SET text = ? WHERE seq = ?",
            sql_params![text, seq],
        )
    }

    /// Answers still queued or streaming, ascending.
    pub fn unfinished_answers(&self) -> Result<Vec<MessageView>, StoreError> {
        self.db
            .query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                     WHERE answer_state IN ('queued', 'streaming') ORDER BY seq"
                ),
                &[],
            )?
            .iter()
            .map(message_from_row)
            .collect()
    }

    /// The assistant's rolling summary of older history.
    pub fn summary(&self) -> Result<Option<Summary>, StoreError> {
        Ok(self
            .meta("ai_summary")?
            .and_then(|json| serde_json::from_str(&json).ok()))
    }

    /// Replaces the rolling summary.
    pub fn set_summary(&self, summary: &Summary) -> Result<(), StoreError> {
        self.set_meta("ai_summary", &json(summary)?)
    }

    /// The newest `limit` replies in the thread of `root`, ascending, and whether older ones
    /// exist.
    pub fn thread_replies(
        &self,
        root: Seq,
        limit: usize,
    ) -> Result<(Vec<MessageView>, bool), StoreError> {
        let rows = self.db.query(
            &format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread = ?
                 ORDER BY seq DESC LIMIT ?"
            ),
            sql_params![root, (limit as u64).saturating_add(1)],
        )?;
        page_of(rows, limit)
    }

    /// Pinned messages, newest message first, at most `limit`.
    pub fn pinned(&self, limit: usize) -> Result<Vec<MessageView>, StoreError> {
        self.db
            .query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE pinned = 1
                     ORDER BY seq DESC LIMIT ?"
                ),
                sql_params![limit as u64],
            )?
            .iter()
            .map(message_from_row)
            .collect()
    }
}

/// A keyset page read newest first with one extra row: the page ascending, and whether more
/// exist.
fn page_of(rows: Vec<Row>, limit: usize) -> Result<(Vec<MessageView>, bool), StoreError> {
    let has_more = rows.len() > limit;
    let mut page = rows
        .iter()
        .take(limit)
        .map(message_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    page.reverse();
    Ok((page, has_more))
}
