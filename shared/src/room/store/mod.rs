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

pub mod schema;
mod search;
mod sql;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use search::{MessageContext, RANK_WINDOW};
pub use sql::{Row, Sql, SqlValue, StoreError};

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::limits::UNREAD_COUNT_CAP;
use crate::moderation::{AuditEntry, Invite, MemberRecord};
use crate::protocol::{Event, EventKind, Member, MessageView, Millis, Role, Seq, UnreadCounts};
use crate::room::assistant::Summary;
use crate::sql_params;

/// The largest integer a JavaScript number holds exactly (values cross into JS as numbers on
/// the Durable Object): the "no upper bound" of keyset pages.
const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// The columns [`message_from_row`] reads, in order.
const MESSAGE_COLUMNS: &str = "seq, at, author, client_id, text, edited_at, deleted, answer, \
    thread, in_main, reply_count, last_reply_at, reactions, pinned";

const MEMBER_COLUMNS: &str =
    "user_id, name, role, banned, muted_until, joined_at, renamed_at, name_as_of";
const INVITE_COLUMNS: &str =
    "token, created_by, created_at, expires_at, max_uses, uses, revoked_at";

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

/// At most this many members are remembered; past it the cache starts over.
const MEMBER_CACHE_MAX: usize = 4_096;

/// How stale a member's "last seen" may get before a rejoin writes it again (see
/// [`SqlStore::record_member`]).
pub const LAST_SEEN_STEP_MS: Millis = 60_000;

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError(format!("JSON: {e}")))
}

/// A message row ([`MESSAGE_COLUMNS`], then optionally the author's current name).
fn message_from_row(row: &Row) -> Result<MessageView, StoreError> {
    let mut author: crate::protocol::Author = row.json(2)?;
    // Pages add the author's current name, which replaces the one stamped at posting.
    if row.0.len() > 14 {
        if let Some(name) = row.opt_text(14)? {
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
    })
}

fn member_from_row(row: &Row) -> Result<MemberRecord, StoreError> {
    Ok(MemberRecord {
        user_id: row.text(0)?,
        name: row.text(1)?,
        // An unreadable role grants nothing (Unknown is refused everything).
        role: serde_json::from_value(serde_json::Value::String(row.text(2)?))
            .unwrap_or(Role::Unknown),
        banned: row.int(3)? != 0,
        muted_until: row.opt_int(4)?,
        joined_at: row.int(5)?,
        renamed_at: row.opt_int(6)?,
        name_as_of: row.opt_int(7)?,
    })
}

fn invite_from_row(row: &Row) -> Result<Invite, StoreError> {
    Ok(Invite {
        token: row.text(0)?,
        created_by: row.text(1)?,
        created_at: row.int(2)?,
        expires_at: row.opt_int(3)?,
        max_uses: row.opt_uint(4)?.map(|n| n as u32),
        uses: row.uint(5)? as u32,
        revoked_at: row.opt_int(6)?,
    })
}

