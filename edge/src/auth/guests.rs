//! Guest sessions on the server side: their lifetime, and revocation.
//!
//! A guest is a signed cookie (`session.rs`), so the server keeps no row per guest; what it
//! keeps is the short list of guest sessions that were ended before their cookie expired
//! (D1 `guest_revocations`, pruned once they would have expired anyway). Signing out adds the
//! cookie's session id there, so a copy of the cookie (another tab's, or a stolen one) stops
//! working at once, not when the cookie expires, and the guest's open sockets close.

use serde::Deserialize;
use worker::wasm_bindgen::JsValue;
use worker::{Env, Request};

use shared::protocol::close;

use crate::config;
use crate::directory::BINDING;
use crate::rooms::contract::{self, CloseSockets};
/// How long a guest session lasts from its creation (renaming keeps it; it is not extended):
/// 30 days, `GUEST_SESSION_SECONDS` to change it.
pub const DEFAULT_LIFETIME_SECONDS: i64 = 30 * 24 * 60 * 60;

/// The guest session lifetime in seconds (`GUEST_SESSION_SECONDS`, for tests; else the default).
pub fn lifetime_seconds(env: &Env) -> i64 {
    config::string(env, "GUEST_SESSION_SECONDS")
        .and_then(|s| s.parse::<i64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_LIFETIME_SECONDS)
}

/// What D1 says about a guest cookie's identity.
pub struct Standing {
    /// The id has become an account: that person signs in, the guest cookie no longer acts.
    pub account: bool,
    /// The session was ended.
    pub revoked: bool,
}

/// Both checks in one query (every guest request asks).
pub async fn standing(env: &Env, user_id: &str, sid: &str) -> worker::Result<Standing> {
    #[derive(Deserialize)]
    struct Row {
        account: f64,
        revoked: f64,
    }
    let row: Option<Row> = env
        .d1(BINDING)?
        .prepare(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = ?1) AS account, \
                    EXISTS (SELECT 1 FROM guest_revocations WHERE sid = ?2) AS revoked",
        )
        .bind(&[JsValue::from(user_id), JsValue::from(sid)])?
        .first(None)
        .await?;
    Ok(row.map_or(
        Standing {
            account: false,
            revoked: false,
        },
        |r| Standing {
            account: r.account != 0.0,
            revoked: r.revoked != 0.0,
        },
    ))
}

/// Ends a guest session (`expires_at`: when its cookie would have expired, in ms), and prunes
/// the revocations that no cookie can use any more.
pub async fn revoke(
    env: &Env,
    user_id: &str,
    sid: &str,
    expires_at: i64,
    now: i64,
) -> worker::Result<()> {
    let db = env.d1(BINDING)?;
    db.batch(vec![
        db.prepare("DELETE FROM guest_revocations WHERE expires_at < ?1")
            .bind(&[JsValue::from(now as f64)])?,
        db.prepare(
            "INSERT OR IGNORE INTO guest_revocations (sid, user_id, revoked_at, expires_at) \
             VALUES (?1, ?2, ?3, ?4)",
        )
        .bind(&[
            JsValue::from(sid),
            JsValue::from(user_id),
            JsValue::from(now as f64),
            JsValue::from(expires_at as f64),
        ])?,
    ])
    .await?;
    Ok(())
}

/// Closes every open socket of a guest who signed out, in every room they joined (D1
/// `room_members`), as ending an account's session closes that session's sockets. Only for an
/// id that is still a guest's: an id that became an account is that account's, and its
/// sessions are ended one by one.
pub async fn close_sockets(env: &Env, user_id: &str, sid: &str) -> worker::Result<()> {
    if standing(env, user_id, sid).await?.account {
        return Ok(());
    }
    let request = CloseSockets {
        session_id: None,
        user_id: Some(user_id.to_owned()),
        code: close::UNAUTHORIZED,
        reason: shared::ErrorCode::Unauthorized.as_str().to_owned(),
    };
    for room in crate::directory::rooms_of(env, user_id).await? {
        contract::call(env, &room, request.clone()).await?;
    }
    Ok(())
}

/// The guest session in the request's cookie (signature and lifetime checked), for handlers
/// that renew or end it.
pub fn from_request(
    req: &Request,
    env: &Env,
    keys: &config::SessionKeys,
    now_ms: i64,
) -> Option<crate::cookies::Session> {
    crate::cookies::guest(req, keys, now_ms, lifetime_seconds(env))
}
