//! The `ChatRoom` Durable Object: one per room. It owns the room's SQLite storage and its
//! hibernating WebSockets, feeds every frame to [`shared::room::Room`] and carries out the
//! effects. No room rule lives here.

use std::cell::{Cell, RefCell, RefMut};
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use shared::ai::Personalization;
use shared::error::{ChatError, ErrorCode};
use shared::limits;
use shared::moderation::http::{AuditPage, InviteList, MemberList};
use shared::moderation::{Command, CreateInvite};
use shared::profile::AiPrefs;
use shared::protocol::http::{Context, ErrorBody, RoomUnread, SearchResults};
use shared::protocol::{
    Author, EventKind, Role, RoomInfo, Seq, ServerMessage, PING_FRAME, PONG_FRAME,
};
use shared::rate_limit::RateLimits;
use shared::room::{is_present, presence, Conn, ConnLimiter, Effect, Failure, Frame, Room};
use shared::search;
use worker::{
    console_error, console_warn, durable_object, Date, DurableObject, Env, Request, Response,
    State, WebSocket, WebSocketIncomingMessage, WebSocketPair, WebSocketRequestResponsePair,
};

use super::generate::AiRuntime;
use super::semantic::Semantic;
use super::store::SqlStore;
use crate::config;

/// Header on the Worker's internal connect request: a JSON [`Connect`].
pub const CONNECT_HEADER: &str = "X-Chat-Connect";

/// How long after a message the room writes its count and last activity to the directory. One
/// D1 write per burst, not per message.
const DIRECTORY_FLUSH_MS: i64 = 5_000;

/// What the Worker tells the room about a new connection, from the verified session and the
/// directory. The Durable Object is reachable only through the Worker, so this is trusted.
#[derive(Debug, Serialize, Deserialize)]
pub struct Connect {
    /// Who connects.
    pub author: Author,
    /// The room's directory entry.
    pub room: RoomInfo,
    /// The user's preferences for the assistant (from their profile).
    #[serde(default)]
    pub personalization: Personalization,
    /// The signed-in session behind the connection (`None` for a guest), so ending that
    /// session can close this socket.
    #[serde(default)]
    pub session_id: Option<String>,
    /// The room's creator (its first owner). The connection's role is decided by the room
    /// ([`Room::admit`]), not by the Worker: `author.role` is ignored.
    #[serde(default)]
    pub owner_id: String,
    /// Whether the user is a global admin.
    #[serde(default)]
    pub admin: bool,
    /// The user's avatar URL.
    #[serde(default)]
    pub avatar: Option<String>,
    /// The user's request was addressed to localhost (decided by the Worker): only then does
    /// the room honour test-only switches (`BENCH_NO_FTS`). Issue 10 item 14.
    #[serde(default)]
    pub loopback: bool,
}

/// Who a request is, as the Worker verified it (session, D1 account and profile).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    /// User id.
    pub id: String,
    /// Display name now.
    pub name: String,
    /// Global admin.
    #[serde(default)]
    pub admin: bool,
    /// Avatar URL.
    #[serde(default)]
    pub avatar: Option<String>,
    /// What the user asks of the assistant.
    #[serde(default)]
    pub prefs: AiPrefs,
}

impl Identity {
    /// A connection for this user; its room role is decided by the room ([`Room::admit`]).
    fn conn(&self) -> Conn {
        let mut conn = Conn::new(Author {
            id: self.id.clone(),
            name: self.name.clone(),
            role: Role::Member,
        });
        conn.admin = self.admin;
        conn.avatar.clone_from(&self.avatar);
        self.prefs.apply_to(&mut conn.personalization);
        conn
    }
}

/// The Worker's internal request for a room operation over HTTP (`POST /internal/roles`).
/// Like [`Connect`], only the Worker can send it (the public router never forwards
/// `/internal/*`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Internal {
    /// Who asks.
    pub user: Identity,
    /// The room's directory entry (none for a profile change, which only reaches rooms that
    /// already exist).
    pub room: Option<RoomInfo>,
    /// The room's creator.
    #[serde(default)]
    pub owner_id: String,
    /// What to do.
    pub op: Op,
}

/// A room operation requested over HTTP; each one goes through the same checks as the socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// A moderation command.
    Command {
        /// The command.
        command: Command,
    },
    /// Create an invite link.
    CreateInvite {
        /// Its limits.
        request: CreateInvite,
    },
    /// List invite links.
    Invites,
    /// Join the room (with an invite for a private room).
    Join {
        /// The invite token.
        invite: Option<String>,
    },
    /// List members.
    Members,
    /// A page of the audit log.
    Audit {
        /// Entries with ids below this.
        before: Option<u64>,
    },
    /// The user's profile changed: update their connections and tell the room.
    Profile,
}

