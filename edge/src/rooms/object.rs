//! The `ChatRoom` Durable Object: one per room. It owns the room's SQLite storage and its
//! hibernating WebSockets, feeds every frame to [`shared::room::Room`] and carries out the
//! effects. No room rule lives here.

use std::cell::{Cell, RefCell, RefMut};
use std::collections::HashMap;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use shared::error::{ChatError, ErrorCode};
use shared::limits;
use shared::moderation::http::{AuditPage, InviteList, MemberList};
use shared::protocol::http::{Context, RoomUnread, SearchResults};
use shared::protocol::{
    Author, EventKind, Role, RoomInfo, Seq, ServerMessage, PING_FRAME, PONG_FRAME,
};
use shared::rate_limit::RateLimits;
use shared::room::outbox::{IdMap, Outbox, COALESCE_MS};
use shared::room::presence::{Notice, Presence};
use shared::room::{may_open_socket, Conn, ConnLimiter, Effect, Failure, Frame, Room};
use shared::search;
use worker::{
    console_error, console_warn, durable_object, DurableObject, Env, Headers, Request, Response,
    State, WebSocket, WebSocketIncomingMessage, WebSocketPair, WebSocketRequestResponsePair,
};

use super::contract::{
    Admission, AuditLog, BeginUpload, Caller, CancelUpload, CloseSockets, Closed, Connect,
    ContextOf, Done, FileUser, Identity, Join, Joined, ListFiles, ListInvites, ListMembers,
    Moderate, NewInvite, ProfileChanged, ReadFile, RoomCall, RoomRequest, Search, Seed, Seeded,
    SweepFiles, Swept, ThumbStored, Unread, Upgrade, UploadSlot, UploadStored, UploadTarget,
    CONNECT_HEADER, JOIN_TIMING_HEADER, NOT_VERIFIED_HERE,
};
use super::generate::{AiHost, AiRuntime, AiWork};
use super::semantic::Semantic;
use super::store::DurableSql;
use crate::config;
use crate::http::error_response;
use crate::time::now;
use shared::room::verified::VerifiedConnects;
use shared::room::SqlStore;

/// How long after a message the room writes its count and last activity to the directory. One
/// D1 write per burst, not per message.
const DIRECTORY_FLUSH_MS: i64 = 5_000;

/// The room's `meta` key holding what the directory was last told (`count:last`).
const DIRECTORY_FLUSHED: &str = "directory_flushed";

/// How long a file sweep that failed (R2 unreachable) waits before it tries again.
const SWEEP_RETRY_MS: i64 = 60_000;

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

impl Connect {
    /// The connection it opens; its room role is decided by the room ([`Room::admit`]).
    fn conn(&self) -> Conn {
        let mut conn = Conn::new(self.author.clone());
        conn.personalization.clone_from(&self.personalization);
        conn.admin = self.admin;
        conn.avatar.clone_from(&self.avatar);
        conn.name_as_of = self.name_as_of;
        conn
    }
}

/// Stored in each socket's attachment, so it survives hibernation.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Attachment {
    id: u64,
    conn: Conn,
    /// The signed-in session that opened it (attachments written before sessions had none).
    #[serde(default)]
    session: Option<String>,
    /// The client accepts batched frames ([`shared::protocol::BATCH_QUERY`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    batch: bool,
}

/// Only the id of a socket's attachment, for a socket accepted before sockets carried their id
/// as a tag. Frames and closes need nothing else (the socket table has the rest); a tag is read
/// without deserializing anything, which an attachment, however small, is on every read.
#[derive(Deserialize)]
struct AttachmentId {
    id: u64,
}

struct Slot {
    ws: WebSocket,
    conn: Conn,
    session: Option<String>,
    batch: bool,
}

/// What a socket's attachment may hold, in bytes of JSON: workerd refuses an attachment over
/// 16 KiB (`WebSocket::MAX_ATTACHMENT_SIZE`, read from its binary), and the structured clone it
/// stores is not JSON, so a margin is kept.
const ATTACHMENT_BUDGET: usize = 12 * 1024;

impl Attachment {
    /// The attachment of a socket, within [`ATTACHMENT_BUDGET`]: everything else a connection
    /// carries is bounded by its own limits (a name, preferences a 4 KB profile save set), but
    /// 50 remembered facts in a 3-byte script reach 30 KB, so the oldest facts give way until
    /// it fits. They live on in memory while the object is awake, and users with memory on are
    /// verified afresh on every connect, which brings them all back.
    fn new(id: u64, mut conn: Conn, session: Option<String>, batch: bool) -> Attachment {
        let size = |conn: &Conn| serde_json::to_string(conn).map_or(usize::MAX, |s| s.len());
        let mut over = size(&conn).saturating_sub(ATTACHMENT_BUDGET - 512);
        while over > 0 && !conn.personalization.memory.is_empty() {
            let fact = conn.personalization.memory.remove(0);
            over = over.saturating_sub(fact.len() + 3);
        }
        Attachment {
            id,
            conn,
            session,
            batch,
        }
    }
}

impl Slot {
    fn attachment(&self, id: u64) -> Attachment {
        Attachment::new(id, self.conn.clone(), self.session.clone(), self.batch)
    }
}

type Slots = Rc<RefCell<Option<IdMap<u64, Slot>>>>;

/// What a frame leaves to do once its effects went out: the I/O it needs.
#[derive(Default)]
struct AfterFrame {
    /// The room's directory entry changed (settings).
    info_changed: Option<RoomInfo>,
    /// A message was posted (the directory's activity time moves).
    posted: bool,
    /// First-time members, for the directory's member list.
    new_members: Vec<shared::protocol::Member>,
    /// Events stored, for the semantic index.
    stored: Vec<shared::protocol::Event>,
}

