//! The Worker ↔ room contract. Every call the Worker makes to a room's Durable Object is one
//! [`RoomRequest`] variant, bound to the type it answers with by [`RoomCall`], so a call site
//! cannot ask for one thing and decode another. One client function ([`call`]) sends them, one
//! dispatcher in the object (`ChatRoom::dispatch`) answers them, and a refusal travels as the
//! API's one error body ([`crate::http::error_response`]). The socket upgrade is the only other
//! way in ([`connect`]), because a WebSocket must be handed over as a response to a fetch.
//!
//! The object is reachable only through the Worker (the public router never forwards to it), so
//! what a request says about the caller is trusted: the Worker verified it.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use shared::ai::Personalization;
use shared::error::ChatError;
use shared::limits::UploadLimits;
use shared::media::Kind;
use shared::moderation::http::{AuditPage, InviteList, MemberList};
use shared::moderation::{Command, CreateInvite, Invite};
use shared::profile::AiPrefs;
use shared::protocol::http::{
    Context, ErrorBody, FileList, RoomUnread, SearchResults, UploadTicket,
};
use shared::protocol::{Attachment, Author, Role, RoomInfo, Seq};
use shared::room::attachments::StoredFile;
use worker::{Env, Headers, Method, Request, RequestInit, Response};

/// The Durable Object namespace binding of the rooms.
pub const ROOMS_BINDING: &str = "ROOMS";

/// Header on the upgrade request: a JSON [`Connect`].
pub const CONNECT_HEADER: &str = "X-Chat-Connect";

const CALL_URL: &str = "https://room.internal/call";
const CONNECT_URL: &str = "https://room.internal/connect";

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

/// A verified user acting in a room: who, and the room's directory entry (which lets a room
/// that never had a connection open its storage) with its creator, its first owner.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Caller {
    /// Who asks.
    pub user: Identity,
    /// The room's directory entry.
    pub room: RoomInfo,
    /// The room's creator.
    pub owner_id: String,
}

/// What the Worker tells the room about a new socket, from the verified session and the
/// directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// (`Room::admit`), not by the Worker: `author.role` is ignored.
    #[serde(default)]
    pub owner_id: String,
    /// Whether the user is a global admin.
    #[serde(default)]
    pub admin: bool,
    /// The user's avatar URL.
    #[serde(default)]
    pub avatar: Option<String>,
    /// What the upgrade request itself asks.
    #[serde(default)]
    pub socket: SocketRequest,
    /// A guest's network as a keyed hash (`crate::network::key`), `None` for a signed-in
    /// account: the room refuses a new guest from a network under a guest's ban.
    #[serde(default)]
    pub network: Option<String>,
    /// When the Worker began reading the user's name (its clock), `None` for a guest, whose
    /// name comes from a cookie that may predate a rename (`shared::room::Conn::name_as_of`).
    #[serde(default)]
    pub name_as_of: Option<i64>,
    /// Whether, and until when, the room may admit this browser's next connects as this one
    /// without the Worker verifying them again. `None` for a user whose connect carries what
    /// may change without a push to the room (the assistant's memory of them).
    #[serde(default)]
    pub reuse: Option<Reuse>,
}

/// What an upgrade request asks of its socket, read from the request on every connect, verified
/// in full or reused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SocketRequest {
    /// The client accepts batched frames ([`shared::protocol::BATCH_QUERY`] on its socket URL).
    #[serde(default)]
    pub batch: bool,
    /// The original request came to localhost: the room may honour test-only switches
    /// (`BENCH_NO_FTS`), which it ignores for any other host.
    #[serde(default)]
    pub loopback: bool,
    /// The connection's first frame, carried in the socket URL
    /// ([`shared::protocol::FIRST_FRAME_PARAM`]): the room takes it as the socket opens.
    #[serde(default)]
    pub first_frame: Option<String>,
}

/// How long the room may reuse a [`Connect`] for the same browser's next connects
/// (`shared::room::verified`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reuse {
    /// The digest of the identity cookies the connect was verified from ([`Reconnect::credential`]).
    pub credential: String,
    /// Until when (ms since the epoch): at most [`shared::room::verified::REUSE_MS`] from the
    /// verification, and never past the session's own expiry.
    pub until: i64,
}

