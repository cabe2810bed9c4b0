//! The log's rules over a key-value store: writing a batch, listing a filtered page newest
//! first, and tailing what is new. Generic over [`LogKv`] (three calls: list, read, write), so
//! the paging and tail logic runs natively in tests over an in-memory store that lists keys the
//! way KV does (ascending, in pages with a cursor), and over Workers KV in the Worker
//! (`crate::kv`).
//!
//! Costs are bounded per request, whatever the filter: at most [`Limits::list_calls`] listings
//! and [`Limits::reads`] value reads (a Worker may make 1,000 KV operations per request). Level
//! and time are filtered on each key's metadata and name; values are read only for a text
//! search and for the page returned.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use serde_json::Value;
use shared::error::ErrorCode;
use shared::logs::{
    key_for, parse_key, scrub, BatchReceipt, Filter, KeyMeta, LogEntry, LogPage, LogRecord,
    PageCursor, RejectedEntry, TailPage, TailQuery, RETENTION_SECONDS,
};

/// A key as a listing returns it.
#[derive(Debug, Clone)]
pub(crate) struct Listed {
    /// The key.
    pub name: String,
    /// Its metadata (`None` if missing or not ours).
    pub meta: Option<KeyMeta>,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub(crate) struct Listing {
    /// Keys, ascending.
    pub keys: Vec<Listed>,
    /// Where the next listing starts; `None` when this one was the last.
    pub cursor: Option<String>,
}

/// A failure of the store; the request answers `internal`.
#[derive(Debug)]
pub(crate) struct StoreError(pub String);

/// What the log needs from a key-value store (Workers KV's semantics: ascending listing under
/// the log's prefix, in pages joined by an opaque cursor).
pub(crate) trait LogKv {
    /// Up to `limit` keys under the log's prefix, from `cursor` (`None`: the first).
    async fn list(&self, cursor: Option<&str>, limit: usize) -> Result<Listing, StoreError>;
    /// The values of `keys`, in order (`None` for a key that is gone).
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError>;
    /// Stores a value with its metadata, expiring after `ttl_seconds`.
    async fn put(
        &self,
        key: &str,
        value: &str,
        meta: &KeyMeta,
        ttl_seconds: u64,
    ) -> Result<(), StoreError>;
}

/// Per-request bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Keys per listing call (KV's maximum is 1,000).
    pub list_batch: usize,
    /// Listing calls per request.
    pub list_calls: usize,
    /// Values read per request.
    pub reads: usize,
    /// Values read per round while searching text.
    pub read_chunk: usize,
    /// Keys a tail looks at (one listing).
    pub tail_scan: usize,
}

impl Limits {
    /// The Worker's: at most 10 listings (10,000 keys) and 300 reads a request, well under the
    /// 1,000 KV operations a request may make.
    pub const WORKER: Limits = Limits {
        list_batch: 1000,
        list_calls: 10,
        reads: 300,
        read_chunk: 50,
        tail_scan: 1000,
    };
}

/// Parses a batch's entries one by one: each is an entry's shape, valid, and scrubbed again
/// (the caller is not trusted). Returns the entries to store, with their index in the batch,
/// and the refused ones.
pub(crate) fn prepare(values: Vec<Value>) -> (Vec<(usize, LogEntry)>, Vec<RejectedEntry>) {
    let mut accepted = Vec::new();
    let mut rejected = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        let entry = match serde_json::from_value::<LogEntry>(value) {
            Ok(entry) => entry,
            Err(e) => {
                rejected.push(RejectedEntry {
                    index,
                    code: ErrorCode::InvalidFrame,
                    message: format!("not a log entry: {e}"),
                });
                continue;
            }
        };
        if let Err(e) = entry.validate() {
            rejected.push(RejectedEntry {
                index,
                code: e.code,
                message: e.message,
            });
            continue;
        }
        let mut entry = entry;
        scrub(&mut entry);
        accepted.push((index, entry));
    }
    (accepted, rejected)
}

/// The unique part of the key of the `index`th entry of a batch: entries of one batch share a
/// millisecond, and a batch is oldest first, so a later entry gets a smaller prefix (listed
/// first, as newer); the random part keeps batches of one millisecond apart.
pub(crate) fn unique_for(index: usize, random_hex: &str) -> String {
    format!("{:02}{random_hex}", 99 - index.min(99))
}

