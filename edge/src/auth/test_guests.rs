//! `POST /api/test/guests {count, prefix}`: mints `count` guest sessions at once, for the crowd
//! bench and its tests (`e2e/src/crowd.rs`), which put thousands of distinct people in one room
//! from one address, far past what the per-address session limit (`SESSION_LIMITER`) lets
//! `POST /api/session` create.
//!
//! Test-only, like `BENCH_SEED`: honoured only when `BENCH_GUESTS=1` (never in wrangler.toml;
//! `e2e/tests/config.rs` checks) and the request came to localhost. Anything else is answered as
//! an unknown route is (404 `not_found`), so a deployed Worker shows no sign of it.
//!
//! Each guest is minted as `POST /api/session` mints a new one: a fresh random user id and
//! session id, the cookie signed by [`cookies::encode`] with the current key, for the guest
//! lifetime. Nothing is written anywhere: a guest is its signed cookie.

use serde::{Deserialize, Serialize};
use shared::error::ErrorCode;
use shared::limits;
use worker::{Env, Request};

use super::accounts;
use crate::config;
use crate::cookies::{self, Session};
use crate::http::{fail, is_https, json, read_json, ApiResult};
use crate::time::now;

/// The most guests one request mints.
pub const MAX_GUESTS: u32 = 10_000;

/// Whether the route exists for this request: `BENCH_GUESTS=1` and a request to localhost.
pub fn enabled(env: &Env, req: &Request) -> bool {
    config::string(env, "BENCH_GUESTS").as_deref() == Some("1") && super::oauth::is_loopback(req)
}

#[derive(Deserialize)]
struct MintGuests {
    /// How many (1 to [`MAX_GUESTS`]).
    count: u32,
    /// Names are `<prefix>-00000`, `<prefix>-00001`, …
    #[serde(default = "default_prefix")]
    prefix: String,
}

fn default_prefix() -> String {
    "guest".to_owned()
}

#[derive(Serialize)]
struct Minted {
    guests: Vec<MintedGuest>,
}

#[derive(Serialize)]
struct MintedGuest {
    user_id: String,
    name: String,
    /// The `Cookie` header value that is this guest (`dc_session=…`).
    cookie: String,
}

/// `POST /api/test/guests`: only routed when [`enabled`].
pub(crate) async fn mint(req: Request, env: &Env) -> ApiResult {
    let keys = config::session_keys(env)?;
    let cookie_name = cookies::cookie_name(is_https(&req));
    let body: MintGuests = read_json(req).await?;
    if body.count == 0 || body.count > MAX_GUESTS {
        return Err(fail(
            ErrorCode::InvalidInput,
            format!("count must be 1 to {MAX_GUESTS}, not {}.", body.count),
        ));
    }
    let at = now();
    let mut guests = Vec::with_capacity(body.count as usize);
    for i in 0..body.count {
        let name = limits::validate_display_name(&format!("{}-{i:05}", body.prefix))?;
        let session = Session {
            uid: accounts::random_id(),
            name,
            iat: at,
            sid: accounts::random_id(),
        };
        guests.push(MintedGuest {
            cookie: format!("{cookie_name}={}", cookies::encode(&session, &keys)),
            user_id: session.uid,
            name: session.name,
        });
    }
    Ok(json(&Minted { guests }, 200)?)
}