/// A reconnect the Worker has not verified: only what it can tell without I/O. The room admits
/// it as the [`Connect`] it remembers for [`Reconnect::credential`], or answers
/// [`NOT_VERIFIED_HERE`] and the Worker verifies in full.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reconnect {
    /// A digest of the request's identity cookies (`crate::session::credential`).
    pub credential: String,
    /// What this request asks of its socket.
    #[serde(default)]
    pub socket: SocketRequest,
    /// The request's network as a guest's would be keyed ([`Connect::network`]); used only if
    /// the remembered connect is a guest's.
    #[serde(default)]
    pub network: Option<String>,
}

/// The status the room answers a [`Reconnect`] with when it remembers no connect for it (or
/// it expired): the Worker then verifies the request in full. Never sent to a client.
pub const NOT_VERIFIED_HERE: u16 = 428;

/// Response header on an accepted upgrade: whether the room reused a remembered verification
/// (`join;desc="reused"`) or was handed a fresh one (`join;desc="verified"`). A standard
/// `Server-Timing` entry, readable by the client and by tests.
pub const JOIN_TIMING_HEADER: &str = "Server-Timing";

/// What the upgrade request carries to the room (in [`CONNECT_HEADER`]).
#[derive(Debug, Serialize, Deserialize)]
// Externally tagged (`{"verified": {...}}`): an internally tagged enum is buffered whole before
// it is read, which cost a join about half a millisecond in the room.
#[serde(rename_all = "snake_case")]
pub enum Upgrade {
    /// Verified by the Worker just now.
    Verified(Box<Connect>),
    /// A credential the room may have seen verified within the last minute.
    Reconnect(Reconnect),
}

/// Would a [`Connect`] of this caller be admitted now? The room answers as the upgrade would —
/// its socket caps, then `Room::may_admit` — and stores nothing. A browser cannot read why an
/// upgrade was refused (its socket only closes), so the app asks this afterwards.
#[derive(Debug, Serialize, Deserialize)]
pub struct Admission {
    /// Who would connect, and the room's directory entry and creator.
    pub caller: Caller,
    /// A guest's network, as in [`Connect::network`] (`None` for a signed-in account).
    #[serde(default)]
    pub network: Option<String>,
    /// The original request came to localhost (test-only switches apply), as in
    /// [`Connect::loopback`].
    #[serde(default)]
    pub loopback: bool,
}

/// Close the sockets of a session or a user (revoked session, disabled or banned user).
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
    /// Whether a socket opened by `session` for `user_id` is one to close.
    pub fn matches(&self, session: Option<&str>, user_id: &str) -> bool {
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

/// A moderation command (kick, ban, mute, roles, room settings, revoking an invite).
#[derive(Debug, Serialize, Deserialize)]
pub struct Moderate {
    /// Who asks.
    pub caller: Caller,
    /// The command.
    pub command: Command,
}

/// Create an invite link.
#[derive(Debug, Serialize, Deserialize)]
pub struct NewInvite {
    /// Who asks.
    pub caller: Caller,
    /// Its limits.
    pub request: CreateInvite,
}

/// List the room's invite links.
#[derive(Debug, Serialize, Deserialize)]
pub struct ListInvites {
    /// Who asks.
    pub caller: Caller,
}

/// Join the room (with an invite for a private room).
#[derive(Debug, Serialize, Deserialize)]
pub struct Join {
    /// Who asks.
    pub caller: Caller,
    /// The invite token.
    pub invite: Option<String>,
    /// A guest's network, as in [`Connect::network`] (`None` for a signed-in account).
    #[serde(default)]
    pub network: Option<String>,
}

/// The role a [`Join`] gave.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Joined {
    /// The user's role in the room.
    pub role: Role,
}

/// List the room's members.
#[derive(Debug, Serialize, Deserialize)]
pub struct ListMembers {
    /// Who asks.
    pub caller: Caller,
}

/// A page of the room's audit log.
#[derive(Debug, Serialize, Deserialize)]
pub struct AuditLog {
    /// Who asks.
    pub caller: Caller,
    /// Entries with ids below this.
    pub before: Option<u64>,
}

/// A user's profile changed: update their connections and tell the room. Sent only to rooms
/// that exist (the user's), so it carries no directory entry.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProfileChanged {
    /// The user as they are now.
    pub user: Identity,
    /// When the Worker read the changed profile (its clock, after the change was written), so
    /// the room can tell it from an older name that a connect read before the change.
    #[serde(default)]
    pub as_of: Option<i64>,
}