/// Stores a batch's values at `now` (the logger's clock); `random_hex` gives each entry's
/// random key part. Entries are written concurrently.
pub(crate) async fn write(
    kv: &impl LogKv,
    values: Vec<Value>,
    now: i64,
    mut random_hex: impl FnMut() -> String,
) -> BatchReceipt {
    let (accepted, mut rejected) = prepare(values);
    let writes: Vec<_> = accepted
        .iter()
        .map(|(index, entry)| {
            let key = key_for(now, &unique_for(*index, &random_hex()));
            let value = serde_json::to_string(entry);
            let meta = KeyMeta::of(entry);
            async move {
                let value = value.map_err(|e| StoreError(e.to_string()))?;
                kv.put(&key, &value, &meta, RETENTION_SECONDS).await
            }
        })
        .collect();
    let mut written = 0;
    for ((index, _), result) in accepted.iter().zip(join_all(writes).await) {
        match result {
            Ok(()) => written += 1,
            Err(StoreError(detail)) => rejected.push(RejectedEntry {
                index: *index,
                code: ErrorCode::Internal,
                message: format!("the log store failed: {detail}"),
            }),
        }
    }
    rejected.sort_by_key(|r| r.index);
    BatchReceipt { written, rejected }
}

/// A page of the log, newest first, filtered; see [`LogPage`] for what its cursor means.
pub(crate) async fn list(
    kv: &impl LogKv,
    filter: &Filter,
    limits: Limits,
) -> Result<LogPage, StoreError> {
    let limit = filter.page_size();
    let searching = filter.needle().is_some();
    let start = filter.cursor.clone().unwrap_or_default();
    let mut list_cursor = start.list;
    let mut skip_through = start.after;
    let mut page = Vec::new();
    let mut reads = 0;
    let resume_at = |after: Option<String>, list: &Option<String>| {
        Some(
            PageCursor {
                after,
                list: list.clone(),
            }
            .encode(),
        )
    };
    for _ in 0..limits.list_calls {
        let listing = kv.list(list_cursor.as_deref(), limits.list_batch).await?;
        let mut pending: Vec<(String, i64)> = Vec::new();
        let mut older_than_from = false;
        for key in listing.keys {
            if skip_through
                .as_deref()
                .is_some_and(|after| key.name.as_str() <= after)
            {
                continue;
            }
            let Some((logged_at, _)) = parse_key(&key.name) else {
                continue;
            };
            if filter.from.is_some_and(|from| logged_at < from) {
                older_than_from = true;
                break;
            }
            if !filter.admits(logged_at, key.meta.as_ref()) {
                continue;
            }
            pending.push((key.name, logged_at));
            let chunk = if searching {
                limits.read_chunk
            } else {
                limit - page.len()
            };
            if pending.len() >= chunk {
                let last = pending.last().map(|(name, _)| name.clone());
                reads += pending.len();
                if let Some(full_at) = read_into(kv, &mut pending, filter, limit, &mut page).await?
                {
                    return Ok(LogPage {
                        entries: page,
                        cursor: resume_at(Some(full_at), &list_cursor),
                    });
                }
                if reads >= limits.reads {
                    return Ok(LogPage {
                        entries: page,
                        cursor: resume_at(last, &list_cursor),
                    });
                }
            }
        }
        reads += pending.len();
        if let Some(full_at) = read_into(kv, &mut pending, filter, limit, &mut page).await? {
            return Ok(LogPage {
                entries: page,
                cursor: resume_at(Some(full_at), &list_cursor),
            });
        }
        let Some(next) = listing.cursor.filter(|_| !older_than_from) else {
            return Ok(LogPage {
                entries: page,
                cursor: None,
            });
        };
        list_cursor = Some(next);
        skip_through = None;
        if reads >= limits.reads {
            break;
        }
    }
    Ok(LogPage {
        entries: page,
        cursor: resume_at(None, &list_cursor),
    })
}

