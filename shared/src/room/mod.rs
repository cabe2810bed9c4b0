//! The room: the server half of the protocol, with no I/O of its own.
//!
//! A [`Room`] turns one inbound frame from one connection into [`Effect`]s (reply to the
//! sender, broadcast, close). It is split by concern:
//! - this file: connections, the frame gate (flood limit, parsing, the hello/watch handshake,
//!   the send rate limit) and the dispatch of each [`ClientMessage`];
//! - [`log`]: the only code that assigns sequence numbers, de-duplicates and acknowledges;
//! - [`sync`]: hello, replay, pages, threads, read positions;
//! - [`members`]: admission, roles, moderation, invites, the audit log;
//! - [`assistant`]: the AI assistant's queue, prompts and streaming;
//! - [`verified`]: the connects the Worker verified a moment ago, reused for reconnects;
//! - [`store`]: the SQLite schema and every statement on it, over the small [`store::Sql`]
//!   trait that the Durable Object implements (and `rusqlite` in native tests).
//!
//! The Durable Object only feeds frames in and carries effects out, so every rule here
//! (sequencing, replay, de-duplication, permissions, rate limits, validation) is tested natively
//! on real SQLite.

pub mod assistant;
pub mod attachments;
mod log;
mod members;
pub mod outbox;
pub mod presence;
pub mod store;
mod sync;
#[cfg(test)]
mod tests;
pub mod verified;

use assistant::{Assistant, Record};
pub use presence::Present;
pub use store::{Sql, SqlStore, StoreError};

use serde::{Deserialize, Serialize};

use crate::ai::{CompletionRequest, Personalization};
use crate::error::{ChatError, ErrorCode};
use crate::limits::{self, PAGE_DEFAULT, PAGE_MAX};
use crate::permissions::{may, Action};
use crate::protocol::{
    close, Author, ClientMessage, EventKind, HistoryReason, Member, Millis, Role, RoomInfo, Seq,
    ServerMessage, PROTOCOL_VERSION,
};
use crate::rate_limit::{RateLimits, TokenBucket};

/// Per-connection state that must survive hibernation (kept in the socket's attachment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conn {
    /// Who this connection is, stamped from the session when the socket was accepted.
    pub author: Author,
    /// Whether the connection completed the hello and receives broadcasts.
    pub joined: bool,
    /// Whether the connection only watches unread counts ([`ClientMessage::Watch`]): it gets
    /// [`Effect::Notify`] frames instead of broadcasts and is not present.
    #[serde(default)]
    pub watching: bool,
    /// The user's preferences for the assistant's answers to them.
    #[serde(default)]
    pub personalization: Personalization,
    /// Whether the user is a global admin (may do everything in every room).
    #[serde(default)]
    pub admin: bool,
    /// The user's avatar URL.
    #[serde(default)]
    pub avatar: Option<String>,
    /// When the Worker read `author.name` (its clock), `None` when the name's age is unknown
    /// (a guest's comes from a cookie that may predate a rename): see [`Room::admit`].
    #[serde(default)]
    pub name_as_of: Option<Millis>,
}

impl Conn {
    /// A connection that has not said hello yet.
    pub fn new(author: Author) -> Self {
        Conn {
            author,
            joined: false,
            watching: false,
            admin: false,
            avatar: None,
            personalization: Personalization::default(),
            name_as_of: None,
        }
    }

    /// The presence entry for this connection.
    pub fn member(&self) -> Member {
        Member {
            user_id: self.author.id.clone(),
            name: self.author.name.clone(),
            avatar: self.avatar.clone(),
        }
    }

    /// Whether this connection may perform `action` (its room role, or global admin).
    pub fn may(&self, action: Action) -> bool {
        may(self.author.role, self.admin, action)
    }
}

/// Rate limiting of one user in one room, shared by all of that user's connections there (one
/// cookie opening many sockets gets no more than one socket would). Lives in memory: after
/// hibernation a user starts with full buckets, which is what an idle user would have anyway.
#[derive(Debug, Clone)]
pub struct ConnLimiter {
    sends: TokenBucket,
    frames: TokenBucket,
    /// Typing notices fan out to everyone: a few pass, the rest are dropped silently (they
    /// are best-effort hints, not requests to refuse).
    typing: TokenBucket,
    strikes: u32,
}

/// Refused frames in a row after which a flooding connection is closed.
pub const FLOOD_STRIKES: u32 = 10;

