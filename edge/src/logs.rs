//! The main Worker's side of the structured logs (issue 12). The logging Worker (`logger/`)
//! owns the `LOGS` KV namespace; this Worker reaches it only through the `LOGGER` service
//! binding and decides what goes in and who reads:
//!
//! - every 5xx answer of the Worker and every `internal` error ([`RequestLog`]), with its route,
//!   the request's id (`cf-ray`, or a generated one where there is none, as under
//!   `wrangler dev`) and the user as a [`UserHash`] (a keyed hash, never the id);
//! - the room objects' failures that no request answers — a storage failure while taking a
//!   frame, the alarm's directory update, the file sweep, an assistant step — and the
//!   assistant's provider failures ([`RoomLog`], [`room_failure`], [`provider_failure`]);
//! - the app's own reports (`POST /api/logs/client`, [`client_report`]): panics and failed
//!   requests, checked to be browser entries of the builders' shape, size-capped and
//!   rate-limited per client address;
//! - the admin-only viewer's reads (`GET /api/admin/logs`, `/api/admin/logs/tail`, [`admin`]):
//!   anyone but a global admin is told the route does not exist (404 `not_found`).
//!
//! Logging never holds an answer and never fails one: entries go out after the response (the
//! Worker's `ctx.wait_until`; a room's `state.wait_until`, where pending work also keeps the
//! object in memory), in one batch per request (a room gathers what one event logged), and a
//! logger that is absent, failing or slower than [`SEND_TIMEOUT_MS`] costs only the entry,
//! which then goes to the console (Workers Logs) instead — scrubbed, as it would have been
//! stored. Every entry is built from structured parts (`shared::logs` builders) and scrubbed
//! here before it leaves; the logger scrubs again on arrival.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use shared::error::{ChatError, ErrorCode};
use shared::logs::{
    scrub, BatchReceipt, Level, LogBatch, LogContext, LogEntry, Source, UserHash,
    MAX_BATCH_ENTRIES, USER_HASH_DOMAIN,
};
use shared::protocol::http::ErrorBody;
use worker::wasm_bindgen::JsValue;
use worker::{
    console_error, Context, Delay, Env, Headers, Method, Request, RequestInit, Response, State,
};

use crate::config::{self, SessionKeys};
use crate::http::{check_origin, client_ip, fail, rate_limit, ApiError, ApiResult};
use crate::time::now;

/// The service binding to the logging Worker.
const LOGGER: &str = "LOGGER";
/// The logger's API, through the binding (the host is not looked up: the binding is the route).
const LOGGER_ORIGIN: &str = "https://logger";
/// The rate-limiting binding of the app's reports, keyed by client address.
const LOG_LIMITER: &str = "LOG_LIMITER";
/// The test-only switch that makes `POST /api/test/failure` exist (localhost only).
const TEST_FAILURES: &str = "LOGS_TEST_FAILURES";

/// How long a send or a viewer's read may wait on the logger. Sends run after the answer, so
/// this bounds only how long a request's `wait_until` (or a room) keeps working on a logger
/// that hangs.
pub const SEND_TIMEOUT_MS: u64 = 3_000;
/// How long a room gathers entries before sending them: the failures of one event (a frame's
/// storage failures, an alarm's) go in one batch.
const ROOM_GATHER_MS: u64 = 50;
/// The largest body of `POST /api/logs/client`, in bytes.
pub const CLIENT_MAX_BYTES: usize = 8 * 1024;
/// The most entries in one app report.
pub const CLIENT_MAX_ENTRIES: usize = 10;

// ---------------------------------------------------------------------------------------------
// Sending.