/// Reads the pending keys' values in order and adds those that match to the page. Returns the
/// key at which the page became full (the next page resumes after it), or `None`.
async fn read_into(
    kv: &impl LogKv,
    pending: &mut Vec<(String, i64)>,
    filter: &Filter,
    limit: usize,
    page: &mut Vec<LogRecord>,
) -> Result<Option<String>, StoreError> {
    if pending.is_empty() {
        return Ok(None);
    }
    let keys: Vec<String> = pending.iter().map(|(name, _)| name.clone()).collect();
    let values = kv.get_many(&keys).await?;
    for ((key, logged_at), value) in pending.drain(..).zip(values) {
        let Some(record) = record_of(key, logged_at, value) else {
            continue;
        };
        if filter.matches(&record) {
            let key = record.key.clone();
            page.push(record);
            if page.len() >= limit {
                return Ok(Some(key));
            }
        }
    }
    Ok(None)
}

/// A stored value as a record; `None` when it is gone (expired) or not an entry.
fn record_of(key: String, logged_at: i64, value: Option<String>) -> Option<LogRecord> {
    let entry = serde_json::from_str::<LogEntry>(&value?).ok()?;
    Some(LogRecord {
        key,
        logged_at,
        entry,
    })
}

/// What arrived since `query.after`, newest first (see [`TailPage`]). Without `after`, the
/// newest entries, to start a tail.
pub(crate) async fn tail(
    kv: &impl LogKv,
    query: &TailQuery,
    limits: Limits,
) -> Result<TailPage, StoreError> {
    let filter = &query.filter;
    let limit = filter.page_size();
    let searching = filter.needle().is_some();
    let listing = kv.list(None, limits.tail_scan).await?;
    let newest = listing.keys.first().map(|k| k.name.clone());
    let mut reached_after = false;
    let mut candidates = Vec::new();
    for key in listing.keys {
        if query
            .after
            .as_deref()
            .is_some_and(|after| key.name.as_str() >= after)
        {
            reached_after = true;
            break;
        }
        let Some((logged_at, _)) = parse_key(&key.name) else {
            continue;
        };
        if filter.admits(logged_at, key.meta.as_ref()) {
            candidates.push((key.name, logged_at));
        }
    }
    let scanned_all = reached_after || listing.cursor.is_none();
    let to_read = if searching {
        candidates.len().min(limits.reads)
    } else {
        candidates.len().min(limit)
    };
    let mut entries = Vec::new();
    let mut matched = 0;
    for chunk in candidates[..to_read].chunks(100) {
        let keys: Vec<String> = chunk.iter().map(|(name, _)| name.clone()).collect();
        let values = kv.get_many(&keys).await?;
        for ((key, logged_at), value) in chunk.iter().cloned().zip(values) {
            let Some(record) = record_of(key, logged_at, value) else {
                continue;
            };
            if filter.matches(&record) {
                matched += 1;
                if entries.len() < limit {
                    entries.push(record);
                }
            }
        }
    }
    let gap = query.after.is_some()
        && (!scanned_all
            || matched > limit
            || (!searching && candidates.len() > limit)
            || to_read < candidates.len());
    Ok(TailPage {
        entries,
        after: newest.or_else(|| query.after.clone()),
        gap,
    })
}