/// `POST https://room/internal/close`: closes the sockets of a session or a user (revoked
/// session, disabled or banned user). Only the Worker reaches it, through the Durable Object
/// stub: the public router never forwards `/internal/*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CloseSockets {
    /// Close the sockets opened by this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Close every socket of this user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The close code (4xxx, see `shared::protocol::close`).
    pub code: u16,
    /// The close reason: the matching error code string.
    pub reason: String,
}

impl CloseSockets {
    fn matches(&self, session: Option<&str>, user_id: &str) -> bool {
        let by_session = self
            .session_id
            .as_deref()
            .is_some_and(|s| session == Some(s));
        let by_user = self.user_id.as_deref() == Some(user_id);
        by_session || by_user
    }
}

/// How many sockets a [`CloseSockets`] closed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Closed {
    /// Sockets closed.
    pub closed: u32,
}

const INTERNAL_CLOSE_URL: &str = "https://room.internal/internal/close";

/// Tells a room's object to close the matching sockets (from the Worker).
pub async fn close_sockets(
    env: &Env,
    slug: &str,
    request: &CloseSockets,
) -> worker::Result<Closed> {
    let mut init = worker::RequestInit::new();
    let headers = worker::Headers::new();
    headers.set("Content-Type", "application/json")?;
    init.with_method(worker::Method::Post)
        .with_headers(headers)
        .with_body(Some(to_json(request)?.into()));
    let req = Request::new_with_init(INTERNAL_CLOSE_URL, &init)?;
    let stub = env
        .durable_object(crate::api::ROOMS_BINDING)?
        .get_by_name(slug)?;
    let mut response = stub.fetch_with_request(req).await?;
    response.json().await
}

/// Stored in each socket's attachment, so it survives hibernation.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Attachment {
    id: u64,
    conn: Conn,
    /// The signed-in session that opened it (attachments written before sessions had none).
    #[serde(default)]
    session: Option<String>,
}

struct Slot {
    ws: WebSocket,
    conn: Conn,
    session: Option<String>,
    limiter: ConnLimiter,
}

#[durable_object]
pub struct ChatRoom {
    state: State,
    env: Env,
    limits: RateLimits,
    room: RefCell<Option<Room<SqlStore>>>,
    /// Derived from the sockets' attachments; rebuilt after the object wakes from hibernation.
    slots: RefCell<Option<HashMap<u64, Slot>>>,
    flush_scheduled: Cell<bool>,
    ai: AiRuntime,
    /// Whether the request being handled came to the Worker at localhost (`Connect::loopback`,
    /// `RoomQuery::loopback`): test-only switches act only then.
    test_switches: Cell<bool>,
}