#[durable_object]
pub struct ChatRoom {
    state: State,
    env: Env,
    limits: RateLimits,
    room: RefCell<Option<Room<DurableSql>>>,
    /// Derived from the sockets' attachments; rebuilt after the object wakes from hibernation.
    /// Shared with the task that flushes the outbox.
    slots: Slots,
    /// Frames coalesced per socket during a burst ([`Outbox`]).
    outbox: Rc<RefCell<Outbox<u64>>>,
    /// Who is present (rebuilt with `slots`): announced one by one in a small room, counted in
    /// a large one. Shared with the task that sends a count when its second has passed.
    presence: Rc<RefCell<Presence>>,
    presence_tick: Rc<Cell<bool>>,
    /// Rate limits per user (not per socket), in memory: a woken room starts them full.
    limiters: RefCell<HashMap<String, ConnLimiter>>,
    flush_scheduled: Cell<bool>,
    /// A deleted message released files ([`Effect::FilesReleased`]): the handler that carried
    /// the effect out deletes their objects before it returns.
    files_released: Cell<bool>,
    /// Connects the Worker verified in the last minute, reused for the same browser's
    /// reconnects ([`Upgrade::Reconnect`]). In memory: a woken room verifies afresh.
    verified: RefCell<VerifiedConnects<Connect>>,
    ai: AiRuntime,
    /// Whether the request being handled came to the Worker at localhost (`Connect::loopback`,
    /// `RoomQuery::loopback`): test-only switches act only then.
    test_switches: Cell<bool>,
    /// Workers AI and Vectorize, when both are bound (production): looked up once, since
    /// every stored message asks (a missing binding is an error built on each lookup).
    semantic: Option<Semantic>,
    /// Failures on their way to the logging Worker (`crate::logs`).
    log: crate::logs::RoomLog,
    /// What the room counted since its last metrics batch (issue 12): in memory, sent by the
    /// alarm at most every `shared::metrics::REPORT_INTERVAL_MS`.
    meter: RefCell<shared::metrics::RoomMeter>,
    /// SQLite rows read and written, counted by the store as statements run.
    sql_rows: crate::metrics::client::SqlRows,
    /// An alarm is set to send the batch.
    report_scheduled: Cell<bool>,
    /// When the alarm this instance set is due, to measure how late it runs.
    alarm_due: Cell<Option<i64>>,
    /// The bench's run without analytics (`BENCH_NO_METRICS=1`, never in wrangler.toml),
    /// decided when the room opens on a request to localhost, like `BENCH_NO_FTS`: the room
    /// then neither counts nor sends batches, so the bench can measure what metrics cost the
    /// send path. In memory: a room woken by a socket's frame (no request) meters again.
    metrics_off: Cell<bool>,
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
            slots: Rc::new(RefCell::new(None)),
            outbox: Rc::new(RefCell::new(Outbox::new())),
            presence: Rc::new(RefCell::new(Presence::new())),
            presence_tick: Rc::new(Cell::new(false)),
            limiters: RefCell::new(HashMap::new()),
            flush_scheduled: Cell::new(false),
            files_released: Cell::new(false),
            verified: RefCell::new(VerifiedConnects::default()),
            ai: AiRuntime::new(config::ai_timeouts(&env)),
            test_switches: Cell::new(false),
            semantic: Semantic::from_env(&env),
            log: crate::logs::RoomLog::default(),
            meter: RefCell::new(shared::metrics::RoomMeter::default()),
            sql_rows: crate::metrics::client::SqlRows::default(),
            report_scheduled: Cell::new(false),
            alarm_due: Cell::new(None),
            metrics_off: Cell::new(false),
            env,
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        if req.path() == "/call" && req.method() == worker::Method::Post {
            return match req.json::<RoomRequest>().await {
                Ok(request) => {
                    let answer = self.dispatch(request).await;
                    // What the call did (a moderation command's events, closed sockets) is
                    // counted in the next batch.
                    self.schedule_report().await;
                    answer
                }
                Err(e) => error_response(&ChatError::new(
                    ErrorCode::InvalidFrame,
                    format!("Not a room request: {e}"),
                )),
            };
        }
        let Some(header) = req.headers().get(CONNECT_HEADER)? else {
            return Response::error("not found", 404);
        };
        let upgrade: Upgrade = serde_json::from_str(&header)
            .map_err(|e| worker::Error::RustError(format!("bad connect header: {e}")))?;
        self.upgrade(upgrade).await
    }

    async fn websocket_message(
        &self,
        ws: WebSocket,
        message: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        self.load(None)?;
        let Some(id) = self.socket_id(&ws) else {
            console_error!("socket without an id; closing it");
            let _ = ws.close(Some(1011), Some("internal"));
            return Ok(());
        };
        let frame = match &message {
            WebSocketIncomingMessage::String(text) => Frame::Text(text),
            WebSocketIncomingMessage::Binary(bytes) => Frame::Binary(bytes.len()),
        };
        let Some(after) = self.take_frame(id, frame, now()) else {
            return Ok(());
        };
        if let Some(info) = after.info_changed {
            self.write_directory(&info).await;
        }
        if after.posted {
            self.schedule_directory_flush().await;
        }
        // After the welcome went out, so a first join is not slowed by the directory write.
        for member in after.new_members {
            self.record_membership(&member.user_id).await;
        }
        // Production only (Workers AI + Vectorize bound): keep the semantic index true.
        if let (Some(semantic), false) = (&self.semantic, after.stored.is_empty()) {
            let slug = self.room.borrow().as_ref().map(|r| r.info().slug.clone());
            if let Some(slug) = slug {
                super::semantic::index_events(semantic, &slug, &after.stored).await;
            }
        }
        self.schedule_report().await;
        self.sweep_if_released().await;
        self.run_ai_work().await;
        // An answer that ended is counted too.
        self.schedule_report().await;
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
        self.schedule_report().await;
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> worker::Result<()> {
        self.drop_socket(&ws);
        self.schedule_report().await;
        Ok(())
    }

    async fn alarm(&self) -> worker::Result<Response> {
        self.flush_scheduled.set(false);
        // How late the alarm runs (known when this instance set it).
        if let (Some(due), Some(mut meter)) = (self.alarm_due.take(), self.meter()) {
            meter.alarm_lag((now() - due).max(0) as u64);
        }
        self.load(None)?;
        let (slug, count, last) = {
            let room = self.room.borrow();
            let Some(room) = room.as_ref() else {
                return Response::ok("no room");
            };
            let store = room.store();
            (
                room.info().slug.clone(),
                store.message_count().map_err(stored)?,
                store.last_message_at().map_err(stored)?,
            )
        };
        // Metrics batches and heartbeats run this alarm too (issue 12): the directory is
        // written only when what it holds of the room moved since the last write.
        let flushed = format!("{count}:{last:?}");
        let unchanged = self.room.borrow().as_ref().is_some_and(|room| {
            room.store()
                .meta(DIRECTORY_FLUSHED)
                .ok()
                .flatten()
                .as_deref()
                == Some(&flushed)
        });
        let write = async {
            if unchanged {
                return Ok(());
            }
            crate::directory::record_activity(&self.env, &slug, count, last).await?;
            if let Some(room) = self.room.borrow().as_ref() {
                let _ = room.store().set_meta(DIRECTORY_FLUSHED, &flushed);
            }
            Ok::<(), worker::Error>(())
        };
        if let Err(e) = write.await {
            // Retried by the runtime: an alarm that throws is re-run with backoff.
            console_error!("directory update for {slug} failed: {e}");
            let failed = crate::logs::room_failure(&slug, "room alarm failed", &e.to_string());
            self.log(failed);
            return Err(e);
        }
        // The alarm is the room's one timer: whatever set it, it does every duty. The file sweep
        // comes after the directory's update (whose failure the runtime retries, sweep and
        // all) and sets the alarm for the next one; a failed sweep schedules its own retry.
        self.files_released.set(false);
        self.sweep_files(now()).await;
        // Before the assistant's work, which may stream an answer for a while.
        self.report_metrics().await;
        // Assistant work found when the room woke (see `fetch`).
        self.run_ai_work().await;
        self.schedule_report().await;
        Response::ok("flushed")
    }
}