fn role_str(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Moderator => "moderator",
        Role::Member => "member",
        Role::ReadOnly | Role::Unknown => "read_only",
    }
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
                author_id, thread, in_main, flags)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
            ],
        )
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
                sql_params![view.text.as_str(), crate::search::flags(&view.text), seq],
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
                self.db.execute(
                    "UPDATE events SET body = json_set(body, '$.kind.text', '')
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

    /// Records that a member joined (or rejoined under a new name). Returns true the first
    /// time this user joins the room.
    ///
    /// A member seen again under the same name within [`LAST_SEEN_STEP_MS`] is not written:
    /// a write holds the room's answer (the welcome) until it is durable, and "recently seen"
    /// (the order of mention suggestions) needs no finer step than that.
    pub fn record_member(&self, member: &Member, now: Millis) -> Result<bool, StoreError> {
        let key = crate::mentions::name_key(&member.name);
        let known = self.db.query(
            "SELECT name, name_key, last_seen FROM members WHERE user_id = ?",
            sql_params![member.user_id.as_str()],
        )?;
        if let Some(row) = known.first() {
            let unchanged = row.text(0)? == member.name
                && row.opt_text(1)?.as_deref() == Some(key.as_str())
                && now.saturating_sub(row.int(2)?) < LAST_SEEN_STEP_MS;
            if unchanged {
                return Ok(false);
            }
        }
        self.db.execute(
            "INSERT INTO members (user_id, name, last_seen, name_key) VALUES (?, ?, ?, ?)
             ON CONFLICT (user_id) DO UPDATE SET name = excluded.name,
                 last_seen = excluded.last_seen, name_key = excluded.name_key",
            sql_params![member.user_id.as_str(), member.name.as_str(), now, key],
        )?;
        Ok(known.is_empty())
    }

    /// The room's members, most recently seen first, at most `limit`.
    pub fn members(&self, limit: usize) -> Result<Vec<Member>, StoreError> {
        self.db
            .query(
                "SELECT user_id, name FROM members ORDER BY last_seen DESC LIMIT ?",
                sql_params![limit.min(MAX_SAFE_INTEGER as usize) as u64],
            )?
            .iter()
            .map(|r| {
                Ok(Member {
                    user_id: r.text(0)?,
                    name: r.text(1)?,
                    avatar: None,
                })
            })
            .collect()
    }

    /// The members whose name has one of these keys ([`crate::mentions::name_key`]), most
    /// recently seen first: the candidates a text's mentions could name.
    pub fn members_named(&self, keys: &[String]) -> Result<Vec<Member>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        self.db
            .query(
                "SELECT user_id, name FROM members
                 WHERE name_key IN (SELECT value FROM json_each(?))
                 ORDER BY last_seen DESC",
                sql_params![json(&keys)?],
            )?
            .iter()
            .map(|r| {
                Ok(Member {
                    user_id: r.text(0)?,
                    name: r.text(1)?,
                    avatar: None,
                })
            })
            .collect()
    }

    /// The users message `seq` mentions.
    pub fn mentioned(&self, seq: Seq) -> Result<Vec<String>, StoreError> {
        self.db
            .query(
                "SELECT user_id FROM mentions WHERE seq = ? ORDER BY user_id",
                sql_params![seq],
            )?
            .iter()
            .map(|r| r.text(0))
            .collect()
    }

    /// Records that message `seq` mentions these users.
    pub fn add_mentions(&self, seq: Seq, user_ids: &[&str]) -> Result<(), StoreError> {
        for id in user_ids {
            self.db.execute(
                "INSERT OR IGNORE INTO mentions (user_id, seq) VALUES (?, ?)",
                sql_params![*id, seq],
            )?;
        }
        Ok(())
    }

    /// A member's read position.
    pub fn read_position(&self, user_id: &str) -> Result<Option<Seq>, StoreError> {
        let rows = self.db.query(
            "SELECT seq FROM reads WHERE user_id = ?",
            sql_params![user_id],
        )?;
        rows.first().map(|r| r.uint(0)).transpose()
    }

    /// Sets a member's read position.
    pub fn set_read_position(&self, user_id: &str, seq: Seq) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO reads (user_id, seq) VALUES (?, ?)
             ON CONFLICT (user_id) DO UPDATE SET seq = excluded.seq",
            sql_params![user_id, seq],
        )
    }

    /// What is unread for `user_id` after `read`: timeline messages by others that are not
    /// deleted, and messages mentioning them. Both counts stop at [`UNREAD_COUNT_CAP`], so a
    /// member far behind costs a bounded scan.
    pub fn unread_counts(&self, user_id: &str, read: Seq) -> Result<UnreadCounts, StoreError> {
        let rows = self.db.query(
            "SELECT
               (SELECT COUNT(*) FROM (SELECT 1 FROM messages
                  WHERE seq > ?1 AND in_main = 1 AND deleted = 0 AND author_id != ?2
                  LIMIT ?3)),
               (SELECT COUNT(*) FROM (SELECT 1 FROM mentions mn
                  JOIN messages m ON m.seq = mn.seq
                  WHERE mn.user_id = ?2 AND mn.seq > ?1 AND m.deleted = 0
                  LIMIT ?3))",
            sql_params![read, user_id, UNREAD_COUNT_CAP],
        )?;
        match rows.first() {
            Some(r) => Ok(UnreadCounts {
                unread: r.uint(0)? as u32,
                mentions: r.uint(1)? as u32,
            }),
            None => Ok(UnreadCounts::default()),
        }
    }

    /// A user's standing in the room.
    pub fn member(&self, user_id: &str) -> Result<Option<MemberRecord>, StoreError> {
        if let Some(known) = self.members.borrow().get(user_id) {
            return Ok(known.clone());
        }
        let rows = self.db.query(
            &format!("SELECT {MEMBER_COLUMNS} FROM member_roles WHERE user_id = ?"),
            sql_params![user_id],
        )?;
        let member = rows.first().map(member_from_row).transpose()?;
        let mut members = self.members.borrow_mut();
        if members.len() >= MEMBER_CACHE_MAX {
            members.clear();
        }
        members.insert(user_id.to_owned(), member.clone());
        Ok(member)
    }

    /// Stores a user's standing (insert or replace).
    pub fn put_member(&self, m: &MemberRecord) -> Result<(), StoreError> {
        // Forgotten first, so a failed write leaves the next read to the database.
        self.members.borrow_mut().remove(&m.user_id);
        self.db.execute(
            "INSERT INTO member_roles (user_id, name, role, banned, muted_until, joined_at, renamed_at,
                 name_as_of)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (user_id) DO UPDATE SET name = excluded.name, role = excluded.role,
               banned = excluded.banned, muted_until = excluded.muted_until,
               renamed_at = excluded.renamed_at, name_as_of = excluded.name_as_of",
            sql_params![
                m.user_id.as_str(),
                m.name.as_str(),
                role_str(m.role),
                m.banned,
                m.muted_until,
                m.joined_at,
                m.renamed_at,
                m.name_as_of
            ],
        )
    }

    /// Remembers the network a member's latest connection came from (`None`: a signed-in
    /// account, which has none). Writes only when it changed.
    pub fn set_member_network(
        &self,
        user_id: &str,
        network: Option<&str>,
    ) -> Result<(), StoreError> {
        // Read first: an UPDATE that changes nothing is still a write, which holds the
        // upgrade's answer until it is durable.
        if self.member_network(user_id)?.as_deref() == network {
            return Ok(());
        }
        self.db.execute(
            "UPDATE member_roles SET network = ? WHERE user_id = ?",
            sql_params![network, user_id],
        )
    }

    /// The network a member's latest connection came from, if they connected as a guest.
    pub fn member_network(&self, user_id: &str) -> Result<Option<String>, StoreError> {
        let rows = self.db.query(
            "SELECT network FROM member_roles WHERE user_id = ?",
            sql_params![user_id],
        )?;
        rows.first()
            .map(|r| r.opt_text(0))
            .transpose()
            .map(Option::flatten)
    }

    /// Bans new guests from `network` until `until` because `user_id` was banned (a second ban
    /// of the same user moves the end). Drops the bans that ended before `now` on the way.
    pub fn ban_network(
        &self,
        network: &str,
        user_id: &str,
        now: Millis,
        until: Millis,
    ) -> Result<(), StoreError> {
        self.db.execute(
            "DELETE FROM network_bans WHERE until_ms <= ?",
            sql_params![now],
        )?;
        self.db.execute(
            "INSERT INTO network_bans (network, user_id, until_ms) VALUES (?, ?, ?)
             ON CONFLICT (network, user_id) DO UPDATE SET until_ms = excluded.until_ms",
            sql_params![network, user_id, until],
        )
    }

    /// Lifts the network bans that banning `user_id` made.
    pub fn lift_network_bans(&self, user_id: &str) -> Result<(), StoreError> {
        self.db.execute(
            "DELETE FROM network_bans WHERE user_id = ?",
            sql_params![user_id],
        )
    }

    /// Whether new guests from `network` are banned at `now` (a ban that has ended counts for
    /// nothing, whether or not its row is gone yet).
    pub fn network_banned(&self, network: &str, now: Millis) -> Result<bool, StoreError> {
        let rows = self.db.query(
            "SELECT 1 FROM network_bans WHERE network = ? AND until_ms > ? LIMIT 1",
            sql_params![network, now],
        )?;
        Ok(!rows.is_empty())
    }

    /// Member records by join time (bounded: a member list is for people, not for scanning a
    /// huge room).
    pub fn member_records(&self) -> Result<Vec<MemberRecord>, StoreError> {
        self.db
            .query(
                &format!(
                    "SELECT {MEMBER_COLUMNS} FROM member_roles ORDER BY joined_at, user_id LIMIT 1000"
                ),
                &[],
            )?
            .iter()
            .map(member_from_row)
            .collect()
    }

    /// Members whose name changed after `at` (bounded like the member list; renames are rare
    /// next to messages).
    pub fn renamed_since(&self, at: Millis) -> Result<Vec<MemberRecord>, StoreError> {
        self.db
            .query(
                &format!(
                    "SELECT {MEMBER_COLUMNS} FROM member_roles WHERE renamed_at > ?
                     ORDER BY renamed_at LIMIT 1000"
                ),
                sql_params![at],
            )?
            .iter()
            .map(member_from_row)
            .collect()
    }

    /// Appends to the audit log (the store assigns the id).
    pub fn append_audit(&self, e: &AuditEntry) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO audit (at, actor_id, actor_name, action, target_id, detail)
             VALUES (?, ?, ?, ?, ?, ?)",
            sql_params![
                e.at,
                e.actor_id.as_str(),
                e.actor_name.as_str(),
                e.action.as_str(),
                e.target_id.as_deref(),
                e.detail.as_str()
            ],
        )
    }

    /// Up to `limit` audit entries with `id < before` (all if `None`), newest first.
    pub fn audit_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, StoreError> {
        self.db
            .query(
                "SELECT id, at, actor_id, actor_name, action, target_id, detail FROM audit
                 WHERE id < ? ORDER BY id DESC LIMIT ?",
                sql_params![before.map_or(MAX_SAFE_INTEGER, |b| b as i64), limit as u64],
            )?
            .iter()
            .map(|r| {
                Ok(AuditEntry {
                    id: r.uint(0)?,
                    at: r.int(1)?,
                    actor_id: r.text(2)?,
                    actor_name: r.text(3)?,
                    action: r.text(4)?,
                    target_id: r.opt_text(5)?,
                    detail: r.text(6)?,
                })
            })
            .collect()
    }

    /// An invite by token.
    pub fn invite(&self, token: &str) -> Result<Option<Invite>, StoreError> {
        let rows = self.db.query(
            &format!("SELECT {INVITE_COLUMNS} FROM invites WHERE token = ?"),
            sql_params![token],
        )?;
        rows.first().map(invite_from_row).transpose()
    }

    /// Stores an invite (insert, or update its uses and revocation).
    pub fn put_invite(&self, i: &Invite) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO invites (token, created_by, created_at, expires_at, max_uses, uses, revoked_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (token) DO UPDATE SET uses = excluded.uses,
               revoked_at = excluded.revoked_at",
            sql_params![
                i.token.as_str(),
                i.created_by.as_str(),
                i.created_at,
                i.expires_at,
                i.max_uses,
                i.uses,
                i.revoked_at
            ],
        )
    }

    /// The newest invites first (at most 200).
    pub fn invites(&self) -> Result<Vec<Invite>, StoreError> {
        self.db
            .query(
                &format!("SELECT {INVITE_COLUMNS} FROM invites ORDER BY created_at DESC LIMIT 200"),
                &[],
            )?
            .iter()
            .map(invite_from_row)
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