impl DurableObject for ChatRoom {
    fn new(state: State, env: Env) -> Self {
        // Keep-alive pings are answered by the runtime without waking the object.
        match WebSocketRequestResponsePair::new(PING_FRAME, PONG_FRAME) {
            Ok(pair) => state.set_websocket_auto_response(&pair),
            Err(e) => console_warn!("websocket auto-response unavailable: {e:?}"),
        }
        let limits = config::rate_limits(&env);
        ChatRoom {
            state,
            limits,
            room: RefCell::new(None),
            slots: RefCell::new(None),
            flush_scheduled: Cell::new(false),
            ai: AiRuntime::new(config::ai_timeouts(&env)),
            test_switches: Cell::new(false),
            env,
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        if req.path() == "/internal/close" && req.method() == worker::Method::Post {
            let request: CloseSockets = req.json().await?;
            let closed = self.close_matching(&request);
            return Response::from_json(&Closed { closed });
        }
        if req.path() == "/internal/roles" && req.method() == worker::Method::Post {
            let internal: Internal = req.json().await?;
            return self.internal(internal).await;
        }
        if let Some(what) = req.path().strip_prefix("/internal/") {
            let what = what.to_owned();
            let request: RoomQuery = req.json().await?;
            self.test_switches.set(request.loopback);
            return self.query(&what, request).await;
        }
        let Some(header) = req.headers().get(CONNECT_HEADER)? else {
            return Response::error("not found", 404);
        };
        let connect: Connect = serde_json::from_str(&header)
            .map_err(|e| worker::Error::RustError(format!("bad connect header: {e}")))?;
        self.test_switches.set(connect.loopback);
        self.load(Some(connect.room))?;

        // The room decides the connection's role, and refuses banned users and non-members of
        // a private room, before the upgrade.
        let mut conn = Conn::new(connect.author);
        conn.personalization = connect.personalization;
        conn.admin = connect.admin;
        conn.avatar = connect.avatar;
        let admitted = match self.room.borrow_mut().as_mut() {
            Some(room) => room.admit(&mut conn, &connect.owner_id, now()),
            None => return Response::error("room not loaded", 500),
        };
        match admitted {
            Ok(announce) => {
                for effect in announce {
                    self.carry_out(0, effect);
                }
            }
            Err(failure) => return failure_response(failure),
        }

        let pair = WebSocketPair::new()?;
        self.state.accept_web_socket(&pair.server);
        {
            let mut slots = self.slots.borrow_mut();
            let slots = slots.get_or_insert_with(HashMap::new);
            let id = slots.keys().max().map_or(1, |m| m + 1);
            pair.server.serialize_attachment(&Attachment {
                id,
                conn: conn.clone(),
                session: connect.session_id.clone(),
            })?;
            slots.insert(
                id,
                Slot {
                    ws: pair.server,
                    conn,
                    session: connect.session_id,
                    limiter: ConnLimiter::new(self.limits, now()),
                },
            );
        }
        if self.ai.has_work() {
            // Assistant work found on wake (a queued answer) cannot run in this handler,
            // which must answer the upgrade now: the alarm picks it up at once.
            let _ = self.state.storage().set_alarm(1).await;
        }
        Response::from_websocket(pair.client)
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        self.load(None)?;
        let Some(Attachment { id, .. }) = ws.deserialize_attachment::<Attachment>()? else {
            console_error!("socket without attachment; closing it");
            let _ = ws.close(Some(1011), Some("internal"));
            return Ok(());
        };
        let now = now();
        let frame = match &message {
            WebSocketIncomingMessage::String(text) => Frame::Text(text),
            WebSocketIncomingMessage::Binary(bytes) => Frame::Binary(bytes.len()),
        };

        let effects = {
            let mut slots_ref = self.slots.borrow_mut();
            let slots = slots_ref.get_or_insert_with(HashMap::new);
            // Take the sender's slot out so the presence closure can read the others.
            let Some(mut slot) = slots.remove(&id) else {
                return Ok(());
            };
            let mut room_ref = self.room.borrow_mut();
            let Some(room) = room_ref.as_mut() else {
                return Ok(());
            };
            let effects = room.on_frame(&slot.conn, &mut slot.limiter, frame, now, || {
                presence(slots.values().map(|s| &s.conn))
            });
            slots.insert(id, slot);
            effects
        };

        let mut posted = false;
        let mut new_members = Vec::new();
        let mut stored = Vec::new();
        let mut info_changed = None;
        for effect in effects {
            if let Effect::InfoChanged(info) = &effect {
                info_changed = Some(info.clone());
            }
            if let Effect::Broadcast(ServerMessage::Event { event }) = &effect {
                posted |= matches!(
                    event.kind,
                    EventKind::Message { .. } | EventKind::Reply { .. }
                );
                stored.push(event.clone());
            }
            if let Effect::NewMember(member) = effect {
                new_members.push(member);
                continue;
            }
            self.carry_out(id, effect);
        }
        if let Some(info) = info_changed {
            self.write_directory(&info).await;
        }
        if posted {
            self.schedule_directory_flush().await;
        }
        // After the welcome went out, so a first join is not slowed by the directory write.
        for member in new_members {
            self.record_membership(&member.user_id).await;
        }
        // Production only (Workers AI + Vectorize bound): keep the semantic index true.
        if let (Some(semantic), false) = (Semantic::from_env(&self.env), stored.is_empty()) {
            let slug = self.room.borrow().as_ref().map(|r| r.info().slug.clone());
            if let Some(slug) = slug {
                super::semantic::index_events(&semantic, &slug, &stored).await;
            }
        }
        self.run_ai_work().await;
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        _code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> worker::Result<()> {
        self.drop_socket(&ws);
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> worker::Result<()> {
        self.drop_socket(&ws);
        Ok(())
    }

    async fn alarm(&self) -> worker::Result<Response> {
        self.flush_scheduled.set(false);
        self.load(None)?;
        let (slug, count, last) = {
            let room = self.room.borrow();
            let Some(room) = room.as_ref() else {
                return Response::ok("no room");
            };
            let store = room.store();
            (
                room.info().slug.clone(),
                store.message_count()?,
                store.last_message_at()?,
            )
        };
        if let Err(e) = crate::directory::record_activity(&self.env, &slug, count, last).await {
            // Retried by the runtime: an alarm that throws is re-run with backoff.
            console_error!("directory update for {slug} failed: {e}");
            return Err(e);
        }
        // Assistant work found when the room woke (see `fetch`).
        self.run_ai_work().await;
        Response::ok("flushed")
    }
}

/// A question the Worker asks a room for a verified user (search, unread counts, context, and
/// the bench's bulk seed). Like [`Connect`], trusted: only the Worker reaches the object.
#[derive(Debug, Serialize, Deserialize)]
pub struct RoomQuery {
    /// The room's directory entry (lets a room that never had a connection open its storage).
    pub room: RoomInfo,
    /// Who asks.
    pub user_id: String,
    /// `search`: the query text.
    #[serde(default)]
    pub query: String,
    /// `search`: results wanted.
    #[serde(default)]
    pub limit: Option<u32>,
    /// `context`: the message.
    #[serde(default)]
    pub seq: Option<Seq>,
    /// `seed`: how many messages to add.
    #[serde(default)]
    pub count: Option<u64>,
    /// The user's request was addressed to localhost (decided by the Worker): only then does
    /// the room honour test-only switches (`ROOM_QUERY_TEST_DELAY_MS`, `BENCH_NO_FTS`).
    #[serde(default)]
    pub loopback: bool,
}

impl ChatRoom {
    /// Answers a [`RoomQuery`] at `/internal/<what>`.
    async fn query(&self, what: &str, request: RoomQuery) -> worker::Result<Response> {
        if let Some(ms) = config::string(&self.env, "ROOM_QUERY_TEST_DELAY_MS")
            .filter(|_| request.loopback)
            .and_then(|v| v.parse::<u64>().ok())
        {
            // Test-only (never in wrangler.toml): a slow room, to test a fan-out's deadline.
            worker::Delay::from(std::time::Duration::from_millis(ms)).await;
        }
        self.load(Some(request.room.clone()))?;
        // Semantic candidates first: no borrow of the room may be held across an await.
        let semantic = match (what, Semantic::from_env(&self.env)) {
            ("search", Some(semantic)) => match search::parse_query(&request.query) {
                Ok(query) if query.fts_match().is_some() => semantic
                    .query(&request.room.slug, &query.text())
                    .await
                    .unwrap_or_else(|e| {
                        console_error!("semantic search failed, full-text only: {e}");
                        Vec::new()
                    }),
                _ => Vec::new(),
            },
            _ => Vec::new(),
        };
        if what == "seed" && config::bench_seed_enabled(&self.env) && request.loopback {
            let count = request.count.unwrap_or(0).min(SEED_MAX);
            let head = self.seed(count)?;
            return Response::from_json(&serde_json::json!({ "head": head }));
        }
        let room = self.room.borrow();
        let Some(room) = room.as_ref() else {
            return Response::error("room not loaded", 500);
        };
        let slug = &request.room.slug;
        if matches!(what, "search" | "context") {
            match room.may_read(&request.user_id) {
                Ok(()) => {}
                Err(Failure::Refused(e)) => return refused(&e),
                Err(f) => return Err(failure(f)),
            }
        }
        match what {
            "search" => {
                let query = match search::parse_query(&request.query) {
                    Ok(query) => query,
                    Err(e) => return refused(&e),
                };
                let limit = request
                    .limit
                    .unwrap_or(limits::SEARCH_LIMIT_DEFAULT)
                    .clamp(1, limits::SEARCH_LIMIT_MAX);
                let window = config::search_rank_window(&self.env);
                let hits = room
                    .store()
                    .search_hybrid(slug, &query, limit, &semantic, window)?;
                Response::from_json(&SearchResults {
                    hits,
                    partial: false,
                    missing: Vec::new(),
                })
            }
            "unread" => {
                let (read, counts) = room.unread(&request.user_id).map_err(failure)?;
                Response::from_json(&RoomUnread {
                    slug: slug.clone(),
                    read,
                    counts,
                })
            }
            "context" => {
                let seq = request.seq.unwrap_or(0);
                match room.store().context(seq, limits::CONTEXT_SIDE)? {
                    Some((thread, messages)) => Response::from_json(&Context {
                        target: seq,
                        thread,
                        messages,
                    }),
                    None => refused(&ChatError::new(
                        ErrorCode::NotFound,
                        format!("Message {seq} does not exist."),
                    )),
                }
            }
            _ => Response::error("not found", 404),
        }
    }

    /// Appends `count` generated messages straight to storage (the bench's bulk seed; never
    /// enabled by wrangler.toml). Same storage path as a real send, FTS index included.
    fn seed(&self, count: u64) -> worker::Result<Seq> {
        let mut room = self.room.borrow_mut();
        let Some(room) = room.as_mut() else {
            return Ok(0);
        };
        let author = Author {
            id: "bench-seed".into(),
            name: "Seed".into(),
            role: shared::protocol::Role::Member,
        };
        let now = now();
        room.seed(count, |n| (author.clone(), now, seed_text(n)))
            .map_err(|e| worker::Error::RustError(format!("{e:?}")))
    }

    /// Sends a frame to every joined socket of one user.
    fn send_to_user(&self, user_id: &str, message: &ServerMessage) {
        self.send_where(message, |_, conn| conn.joined && conn.author.id == user_id);
    }

    /// Sends a frame to every watching socket (of one user, if given).
    fn notify(&self, message: &ServerMessage, user_id: Option<&str>) {
        self.send_where(message, |_, conn| {
            conn.watching && user_id.is_none_or(|u| conn.author.id == u)
        });
    }

    /// Sends a frame, serialized once, to every socket that `to` picks.
    fn send_where(&self, message: &ServerMessage, to: impl Fn(u64, &Conn) -> bool) {
        let text = match serde_json::to_string(message) {
            Ok(text) => text,
            Err(e) => {
                console_error!("could not serialize a server frame: {e}");
                return;
            }
        };
        if let Some(slots) = self.slots.borrow().as_ref() {
            for (id, slot) in slots {
                if to(*id, &slot.conn) {
                    // A socket that is closing throws; its close handler cleans up.
                    let _ = slot.ws.send_with_str(&text);
                }
            }
        }
    }

    /// Records in the directory that a user joined this room (their first join).
    async fn record_membership(&self, user_id: &str) {
        let slug = match self.room.borrow().as_ref() {
            Some(room) => room.info().slug.clone(),
            None => return,
        };
        if let Err(e) = crate::directory::record_member(&self.env, &slug, user_id, now()).await {
            console_error!("recording {user_id} as a member of {slug} failed: {e}");
        }
    }

    /// Opens storage and rebuilds the socket table after a wake. `info` is the directory's
    /// current entry when a connect brings one.
    fn load(&self, info: Option<RoomInfo>) -> worker::Result<()> {
        let mut room = self.room.borrow_mut();
        match (room.as_mut(), info) {
            (Some(room), Some(info)) => {
                room.store().set_meta("room_info", &to_json(&info)?)?;
                room.set_info(info);
            }
            (Some(_), None) => {}
            (None, info) => {
                let store = SqlStore::open(self.state.storage().sql())?;
                if self.test_switches.get()
                    && config::string(&self.env, "BENCH_NO_FTS").as_deref() == Some("1")
                {
                    store.drop_search_index_triggers()?;
                }
                let info = match info {
                    Some(info) => {
                        store.set_meta("room_info", &to_json(&info)?)?;
                        info
                    }
                    None => store
                        .meta("room_info")?
                        .and_then(|json| serde_json::from_str(&json).ok())
                        .ok_or_else(|| {
                            worker::Error::RustError("room has no stored directory entry".into())
                        })?,
                };
                let mut opened = Room::open(store, info)?;
                opened.set_ai_config(config::ai_config(&self.env));
                // Answers left unfinished by the previous instance: fail the one that was
                // being written, queue the waiting ones again.
                let resumed = opened.resume_assistant(now());
                *room = Some(opened);
                drop(room);
                self.rebuild_slots()?;
                self.carry_effects(resumed);
                return Ok(());
            }
        }
        drop(room);
        self.rebuild_slots()
    }

    fn rebuild_slots(&self) -> worker::Result<()> {
        let mut slots = self.slots.borrow_mut();
        if slots.is_none() {
            let now = now();
            let mut rebuilt = HashMap::new();
            for ws in self.state.get_websockets() {
                match ws.deserialize_attachment::<Attachment>() {
                    Ok(Some(att)) => {
                        rebuilt.insert(
                            att.id,
                            Slot {
                                ws,
                                conn: att.conn,
                                session: att.session,
                                limiter: ConnLimiter::new(self.limits, now),
                            },
                        );
                    }
                    _ => {
                        let _ = ws.close(Some(1011), Some("internal"));
                    }
                }
            }
            *slots = Some(rebuilt);
        }
        Ok(())
    }

    fn carry_out(&self, from: u64, effect: Effect) {
        match effect {
            Effect::Reply(message) => {
                if let Some(slot) = self.slots.borrow().as_ref().and_then(|s| s.get(&from)) {
                    send(&slot.ws, &message);
                }
            }
            Effect::Broadcast(message) => self.broadcast(&message, None),
            Effect::BroadcastOthers(message) => self.broadcast(&message, Some(from)),
            Effect::Joined => self.mark_joined(from),
            Effect::Close(code, reason) => {
                let slot = self
                    .slots
                    .borrow_mut()
                    .as_mut()
                    .and_then(|s| s.remove(&from));
                if let Some(slot) = slot {
                    let _ = slot.ws.close(Some(code), Some(reason.as_str()));
                    self.announce_leave(&slot.conn);
                }
            }
            Effect::Log(detail) => console_error!("room storage failure: {detail}"),
            Effect::ToUser(user_id, message) => self.send_to_user(&user_id, &message),
            Effect::Watching => self.update_slot(from, |conn| conn.watching = true),
            Effect::Notify(message) => self.notify(&message, None),
            Effect::NotifyUser(user_id, message) => self.notify(&message, Some(&user_id)),
            Effect::CloseUser(user_id, code, reason) => {
                self.close_matching(&CloseSockets {
                    session_id: None,
                    user_id: Some(user_id),
                    code,
                    reason: reason.as_str().to_owned(),
                });
            }
            Effect::SetRole(user_id, role) => {
                self.update_conns(&user_id, |conn| conn.author.role = role);
            }
            // Written to the directory by the caller, which can await.
            Effect::InfoChanged(_) => {}
            other => {
                if let Some(other) = self.ai.take(other) {
                    console_error!("effect not carried out: {other:?}");
                }
            }
        }
    }

    /// Carries out effects that answer no particular socket (from the assistant).
    fn carry_effects(&self, effects: Result<Vec<Effect>, Failure>) {
        match effects {
            Ok(effects) => {
                for effect in effects {
                    self.carry_out(0, effect);
                }
            }
            Err(e) => console_error!("assistant step failed: {e:?}"),
        }
    }

    /// Runs one assistant step on the room and carries out its effects.
    pub(super) fn with_room(
        &self,
        step: impl FnOnce(&mut Room<SqlStore>, i64) -> Result<Vec<Effect>, Failure>,
    ) {
        let effects = {
            let mut room = self.room.borrow_mut();
            match room.as_mut() {
                Some(room) => step(room, now()),
                None => return,
            }
        };
        self.carry_effects(effects);
    }

    pub(super) fn with_room_quiet(&self, step: impl FnOnce(&mut Room<SqlStore>)) {
        if let Some(room) = self.room.borrow_mut().as_mut() {
            step(room);
        }
    }

    pub(super) fn room_mut(&self) -> RefMut<'_, Option<Room<SqlStore>>> {
        self.room.borrow_mut()
    }

    /// Whether generation `gen` is still the one being written.
    pub(super) fn is_running(&self, gen: u64) -> bool {
        self.room
            .borrow()
            .as_ref()
            .and_then(|r| r.assistant().running())
            .is_some_and(|(_, g)| g == gen)
    }

    /// When generation `gen`'s buffered text must go out.
    pub(super) fn room_deadline(&self, gen: u64) -> Option<i64> {
        self.room.borrow().as_ref().and_then(|r| r.ai_deadline(gen))
    }

    /// Adds facts to the memory every open connection of `user_id` carries.
    pub(super) fn learned(&self, user_id: &str, facts: &[String]) {
        let mut slots = self.slots.borrow_mut();
        let Some(slots) = slots.as_mut() else { return };
        for (id, slot) in slots.iter_mut() {
            if slot.conn.author.id != user_id {
                continue;
            }
            let memory = &mut slot.conn.personalization.memory;
            memory.extend(facts.iter().cloned());
            let excess = memory.len().saturating_sub(shared::ai::MEMORY_MAX_FACTS);
            memory.drain(..excess);
            let _ = slot.ws.serialize_attachment(&Attachment {
                id: *id,
                conn: slot.conn.clone(),
                session: slot.session.clone(),
            });
        }
    }

    pub(super) fn ai(&self) -> &AiRuntime {
        &self.ai
    }

    pub(super) fn env(&self) -> &Env {
        &self.env
    }

    pub(super) fn slug(&self) -> String {
        self.room
            .borrow()
            .as_ref()
            .map(|r| r.info().slug.clone())
            .unwrap_or_default()
    }

    /// Sends a frame to every joined socket (but `except`).
    fn broadcast(&self, message: &ServerMessage, except: Option<u64>) {
        self.send_where(message, |id, conn| conn.joined && Some(id) != except);
    }

    fn mark_joined(&self, id: u64) {
        let announce = {
            let mut slots = self.slots.borrow_mut();
            let Some(slots) = slots.as_mut() else { return };
            let user_id = match slots.get(&id) {
                Some(slot) if !slot.conn.joined => slot.conn.author.id.clone(),
                _ => return,
            };
            let first = !is_present(
                slots
                    .iter()
                    .filter(|(other, _)| **other != id)
                    .map(|(_, s)| &s.conn),
                &user_id,
            );
            let Some(slot) = slots.get_mut(&id) else {
                return;
            };
            slot.conn.joined = true;
            if let Err(e) = slot.ws.serialize_attachment(&Attachment {
                id,
                conn: slot.conn.clone(),
                session: slot.session.clone(),
            }) {
                console_error!("could not store socket attachment: {e}");
            }
            first.then(|| slot.conn.member())
        };
        if let Some(member) = announce {
            self.broadcast(&ServerMessage::PresenceJoin { member }, Some(id));
        }
    }

    /// Closes every socket a [`CloseSockets`] matches, announcing who left.
    fn close_matching(&self, request: &CloseSockets) -> u32 {
        // A room never loaded (no stored entry) has no sockets to close.
        if self.load(None).is_err() {
            return 0;
        }
        let closing: Vec<Slot> = {
            let mut slots = self.slots.borrow_mut();
            let Some(slots) = slots.as_mut() else {
                return 0;
            };
            let ids: Vec<u64> = slots
                .iter()
                .filter(|(_, s)| request.matches(s.session.as_deref(), &s.conn.author.id))
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| slots.remove(id)).collect()
        };
        for slot in &closing {
            let _ = slot
                .ws
                .close(Some(request.code), Some(request.reason.as_str()));
        }
        for slot in &closing {
            self.announce_leave(&slot.conn);
        }
        closing.len() as u32
    }

    /// Changes every connection of a user (and its attachment, so it survives hibernation).
    fn update_conns(&self, user_id: &str, change: impl Fn(&mut Conn)) {
        self.update_slots(|_, conn| conn.author.id == user_id, change);
    }

    fn update_slot(&self, id: u64, change: impl Fn(&mut Conn)) {
        self.update_slots(|slot, _| slot == id, change);
    }

    /// Changes the matching connections and keeps their attachments (which outlive
    /// hibernation) in step.
    fn update_slots(&self, matches: impl Fn(u64, &Conn) -> bool, change: impl Fn(&mut Conn)) {
        let mut slots = self.slots.borrow_mut();
        let Some(slots) = slots.as_mut() else { return };
        for (id, slot) in slots.iter_mut() {
            if matches(*id, &slot.conn) {
                change(&mut slot.conn);
                if let Err(e) = slot.ws.serialize_attachment(&Attachment {
                    id: *id,
                    conn: slot.conn.clone(),
                    session: slot.session.clone(),
                }) {
                    console_error!("could not store socket attachment: {e}");
                }
            }
        }
    }

    /// `POST /internal/roles`: one room operation for a verified user.
    async fn internal(&self, req: Internal) -> worker::Result<Response> {
        if req.room.is_none() && self.load(None).is_err() {
            // Never connected to, so nothing to tell.
            return Response::from_json(&serde_json::json!({ "ok": true }));
        }
        self.load(req.room)?;
        let now = now();
        let mut conn = req.user.conn();
        let mut effects = Vec::new();
        let is_profile = matches!(req.op, Op::Profile);
        let result: Result<serde_json::Value, Failure> = {
            let mut room = self.room.borrow_mut();
            let Some(room) = room.as_mut() else {
                return Response::error("room not loaded", 500);
            };
            // The actor's role for permission checks comes from the room's records.
            match shared::room::RoomStore::member(room.store(), &conn.author.id) {
                Ok(Some(record)) => conn.author.role = record.role,
                // The creator acting before ever connecting: make them the owner now.
                Ok(None) if conn.author.id == req.owner_id => {
                    if let Err(failure) = room.admit(&mut conn, &req.owner_id, now) {
                        return failure_response(failure);
                    }
                }
                _ => {}
            }
            match req.op {
                Op::Command { command } => room.command(&conn, command, now).map(|e| {
                    effects = e;
                    serde_json::json!({ "ok": true })
                }),
                Op::CreateInvite { request } => room
                    .create_invite(&conn, &request, crate::random::token(), now)
                    .map(|invite| to_value(&invite)),
                Op::Invites => room
                    .invites(&conn)
                    .map(|invites| to_value(&InviteList { invites })),
                Op::Join { invite } => room
                    .join(&conn, &req.owner_id, invite.as_deref(), now)
                    .map(|role| serde_json::json!({ "role": role })),
                Op::Members => room
                    .members(&conn)
                    .map(|members| to_value(&MemberList { members })),
                Op::Audit { before } => room
                    .audit_log(&conn, before)
                    .map(|entries| to_value(&AuditPage { entries })),
                Op::Profile => room.profile_changed(conn.member(), now).map(|e| {
                    effects = e;
                    serde_json::json!({ "ok": true })
                }),
            }
        };
        let body = match result {
            Ok(body) => body,
            Err(failure) => return failure_response(failure),
        };
        if is_profile {
            let user = req.user;
            self.update_conns(&user.id, |c| {
                c.author.name.clone_from(&user.name);
                c.avatar.clone_from(&user.avatar);
                user.prefs.apply_to(&mut c.personalization);
                c.admin = user.admin;
            });
        }
        let mut info_changed = None;
        for effect in effects {
            if let Effect::InfoChanged(info) = &effect {
                info_changed = Some(info.clone());
            }
            self.carry_out(0, effect);
        }
        if let Some(info) = info_changed {
            self.write_directory(&info).await;
        }
        Response::from_json(&body)
    }

    /// Writes a changed name, topic or privacy to the room's stored entry and the directory.
    async fn write_directory(&self, info: &RoomInfo) {
        if let Some(room) = self.room.borrow().as_ref() {
            if let Ok(json) = to_json(info) {
                let _ = room.store().set_meta("room_info", &json);
            }
        }
        if let Err(e) = crate::directory::update_info(&self.env, info).await {
            console_error!("directory update for {} failed: {e}", info.slug);
        }
    }

    fn drop_socket(&self, ws: &WebSocket) {
        if self.load(None).is_err() {
            return;
        }
        let id = match ws.deserialize_attachment::<Attachment>() {
            Ok(Some(att)) => att.id,
            _ => return,
        };
        let slot = self.slots.borrow_mut().as_mut().and_then(|s| s.remove(&id));
        // Complete the closing handshake; the socket may already be closed.
        let _ = ws.close(Some(1000), Some("closed"));
        if let Some(slot) = slot {
            self.announce_leave(&slot.conn);
        }
    }

    fn announce_leave(&self, conn: &Conn) {
        if !conn.joined {
            return;
        }
        let still_here = self
            .slots
            .borrow()
            .as_ref()
            .is_some_and(|slots| is_present(slots.values().map(|s| &s.conn), &conn.author.id));
        if !still_here {
            self.broadcast(
                &ServerMessage::PresenceLeave {
                    user_id: conn.author.id.clone(),
                },
                None,
            );
        }
    }

    async fn schedule_directory_flush(&self) {
        if self.flush_scheduled.get() {
            return;
        }
        self.flush_scheduled.set(true);
        let storage = self.state.storage();
        let result = match storage.get_alarm().await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => storage.set_alarm(DIRECTORY_FLUSH_MS).await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.flush_scheduled.set(false);
            console_error!("could not schedule the directory update: {e}");
        }
    }
}

