//! The offline cache in IndexedDB: the `rooms` store keeps each room's messages and cursor (a
//! [`CachedRoom`] as JSON, keyed by slug; last writer wins, which is fine for a cache), and the
//! `outbox` store keeps every unconfirmed mutation as its own record keyed by client id. Two
//! tabs of the same room therefore never overwrite each other's unsent messages: each adds its
//! own and deletes only those it saw confirmed (the room de-duplicates a mutation both send).
//! Two more stores carry messages with files until they are sent: `drafts` (a
//! [`crate::upload::Draft`] as JSON, keyed by the message's client id) and `files` (each
//! attached file's `Blob` itself, keyed by its upload id: Blobs are structured-cloneable, so
//! the browser keeps the bytes, and a reload resumes the upload). A finished draft leaves both
//! in the same transaction that writes its message into `outbox`, so a message is never in
//! neither place.
//! Every failure degrades to "no cache" (private browsing, storage quota, a blocked upgrade):
//! the app still works, only without offline history.
//!
//! Each user has a database of their own (`durable-chat-user-<id>`), opened only while their
//! session is the page's: a second person on the same browser profile never loads the first
//! one's rooms, and never sends the first one's unsent messages under their own session.
//! Signing out deletes the database; a session that merely ended (expired, revoked elsewhere)
//! keeps it, so its owner's unsent messages go out when they sign in again.

use std::rc::Rc;

use gloo_timers::callback::Timeout;
use indexed_db_futures::database::Database;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use shared::client::{CachedRoom, Pending};

use crate::web::warn;

/// Each user's database is this prefix and their user id.
const DB_PREFIX: &str = "durable-chat-user-";
/// The single database earlier versions shared between everyone on the browser: it cannot be
/// attributed to a user, so it is deleted.
const LEGACY_DB: &str = "durable-chat";
const DB_VERSION: u8 = 3;
const STORE: &str = "rooms";
const OUTBOX: &str = "outbox";
const DRAFTS: &str = "drafts";
const FILES: &str = "files";
/// How long a closed session's database stays open for writes already under way.
const CLOSE_GRACE_MS: u32 = 500;

/// One outbox record.
#[derive(serde::Serialize, serde::Deserialize)]
struct OutboxRecord {
    slug: String,
    pending: Pending,
}

/// An open cache database: one user's.
#[derive(Clone)]
pub struct Cache {
    user_id: Rc<str>,
    db: Rc<Database>,
}

thread_local! {
    static OPEN: std::cell::RefCell<Option<Cache>> = const { std::cell::RefCell::new(None) };
}

fn db_name(user_id: &str) -> String {
    format!("{DB_PREFIX}{user_id}")
}

impl Cache {
    /// Opens `user_id`'s cache (once per page and user), or `None` when IndexedDB is
    /// unavailable. Another user's database open in this page is closed first.
    pub async fn open(user_id: &str) -> Option<Cache> {
        if let Some(cache) = OPEN.with(|c| c.borrow().clone()) {
            if *cache.user_id == *user_id {
                return Some(cache);
            }
            Self::close();
        }
        let opened = Database::open(&db_name(user_id))
            .with_version(DB_VERSION)
            .with_on_upgrade_needed(|_event, db| {
                for name in [STORE, OUTBOX, DRAFTS, FILES] {
                    if !db.object_store_names().any(|n| n == name) {
                        db.create_object_store(name).build()?;
                    }
                }
                Ok(())
            })
            .await;
        match opened {
            Ok(db) => {
                // Only once this user's database is open, so the two requests never race on an
                // origin's first use of IndexedDB (a room once waited forever for its open in a
                // fresh Chromium profile while both were in flight).
                delete_in_background(LEGACY_DB);
                let cache = Cache {
                    user_id: user_id.into(),
                    db: Rc::new(db),
                };
                OPEN.with(|c| *c.borrow_mut() = Some(cache.clone()));
                Some(cache)
            }
            Err(e) => {
                warn(&format!("offline cache unavailable: {e}"));
                None
            }
        }
    }

