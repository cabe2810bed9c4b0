//! Full-text search, hybrid ranking and a message in context, over the room's FTS5 index.

use super::{message_from_row, Row, Sql, SqlStore, SqlValue, StoreError};
use crate::protocol::http::SearchHit;
use crate::protocol::{MessageView, Seq};
use crate::search::{self, SearchQuery};
use crate::sql_params;

/// A message in context: the thread's root when it is a thread-only reply, and the messages
/// to show, oldest first.
pub type MessageContext = (Option<Seq>, Vec<MessageView>);

/// Full-text search ranks at most this many matches, the newest (see [`SqlStore::search`]).
pub const RANK_WINDOW: u32 = 20_000;

/// The search filters over `messages m`, numbered `?2`..`?6` and `?9` ([`filter_args`]); `?1`
/// is the match expression or candidate list, `?7` the limit and `?8` the start of the ranking
/// window where a statement uses one.
const SEARCH_FILTERS: &str = "m.deleted = 0
    AND (?2 IS NULL OR m.author_id = ?2 OR json_extract(m.author, '$.name') = ?2 COLLATE NOCASE)
    AND (?3 = 0 OR m.thread IS NOT NULL)
    AND (m.flags & ?4) = ?4
    AND (?5 IS NULL OR m.at >= ?5)
    AND (?6 IS NULL OR m.at < ?6)
    AND (?9 IS NULL OR instr(m.tags, ' ' || ?9 || ' ') > 0)";

/// The columns [`hit_from_row`] reads.
const HIT_COLUMNS: &str = "m.seq, m.at, m.author, m.thread";

fn filter_args(first: SqlValue, query: &SearchQuery, limit: u32) -> Vec<SqlValue> {
    vec![
        first,
        query.from.clone().into(),
        query.in_thread.into(),
        query.required_flags().into(),
        query.after.into(),
        query.before.into(),
        limit.into(),
        // `?8`: bound by the statements that use it (a ranking window), NULL otherwise.
        SqlValue::Null,
        query.tag.clone().into(),
    ]
}

/// A hit row: [`HIT_COLUMNS`], the snippet, the rank.
fn hit_from_row(row: &Row, slug: &str) -> Result<SearchHit, StoreError> {
    Ok(SearchHit {
        slug: slug.to_owned(),
        seq: row.uint(0)?,
        at: row.int(1)?,
        author: row.json(2)?,
        thread: row.opt_uint(3)?,
        snippet: row.text(4)?,
        // bm25 is lower-is-better; the API's score is higher-is-better.
        score: -row.real(5)?,
    })
}

impl<D: Sql> SqlStore<D> {
    /// Full-text search with filters, best first: FTS5 over the current text of messages that
    /// are not deleted, ranked by bm25 among the newest `window` ([`RANK_WINDOW`]) matches, with
    /// highlighted snippets. A query with filters only lists the newest matching messages.
    pub fn search(
        &self,
        slug: &str,
        query: &SearchQuery,
        limit: u32,
        window: u32,
    ) -> Result<Vec<SearchHit>, StoreError> {
        self.index_pending()?;
        let filters = SEARCH_FILTERS;
        let Some(fts) = query.fts_match() else {
            // `?1` is still bound (unused) so the numbering stays the same.
            let sql = format!(
                "SELECT {HIT_COLUMNS}, substr(m.text, 1, 160), 0.0
                 FROM messages m WHERE (?1 IS NULL) AND {filters}
                 ORDER BY m.seq DESC LIMIT ?7"
            );
            return self.hits(&sql, &filter_args(SqlValue::Null, query, limit), slug);
        };
        let mut args = filter_args(fts.clone().into(), query, limit);
        // FTS5's `ORDER BY rank` scores every match, which for a word in most messages of a
        // large room takes most of a second. So only the newest `window` matches are ranked:
        // walking matches newest first to find where that window starts costs far less than
        // scoring them.
        let offset = window.max(1) - 1;
        let mut rows = self.db.query(
            "SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?1
             ORDER BY rowid DESC LIMIT 1 OFFSET ?2",
            sql_params![fts.as_str(), offset],
        )?;
        // Filters only remove matches: if the text alone has fewer than the window, so do the
        // filtered ones, and the walk with the join (which costs more) is skipped.
        if !rows.is_empty() && query.is_filtered() {
            rows = self.db.query(
                &format!(
                    "SELECT messages_fts.rowid
                     FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid
                     WHERE messages_fts MATCH ?1 AND {filters}
                     ORDER BY messages_fts.rowid DESC LIMIT 1 OFFSET ?7"
                ),
                &filter_args(fts.into(), query, offset),
            )?;
        }
        let sql = match rows.first() {
            // Fewer matches than the window: rank them all, as FTS5 does best.
            None => format!(
                "SELECT {HIT_COLUMNS}, snippet(messages_fts, 0, char(2), char(3), '…', 16),
                    messages_fts.rank
                 FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid
                 WHERE messages_fts MATCH ?1 AND {filters}
                 ORDER BY messages_fts.rank LIMIT ?7"
            ),
            // FTS5's rank sort would still score every match despite the rowid bound; sorting
            // by bm25() scores only the rows in the window.
            Some(first) => {
                args[7] = first.uint(0)?.into();
                format!(
                    "SELECT {HIT_COLUMNS}, snippet(messages_fts, 0, char(2), char(3), '…', 16),
                        bm25(messages_fts) AS score
                     FROM messages_fts JOIN messages m ON m.seq = messages_fts.rowid
                     WHERE messages_fts MATCH ?1 AND messages_fts.rowid >= ?8 AND {filters}
                     ORDER BY score LIMIT ?7"
                )
            }
        };
        self.hits(&sql, &args, slug)
    }

