//! Who a request is. [`current`] is the one function every route asks: a signed-in account
//! (a D1 session behind the `__Host-dc_sid` cookie, see `auth::sessions`) if there is one, else
//! a guest (a display name bound to a random user id in a signed, HttpOnly cookie).
//!
//! A guest id that has since become an account no longer acts as a guest: that person signs in.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use shared::error::{ChatError, ErrorCode};
use worker::{console_error, Date, Env, Request};

use crate::auth::{accounts, sessions};
use crate::config::{self, SessionKeys};

/// The user behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// Stable user id (a guest's id becomes their account's id at the first sign-in).
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// The signed-in session's id (`sessions.id`); `None` for a guest.
    pub session_id: Option<String>,
    /// The account's global role (`admin` or `user`); `None` for a guest.
    pub role: Option<String>,
}

impl SessionUser {
    /// Whether this is a signed-in account.
    pub fn signed_in(&self) -> bool {
        self.session_id.is_some()
    }
}

/// Who the request is: a signed-in account, a guest, or nobody. A missing or short
/// `SESSION_SECRET` is a `config_error`; a database failure is `internal` (and logged).
pub async fn current(req: &Request, env: &Env) -> Result<Option<SessionUser>, ChatError> {
    let keys = config::session_keys(env)?;
    current_with_keys(req, env, &keys).await
}

/// [`current`] with the keys already read.
pub async fn current_with_keys(
    req: &Request,
    env: &Env,
    keys: &SessionKeys,
) -> Result<Option<SessionUser>, ChatError> {
    let internal = |e: worker::Error| {
        console_error!("session lookup failed: {e}");
        ChatError::new(
            ErrorCode::Internal,
            "Something went wrong on the server; please try again.",
        )
    };
    let now = Date::now().as_millis() as i64;
    if let Some(active) = sessions::from_request(req, env, keys, now)
        .await
        .map_err(internal)?
    {
        return Ok(Some(SessionUser {
            user_id: active.user_id,
            name: active.name,
            session_id: Some(active.id),
            role: Some(active.role),
        }));
    }
    let Some(guest) = guest(req, keys, now) else {
        return Ok(None);
    };
    if accounts::is_account(env, &guest.uid)
        .await
        .map_err(internal)?
    {
        return Ok(None);
    }
    Ok(Some(SessionUser {
        user_id: guest.uid,
        name: guest.name,
        session_id: None,
        role: None,
    }))
}

/// The guest session in a request's cookie (signature and age checked; not whether it has
/// become an account).
pub fn guest(req: &Request, keys: &SessionKeys, now_ms: i64) -> Option<Session> {
    let cookies = req
        .headers()
        .get("Cookie")
        .ok()
        .flatten()
        .unwrap_or_default();
    cookie_value(&cookies, COOKIE).and_then(|value| decode(value, keys, now_ms))
}

/// The session cookie's name.
pub const COOKIE: &str = "dc_session";
/// How long a session lasts.
pub const MAX_AGE_SECONDS: i64 = 365 * 24 * 60 * 60;
const FORMAT: &str = "v1";

/// Who a request is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Stable user id.
    pub uid: String,
    /// Display name.
    pub name: String,
    /// Issued at (ms since the epoch).
    pub iat: i64,
}

fn sign(key: &[u8], payload: &str) -> Vec<u8> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(FORMAT.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn verify(key: &[u8], payload: &str, signature: &[u8]) -> bool {
    let Ok(mut mac) = <Hmac<Sha256> as Mac>::new_from_slice(key) else {
        return false;
    };
    mac.update(FORMAT.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    mac.verify_slice(signature).is_ok() // constant-time
}

/// The cookie value for a session.
pub fn encode(session: &Session, keys: &SessionKeys) -> String {
    let json = serde_json::to_vec(session).unwrap_or_default();
    let payload = URL_SAFE_NO_PAD.encode(json);
    let signature = URL_SAFE_NO_PAD.encode(sign(&keys.current, &payload));
    format!("{FORMAT}.{payload}.{signature}")
}

/// The session in a cookie value, if it is well-formed, signed by a current or previous key,
/// and not expired.
pub fn decode(value: &str, keys: &SessionKeys, now_ms: i64) -> Option<Session> {
    let mut parts = value.split('.');
    let (Some(FORMAT), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    let signed = verify(&keys.current, payload, &signature)
        || keys
            .previous
            .as_deref()
            .is_some_and(|key| verify(key, payload, &signature));
    if !signed {
        return None;
    }
    let session: Session = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
    let age_ms = now_ms - session.iat;
    (0..=MAX_AGE_SECONDS * 1000)
        .contains(&age_ms)
        .then_some(session)
}

/// Signs `payload` (URL-safe text without dots) for one `purpose`: `payload.signature`. The
/// purpose is part of the MAC, so a value signed for one use (the OAuth state cookie) is never
/// accepted as another (a session cookie).
pub fn seal(purpose: &str, payload: &str, keys: &SessionKeys) -> String {
    let signature = URL_SAFE_NO_PAD.encode(sign(&keys.current, &format!("{purpose}:{payload}")));
    format!("{payload}.{signature}")
}

/// The payload of a value [`seal`]ed for `purpose` by the current or the previous key.
pub fn open<'a>(purpose: &str, value: &'a str, keys: &SessionKeys) -> Option<&'a str> {
    let (payload, signature) = value.rsplit_once('.')?;
    if payload.contains('.') {
        return None;
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
    let message = format!("{purpose}:{payload}");
    let signed = verify(&keys.current, &message, &signature)
        || keys
            .previous
            .as_deref()
            .is_some_and(|key| verify(key, &message, &signature));
    signed.then_some(payload)
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie_value<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then_some(value)
    })
}