    /// Closes the database this page has open, if any: the session it belonged to has ended.
    /// The connection closes after [`CLOSE_GRACE_MS`], so the writes a closing room page has
    /// just started (its outbox above all) still land; nothing reopens it but [`Cache::open`].
    pub fn close() {
        if let Some(cache) = OPEN.with(|c| c.borrow_mut().take()) {
            // Closing a clone closes the one connection every holder of this `Cache` shares.
            let db = Database::clone(&cache.db);
            Timeout::new(CLOSE_GRACE_MS, move || db.close()).forget();
        }
    }

    /// Deletes `user_id`'s cache and outbox (they signed out). The deletion completes once no
    /// page has the database open: this page's connection is closed here, and other tabs
    /// close theirs when their sockets end with the session.
    pub fn forget(user_id: &str) {
        if OPEN.with(|c| c.borrow().as_ref().is_some_and(|c| *c.user_id == *user_id)) {
            Self::close();
        }
        delete_in_background(&db_name(user_id));
    }

    /// The cached state of a room with every unconfirmed mutation for it, if any.
    pub async fn load(&self, slug: &str) -> Option<CachedRoom> {
        let result: indexed_db_futures::Result<(Option<String>, Vec<String>)> = async {
            let tx = self.db.transaction([STORE, OUTBOX]).build()?;
            let room: Option<String> = tx.object_store(STORE)?.get(slug).primitive()?.await?;
            let outbox = tx
                .object_store(OUTBOX)?
                .get_all::<String>()
                .primitive()?
                .await?
                .collect::<indexed_db_futures::Result<Vec<String>>>()?;
            Ok((room, outbox))
        }
        .await;
        let (room, outbox) = match result {
            Ok(found) => found,
            Err(e) => {
                warn(&format!("reading the cache failed: {e}"));
                return None;
            }
        };
        let mut cached: CachedRoom = match room {
            Some(json) => serde_json::from_str(&json)
                .map_err(|e| warn(&format!("ignoring unreadable cache for {slug}: {e}")))
                .unwrap_or_default(),
            None => CachedRoom::default(),
        };
        for json in outbox {
            match serde_json::from_str::<OutboxRecord>(&json) {
                Ok(record) if record.slug == slug => {
                    if !cached
                        .outbox
                        .iter()
                        .any(|p| p.client_id == record.pending.client_id)
                    {
                        cached.outbox.push(record.pending);
                    }
                }
                Ok(_) => {}
                Err(e) => warn(&format!("ignoring an unreadable outbox record: {e}")),
            }
        }
        cached.outbox.sort_by_key(|p| p.created_at);
        let empty = cached.messages.is_empty() && cached.outbox.is_empty() && cached.head.is_none();
        (!empty).then_some(cached)
    }

    /// Stores a room's state: the room record is replaced; the outbox records of `room` are
    /// written and those in `confirmed` (seen stored or discarded by this tab) deleted.
    pub async fn save(&self, slug: &str, room: &CachedRoom, confirmed: &[String]) {
        let outbox: Vec<(String, String)> = room
            .outbox
            .iter()
            .filter_map(|pending| {
                let record = OutboxRecord {
                    slug: slug.to_owned(),
                    pending: pending.clone(),
                };
                Some((
                    pending.client_id.clone(),
                    serde_json::to_string(&record).ok()?,
                ))
            })
            .collect();
        let Ok(json) = serde_json::to_string(&CachedRoom {
            outbox: Vec::new(),
            ..room.clone()
        }) else {
            return;
        };
        let result: indexed_db_futures::Result<()> = async {
            let tx = self
                .db
                .transaction([STORE, OUTBOX])
                .with_mode(TransactionMode::Readwrite)
                .build()?;
            tx.object_store(STORE)?
                .put(json)
                .with_key(slug)
                .primitive()?;
            let store = tx.object_store(OUTBOX)?;
            for (client_id, record) in outbox {
                store.put(record).with_key(client_id).primitive()?;
            }
            for client_id in confirmed {
                store.delete(client_id.as_str()).primitive()?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            warn(&format!("writing the cache failed: {e}"));
        }
    }
}

/// Messages with files (see the module's documentation). Every write names both stores, so
/// IndexedDB runs them one after another in the order they were made.
impl Cache {
    /// Every draft of this user, as JSON (the caller keeps its room's).
    pub async fn drafts(&self) -> Vec<String> {
        let result: indexed_db_futures::Result<Vec<String>> = async {
            let tx = self.db.transaction(DRAFTS).build()?;
            tx.object_store(DRAFTS)?
                .get_all::<String>()
                .primitive()?
                .await?
                .collect()
        }
        .await;
        result.unwrap_or_else(|e| {
            warn(&format!("reading the drafts failed: {e}"));
            Vec::new()
        })
    }

