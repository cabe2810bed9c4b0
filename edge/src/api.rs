//! The HTTP API: sessions, the room directory, and the WebSocket upgrade that hands a verified
//! connection to the room's Durable Object.

use serde::de::DeserializeOwned;
use serde::Serialize;
use shared::error::{ChatError, ErrorCode};
use shared::limits::{self, BODY_MAX_BYTES};
use shared::protocol::http::{
    Context, CreateRoom, CreateSession, ErrorBody, RoomList, SearchResults, SessionInfo,
};
use shared::protocol::{Author, Role, RoomInfo, Seq};
use worker::{console_error, Date, Env, Headers, Method, Request, RequestInit, Response, Url};

use crate::config;
use crate::directory;
use crate::rooms::object::{Connect, RoomQuery, CONNECT_HEADER};
use crate::rooms::queries;
use crate::session::{self, Session, SessionUser};
use crate::{auth, auth::accounts};

/// The Durable Object namespace binding of the rooms.
pub const ROOMS_BINDING: &str = "ROOMS";

/// An API failure: the code and message go to the client; `detail` only to the log.
pub(crate) struct ApiError {
    error: ChatError,
    detail: Option<String>,
}

impl From<ChatError> for ApiError {
    fn from(error: ChatError) -> Self {
        ApiError {
            error,
            detail: None,
        }
    }
}

impl From<worker::Error> for ApiError {
    fn from(e: worker::Error) -> Self {
        ApiError {
            error: ChatError::new(
                ErrorCode::Internal,
                "Something went wrong on the server; please try again.",
            ),
            detail: Some(e.to_string()),
        }
    }
}

pub(crate) fn fail(code: ErrorCode, message: impl Into<String>) -> ApiError {
    ChatError::new(code, message).into()
}

pub(crate) type ApiResult = Result<Response, ApiError>;

/// Routes one request under `/api/`.
pub async fn handle(req: Request, env: &Env) -> Response {
    let path = req.path();
    let method = req.method();
    let result = route(req, env, &path).await;
    let response = match result {
        Ok(response) => Ok(response),
        Err(ApiError { error, detail }) => {
            let status = error.code.http_status();
            if status >= 500 {
                // Structured error log: one JSON object per failure.
                console_error!(
                    "{}",
                    serde_json::json!({
                        "level": "error",
                        "code": error.code.as_str(),
                        "method": method.to_string(),
                        "path": path,
                        "detail": detail.as_deref().unwrap_or(&error.message),
                    })
                );
            }
            let mut response = json(
                &ErrorBody {
                    code: error.code,
                    message: error.message,
                },
                status,
            );
            if let (Some(ms), Ok(r)) = (error.retry_after_ms, response.as_mut()) {
                let _ = r
                    .headers_mut()
                    .set("Retry-After", &ms.div_ceil(1000).to_string());
            }
            response
        }
    };
    response.unwrap_or_else(|_| Response::error("internal error", 500).expect("static response"))
}