/// Sends entries to the logger in one batch, scrubbed; whatever the logger does not store goes
/// to the console instead. Never fails.
pub(crate) async fn send(env: &Env, mut entries: Vec<LogEntry>) {
    if entries.is_empty() {
        return;
    }
    for entry in &mut entries {
        scrub(entry);
    }
    // Callers send far fewer; the rest would be refused whole by the logger.
    for extra in entries.split_off(entries.len().min(MAX_BATCH_ENTRIES)) {
        console_fallback("the batch is full", &extra);
    }
    match post(env, &entries).await {
        Ok(receipt) => {
            for rejected in receipt.rejected {
                if let Some(entry) = entries.get(rejected.index) {
                    console_fallback(&format!("refused: {}", rejected.message), entry);
                }
            }
        }
        Err(why) => {
            for entry in &entries {
                console_fallback(&why, entry);
            }
        }
    }
}

/// An entry the logger did not take, in the console log (one JSON object per entry).
fn console_fallback(why: &str, entry: &LogEntry) {
    console_error!(
        "{}",
        serde_json::json!({ "log_not_stored": why, "entry": entry })
    );
}

async fn post(env: &Env, entries: &[LogEntry]) -> Result<BatchReceipt, String> {
    let body = serde_json::to_string(&LogBatch {
        entries: entries.to_vec(),
    })
    .map_err(|e| format!("serializing: {e}"))?;
    let headers = Headers::new();
    headers
        .set("Content-Type", "application/json")
        .map_err(|e| e.to_string())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(&body)));
    let mut response = fetch_logger(env, "/entries", Some(init)).await?;
    if response.status_code() != 200 {
        return Err(format!("the logger answered {}", response.status_code()));
    }
    response
        .json::<BatchReceipt>()
        .await
        .map_err(|e| format!("the logger's receipt: {e}"))
}