/// Runs futures concurrently and returns their outputs in order (the runtime's KV calls then
/// overlap instead of queueing). Each is polled until it is ready, never after.
pub(crate) async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use shared::logs::{key_for, Level, LogContext, LogError, Source, KEY_PREFIX};
    use std::cell::{Cell, RefCell};
    use std::collections::BTreeMap;

    /// An in-memory store that lists like KV: ascending, at most `page` keys per call, with an
    /// opaque cursor; counts the calls.
    #[derive(Default)]
    struct MemKv {
        values: RefCell<BTreeMap<String, (String, KeyMeta)>>,
        page: usize,
        lists: Cell<usize>,
        reads: Cell<usize>,
    }

    impl MemKv {
        fn with_page(page: usize) -> MemKv {
            MemKv {
                page,
                ..MemKv::default()
            }
        }
    }

    impl LogKv for MemKv {
        async fn list(&self, cursor: Option<&str>, limit: usize) -> Result<Listing, StoreError> {
            self.lists.set(self.lists.get() + 1);
            let after = match cursor {
                Some(c) => Some(
                    c.strip_prefix("opaque:")
                        .ok_or_else(|| StoreError("bad cursor".into()))?
                        .to_string(),
                ),
                None => None,
            };
            let values = self.values.borrow();
            let mut keys: Vec<Listed> = values
                .iter()
                .filter(|(k, _)| k.starts_with(KEY_PREFIX))
                .filter(|(k, _)| after.as_ref().is_none_or(|a| k.as_str() > a.as_str()))
                .take(limit.min(self.page) + 1)
                .map(|(k, (_, meta))| Listed {
                    name: k.clone(),
                    meta: Some(meta.clone()),
                })
                .collect();
            let more = keys.len() > limit.min(self.page);
            keys.truncate(limit.min(self.page));
            let cursor = more
                .then(|| keys.last().map(|k| format!("opaque:{}", k.name)))
                .flatten();
            Ok(Listing { keys, cursor })
        }

        async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
            self.reads.set(self.reads.get() + keys.len());
            let values = self.values.borrow();
            Ok(keys
                .iter()
                .map(|k| values.get(k).map(|(v, _)| v.clone()))
                .collect())
        }

        async fn put(
            &self,
            key: &str,
            value: &str,
            meta: &KeyMeta,
            ttl_seconds: u64,
        ) -> Result<(), StoreError> {
            assert_eq!(ttl_seconds, RETENTION_SECONDS);
            assert!(serde_json::to_string(meta).expect("meta").len() <= 1024);
            let previous = self
                .values
                .borrow_mut()
                .insert(key.to_string(), (value.to_string(), meta.clone()));
            assert!(previous.is_none(), "key {key} written twice");
            Ok(())
        }
    }

    /// Runs a future that never waits (the in-memory store answers at once).
    fn run<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
                return value;
            }
        }
    }

    fn entry(level: Level, message: &str) -> LogEntry {
        LogEntry {
            at: 1_760_000_000_000,
            level,
            message: message.to_string(),
            source: Source::Worker,
            context: LogContext::default(),
            error: None,
        }
    }

    fn counter() -> impl FnMut() -> String {
        let mut n = 0u64;
        move || {
            n += 1;
            format!("{n:016x}")
        }
    }

    /// Writes `count` entries, one batch per millisecond from `t0`, alternating levels; entry
    /// `i` says `entry i`.
    fn fill(kv: &MemKv, t0: i64, count: usize) {
        let mut random = counter();
        for i in 0..count {
            let level = [Level::Info, Level::Warn, Level::Error][i % 3];
            let value = serde_json::to_value(entry(level, &format!("entry {i}"))).expect("json");
            let receipt = run(write(kv, vec![value], t0 + i as i64, &mut random));
            assert_eq!(receipt.written, 1);
        }
    }

    fn messages(page: &[LogRecord]) -> Vec<String> {
        page.iter().map(|r| r.entry.message.clone()).collect()
    }

    fn small_limits() -> Limits {
        Limits {
            list_batch: 7,
            list_calls: 100,
            reads: 1000,
            read_chunk: 4,
            tail_scan: 1000,
        }
    }

    /// Every page of a query, following cursors.
    fn all_pages(kv: &MemKv, filter: &Filter, limits: Limits) -> Vec<Vec<String>> {
        let mut filter = filter.clone();
        let mut pages = Vec::new();
        loop {
            let page = run(list(kv, &filter, limits)).expect("lists");
            pages.push(messages(&page.entries));
            match page.cursor {
                Some(cursor) => filter.cursor = PageCursor::parse(&cursor),
                None => return pages,
            }
            assert!(pages.len() < 100, "paging does not end");
        }
    }

    #[test]
    fn a_batch_is_validated_scrubbed_and_answered_with_counts() {
        let kv = MemKv::with_page(1000);
        let mut secret = entry(Level::Error, "login for dave@example.com failed");
        secret.error = Some(LogError {
            code: "internal".into(),
            detail: "Cookie: dc_session=abc".into(),
        });
        let values = vec![
            serde_json::to_value(entry(Level::Info, "fine")).expect("json"),
            json!({"at": 1, "level": "nope"}),
            serde_json::to_value(secret).expect("json"),
            serde_json::to_value(entry(Level::Info, "   ")).expect("json"),
            serde_json::to_value(entry(Level::Info, &"x".repeat(9000))).expect("json"),
        ];
        let receipt = run(write(&kv, values, 1_760_000_000_000, counter()));
        assert_eq!(receipt.written, 2);
        let codes: Vec<(usize, ErrorCode)> =
            receipt.rejected.iter().map(|r| (r.index, r.code)).collect();
        assert_eq!(
            codes,
            vec![
                (1, ErrorCode::InvalidFrame),
                (3, ErrorCode::InvalidInput),
                (4, ErrorCode::TooLarge)
            ]
        );
        let stored: Vec<String> = kv
            .values
            .borrow()
            .values()
            .map(|(v, _)| v.clone())
            .collect();
        let all = stored.join("\n");
        assert!(
            !all.contains("dave@example.com") && !all.contains("abc"),
            "{all}"
        );
        assert!(all.contains("[email]") && all.contains("Cookie: [redacted]"));
    }

    #[test]
    fn a_batch_lists_newest_first_in_the_order_it_happened() {
        let kv = MemKv::with_page(1000);
        let values = (0..5)
            .map(|i| serde_json::to_value(entry(Level::Info, &format!("step {i}"))).expect("json"))
            .collect();
        run(write(&kv, values, 1_760_000_000_000, counter()));
        let page = run(list(&kv, &Filter::default(), Limits::WORKER)).expect("lists");
        assert_eq!(
            messages(&page.entries),
            ["step 4", "step 3", "step 2", "step 1", "step 0"]
        );
        assert!(page
            .entries
            .iter()
            .all(|r| r.logged_at == 1_760_000_000_000));
        assert_eq!(page.cursor, None);
    }

    #[test]
    fn pages_follow_each_other_without_gaps_or_repeats_across_listings() {
        let kv = MemKv::with_page(5);
        fill(&kv, 1_000_000_000_000, 23);
        let filter = Filter {
            limit: Some(4),
            ..Filter::default()
        };
        let pages = all_pages(&kv, &filter, small_limits());
        let flat: Vec<String> = pages.concat();
        let expected: Vec<String> = (0..23).rev().map(|i| format!("entry {i}")).collect();
        assert_eq!(flat, expected);
        assert!(pages.iter().all(|p| p.len() <= 4));
    }

    #[test]
    fn level_and_time_filters_use_metadata_and_read_only_the_page() {
        let kv = MemKv::with_page(1000);
        let t0 = 1_000_000_000_000;
        fill(&kv, t0, 30);
        let filter = Filter {
            levels: vec![Level::Error],
            from: Some(t0 + 5),
            to: Some(t0 + 20),
            limit: Some(3),
            ..Filter::default()
        };
        kv.reads.set(0);
        let page = run(list(&kv, &filter, Limits::WORKER)).expect("lists");
        // Errors are entries 2, 5, 8, ...: in [5, 20] newest first: 20, 17, 14.
        assert_eq!(
            messages(&page.entries),
            ["entry 20", "entry 17", "entry 14"]
        );
        assert_eq!(kv.reads.get(), 3, "only the page's values are read");
        let pages = all_pages(&kv, &filter, Limits::WORKER);
        assert_eq!(
            pages.concat(),
            ["entry 20", "entry 17", "entry 14", "entry 11", "entry 8", "entry 5"]
        );
    }

    #[test]
    fn a_text_search_reads_values_and_pages_through_every_match() {
        let kv = MemKv::with_page(6);
        fill(&kv, 1_000_000_000_000, 40);
        let filter = Filter {
            text: Some("ENTRY 1".into()),
            limit: Some(3),
            ..Filter::default()
        };
        let pages = all_pages(&kv, &filter, small_limits());
        let expected: Vec<String> = [19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 1]
            .iter()
            .map(|i| format!("entry {i}"))
            .collect();
        assert_eq!(pages.concat(), expected);
    }

    #[test]
    fn a_search_that_runs_out_of_reads_returns_a_short_page_and_a_cursor_that_goes_on() {
        let kv = MemKv::with_page(1000);
        fill(&kv, 1_000_000_000_000, 30);
        let limits = Limits {
            reads: 8,
            read_chunk: 4,
            ..Limits::WORKER
        };
        let filter = Filter {
            text: Some("entry 0".into()),
            ..Filter::default()
        };
        let first = run(list(&kv, &filter, limits)).expect("lists");
        assert!(first.entries.is_empty());
        assert!(first.cursor.is_some(), "the scan is not over");
        let pages = all_pages(&kv, &filter, limits);
        assert_eq!(pages.concat(), ["entry 0"]);
    }

    #[test]
    fn a_stale_or_expired_key_is_skipped() {
        let kv = MemKv::with_page(1000);
        fill(&kv, 1_000_000_000_000, 3);
        let middle = kv
            .values
            .borrow()
            .keys()
            .nth(1)
            .cloned()
            .expect("three keys");
        kv.values
            .borrow_mut()
            .entry(middle)
            .and_modify(|(v, _)| *v = "not json".into());
        let page = run(list(&kv, &Filter::default(), Limits::WORKER)).expect("lists");
        assert_eq!(messages(&page.entries), ["entry 2", "entry 0"]);
    }

    #[test]
    fn a_tail_returns_what_is_newer_than_its_key_and_says_where_to_poll_next() {
        let kv = MemKv::with_page(1000);
        fill(&kv, 1_000_000_000_000, 5);
        let start = run(tail(&kv, &TailQuery::default(), Limits::WORKER)).expect("tails");
        assert_eq!(start.entries.len(), 5);
        assert!(!start.gap);
        let after = start.after.clone().expect("a newest key");
        assert_eq!(Some(&after), start.entries.first().map(|r| &r.key));

        let quiet = TailQuery {
            after: Some(after.clone()),
            ..TailQuery::default()
        };
        let nothing = run(tail(&kv, &quiet, Limits::WORKER)).expect("tails");
        assert!(nothing.entries.is_empty());
        assert_eq!(nothing.after, Some(after.clone()));

        fill(&kv, 1_000_000_000_100, 3);
        let new = run(tail(&kv, &quiet, Limits::WORKER)).expect("tails");
        assert_eq!(messages(&new.entries), ["entry 2", "entry 1", "entry 0"]);
        assert!(!new.gap);
        assert_eq!(new.after, new.entries.first().map(|r| r.key.clone()));

        let warn_only = TailQuery {
            after: Some(after),
            filter: Filter {
                levels: vec![Level::Warn],
                ..Filter::default()
            },
        };
        let warn = run(tail(&kv, &warn_only, Limits::WORKER)).expect("tails");
        assert_eq!(messages(&warn.entries), ["entry 1"]);
        assert_eq!(
            warn.after, new.after,
            "the next poll starts past every key seen"
        );
    }

    #[test]
    fn a_tail_that_fell_behind_says_so() {
        let kv = MemKv::with_page(1000);
        fill(&kv, 1_000_000_000_000, 1);
        let after = run(tail(&kv, &TailQuery::default(), Limits::WORKER))
            .expect("tails")
            .after;
        fill(&kv, 1_000_000_000_100, 10);
        let query = TailQuery {
            after,
            filter: Filter {
                limit: Some(4),
                ..Filter::default()
            },
        };
        let page = run(tail(&kv, &query, Limits::WORKER)).expect("tails");
        assert_eq!(page.entries.len(), 4);
        assert!(page.gap);
        assert_eq!(messages(&page.entries)[0], "entry 9");
    }

    #[test]
    fn keys_of_one_batch_are_unique_and_time_ordered() {
        let a = key_for(5, &unique_for(0, "ffff"));
        let b = key_for(5, &unique_for(1, "0000"));
        assert!(b < a, "the later entry of a batch lists first");
        assert!(parse_key(&a).is_some());
    }

    #[test]
    fn join_all_keeps_the_order_of_its_futures() {
        let outputs = run(join_all(vec![
            Box::pin(async { 1 }) as Pin<Box<dyn Future<Output = i32>>>,
            Box::pin(async { 2 }),
            Box::pin(async { 3 }),
        ]));
        assert_eq!(outputs, [1, 2, 3]);
    }
}
