//! Who a request is. [`current`] is the one function every route asks: a signed-in account
//! (a D1 session behind the `__Host-dc_sid` cookie, see `auth::sessions`) if there is one, else
//! a guest (a display name bound to a random user id in a signed, HttpOnly cookie).
//!
//! The guest cookie is `__Host-dc_session` over HTTPS (like the account's `__Host-dc_sid`: set
//! only by this origin, `Secure`, for `/`, so a sibling subdomain or a plain-HTTP response
//! cannot plant one) and `dc_session` on a plain-HTTP dev server. It lasts 30 days from its
//! creation (`auth::guests`), and carries a random session id that signing out revokes.
//!
//! A guest id that has since become an account no longer acts as a guest: that person signs in.

use shared::error::{ChatError, ErrorCode};
use worker::{console_error, Date, Env, Request};

use crate::auth::{guests, sessions};
use crate::config::{self, SessionKeys};
use crate::cookies;

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
    /// Until when this identity holds without asking again (ms since the epoch): the
    /// session's idle or absolute expiry, a guest cookie's expiry.
    pub valid_until: i64,
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
            valid_until: active.valid_until,
        }));
    }
    let Some(guest) = cookies::guest(req, keys, now, guests::lifetime_seconds(env)) else {
        return Ok(None);
    };
    let standing = guests::standing(env, &guest.uid, &guest.sid)
        .await
        .map_err(internal)?;
    if standing.account || standing.revoked {
        return Ok(None);
    }
    let valid_until = guest.expires_at(guests::lifetime_seconds(env));
    Ok(Some(SessionUser {
        user_id: guest.uid,
        name: guest.name,
        session_id: None,
        role: None,
        valid_until,
    }))
}

/// A digest of the cookies that decide who a request is (the account's session cookie and the
/// guest cookie, present or not), `None` when it has neither. Computed without I/O or
/// verification: it names a browser's identity for a room that saw the same cookies verified
/// moments ago (`rooms::contract::Reconnect`), and any change to either cookie (a sign-in, a
/// guest's rename) changes it.
pub fn credential(req: &Request) -> Option<String> {
    use sha2::{Digest, Sha256};
    let header = req.headers().get("Cookie").ok().flatten()?;
    let account = cookies::cookie_value(&header, sessions::COOKIE);
    let guest = cookies::cookie_value(&header, cookies::cookie_name(crate::http::is_https(req)));
    if account.is_none() && guest.is_none() {
        return None;
    }
    let mut digest = Sha256::new();
    for value in [account, guest] {
        // Length-prefixed, so no pair of values reads as another.
        let value = value.unwrap_or_default();
        digest.update((value.len() as u64).to_le_bytes());
        digest.update(value.as_bytes());
    }
    Some(
        digest
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    )
}