/// Full-text (and in production semantic) search in the room.
#[derive(Debug, Serialize, Deserialize)]
pub struct Search {
    /// The room's directory entry.
    pub room: RoomInfo,
    /// Who asks.
    pub user_id: String,
    /// The query text (validated by the Worker).
    pub query: String,
    /// Results wanted.
    pub limit: u32,
    /// The original request came to localhost (test-only switches apply).
    #[serde(default)]
    pub loopback: bool,
}

/// A member's unread counts.
#[derive(Debug, Serialize, Deserialize)]
pub struct Unread {
    /// The room's directory entry.
    pub room: RoomInfo,
    /// Whose counts.
    pub user_id: String,
    /// The original request came to localhost (test-only switches apply).
    #[serde(default)]
    pub loopback: bool,
}

/// A message with the messages around it.
#[derive(Debug, Serialize, Deserialize)]
pub struct ContextOf {
    /// The room's directory entry.
    pub room: RoomInfo,
    /// Who asks.
    pub user_id: String,
    /// The message.
    pub seq: Seq,
}

/// The bench's bulk seed (`BENCH_SEED=1` only, never in wrangler.toml).
#[derive(Debug, Serialize, Deserialize)]
pub struct Seed {
    /// The room's directory entry.
    pub room: RoomInfo,
    /// How many messages to add.
    pub count: u64,
    /// The original request came to localhost: seeding is a test-only switch.
    #[serde(default)]
    pub loopback: bool,
}

/// The room's head after a [`Seed`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Seeded {
    /// The new head.
    pub head: Seq,
}

/// Who acts on the room's files, as the Worker verified them: the session's user (guests
/// included), whether they are a global admin, and the room's directory entry. The room decides
/// membership, bans and mutes itself (`shared::room::attachments`), so no profile is read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileUser {
    /// The room's directory entry.
    pub room: RoomInfo,
    /// Who asks.
    pub user_id: String,
    /// A global admin.
    #[serde(default)]
    pub admin: bool,
    /// The original request came to localhost (test-only switches apply).
    #[serde(default)]
    pub loopback: bool,
}

/// Announce an upload (`POST /api/rooms/{slug}/uploads`).
#[derive(Debug, Serialize, Deserialize)]
pub struct BeginUpload {
    /// Who asks.
    pub user: FileUser,
    /// What they announce.
    pub request: shared::protocol::http::BeginUpload,
    /// The limits the Worker's configuration sets (`crate::config::upload_limits`).
    pub limits: UploadLimits,
}

/// May the caller store bytes for upload `id` now? Answered before any byte is read, so a
/// foreign or guessed id stores nothing.
#[derive(Debug, Serialize, Deserialize)]
pub struct UploadTarget {
    /// Who asks.
    pub user: FileUser,
    /// The attachment id.
    pub id: String,
}

/// What the Worker may store for an [`UploadTarget`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct UploadSlot {
    /// Bytes announced: the body must be exactly this long.
    pub size: u64,
    /// Bytes are already stored (this `PUT` is a retry that overwrites the same object).
    pub stored: bool,
}

/// The Worker stored an upload's bytes.
#[derive(Debug, Serialize, Deserialize)]
pub struct UploadStored {
    /// Who asks.
    pub user: FileUser,
    /// The attachment id.
    pub id: String,
    /// What the bytes turned out to be.
    pub file: StoredFile,
}

/// The Worker stored an upload's thumbnail.
#[derive(Debug, Serialize, Deserialize)]
pub struct ThumbStored {
    /// Who asks.
    pub user: FileUser,
    /// The attachment id.
    pub id: String,
}

/// Cancel one of the caller's unsent uploads; the room deletes its objects before answering.
#[derive(Debug, Serialize, Deserialize)]
pub struct CancelUpload {
    /// Who asks.
    pub user: FileUser,
    /// The attachment id.
    pub id: String,
}

/// May the caller read file `id`? The answer is its attachment (what to serve it as), or
/// `not_found` — the same for a guessed id, another room's, a non-member and a banned member.
#[derive(Debug, Serialize, Deserialize)]
pub struct ReadFile {
    /// Who asks.
    pub user: FileUser,
    /// The attachment id.
    pub id: String,
}

/// A page of the room's "Files" list.
#[derive(Debug, Serialize, Deserialize)]
pub struct ListFiles {
    /// Who asks.
    pub user: FileUser,
    /// Only this kind.
    #[serde(default)]
    pub kind: Option<Kind>,
    /// Files of messages before this one.
    #[serde(default)]
    pub before: Option<Seq>,
}