fn send(ws: &WebSocket, message: &ServerMessage) {
    match serde_json::to_string(message) {
        Ok(text) => {
            let _ = ws.send_with_str(&text);
        }
        Err(e) => console_error!("could not serialize a server frame: {e}"),
    }
}

fn to_value<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or_default()
}

/// A refused room operation as the API's error response (the Worker passes it through).
fn failure_response(failure: Failure) -> worker::Result<Response> {
    let (error, detail): (ChatError, Option<String>) = failure.into_error();
    if let Some(detail) = detail {
        console_error!("room storage failure: {detail}");
    }
    let status = error.code.http_status();
    Ok(Response::from_json(&ErrorBody {
        code: error.code,
        message: error.message,
    })?
    .with_status(status))
}

fn to_json<T: Serialize>(value: &T) -> worker::Result<String> {
    serde_json::to_string(value).map_err(|e| worker::Error::RustError(e.to_string()))
}

pub(super) fn now() -> i64 {
    Date::now().as_millis() as i64
}

/// Most messages one seed request adds (the bench sends several).
const SEED_MAX: u64 = 50_000;

/// Generated text for seeded messages: 12 words from a 4,096-word vocabulary, so a given word
/// is in about 0.3% of messages (a realistic search selects a few thousand of a million), plus
/// one word shared by every message (the worst case).
pub fn seed_text(n: u64) -> String {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5151_5151;
    let mut words = vec!["seed".to_owned()];
    for _ in 0..12 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        words.push(format!("w{}", x % 4096));
    }
    words.join(" ")
}

