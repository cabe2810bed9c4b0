//! The signed cookies: the guest session's value (a display name bound to a random user id,
//! HMAC-SHA256 signed, with its creation time and a revocable session id), the sealed values
//! other cookies carry (`seal`/`open`, bound to a purpose), and reading and writing `Cookie`
//! headers. No lookups: who a request is, with D1's sessions, accounts and revocations, is
//! `crate::session`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use worker::Request;

use crate::config::SessionKeys;

/// The guest session in a request's cookie (signature and age checked; not whether it has
/// become an account or was revoked). Over HTTPS only the `__Host-` cookie counts.
pub fn guest(
    req: &Request,
    keys: &SessionKeys,
    now_ms: i64,
    max_age_seconds: i64,
) -> Option<Session> {
    let cookies = req
        .headers()
        .get("Cookie")
        .ok()
        .flatten()
        .unwrap_or_default();
    cookie_value(&cookies, cookie_name(crate::http::is_https(req)))
        .and_then(|value| decode(value, keys, now_ms, max_age_seconds))
}

/// The guest cookie's name on a plain-HTTP dev server.
pub const COOKIE: &str = "dc_session";
/// The guest cookie's name over HTTPS.
pub const SECURE_COOKIE: &str = "__Host-dc_session";
const FORMAT: &str = "v1";

/// The guest cookie's name: `__Host-` needs `Secure`, which a browser refuses on plain HTTP
/// (except localhost, where the dev server's tests are not browsers).
pub fn cookie_name(secure: bool) -> &'static str {
    if secure {
        SECURE_COOKIE
    } else {
        COOKIE
    }
}

/// Who a request is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Stable user id.
    pub uid: String,
    /// Display name.
    pub name: String,
    /// When the session began (ms since the epoch); a rename keeps it, so the lifetime holds.
    pub iat: i64,
    /// The guest session's random id, which signing out revokes. Empty in cookies issued
    /// before sessions had ids (they still expire 30 days after `iat`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sid: String,
}

impl Session {
    /// When its cookie expires (ms since the epoch).
    pub fn expires_at(&self, max_age_seconds: i64) -> i64 {
        self.iat + max_age_seconds * 1000
    }

    /// The cookie's `Max-Age` at `now_ms`: what is left of its lifetime.
    pub fn remaining_seconds(&self, max_age_seconds: i64, now_ms: i64) -> i64 {
        ((self.expires_at(max_age_seconds) - now_ms) / 1000).clamp(0, max_age_seconds)
    }
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
pub fn decode(
    value: &str,
    keys: &SessionKeys,
    now_ms: i64,
    max_age_seconds: i64,
) -> Option<Session> {
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
    (0..max_age_seconds * 1000)
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

/// A `Set-Cookie` header value for `max_age_seconds`. Over https it is the `__Host-` cookie,
/// `Secure` (plain http is only a dev server: browsers treat http://localhost as secure, but
/// other local hosts are not).
pub fn set_cookie(value: &str, secure: bool, max_age_seconds: i64) -> String {
    format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_seconds}{}",
        cookie_name(secure),
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` header values that remove the guest cookie (over https also the unprefixed
/// one earlier versions set).
pub fn clear_cookies(secure: bool) -> Vec<String> {
    let mut cleared = vec![format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )];
    if secure {
        cleared.push(format!(
            "{SECURE_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0; Secure"
        ));
    }
    cleared
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

    const DAY: i64 = 24 * 60 * 60;
    const LIFETIME: i64 = 30 * DAY;

    fn session() -> Session {
        Session {
            uid: "u1".into(),
            name: "Ann".into(),
            iat: 1_000,
            sid: "s1".into(),
        }
    }

    #[test]
    fn a_signed_cookie_decodes_to_its_session() {
        let k = keys("k".repeat(32).as_str(), None);
        let cookie = encode(&session(), &k);
        assert_eq!(decode(&cookie, &k, 2_000, LIFETIME), Some(session()));
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
            decode(
                &format!("v1.{forged_payload}.{signature}"),
                &k,
                2_000,
                LIFETIME
            ),
            None
        );
        assert_eq!(
            decode(&cookie, &keys(&"x".repeat(32), None), 2_000, LIFETIME),
            None
        );
        assert_eq!(decode("garbage", &k, 2_000, LIFETIME), None);
        assert_eq!(
            decode(&format!("{cookie}.extra"), &k, 2_000, LIFETIME),
            None
        );
    }

    #[test]
    fn the_previous_key_still_verifies_during_a_rotation() {
        let old = keys(&"o".repeat(32), None);
        let cookie = encode(&session(), &old);
        let rotated = keys(&"n".repeat(32), Some(&"o".repeat(32)));
        assert_eq!(decode(&cookie, &rotated, 2_000, LIFETIME), Some(session()));
    }

    #[test]
    fn an_expired_session_is_refused() {
        let k = keys(&"k".repeat(32), None);
        let cookie = encode(&session(), &k);
        assert_eq!(decode(&cookie, &k, 1_000 + LIFETIME * 1000, LIFETIME), None);
        assert!(decode(&cookie, &k, 1_000 + LIFETIME * 1000 - 1, LIFETIME).is_some());
        // A cookie from before session ids still decodes, within the same lifetime.
        let legacy = Session {
            sid: String::new(),
            ..session()
        };
        let cookie = encode(&legacy, &k);
        assert!(!cookie.contains("sid"));
        assert_eq!(decode(&cookie, &k, 2_000, LIFETIME), Some(legacy));
        assert_eq!(
            decode(&cookie, &k, 1_000 + 365 * DAY * 1000, LIFETIME),
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
        let header = set_cookie("v", true, LIFETIME);
        assert!(header.contains("HttpOnly"));
        assert!(header.contains("SameSite=Lax"));
        assert!(header.contains("Secure"));
        assert!(!set_cookie("v", false, LIFETIME).contains("Secure"));
    }

    #[test]
    fn over_https_the_guest_cookie_is_host_prefixed_secure_for_the_whole_site_and_bounded() {
        let header = set_cookie("v", true, LIFETIME);
        assert!(header.starts_with("__Host-dc_session=v;"), "{header}");
        let attributes: Vec<&str> = header.split(';').map(str::trim).collect();
        for needed in ["Secure", "Path=/", "HttpOnly", "Max-Age=2592000"] {
            assert!(attributes.contains(&needed), "{needed} in {header}");
        }
        assert!(
            !attributes.iter().any(|a| a.starts_with("Domain")),
            "__Host- cookies may not name a domain"
        );
        // Plain http (the dev server) keeps the unprefixed name, which needs no Secure.
        assert!(set_cookie("v", false, LIFETIME).starts_with("dc_session=v;"));
        // Over https an unprefixed cookie (planted by a sibling subdomain) is not read.
        assert_eq!(cookie_value("dc_session=v1.a.b", cookie_name(true)), None);
        // Clearing over https removes both names.
        let cleared = clear_cookies(true);
        assert!(cleared.iter().any(|c| c.starts_with("__Host-dc_session=;")));
        assert!(cleared.iter().any(|c| c.starts_with("dc_session=;")));
    }

    #[test]
    fn a_cookies_max_age_is_what_is_left_of_its_lifetime() {
        let s = session();
        assert_eq!(s.remaining_seconds(LIFETIME, 1_000), LIFETIME);
        assert_eq!(
            s.remaining_seconds(LIFETIME, 1_000 + DAY * 1000),
            LIFETIME - DAY
        );
        assert_eq!(s.remaining_seconds(LIFETIME, 1_000 + 40 * DAY * 1000), 0);
    }
}
