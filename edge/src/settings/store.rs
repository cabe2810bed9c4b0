//! Settings saved on the admin page: their D1 rows (sealed, see `super::crypto`) and this
//! isolate's copy of them, which every read of a setting consults (`crate::config::string`:
//! the stored value, else the environment's).
//!
//! The copy is reloaded at most every [`CACHE_MS`] (30 s), when a request (or a room about to
//! ask the assistant) calls [`refresh`]: a saved value takes effect everywhere within that time,
//! without a redeploy, at the cost of one D1 read per isolate per 30 s. Without `SETTINGS_KEY`
//! nothing can have been stored, so nothing is read at all.

use std::cell::RefCell;
use std::collections::HashMap;

use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{console_error, D1Database, D1PreparedStatement, Env};

use super::crypto;

/// The D1 binding (`crate::directory::BINDING`; named again here so this module stays a leaf
/// that `crate::config` can read from without an import cycle).
const BINDING: &str = "DB";

/// How long a loaded copy is used before it is read again.
pub const CACHE_MS: i64 = 30_000;

/// The row that keeps the session key a save replaced, until its `expires_at`. Not a setting of
/// the page: only `config::session_keys` reads it.
pub const RETIRED_SESSION_KEY: &str = "SESSION_SECRET_PREVIOUS";

/// The page's session key.
pub const SESSION_KEY: &str = "SESSION_SECRET";

/// A session key saved on the settings page, and the one it replaced (see
/// `crate::config::with_stored_key`, which combines them with the environment's keys).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredSessionKey {
    /// The saved key, and from when it signs (ms since the epoch): until then it only verifies,
    /// so a cookie it signs is never shown to an instance that has not read it yet.
    pub current: Option<(String, i64)>,
    /// The key a save replaced (or cleared), while it still verifies (its grace period).
    pub retired: Option<(String, i64)>,
}

/// The environment's non-empty secret or var (as `crate::config::env_string` reads it; kept
/// here too so this module depends on nothing that reads settings).
fn environment(env: &Env, name: &str) -> Option<String> {
    env.secret(name)
        .map(|s| s.to_string())
        .or_else(|_| env.var(name).map(|v| v.to_string()))
        .ok()
        .filter(|s| !s.is_empty())
}

/// One stored value, opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The value.
    pub value: String,
    /// When it was saved (ms since the epoch).
    pub updated_at: i64,
    /// Who saved it (a display name).
    pub updated_by: String,
    /// When it stops counting (the retired session key only).
    pub expires_at: Option<i64>,
}

/// Everything stored, as one read found it.
#[derive(Debug, Clone, Default)]
pub struct Loaded {
    /// By setting name (and [`RETIRED_SESSION_KEY`]), the values that opened.
    pub values: HashMap<String, Stored>,
    /// Rows that did not open with this `SETTINGS_KEY` (another key, or moved between
    /// settings): they count as not stored.
    pub unreadable: Vec<String>,
}

impl Loaded {
    /// The session key saved on the page and the one it replaced (while it still verifies).
    pub fn session_key(&self, now: i64, delay_ms: i64) -> StoredSessionKey {
        StoredSessionKey {
            current: self
                .values
                .get(SESSION_KEY)
                .map(|s| (s.value.clone(), s.updated_at + delay_ms)),
            retired: self
                .values
                .get(RETIRED_SESSION_KEY)
                .and_then(|s| Some((s.value.clone(), s.expires_at?)))
                .filter(|(_, until)| now < *until),
        }
    }
}

/// What `SETTINGS_KEY` is.
pub enum KeyState {
    /// Not set: the page cannot save, and nothing stored is read.
    Missing,
    /// Set but unusable (why).
    Invalid(String),
    /// 32 bytes.
    Ready([u8; crypto::KEY_BYTES]),
}

/// Reads `SETTINGS_KEY` from the environment only: the key that seals the stored values is
/// never itself a stored value.
pub fn settings_key(env: &Env) -> KeyState {
    match environment(env, "SETTINGS_KEY") {
        None => KeyState::Missing,
        Some(text) => match crypto::parse_key(&text) {
            Ok(key) => KeyState::Ready(key),
            Err(reason) => KeyState::Invalid(reason),
        },
    }
}

/// How long a copy is kept: [`CACHE_MS`], or less with the dev-only `SETTINGS_TEST_CACHE_MS`
/// (the tests see a saved value reach a room without waiting 30 s). It is read outside any
/// request (a room asking the assistant), so unlike other test switches it cannot ask whether
/// the request is to localhost; it can only make the copy shorter-lived (more D1 reads), never
/// longer, and the deploy check refuses it in production.
pub fn cache_ms(env: &Env) -> i64 {
    environment(env, "SETTINGS_TEST_CACHE_MS")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .map_or(CACHE_MS, |ms| ms.clamp(0, CACHE_MS))
}