impl ConnLimiter {
    /// Full buckets.
    pub fn new(limits: RateLimits, now: Millis) -> Self {
        ConnLimiter {
            sends: TokenBucket::new(limits.send_burst, limits.send_per_second, now),
            frames: TokenBucket::new(limits.frame_burst, limits.frame_per_second, now),
            typing: TokenBucket::new(limits::TYPING_BURST, limits::TYPING_PER_SECOND, now),
            strikes: 0,
        }
    }
}

/// An inbound socket frame.
#[derive(Debug, Clone, Copy)]
pub enum Frame<'a> {
    /// A text frame.
    Text(&'a str),
    /// A binary frame, of this many bytes.
    Binary(usize),
}

/// What the Durable Object must do after a frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send to the connection the frame came from.
    Reply(ServerMessage),
    /// Send to every joined connection, the sender included.
    Broadcast(ServerMessage),
    /// Send to every joined connection but the sender.
    BroadcastOthers(ServerMessage),
    /// The connection completed its hello: mark it joined (and announce it if it is the user's
    /// first connection).
    Joined,
    /// Close the connection with this code and reason.
    Close(u16, ErrorCode),
    /// Close every connection of a user with this code and reason.
    CloseUser(String, u16, ErrorCode),
    /// A user's role changed: update their connections (and their attachments).
    SetRole(String, Role),
    /// The room's directory entry changed: write it to the directory.
    InfoChanged(RoomInfo),
    /// A server-side failure to log (never sent to clients).
    Log(String),
    /// Send to every joined connection of this user (their other tabs and devices too).
    ToUser(String, ServerMessage),
    /// The connection completed a watch: mark it watching.
    Watching,
    /// Send to every watching connection.
    Notify(ServerMessage),
    /// Answer the connection with a slice of the people present and have it hear about them
    /// ([`presence::Presence::slice`], which the Durable Object holds).
    PresencePage {
        /// Matching people to skip.
        offset: u32,
        /// How many.
        limit: u32,
        /// Name filter.
        query: Option<String>,
    },
    /// Send to every watching connection of this user.
    NotifyUser(String, ServerMessage),
    /// A user joined the room for the first time: record the membership outside the room
    /// (the directory's list of each user's rooms, for cross-room search and unread counts).
    NewMember(Member),
    /// Files were released (their message was deleted): delete their objects now
    /// ([`Room::droppable_files`]) rather than at the next sweep.
    FilesReleased,
    /// Ask the AI provider for an answer and report back with generation id `gen`
    /// ([`Room::ai_token`], [`Room::ai_finish`]).
    Generate {
        /// Generation id.
        gen: u64,
        /// The answer message.
        target: Seq,
        /// The prompt.
        request: CompletionRequest,
    },
    /// Abandon generation `gen` (it was stopped).
    Cancel {
        /// Generation id.
        gen: u64,
    },
    /// Ask the provider for a new rolling summary and report back with
    /// [`Room::ai_summarized`].
    Summarize {
        /// The newest message it covers.
        upto: Seq,
        /// The prompt.
        request: CompletionRequest,
    },
    /// Analytics to keep outside the room.
    Record(Record),
    /// Ask the provider which facts about `user_id` to remember (they opted in), and store
    /// them in the user's memory.
    Remember {
        /// Whose memory.
        user_id: String,
        /// The prompt ([`crate::ai::build_memory_prompt`]).
        request: CompletionRequest,
        /// What is already known (to skip repeats).
        known: Vec<String>,
    },
}

/// The room state machine over a store.
pub struct Room<D> {
    pub(crate) store: SqlStore<D>,
    pub(crate) info: RoomInfo,
    pub(crate) head: Seq,
    pub(crate) assistant: Assistant,
}

/// What a refused or failed frame sends back (and logs).
fn failure_effects(failure: Failure, client_id: Option<String>) -> Vec<Effect> {
    match failure {
        Failure::Refused(err) => vec![error_reply(err, client_id)],
        Failure::Storage(detail) => vec![
            Effect::Log(detail),
            error_reply(
                ChatError::new(
                    ErrorCode::Internal,
                    "The room could not complete that; please try again.",
                ),
                client_id,
            ),
        ],
    }
}

/// The refusal of a hello or watch that speaks another protocol version, if it does.
fn protocol_mismatch(protocol: u32) -> Option<Vec<Effect>> {
    (protocol != PROTOCOL_VERSION).then(|| {
        vec![
            error_reply(
                ChatError::new(
                    ErrorCode::UnsupportedProtocol,
                    format!(
                        "This room speaks protocol {PROTOCOL_VERSION}, the app sent {protocol}; reload the page."
                    ),
                ),
                None,
            ),
            Effect::Close(close::UNSUPPORTED_PROTOCOL, ErrorCode::UnsupportedProtocol),
        ]
    })
}

