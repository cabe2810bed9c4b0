//! The HTTP API: sessions, the room directory, and the WebSocket upgrade that hands a verified
//! connection to the room's Durable Object.

use shared::error::ErrorCode;
use shared::limits;
use shared::moderation::http::{AdminRooms, AdminUsers, AuditPage, JoinRoom, UpdateUser};
use shared::moderation::{AuditEntry, Command, CreateInvite};
use shared::profile::{self, Profile, PublicProfile};
use shared::protocol::close;
use shared::protocol::http::{CreateRoom, CreateSession, RoomList, SessionInfo, SessionState};
use shared::protocol::{Author, Role, RoomInfo, Seq};
use worker::{console_error, Context, Env, HttpMetadata, Method, Request, Response};

use crate::body;
use crate::cache;
use crate::config;
use crate::cookies::{self, Session};
use crate::directory;
use crate::http::{
    check_origin, client_ip, error_response, fail, is_https, json, query_param, rate_limit,
    read_json, ApiError, ApiResult,
};
use crate::profiles;
use crate::rooms::contract::{
    self, Admission, AuditLog, Caller, Connect, ContextOf, Identity, Join, ListInvites,
    ListMembers, Moderate, NewInvite, Reconnect, Reuse, RoomCall, Search, Seed, SocketRequest,
    Upgrade,
};
use crate::rooms::{hints, queries};
use crate::session::{self, SessionUser};
use crate::time::now;
use crate::{auth, auth::accounts, auth::guests};

/// Routes one request under `/api/`.
pub async fn handle(req: Request, env: &Env, ctx: &Context) -> Response {
    let path = req.path();
    let method = req.method();
    let https = is_https(&req);
    // Settings saved on the admin's page apply to this request (a copy at most 30 s old).
    crate::settings::refresh(env).await;
    // `Server-Timing` (issue 12): the phases measured while this request's future runs.
    let (method_name, started) = (method.to_string(), crate::metrics::timing::now_ms());
    let timed = crate::metrics::timing::Timed::new(respond(req, env, ctx, &path, method));
    let phases = timed.phases();
    let mut response = timed.await;
    // The API's answers say "HTTPS only" like the static files' (`assets/_headers`); not on a
    // socket upgrade, whose headers belong to the runtime.
    if let Some(hsts) = strict_transport_security(https) {
        if response.status_code() != 101 {
            let _ = response
                .headers_mut()
                .set("Strict-Transport-Security", hsts);
        }
    }
    let total_ms = crate::metrics::timing::now_ms() - started;
    let phases = phases.borrow();
    crate::metrics::finish(
        &mut response,
        &phases,
        total_ms,
        env,
        ctx,
        &method_name,
        &path,
    );
    response
}

/// The `Strict-Transport-Security` value for a response: only over HTTPS (a plain-http
/// answer is the dev server's, and browsers ignore the header there anyway).
fn strict_transport_security(https: bool) -> Option<&'static str> {
    https.then_some(HSTS)
}

/// Two years, subdomains included: the same as `assets/_headers`.
const HSTS: &str = "max-age=63072000; includeSubDomains";

async fn respond(req: Request, env: &Env, ctx: &Context, path: &str, method: Method) -> Response {
    // Kept before the route takes the request: a failure is logged with its id and user.
    let log = crate::logs::RequestLog::of(&req);
    let result = route(req, env, ctx, path).await;
    let response = match result {
        Ok(mut response) => {
            if response.status_code() >= 500 {
                log.failed_response(ctx, env, path, &mut response);
            }
            Ok(response)
        }
        Err(ApiError { error, detail }) => {
            let status = error.code.http_status();
            if status >= 500 || error.code == ErrorCode::Internal {
                let detail = detail.as_deref().unwrap_or(&error.message);
                log.failed(ctx, env, path, status, error.code, detail);
            }
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
            error_response(&error)
        }
    };
    response.unwrap_or_else(|_| Response::error("internal error", 500).expect("static response"))
}

