//! The offline cache in IndexedDB: the `rooms` store keeps each room's messages and cursor (a
//! [`CachedRoom`] as JSON, keyed by slug; last writer wins, which is fine for a cache), and the
//! `outbox` store keeps every unconfirmed mutation as its own record keyed by client id. Two
//! tabs of the same room therefore never overwrite each other's unsent messages: each adds its
//! own and deletes only those it saw confirmed (the room de-duplicates a mutation both send).
//! Every failure degrades to "no cache" (private browsing, storage quota, a blocked upgrade):
//! the app still works, only without offline history.

use std::rc::Rc;

use indexed_db_futures::database::Database;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use shared::client::{CachedRoom, Pending};

use crate::web::warn;

const DB_NAME: &str = "durable-chat";
const DB_VERSION: u8 = 2;
const STORE: &str = "rooms";
const OUTBOX: &str = "outbox";

/// One outbox record.
#[derive(serde::Serialize, serde::Deserialize)]
struct OutboxRecord {
    slug: String,
    pending: Pending,
}

/// An open cache database.
#[derive(Clone)]
pub struct Cache {
    db: Rc<Database>,
}

thread_local! {
    static OPEN: std::cell::RefCell<Option<Cache>> = const { std::cell::RefCell::new(None) };
}

impl Cache {
    /// Opens the cache (once per page), or `None` when IndexedDB is unavailable.
    pub async fn open() -> Option<Cache> {
        if let Some(cache) = OPEN.with(|c| c.borrow().clone()) {
            return Some(cache);
        }
        let opened = Database::open(DB_NAME)
            .with_version(DB_VERSION)
            .with_on_upgrade_needed(|_event, db| {
                for name in [STORE, OUTBOX] {
                    if !db.object_store_names().any(|n| n == name) {
                        db.create_object_store(name).build()?;
                    }
                }
                Ok(())
            })
            .await;
        match opened {
            Ok(db) => {
                let cache = Cache { db: Rc::new(db) };
                OPEN.with(|c| *c.borrow_mut() = Some(cache.clone()));
                Some(cache)
            }
            Err(e) => {
                warn(&format!("offline cache unavailable: {e}"));
                None
            }
        }
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