/// A `Set-Cookie` header value. `Secure` when served over https (browsers treat
/// http://localhost as secure, but other local hosts are not).
pub fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={MAX_AGE_SECONDS}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A `Set-Cookie` header value that removes the session cookie.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
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

    fn session() -> Session {
        Session {
            uid: "u1".into(),
            name: "Ann".into(),
            iat: 1_000,
        }
    }

    #[test]
    fn a_signed_cookie_decodes_to_its_session() {
        let k = keys("k".repeat(32).as_str(), None);
        let cookie = encode(&session(), &k);
        assert_eq!(decode(&cookie, &k, 2_000), Some(session()));
    }

    #[test]
    fn a_tampered_payload_or_another_key_is_refused() {
        let k = keys(&"k".repeat(32), None);
        let cookie = encode(&session(), &k);
        let forged = Session {
            uid: "admin".into(),
            ..session()
        };
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let signature = cookie.rsplit('.').next().unwrap();
        assert_eq!(
            decode(&format!("v1.{forged_payload}.{signature}"), &k, 2_000),
            None
        );
        assert_eq!(decode(&cookie, &keys(&"x".repeat(32), None), 2_000), None);
        assert_eq!(decode("garbage", &k, 2_000), None);
        assert_eq!(decode(&format!("{cookie}.extra"), &k, 2_000), None);
    }

    #[test]
    fn the_previous_key_still_verifies_during_a_rotation() {
        let old = keys(&"o".repeat(32), None);
        let cookie = encode(&session(), &old);
        let rotated = keys(&"n".repeat(32), Some(&"o".repeat(32)));
        assert_eq!(decode(&cookie, &rotated, 2_000), Some(session()));
    }

    #[test]
    fn an_expired_session_is_refused() {
        let k = keys(&"k".repeat(32), None);
        let cookie = encode(&session(), &k);
        assert_eq!(
            decode(&cookie, &k, 1_000 + MAX_AGE_SECONDS * 1000 + 1),
            None
        );
    }

    #[test]
    fn a_sealed_value_opens_only_for_its_purpose_and_keys() {
        let k = keys(&"k".repeat(32), None);
        let sealed = seal("sid", "token", &k);
        assert_eq!(open("sid", &sealed, &k), Some("token"));
        assert_eq!(open("oauth", &sealed, &k), None);
        assert_eq!(open("sid", &sealed, &keys(&"x".repeat(32), None)), None);
        assert_eq!(open("sid", "token", &k), None);
        assert_eq!(open("sid", &sealed.replace("token", "tokem"), &k), None);
    }

    #[test]
    fn a_sealed_value_still_opens_after_a_key_rotation_but_not_after_two() {
        let old = keys(&"o".repeat(32), None);
        let sealed = seal("sid", "token", &old);
        let rotated = keys(&"n".repeat(32), Some(&"o".repeat(32)));
        assert_eq!(open("sid", &sealed, &rotated), Some("token"));
        let rotated_again = keys(&"m".repeat(32), Some(&"n".repeat(32)));
        assert_eq!(open("sid", &sealed, &rotated_again), None);
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let header = "a=1; dc_session_old=x; dc_session=v1.p.s";
        assert_eq!(cookie_value(header, COOKIE), Some("v1.p.s"));
        assert_eq!(cookie_value("other=1", COOKIE), None);
    }

    #[test]
    fn the_cookie_is_http_only_and_same_site_lax() {
        let header = set_cookie("v", true);
        assert!(header.contains("HttpOnly"));
        assert!(header.contains("SameSite=Lax"));
        assert!(header.contains("Secure"));
        assert!(!set_cookie("v", false).contains("Secure"));
    }
}