/// One request to the logger, within [`SEND_TIMEOUT_MS`]; `Err` says why there is no answer.
async fn fetch_logger(
    env: &Env,
    path_and_query: &str,
    init: Option<RequestInit>,
) -> Result<Response, String> {
    let logger = env
        .service(LOGGER)
        .map_err(|e| format!("no {LOGGER} binding: {e}"))?;
    let url = format!("{LOGGER_ORIGIN}{path_and_query}");
    let answer = Box::pin(logger.fetch(url, init));
    let timer = Delay::from(Duration::from_millis(SEND_TIMEOUT_MS));
    // Resolved before matching, so the late answer's future (which borrows the binding) is
    // dropped first.
    let outcome = match select(answer, timer).await {
        Either::Left((answer, _)) => Some(answer),
        Either::Right(_) => None,
    };
    match outcome {
        Some(Ok(response)) => Ok(response),
        Some(Err(e)) => Err(format!("the logger is unreachable: {e}")),
        None => Err(format!(
            "the logger did not answer within {SEND_TIMEOUT_MS} ms"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// The Worker's failures.

/// The request being answered, kept (a handle, no copy) so that a failure can be logged with
/// its id and user after the route has taken the request.
pub(crate) struct RequestLog {
    request: worker::web_sys::Request,
}

impl RequestLog {
    /// Before the route takes the request.
    pub(crate) fn of(req: &Request) -> RequestLog {
        RequestLog {
            request: Clone::clone(req.inner()),
        }
    }

    /// An error answer the route returned: logged after the response went out.
    pub(crate) fn failed(
        &self,
        ctx: &Context,
        env: &Env,
        path: &str,
        status: u16,
        code: ErrorCode,
        detail: &str,
    ) {
        let entry = worker_failure(now(), path, status, code, detail);
        self.send_later(ctx, env, entry);
    }

    /// A 5xx answer the route passed on (a room's refusal of an upgrade, say): its code is read
    /// from a copy of its body after the response went out.
    pub(crate) fn failed_response(
        &self,
        ctx: &Context,
        env: &Env,
        path: &str,
        response: &mut Response,
    ) {
        let status = response.status_code();
        let copy = response.cloned();
        let (path, env_copy) = (path.to_owned(), env.clone());
        let request = Request::from(Clone::clone(&self.request));
        ctx.wait_until(async move {
            let body = match copy {
                Ok(mut copy) => copy.json::<ErrorBody>().await.ok(),
                Err(_) => None,
            };
            let (code, message) = body.map_or((ErrorCode::Internal, String::new()), |b| {
                (b.code, b.message)
            });
            let entry = worker_failure(now(), &path, status, code, &message);
            deliver(&env_copy, &request, vec![entry]).await;
        });
    }

    fn send_later(&self, ctx: &Context, env: &Env, entry: LogEntry) {
        let (env, request) = (env.clone(), Request::from(Clone::clone(&self.request)));
        ctx.wait_until(async move { deliver(&env, &request, vec![entry]).await });
    }
}

/// Adds what the request tells (its id, its user) to its entries and sends them.
async fn deliver(env: &Env, request: &Request, entries: Vec<LogEntry>) {
    let id = request_id(request.headers().get("cf-ray").ok().flatten().as_deref());
    let user = user_of(request, env).await;
    let entries = entries
        .into_iter()
        .map(|entry| {
            let entry = entry.with_request_id(&id);
            match &user {
                Some(user) => entry.with_user(user.clone()),
                None => entry,
            }
        })
        .collect();
    send(env, entries).await;
}

/// The Worker's failure entry: the route (the path; values in it that look like tokens or ids
/// are scrubbed) and, for a room's route, the room.
fn worker_failure(at: i64, path: &str, status: u16, code: ErrorCode, detail: &str) -> LogEntry {
    let entry = LogEntry::server_error(at, Source::Worker, path, status, code, detail);
    match room_of(path) {
        Some(slug) => entry.with_room(slug),
        None => entry,
    }
}

/// The room a route is about: `/api/rooms/<slug>/…`.
fn room_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("/api/rooms/")?;
    let slug = rest.split('/').next()?;
    shared::limits::is_valid_slug(slug).then_some(slug)
}

/// The request's id: the edge's `cf-ray` when it has the shape of one, else a fresh one
/// (`wrangler dev` sends none), so the entries of one request can still be told apart.
fn request_id(cf_ray: Option<&str>) -> String {
    pick_request_id(cf_ray, || {
        let token = crate::random::token();
        format!("dc-{}", &token[..16])
    })
}

fn pick_request_id(cf_ray: Option<&str>, fresh: impl FnOnce() -> String) -> String {
    let valid = |id: &&str| {
        !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
    };
    cf_ray.filter(valid).map_or_else(fresh, str::to_owned)
}

/// The pseudonymous user behind a request, if it has a session: looked up only when an entry
/// is logged, after the answer went out.
async fn user_of(req: &Request, env: &Env) -> Option<UserHash> {
    let keys = config::session_keys(env).ok()?;
    let user = crate::session::current_with_keys(req, env, &keys)
        .await
        .ok()??;
    user_hash(&keys, &user.user_id)
}

/// HMAC-SHA256 of [`USER_HASH_DOMAIN`] and the user id under the session-signing key: the
/// same user groups together, nobody without the key can tell who it is, and rotating the
/// secret unlinks old entries from new ones.
pub(crate) fn user_hash(keys: &SessionKeys, user_id: &str) -> Option<UserHash> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&keys.current).ok()?;
    mac.update(USER_HASH_DOMAIN.as_bytes());
    mac.update(user_id.as_bytes());
    UserHash::from_mac(&mac.finalize().into_bytes())
}

// ---------------------------------------------------------------------------------------------
// The rooms' failures.

/// A room's entries on their way to the logger. The first entry after a send schedules the
/// next one a moment later ([`ROOM_GATHER_MS`]) in `state.wait_until`, so what one event
/// logged goes in one batch and no handler waits on it. At most one batch is held; beyond it,
/// entries go to the console.
#[derive(Default)]
pub(crate) struct RoomLog {
    pending: Rc<RefCell<Vec<LogEntry>>>,
}

impl RoomLog {
    pub(crate) fn push(&self, state: &State, env: &Env, entry: LogEntry) {
        let Ok(mut pending) = self.pending.try_borrow_mut() else {
            console_fallback("the room's log is busy", &entry);
            return;
        };
        if pending.len() >= MAX_BATCH_ENTRIES {
            console_fallback("the room's log is full", &entry);
            return;
        }
        let first = pending.is_empty();
        pending.push(entry);
        if first {
            let (pending, env) = (Rc::clone(&self.pending), env.clone());
            state.wait_until(async move {
                Delay::from(Duration::from_millis(ROOM_GATHER_MS)).await;
                let batch = std::mem::take(&mut *pending.borrow_mut());
                send(&env, batch).await;
            });
        }
    }
}

/// A room's failure that no request answers (`what` is a fixed sentence; `detail` the error).
pub(crate) fn room_failure(slug: &str, what: &'static str, detail: &str) -> LogEntry {
    LogEntry::event(now(), Level::Error, Source::Room, what)
        .with_room(slug)
        .with_error(ErrorCode::Internal.as_str(), detail)
}

/// The assistant's provider failed (`provider` is its name when one is configured): its code,
/// the status it answered if the error names one, and its text.
pub(crate) fn provider_failure(slug: &str, provider: Option<&str>, error: &ChatError) -> LogEntry {
    LogEntry::provider_failure(
        now(),
        slug,
        error.code,
        provider.unwrap_or("none"),
        status_in(&error.message),
        &error.message,
    )
}

/// The HTTP status a provider error names, as `crate::ai` writes it: `(429)`.
fn status_in(message: &str) -> Option<u16> {
    message.match_indices('(').find_map(|(i, _)| {
        let digits = message.get(i + 1..i + 4)?;
        let status: u16 = digits.parse().ok()?;
        (message.get(i + 4..i + 5) == Some(")") && (100..=599).contains(&status)).then_some(status)
    })
}

// ---------------------------------------------------------------------------------------------
// The app's reports.

/// `POST /api/logs/client`: the app's panics and failed requests. Same-site pages only, a
/// limit per client address (`LOG_LIMITER`) before anything is read, at most
/// [`CLIENT_MAX_BYTES`] and [`CLIENT_MAX_ENTRIES`]; each entry must be a browser entry of the
/// builders' shape ([`client_entries`]). A session is optional (a guest's page fails too); the
/// user, the request id and the send happen after the 204.
pub(crate) async fn client_report(mut req: Request, env: &Env, ctx: &Context) -> ApiResult {
    check_origin(&req, false)?;
    rate_limit(env, LOG_LIMITER, format!("logs:{}", client_ip(&req))).await?;
    let body = crate::body::read_capped(&mut req, CLIENT_MAX_BYTES)
        .await
        .or_else(|e| Err(ApiError::from(e.into_chat_error("A log report")?)))?;
    let entries = client_entries(&body)?;
    let env = env.clone();
    ctx.wait_until(async move { deliver(&env, &req, entries).await });
    let mut response = Response::empty()?.with_status(204);
    response.headers_mut().set("Cache-Control", "no-store")?;
    Ok(response)
}

/// The entries of an app report, each rebuilt from its parts: a browser entry
/// (`LogEntry::browser_panic` or `LogEntry::browser_failed_request`: message `panic` or
/// `request failed`, level `warn` or `error`, an error code) with a route only (its path,
/// without query or fragment) — the room, request id and user are the server's to set — and
/// scrubbed. `invalid_frame` for a body
/// that is not a batch, `too_large` past [`CLIENT_MAX_ENTRIES`], `invalid_input` naming the
/// first entry of another shape.
pub(crate) fn client_entries(body: &[u8]) -> Result<Vec<LogEntry>, ChatError> {
    let batch: LogBatch = serde_json::from_slice(body).map_err(|e| {
        ChatError::new(
            ErrorCode::InvalidFrame,
            format!("A report is {{\"entries\": [...]}} of log entries: {e}"),
        )
    })?;
    if batch.entries.is_empty() {
        return Err(ChatError::new(
            ErrorCode::InvalidInput,
            "A report has at least one entry.",
        ));
    }
    if batch.entries.len() > CLIENT_MAX_ENTRIES {
        return Err(ChatError::new(
            ErrorCode::TooLarge,
            format!("A report has at most {CLIENT_MAX_ENTRIES} entries."),
        ));
    }
    batch
        .entries
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let refuse =
                |why: &str| ChatError::new(ErrorCode::InvalidInput, format!("Entry {i}: {why}."));
            if entry.source != Source::Browser {
                return Err(refuse("only browser entries are reported here"));
            }
            let level_ok = match entry.message.as_str() {
                "panic" => entry.level == Level::Error,
                "request failed" => matches!(entry.level, Level::Warn | Level::Error),
                _ => return Err(refuse("the message is `panic` or `request failed`")),
            };
            if !level_ok {
                return Err(refuse("that level does not go with that message"));
            }
            let Some(error) = entry.error else {
                return Err(refuse("an error code is required"));
            };
            let mut rebuilt = LogEntry {
                at: entry.at,
                level: entry.level,
                message: entry.message,
                source: Source::Browser,
                context: LogContext {
                    // A path only: a page's or request's query and fragment may hold search
                    // text or a token, and a route names a place, not a request's contents.
                    route: entry
                        .context
                        .route
                        .as_deref()
                        .and_then(|r| r.split(['?', '#']).next())
                        .filter(|r| !r.is_empty())
                        .map(str::to_owned),
                    ..LogContext::default()
                },
                error: Some(error),
            };
            scrub(&mut rebuilt);
            rebuilt.validate().map_err(|e| refuse(&e.message))?;
            Ok(rebuilt)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The viewer.

/// `GET /api/admin/logs?level=&from=&to=&q=&cursor=&limit=` and
/// `GET /api/admin/logs/tail?after=&level=&q=&limit=`: the logger's page, for global admins
/// (`admin`: the API's own check of the caller). To anyone else (a guest, an account, no
/// session) the route does not exist: 404 `not_found`, as for any unknown path, so the
/// viewer's existence is not told. The query goes to the logger as it came (its path is fixed
/// here): the logger checks every value and its refusal (`invalid_input` naming the parameter)
/// is answered as is — parsing it here too would only grow the Worker.
pub(crate) async fn admin(
    req: &Request,
    env: &Env,
    rest: &[&str],
    admin: Result<(), ApiError>,
) -> ApiResult {
    match admin {
        Ok(_) => {}
        // The server failing is not a refusal: it is answered (and logged) as such.
        Err(e) if matches!(e.error.code, ErrorCode::Internal | ErrorCode::ConfigError) => {
            return Err(e)
        }
        Err(_) => return Err(no_such_route(req)),
    }
    let url = req.url()?;
    let query = url.query().unwrap_or("");
    let path = match (req.method(), rest) {
        (Method::Get, []) => format!("/entries?{query}"),
        (Method::Get, ["tail"]) => format!("/entries/tail?{query}"),
        _ => return Err(no_such_route(req)),
    };
    let mut response = fetch_logger(env, &path, None)
        .await
        .map_err(|why| ApiError {
            error: ChatError::new(ErrorCode::Internal, "The log service is unavailable."),
            detail: Some(why),
        })?;
    let status = response.status_code();
    let text = response.text().await?;
    if status != 200 {
        return Err(match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) if status < 500 => fail(body.code, body.message),
            _ => ApiError {
                error: ChatError::new(ErrorCode::Internal, "The log service failed."),
                detail: Some(format!("the logger answered {status}: {text}")),
            },
        });
    }
    let mut answer = Response::ok(text)?;
    let headers = answer.headers_mut();
    headers.set("Content-Type", "application/json")?;
    headers.set("Cache-Control", "no-store")?;
    headers.set("X-Content-Type-Options", "nosniff")?;
    Ok(answer)
}