#[derive(Default)]
struct Cache {
    loaded_at: Option<i64>,
    ttl: i64,
    loaded: Loaded,
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// Reloads this isolate's copy if it is older than the cache time. A failed read keeps the
/// previous copy (and is not retried before the cache time: D1 being down must not cost every
/// request a failed query); an invalid `SETTINGS_KEY` is logged and leaves only the
/// environment's values.
pub async fn refresh(env: &Env) {
    let now = crate::time::now();
    let ttl = cache_ms(env);
    let fresh = CACHE.with(|c| {
        let c = c.borrow();
        c.loaded_at.is_some_and(|at| now - at < ttl && now >= at)
    });
    if fresh {
        return;
    }
    let loaded = match settings_key(env) {
        KeyState::Missing => Ok(Loaded::default()),
        KeyState::Invalid(reason) => {
            console_error!("settings: stored values are ignored: {reason}");
            Ok(Loaded::default())
        }
        KeyState::Ready(raw) => match crypto::import(&raw).await {
            Ok(key) => load(env, &key).await.map_err(|e| e.to_string()),
            Err(e) => Err(format!("SETTINGS_KEY does not import: {e}")),
        },
    };
    CACHE.with(|c| {
        let mut c = c.borrow_mut();
        match loaded {
            Ok(loaded) => c.loaded = loaded,
            Err(e) => console_error!("settings: could not read the stored values: {e}"),
        }
        c.loaded_at = Some(now);
        c.ttl = ttl;
    });
}

/// Forgets this isolate's copy, so the next request reads what was just saved.
pub fn invalidate() {
    CACHE.with(|c| c.borrow_mut().loaded_at = None);
}

/// The stored value of a setting the page offers, from this isolate's copy.
pub fn stored(name: &str) -> Option<String> {
    // Only the page's settings: the retired session key is not a setting anyone reads.
    shared::settings::find(name)?;
    CACHE.with(|c| c.borrow().loaded.values.get(name).map(|s| s.value.clone()))
}

/// The stored session keys from this isolate's copy. A new key starts signing one cache time
/// after it was saved: by then every isolate has read it and accepts cookies it signs.
pub fn session_key(now: i64) -> StoredSessionKey {
    CACHE.with(|c| {
        let c = c.borrow();
        c.loaded.session_key(now, c.ttl.max(0))
    })
}

fn db(env: &Env) -> worker::Result<D1Database> {
    env.d1(BINDING)
}

#[derive(Deserialize)]
struct Row {
    name: String,
    value: String,
    updated_at: f64,
    updated_by: String,
    expires_at: Option<f64>,
}

/// Reads and opens every stored value (expired ones and names this build does not know are
/// left out).
pub async fn load(env: &Env, key: &web_sys::CryptoKey) -> worker::Result<Loaded> {
    let rows: Vec<Row> = db(env)?
        .prepare("SELECT name, value, updated_at, updated_by, expires_at FROM settings")
        .all()
        .await?
        .results()?;
    let now = crate::time::now();
    let mut loaded = Loaded::default();
    for row in rows {
        let known = row.name == RETIRED_SESSION_KEY || shared::settings::find(&row.name).is_some();
        let expired = row.expires_at.is_some_and(|at| at as i64 <= now);
        if !known || expired {
            continue;
        }
        match crypto::open(key, &row.name, &row.value).await {
            Some(value) => {
                loaded.values.insert(
                    row.name,
                    Stored {
                        value,
                        updated_at: row.updated_at as i64,
                        updated_by: row.updated_by,
                        expires_at: row.expires_at.map(|at| at as i64),
                    },
                );
            }
            None => {
                // Only the name: the row's bytes say nothing useful and the log is not secret.
                console_error!(
                    "settings: the stored {} does not open with this SETTINGS_KEY; the \
                     environment's value applies",
                    row.name
                );
                loaded.unreadable.push(row.name);
            }
        }
    }
    Ok(loaded)
}

/// A statement that stores a sealed value (replacing any), expiring at `expires_at` if given.
pub fn put(
    env: &Env,
    name: &str,
    sealed: &str,
    at: i64,
    by: &str,
    expires_at: Option<i64>,
) -> worker::Result<D1PreparedStatement> {
    db(env)?
        .prepare(
            "INSERT INTO settings (name, value, updated_at, updated_by, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value,
                 updated_at = excluded.updated_at, updated_by = excluded.updated_by,
                 expires_at = excluded.expires_at",
        )
        .bind(&[
            JsValue::from(name),
            JsValue::from(sealed),
            JsValue::from(at as f64),
            JsValue::from(by),
            expires_at.map_or(JsValue::NULL, |e| JsValue::from(e as f64)),
        ])
}

/// A statement that removes a stored value.
pub fn delete(env: &Env, name: &str) -> worker::Result<D1PreparedStatement> {
    db(env)?
        .prepare("DELETE FROM settings WHERE name = ?1")
        .bind(&[JsValue::from(name)])
}

/// Runs statements as one transaction (a session key and the key it retires change together).
pub async fn write(env: &Env, statements: Vec<D1PreparedStatement>) -> worker::Result<()> {
    db(env)?.batch(statements).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(value: &str, at: i64, expires_at: Option<i64>) -> Stored {
        Stored {
            value: value.into(),
            updated_at: at,
            updated_by: "Root".into(),
            expires_at,
        }
    }

    #[test]
    fn a_saved_session_key_signs_one_cache_time_after_its_save_and_the_retired_one_expires() {
        let mut loaded = Loaded::default();
        loaded
            .values
            .insert(SESSION_KEY.into(), stored("new", 1_000, None));
        loaded.values.insert(
            RETIRED_SESSION_KEY.into(),
            stored("old", 1_000, Some(9_000)),
        );
        let keys = loaded.session_key(2_000, 500);
        assert_eq!(keys.current, Some(("new".into(), 1_500)));
        assert_eq!(keys.retired, Some(("old".into(), 9_000)));
        assert_eq!(loaded.session_key(9_000, 500).retired, None, "expired");
        assert_eq!(
            Loaded::default().session_key(0, 500),
            StoredSessionKey::default()
        );
    }
}
