//! Guest sessions: a display name bound to a random user id in a signed, HttpOnly cookie.
//!
//! This is the one module that knows how a request proves who it is; real login (the identity
//! issue) replaces what is inside it without touching its callers.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::config::SessionKeys;

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