async fn route(req: Request, env: &Env, path: &str) -> ApiResult {
    let segments: Vec<&str> = path
        .trim_start_matches("/api/")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match (req.method(), segments.as_slice()) {
        (Method::Get, ["health"]) => Ok(json(&serde_json::json!({"ok": true}), 200)?),
        (Method::Get, ["session"]) => get_session(&req, env).await,
        (Method::Post, ["session"]) => create_session(req, env).await,
        (Method::Delete, ["session"]) => auth::sign_out(&req, env).await,
        (_, ["auth" | "sessions", ..]) => auth::route(req, env, &segments).await,
        (Method::Get, ["rooms"]) => {
            let user = require_session(&req, env).await?;
            let rooms = directory::list(env).await?;
            let mine: Vec<RoomInfo> = directory::member_rooms(env, &user.user_id)
                .await?
                .into_iter()
                .map(|e| e.info)
                .collect();
            let unread = queries::unread_all(env, &mine, &user.user_id).await;
            Ok(json(&RoomList { rooms, unread }, 200)?)
        }
        (Method::Get, ["search"]) => {
            let user = require_session(&req, env).await?;
            let (query, limit) = search_params(&req)?;
            let mine: Vec<RoomInfo> = directory::member_rooms(env, &user.user_id)
                .await?
                .into_iter()
                .map(|e| e.info)
                .collect();
            let results = queries::search_all(env, &mine, &user.user_id, &query, limit).await;
            Ok(json(&results, 200)?)
        }
        (Method::Get, ["rooms", slug, "search"]) => {
            let user = require_session(&req, env).await?;
            let (query, limit) = search_params(&req)?;
            let entry = find_room(env, slug).await?;
            let request = RoomQuery {
                query,
                limit: Some(limit),
                ..queries::room_query(&entry.info, &user.user_id)
            };
            let results: SearchResults = queries::ask(env, "search", &request)
                .await
                .map_err(queries::unanswered_error)?;
            Ok(json(&results, 200)?)
        }
        (Method::Get, ["rooms", slug, "context"]) => {
            let user = require_session(&req, env).await?;
            let seq = query_param(&req, "seq")
                .and_then(|s| s.parse::<Seq>().ok())
                .ok_or_else(|| fail(ErrorCode::InvalidInput, "Give ?seq=<message number>."))?;
            let entry = find_room(env, slug).await?;
            let request = RoomQuery {
                seq: Some(seq),
                ..queries::room_query(&entry.info, &user.user_id)
            };
            let context: Context = queries::ask(env, "context", &request)
                .await
                .map_err(queries::unanswered_error)?;
            Ok(json(&context, 200)?)
        }
        (Method::Post, ["rooms", slug, "seed"]) if config::bench_seed_enabled(env) => {
            // The bench's bulk seed (BENCH_SEED=1 only, never in wrangler.toml).
            let user = require_session(&req, env).await?;
            let count = query_param(&req, "count")
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            let entry = find_room(env, slug).await?;
            let request = RoomQuery {
                count: Some(count),
                ..queries::room_query(&entry.info, &user.user_id)
            };
            let head: serde_json::Value = queries::ask(env, "seed", &request)
                .await
                .map_err(queries::unanswered_error)?;
            Ok(json(&head, 200)?)
        }
        (Method::Post, ["rooms"]) => create_room(req, env).await,
        (Method::Get, ["rooms", slug]) => {
            require_session(&req, env).await?;
            let entry = find_room(env, slug).await?;
            Ok(json(&entry.info, 200)?)
        }
        (Method::Get, ["rooms", slug, "ws"]) => connect(req, env, slug).await,
        (Method::Get, ["admin", "ai"]) => {
            let user = require_session(&req, env).await?;
            if user.role.as_deref() != Some("admin") {
                return Err(fail(
                    ErrorCode::Forbidden,
                    "Only admins can see the assistant's ratings.",
                ));
            }
            Ok(json(&crate::ai_stats::report(env).await?, 200)?)
        }
        (Method::Get, ["me", "memory"]) => {
            let user = require_session(&req, env).await?;
            let facts = crate::memory::list(env, &user.user_id).await?;
            Ok(json(&serde_json::json!({ "facts": facts }), 200)?)
        }
        (Method::Delete, ["me", "memory", rest @ ..]) => {
            check_origin(&req, false)?;
            let user = require_session(&req, env).await?;
            let id = match rest {
                [] => None,
                [id] => Some(id.parse::<i64>().map_err(|_| {
                    fail(
                        ErrorCode::InvalidInput,
                        format!("{id:?} is not a memory id."),
                    )
                })?),
                _ => return Err(fail(ErrorCode::NotFound, format!("No API at {path}."))),
            };
            let deleted = crate::memory::delete(env, &user.user_id, id).await?;
            if id.is_some() && deleted == 0 {
                return Err(fail(ErrorCode::NotFound, "That memory does not exist."));
            }
            Ok(json(&serde_json::json!({ "deleted": deleted }), 200)?)
        }
        (_, ["health" | "session" | "rooms" | "search", ..]) => Err(fail(
            ErrorCode::InvalidInput,
            format!("{} is not supported on {path}.", req.method()),
        )),
        _ => Err(fail(ErrorCode::NotFound, format!("No API at {path}."))),
    }
}