/// Test-only (`FILES_TEST_SWEEP=1`, localhost only): run the room's file sweep as if the clock
/// read `ahead_ms` later, so a test sees an unattached upload deleted without waiting a day.
#[derive(Debug, Serialize, Deserialize)]
pub struct SweepFiles {
    /// The room's directory entry.
    pub room: RoomInfo,
    /// How far ahead of now the sweep's clock is.
    pub ahead_ms: i64,
    /// The original request came to localhost.
    #[serde(default)]
    pub loopback: bool,
}

/// What a [`SweepFiles`] deleted.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Swept {
    /// Uploads whose objects were deleted.
    pub deleted: u32,
}

/// An operation that succeeded and has nothing more to say.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Done {
    /// Always true.
    pub ok: bool,
}

/// A request the Worker can send a room, with the type the room answers it with.
pub trait RoomCall: Into<RoomRequest> {
    /// What the room answers.
    type Response: Serialize + DeserializeOwned;
}

/// Declares the request enum and binds each request type to its response, once.
macro_rules! room_calls {
    ($($variant:ident($request:ty) => $response:ty,)*) => {
        /// Every call the Worker makes to a room, by name.
        #[derive(Debug, Serialize, Deserialize)]
        #[serde(tag = "call", content = "body", rename_all = "snake_case")]
        pub enum RoomRequest {
            $(
                #[allow(missing_docs)]
                $variant($request),
            )*
        }
        $(
            impl From<$request> for RoomRequest {
                fn from(request: $request) -> Self {
                    RoomRequest::$variant(request)
                }
            }
            impl RoomCall for $request {
                type Response = $response;
            }
        )*
    };
}

room_calls! {
    Close(CloseSockets) => Closed,
    Moderate(Moderate) => Done,
    NewInvite(NewInvite) => Invite,
    ListInvites(ListInvites) => InviteList,
    Join(Join) => Joined,
    Admission(Admission) => Done,
    ListMembers(ListMembers) => MemberList,
    AuditLog(AuditLog) => AuditPage,
    ProfileChanged(ProfileChanged) => Done,
    Search(Search) => SearchResults,
    Unread(Unread) => RoomUnread,
    ContextOf(ContextOf) => Context,
    Seed(Seed) => Seeded,
    BeginUpload(BeginUpload) => UploadTicket,
    UploadTarget(UploadTarget) => UploadSlot,
    UploadStored(UploadStored) => Attachment,
    ThumbStored(ThumbStored) => Done,
    CancelUpload(CancelUpload) => Done,
    ReadFile(ReadFile) => Attachment,
    ListFiles(ListFiles) => FileList,
    SweepFiles(SweepFiles) => Swept,
}

/// Why a room did not answer with its response.
#[derive(Debug)]
pub enum Unanswered {
    /// It refused (the error is safe to show).
    Refused(ChatError),
    /// It failed (detail for the log).
    Failed(worker::Error),
}

impl From<worker::Error> for Unanswered {
    fn from(e: worker::Error) -> Self {
        Unanswered::Failed(e)
    }
}

impl From<Unanswered> for worker::Error {
    fn from(e: Unanswered) -> Self {
        match e {
            Unanswered::Refused(e) => worker::Error::RustError(format!("refused: {e}")),
            Unanswered::Failed(e) => e,
        }
    }
}

fn json_body<T: Serialize>(value: &T) -> worker::Result<String> {
    serde_json::to_string(value).map_err(|e| worker::Error::RustError(e.to_string()))
}