fn no_such_route(req: &Request) -> ApiError {
    fail(ErrorCode::NotFound, format!("No API at {}.", req.path()))
}

// ---------------------------------------------------------------------------------------------
// The tests' switch.

/// Whether `POST /api/test/failure[/<tag>]` exists for this request (a test tags its failures
/// by path, to find them in the log): `LOGS_TEST_FAILURES=1` (never in
/// wrangler.toml; `e2e/tests/config.rs` checks) and a request to localhost, like every
/// test-only switch. Anything else is answered as an unknown route is.
pub(crate) fn test_failures_enabled(env: &Env, req: &Request) -> bool {
    config::string(env, TEST_FAILURES).as_deref() == Some("1")
        && crate::auth::oauth::is_loopback(req)
}

/// The failure the tests' switch answers: an `internal` whose detail (log only) carries what
/// must never be stored — an email, a bearer token, a cookie — so the tests see it scrubbed.
pub(crate) fn test_failure() -> ApiError {
    ApiError {
        error: ChatError::new(
            ErrorCode::Internal,
            "Something went wrong on the server; please try again.",
        ),
        detail: Some(
            "test failure for erin@example.com; Authorization: Bearer Zm9vYmFyYmF6cXV4LXRlc3Q; \
             Cookie: dc_session=s3cret-cookie-value"
                .to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(entries: Vec<serde_json::Value>) -> Vec<u8> {
        json!({ "entries": entries }).to_string().into_bytes()
    }

    fn failed_request() -> serde_json::Value {
        serde_json::to_value(LogEntry::browser_failed_request(
            1_760_000_000_000,
            "/api/rooms",
            "get",
            Some(502),
            Some("internal"),
        ))
        .expect("serializes")
    }

    #[test]
    fn a_report_of_browser_builder_entries_is_taken_with_only_its_route_kept() {
        let mut forged = failed_request();
        forged["context"]["room"] = json!("general");
        forged["context"]["request_id"] = json!("forged-id");
        forged["context"]["user"] = json!("ab".repeat(16));
        let panic = serde_json::to_value(LogEntry::browser_panic(
            1_760_000_000_000,
            "/r/general",
            "at src/x.rs:1:2",
        ))
        .expect("serializes");
        let entries = client_entries(&report(vec![forged, panic])).expect("taken");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].context.route.as_deref(), Some("/api/rooms"));
        assert_eq!(
            (&entries[0].context.room, &entries[0].context.request_id),
            (&None, &None),
            "the server sets those"
        );
        assert_eq!(entries[0].context.user, None);
        assert_eq!(entries[1].message, "panic");
    }

    #[test]
    fn a_report_carrying_secrets_is_scrubbed_before_it_is_sent() {
        let mut entry = failed_request();
        entry["context"]["route"] = json!("/api/search?q=my secret words&token=abc123#frag");
        entry["error"]["detail"] =
            json!("GET status 502 for bob@example.com, Authorization: Bearer Zm9vYmFyYmF6cXV4");
        let entries = client_entries(&report(vec![entry])).expect("taken");
        let text = serde_json::to_string(&entries[0]).expect("serializes");
        for secret in [
            "secret words",
            "abc123",
            "bob@example.com",
            "Zm9vYmFyYmF6cXV4",
        ] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert_eq!(entries[0].context.route.as_deref(), Some("/api/search"));
    }

    #[test]
    fn a_report_of_another_shape_is_refused_with_a_stable_code() {
        let code = |body: &[u8]| client_entries(body).map(|_| ()).map_err(|e| e.code);
        assert_eq!(code(b"not json"), Err(ErrorCode::InvalidFrame));
        assert_eq!(code(br#"{"entries": {}}"#), Err(ErrorCode::InvalidFrame));
        assert_eq!(code(&report(vec![])), Err(ErrorCode::InvalidInput));
        let eleven = (0..=CLIENT_MAX_ENTRIES).map(|_| failed_request()).collect();
        assert_eq!(code(&report(eleven)), Err(ErrorCode::TooLarge));

        let mut worker = failed_request();
        worker["source"] = json!("worker");
        let mut other_message = failed_request();
        other_message["message"] = json!("user said hello");
        let mut quiet_panic =
            serde_json::to_value(LogEntry::browser_panic(1_760_000_000_000, "/", "boom"))
                .expect("serializes");
        quiet_panic["level"] = json!("info");
        let mut no_error = failed_request();
        no_error.as_object_mut().expect("an object").remove("error");
        let mut ancient = failed_request();
        ancient["at"] = json!(5);
        for bad in [worker, other_message, quiet_panic, no_error, ancient] {
            assert_eq!(
                code(&report(vec![failed_request(), bad.clone()])),
                Err(ErrorCode::InvalidInput),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_user_hash_is_keyed_stable_and_names_no_id() {
        let keys = |secret: &str| SessionKeys {
            current: secret.as_bytes().to_vec(),
            previous: None,
        };
        let k = keys("a secret of at least thirty-two bytes");
        let hash = user_hash(&k, "0123456789abcdef0123456789abcdef").expect("a hash");
        assert_eq!(hash.as_str().len(), UserHash::LEN);
        assert_eq!(
            user_hash(&k, "0123456789abcdef0123456789abcdef"),
            Some(hash.clone())
        );
        assert!(!hash.as_str().contains("0123456789abcdef"));
        assert_ne!(user_hash(&k, "another-user"), Some(hash.clone()));
        assert_ne!(
            user_hash(
                &keys("another secret of thirty-two bytes!!"),
                "0123456789abcdef0123456789abcdef"
            ),
            Some(hash)
        );
    }

    #[test]
    fn the_request_id_is_cf_ray_when_it_has_the_shape_of_one_else_a_fresh_one() {
        let fresh = || "dc-fresh".to_owned();
        assert_eq!(
            pick_request_id(Some("8a1b2c3d4e5f6789-SJC"), fresh),
            "8a1b2c3d4e5f6789-SJC"
        );
        assert_eq!(pick_request_id(None, fresh), "dc-fresh");
        assert_eq!(pick_request_id(Some(""), fresh), "dc-fresh");
        assert_eq!(pick_request_id(Some("has spaces"), fresh), "dc-fresh");
    }

    #[test]
    fn a_failure_on_a_rooms_route_names_the_room_and_keeps_the_route() {
        let entry = worker_failure(
            1_760_000_000_000,
            "/api/rooms/general/invites/0123456789abcdef0123456789abcdef",
            500,
            ErrorCode::Internal,
            "D1_ERROR: busy",
        );
        assert_eq!(entry.level, Level::Error);
        assert_eq!(entry.context.room.as_deref(), Some("general"));
        assert_eq!(
            entry.context.route.as_deref(),
            Some("/api/rooms/general/invites/[secret]"),
            "a token in the path is scrubbed"
        );
        assert_eq!(entry.error.map(|e| e.code), Some("internal".to_owned()));
        assert_eq!(room_of("/api/rooms"), None);
        assert_eq!(room_of("/api/rooms/Not A Slug/ws"), None);
        assert_eq!(room_of("/api/session"), None);
    }

    #[test]
    fn a_provider_errors_status_is_read_from_its_message() {
        assert_eq!(
            status_in("The AI provider failed (503): upstream down"),
            Some(503)
        );
        assert_eq!(
            status_in("The AI provider refused the credentials (401); check AI_API_KEY."),
            Some(401)
        );
        assert_eq!(status_in("The AI provider timed out (in 30 s)"), None);
        assert_eq!(status_in("no status (12) here (9999)"), None);
        assert_eq!(status_in("broken (50"), None);
    }
}