/// A refusal as the Worker passes it on: the error body with its HTTP status.
fn refused(e: &ChatError) -> worker::Result<Response> {
    Ok(Response::from_json(&ErrorBody {
        code: e.code,
        message: e.message.clone(),
    })?
    .with_status(e.code.http_status()))
}

fn failure(f: Failure) -> worker::Error {
    match f {
        Failure::Refused(e) => worker::Error::RustError(e.to_string()),
        Failure::Storage(detail) => worker::Error::RustError(detail),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(session_id: Option<&str>, user_id: Option<&str>) -> CloseSockets {
        CloseSockets {
            session_id: session_id.map(Into::into),
            user_id: user_id.map(Into::into),
            code: 4001,
            reason: "unauthorized".into(),
        }
    }

    #[test]
    fn a_session_close_matches_only_that_sessions_sockets() {
        let request = close(Some("s1"), None);
        assert!(request.matches(Some("s1"), "u1"));
        assert!(!request.matches(Some("s2"), "u1"));
        assert!(
            !request.matches(None, "u1"),
            "a guest socket has no session"
        );
    }

    #[test]
    fn a_user_close_matches_every_socket_of_that_user_guest_or_signed_in() {
        let request = close(None, Some("u1"));
        assert!(request.matches(Some("s1"), "u1"));
        assert!(request.matches(None, "u1"));
        assert!(!request.matches(Some("s1"), "u2"));
        assert!(
            !close(None, None).matches(None, "u1"),
            "an empty request closes nothing"
        );
    }

    #[test]
    fn attachments_written_before_sessions_existed_still_read() {
        let old =
            r#"{"id":3,"conn":{"author":{"id":"u","name":"n","role":"member"},"joined":true}}"#;
        let att: Attachment = serde_json::from_str(old).unwrap();
        assert_eq!(att.id, 3);
        assert_eq!(att.session, None);
    }
}
