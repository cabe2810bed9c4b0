//! [`LogKv`] over the Workers KV binding `LOGS`.

use shared::logs::{KeyMeta, KEY_PREFIX};
use worker::kv::KvStore;

use crate::store::{Listed, Listing, LogKv, StoreError};

/// KV's bulk read takes at most 100 keys.
const BULK_MAX: usize = 100;

/// The `LOGS` namespace.
pub(crate) struct WorkersKv(pub KvStore);

fn failed(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError(format!("KV {what}: {e}"))
}

impl LogKv for WorkersKv {
    async fn list(&self, cursor: Option<&str>, limit: usize) -> Result<Listing, StoreError> {
        let mut listing = self
            .0
            .list()
            .prefix(KEY_PREFIX.to_string())
            .limit(limit.clamp(1, 1000) as u64);
        if let Some(cursor) = cursor {
            listing = listing.cursor(cursor.to_string());
        }
        let response = listing.execute().await.map_err(|e| failed("list", e))?;
        let keys = response
            .keys
            .into_iter()
            .map(|key| Listed {
                meta: key
                    .metadata
                    .and_then(|m| serde_json::from_value::<KeyMeta>(m).ok()),
                name: key.name,
            })
            .collect();
        Ok(Listing {
            keys,
            cursor: response.cursor.filter(|_| !response.list_complete),
        })
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<String>>, StoreError> {
        let mut values = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BULK_MAX) {
            let mut found = self
                .0
                .get_bulk(chunk)
                .text()
                .await
                .map_err(|e| failed("get", e))?;
            values.extend(chunk.iter().map(|key| found.remove(key).flatten()));
        }
        Ok(values)
    }

    async fn put(
        &self,
        key: &str,
        value: &str,
        meta: &KeyMeta,
        ttl_seconds: u64,
    ) -> Result<(), StoreError> {
        self.0
            .put(key, value)
            .map_err(|e| failed("put", e))?
            .metadata(meta)
            .map_err(|e| failed("put", e))?
            .expiration_ttl(ttl_seconds)
            .execute()
            .await
            .map_err(|e| failed("put", e))
    }
}