    /// An attached file's bytes, as kept when it was attached.
    pub async fn file(&self, upload_id: &str) -> Option<web_sys::Blob> {
        use wasm_bindgen::JsCast;
        let result: indexed_db_futures::Result<Option<wasm_bindgen::JsValue>> = async {
            let tx = self.db.transaction(FILES).build()?;
            tx.object_store(FILES)?.get(upload_id).primitive()?.await
        }
        .await;
        match result {
            Ok(found) => found.and_then(|v| v.dyn_into().ok()),
            Err(e) => {
                warn(&format!("reading an attached file failed: {e}"));
                None
            }
        }
    }

    /// Writes a draft, and the bytes of files newly attached to it.
    pub async fn save_draft(
        &self,
        client_id: &str,
        json: String,
        files: &[(String, web_sys::Blob)],
    ) {
        let result: indexed_db_futures::Result<()> = async {
            let tx = self.write_drafts()?;
            tx.object_store(DRAFTS)?
                .put(json)
                .with_key(client_id)
                .primitive()?;
            let store = tx.object_store(FILES)?;
            for (upload_id, blob) in files {
                store
                    .put(wasm_bindgen::JsValue::from(blob.clone()))
                    .with_key(upload_id.as_str())
                    .primitive()?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            warn(&format!("keeping a draft failed: {e}"));
        }
    }

    /// Forgets files (cancelled), and their draft when it is given (nothing left of it).
    pub async fn drop_files(&self, client_id: Option<&str>, upload_ids: &[String]) {
        let result: indexed_db_futures::Result<()> = async {
            let tx = self.write_drafts()?;
            if let Some(client_id) = client_id {
                tx.object_store(DRAFTS)?.delete(client_id).primitive()?;
            }
            let store = tx.object_store(FILES)?;
            for upload_id in upload_ids {
                store.delete(upload_id.as_str()).primitive()?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            warn(&format!("forgetting a draft failed: {e}"));
        }
    }

    /// A draft whose files are all stored becomes an outbox record of room `slug`, and leaves
    /// the drafts with its files, in one transaction.
    pub async fn finish_draft(&self, slug: &str, pending: &Pending, upload_ids: &[String]) {
        let Ok(record) = serde_json::to_string(&OutboxRecord {
            slug: slug.to_owned(),
            pending: pending.clone(),
        }) else {
            return;
        };
        let result: indexed_db_futures::Result<()> = async {
            let tx = self
                .db
                .transaction([OUTBOX, DRAFTS, FILES])
                .with_mode(TransactionMode::Readwrite)
                .build()?;
            tx.object_store(OUTBOX)?
                .put(record)
                .with_key(pending.client_id.as_str())
                .primitive()?;
            tx.object_store(DRAFTS)?
                .delete(pending.client_id.as_str())
                .primitive()?;
            let store = tx.object_store(FILES)?;
            for upload_id in upload_ids {
                store.delete(upload_id.as_str()).primitive()?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            warn(&format!("moving a draft to the outbox failed: {e}"));
        }
    }

    fn write_drafts(
        &self,
    ) -> indexed_db_futures::Result<indexed_db_futures::transaction::Transaction<'_>> {
        self.db
            .transaction([DRAFTS, FILES])
            .with_mode(TransactionMode::Readwrite)
            .build()
    }
}

/// Asks the browser to delete a database; a failure is logged, a deletion blocked by another
/// tab's open connection completes when that tab closes it.
fn delete_in_background(name: &str) {
    // The request is made now, so that an open of the same name made after this call waits for
    // the deletion (IndexedDB runs requests for one name in order); only its outcome is awaited.
    let request = match Database::delete_by_name(name) {
        Ok(request) => request,
        Err(e) => return warn(&format!("deleting the offline cache {name} failed: {e}")),
    };
    let name = name.to_owned();
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = request.await {
            warn(&format!("deleting the offline cache {name} failed: {e}"));
        }
    });
}