    fn hits(&self, sql: &str, args: &[SqlValue], slug: &str) -> Result<Vec<SearchHit>, StoreError> {
        self.db
            .query(sql, args)?
            .iter()
            .map(|r| hit_from_row(r, slug))
            .collect()
    }

    /// Hybrid search (production, with Vectorize): `candidates` full-text results and
    /// `semantic` (message seqs nearest in meaning, best first) fused by reciprocal rank, each
    /// result read back from SQLite with the same filters, so deleted or filtered-out messages
    /// never show.
    pub fn search_hybrid(
        &self,
        slug: &str,
        query: &SearchQuery,
        limit: u32,
        semantic: &[Seq],
        candidates: u32,
        window: u32,
    ) -> Result<Vec<SearchHit>, StoreError> {
        if semantic.is_empty() {
            return self.search(slug, query, limit, window);
        }
        let full_text = self.search(slug, query, candidates, window)?;
        let fts_seqs: Vec<Seq> = full_text.iter().map(|h| h.seq).collect();
        let fused = search::hybrid_rank(&fts_seqs, semantic, limit as usize);
        let others: Vec<Seq> = fused
            .iter()
            .map(|(seq, _)| *seq)
            .filter(|seq| !fts_seqs.contains(seq))
            .collect();
        let mut pool = full_text;
        if !others.is_empty() {
            let ids = serde_json::to_string(&others).map_err(StoreError::new)?;
            let sql = format!(
                "SELECT {HIT_COLUMNS}, substr(m.text, 1, 160), 0.0
                 FROM messages m
                 WHERE m.seq IN (SELECT value FROM json_each(?1)) AND {SEARCH_FILTERS}
                 LIMIT ?7"
            );
            pool.extend(self.hits(&sql, &filter_args(ids.into(), query, limit), slug)?);
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
    pub fn context(&self, seq: Seq, side: usize) -> Result<Option<MessageContext>, StoreError> {
        let Some(target) = self.message(seq)? else {
            return Ok(None);
        };
        if !target.in_timeline() {
            let root = target.thread.unwrap_or(seq);
            let (replies, _) = self.thread_replies(root, crate::limits::THREAD_PAGE)?;
            let mut messages: Vec<MessageView> = self.message(root)?.into_iter().collect();
            messages.extend(replies);
            return Ok(Some((Some(root), messages)));
        }
        let (mut messages, _) = self.messages_before(Some(seq + 1), side + 1)?;
        let rows = self.db.query(
            &format!(
                "SELECT {} FROM messages WHERE seq > ? AND in_main = 1 ORDER BY seq LIMIT ?",
                super::MESSAGE_COLUMNS
            ),
            sql_params![seq, side as u64],
        )?;
        for row in &rows {
            messages.push(message_from_row(row)?);
        }
        Ok(Some((None, messages)))
    }
}
