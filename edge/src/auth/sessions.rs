//! Signed-in sessions: one D1 row per browser, referenced by a `__Host-` cookie that holds a
//! random token. The row's id is the token's SHA-256, so the table alone opens no session; the
//! cookie is also signed (current or previous `SESSION_SECRET`), so a forged cookie costs no
//! database read and a key rotation ends no session.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use shared::auth::{browser_label, Device};
use shared::protocol::close;
use worker::wasm_bindgen::JsValue;
use worker::{console_error, D1Database, Env, Request};

use crate::config::{self, SessionKeys};
use crate::cookies::{self, cookie_value};
use crate::directory::BINDING;
use crate::rooms::contract::{self, CloseSockets};

/// The session cookie. `__Host-`: only ever set by this origin, over a secure context, for `/`.
pub const COOKIE: &str = "__Host-dc_sid";
/// The purpose its signature is bound to.
const PURPOSE: &str = "sid";
/// Default idle expiry: a session unused this long ends.
const IDLE_MS: i64 = 14 * 24 * 60 * 60 * 1000;
/// Default absolute expiry: a session ends this long after sign-in however much it is used.
const MAX_MS: i64 = 60 * 24 * 60 * 60 * 1000;
/// `last_seen_at` is written at most this often (one D1 write a minute per active session).
const TOUCH_EVERY_MS: i64 = 60 * 1000;

/// How long sessions last: `SESSION_IDLE_SECONDS` and `SESSION_MAX_SECONDS` override the
/// defaults (tests use a short idle time to see a session expire).
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// Idle expiry, ms.
    pub idle_ms: i64,
    /// Absolute expiry, ms.
    pub max_ms: i64,
}

impl Lifetimes {
    /// From the environment.
    pub fn from_env(env: &Env) -> Lifetimes {
        let seconds = |name: &str| {
            config::string(env, name)
                .and_then(|v| v.parse::<i64>().ok())
                .filter(|v| *v > 0)
                .map(|s| s * 1000)
        };
        let max_ms = seconds("SESSION_MAX_SECONDS").unwrap_or(MAX_MS);
        Lifetimes {
            idle_ms: seconds("SESSION_IDLE_SECONDS")
                .unwrap_or(IDLE_MS)
                .min(max_ms),
            max_ms,
        }
    }
}

/// A valid session and its user.
#[derive(Debug, Clone)]
pub struct ActiveSession {
    /// The stored id (SHA-256 of the token, hex).
    pub id: String,
    /// The account.
    pub user_id: String,
    /// The account's display name.
    pub name: String,
    /// `admin` or `user`.
    pub role: String,
    /// When it ends unless used again: its idle expiry (as refreshed by this request), or its
    /// absolute one if sooner (ms since the epoch).
    pub valid_until: i64,
}

fn db(env: &Env) -> worker::Result<D1Database> {
    env.d1(BINDING)
}

/// The stored id of a cookie token.
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The token inside a signed cookie value.
pub fn token_in_cookie<'a>(value: &'a str, keys: &SessionKeys) -> Option<&'a str> {
    cookies::open(PURPOSE, value, keys)
}