fn error_reply(err: ChatError, client_id: Option<String>) -> Effect {
    Effect::Reply(ServerMessage::Error {
        code: err.code,
        message: err.message,
        client_id,
        retry_after_ms: err.retry_after_ms,
    })
}

impl<D: Sql> Room<D> {
    /// Opens a room over its store.
    pub fn open(store: SqlStore<D>, info: RoomInfo) -> Result<Self, StoreError> {
        let head = store.head()?;
        Ok(Room {
            store,
            info,
            head,
            assistant: Assistant::default(),
        })
    }

    /// The store, given up by a room that stops (a restart reopens a new room over it).
    pub fn into_store(self) -> SqlStore<D> {
        self.store
    }

    /// The highest sequence number.
    pub fn head(&self) -> Seq {
        self.head
    }

    /// The room's directory entry.
    pub fn info(&self) -> &RoomInfo {
        &self.info
    }

    /// Replaces the room's directory entry (the directory is the source of truth for it).
    pub fn set_info(&mut self, info: RoomInfo) {
        self.info = info;
    }

    /// The store, for the owner's own bookkeeping.
    pub fn store(&self) -> &SqlStore<D> {
        &self.store
    }

    /// Handles one inbound frame from `conn`. `present` lists who is connected (called only for
    /// a hello).
    pub fn on_frame<P: Into<Present>>(
        &mut self,
        conn: &Conn,
        limiter: &mut ConnLimiter,
        frame: Frame<'_>,
        now: Millis,
        present: impl FnOnce() -> P,
    ) -> Vec<Effect> {
        if let Err(retry) = limiter.frames.try_take(now) {
            limiter.strikes += 1;
            if limiter.strikes >= FLOOD_STRIKES {
                return vec![Effect::Close(close::RATE_LIMITED, ErrorCode::RateLimited)];
            }
            return vec![error_reply(ChatError::rate_limited(retry), None)];
        }
        limiter.strikes = 0;

        let raw = match frame {
            Frame::Text(raw) => raw,
            Frame::Binary(_) => {
                return vec![error_reply(
                    ChatError::new(
                        ErrorCode::InvalidFrame,
                        "Binary frames are not supported; send JSON text frames.",
                    ),
                    None,
                )]
            }
        };
        let message = match limits::parse_client_frame(raw) {
            Ok(message) => message,
            Err(err) => return vec![error_reply(err, None)],
        };

        if conn.watching {
            // A watcher only listens; its keep-alive is answered by the runtime.
            return match message {
                ClientMessage::Ping {} => vec![Effect::Reply(ServerMessage::Pong {})],
                _ => vec![error_reply(
                    ChatError::new(
                        ErrorCode::InvalidFrame,
                        "This connection watches unread counts only; open the room to take part.",
                    ),
                    None,
                )],
            };
        }
        if !conn.joined {
            match message {
                ClientMessage::Hello { .. } => {}
                ClientMessage::Watch { protocol } => {
                    return self
                        .watch(conn, protocol)
                        .unwrap_or_else(|failure| failure_effects(failure, None))
                }
                _ => {
                    return vec![
                        error_reply(
                            ChatError::new(
                                ErrorCode::InvalidFrame,
                                "The first frame on a connection must be a hello or a watch.",
                            ),
                            None,
                        ),
                        Effect::Close(close::INVALID_HANDSHAKE, ErrorCode::InvalidFrame),
                    ];
                }
            }
        }

        let client_id = message.client_id().map(str::to_owned);
        if client_id.is_some() {
            if let Err(retry) = limiter.sends.try_take(now) {
                return vec![error_reply(ChatError::rate_limited(retry), client_id)];
            }
        }

        if matches!(message, ClientMessage::Typing {}) && limiter.typing.try_take(now).is_err() {
            return Vec::new();
        }

        self.handle(conn, message, now, present)
            .unwrap_or_else(|failure| failure_effects(failure, client_id))
    }

    /// A connection's first frame asked to watch unread counts: its counts now, then
    /// [`ServerMessage::Activity`] as messages come and go.
    fn watch(&self, conn: &Conn, protocol: u32) -> Result<Vec<Effect>, Failure> {
        if let Some(refusal) = protocol_mismatch(protocol) {
            return Ok(refusal);
        }
        let (read, counts) = self.unread(&conn.author.id)?;
        Ok(vec![
            Effect::Watching,
            Effect::Reply(ServerMessage::Unread { read, counts }),
        ])
    }