impl ChatRoom {
    /// Answers one [`RoomRequest`] from the Worker: each variant with the response type its
    /// [`RoomCall`] names, or a refusal as the API's error body.
    async fn dispatch(&self, request: RoomRequest) -> worker::Result<Response> {
        match request {
            RoomRequest::Close(r) => reply::<CloseSockets>(Ok(Closed {
                closed: self.close_matching(&r),
            })),
            RoomRequest::Moderate(r) => reply::<Moderate>(self.moderate(r).await),
            RoomRequest::NewInvite(r) => {
                reply::<NewInvite>(self.as_caller(&r.caller, |room, conn, now| {
                    room.create_invite(conn, &r.request, crate::random::token(), now)
                }))
            }
            RoomRequest::ListInvites(r) => {
                reply::<ListInvites>(self.as_caller(&r.caller, |room, conn, _| {
                    room.invites(conn).map(|invites| InviteList { invites })
                }))
            }
            RoomRequest::Join(r) => reply::<Join>(self.as_caller(&r.caller, |room, conn, now| {
                room.join(
                    conn,
                    &r.caller.owner_id,
                    r.invite.as_deref(),
                    r.network.as_deref(),
                    now,
                )
                .map(|role| Joined { role })
            })),
            RoomRequest::Admission(r) => reply::<Admission>(self.admission(&r)),
            RoomRequest::ListMembers(r) => {
                reply::<ListMembers>(self.as_caller(&r.caller, |room, conn, _| {
                    room.members(conn).map(|members| MemberList { members })
                }))
            }
            RoomRequest::AuditLog(r) => {
                reply::<AuditLog>(self.as_caller(&r.caller, |room, conn, _| {
                    room.audit_log(conn, r.before)
                        .map(|entries| AuditPage { entries })
                }))
            }
            RoomRequest::ProfileChanged(r) => reply::<ProfileChanged>(self.profile_changed(r)),
            RoomRequest::Search(r) => reply::<Search>(self.search(r).await),
            RoomRequest::Unread(r) => {
                self.test_delay(r.loopback).await;
                reply::<Unread>(self.read_room(&r.room, |room| {
                    let (read, counts) = room.unread(&r.user_id)?;
                    Ok(RoomUnread {
                        slug: r.room.slug.clone(),
                        read,
                        counts,
                    })
                }))
            }
            RoomRequest::ContextOf(r) => reply::<ContextOf>(self.read_room(&r.room, |room| {
                room.may_read(&r.user_id)?;
                let (thread, messages) = room
                    .store()
                    .context(r.seq, limits::CONTEXT_SIDE)?
                    .ok_or_else(|| {
                        Failure::Refused(ChatError::new(
                            ErrorCode::NotFound,
                            format!("Message {} does not exist.", r.seq),
                        ))
                    })?;
                Ok(Context {
                    target: r.seq,
                    thread,
                    messages,
                })
            })),
            RoomRequest::Seed(r) => reply::<Seed>(self.seed_request(r)),
            RoomRequest::BeginUpload(r) => {
                let ticket = self.with_files(&r.user, |room, now| {
                    room.begin_upload(
                        &r.user.user_id,
                        r.user.admin,
                        &r.request,
                        &r.limits,
                        now,
                        crate::files::new_id,
                    )
                });
                if ticket.is_ok() {
                    // An upload never sent is deleted after a day: the alarm must come by then.
                    self.schedule_file_sweep().await;
                }
                reply::<BeginUpload>(ticket)
            }
            RoomRequest::UploadTarget(r) => {
                reply::<UploadTarget>(self.with_files(&r.user, |room, _| {
                    room.upload_target(&r.user.user_id, &r.id)
                        .map(|row| UploadSlot {
                            size: row.size,
                            stored: row.attachment.is_some(),
                        })
                }))
            }
            RoomRequest::UploadStored(r) => {
                reply::<UploadStored>(self.with_files(&r.user, |room, _| {
                    room.upload_stored(&r.user.user_id, &r.id, r.file)
                }))
            }
            RoomRequest::ThumbStored(r) => {
                reply::<ThumbStored>(self.with_files(&r.user, |room, _| {
                    room.thumb_stored(&r.user.user_id, &r.id)
                        .map(|()| Done { ok: true })
                }))
            }
            RoomRequest::CancelUpload(r) => {
                let cancelled = self.with_files(&r.user, |room, now| {
                    room.cancel_upload(&r.user.user_id, &r.id, now)
                });
                if cancelled.is_ok() {
                    // Its objects go now, not at the next sweep.
                    self.sweep_files(now()).await;
                }
                reply::<CancelUpload>(cancelled.map(|()| Done { ok: true }))
            }
            RoomRequest::ReadFile(r) => reply::<ReadFile>(self.with_files(&r.user, |room, _| {
                room.file(&r.user.user_id, r.user.admin, &r.id)
            })),
            RoomRequest::ListFiles(r) => reply::<ListFiles>(self.with_files(&r.user, |room, _| {
                room.files(&r.user.user_id, r.user.admin, r.kind, r.before)
            })),
            RoomRequest::SweepFiles(r) => reply::<SweepFiles>(self.test_sweep(r).await),
        }
    }

    /// Runs `act` on the room for a verified user of its files (`shared::room::attachments`
    /// decides what they may do).
    fn with_files<T>(
        &self,
        user: &FileUser,
        act: impl FnOnce(&mut Room<DurableSql>, i64) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        self.test_switches.set(user.loopback);
        self.load_for(&user.room)?;
        let mut room = self.room.borrow_mut();
        let room = room.as_mut().ok_or_else(not_loaded)?;
        act(room, now())
    }

    /// Deletes the objects of the files the room releases at `at` and sets the alarm for the
    /// next sweep (the glue is `crate::files::sweep`). Returns how many uploads went.
    async fn sweep_files(&self, at: i64) -> u32 {
        let slug = self.slug();
        if slug.is_empty() {
            return 0;
        }
        let (deleted, next) = match crate::files::sweep(&self.env, &slug, &self.room, at).await {
            Ok(swept) => (swept.deleted, swept.next),
            Err(e) => {
                console_error!("file sweep in {slug} failed; retrying later: {e}");
                self.log(crate::logs::room_failure(
                    &slug,
                    "file sweep failed",
                    &e.to_string(),
                ));
                (0, Some(now() + SWEEP_RETRY_MS))
            }
        };
        if let Some(next) = next {
            self.alarm_by(next).await;
        }
        deleted
    }

    /// Sweeps now if a deleted message released files.
    async fn sweep_if_released(&self) {
        if self.files_released.replace(false) {
            self.sweep_files(now()).await;
        }
    }

    /// Sets the alarm for the room's next file sweep, if one is due.
    async fn schedule_file_sweep(&self) {
        let next = match self.room.borrow().as_ref().map(|r| r.next_file_sweep()) {
            Some(Ok(next)) => next,
            Some(Err(e)) => {
                console_error!("could not read the next file sweep: {e:?}");
                None
            }
            None => None,
        };
        if let Some(next) = next {
            self.alarm_by(next).await;
        }
    }