/// The `Set-Cookie` value for a new session token. `__Host-` needs `Secure`, `Path=/` and no
/// `Domain`; browsers accept `Secure` cookies from http://localhost, so this is used for
/// `wrangler dev` too.
pub fn set_cookie(token: &str, keys: &SessionKeys, max_age_ms: i64) -> String {
    format!(
        "{COOKIE}={}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={}",
        cookies::seal(PURPOSE, token, keys),
        max_age_ms / 1000
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0")
}

#[derive(Deserialize)]
struct SessionRow {
    id: String,
    user_id: String,
    name: String,
    role: String,
    last_seen_at: f64,
    expires_at: f64,
    idle_expires_at: f64,
}

/// The session a request's cookie refers to, if it is signed, stored, not revoked, not expired
/// (idle or absolute) and its user is not disabled. Refreshes its idle expiry at most once a
/// minute.
pub async fn from_request(
    req: &Request,
    env: &Env,
    keys: &SessionKeys,
    now: i64,
) -> worker::Result<Option<ActiveSession>> {
    let cookies = req.headers().get("Cookie")?.unwrap_or_default();
    let Some(token) = cookie_value(&cookies, COOKIE).and_then(|v| token_in_cookie(v, keys)) else {
        return Ok(None);
    };
    let id = hash_token(token);
    let db = db(env)?;
    let row: Option<SessionRow> = db
        .prepare(
            "SELECT s.id, s.user_id, u.name, u.role, s.last_seen_at, s.expires_at,
                    s.idle_expires_at
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = ?1 AND s.revoked_at IS NULL AND s.expires_at > ?2
               AND s.idle_expires_at > ?2 AND u.disabled_at IS NULL",
        )
        .bind(&[JsValue::from(id.as_str()), JsValue::from(now as f64)])?
        .first(None)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let mut valid_until = (row.idle_expires_at as i64).min(row.expires_at as i64);
    if now - row.last_seen_at as i64 >= TOUCH_EVERY_MS {
        let idle_expires = (now + Lifetimes::from_env(env).idle_ms).min(row.expires_at as i64);
        let touched = db
            .prepare("UPDATE sessions SET last_seen_at = ?2, idle_expires_at = ?3 WHERE id = ?1")
            .bind(&[
                JsValue::from(row.id.as_str()),
                JsValue::from(now as f64),
                JsValue::from(idle_expires as f64),
            ])?
            .run()
            .await;
        // A failed touch only shortens the session; the request itself is valid.
        match touched {
            Ok(_) => valid_until = idle_expires,
            Err(e) => console_error!("could not refresh session last_seen_at: {e}"),
        }
    }
    Ok(Some(ActiveSession {
        id: row.id,
        user_id: row.user_id,
        name: row.name,
        role: row.role,
        valid_until,
    }))
}

/// Whether session `id` of `user_id` is still signed in (not revoked, not expired, the account
/// not disabled). For a link that finishes on Apple's cross-site POST, which carries no
/// session cookie: the login state names the session that started it.
pub async fn is_active(env: &Env, id: &str, user_id: &str, now: i64) -> worker::Result<bool> {
    #[derive(serde::Deserialize)]
    struct One {
        #[allow(dead_code)]
        one: f64,
    }
    let row: Option<One> = db(env)?
        .prepare(
            "SELECT 1 AS one FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = ?1 AND s.user_id = ?2 AND s.revoked_at IS NULL AND s.expires_at > ?3
               AND s.idle_expires_at > ?3 AND u.disabled_at IS NULL",
        )
        .bind(&[
            JsValue::from(id),
            JsValue::from(user_id),
            JsValue::from(now as f64),
        ])?
        .first(None)
        .await?;
    Ok(row.is_some())
}

/// A new session for `user_id` (a fresh random token at every sign-in). Returns the cookie
/// token and the absolute lifetime (the cookie's Max-Age).
pub async fn create(
    req: &Request,
    env: &Env,
    user_id: &str,
    now: i64,
) -> worker::Result<(String, i64)> {
    let lifetimes = Lifetimes::from_env(env);
    let mut bytes = [0u8; 32];
    crate::random::fill(&mut bytes);
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let user_agent = req
        .headers()
        .get("User-Agent")?
        .map(|ua| ua.chars().take(300).collect::<String>());
    let place = req.cf().and_then(|cf| {
        let country = cf.country();
        match (cf.city(), country) {
            (Some(city), Some(country)) => Some(format!("{city}, {country}")),
            (None, Some(country)) => Some(country),
            (Some(city), None) => Some(city),
            (None, None) => None,
        }
    });
    let text = |v: &Option<String>| v.as_deref().map_or(JsValue::NULL, JsValue::from);
    db(env)?
        .prepare(
            "INSERT INTO sessions (id, user_id, created_at, last_seen_at, idle_expires_at,
                                   expires_at, user_agent, place)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(&[
            JsValue::from(hash_token(&token)),
            JsValue::from(user_id),
            JsValue::from(now as f64),
            JsValue::from((now + lifetimes.idle_ms) as f64),
            JsValue::from((now + lifetimes.max_ms) as f64),
            text(&user_agent),
            text(&place),
        ])?
        .run()
        .await?;
    Ok((token, lifetimes.max_ms))
}

thread_local! {
    /// The (session, room) pairs this isolate has recorded: a row is only ever deleted when
    /// its session ends, after which the session connects nowhere, so a pair recorded once
    /// need not be written again on every reconnect and join (a D1 write on the upgrade path).
    static RECORDED_ROOMS: std::cell::RefCell<std::collections::HashSet<(String, String)>> =
        std::cell::RefCell::default();
}

/// At most this many pairs are remembered; past it the memory starts over.
const RECORDED_ROOMS_MAX: usize = 10_000;

/// Records that a session opened a socket to a room (so revoking it can close that socket).
pub async fn record_room(env: &Env, session_id: &str, room: &str) -> worker::Result<()> {
    let pair = (session_id.to_owned(), room.to_owned());
    if RECORDED_ROOMS.with(|r| r.borrow().contains(&pair)) {
        return Ok(());
    }
    db(env)?
        .prepare("INSERT OR IGNORE INTO session_rooms (session_id, room) VALUES (?1, ?2)")
        .bind(&[JsValue::from(session_id), JsValue::from(room)])?
        .run()
        .await?;
    RECORDED_ROOMS.with(|r| {
        let mut r = r.borrow_mut();
        if r.len() >= RECORDED_ROOMS_MAX {
            r.clear();
        }
        r.insert(pair);
    });
    Ok(())
}

#[derive(Deserialize)]
struct DeviceRow {
    id: String,
    created_at: f64,
    last_seen_at: f64,
    user_agent: Option<String>,
    place: Option<String>,
}

/// A user's active sessions, most recently used first.
pub async fn list(
    env: &Env,
    user_id: &str,
    current: &str,
    now: i64,
) -> worker::Result<Vec<Device>> {
    let rows: Vec<DeviceRow> = db(env)?
        .prepare(
            "SELECT id, created_at, last_seen_at, user_agent, place FROM sessions
             WHERE user_id = ?1 AND revoked_at IS NULL AND expires_at > ?2
               AND idle_expires_at > ?2
             ORDER BY last_seen_at DESC LIMIT 100",
        )
        .bind(&[JsValue::from(user_id), JsValue::from(now as f64)])?
        .all()
        .await?
        .results()?;
    Ok(rows
        .into_iter()
        .map(|row| Device {
            current: row.id == current,
            id: row.id,
            browser: browser_label(row.user_agent.as_deref().unwrap_or_default()),
            created_at: row.created_at as i64,
            last_seen_at: row.last_seen_at as i64,
            place: row.place,
        })
        .collect())
}

#[derive(Deserialize)]
struct IdRow {
    id: String,
}

#[derive(Deserialize)]
struct RoomRow {
    room: String,
}

/// Ends one of `user_id`'s sessions and closes its open sockets at once. Returns whether a
/// session was ended (false: not this user's, or already ended).
pub async fn revoke(env: &Env, user_id: &str, session_id: &str, now: i64) -> worker::Result<bool> {
    let db = db(env)?;
    let result = db
        .prepare(
            "UPDATE sessions SET revoked_at = ?3
             WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL",
        )
        .bind(&[
            JsValue::from(session_id),
            JsValue::from(user_id),
            JsValue::from(now as f64),
        ])?
        .run()
        .await?;
    let changed = result.meta()?.and_then(|m| m.changes).unwrap_or_default() > 0;
    if changed {
        close_session_sockets(env, &db, session_id).await?;
    }
    Ok(changed)
}

/// Ends every session of `user_id` except `keep`. Returns how many were ended.
pub async fn revoke_others(env: &Env, user_id: &str, keep: &str, now: i64) -> worker::Result<u32> {
    let ids: Vec<IdRow> = db(env)?
        .prepare("SELECT id FROM sessions WHERE user_id = ?1 AND id != ?2 AND revoked_at IS NULL")
        .bind(&[JsValue::from(user_id), JsValue::from(keep)])?
        .all()
        .await?
        .results()?;
    let mut revoked = 0;
    for IdRow { id } in ids {
        if revoke(env, user_id, &id, now).await? {
            revoked += 1;
        }
    }
    Ok(revoked)
}

/// Ends every session of a user and closes all of their sockets, guest ones included (for
/// disabling an account). `code` and `reason` are the close code and its error code string.
pub async fn end_all_of_user(
    env: &Env,
    user_id: &str,
    code: u16,
    reason: &str,
    now: i64,
) -> worker::Result<()> {
    let db = db(env)?;
    db.prepare("UPDATE sessions SET revoked_at = ?2 WHERE user_id = ?1 AND revoked_at IS NULL")
        .bind(&[JsValue::from(user_id), JsValue::from(now as f64)])?
        .run()
        .await?;
    let rooms: Vec<RoomRow> = db
        .prepare(
            "SELECT DISTINCT r.room FROM session_rooms r JOIN sessions s ON s.id = r.session_id
             WHERE s.user_id = ?1",
        )
        .bind(&[JsValue::from(user_id)])?
        .all()
        .await?
        .results()?;
    let request = CloseSockets {
        session_id: None,
        user_id: Some(user_id.to_owned()),
        code,
        reason: reason.to_owned(),
    };
    for RoomRow { room } in rooms {
        contract::call(env, &room, request.clone()).await?;
    }
    Ok(())
}

async fn close_session_sockets(env: &Env, db: &D1Database, session_id: &str) -> worker::Result<()> {
    let rooms: Vec<RoomRow> = db
        .prepare("SELECT room FROM session_rooms WHERE session_id = ?1")
        .bind(&[JsValue::from(session_id)])?
        .all()
        .await?
        .results()?;
    let request = CloseSockets {
        session_id: Some(session_id.to_owned()),
        user_id: None,
        code: close::UNAUTHORIZED,
        reason: shared::ErrorCode::Unauthorized.as_str().to_owned(),
    };
    for RoomRow { room } in rooms {
        contract::call(env, &room, request.clone()).await?;
    }
    db.prepare("DELETE FROM session_rooms WHERE session_id = ?1")
        .bind(&[JsValue::from(session_id)])?
        .run()
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(current: &str, previous: Option<&str>) -> SessionKeys {
        SessionKeys {
            current: current.as_bytes().to_vec(),
            previous: previous.map(|p| p.as_bytes().to_vec()),
        }
    }

    #[test]
    fn the_session_cookie_is_host_prefixed_secure_http_only_and_lax() {
        let k = keys(&"k".repeat(32), None);
        let header = set_cookie("abc", &k, 60_000);
        assert!(header.starts_with("__Host-dc_sid="), "{header}");
        for part in ["Path=/", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age=60"] {
            assert!(header.contains(part), "{header} lacks {part}");
        }
        assert!(
            !header.contains("Domain"),
            "__Host- cookies may not name a domain"
        );
        assert!(clear_cookie().contains("Max-Age=0"));
    }

    #[test]
    fn the_cookie_token_is_read_back_under_the_current_or_previous_key_only() {
        let old = keys(&"o".repeat(32), None);
        let header = set_cookie("tok", &old, 1000);
        let value = cookie_value(header.split(';').next().unwrap(), COOKIE).unwrap();
        assert_eq!(token_in_cookie(value, &old), Some("tok"));
        let rotated = keys(&"n".repeat(32), Some(&"o".repeat(32)));
        assert_eq!(token_in_cookie(value, &rotated), Some("tok"));
        assert_eq!(token_in_cookie(value, &keys(&"x".repeat(32), None)), None);
        // A guest cookie's signature is for another purpose.
        assert_eq!(token_in_cookie("tok.c2ln", &old), None);
    }

    #[test]
    fn stored_ids_are_the_sha256_of_the_token_not_the_token() {
        let id = hash_token("abc");
        assert_eq!(
            id,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_ne!(hash_token("abd"), id);
    }
}