fn query_param(req: &Request, name: &str) -> Option<String> {
    req.url()
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// `?q=` (validated, and parsed once here so a malformed filter is refused before any room is
/// asked) and `?limit=`.
fn search_params(req: &Request) -> Result<(String, u32), ApiError> {
    let raw = query_param(req, "q").unwrap_or_default();
    let query = limits::validate_search_query(&raw)?.to_owned();
    if shared::search::parse_query(&query)?.is_empty() {
        return Err(queries::empty_query().into());
    }
    let limit = query_param(req, "limit")
        .and_then(|v| v.parse::<u32>().ok())
        .unwrap_or(limits::SEARCH_LIMIT_DEFAULT)
        .clamp(1, limits::SEARCH_LIMIT_MAX);
    Ok((query, limit))
}

pub(crate) fn json<T: Serialize>(body: &T, status: u16) -> worker::Result<Response> {
    let mut response = Response::from_json(body)?.with_status(status);
    let headers = response.headers_mut();
    headers.set("Cache-Control", "no-store")?;
    headers.set("X-Content-Type-Options", "nosniff")?;
    Ok(response)
}

pub(crate) fn now() -> i64 {
    Date::now().as_millis() as i64
}

pub(crate) fn is_https(req: &Request) -> bool {
    req.url().is_ok_and(|u| u.scheme() == "https")
}

/// The request's own origin, as a browser on this site would send it.
fn own_origin(req: &Request) -> Option<String> {
    let url: Url = req.url().ok()?;
    Some(url.origin().ascii_serialization())
}

/// Refuses requests made by another site's page. `required` for WebSocket upgrades (browsers
/// always send Origin there; cookies ride along cross-site, hence CSWSH); for other requests a
/// missing Origin is a non-browser client and is allowed.
pub(crate) fn check_origin(req: &Request, required: bool) -> Result<(), ApiError> {
    let origin = req.headers().get("Origin").ok().flatten();
    match origin {
        None if !required => Ok(()),
        Some(origin) if Some(&origin) == own_origin(req).as_ref() => Ok(()),
        _ => Err(fail(
            ErrorCode::BadOrigin,
            "Requests must come from this site's own pages.",
        )),
    }
}

async fn require_session(req: &Request, env: &Env) -> Result<SessionUser, ApiError> {
    session::current(req, env).await?.ok_or_else(|| {
        fail(
            ErrorCode::Unauthorized,
            "Sign in or choose a display name first (no valid session).",
        )
    })
}

async fn session_info(env: &Env, user: SessionUser) -> Result<SessionInfo, ApiError> {
    let providers = if user.signed_in() {
        accounts::providers(env, &user.user_id).await?
    } else {
        Vec::new()
    };
    Ok(SessionInfo {
        signed_in: user.signed_in(),
        user_id: user.user_id,
        name: user.name,
        providers,
    })
}

pub(crate) async fn read_json<T: DeserializeOwned>(mut req: Request) -> Result<T, ApiError> {
    let declared = req
        .headers()
        .get("Content-Length")?
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    if declared > BODY_MAX_BYTES {
        return Err(fail(
            ErrorCode::TooLarge,
            format!("Body is {declared} bytes; the limit is {BODY_MAX_BYTES}."),
        ));
    }
    let body = req.text().await?;
    if body.len() > BODY_MAX_BYTES {
        return Err(fail(
            ErrorCode::TooLarge,
            format!(
                "Body is {} bytes; the limit is {BODY_MAX_BYTES}.",
                body.len()
            ),
        ));
    }
    serde_json::from_str(&body).map_err(|e| {
        fail(
            ErrorCode::InvalidFrame,
            format!("Body is not valid JSON of the expected shape: {e}"),
        )
    })
}

/// Applies the Workers rate-limiting binding, when configured, to a key.
pub(crate) async fn rate_limit(env: &Env, binding: &str, key: String) -> Result<(), ApiError> {
    let Ok(limiter) = env.rate_limiter(binding) else {
        return Ok(()); // Not configured: nothing to enforce.
    };
    if limiter.limit(key).await?.success {
        Ok(())
    } else {
        Err(ChatError::rate_limited(10_000).into())
    }
}

pub(crate) fn client_ip(req: &Request) -> String {
    req.headers()
        .get("CF-Connecting-IP")
        .ok()
        .flatten()
        .unwrap_or_else(|| "local".into())
}

async fn get_session(req: &Request, env: &Env) -> ApiResult {
    let user = require_session(req, env).await?;
    Ok(json(&session_info(env, user).await?, 200)?)
}

/// Chooses (or changes) the display name. An existing valid session keeps its user id; a
/// signed-in account changes its name.
async fn create_session(req: Request, env: &Env) -> ApiResult {
    check_origin(&req, false)?;
    let keys = config::session_keys(env)?;
    rate_limit(env, "SESSION_LIMITER", client_ip(&req)).await?;
    let existing = session::current_with_keys(&req, env, &keys).await?;
    let secure = is_https(&req);
    let body: CreateSession = read_json(req).await?;
    let name = limits::validate_display_name(&body.name)?;
    if let Some(account) = existing.as_ref().filter(|u| u.signed_in()) {
        accounts::rename(env, &account.user_id, &name).await?;
        let info = session_info(
            env,
            SessionUser {
                name,
                ..account.clone()
            },
        )
        .await?;
        return Ok(json(&info, 200)?);
    }
    let session = Session {
        uid: existing.map_or_else(accounts::random_id, |s| s.user_id),
        name,
        iat: now(),
    };
    let mut response = json(
        &SessionInfo {
            user_id: session.uid.clone(),
            name: session.name.clone(),
            signed_in: false,
            providers: Vec::new(),
        },
        200,
    )?;
    response.headers_mut().set(
        "Set-Cookie",
        &session::set_cookie(&session::encode(&session, &keys), secure),
    )?;
    Ok(response)
}

async fn create_room(req: Request, env: &Env) -> ApiResult {
    check_origin(&req, false)?;
    let session = require_session(&req, env).await?;
    rate_limit(env, "ROOM_LIMITER", session.user_id.clone()).await?;
    let body: CreateRoom = read_json(req).await?;
    let name = limits::validate_room_name(&body.name)?;
    let topic = limits::validate_topic(&body.topic)?;
    let slug = limits::slugify(&name);
    let info = directory::create(
        env,
        &slug,
        &name,
        &topic,
        body.assistant,
        &session.user_id,
        now(),
    )
    .await?;
    Ok(json(&info, 201)?)
}

async fn find_room(env: &Env, slug: &str) -> Result<directory::DirectoryEntry, ApiError> {
    let not_found = || {
        fail(
            ErrorCode::NotFound,
            format!("There is no room named {slug}."),
        )
    };
    if !limits::is_valid_slug(slug) {
        return Err(not_found());
    }
    directory::get(env, slug).await?.ok_or_else(not_found)
}

/// Verifies the upgrade (origin, session, room) and hands it to the room's Durable Object with
/// the identity the server stamps on everything the connection does.
async fn connect(req: Request, env: &Env, slug: &str) -> ApiResult {
    let upgrade = req.headers().get("Upgrade")?.unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Err(fail(
            ErrorCode::InvalidInput,
            "This endpoint takes a WebSocket upgrade.",
        ));
    }
    check_origin(&req, true)?;
    let session = require_session(&req, env).await?;
    let entry = find_room(env, slug).await?;
    if let Some(session_id) = &session.session_id {
        // Before the socket exists, so a revocation racing this upgrade still finds the room.
        auth::sessions::record_room(env, session_id, &entry.info.slug).await?;
    }
    let role = if entry.created_by == session.user_id {
        Role::Owner
    } else {
        Role::Member
    };
    let connect = Connect {
        author: Author {
            id: session.user_id,
            name: session.name,
            role,
        },
        room: entry.info,
        personalization: Default::default(),
        session_id: session.session_id,
    };
    // A fresh request: nothing the client sent besides the upgrade reaches the room.
    let headers = Headers::new();
    headers.set("Upgrade", "websocket")?;
    headers.set(
        CONNECT_HEADER,
        &serde_json::to_string(&connect).map_err(|e| worker::Error::RustError(e.to_string()))?,
    )?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let inner = Request::new_with_init("https://room.internal/connect", &init)?;
    let stub = env.durable_object(ROOMS_BINDING)?.get_by_name(slug)?;
    Ok(stub.fetch_with_request(inner).await?)
}