async fn route(req: Request, env: &Env, ctx: &Context, path: &str) -> ApiResult {
    let segments: Vec<&str> = path
        .trim_start_matches("/api/")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match (req.method(), segments.as_slice()) {
        (Method::Get, ["health"]) => Ok(json(&crate::version::health(), 200)?),
        (Method::Get, ["preview"]) => crate::preview::page(&req, env).await,
        (Method::Get, ["preview", "image"]) => crate::preview::image(&req, env).await,
        (Method::Get, ["session"]) => get_session(&req, env).await,
        (Method::Post, ["session"]) => create_session(req, env).await,
        (Method::Delete, ["session"]) => auth::sign_out(&req, env).await,
        (_, ["auth" | "sessions", ..]) => auth::route(req, env, &segments).await,
        (Method::Get, ["rooms"]) => {
            let user = require_session(&req, env).await?;
            // Public rooms and the private ones this user belongs to.
            let (rooms, hit) = directory::list_for(env, &user.user_id).await?;
            let mine: Vec<RoomInfo> = directory::member_rooms(env, &user.user_id)
                .await?
                .into_iter()
                .map(|e| e.info)
                .collect();
            let unread = queries::unread_all(env, &mine, &user.user_id, loopback(&req)).await;
            let mut response = json(&RoomList { rooms, unread }, 200)?;
            // Whether the shared part came from the edge cache (the bench counts them).
            response
                .headers_mut()
                .set("X-Cache", if hit { "hit" } else { "miss" })?;
            Ok(response)
        }
        (Method::Get, ["search"]) => {
            let user = require_session(&req, env).await?;
            let (query, limit) = search_params(&req)?;
            let mine: Vec<RoomInfo> = directory::member_rooms(env, &user.user_id)
                .await?
                .into_iter()
                .map(|e| e.info)
                .collect();
            let results =
                queries::search_all(env, &mine, &user.user_id, &query, limit, loopback(&req)).await;
            Ok(json(&results, 200)?)
        }
        (Method::Get, ["rooms", slug, "search"]) => {
            let user = require_session(&req, env).await?;
            let (query, limit) = search_params(&req)?;
            let me = profiles::identity(env, &user).await?;
            let entry = visible_room(env, slug, &me).await?;
            let request = Search {
                room: entry.info,
                user_id: user.user_id,
                query,
                limit,
                loopback: loopback(&req),
            };
            let results = contract::call(env, slug, request)
                .await
                .map_err(queries::unanswered_error)?;
            Ok(json(&results, 200)?)
        }
        (_, ["rooms", _, "uploads" | "files", ..]) => {
            crate::files::route(req, env, &segments).await
        }
        (Method::Get, ["rooms", slug, "context"]) => {
            let user = require_session(&req, env).await?;
            let seq = query_param(&req, "seq")
                .and_then(|s| s.parse::<Seq>().ok())
                .ok_or_else(|| fail(ErrorCode::InvalidInput, "Give ?seq=<message number>."))?;
            let me = profiles::identity(env, &user).await?;
            let entry = visible_room(env, slug, &me).await?;
            let request = ContextOf {
                room: entry.info,
                user_id: user.user_id,
                seq,
            };
            let context = contract::call(env, slug, request)
                .await
                .map_err(queries::unanswered_error)?;
            Ok(json(&context, 200)?)
        }
        (Method::Post, ["rooms", slug, "seed"])
            if config::bench_seed_enabled(env) && loopback(&req) =>
        {
            // The bench's bulk seed (BENCH_SEED=1 only, never in wrangler.toml).
            require_session(&req, env).await?;
            let count = query_param(&req, "count")
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
            let entry = find_room(env, slug).await?;
            let request = Seed {
                room: entry.info,
                count,
                loopback: loopback(&req),
            };
            let head = contract::call(env, slug, request)
                .await
                .map_err(queries::unanswered_error)?;
            Ok(json(&head, 200)?)
        }
        (Method::Post, ["test", "guests"]) if auth::test_guests::enabled(env, &req) => {
            auth::test_guests::mint(req, env).await
        }
        (Method::Post, ["test", "failure", ..])
            if crate::logs::test_failures_enabled(env, &req) =>
        {
            Err(crate::logs::test_failure())
        }
        (Method::Post, ["logs", "client"]) => crate::logs::client_report(req, env, ctx).await,
        (Method::Post, ["rooms"]) => create_room(req, env).await,
        (Method::Get, ["rooms", slug]) => {
            let me = identity(&req, env).await?;
            let entry = visible_room(env, slug, &me).await?;
            Ok(json(&entry.info, 200)?)
        }
        (Method::Get, ["rooms", slug, "ws"]) => connect(req, env, ctx, slug).await,
        (Method::Get, ["rooms", slug, "admission"]) => admission(&req, env, slug).await,
        (Method::Get, ["rooms", slug, "analytics"]) => {
            let me = identity(&req, env).await?;
            let entry = find_room(env, slug).await?;
            let allowed = me.admin || entry.created_by == me.id;
            crate::metrics::room_analytics(&req, env, slug, allowed).await
        }
        (Method::Post, ["vitals"]) => crate::metrics::vitals(req, env).await,
        (Method::Post, ["me", "assistant"]) => assistant_room(req, env).await,
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
        (Method::Post, ["rooms", slug, "moderation"]) => {
            check_origin(&req, false)?;
            let me = identity(&req, env).await?;
            let command: Command = read_json(req).await?;
            let caller = caller(env, slug, me).await?;
            room_call(env, slug, Moderate { caller, command }, 200).await
        }
        (Method::Get, ["rooms", slug, "members"]) => {
            let caller = caller(env, slug, identity(&req, env).await?).await?;
            room_call(env, slug, ListMembers { caller }, 200).await
        }
        (Method::Get, ["rooms", slug, "audit"]) => {
            let caller = caller(env, slug, identity(&req, env).await?).await?;
            let before = query_param(&req, "before").and_then(|b| b.parse().ok());
            room_call(env, slug, AuditLog { caller, before }, 200).await
        }
        (Method::Get, ["rooms", slug, "invites"]) => {
            let caller = caller(env, slug, identity(&req, env).await?).await?;
            room_call(env, slug, ListInvites { caller }, 200).await
        }
        (Method::Post, ["rooms", slug, "invites"]) => {
            check_origin(&req, false)?;
            let me = identity(&req, env).await?;
            let request: CreateInvite = read_json(req).await?;
            let caller = caller(env, slug, me).await?;
            room_call(env, slug, NewInvite { caller, request }, 201).await
        }
        (Method::Delete, ["rooms", slug, "invites", token]) => {
            check_origin(&req, false)?;
            let me = identity(&req, env).await?;
            let command = Command::RevokeInvite {
                token: (*token).to_owned(),
            };
            let caller = caller(env, slug, me).await?;
            room_call(env, slug, Moderate { caller, command }, 200).await
        }
        (Method::Post, ["rooms", slug, "join"]) => {
            check_origin(&req, false)?;
            let session = require_session(&req, env).await?;
            let network = guest_network(&req, env, slug, &session)?;
            let me = profiles::identity(env, &session).await?;
            let body: JoinRoom = read_json(req).await?;
            let caller = caller(env, slug, me).await?;
            let user_id = caller.user.id.clone();
            let join = Join {
                caller,
                invite: body.invite,
                network,
            };
            let joined = contract::call(env, slug, join)
                .await
                .map_err(queries::unanswered_error)?;
            directory::record_member(env, slug, &user_id, now()).await?;
            Ok(json(&joined, 200)?)
        }
        (Method::Get, ["profile"]) => {
            let me = identity(&req, env).await?;
            let profile = profiles::get(env, &me.id).await?.unwrap_or(Profile {
                user_id: me.id,
                name: me.name,
                ..Profile::default()
            });
            Ok(json(&profile, 200)?)
        }
        (Method::Put, ["profile"]) => update_profile(req, env).await,
        (Method::Put, ["profile", "avatar"]) => upload_avatar(req, env).await,
        (Method::Get, ["avatars", user_id, id]) => {
            let entry = cache::Entry::Avatar { user: user_id, id };
            cache::serve(&req, &entry, get_avatar(env, user_id, id)).await
        }
        (Method::Get, ["users", user_id]) => {
            // Any session may see a card; checked before the cache is read.
            identity(&req, env).await?;
            let entry = cache::Entry::ProfileCard { user: user_id };
            cache::serve(&req, &entry, async {
                let profile = profiles::get(env, user_id)
                    .await?
                    .ok_or_else(|| fail(ErrorCode::NotFound, "There is no such user."))?;
                // Guest or account, and how they sign in: names are not unique, this is.
                let providers = accounts::providers(env, user_id).await?;
                let card = PublicProfile {
                    signed_in: accounts::is_account(env, user_id).await?,
                    providers,
                    ..profile.public()
                };
                Ok(json(&card, 200)?)
            })
            .await
        }
        (Method::Get, ["admin", "users"]) => {
            require_admin(&req, env).await?;
            let q = query_param(&req, "q").unwrap_or_default();
            let users = profiles::search(env, q.trim()).await?;
            Ok(json(&AdminUsers { users }, 200)?)
        }
        (Method::Post, ["admin", "users", user_id]) => update_user(req, env, user_id).await,
        (_, ["admin", "logs", rest @ ..]) => {
            let admin = require_admin(&req, env).await.map(|_| ());
            crate::logs::admin(&req, env, rest, admin).await
        }
        (_, ["admin", "settings"]) => crate::settings::route(req, env).await,
        (Method::Get, ["admin", "analytics"]) => {
            let me = identity(&req, env).await?;
            crate::metrics::admin_analytics(&req, env, me.admin).await
        }
        (Method::Get, ["admin", "analytics", "live"]) => {
            let me = identity(&req, env).await?;
            crate::metrics::live(&req, env, me.admin).await
        }
        (Method::Get, ["admin", "rooms"]) => {
            let me = require_admin(&req, env).await?;
            let rooms = directory::list(env, &me.id, true).await?;
            Ok(json(&AdminRooms { rooms }, 200)?)
        }
        (Method::Get, ["admin", "audit"]) => {
            require_admin(&req, env).await?;
            let before = query_param(&req, "before").and_then(|b| b.parse().ok());
            let entries = profiles::audit_page(env, before).await?;
            Ok(json(&AuditPage { entries }, 200)?)
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
        (
            _,
            ["health" | "session" | "rooms" | "search" | "profile" | "users" | "admin" | "avatars", ..],
        ) => Err(fail(
            ErrorCode::InvalidInput,
            format!("{} is not supported on {path}.", req.method()),
        )),
        _ => Err(fail(ErrorCode::NotFound, format!("No API at {path}."))),
    }
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

/// A guest's network as room `slug` knows it (`crate::network::key` of `CF-Connecting-IP`),
/// or `None` for a signed-in account: a moderator's ban of a guest also keeps new guests from
/// their network out of the room for a while, and never an account (shared networks).
fn guest_network(
    req: &Request,
    env: &Env,
    slug: &str,
    session: &SessionUser,
) -> Result<Option<String>, ApiError> {
    if session.signed_in() {
        return Ok(None);
    }
    let keys = config::session_keys(env)?;
    Ok(Some(crate::network::key(&keys, slug, &client_ip(req))))
}

/// Whether the request is addressed to localhost: the room honours test-only switches only
/// then (see `Connect::loopback`).
fn loopback(req: &Request) -> bool {
    auth::oauth::is_loopback(req)
}

async fn require_session(req: &Request, env: &Env) -> Result<SessionUser, ApiError> {
    require_session_with(req, env, &config::session_keys(env)?).await
}

/// [`require_session`] with the keys already read.
async fn require_session_with(
    req: &Request,
    env: &Env,
    keys: &config::SessionKeys,
) -> Result<SessionUser, ApiError> {
    crate::metrics::timing::measure("session", session::current_with_keys(req, env, keys))
        .await?
        .ok_or_else(|| {
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

/// `GET /api/session`: who the cookie is (`SessionInfo`), or 401 `unauthorized` when it is
/// nobody. With `?optional=1` ([`SessionState::PATH`], what the app asks at start) the answer is
/// 200 either way, a `SessionState` whose `session` is `None` for nobody: a new visitor's first
/// request is then no 401, which the browser would log as a console error.
async fn get_session(req: &Request, env: &Env) -> ApiResult {
    let (name, value) = SessionState::QUERY;
    if query_param(req, name).is_some_and(|v| v == value) {
        let keys = config::session_keys(env)?;
        let user =
            crate::metrics::timing::measure("session", session::current_with_keys(req, env, &keys))
                .await?;
        let session = match user {
            Some(user) => Some(session_info(env, user).await?),
            None => None,
        };
        return Ok(json(&SessionState { session }, 200)?);
    }
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
    // The valid guest session in the cookie (`existing` vouches it is not revoked).
    let current_guest = existing
        .as_ref()
        .filter(|u| !u.signed_in())
        .and_then(|_| guests::from_request(&req, env, &keys, now()));
    let body: CreateSession = read_json(req).await?;
    let name = limits::validate_display_name(&body.name)?;
    if let Some(account) = existing.as_ref().filter(|u| u.signed_in()) {
        accounts::rename(env, &account.user_id, &name).await?;
        // Open rooms show the new name, and forget the connects that carry the old one.
        if let Some(stored) = profiles::get(env, &account.user_id).await? {
            profiles::announce(env, &stored).await;
        }
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
    // A guest who renames keeps their session (id and start), so renaming never extends it.
    let lifetime = guests::lifetime_seconds(env);
    let session = match current_guest {
        Some(current) => Session { name, ..current },
        None => Session {
            uid: accounts::random_id(),
            name,
            iat: now(),
            sid: accounts::random_id(),
        },
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
        &cookies::set_cookie(
            &cookies::encode(&session, &keys),
            secure,
            session.remaining_seconds(lifetime, now()),
        ),
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
        directory::RoomSettings {
            assistant: body.assistant,
            private: body.private,
        },
        &session.user_id,
        now(),
    )
    .await?;
    directory::record_member(env, &info.slug, &session.user_id, now()).await?;
    Ok(json(&info, 201)?)
}

/// The user's private 1:1 room with the assistant, created on first use: invite-only, owned by
/// them, the assistant answering every message.
async fn assistant_room(req: Request, env: &Env) -> ApiResult {
    check_origin(&req, false)?;
    let session = require_session(&req, env).await?;
    if let Some(slug) = crate::memory::assistant_room(env, &session.user_id).await? {
        if let Some(entry) = directory::get(env, &slug).await? {
            return Ok(json(&entry.info, 200)?);
        }
    }
    rate_limit(env, "ROOM_LIMITER", session.user_id.clone()).await?;
    let name: String = format!("{} · assistant", session.name)
        .chars()
        .take(limits::ROOM_NAME_MAX_CHARS)
        .collect();
    let name = limits::validate_room_name(&name)?;
    let info = directory::create(
        env,
        &limits::slugify(&format!("assistant {}", session.name)),
        &name,
        "Your private conversation with the assistant",
        directory::RoomSettings {
            assistant: shared::protocol::AssistantMode::All,
            private: true,
        },
        &session.user_id,
        now(),
    )
    .await?;
    directory::record_member(env, &info.slug, &session.user_id, now()).await?;
    // Two tabs racing: the first mapping wins and the other's room is the spare.
    let slug = crate::memory::set_assistant_room(env, &session.user_id, &info.slug).await?;
    let entry = directory::get(env, &slug).await?;
    Ok(json(&entry.map_or(info, |e| e.info), 201)?)
}

/// The verified user of a request (session, global role) with their profile's avatar and
/// assistant preferences.
async fn identity(req: &Request, env: &Env) -> Result<Identity, ApiError> {
    let session = require_session(req, env).await?;
    let profile = profiles::identity(env, &session);
    Ok(crate::metrics::timing::measure("session", profile).await?)
}

async fn require_admin(req: &Request, env: &Env) -> Result<Identity, ApiError> {
    let me = identity(req, env).await?;
    if !me.admin {
        return Err(fail(
            ErrorCode::Forbidden,
            "Only administrators may do that.",
        ));
    }
    Ok(me)
}

/// A room entry the user may know about: private rooms exist only for their members (and
/// admins); to anyone else they are `not_found`, like a room that does not exist.
async fn visible_room(
    env: &Env,
    slug: &str,
    me: &Identity,
) -> Result<directory::DirectoryEntry, ApiError> {
    let entry = find_room(env, slug).await?;
    if entry.info.private && !me.admin && entry.created_by != me.id {
        let rooms = directory::rooms_of(env, &me.id).await?;
        if !rooms.iter().any(|r| r == slug) {
            return Err(fail(
                ErrorCode::NotFound,
                format!("There is no room named {slug}."),
            ));
        }
    }
    Ok(entry)
}

/// The verified user acting in room `slug`, with the room's directory entry.
async fn caller(env: &Env, slug: &str, user: Identity) -> Result<Caller, ApiError> {
    let entry = find_room(env, slug).await?;
    Ok(Caller {
        user,
        room: entry.info,
        owner_id: entry.created_by,
    })
}

/// Sends one operation to the room's object, which checks it against the permission table
/// exactly as it checks socket frames, and answers with its response (or its refusal).
async fn room_call<R: RoomCall>(env: &Env, slug: &str, request: R, status: u16) -> ApiResult {
    let response = crate::metrics::timing::measure("room", contract::call(env, slug, request))
        .await
        .map_err(queries::unanswered_error)?;
    Ok(json(&response, status)?)
}

/// `PUT /api/profile`: validates and stores the profile, renews the session cookie's name, and
/// tells every room the user is in, so open rooms show the new name at once.
async fn update_profile(req: Request, env: &Env) -> ApiResult {
    check_origin(&req, false)?;
    let keys = config::session_keys(env)?;
    let session = require_session(&req, env).await?;
    rate_limit(env, "PROFILE_LIMITER", session.user_id.clone()).await?;
    let secure = is_https(&req);
    let guest = (!session.signed_in())
        .then(|| guests::from_request(&req, env, &keys, now()))
        .flatten();
    let body: Profile = read_json(req).await?;
    let mut profile = body.validated()?;
    profile.user_id.clone_from(&session.user_id);
    if session.signed_in() {
        // An account's name is its `users` row (auth).
        accounts::rename(env, &session.user_id, &profile.name).await?;
    }
    profiles::put(env, &profile, now()).await?;
    let stored = profiles::get(env, &session.user_id)
        .await?
        .unwrap_or(profile);
    profiles::announce(env, &stored).await;
    let mut response = json(&stored, 200)?;
    if !session.signed_in() {
        // A guest's name lives in their signed cookie: renew it with the new name, keeping
        // the session's id and start (a rename does not extend it).
        if let Some(current) = guest {
            let lifetime = guests::lifetime_seconds(env);
            let renewed = Session {
                name: stored.name.clone(),
                ..current
            };
            response.headers_mut().set(
                "Set-Cookie",
                &cookies::set_cookie(
                    &cookies::encode(&renewed, &keys),
                    secure,
                    renewed.remaining_seconds(lifetime, now()),
                ),
            )?;
        }
    }
    Ok(response)
}

/// `PUT /api/profile/avatar`: the image bytes as the body. Checked by content (PNG, JPEG,
/// WebP, GIF; at most 1 MB and 1024 px a side), stored in R2 under a fresh key.
async fn upload_avatar(mut req: Request, env: &Env) -> ApiResult {
    check_origin(&req, false)?;
    let me = identity(&req, env).await?;
    rate_limit(env, "PROFILE_LIMITER", me.id.clone()).await?;
    // Capped while streaming (a chunked upload has no Content-Length to refuse up front).
    let bytes = body::read_capped(&mut req, profile::AVATAR_MAX_BYTES)
        .await
        .or_else(|e| Err(ApiError::from(e.into_chat_error("The image")?)))?;
    let avatar = profile::check_avatar(&bytes)?;
    let key = format!("avatars/{}/{}", me.id, crate::random::token());
    let bucket = env.bucket(profiles::AVATARS)?;
    bucket
        .put(key.as_str(), bytes)
        .http_metadata(HttpMetadata {
            content_type: Some(avatar.kind.mime().to_owned()),
            ..HttpMetadata::default()
        })
        .execute()
        .await?;
    profiles::set_avatar(env, &me.id, &key, now()).await?;
    if let Some(old) = me
        .avatar
        .as_deref()
        .and_then(|url| url.strip_prefix("/api/"))
    {
        // The replaced image is no longer referenced; a failure only leaves an orphan behind.
        if let Err(e) = bucket.delete(old).await {
            console_error!("could not delete the replaced avatar {old}: {e}");
        }
        // Its URL may still be in this location's edge cache, which would keep serving it.
        if let ["avatars", user, id] = old.split('/').collect::<Vec<_>>()[..] {
            cache::purge(&cache::Entry::Avatar { user, id }).await;
        }
    }
    let stored = profiles::get(env, &me.id)
        .await?
        .ok_or_else(|| fail(ErrorCode::NotFound, "There is no such user."))?;
    profiles::announce(env, &stored).await;
    Ok(json(&stored, 200)?)
}

/// `GET /api/avatars/<user>/<id>`: public, immutable (a new upload gets a new id).
async fn get_avatar(env: &Env, user_id: &str, id: &str) -> ApiResult {
    let valid =
        |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric());
    if !valid(user_id) || !valid(id) {
        return Err(fail(ErrorCode::NotFound, "There is no such avatar."));
    }
    let object = env
        .bucket(profiles::AVATARS)?
        .get(format!("avatars/{user_id}/{id}"))
        .execute()
        .await?
        .ok_or_else(|| fail(ErrorCode::NotFound, "There is no such avatar."))?;
    let content_type = object
        .http_metadata()
        .content_type
        .unwrap_or_else(|| "application/octet-stream".into());
    let bytes = match object.body() {
        Some(body) => body.bytes().await?,
        None => Vec::new(),
    };
    let mut response = Response::from_bytes(bytes)?;
    let headers = response.headers_mut();
    headers.set("Content-Type", &content_type)?;
    headers.set("Cache-Control", "public, max-age=31536000, immutable")?;
    headers.set("X-Content-Type-Options", "nosniff")?;
    Ok(response)
}

/// `POST /api/admin/users/<id>`: change a user's global role, or disable them (their sockets
/// in every room close at once) or enable them.
async fn update_user(req: Request, env: &Env, user_id: &str) -> ApiResult {
    check_origin(&req, false)?;
    let me = require_admin(&req, env).await?;
    let body: UpdateUser = read_json(req).await?;
    if user_id == me.id {
        return Err(fail(
            ErrorCode::InvalidInput,
            "Administrators cannot change or disable their own account here.",
        ));
    }
    let mut done = Vec::new();
    if let Some(role) = &body.role {
        if role != "admin" && role != "user" {
            return Err(fail(ErrorCode::InvalidInput, "role must be admin or user."));
        }
        if !profiles::set_role(env, user_id, role).await? {
            return Err(fail(ErrorCode::NotFound, "There is no such user."));
        }
        done.push(("set_global_role", role.clone()));
        // Open sockets hold the user's powers from when they connected: every room they are in
        // gets the new identity now, so a demoted admin keeps no admin power anywhere.
        if let Some(profile) = profiles::get(env, user_id).await? {
            profiles::announce(env, &profile).await;
        }
    }
    if let Some(disabled) = body.disabled {
        if !profiles::set_disabled(env, user_id, disabled, now()).await? {
            return Err(fail(ErrorCode::NotFound, "There is no such user."));
        }
        if disabled {
            // Their sessions end and every open socket closes at once.
            auth::sessions::end_all_of_user(
                env,
                user_id,
                close::UNAUTHORIZED,
                ErrorCode::Unauthorized.as_str(),
                now(),
            )
            .await?;
        }
        done.push((
            if disabled {
                "disable_user"
            } else {
                "enable_user"
            },
            String::new(),
        ));
    }
    for (action, detail) in done {
        profiles::audit(
            env,
            &AuditEntry {
                id: 0,
                at: now(),
                actor_id: me.id.clone(),
                actor_name: me.name.clone(),
                action: action.into(),
                target_id: Some(user_id.to_owned()),
                detail,
            },
        )
        .await?;
    }
    Ok(json(&serde_json::json!({ "ok": true }), 200)?)
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
    crate::metrics::timing::measure("directory", directory::get(env, slug))
        .await?
        .ok_or_else(not_found)
}

/// What an upgrade request asks of its socket: batched frames
/// ([`shared::protocol::BATCH_QUERY`]) and the first frame ([`shared::protocol::FIRST_FRAME_PARAM`])
/// from its URL's query, and whether it came to localhost.
fn socket_request(req: &Request) -> Result<SocketRequest, ApiError> {
    // The raw URL, not a parsed one: only the query is read.
    let url = req.inner().url();
    let query = url.split_once('?').map_or("", |(_, q)| q);
    let query = query.split_once('#').map_or(query, |(q, _)| q);
    Ok(SocketRequest {
        batch: query
            .split('&')
            .any(|pair| pair == shared::protocol::BATCH_QUERY),
        loopback: loopback(req),
        first_frame: shared::protocol::first_frame_in_query(query).transpose()?,
    })
}

/// A browser the room saw verified in the last minute (a reconnect, a reload) is admitted on its
/// cookies' digest alone, when this isolate saw the room admit it (`rooms::hints`): the room's
/// answer (the upgrade, or a refusal), or `None` when the room does not know the digest (or the
/// isolate never saw it) and the request is to be verified in full.
async fn reconnect(
    req: &Request,
    env: &Env,
    slug: &str,
    keys: &config::SessionKeys,
    socket: &SocketRequest,
    credential: &str,
) -> Result<Option<Response>, ApiError> {
    if !hints::likely_known(slug, credential, now()) {
        return Ok(None);
    }
    let reconnect = Reconnect {
        credential: credential.to_owned(),
        socket: socket.clone(),
        // Used only if the remembered connect is a guest's, as the full path would.
        network: Some(crate::network::key(keys, slug, &client_ip(req))),
    };
    let answer = contract::connect(env, slug, &Upgrade::Reconnect(reconnect)).await?;
    if answer.status_code() == contract::NOT_VERIFIED_HERE {
        hints::forget(slug, credential);
        return Ok(None);
    }
    Ok(Some(answer))
}

/// Verifies the upgrade (origin, session, room) and hands it to the room's Durable Object with
/// the identity the server stamps on everything the connection does; a reconnect the room can
/// admit on what it remembers skips the verification ([`reconnect`]).
async fn connect(req: Request, env: &Env, ctx: &Context, slug: &str) -> ApiResult {
    let upgrade = req.headers().get("Upgrade")?.unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Err(fail(
            ErrorCode::InvalidInput,
            "This endpoint takes a WebSocket upgrade.",
        ));
    }
    check_origin(&req, true)?;
    let socket = socket_request(&req)?;
    let keys = config::session_keys(env)?;
    let credential = session::credential(&req).filter(|_| limits::is_valid_slug(slug));
    if let Some(credential) = &credential {
        if let Some(answer) = reconnect(&req, env, slug, &keys, &socket, credential).await? {
            return Ok(answer);
        }
    }
    // Before the name is read: a rename written after this moment may be newer than it.
    let read_at = now();
    // The session and the room do not depend on each other: looked up at the same time. So is
    // a guest's profile (their id is in their signed cookie), used once the session that the
    // lookup verifies turns out to be that guest's.
    let guest_id =
        cookies::guest(&req, &keys, read_at, guests::lifetime_seconds(env)).map(|guest| guest.uid);
    let prefetch = async {
        match &guest_id {
            // A failed read is read again below, where its error is answered.
            Some(id) => profiles::Prefetched::read(env, id).await.ok(),
            None => None,
        }
    };
    let (session, entry, prefetched) = futures_util::future::join3(
        require_session_with(&req, env, &keys),
        find_room(env, slug),
        prefetch,
    )
    .await;
    let (session, entry) = (session?, entry?);
    // Recording the room for the session and the user's profile do not depend on each other
    // either; every check is still done before the upgrade.
    let room = async {
        if let Some(session_id) = &session.session_id {
            // Before the socket exists, so a revocation racing this upgrade still finds the room.
            auth::sessions::record_room(env, session_id, &entry.info.slug).await?;
        }
        Ok::<_, ApiError>(entry)
    };
    let profile = async {
        let me = match prefetched.and_then(|p| p.identity(&session)) {
            Some(me) => me,
            None => profiles::identity(env, &session).await?,
        };
        // What the assistant learned about this user (they opted in), and only what this room
        // may use: facts from a private room stay in that room.
        let facts = if me.prefs.memory {
            crate::memory::for_room(env, &me.id, slug).await?
        } else {
            Vec::new()
        };
        Ok::<_, ApiError>((me, facts))
    };
    let (entry, profile) = futures_util::future::join(room, profile).await;
    let (entry, (me, facts)) = (entry?, profile?);
    let mut personalization = shared::ai::Personalization::default();
    me.prefs.apply_to(&mut personalization);
    if me.prefs.memory {
        // Capped as it grows.
        personalization.memory = facts.into_iter().map(|f| f.fact).collect();
        let excess = personalization
            .memory
            .len()
            .saturating_sub(shared::ai::MEMORY_MAX_FACTS);
        personalization.memory.drain(..excess);
    }
    let user_id = me.id.clone();
    let network = guest_network(&req, env, slug, &session)?;
    let name_as_of = session.signed_in().then_some(read_at);
    // What the assistant remembers of a user changes without telling the room: theirs is
    // verified on every connect.
    let reuse = credential
        .filter(|_| !me.prefs.memory)
        .map(|credential| Reuse {
            credential,
            until: (read_at + shared::room::verified::REUSE_MS).min(session.valid_until),
        });
    // The room decides the role (`author.role` is ignored) and refuses banned users,
    // non-members of private rooms and new guests from a banned guest's network.
    let connect = Connect {
        author: Author {
            id: me.id,
            name: me.name.clone(),
            role: Role::Member,
        },
        room: entry.info,
        personalization,
        session_id: session.session_id,
        owner_id: entry.created_by,
        admin: me.admin,
        avatar: me.avatar,
        socket,
        network,
        name_as_of,
        reuse,
    };
    let reusable = connect.reuse.clone();
    let response = contract::connect(env, slug, &Upgrade::Verified(Box::new(connect))).await?;
    if response.status_code() == 101 {
        if let Some(reuse) = reusable {
            hints::admitted(slug, &reuse.credential, reuse.until, now());
        }
        // The user's last-seen time is no check: written after the upgrade is answered.
        let (env, name, at) = (env.clone(), session.name.clone(), now());
        ctx.wait_until(async move {
            if let Err(e) = profiles::record_connect(&env, &user_id, &name, at).await {
                console_error!("recording the connect of {user_id} failed: {e}");
            }
        });
    }
    Ok(response)
}

/// `GET /api/rooms/<slug>/admission`: whether an upgrade to the room would be admitted now —
/// 204, or the refusal the upgrade would answer (its code, status and message). A browser
/// cannot read a refused upgrade (the socket only closes), so the app asks this after a socket
/// closed before it opened. Decided as [`connect`] decides: the session, the room, then the
/// room's own checks (socket caps, bans, network bans, private membership), with nothing
/// recorded anywhere. A GET that changes nothing and whose answer another site cannot read, so
/// no Origin check; and no limit of its own: the app asks at most once per refused attempt,
/// and its reconnects back off.
async fn admission(req: &Request, env: &Env, slug: &str) -> ApiResult {
    let session = require_session(req, env).await?;
    let entry = find_room(env, slug).await?;
    let me = profiles::identity(env, &session).await?;
    let network = guest_network(req, env, slug, &session)?;
    let request = Admission {
        caller: Caller {
            user: me,
            room: entry.info,
            owner_id: entry.created_by,
        },
        network,
        loopback: loopback(req),
    };
    contract::call(env, slug, request)
        .await
        .map_err(queries::unanswered_error)?;
    let mut response = Response::empty()?.with_status(204);
    response.headers_mut().set("Cache-Control", "no-store")?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_responses_over_https_say_https_only_and_over_plain_http_do_not() {
        assert_eq!(
            strict_transport_security(true),
            Some("max-age=63072000; includeSubDomains")
        );
        assert_eq!(strict_transport_security(false), None);
    }

    #[test]
    fn the_api_and_the_static_files_ask_for_the_same_transport_security() {
        let headers = include_str!("../../assets/_headers");
        assert!(
            headers.contains(&format!("Strict-Transport-Security: {HSTS}")),
            "assets/_headers and api::HSTS differ"
        );
    }
}