    /// Makes the alarm fire no later than `at` (ms since the epoch). An alarm already set
    /// earlier is kept: the room has one alarm, and it does every duty whenever it runs
    /// (directory flush, assistant work, file sweep).
    async fn alarm_by(&self, at: i64) {
        let storage = self.state.storage();
        let result = match storage.get_alarm().await {
            Ok(Some(set)) if set <= at => Ok(()),
            Ok(_) => {
                self.alarm_due.set(Some(at.max(now() + 1)));
                storage.set_alarm((at - now()).max(1)).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            console_error!("could not set the room's alarm: {e}");
        }
    }

    /// Test-only (`FILES_TEST_SWEEP=1`, requests to localhost): the sweep as if the clock read
    /// `ahead_ms` later, so a test sees an unsent upload deleted without waiting a day.
    async fn test_sweep(&self, r: SweepFiles) -> Result<Swept, Failure> {
        self.test_switches.set(r.loopback);
        let enabled = config::string(&self.env, "FILES_TEST_SWEEP").as_deref() == Some("1");
        if !(enabled && r.loopback) {
            return Err(Failure::Refused(ChatError::new(
                ErrorCode::NotFound,
                "Test sweeps are not enabled on this server.",
            )));
        }
        self.load_for(&r.room)?;
        let deleted = self.sweep_files(now() + r.ahead_ms).await;
        Ok(Swept { deleted })
    }

    /// Test-only (never in wrangler.toml, and only for requests the Worker got at localhost):
    /// a slow room, to test a fan-out's deadline (`ROOM_QUERY_TEST_DELAY_MS`).
    async fn test_delay(&self, loopback: bool) {
        self.test_switches.set(loopback);
        if let Some(ms) = config::string(&self.env, "ROOM_QUERY_TEST_DELAY_MS")
            .filter(|_| loopback)
            .and_then(|v| v.parse::<u64>().ok())
        {
            worker::Delay::from(std::time::Duration::from_millis(ms)).await;
        }
    }

    /// Loads the room with `info`, the directory's entry for it.
    fn load_for(&self, info: &RoomInfo) -> Result<(), Failure> {
        self.load(Some(info.clone()))
            .map_err(|e| Failure::Storage(e.to_string()))
    }

    /// Runs `read` on the room loaded with `info`.
    fn read_room<T>(
        &self,
        info: &RoomInfo,
        read: impl FnOnce(&Room<DurableSql>) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        self.load_for(info)?;
        let room = self.room.borrow();
        let room = room.as_ref().ok_or_else(not_loaded)?;
        read(room)
    }

    /// Runs `act` for a verified caller as a connection of this room, its role taken from the
    /// room's own records ([`Room::act_as`]).
    fn as_caller<T>(
        &self,
        caller: &Caller,
        act: impl FnOnce(&mut Room<DurableSql>, &Conn, i64) -> Result<T, Failure>,
    ) -> Result<T, Failure> {
        self.load_for(&caller.room)?;
        let now = now();
        let mut conn = caller.user.conn();
        let mut room = self.room.borrow_mut();
        let room = room.as_mut().ok_or_else(not_loaded)?;
        room.act_as(&mut conn, &caller.owner_id, now)?;
        act(room, &conn, now)
    }

    /// One person cannot hold more than their share of the room's sockets, nor the room more
    /// than it can serve.
    /// A socket upgrade: the connect it stands for (verified now, or remembered for a
    /// reconnect), admitted by the room, accepted, and its first frame taken.
    async fn upgrade(&self, upgrade: Upgrade) -> worker::Result<Response> {
        let at = now();
        let (connect, info, reused) = match upgrade {
            Upgrade::Verified(connect) => {
                let info = connect.room.clone();
                (*connect, Some(info), false)
            }
            Upgrade::Reconnect(request) => {
                let remembered = self.verified.borrow().get(&request.credential, at).cloned();
                let Some(mut connect) = remembered else {
                    return Ok(Response::empty()?.with_status(NOT_VERIFIED_HERE));
                };
                connect.socket = request.socket;
                if connect.network.is_some() {
                    connect.network = request.network;
                }
                // The directory entry it carried may be older than the room's own (settings
                // change in the room): the room keeps what it has.
                (connect, None, true)
            }
        };
        self.test_switches.set(connect.socket.loopback);
        self.load(info)?;

        if let Err(refusal) = self.may_open_socket(&connect.author.id) {
            return error_response(&refusal);
        }

        // The room decides the connection's role, and refuses banned users, non-members of a
        // private room and new guests from a banned guest's network, before the upgrade.
        let mut conn = connect.conn();
        let admitted = match self.room.borrow_mut().as_mut() {
            Some(room) => room.admit(&mut conn, &connect.owner_id, connect.network.as_deref(), at),
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
        // Only an admitted connect is remembered: a refusal is decided afresh every time. Before
        // any await, so no push forgetting this user can fall between admitting and remembering.
        if let (Some(reuse), false) = (&connect.reuse, reused) {
            let (user, session) = (connect.author.id.clone(), connect.session_id.clone());
            let (credential, until) = (reuse.credential.clone(), reuse.until);
            self.verified.borrow_mut().remember(
                credential,
                &user,
                session.as_deref(),
                until,
                connect.clone(),
                at,
            );
        }
        let client = self.accept(&connect, conn, at)?;
        if self.ai.has_work() {
            // Assistant work found on wake (a queued answer) cannot run in this handler,
            // which must answer the upgrade now: the alarm picks it up at once.
            self.alarm_due.set(Some(now() + 1));
            let _ = self.state.storage().set_alarm(1).await;
        }
        if let Some(mut meter) = self.meter() {
            meter.connected();
        }
        self.schedule_report().await;
        let timing = Headers::new();
        timing.set(
            JOIN_TIMING_HEADER,
            if reused {
                "join;desc=\"reused\""
            } else {
                "join;desc=\"verified\""
            },
        )?;
        Ok(Response::from_websocket(client)?.with_headers(timing))
    }

    /// Accepts an admitted connection's socket (hibernatable, its table id as its tag), then
    /// takes the first frame its URL carried: the client's end of the pair, for the response.
    fn accept(&self, connect: &Connect, conn: Conn, at: i64) -> worker::Result<WebSocket> {
        let pair = WebSocketPair::new()?;
        let id = {
            let mut slots = self.slots.borrow_mut();
            let slots = slots.get_or_insert_with(IdMap::default);
            let id = slots.keys().max().map_or(1, |m| m + 1);
            self.state
                .accept_websocket_with_tags(&pair.server, &[&id.to_string()]);
            let slot = Slot {
                ws: pair.server,
                conn,
                session: connect.session_id.clone(),
                batch: connect.socket.batch,
            };
            slot.ws.serialize_attachment(slot.attachment(id))?;
            slots.insert(id, slot);
            id
        };
        // The first frame from the URL, through the same gate as one sent on the socket: its
        // answer (the welcome and the page) is on its way as the upgrade completes.
        if let Some(first) = connect.socket.first_frame.as_deref() {
            if let Some(after) = self.take_frame(id, Frame::Text(first), at) {
                // A first frame is a hello or a watch (the gate refuses anything else first):
                // it posts and changes nothing, but may make a first-time member, recorded in
                // the directory after the upgrade is answered.
                for member in after.new_members {
                    let record = record_member(self.env.clone(), self.slug(), member.user_id);
                    self.state.wait_until(record);
                }
            }
        }
        Ok(pair.client)
    }

    /// The room's answer to one frame from socket `id`, carried out (replies, broadcasts,
    /// closes); `None` if the socket or the room is gone. What is left needs I/O: the caller
    /// does it.
    fn take_frame(&self, id: u64, frame: Frame<'_>, now: i64) -> Option<AfterFrame> {
        let effects = {
            let mut slots_ref = self.slots.borrow_mut();
            let slots = slots_ref.get_or_insert_with(IdMap::default);
            // Take the sender's slot out so the presence closure can read the others.
            let slot = slots.remove(&id)?;
            let mut room_ref = self.room.borrow_mut();
            let Some(room) = room_ref.as_mut() else {
                slots.insert(id, slot);
                return None;
            };
            // One limiter per user, shared by all their sockets here.
            let mut limiters = self.limiters.borrow_mut();
            let limiter = limiters
                .entry(slot.conn.author.id.clone())
                .or_insert_with(|| ConnLimiter::new(self.limits, now));
            let effects = room.on_frame(&slot.conn, limiter, frame, now, || {
                self.presence.borrow().welcome_for(&slot.conn.author.id)
            });
            slots.insert(id, slot);
            effects
        };
        let mut after = AfterFrame::default();
        for effect in effects {
            if let Effect::InfoChanged(info) = &effect {
                after.info_changed = Some(info.clone());
            }
            if let Effect::Broadcast(ServerMessage::Event { event }) = &effect {
                after.posted |= matches!(
                    event.kind,
                    EventKind::Message { .. } | EventKind::Reply { .. }
                );
                after.stored.push(event.clone());
            }
            if let Effect::NewMember(member) = effect {
                after.new_members.push(member);
                continue;
            }
            self.carry_out(id, effect);
        }
        Some(after)
    }

    /// A socket's id in the table: its tag, else (a socket accepted before sockets had tags)
    /// its attachment's.
    fn socket_id(&self, ws: &WebSocket) -> Option<u64> {
        match self.state.get_tags(ws).first() {
            Some(tag) => tag.parse().ok(),
            None => match ws.deserialize_attachment::<AttachmentId>() {
                Ok(Some(AttachmentId { id })) => Some(id),
                _ => None,
            },
        }
    }

    fn may_open_socket(&self, user_id: &str) -> Result<(), ChatError> {
        let slots = self.slots.borrow();
        let slots = slots.as_ref();
        let mine = slots.map_or(0, |s| {
            s.values()
                .filter(|slot| slot.conn.author.id == user_id)
                .count()
        });
        may_open_socket(mine, slots.map_or(0, IdMap::len))
    }

    /// Whether an upgrade of this caller would be admitted now: the same checks, in the same
    /// order, as `fetch` makes before it accepts a socket (the socket caps, then
    /// [`Room::may_admit`]), with nothing stored and no membership made.
    fn admission(&self, r: &Admission) -> Result<Done, Failure> {
        self.test_switches.set(r.loopback);
        self.load_for(&r.caller.room)?;
        self.may_open_socket(&r.caller.user.id)
            .map_err(Failure::Refused)?;
        let conn = r.caller.user.conn();
        let room = self.room.borrow();
        let room = room.as_ref().ok_or_else(not_loaded)?;
        room.may_admit(&conn, &r.caller.owner_id, r.network.as_deref(), now())?;
        Ok(Done { ok: true })
    }

    /// A moderation command over HTTP: the same [`Room::command`] as the socket's, its effects
    /// carried out the same way.
    async fn moderate(&self, r: Moderate) -> Result<Done, Failure> {
        let effects = self.as_caller(&r.caller, |room, conn, now| {
            room.command(conn, r.command, now)
        })?;
        self.carry_out_all(effects).await;
        self.sweep_if_released().await;
        Ok(Done { ok: true })
    }

    /// A user's profile changed: their open connections take the new name, avatar and
    /// preferences, and the room is told. A room that was never opened has nothing to tell.
    fn profile_changed(&self, r: ProfileChanged) -> Result<Done, Failure> {
        // A remembered connect carries the old name, avatar, preferences and admin flag.
        self.verified.borrow_mut().forget_user(&r.user.id, now());
        if self.load(None).is_err() {
            return Ok(Done { ok: true });
        }
        let user = r.user;
        let effects = {
            let mut room = self.room.borrow_mut();
            let room = room.as_mut().ok_or_else(not_loaded)?;
            room.profile_changed(user.conn().member(), r.as_of, now())?
        };
        // The room holds a newer profile than this one (two changes crossed on their way).
        let Some(effects) = effects else {
            return Ok(Done { ok: true });
        };
        self.presence.borrow_mut().renamed(&user.conn().member());
        self.update_conns(&user.id, |c| {
            c.author.name.clone_from(&user.name);
            c.avatar.clone_from(&user.avatar);
            user.prefs.apply_to(&mut c.personalization);
            c.admin = user.admin;
        });
        for effect in effects {
            self.carry_out(0, effect);
        }
        Ok(Done { ok: true })
    }

    /// Search in this room for a member who may read it.
    async fn search(&self, r: Search) -> Result<SearchResults, Failure> {
        self.test_delay(r.loopback).await;
        let query = search::parse_query(&r.query).map_err(Failure::Refused)?;
        // Semantic candidates first: no borrow of the room may be held across an await.
        let semantic = match &self.semantic {
            Some(semantic) if query.fts_match().is_some() => semantic
                .query(&r.room.slug, &query.text())
                .await
                .unwrap_or_else(|e| {
                    console_error!("semantic search failed, full-text only: {e}");
                    Vec::new()
                }),
            _ => Vec::new(),
        };
        let limit = r.limit.clamp(1, limits::SEARCH_LIMIT_MAX);
        let window = config::search_rank_window(&self.env);
        self.read_room(&r.room, |room| {
            room.may_read(&r.user_id)?;
            let hits = room.store().search_hybrid(
                &r.room.slug,
                &query,
                limit,
                &semantic,
                super::semantic::CANDIDATES,
                window,
            )?;
            Ok(SearchResults {
                hits,
                partial: false,
                missing: Vec::new(),
            })
        })
    }

    /// The bench's bulk seed, when enabled.
    fn seed_request(&self, r: Seed) -> Result<Seeded, Failure> {
        self.test_switches.set(r.loopback);
        if !(config::bench_seed_enabled(&self.env) && r.loopback) {
            return Err(Failure::Refused(ChatError::new(
                ErrorCode::NotFound,
                "Seeding is not enabled on this server.",
            )));
        }
        self.load_for(&r.room)?;
        let head = self
            .seed(r.count.min(SEED_MAX))
            .map_err(|e| Failure::Storage(e.to_string()))?;
        Ok(Seeded { head })
    }

    /// Carries out effects that answer no particular socket, writing a changed directory entry.
    async fn carry_out_all(&self, effects: Vec<Effect>) {
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

    /// Sends a frame, serialized once, to every socket that `to` picks: at once, or (during a
    /// burst, to a socket that accepts batches) with the others of the next few milliseconds.
    /// Returns how many sockets it went to.
    fn send_where(&self, message: &ServerMessage, to: impl Fn(u64, &Conn) -> bool) -> usize {
        let Some(text) = serialize(message) else {
            return 0;
        };
        let mut sockets = 0;
        let opened = {
            let mut outbox = self.outbox.borrow_mut();
            if let Some(slots) = self.slots.borrow().as_ref() {
                for (id, slot) in slots {
                    if to(*id, &slot.conn) {
                        sockets += 1;
                        if let Some(frame) = outbox.offer(id, slot.batch, &text) {
                            // A socket that is closing throws; its close handler cleans up.
                            let _ = slot.ws.send_with_str(&frame);
                        }
                    }
                }
            }
            outbox.take_opened()
        };
        if opened {
            self.flush_while_busy();
        }
        sockets
    }

    /// Sends what the outbox holds every [`COALESCE_MS`] until a window passes with nothing
    /// queued. A task of its own (it holds only the outbox and the sockets), so no handler
    /// waits for it and it never holds a borrow across its sleep.
    fn flush_while_busy(&self) {
        let outbox = Rc::clone(&self.outbox);
        let slots = Rc::clone(&self.slots);
        wasm_bindgen_futures::spawn_local(async move {
            loop {
                worker::Delay::from(std::time::Duration::from_millis(COALESCE_MS)).await;
                let frames = outbox.borrow_mut().flush();
                if frames.is_empty() {
                    return;
                }
                if let Some(slots) = slots.borrow().as_ref() {
                    for (id, frame) in frames {
                        if let Some(slot) = slots.get(&id) {
                            let _ = slot.ws.send_with_str(&frame);
                        }
                    }
                }
            }
        });
    }

    /// Sends what is queued for a socket that is about to close.
    fn send_queued(&self, id: u64, ws: &WebSocket) {
        if let Some(frame) = self.outbox.borrow_mut().take(&id) {
            let _ = ws.send_with_str(&frame);
        }
    }

    /// Records in the directory that a user joined this room (their first join).
    async fn record_membership(&self, user_id: &str) {
        let slug = match self.room.borrow().as_ref() {
            Some(room) => room.info().slug.clone(),
            None => return,
        };
        record_member(self.env.clone(), slug, user_id.to_owned()).await;
    }

    /// Opens storage and rebuilds the socket table after a wake. `info` is the directory's
    /// current entry when a connect brings one.
    fn load(&self, info: Option<RoomInfo>) -> worker::Result<()> {
        let mut room = self.room.borrow_mut();
        match (room.as_mut(), info) {
            (Some(room), Some(info)) => {
                // Every connect brings the directory's entry; most bring what the room has.
                if *room.info() != info {
                    room.store()
                        .set_meta("room_info", &to_json(&info)?)
                        .map_err(stored)?;
                    room.set_info(info);
                }
            }
            (Some(_), None) => {}
            (None, info) => {
                let store = SqlStore::open(DurableSql(
                    self.state.storage().sql(),
                    self.sql_rows.clone(),
                ))
                .map_err(stored)?;
                if self.test_switches.get()
                    && config::string(&self.env, "BENCH_NO_FTS").as_deref() == Some("1")
                {
                    store.drop_search_index_triggers().map_err(stored)?;
                }
                self.metrics_off.set(
                    self.test_switches.get()
                        && config::string(&self.env, "BENCH_NO_METRICS").as_deref() == Some("1"),
                );
                let info = match info {
                    Some(info) => {
                        store
                            .set_meta("room_info", &to_json(&info)?)
                            .map_err(stored)?;
                        info
                    }
                    None => store
                        .meta("room_info")
                        .map_err(stored)?
                        .and_then(|json| serde_json::from_str(&json).ok())
                        .ok_or_else(|| {
                            worker::Error::RustError("room has no stored directory entry".into())
                        })?,
                };
                let mut opened = Room::open(store, info).map_err(stored)?;
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
            let mut rebuilt = IdMap::default();
            let mut presence = Presence::new();
            let at = now();
            for ws in self.state.get_websockets() {
                match ws.deserialize_attachment::<Attachment>() {
                    Ok(Some(att)) => {
                        if att.conn.joined && !att.conn.watching {
                            // Rebuilt quietly: nobody's presence changed while it slept.
                            presence.join(att.id, att.conn.member(), at);
                        }
                        rebuilt.insert(
                            att.id,
                            Slot {
                                ws,
                                conn: att.conn,
                                session: att.session,
                                batch: att.batch,
                            },
                        );
                    }
                    _ => {
                        let _ = ws.close(Some(1011), Some("internal"));
                    }
                }
            }
            *slots = Some(rebuilt);
            *self.presence.borrow_mut() = presence;
        }
        Ok(())
    }

    fn carry_out(&self, from: u64, effect: Effect) {
        match effect {
            Effect::Reply(message) => {
                if let Some(slot) = self.slots.borrow().as_ref().and_then(|s| s.get(&from)) {
                    if let Some(text) = serialize(&message) {
                        // Behind what was queued for this socket; in a burst, with it.
                        let frame = self.outbox.borrow_mut().reply(&from, slot.batch, &text);
                        if let Some(frame) = frame {
                            let _ = slot.ws.send_with_str(&frame);
                        }
                    }
                }
            }
            Effect::Broadcast(message) => {
                self.count(&message);
                self.broadcast(&message, None)
            }
            Effect::BroadcastOthers(message) => {
                // Typing is bounded by who is present: a large room hears a few typists.
                let told = match &message {
                    ServerMessage::Typing { user_id, .. } => {
                        self.presence.borrow_mut().typing(user_id, now())
                    }
                    _ => true,
                };
                if told {
                    self.broadcast(&message, Some(from));
                }
            }
            Effect::PresencePage {
                offset,
                limit,
                query,
            } => {
                let (members, total) = self.presence.borrow_mut().slice(
                    from,
                    offset as usize,
                    limit as usize,
                    query.as_deref(),
                );
                let page = ServerMessage::PresencePage {
                    members,
                    total,
                    offset,
                };
                self.carry_out(from, Effect::Reply(page));
            }
            Effect::Joined => self.mark_joined(from),
            Effect::Close(code, reason) => {
                let slot = self
                    .slots
                    .borrow_mut()
                    .as_mut()
                    .and_then(|s| s.remove(&from));
                if let Some(slot) = slot {
                    self.send_queued(from, &slot.ws);
                    let _ = slot.ws.close(Some(code), Some(reason.as_str()));
                    self.announce_leave(from, &slot.conn);
                }
            }
            Effect::Log(detail) => {
                console_error!("room storage failure: {detail}");
                self.log(crate::logs::room_failure(
                    &self.slug(),
                    "room storage failure",
                    &detail,
                ));
            }
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
            // Deleted by the handler, which can await (`sweep_if_released`); the alarm's sweep
            // catches any that a handler without one leaves.
            Effect::FilesReleased => self.files_released.set(true),
            other => {
                if let Effect::Record(record) = &other {
                    self.count_record(record);
                }
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
            Err(e) => {
                console_error!("assistant step failed: {e:?}");
                let detail = format!("{e:?}");
                self.log(crate::logs::room_failure(
                    &self.slug(),
                    "assistant step failed",
                    &detail,
                ));
            }
        }
    }

    /// Sends a frame to every joined socket (but `except`).
    fn broadcast(&self, message: &ServerMessage, except: Option<u64>) {
        if self.metrics_off.get() {
            self.send_where(message, |id, conn| conn.joined && Some(id) != except);
            return;
        }
        let started = crate::metrics::timing::now_ms();
        let sockets = self.send_where(message, |id, conn| conn.joined && Some(id) != except);
        let micros = ((crate::metrics::timing::now_ms() - started) * 1000.0).max(0.0);
        self.meter
            .borrow_mut()
            .broadcast(micros as u64, sockets as u64);
    }

    fn mark_joined(&self, id: u64) {
        let member = {
            let mut slots = self.slots.borrow_mut();
            let Some(slot) = slots.as_mut().and_then(|slots| slots.get_mut(&id)) else {
                return;
            };
            if slot.conn.joined {
                return;
            }
            slot.conn.joined = true;
            if let Err(e) = slot.ws.serialize_attachment(slot.attachment(id)) {
                console_error!("could not store socket attachment: {e}");
            }
            slot.conn.member()
        };
        let notices = self.presence.borrow_mut().join(id, member, now());
        self.tell(notices);
    }

    /// Sends what presence says to send, and keeps a count that must wait for its second.
    fn tell(&self, notices: Vec<Notice>) {
        for notice in notices {
            match notice {
                Notice::Everyone { frame, except } => self.broadcast(&frame, except),
                Notice::Sockets(ids, frame) => {
                    self.send_where(&frame, |id, conn| conn.joined && ids.contains(&id));
                }
            }
        }
        if self.presence.borrow().deadline().is_some() && !self.presence_tick.get() {
            self.presence_tick.set(true);
            self.tick_presence();
        }
    }

    /// Sends the present count once its second has passed, and again while it keeps changing.
    /// A task of its own holding only presence and the sockets, like the outbox's flush.
    fn tick_presence(&self) {
        let presence = Rc::clone(&self.presence);
        let slots = Rc::clone(&self.slots);
        let scheduled = Rc::clone(&self.presence_tick);
        wasm_bindgen_futures::spawn_local(async move {
            loop {
                let Some(deadline) = presence.borrow().deadline() else {
                    break;
                };
                let wait = (deadline - now()).clamp(1, 1_000) as u64;
                worker::Delay::from(std::time::Duration::from_millis(wait)).await;
                let notices = presence.borrow_mut().tick(now());
                for notice in notices {
                    let Notice::Everyone { frame, .. } = notice else {
                        continue;
                    };
                    let Some(text) = serialize(&frame) else {
                        continue;
                    };
                    // A count may pass frames queued in a burst: it is a number, not an event.
                    if let Some(slots) = slots.borrow().as_ref() {
                        for slot in slots.values().filter(|s| s.conn.joined) {
                            let _ = slot.ws.send_with_str(&text);
                        }
                    }
                }
            }
            scheduled.set(false);
        });
    }

    /// Closes every socket a [`CloseSockets`] matches, announcing who left.
    fn close_matching(&self, request: &CloseSockets) -> u32 {
        // What closes a socket also refuses the next connect: it must be verified in full.
        {
            let mut verified = self.verified.borrow_mut();
            if let Some(session) = &request.session_id {
                verified.forget_session(session, now());
            }
            if let Some(user) = &request.user_id {
                verified.forget_user(user, now());
            }
        }
        // A room never loaded (no stored entry) has no sockets to close.
        if self.load(None).is_err() {
            return 0;
        }
        let closing: Vec<(u64, Slot)> = {
            let mut slots = self.slots.borrow_mut();
            let Some(slots) = slots.as_mut() else {
                return 0;
            };
            let ids: Vec<u64> = slots
                .iter()
                .filter(|(_, s)| request.matches(s.session.as_deref(), &s.conn.author.id))
                .map(|(id, _)| *id)
                .collect();
            ids.iter()
                .filter_map(|id| slots.remove(id).map(|slot| (*id, slot)))
                .collect()
        };
        for (id, slot) in &closing {
            self.send_queued(*id, &slot.ws);
            let _ = slot
                .ws
                .close(Some(request.code), Some(request.reason.as_str()));
        }
        for (id, slot) in &closing {
            self.announce_leave(*id, &slot.conn);
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
                if let Err(e) = slot.ws.serialize_attachment(slot.attachment(*id)) {
                    console_error!("could not store socket attachment: {e}");
                }
            }
        }
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
        let Some(id) = self.socket_id(ws) else {
            return;
        };
        let slot = self.slots.borrow_mut().as_mut().and_then(|s| s.remove(&id));
        self.outbox.borrow_mut().forget(&id);
        // Complete the closing handshake; the socket may already be closed.
        let _ = ws.close(Some(1000), Some("closed"));
        if let Some(slot) = slot {
            self.announce_leave(id, &slot.conn);
        }
    }

    fn announce_leave(&self, id: u64, conn: &Conn) {
        let has_sockets = self
            .slots
            .borrow()
            .as_ref()
            .is_some_and(|slots| slots.values().any(|s| s.conn.author.id == conn.author.id));
        if !has_sockets {
            self.limiters.borrow_mut().remove(&conn.author.id);
        }
        if let Some(mut meter) = self.meter() {
            meter.disconnected();
        }
        let notices = self.presence.borrow_mut().leave(id, now());
        self.tell(notices);
    }

    /// The meter, unless the room runs without metrics (`BENCH_NO_METRICS`).
    fn meter(&self) -> Option<RefMut<'_, shared::metrics::RoomMeter>> {
        (!self.metrics_off.get()).then(|| self.meter.borrow_mut())
    }

    /// Counts an event the room sequenced (and a message, for a post or a reply).
    fn count(&self, message: &ServerMessage) {
        if let (ServerMessage::Event { event }, Some(mut meter)) = (message, self.meter()) {
            meter.event();
            if matches!(
                event.kind,
                EventKind::Message { .. } | EventKind::Reply { .. }
            ) {
                meter.message();
            }
        }
    }

    /// Counts an answer that ended and a rating (the records the assistant keeps in D1).
    fn count_record(&self, record: &shared::room::assistant::Record) {
        use shared::room::assistant::Record;
        let Some(mut meter) = self.meter() else {
            return;
        };
        match record {
            Record::Answer { state, meta, .. } => meter.answer(
                *state == shared::protocol::AnswerState::Failed,
                u64::from(meta.first_token_ms),
                u64::from(meta.total_ms),
            ),
            Record::Feedback { vote, .. } => match vote {
                shared::protocol::Vote::Up => meter.rating(true),
                shared::protocol::Vote::Down => meter.rating(false),
                _ => {}
            },
        }
    }

    /// Who is connected now: sockets (watching ones apart), people, and the database size.
    fn gauges(&self) -> shared::metrics::Gauges {
        let mut gauges = shared::metrics::Gauges::default();
        let mut users = std::collections::HashSet::new();
        if let Some(slots) = self.slots.borrow().as_ref() {
            for slot in slots.values() {
                if slot.conn.watching {
                    gauges.watchers += 1;
                } else {
                    gauges.connections += 1;
                    users.insert(slot.conn.author.id.as_str().to_owned());
                }
            }
        }
        gauges.users = users.len() as u64;
        gauges.rooms = u64::from(gauges.connections > 0);
        gauges.db_bytes = self.state.storage().sql().database_size() as u64;
        gauges
    }

    /// Sets the alarm to send the room's batch, once per batch interval: counting stays a
    /// field increment, and a busy room sends one request every few seconds, not one per
    /// message.
    async fn schedule_report(&self) {
        if self.metrics_off.get()
            || self.report_scheduled.get()
            || !self.meter.borrow().wants_report()
        {
            return;
        }
        self.report_scheduled.set(true);
        self.alarm_by(now() + shared::metrics::REPORT_INTERVAL_MS)
            .await;
    }

    /// Sends the batch to the aggregator (from the alarm), and while people are connected
    /// keeps a heartbeat alarm, so the aggregator can tell them from a room that went away.
    async fn report_metrics(&self) {
        self.report_scheduled.set(false);
        let slug = self.slug();
        if slug.is_empty() || self.metrics_off.get() {
            return;
        }
        let gauges = self.gauges();
        let (read, written) = self.sql_rows.take();
        let report = {
            let mut meter = self.meter.borrow_mut();
            meter.sql(read, written);
            meter.take(&slug, gauges, now())
        };
        if let Some(report) = report {
            crate::metrics::client::report_room(&self.env, report).await;
        }
        if gauges.connections > 0 {
            self.alarm_by(now() + shared::metrics::HEARTBEAT_MS).await;
        }
        // What happened while the batch was on its way.
        self.schedule_report().await;
    }

    async fn schedule_directory_flush(&self) {
        if self.flush_scheduled.get() {
            return;
        }
        self.flush_scheduled.set(true);
        let storage = self.state.storage();
        // An alarm set for later (the next file sweep, a day off) must not hold the flush back.
        let result = match storage.get_alarm().await {
            Ok(Some(set)) if set <= now() + DIRECTORY_FLUSH_MS => Ok(()),
            Ok(_) => {
                self.alarm_due.set(Some(now() + DIRECTORY_FLUSH_MS));
                storage.set_alarm(DIRECTORY_FLUSH_MS).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.flush_scheduled.set(false);
            console_error!("could not schedule the directory update: {e}");
        }
    }
}

/// What the assistant's runtime ([`super::generate`]) needs of the room object.
impl AiHost for ChatRoom {
    /// Runs one assistant step on the room and carries out its effects.
    fn with_room(
        &self,
        step: impl FnOnce(&mut Room<DurableSql>, i64) -> Result<Vec<Effect>, Failure>,
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

    fn with_room_quiet(&self, step: impl FnOnce(&mut Room<DurableSql>)) {
        if let Some(room) = self.room.borrow_mut().as_mut() {
            step(room);
        }
    }

    fn room_mut(&self) -> RefMut<'_, Option<Room<DurableSql>>> {
        self.room.borrow_mut()
    }

    /// Whether generation `gen` is still the one being written.
    fn is_running(&self, gen: u64) -> bool {
        self.room
            .borrow()
            .as_ref()
            .and_then(|r| r.assistant().running())
            .is_some_and(|(_, g)| g == gen)
    }

    /// When generation `gen`'s buffered text must go out.
    fn room_deadline(&self, gen: u64) -> Option<i64> {
        self.room.borrow().as_ref().and_then(|r| r.ai_deadline(gen))
    }

    /// Adds facts to the memory every open connection of `user_id` carries.
    fn learned(&self, user_id: &str, facts: &[String]) {
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
            let _ = slot.ws.serialize_attachment(slot.attachment(*id));
        }
    }

    fn ai(&self) -> &AiRuntime {
        &self.ai
    }

    fn env(&self) -> &Env {
        &self.env
    }

    fn slug(&self) -> String {
        self.room
            .borrow()
            .as_ref()
            .map(|r| r.info().slug.clone())
            .unwrap_or_default()
    }

    fn log(&self, entry: shared::logs::LogEntry) {
        self.log.push(&self.state, &self.env, entry);
    }
}

/// Records `user_id` in the directory as a member of room `slug` (owned, so it can run after
/// the request that found the new member is answered).
async fn record_member(env: Env, slug: String, user_id: String) {
    if let Err(e) = crate::directory::record_member(&env, &slug, &user_id, now()).await {
        console_error!("recording {user_id} as a member of {slug} failed: {e}");
    }
}

fn serialize(message: &ServerMessage) -> Option<Rc<str>> {
    match serde_json::to_string(message) {
        Ok(text) => Some(Rc::from(text)),
        Err(e) => {
            console_error!("could not serialize a server frame: {e}");
            None
        }
    }
}

/// A room's answer to the Worker: the response, or the refusal as the API's error body (the
/// Worker passes it through), with a storage failure's detail logged here only.
fn reply<R: RoomCall>(result: Result<R::Response, Failure>) -> worker::Result<Response> {
    match result {
        Ok(response) => Response::from_json(&response),
        Err(failure) => failure_response(failure),
    }
}

fn failure_response(failure: Failure) -> worker::Result<Response> {
    let (error, detail) = failure.into_error();
    if let Some(detail) = detail {
        console_error!("room storage failure: {detail}");
    }
    error_response(&error)
}

fn not_loaded() -> Failure {
    Failure::Storage("the room could not be loaded".into())
}

/// A storage failure as the runtime's error (logged by the caller, never sent to a client).
fn stored(e: shared::room::StoreError) -> worker::Error {
    worker::Error::RustError(format!("room storage: {e}"))
}

fn to_json<T: Serialize>(value: &T) -> worker::Result<String> {
    serde_json::to_string(value).map_err(|e| worker::Error::RustError(e.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_written_before_sessions_existed_still_read() {
        let old =
            r#"{"id":3,"conn":{"author":{"id":"u","name":"n","role":"member"},"joined":true}}"#;
        let att: Attachment = serde_json::from_str(old).unwrap();
        assert_eq!(att.id, 3);
        assert_eq!(att.session, None);
    }

    /// A connection carrying everything a user may have: a 60-character name, preferences at
    /// the 4 KB a profile save takes, and 50 remembered facts of 200 characters in a 3-byte
    /// script.
    fn heaviest_conn() -> Conn {
        let mut conn = Conn::new(Author {
            id: "u".repeat(32),
            name: "名".repeat(60),
            role: Role::Member,
        });
        conn.personalization.instructions = "指".repeat(1_300);
        conn.personalization.memory = (0..50).map(|_| "記".repeat(200)).collect();
        conn.avatar = Some(format!("/api/avatars/{}", "a".repeat(64)));
        conn
    }

    #[test]
    fn an_attachment_fits_what_a_hibernating_socket_may_keep_whatever_the_user_carries() {
        let conn = heaviest_conn();
        let att = Attachment::new(7, conn.clone(), Some("s".repeat(64)), true);
        let size = serde_json::to_string(&att).unwrap().len();
        assert!(size <= ATTACHMENT_BUDGET, "{size} bytes");
        // Only the remembered facts give way (the next connect brings them back).
        assert_eq!(att.conn.author, conn.author);
        assert_eq!(
            att.conn.personalization.instructions,
            conn.personalization.instructions
        );
        assert!(att.conn.personalization.memory.len() < 50);
        // A usual connection keeps everything.
        let mut usual = heaviest_conn();
        usual.personalization.memory.truncate(3);
        let att = Attachment::new(7, usual.clone(), None, false);
        assert_eq!(att.conn, usual);
    }
}