    fn handle<P: Into<Present>>(
        &mut self,
        conn: &Conn,
        message: ClientMessage,
        now: Millis,
        present: impl FnOnce() -> P,
    ) -> Result<Vec<Effect>, Failure> {
        match message {
            ClientMessage::Hello { protocol, after } => {
                if let Some(refusal) = protocol_mismatch(protocol) {
                    return Ok(refusal);
                }
                // A large room's welcome lists nobody (that would be quadratic in its joins);
                // the count follows it and clients ask for the slice they show.
                let (present, count) = match present().into() {
                    Present::Everyone(mut present) => {
                        let me = conn.member();
                        if !present.iter().any(|m| m.user_id == me.user_id) {
                            present.push(me);
                        }
                        (present, None)
                    }
                    Present::Count(count) => (Vec::new(), Some(count)),
                };
                let first_join = self
                    .store
                    .record_member(&conn.member(), now)?;
                let read = self
                    .store
                    .read_position(&conn.author.id)?;
                let mut effects = vec![
                    Effect::Joined,
                    Effect::Reply(ServerMessage::Welcome {
                        protocol: PROTOCOL_VERSION,
                        you: conn.author.clone(),
                        room: self.info.clone(),
                        head: self.head,
                        present,
                        read,
                    }),
                ];
                effects.extend(self.sync(after)?.into_iter().map(Effect::Reply));
                effects.extend(self.renames_since(after)?.into_iter().map(Effect::Reply));
                effects.extend(self.stream_snapshot().map(Effect::Reply));
                effects.extend(
                    self.private_snapshot(&conn.author.id, now)?
                        .into_iter()
                        .map(Effect::Reply),
                );
                // After the page, so a client reads welcome → page as it always has.
                effects.extend(
                    count.map(|count| Effect::Reply(ServerMessage::PresenceCount { count })),
                );
                if first_join {
                    effects.push(Effect::NewMember(conn.member()));
                }
                Ok(effects)
            }
            ClientMessage::Send {
                client_id,
                text,
                attachments,
            } => {
                // A resend of a stored send is acknowledged again before its files are looked
                // at: they belong to the stored message by now.
                if let Some(effects) = self.duplicate(&conn.author.id, &client_id)? {
                    return Ok(effects);
                }
                let attachments = self.claim_attachments(&conn.author.id, &attachments)?;
                let effects = self.mutate(
                    conn,
                    client_id,
                    now,
                    Action::Post,
                    EventKind::Message { text, attachments },
                )?;
                self.maybe_ask(conn, effects, now)
            }
            ClientMessage::Reply {
                client_id,
                target,
                text,
                also_in_room,
                attachments,
            } => {
                if let Some(effects) = self.duplicate(&conn.author.id, &client_id)? {
                    return Ok(effects);
                }
                let attachments = self.claim_attachments(&conn.author.id, &attachments)?;
                // A reply to a reply joins the same thread: threads are one level deep.
                let thread = self
                    .store
                    .message(target)?
                    .and_then(|m| m.thread)
                    .unwrap_or(target);
                let effects = self.mutate(
                    conn,
                    client_id,
                    now,
                    Action::Post,
                    EventKind::Reply {
                        thread,
                        text,
                        also_in_room,
                        attachments,
                    },
                )?;
                self.maybe_ask(conn, effects, now)
            }
            ClientMessage::React {
                client_id,
                target,
                emoji,
                add,
            } => self.mutate(
                conn,
                client_id,
                now,
                Action::React,
                EventKind::React { target, emoji, add },
            ),
            ClientMessage::Pin {
                client_id,
                target,
                pinned,
            } => self.mutate(
                conn,
                client_id,
                now,
                Action::Pin,
                EventKind::Pin { target, pinned },
            ),
            ClientMessage::Read { seq } => self.read(conn, seq),
            ClientMessage::Thread { root } => {
                let (root, replies, has_more) = self.thread(root)?;
                Ok(vec![Effect::Reply(ServerMessage::Thread {
                    root,
                    replies,
                    has_more,
                })])
            }
            ClientMessage::Pins {} => {
                let messages = self
                    .store
                    .pinned(limits::PINS_MAX)?;
                Ok(vec![Effect::Reply(ServerMessage::Pinned { messages })])
            }
            ClientMessage::Members {} => {
                let members = self
                    .store
                    .members(limits::MEMBERS_MAX)?;
                Ok(vec![Effect::Reply(ServerMessage::Members { members })])
            }
            ClientMessage::Stop { client_id, target } => {
                self.stop_answer(conn, client_id, target, now)
            }
            ClientMessage::Regenerate { client_id, target } => {
                self.regenerate_answer(conn, client_id, target, now)
            }
            ClientMessage::Rate {
                client_id,
                target,
                vote,
                reason,
            } => self.rate_answer(conn, client_id, target, vote, reason, now),
            ClientMessage::Edit {
                client_id,
                target,
                text,
            } => self.mutate(
                conn,
                client_id,
                now,
                Action::EditOwn,
                EventKind::Edit { target, text },
            ),
            ClientMessage::Delete { client_id, target } => self.mutate(
                conn,
                client_id,
                now,
                Action::DeleteOwn,
                EventKind::Delete { target },
            ),
            ClientMessage::History { before, limit } => {
                let limit = limit.unwrap_or(PAGE_DEFAULT).clamp(1, PAGE_MAX) as usize;
                let (messages, has_more) = self
                    .store
                    .messages_before(Some(before), limit)?;
                Ok(vec![Effect::Reply(ServerMessage::History {
                    messages,
                    has_more,
                    reason: HistoryReason::Older,
                })])
            }
            ClientMessage::Typing {} => Ok(vec![Effect::BroadcastOthers(ServerMessage::Typing {
                user_id: conn.author.id.clone(),
                name: conn.author.name.clone(),
            })]),
            ClientMessage::Ping {} => Ok(vec![Effect::Reply(ServerMessage::Pong {})]),
            ClientMessage::Watch { .. } => Err(refused(
                ErrorCode::InvalidFrame,
                "This connection already joined the room; a watch must be a connection's first frame.",
            )),
            ClientMessage::Presence {
                offset,
                limit,
                query,
            } => Ok(vec![Effect::PresencePage {
                offset,
                limit,
                query,
            }]),
            ClientMessage::CatchUp { thread, after } => {
                self.ask_private(conn, thread, after, self.head, now)
            }
            ClientMessage::Moderate { client_id, command } => {
                let mut effects = vec![Effect::Reply(ServerMessage::Applied { client_id })];
                effects.extend(self.command(conn, command, now)?);
                Ok(effects)
            }
        }
    }
}

