//! What grounded answers read and keep: the messages a question retrieves, the unread range a
//! catch-up covers, and private answers.

use super::{json, message_from_row, Row, Sql, SqlStore, StoreError, MESSAGE_COLUMNS, RANK_WINDOW};
use crate::protocol::{AnswerState, MessageView, Millis, PrivateAnswer, Seq};
use crate::room::assistant::ASSISTANT_ID;
use crate::sql_params;

/// How long private answers are kept (and sent again after a hello while younger than
/// [`crate::room::assistant::PRIVATE_RESEND_MS`]).
pub const PRIVATE_KEEP_MS: Millis = 24 * 60 * 60 * 1000;

/// A private answer row: `id, body`. The body is written before the row has its id, so the
/// id column is the one that counts.
fn private_from_row(row: &Row) -> Result<PrivateAnswer, StoreError> {
    let mut answer: PrivateAnswer = row.json(1)?;
    answer.id = row.uint(0)?;
    Ok(answer)
}

fn state_name(state: AnswerState) -> &'static str {
    match state {
        AnswerState::Queued => "queued",
        AnswerState::Streaming => "streaming",
        AnswerState::Done => "done",
        AnswerState::Stopped => "stopped",
        AnswerState::Failed => "failed",
        AnswerState::Unknown => "unknown",
    }
}

impl<D: Sql> SqlStore<D> {
    /// The messages before `before` that match `expr` (a [`crate::grounding::fts_expression`]),
    /// best first by bm25, at most `limit`: never a deleted message (its words are gone from
    /// the index and the row says so) and never the assistant's own answers (an answer citing
    /// an earlier answer would launder a guess into a source). Like search, only the newest
    /// [`RANK_WINDOW`] matches are ranked.
    pub fn retrieve(
        &self,
        expr: &str,
        before: Seq,
        limit: u32,
    ) -> Result<Vec<MessageView>, StoreError> {
        self.index_pending()?;
        let window_start = self
            .db
            .query(
                "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1 AND rowid < ?2
                 ORDER BY rowid DESC LIMIT 1 OFFSET ?3",
                sql_params![expr, before, RANK_WINDOW - 1],
            )?
            .first()
            .map(|r| r.uint(0))
            .transpose()?
            .unwrap_or(0);
        let ids: Vec<Seq> = self
            .db
            .query(
                "SELECT messages_fts.rowid, bm25(messages_fts) AS score
                 FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid
                 WHERE messages_fts MATCH ?1 AND messages_fts.rowid < ?2
                   AND messages_fts.rowid >= ?3 AND m.deleted = 0
                   AND (m.author_id IS NULL OR m.author_id <> ?4)
                 ORDER BY score LIMIT ?5",
                sql_params![
                    expr,
                    before,
                    window_start,
                    ASSISTANT_ID,
                    limit.saturating_mul(2)
                ],
            )?
            .iter()
            .map(|r| r.uint(0))
            .collect::<Result<_, _>>()?;
        // The same line said again ("+1", a repeated reminder) would fill every slot: each
        // text once, at its best rank.
        let mut seen = std::collections::HashSet::new();
        let mut found = self.messages_in_order(&ids)?;
        found.retain(|m| seen.insert(m.text.trim().to_lowercase()));
        found.truncate(limit as usize);
        Ok(found)
    }

    /// [`SqlStore::retrieve`] for a question in words ([`crate::grounding::retrieval_terms`]):
    /// nothing when it has no term.
    pub fn retrieve_question(
        &self,
        question: &str,
        before: Seq,
        limit: u32,
    ) -> Result<Vec<MessageView>, StoreError> {
        let terms = crate::grounding::retrieval_terms(question);
        match crate::grounding::fts_expression(&terms) {
            Some(expr) => self.retrieve(&expr, before, limit),
            None => Ok(Vec::new()),
        }
    }

    /// The messages with these seqs, in the order given (missing ones skipped).
    pub fn messages_in_order(&self, seqs: &[Seq]) -> Result<Vec<MessageView>, StoreError> {
        if seqs.is_empty() {
            return Ok(Vec::new());
        }
        let list = json(&seqs)?;
        let found = self
            .db
            .query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages
                     WHERE seq IN (SELECT value FROM json_each(?1))"
                ),
                sql_params![list],
            )?
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(seqs
            .iter()
            .filter_map(|seq| found.iter().find(|m| m.seq == *seq).cloned())
            .collect())
    }

    /// The timeline's messages after `after` up to `upto` (not deleted, not thread-only
    /// replies): the newest `limit` of them, oldest first, and how many the range holds. The
    /// newest, because a catch-up after a long absence is about how things stand now.
    pub fn timeline_range(
        &self,
        after: Seq,
        upto: Seq,
        limit: u32,
    ) -> Result<(Vec<MessageView>, u32), StoreError> {
        const RANGE: &str = "seq > ?1 AND seq <= ?2 AND deleted = 0 AND in_main = 1";
        let total = self
            .db
            .query(
                &format!("SELECT COUNT(*) FROM messages WHERE {RANGE}"),
                sql_params![after, upto],
            )?
            .first()
            .map(|r| r.uint(0))
            .transpose()?
            .unwrap_or(0);
        let mut messages = self
            .db
            .query(
                &format!(
                    "SELECT {MESSAGE_COLUMNS} FROM messages WHERE {RANGE}
                     ORDER BY seq DESC LIMIT ?3"
                ),
                sql_params![after, upto, limit],
            )?
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok((messages, total as u32))
    }

    /// Stores a new private answer for `user_id` and returns its id; drops the user's
    /// answers older than [`PRIVATE_KEEP_MS`].
    pub fn insert_private(&self, user_id: &str, answer: &PrivateAnswer) -> Result<u64, StoreError> {
        self.db.execute(
            "DELETE FROM private_answers WHERE user_id = ?1 AND at < ?2",
            sql_params![user_id, answer.at - PRIVATE_KEEP_MS],
        )?;
        let rows = self.db.query(
            "INSERT INTO private_answers (user_id, at, state, body) VALUES (?1, ?2, ?3, ?4)
             RETURNING id",
            sql_params![user_id, answer.at, state_name(answer.state), json(answer)?],
        )?;
        rows.first()
            .map(|r| r.uint(0))
            .transpose()?
            .ok_or_else(|| StoreError::new("no id for a private answer"))
    }

    /// Replaces a private answer's state and text.
    pub fn update_private(&self, answer: &PrivateAnswer) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE private_answers SET state = ?2, body = ?3 WHERE id = ?1",
            sql_params![answer.id, state_name(answer.state), json(answer)?],
        )
    }

    /// The user's private answers asked at or after `since`, oldest first.
    pub fn private_answers(
        &self,
        user_id: &str,
        since: Millis,
    ) -> Result<Vec<PrivateAnswer>, StoreError> {
        self.db
            .query(
                "SELECT id, body FROM private_answers WHERE user_id = ?1 AND at >= ?2 ORDER BY id",
                sql_params![user_id, since],
            )?
            .iter()
            .map(private_from_row)
            .collect()
    }

    /// Private answers that were queued or being written (after a restart), with their askers.
    pub fn unfinished_private(&self) -> Result<Vec<(String, PrivateAnswer)>, StoreError> {
        self.db
            .query(
                "SELECT id, body, user_id FROM private_answers
                 WHERE state IN ('queued', 'streaming') ORDER BY id",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.text(2)?, private_from_row(r)?)))
            .collect()
    }
}
