//! The offline cache: one IndexedDB object store keyed by room slug, each value a
//! [`CachedRoom`] as a JSON string. Every failure degrades to "no cache" (private browsing,
//! storage quota, a blocked upgrade): the app still works, only without offline history.

use std::rc::Rc;

use indexed_db_futures::database::Database;
use indexed_db_futures::prelude::*;
use indexed_db_futures::transaction::TransactionMode;
use shared::client::CachedRoom;

use crate::web::warn;

const DB_NAME: &str = "durable-chat";
const DB_VERSION: u8 = 1;
const STORE: &str = "rooms";

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
                if !db.object_store_names().any(|name| name == STORE) {
                    db.create_object_store(STORE).build()?;
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

    /// The cached state of a room, if any.
    pub async fn load(&self, slug: &str) -> Option<CachedRoom> {
        let result: indexed_db_futures::Result<Option<String>> = async {
            let tx = self.db.transaction(STORE).build()?;
            let store = tx.object_store(STORE)?;
            let value: Option<String> = store.get(slug).primitive()?.await?;
            Ok(value)
        }
        .await;
        match result {
            Ok(Some(json)) => serde_json::from_str(&json)
                .map_err(|e| warn(&format!("ignoring unreadable cache for {slug}: {e}")))
                .ok(),
            Ok(None) => None,
            Err(e) => {
                warn(&format!("reading the cache failed: {e}"));
                None
            }
        }
    }

    /// Stores a room's state, replacing what was there.
    pub async fn save(&self, slug: &str, room: &CachedRoom) {
        let Ok(json) = serde_json::to_string(room) else {
            return;
        };
        let result: indexed_db_futures::Result<()> = async {
            let tx = self
                .db
                .transaction(STORE)
                .with_mode(TransactionMode::Readwrite)
                .build()?;
            let store = tx.object_store(STORE)?;
            store.put(json).with_key(slug).primitive()?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            warn(&format!("writing the cache failed: {e}"));
        }
    }
}