/// JSON with every non-ASCII character escaped (`\uXXXX`, surrogate pairs past the BMP): a
/// header value must be a byte string, and names like "Zoë" or "Ann · assistant" are not. The
/// room's JSON decoder reads the escapes back as the same text.
fn ascii_json<T: Serialize>(value: &T) -> worker::Result<String> {
    let json = json_body(value)?;
    if json.is_ascii() {
        return Ok(json);
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            // Outside ASCII only string contents occur in JSON, where escapes are valid.
            for unit in c.encode_utf16(&mut [0; 2]) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    Ok(out)
}

/// Sends `request` to the room `slug` and reads its typed answer.
pub async fn call<R: RoomCall>(
    env: &Env,
    slug: &str,
    request: R,
) -> Result<R::Response, Unanswered> {
    let body = json_body(&request.into())?;
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let req = Request::new_with_init(CALL_URL, &init)?;
    let stub = env.durable_object(ROOMS_BINDING)?.get_by_name(slug)?;
    let mut response = stub.fetch_with_request(req).await?;
    if response.status_code() >= 400 {
        // The body carries the code and message; a rate limit's wait travels as the header
        // `error_response` set, so the Worker's answer says `Retry-After` too.
        let retry_after_ms = response
            .headers()
            .get("Retry-After")
            .ok()
            .flatten()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .map(|s| s * 1000);
        return Err(match response.json::<ErrorBody>().await {
            Ok(body) => Unanswered::Refused(ChatError {
                retry_after_ms,
                ..ChatError::new(body.code, body.message)
            }),
            Err(e) => Unanswered::Failed(e),
        });
    }
    Ok(response.json().await?)
}

/// Hands a verified WebSocket upgrade to the room `slug`: its answer is the socket (101), or
/// the room's refusal as an error body.
pub async fn connect(env: &Env, slug: &str, upgrade: &Upgrade) -> worker::Result<Response> {
    // A fresh request: nothing the client sent besides the upgrade reaches the room.
    let headers = Headers::new();
    headers.set("Upgrade", "websocket")?;
    headers.set(CONNECT_HEADER, &ascii_json(upgrade)?)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let inner = Request::new_with_init(CONNECT_URL, &init)?;
    let stub = env.durable_object(ROOMS_BINDING)?.get_by_name(slug)?;
    stub.fetch_with_request(inner).await
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
    fn both_kinds_of_upgrade_travel_in_the_header_and_read_back_as_sent() {
        let socket = SocketRequest {
            batch: true,
            loopback: false,
            first_frame: Some(r#"{"type":"hello","protocol":1}"#.into()),
        };
        let reconnect = Upgrade::Reconnect(Reconnect {
            credential: "c0ffee".into(),
            socket: socket.clone(),
            network: Some("net".into()),
        });
        let header = ascii_json(&reconnect).expect("serializes");
        assert!(header.starts_with(r#"{"reconnect":"#), "{header}");
        match serde_json::from_str(&header).expect("parses") {
            Upgrade::Reconnect(r) => {
                assert_eq!(r.credential, "c0ffee");
                assert_eq!(r.socket.first_frame, socket.first_frame);
                assert!(r.socket.batch);
            }
            other => panic!("read back as {other:?}"),
        }
        // A verified connect with only what it must carry: the rest has its defaults.
        let verified = r#"{"verified":{"author":{"id":"u1","name":"Zoë","role":"member"},
            "room":{"slug":"general","name":"General","created_at":1}}}"#;
        match serde_json::from_str(verified).expect("parses") {
            Upgrade::Verified(c) => {
                assert_eq!(c.author.name, "Zoë");
                assert!(c.reuse.is_none() && c.socket.first_frame.is_none());
            }
            other => panic!("read back as {other:?}"),
        }
    }

    #[test]
    fn the_connect_header_is_ascii_and_reads_back_as_the_same_names() {
        let value = serde_json::json!({ "name": "Zoë · 日本 🐝", "topic": "plain \"quoted\"" });
        let header = ascii_json(&value).expect("serializes");
        assert!(header.is_ascii(), "{header}");
        let back: serde_json::Value = serde_json::from_str(&header).expect("parses");
        assert_eq!(back, value);
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
    fn a_request_travels_as_its_call_name_and_body_and_comes_back_the_same() {
        let request: RoomRequest = Seed {
            room: RoomInfo {
                slug: "r".into(),
                name: "R".into(),
                topic: String::new(),
                created_at: 0,
                last_activity: None,
                message_count: 0,
                assistant: Default::default(),
                private: false,
            },
            count: 3,
            loopback: true,
        }
        .into();
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["call"], "seed");
        assert_eq!(json["body"]["count"], 3);
        let back: RoomRequest = serde_json::from_value(json).unwrap();
        assert!(matches!(back, RoomRequest::Seed(Seed { count: 3, .. })));
    }

    #[test]
    fn an_unknown_call_is_not_mistaken_for_another() {
        let unknown = serde_json::json!({"call": "drop_tables", "body": {}});
        assert!(serde_json::from_value::<RoomRequest>(unknown).is_err());
    }
}