fn forbidden() -> Failure {
    Failure::Refused(ChatError::new(
        ErrorCode::Forbidden,
        "Your role in this room does not allow that.",
    ))
}

fn refused(code: ErrorCode, message: impl Into<String>) -> Failure {
    Failure::Refused(ChatError::new(code, message))
}

/// Why a request did not complete.
#[derive(Debug)]
pub enum Failure {
    /// Refused by a rule; the error goes to the client.
    Refused(ChatError),
    /// The store failed; the detail is logged, the client gets a generic `internal` error.
    Storage(String),
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::Storage(err.0)
    }
}

impl Failure {
    /// The error to send, and the detail to log (for a storage failure).
    pub fn into_error(self) -> (ChatError, Option<String>) {
        match self {
            Failure::Refused(err) => (err, None),
            Failure::Storage(detail) => (
                ChatError::new(
                    ErrorCode::Internal,
                    "The room could not complete that; please try again.",
                ),
                Some(detail),
            ),
        }
    }
}

/// Whether one more socket of a user may open in a room where that user holds `user_sockets`
/// and the room `room_sockets`: refused with `too_many_connections` past
/// [`limits::SOCKETS_PER_USER`], and `room_full` past [`limits::SOCKETS_PER_ROOM`].
pub fn may_open_socket(user_sockets: usize, room_sockets: usize) -> Result<(), ChatError> {
    if user_sockets >= limits::SOCKETS_PER_USER {
        return Err(ChatError::new(
            ErrorCode::TooManyConnections,
            format!(
                "You already have {} connections to this room; close a tab or device first.",
                limits::SOCKETS_PER_USER
            ),
        ));
    }
    if room_sockets >= limits::SOCKETS_PER_ROOM {
        return Err(ChatError::new(
            ErrorCode::RoomFull,
            "This room is full right now; try again later.",
        ));
    }
    Ok(())
}

/// Who is present, one entry per user, given the room's joined connections (for tests and
/// tools; the Durable Object keeps a [`presence::Presence`]).
pub fn presence<'a>(conns: impl IntoIterator<Item = &'a Conn>) -> Vec<Member> {
    let mut members: Vec<Member> = Vec::new();
    for conn in conns.into_iter().filter(|c| c.joined) {
        if !members.iter().any(|m| m.user_id == conn.author.id) {
            members.push(conn.member());
        }
    }
    members
}

/// Whether `user_id` has a joined connection among `conns`. Presence is per user: they are
/// announced when their first connection joins and when their last one leaves.
pub fn is_present<'a>(conns: impl IntoIterator<Item = &'a Conn>, user_id: &str) -> bool {
    conns
        .into_iter()
        .any(|c| c.joined && c.author.id == user_id)
}
