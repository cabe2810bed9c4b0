//! The room: the server half of the protocol, with no I/O.
//!
//! A [`Room`] turns one inbound frame from one connection into [`Effect`]s (reply to the
//! sender, broadcast, close). Storage is a [`RoomStore`]: SQLite in the Durable Object, a
//! `BTreeMap` in tests. The Durable Object only feeds frames in and carries effects out, so
//! every rule here (sequencing, replay, de-duplication, permissions, rate limits, validation)
//! is tested natively.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ai::{CompletionRequest, Personalization};
use crate::assistant::{Assistant, Record, Summary};
use crate::error::{ChatError, ErrorCode};
use crate::limits::{self, PAGE_DEFAULT, PAGE_MAX, REPLAY_BATCH, REPLAY_MAX_EVENTS};
use crate::moderation::{AuditEntry, Command, CreateInvite, Invite, MemberRecord};
use crate::permissions::{may, outranks, Action};
use crate::protocol::{
    close, Author, ClientMessage, Event, EventKind, HistoryReason, Member, MessageView, Millis,
    Role, RoomInfo, Seq, ServerMessage, UnreadCounts, PROTOCOL_VERSION,
};
use crate::rate_limit::{RateLimits, TokenBucket};

/// Persistent storage of one room's events and messages.
///
/// `append` must be atomic: the event, the message state it changes, and the de-duplication
/// record of `(author.id, client_id)` are stored together or not at all.
pub trait RoomStore {
    /// Storage failure, logged server-side only.
    type Error: fmt::Display;

    /// The highest stored sequence number (0 for an empty room).
    fn head(&self) -> Result<Seq, Self::Error>;
    /// The event a mutation with this author and client id became, if it was stored.
    fn find_mutation(&self, author_id: &str, client_id: &str) -> Result<Option<Seq>, Self::Error>;
    /// A message in its current state.
    fn message(&self, seq: Seq) -> Result<Option<MessageView>, Self::Error>;
    /// Stores an event and applies it to the message it creates or changes.
    fn append(&mut self, event: &Event) -> Result<(), Self::Error>;
    /// Up to `limit` events with `seq > after`, ascending.
    fn events_after(&self, after: Seq, limit: usize) -> Result<Vec<Event>, Self::Error>;
    /// Up to `limit` messages with `seq < before` (all if `None`), ascending, and whether more
    /// exist before them.
    fn messages_before(
        &self,
        before: Option<Seq>,
        limit: usize,
    ) -> Result<(Vec<MessageView>, bool), Self::Error>;
    /// Replaces the text of an answer being written (persisted as it grows, not an event).
    fn set_answer_text(&mut self, seq: Seq, text: &str) -> Result<(), Self::Error>;
    /// Answers still queued or streaming, ascending.
    fn unfinished_answers(&self) -> Result<Vec<MessageView>, Self::Error>;
    /// The assistant's rolling summary of older history.
    fn summary(&self) -> Result<Option<Summary>, Self::Error>;
    /// Replaces the rolling summary.
    fn set_summary(&mut self, summary: &Summary) -> Result<(), Self::Error>;
    /// The newest `limit` replies in the thread of `root`, ascending, and whether older ones
    /// exist.
    fn thread_replies(
        &self,
        root: Seq,
        limit: usize,
    ) -> Result<(Vec<MessageView>, bool), Self::Error>;
    /// Pinned messages, newest message first, at most `limit`.
    fn pinned(&self, limit: usize) -> Result<Vec<MessageView>, Self::Error>;
    /// Records that a member joined (or rejoined under a new name). Returns true the first
    /// time this user joins the room.
    fn record_member(&mut self, member: &Member, now: Millis) -> Result<bool, Self::Error>;
    /// The room's members, most recently seen first, at most `limit`.
    fn members(&self, limit: usize) -> Result<Vec<Member>, Self::Error>;
    /// Records that message `seq` mentions these users.
    fn add_mentions(&mut self, seq: Seq, user_ids: &[&str]) -> Result<(), Self::Error>;
    /// The users message `seq` mentions.
    fn mentioned(&self, seq: Seq) -> Result<Vec<String>, Self::Error>;
    /// A member's read position.
    fn read_position(&self, user_id: &str) -> Result<Option<Seq>, Self::Error>;
    /// Sets a member's read position.
    fn set_read_position(&mut self, user_id: &str, seq: Seq) -> Result<(), Self::Error>;
    /// What is unread for `user_id` after `read`: timeline messages by others that are not
    /// deleted (counted up to [`limits::UNREAD_COUNT_CAP`]), and messages mentioning them.
    fn unread_counts(&self, user_id: &str, read: Seq) -> Result<UnreadCounts, Self::Error>;

    /// A user's standing in the room.
    fn member(&self, user_id: &str) -> Result<Option<MemberRecord>, Self::Error>;
    /// Stores a user's standing (insert or replace).
    fn put_member(&mut self, member: &MemberRecord) -> Result<(), Self::Error>;
    /// Every member record, by join time.
    fn member_records(&self) -> Result<Vec<MemberRecord>, Self::Error>;
    /// Members whose name changed after `at`.
    fn renamed_since(&self, at: Millis) -> Result<Vec<MemberRecord>, Self::Error>;
    /// Appends to the audit log (the store assigns the id).
    fn append_audit(&mut self, entry: &AuditEntry) -> Result<(), Self::Error>;
    /// Up to `limit` audit entries with `id < before` (all if `None`), newest first.
    fn audit_before(
        &self,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, Self::Error>;
    /// An invite by token.
    fn invite(&self, token: &str) -> Result<Option<Invite>, Self::Error>;
    /// Stores an invite (insert or replace).
    fn put_invite(&mut self, invite: &Invite) -> Result<(), Self::Error>;
    /// Every invite, newest first.
    fn invites(&self) -> Result<Vec<Invite>, Self::Error>;
}

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

/// Per-connection rate limiting. Lives in memory: after hibernation a connection starts with
/// full buckets, which is what an idle connection would have anyway.
#[derive(Debug, Clone)]
pub struct ConnLimiter {
    sends: TokenBucket,
    frames: TokenBucket,
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
    /// Send to every watching connection of this user.
    NotifyUser(String, ServerMessage),
    /// A user joined the room for the first time: record the membership outside the room
    /// (the directory's list of each user's rooms, for cross-room search and unread counts).
    NewMember(Member),
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
pub struct Room<S> {
    pub(crate) store: S,
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

impl<S: RoomStore> Room<S> {
    /// Opens a room over its store.
    pub fn open(store: S, info: RoomInfo) -> Result<Self, S::Error> {
        let head = store.head()?;
        Ok(Room {
            store,
            info,
            head,
            assistant: Assistant::default(),
        })
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
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Handles one inbound frame from `conn`. `present` lists who is connected (called only for
    /// a hello).
    pub fn on_frame(
        &mut self,
        conn: &Conn,
        limiter: &mut ConnLimiter,
        frame: Frame<'_>,
        now: Millis,
        present: impl FnOnce() -> Vec<Member>,
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

        let client_id = match &message {
            ClientMessage::Send { client_id, .. }
            | ClientMessage::Reply { client_id, .. }
            | ClientMessage::React { client_id, .. }
            | ClientMessage::Pin { client_id, .. }
            | ClientMessage::Edit { client_id, .. }
            | ClientMessage::Delete { client_id, .. }
            | ClientMessage::Stop { client_id, .. }
            | ClientMessage::Regenerate { client_id, .. }
            | ClientMessage::Rate { client_id, .. }
            | ClientMessage::Moderate { client_id, .. } => Some(client_id.clone()),
            _ => None,
        };
        if client_id.is_some() {
            if let Err(retry) = limiter.sends.try_take(now) {
                return vec![error_reply(ChatError::rate_limited(retry), client_id)];
            }
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

    fn handle(
        &mut self,
        conn: &Conn,
        message: ClientMessage,
        now: Millis,
        present: impl FnOnce() -> Vec<Member>,
    ) -> Result<Vec<Effect>, Failure> {
        match message {
            ClientMessage::Hello { protocol, after } => {
                if let Some(refusal) = protocol_mismatch(protocol) {
                    return Ok(refusal);
                }
                let mut present = present();
                let me = conn.member();
                if !present.iter().any(|m| m.user_id == me.user_id) {
                    present.push(me);
                }
                let first_join = self
                    .store
                    .record_member(&conn.member(), now)
                    .map_err(Failure::storage)?;
                let read = self
                    .store
                    .read_position(&conn.author.id)
                    .map_err(Failure::storage)?;
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
                if first_join {
                    effects.push(Effect::NewMember(conn.member()));
                }
                Ok(effects)
            }
            ClientMessage::Send { client_id, text } => {
                let effects = self.mutate(
                    conn,
                    client_id,
                    now,
                    Action::Post,
                    EventKind::Message { text },
                )?;
                self.maybe_ask(conn, effects, now)
            }
            ClientMessage::Reply {
                client_id,
                target,
                text,
                also_in_room,
            } => {
                // A reply to a reply joins the same thread: threads are one level deep.
                let thread = self
                    .store
                    .message(target)
                    .map_err(Failure::storage)?
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
                    .pinned(limits::PINS_MAX)
                    .map_err(Failure::storage)?;
                Ok(vec![Effect::Reply(ServerMessage::Pinned { messages })])
            }
            ClientMessage::Members {} => {
                let members = self
                    .store
                    .members(limits::MEMBERS_MAX)
                    .map_err(Failure::storage)?;
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
                    .messages_before(Some(before), limit)
                    .map_err(Failure::storage)?;
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
            ClientMessage::Moderate { client_id, command } => {
                let mut effects = vec![Effect::Reply(ServerMessage::Applied { client_id })];
                effects.extend(self.command(conn, command, now)?);
                Ok(effects)
            }
        }
    }

    /// For a client catching up by replay: the current names of authors renamed since the
    /// newest event it holds, so the messages it already holds show them too. (A client that
    /// gets a page instead gets current names in the page.)
    fn renames_since(&self, after: Option<Seq>) -> Result<Vec<ServerMessage>, Failure> {
        let Some(after) = after.filter(|&a| a >= 1 && a <= self.head) else {
            return Ok(Vec::new());
        };
        let Some(held) = self
            .store
            .events_after(after - 1, 1)
            .map_err(Failure::storage)?
            .into_iter()
            .next()
        else {
            return Ok(Vec::new());
        };
        Ok(self
            .store
            .renamed_since(held.at)
            .map_err(Failure::storage)?
            .into_iter()
            .map(|m| ServerMessage::ProfileUpdated {
                member: Member {
                    user_id: m.user_id,
                    name: m.name,
                    avatar: None,
                },
            })
            .collect())
    }

    /// The frames that bring a client holding everything up to `after` to the present: a
    /// replay of what it missed, or the latest page when it holds nothing or is too far off.
    pub fn sync(&self, after: Option<Seq>) -> Result<Vec<ServerMessage>, Failure> {
        let replayable = after.filter(|&a| a <= self.head && self.head - a <= REPLAY_MAX_EVENTS);
        match (after, replayable) {
            (_, Some(after)) => {
                let events = self
                    .store
                    .events_after(after, REPLAY_MAX_EVENTS as usize)
                    .map_err(Failure::storage)?;
                if events.is_empty() {
                    return Ok(vec![ServerMessage::Replay { events, done: true }]);
                }
                let batches = events.chunks(REPLAY_BATCH).count();
                Ok(events
                    .chunks(REPLAY_BATCH)
                    .enumerate()
                    .map(|(i, chunk)| ServerMessage::Replay {
                        events: chunk.to_vec(),
                        done: i + 1 == batches,
                    })
                    .collect())
            }
            (requested, None) => {
                let (messages, has_more) = self
                    .store
                    .messages_before(None, PAGE_DEFAULT as usize)
                    .map_err(Failure::storage)?;
                Ok(vec![ServerMessage::History {
                    messages,
                    has_more,
                    reason: if requested.is_some() {
                        HistoryReason::Reset
                    } else {
                        HistoryReason::Latest
                    },
                }])
            }
        }
    }

    /// A thread: its root and newest replies (at most [`limits::THREAD_PAGE`]), and whether
    /// older replies exist. `root` may be any message of the thread. This is also the
    /// assistant's context for a question asked in a thread.
    pub fn thread(&self, root: Seq) -> Result<(MessageView, Vec<MessageView>, bool), Failure> {
        let not_found = || {
            Failure::Refused(ChatError::new(
                ErrorCode::NotFound,
                format!("Message {root} does not exist."),
            ))
        };
        let mut message = self
            .store
            .message(root)
            .map_err(Failure::storage)?
            .ok_or_else(not_found)?;
        if let Some(thread) = message.thread {
            message = self
                .store
                .message(thread)
                .map_err(Failure::storage)?
                .ok_or_else(not_found)?;
        }
        let (replies, has_more) = self
            .store
            .thread_replies(message.seq, limits::THREAD_PAGE)
            .map_err(Failure::storage)?;
        Ok((message, replies, has_more))
    }

    /// A member's unread counts after their read position.
    pub fn unread(&self, user_id: &str) -> Result<(Seq, UnreadCounts), Failure> {
        let read = self
            .store
            .read_position(user_id)
            .map_err(Failure::storage)?
            .unwrap_or(0);
        let counts = self
            .store
            .unread_counts(user_id, read)
            .map_err(Failure::storage)?;
        Ok((read, counts))
    }

    /// Moves a member's read position forward (never back, never past the head) and tells
    /// all their connections; a read that moves nothing answers the asking connection only.
    fn read(&mut self, conn: &Conn, seq: Seq) -> Result<Vec<Effect>, Failure> {
        let user = &conn.author.id;
        let current = self
            .store
            .read_position(user)
            .map_err(Failure::storage)?
            .unwrap_or(0);
        let seq = seq.min(self.head);
        let moved = seq > current;
        if moved {
            self.store
                .set_read_position(user, seq)
                .map_err(Failure::storage)?;
        }
        let (read, counts) = self.unread(user)?;
        let frame = ServerMessage::Unread { read, counts };
        Ok(if moved {
            vec![
                Effect::NotifyUser(user.clone(), frame.clone()),
                Effect::ToUser(user.clone(), frame),
            ]
        } else {
            vec![Effect::Reply(frame)]
        })
    }

    /// Appends `count` messages made by `make(n)` straight to the store, as sends would store
    /// them (for a benchmark's bulk seed: no sockets, rate limits or de-duplication lookups).
    /// Returns the new head.
    pub fn seed(
        &mut self,
        count: u64,
        make: impl Fn(u64) -> (Author, Millis, String),
    ) -> Result<Seq, Failure> {
        for _ in 0..count {
            let seq = self.head + 1;
            let (author, at, text) = make(seq);
            let event = Event {
                seq,
                at,
                author,
                client_id: format!("seed-{seq}"),
                kind: EventKind::Message { text },
            };
            self.store.append(&event).map_err(Failure::storage)?;
            self.head = seq;
        }
        Ok(self.head)
    }

    /// Records who a newly posted or edited text mentions, and returns them.
    fn record_mentions(&mut self, event: &Event) -> Result<Vec<String>, Failure> {
        let (seq, text) = match &event.kind {
            EventKind::Message { text } | EventKind::Reply { text, .. } => (event.seq, text),
            EventKind::Edit { target, text } => (*target, text),
            _ => return Ok(Vec::new()),
        };
        // Most messages mention nobody: skip the member lookup for them.
        if !text.contains('@') {
            return Ok(Vec::new());
        }
        let members = self.store.members(usize::MAX).map_err(Failure::storage)?;
        let mentioned: Vec<&str> = crate::mentions::find_mentions(text, &members)
            .into_iter()
            .filter(|id| *id != event.author.id)
            .collect();
        if !mentioned.is_empty() {
            self.store
                .add_mentions(seq, &mentioned)
                .map_err(Failure::storage)?;
        }
        Ok(mentioned.into_iter().map(str::to_owned).collect())
    }

    /// What watchers hear of `event`: a message that counts toward unread counts arrived, an
    /// edit mentioned someone new (`mentioned`), or a message that counted (`target`, as it
    /// was) was deleted.
    pub(crate) fn activity(
        &self,
        event: &Event,
        mentioned: Vec<String>,
        target: Option<&MessageView>,
    ) -> Result<Option<Effect>, Failure> {
        let activity = match (&event.kind, target) {
            (EventKind::Message { .. }, _) => ServerMessage::Activity {
                seq: event.seq,
                by: event.author.id.clone(),
                main: true,
                mentions: mentioned,
                removed: false,
            },
            (EventKind::Reply { also_in_room, .. }, _) => ServerMessage::Activity {
                seq: event.seq,
                by: event.author.id.clone(),
                main: *also_in_room,
                mentions: mentioned,
                removed: false,
            },
            (EventKind::Answer { thread, .. }, _) => ServerMessage::Activity {
                seq: event.seq,
                by: event.author.id.clone(),
                main: thread.is_none(),
                mentions: Vec::new(),
                removed: false,
            },
            // Only the mentions count: the message itself was counted when it was posted.
            (EventKind::Edit { target, .. }, Some(message)) if !mentioned.is_empty() => {
                ServerMessage::Activity {
                    seq: *target,
                    by: message.author.id.clone(),
                    main: false,
                    mentions: mentioned,
                    removed: false,
                }
            }
            (EventKind::Delete { target }, Some(message)) => ServerMessage::Activity {
                seq: *target,
                by: message.author.id.clone(),
                main: message.thread.is_none() || message.also_in_room,
                mentions: self.store.mentioned(*target).map_err(Failure::storage)?,
                removed: true,
            },
            _ => return Ok(None),
        };
        Ok(Some(Effect::Notify(activity)))
    }

    fn mutate(
        &mut self,
        conn: &Conn,
        client_id: String,
        now: Millis,
        action: Action,
        kind: EventKind,
    ) -> Result<Vec<Effect>, Failure> {
        let author = &conn.author;
        if let Some(seq) = self
            .store
            .find_mutation(&author.id, &client_id)
            .map_err(Failure::storage)?
        {
            return Ok(vec![Effect::Reply(ServerMessage::Ack {
                client_id,
                seq,
                duplicate: true,
            })]);
        }
        if !conn.may(action) {
            return Err(forbidden());
        }
        if matches!(action, Action::Post | Action::EditOwn) {
            if let Some(left) = self
                .store
                .member(&author.id)
                .map_err(Failure::storage)?
                .and_then(|m| m.mute_left(now))
            {
                return Err(Failure::Refused(ChatError::muted(left)));
            }
        }
        let mut moderated = None;
        let mut target_message = None;
        let target = match &kind {
            EventKind::Edit { target, .. }
            | EventKind::Delete { target }
            | EventKind::React { target, .. }
            | EventKind::Pin { target, .. } => Some(*target),
            EventKind::Reply { thread, .. } => Some(*thread),
            _ => None,
        };
        if let Some(target) = &target {
            let message = self
                .store
                .message(*target)
                .map_err(Failure::storage)?
                .filter(|m| !m.deleted)
                .ok_or_else(|| {
                    Failure::Refused(ChatError::new(
                        ErrorCode::NotFound,
                        format!("Message {target} does not exist or was deleted."),
                    ))
                })?;
            let own = message.author.id == author.id;
            let permitted = !matches!(kind, EventKind::Edit { .. } | EventKind::Delete { .. })
                || own
                || (matches!(kind, EventKind::Delete { .. }) && conn.may(Action::DeleteAny));
            if !own && matches!(kind, EventKind::Delete { .. }) {
                moderated = Some(message.author.id.clone());
            }
            if !permitted {
                return Err(Failure::Refused(ChatError::new(
                    ErrorCode::Forbidden,
                    "You can only change your own messages.",
                )));
            }
            target_message = Some(message);
        }
        let event = Event {
            seq: self.head + 1,
            at: now,
            author: author.clone(),
            client_id: client_id.clone(),
            kind,
        };
        self.store.append(&event).map_err(Failure::storage)?;
        self.head = event.seq;
        let already = match &event.kind {
            EventKind::Edit { target, .. } => {
                self.store.mentioned(*target).map_err(Failure::storage)?
            }
            _ => Vec::new(),
        };
        let mut mentioned = self.record_mentions(&event)?;
        // An edit counts only for whom it newly mentions.
        mentioned.retain(|id| !already.contains(id));
        let notify = self.activity(&event, mentioned, target_message.as_ref())?;
        if let (Some(target_id), EventKind::Delete { target }) = (moderated, &event.kind) {
            self.audit(
                conn,
                "delete_message",
                Some(target_id),
                format!("#{target}"),
                now,
            )?;
        }
        let mut effects = vec![
            Effect::Reply(ServerMessage::Ack {
                client_id,
                seq: event.seq,
                duplicate: false,
            }),
            Effect::Broadcast(ServerMessage::Event { event }),
        ];
        effects.extend(notify);
        Ok(effects)
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

/// Membership, moderation, invites and the audit log.
impl<S: RoomStore> Room<S> {
    /// Decides whether `conn` may join, at connect time, and stamps its room role. The room's
    /// creator (`owner_id`) is its owner; anyone else joining a public room becomes a member;
    /// a private room admits only members (see [`Room::accept_invite`]) and global admins; a
    /// banned user is refused. Returns what to announce (a changed name).
    pub fn admit(
        &mut self,
        conn: &mut Conn,
        owner_id: &str,
        now: Millis,
    ) -> Result<Vec<Effect>, Failure> {
        let user_id = conn.author.id.clone();
        let record = self.store.member(&user_id).map_err(Failure::storage)?;
        let mut effects = Vec::new();
        let record = match record {
            Some(record) if record.banned && !conn.admin => {
                return Err(refused(ErrorCode::Banned, "You are banned from this room."))
            }
            Some(mut record) => {
                if record.name != conn.author.name {
                    record.name.clone_from(&conn.author.name);
                    record.renamed_at = Some(now);
                    self.store.put_member(&record).map_err(Failure::storage)?;
                    effects.push(Effect::BroadcastOthers(ServerMessage::ProfileUpdated {
                        member: conn.member(),
                    }));
                }
                record
            }
            None if self.info.private && !conn.admin && user_id != owner_id => {
                return Err(refused(
                    ErrorCode::Forbidden,
                    "This room is private; you need an invite to join it.",
                ))
            }
            None => self.enroll(conn, owner_id, now)?,
        };
        conn.author.role = record.role;
        Ok(effects)
    }

    /// Whether `user_id` may read the room's messages outside a connection (search, a
    /// message in context): not if they are banned from it.
    pub fn may_read(&self, user_id: &str) -> Result<(), Failure> {
        match self.store.member(user_id).map_err(Failure::storage)? {
            Some(record) if record.banned => {
                Err(refused(ErrorCode::Banned, "You are banned from this room."))
            }
            _ => Ok(()),
        }
    }

    /// Makes `conn`'s user a member: the owner if they created the room.
    fn enroll(
        &mut self,
        conn: &Conn,
        owner_id: &str,
        now: Millis,
    ) -> Result<MemberRecord, Failure> {
        let record = MemberRecord {
            user_id: conn.author.id.clone(),
            name: conn.author.name.clone(),
            role: if conn.author.id == owner_id {
                Role::Owner
            } else {
                Role::Member
            },
            banned: false,
            muted_until: None,
            joined_at: now,
            renamed_at: None,
        };
        self.store.put_member(&record).map_err(Failure::storage)?;
        Ok(record)
    }

    /// The actor's current role from storage (the source of truth), falling back to the
    /// connection's for someone with no record (a global admin visiting).
    fn actor(&self, conn: &Conn) -> Result<Conn, Failure> {
        let mut actor = conn.clone();
        if let Some(record) = self
            .store
            .member(&conn.author.id)
            .map_err(Failure::storage)?
        {
            actor.author.role = record.role;
        }
        Ok(actor)
    }

    fn audit(
        &mut self,
        actor: &Conn,
        action: &str,
        target_id: Option<String>,
        detail: String,
        now: Millis,
    ) -> Result<(), Failure> {
        self.store
            .append_audit(&AuditEntry {
                id: 0,
                at: now,
                actor_id: actor.author.id.clone(),
                actor_name: actor.author.name.clone(),
                action: action.to_owned(),
                target_id,
                detail,
            })
            .map_err(Failure::storage)
    }

    /// Carries out a privileged command for `conn` (over the socket or HTTP alike): checks
    /// the permission table, the ranks (moderating someone needs a strictly higher role, except
    /// for global admins), stores the change, logs it in the audit log, and says what to tell
    /// or close.
    pub fn command(
        &mut self,
        conn: &Conn,
        command: Command,
        now: Millis,
    ) -> Result<Vec<Effect>, Failure> {
        command.validate().map_err(Failure::Refused)?;
        let actor = self.actor(conn)?;
        if !actor.may(command.action()) {
            return Err(forbidden());
        }
        let mut target = match command.target() {
            Some(user_id) => {
                if user_id == actor.author.id {
                    return Err(refused(
                        ErrorCode::InvalidInput,
                        "You cannot do that to yourself.",
                    ));
                }
                let record = self
                    .store
                    .member(user_id)
                    .map_err(Failure::storage)?
                    .ok_or_else(|| {
                        refused(
                            ErrorCode::NotFound,
                            "That user is not a member of this room.",
                        )
                    })?;
                if !outranks(actor.author.role, actor.admin, record.role) {
                    return Err(refused(
                        ErrorCode::Forbidden,
                        "You can only moderate members below your own role.",
                    ));
                }
                Some(record)
            }
            None => None,
        };
        let name = command.name();
        let target_id = target.as_ref().map(|t| t.user_id.clone());
        let mut effects = Vec::new();
        let detail = match command {
            Command::Kick { user_id } => {
                effects.push(Effect::CloseUser(user_id, close::KICKED, ErrorCode::Kicked));
                String::new()
            }
            Command::Ban { user_id } => {
                if let Some(t) = target.as_mut() {
                    t.banned = true;
                }
                effects.push(Effect::CloseUser(user_id, close::BANNED, ErrorCode::Banned));
                String::new()
            }
            Command::Unban { .. } => {
                if let Some(t) = target.as_mut() {
                    t.banned = false;
                }
                String::new()
            }
            Command::Mute { seconds, .. } => {
                if let Some(t) = target.as_mut() {
                    t.muted_until = Some(now + i64::from(seconds) * 1000);
                }
                format!("{seconds} s")
            }
            Command::Unmute { .. } => {
                if let Some(t) = target.as_mut() {
                    t.muted_until = None;
                }
                String::new()
            }
            Command::SetRole { user_id, role } => {
                if !actor.admin && role == Role::Owner && actor.author.role != Role::Owner {
                    return Err(forbidden());
                }
                if let Some(t) = target.as_mut() {
                    t.role = role;
                }
                effects.push(Effect::SetRole(user_id, role));
                format!("{role:?}").to_lowercase()
            }
            Command::UpdateRoom {
                name: room_name,
                topic,
                private,
                assistant,
            } => {
                let mut info = self.info.clone();
                if let Some(n) = room_name {
                    info.name = crate::limits::validate_room_name(&n).map_err(Failure::Refused)?;
                }
                if let Some(t) = topic {
                    info.topic = crate::limits::validate_topic(&t).map_err(Failure::Refused)?;
                }
                if let Some(p) = private {
                    info.private = p;
                }
                if let Some(mode) = assistant {
                    info.assistant = mode;
                }
                let detail = format!(
                    "name: {}, topic: {}, private: {}, assistant: {:?}",
                    info.name, info.topic, info.private, info.assistant
                );
                self.info = info.clone();
                effects.push(Effect::InfoChanged(info.clone()));
                effects.push(Effect::Broadcast(ServerMessage::RoomUpdated { room: info }));
                detail
            }
            Command::RevokeInvite { token } => {
                let mut invite = self
                    .store
                    .invite(&token)
                    .map_err(Failure::storage)?
                    .ok_or_else(|| refused(ErrorCode::NotFound, "There is no such invite."))?;
                invite.revoked_at.get_or_insert(now);
                self.store.put_invite(&invite).map_err(Failure::storage)?;
                short(&token)
            }
        };
        if let Some(t) = target {
            self.store.put_member(&t).map_err(Failure::storage)?;
            if matches!(name, "mute" | "unmute" | "set_role") {
                effects.push(Effect::Broadcast(ServerMessage::MemberUpdated {
                    user_id: t.user_id.clone(),
                    role: t.role,
                    muted_until: t.muted_until,
                }));
            }
        }
        self.audit(&actor, name, target_id, detail, now)?;
        Ok(effects)
    }

    /// Creates an invite link (`token` is fresh randomness from the caller).
    pub fn create_invite(
        &mut self,
        conn: &Conn,
        request: &CreateInvite,
        token: String,
        now: Millis,
    ) -> Result<Invite, Failure> {
        request.validate().map_err(Failure::Refused)?;
        let actor = self.actor(conn)?;
        if !actor.may(Action::Invite) {
            return Err(forbidden());
        }
        let invite = Invite {
            token,
            created_by: actor.author.id.clone(),
            created_at: now,
            expires_at: request
                .expires_in_seconds
                .map(|s| now + i64::from(s) * 1000),
            max_uses: request.max_uses,
            uses: 0,
            revoked_at: None,
        };
        self.store.put_invite(&invite).map_err(Failure::storage)?;
        let detail = short(&invite.token);
        self.audit(&actor, "create_invite", None, detail, now)?;
        Ok(invite)
    }

    /// The room's invites, for those who may invite.
    pub fn invites(&self, conn: &Conn) -> Result<Vec<Invite>, Failure> {
        if !self.actor(conn)?.may(Action::Invite) {
            return Err(forbidden());
        }
        self.store.invites().map_err(Failure::storage)
    }

    /// Joins `conn`'s user to the room: with a valid invite (counted as used), or without one
    /// for a public room. A banned user stays out; an existing member is left as they are.
    pub fn join(
        &mut self,
        conn: &Conn,
        owner_id: &str,
        token: Option<&str>,
        now: Millis,
    ) -> Result<Role, Failure> {
        let user_id = &conn.author.id;
        if let Some(record) = self.store.member(user_id).map_err(Failure::storage)? {
            if record.banned {
                return Err(refused(ErrorCode::Banned, "You are banned from this room."));
            }
            return Ok(record.role);
        }
        if let Some(token) = token {
            let mut invite = self
                .store
                .invite(token)
                .map_err(Failure::storage)?
                .ok_or_else(|| {
                    refused(ErrorCode::InviteInvalid, "This invite link is not valid.")
                })?;
            invite.check(now).map_err(Failure::Refused)?;
            invite.uses += 1;
            self.store.put_invite(&invite).map_err(Failure::storage)?;
        } else if self.info.private && !conn.admin && user_id != owner_id {
            return Err(refused(
                ErrorCode::Forbidden,
                "This room is private; you need an invite to join it.",
            ));
        }
        Ok(self.enroll(conn, owner_id, now)?.role)
    }

    /// The member list, for members (and admins).
    pub fn members(&self, conn: &Conn) -> Result<Vec<MemberRecord>, Failure> {
        let known = self
            .store
            .member(&conn.author.id)
            .map_err(Failure::storage)?
            .is_some_and(|m| !m.banned);
        if !known && !conn.admin {
            return Err(forbidden());
        }
        self.store.member_records().map_err(Failure::storage)
    }

    /// A page of the audit log, newest first, for those who may view it.
    pub fn audit_log(&self, conn: &Conn, before: Option<u64>) -> Result<Vec<AuditEntry>, Failure> {
        if !self.actor(conn)?.may(Action::ViewAudit) {
            return Err(forbidden());
        }
        self.store
            .audit_before(before, crate::moderation::AUDIT_PAGE)
            .map_err(Failure::storage)
    }

    /// A user changed their name or avatar: remember the name and tell the room.
    pub fn profile_changed(&mut self, member: Member, now: Millis) -> Result<Vec<Effect>, Failure> {
        if let Some(mut record) = self
            .store
            .member(&member.user_id)
            .map_err(Failure::storage)?
        {
            record.name.clone_from(&member.name);
            record.renamed_at = Some(now);
            self.store.put_member(&record).map_err(Failure::storage)?;
        }
        Ok(vec![Effect::Broadcast(ServerMessage::ProfileUpdated {
            member,
        })])
    }
}

/// The first characters of a secret, enough to tell invites apart in a log.
fn short(token: &str) -> String {
    token.chars().take(6).collect()
}

/// Why a request did not complete.
#[derive(Debug)]
pub enum Failure {
    /// Refused by a rule; the error goes to the client.
    Refused(ChatError),
    /// The store failed; the detail is logged, the client gets a generic `internal` error.
    Storage(String),
}

impl Failure {
    pub(crate) fn storage(err: impl fmt::Display) -> Self {
        Failure::Storage(err.to_string())
    }

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

/// Who is present, one entry per user, given the room's joined connections.
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

/// An in-memory [`RoomStore`], for tests, benchmarks and property tests.
pub mod memory {
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::convert::Infallible;

    use super::RoomStore;
    use crate::assistant::Summary;
    use crate::limits::UNREAD_COUNT_CAP;
    use crate::moderation::{AuditEntry, Invite, MemberRecord};
    use crate::protocol::{Event, EventKind, Member, MessageView, Millis, Seq, UnreadCounts};

    /// Everything in maps.
    #[derive(Debug, Default, Clone)]
    pub struct MemoryStore {
        events: BTreeMap<Seq, Event>,
        messages: BTreeMap<Seq, MessageView>,
        mutations: HashMap<(String, String), Seq>,
        /// Previous texts of edited messages, oldest first.
        pub versions: BTreeMap<Seq, Vec<String>>,
        summary: Option<Summary>,
        /// Members with the time they were last seen.
        members: Vec<(Member, Millis)>,
        mentions: BTreeSet<(String, Seq)>,
        reads: HashMap<String, Seq>,
        records: Vec<MemberRecord>,
        audit: Vec<AuditEntry>,
        invites: Vec<Invite>,
    }

    impl RoomStore for MemoryStore {
        type Error = Infallible;

        fn head(&self) -> Result<Seq, Infallible> {
            Ok(self.events.keys().next_back().copied().unwrap_or(0))
        }

        fn find_mutation(
            &self,
            author_id: &str,
            client_id: &str,
        ) -> Result<Option<Seq>, Infallible> {
            Ok(self
                .mutations
                .get(&(author_id.to_owned(), client_id.to_owned()))
                .copied())
        }

        fn message(&self, seq: Seq) -> Result<Option<MessageView>, Infallible> {
            Ok(self.messages.get(&seq).cloned())
        }

        fn append(&mut self, event: &Event) -> Result<(), Infallible> {
            if let Some(message) = MessageView::from_event(event) {
                self.messages.insert(event.seq, message);
            }
            if let crate::protocol::EventKind::Edit { target, .. }
            | crate::protocol::EventKind::Delete { target } = &event.kind
            {
                if let Some(message) = self.messages.get_mut(target) {
                    let previous = message.text.clone();
                    if message.apply(event) {
                        if message.deleted {
                            self.versions.remove(target);
                            // As in the SQL store: a deleted message's words leave the log too.
                            for logged in self.events.values_mut() {
                                let about_target = logged.seq == *target
                                    || matches!(logged.kind, crate::protocol::EventKind::Edit { target: t, .. } if t == *target);
                                if about_target {
                                    match &mut logged.kind {
                                        crate::protocol::EventKind::Message { text }
                                        | crate::protocol::EventKind::Reply { text, .. }
                                        | crate::protocol::EventKind::Edit { text, .. } => {
                                            text.clear()
                                        }
                                        _ => {}
                                    }
                                }
                            }
                        } else {
                            self.versions.entry(*target).or_default().push(previous);
                        }
                    }
                }
            }
            if let EventKind::AnswerStatus { target, .. }
            | EventKind::Feedback { target, .. }
            | EventKind::React { target, .. }
            | EventKind::Pin { target, .. }
            | EventKind::Reply { thread: target, .. }
            | EventKind::Answer {
                thread: Some(target),
                ..
            } = &event.kind
            {
                if let Some(message) = self.messages.get_mut(target) {
                    message.apply(event);
                }
            }
            self.mutations.insert(
                (event.author.id.clone(), event.client_id.clone()),
                event.seq,
            );
            self.events.insert(event.seq, event.clone());
            Ok(())
        }

        fn events_after(&self, after: Seq, limit: usize) -> Result<Vec<Event>, Infallible> {
            Ok(self
                .events
                .range(after + 1..)
                .take(limit)
                .map(|(_, e)| e.clone())
                .collect())
        }

        fn messages_before(
            &self,
            before: Option<Seq>,
            limit: usize,
        ) -> Result<(Vec<MessageView>, bool), Infallible> {
            let upper = before.unwrap_or(Seq::MAX);
            let mut page: Vec<MessageView> = self
                .messages
                .range(..upper)
                .rev()
                .filter(|(_, m)| m.in_timeline())
                .take(limit.saturating_add(1))
                .map(|(_, m)| m.clone())
                .collect();
            let has_more = page.len() > limit;
            page.truncate(limit);
            page.reverse();
            // As in the SQL store: pages show each author's current name.
            for message in &mut page {
                if let Some(m) = self.records.iter().find(|m| m.user_id == message.author.id) {
                    message.author.name.clone_from(&m.name);
                }
            }
            Ok((page, has_more))
        }

        fn set_answer_text(&mut self, seq: Seq, text: &str) -> Result<(), Infallible> {
            if let Some(message) = self.messages.get_mut(&seq) {
                text.clone_into(&mut message.text);
            }
            Ok(())
        }

        fn unfinished_answers(&self) -> Result<Vec<MessageView>, Infallible> {
            Ok(self
                .messages
                .values()
                .filter(|m| m.answer.as_ref().is_some_and(|a| a.state.is_active()))
                .cloned()
                .collect())
        }

        fn summary(&self) -> Result<Option<Summary>, Infallible> {
            Ok(self.summary.clone())
        }

        fn thread_replies(
            &self,
            root: Seq,
            limit: usize,
        ) -> Result<(Vec<MessageView>, bool), Infallible> {
            let all: Vec<&MessageView> = self
                .messages
                .values()
                .filter(|m| m.thread == Some(root))
                .collect();
            let skip = all.len().saturating_sub(limit);
            Ok((all[skip..].iter().map(|m| (*m).clone()).collect(), skip > 0))
        }

        fn pinned(&self, limit: usize) -> Result<Vec<MessageView>, Infallible> {
            Ok(self
                .messages
                .values()
                .rev()
                .filter(|m| m.pinned)
                .take(limit)
                .cloned()
                .collect())
        }

        fn record_member(&mut self, member: &Member, now: Millis) -> Result<bool, Infallible> {
            let known = self
                .members
                .iter()
                .position(|(m, _)| m.user_id == member.user_id);
            if let Some(i) = known {
                self.members[i] = (member.clone(), now);
            } else {
                self.members.push((member.clone(), now));
            }
            Ok(known.is_none())
        }

        fn members(&self, limit: usize) -> Result<Vec<Member>, Infallible> {
            let mut members = self.members.clone();
            members.sort_by_key(|m| std::cmp::Reverse(m.1));
            Ok(members.into_iter().take(limit).map(|(m, _)| m).collect())
        }

        fn mentioned(&self, seq: Seq) -> Result<Vec<String>, Infallible> {
            Ok(self
                .mentions
                .iter()
                .filter(|(_, s)| *s == seq)
                .map(|(id, _)| id.clone())
                .collect())
        }

        fn add_mentions(&mut self, seq: Seq, user_ids: &[&str]) -> Result<(), Infallible> {
            for id in user_ids {
                self.mentions.insert(((*id).to_owned(), seq));
            }
            Ok(())
        }

        fn read_position(&self, user_id: &str) -> Result<Option<Seq>, Infallible> {
            Ok(self.reads.get(user_id).copied())
        }

        fn set_read_position(&mut self, user_id: &str, seq: Seq) -> Result<(), Infallible> {
            self.reads.insert(user_id.to_owned(), seq);
            Ok(())
        }

        fn unread_counts(&self, user_id: &str, read: Seq) -> Result<UnreadCounts, Infallible> {
            let alive = |seq: &Seq| self.messages.get(seq).is_some_and(|m| !m.deleted);
            let unread = self
                .messages
                .range(read + 1..)
                .filter(|(_, m)| m.in_timeline() && !m.deleted && m.author.id != user_id)
                .take(UNREAD_COUNT_CAP as usize)
                .count() as u32;
            let mentions = self
                .mentions
                .iter()
                .filter(|(id, seq)| id == user_id && *seq > read && alive(seq))
                .take(UNREAD_COUNT_CAP as usize)
                .count() as u32;
            Ok(UnreadCounts { unread, mentions })
        }

        fn set_summary(&mut self, summary: &Summary) -> Result<(), Infallible> {
            self.summary = Some(summary.clone());
            Ok(())
        }

        fn member(&self, user_id: &str) -> Result<Option<MemberRecord>, Infallible> {
            Ok(self.records.iter().find(|m| m.user_id == user_id).cloned())
        }

        fn put_member(&mut self, member: &MemberRecord) -> Result<(), Infallible> {
            match self
                .records
                .iter_mut()
                .find(|m| m.user_id == member.user_id)
            {
                Some(existing) => *existing = member.clone(),
                None => self.records.push(member.clone()),
            }
            Ok(())
        }

        fn member_records(&self) -> Result<Vec<MemberRecord>, Infallible> {
            Ok(self.records.clone())
        }

        fn renamed_since(
            &self,
            at: crate::protocol::Millis,
        ) -> Result<Vec<MemberRecord>, Infallible> {
            Ok(self
                .records
                .iter()
                .filter(|m| m.renamed_at.is_some_and(|r| r > at))
                .cloned()
                .collect())
        }

        fn append_audit(&mut self, entry: &AuditEntry) -> Result<(), Infallible> {
            let mut entry = entry.clone();
            entry.id = self.audit.len() as u64 + 1;
            self.audit.push(entry);
            Ok(())
        }

        fn audit_before(
            &self,
            before: Option<u64>,
            limit: usize,
        ) -> Result<Vec<AuditEntry>, Infallible> {
            Ok(self
                .audit
                .iter()
                .rev()
                .filter(|e| before.is_none_or(|b| e.id < b))
                .take(limit)
                .cloned()
                .collect())
        }

        fn invite(&self, token: &str) -> Result<Option<Invite>, Infallible> {
            Ok(self.invites.iter().find(|i| i.token == token).cloned())
        }

        fn put_invite(&mut self, invite: &Invite) -> Result<(), Infallible> {
            match self.invites.iter_mut().find(|i| i.token == invite.token) {
                Some(existing) => *existing = invite.clone(),
                None => self.invites.push(invite.clone()),
            }
            Ok(())
        }

        fn invites(&self) -> Result<Vec<Invite>, Infallible> {
            Ok(self.invites.iter().rev().cloned().collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memory::MemoryStore;
    use super::*;
    use crate::protocol::Role;

    fn info() -> RoomInfo {
        RoomInfo {
            slug: "general".into(),
            name: "General".into(),
            topic: String::new(),
            created_at: 0,
            last_activity: None,
            message_count: 0,
            assistant: Default::default(),
            private: false,
        }
    }

    fn conn(id: &str, role: Role) -> Conn {
        let mut conn = Conn::new(Author {
            id: id.into(),
            name: id.to_uppercase(),
            role,
        });
        conn.joined = true;
        conn
    }

    struct Fixture {
        room: Room<MemoryStore>,
        limiter: ConnLimiter,
        now: Millis,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                room: Room::open(MemoryStore::default(), info()).unwrap(),
                limiter: ConnLimiter::new(
                    RateLimits {
                        send_burst: 1000.0,
                        send_per_second: 1000.0,
                        frame_burst: 1000.0,
                        frame_per_second: 1000.0,
                    },
                    0,
                ),
                now: 1_000,
            }
        }

        fn frame(&mut self, conn: &Conn, msg: serde_json::Value) -> Vec<Effect> {
            self.now += 1;
            let raw = msg.to_string();
            self.room.on_frame(
                conn,
                &mut self.limiter,
                Frame::Text(&raw),
                self.now,
                Vec::new,
            )
        }

        /// A member whose connection said hello (so the room knows them, for mentions).
        fn member_who_joined(&mut self, id: &str) -> Conn {
            let mut member = conn(id, Role::Member);
            member.joined = false;
            self.frame(&member, serde_json::json!({"type":"hello","protocol":1}));
            member.joined = true;
            member
        }

        fn send(&mut self, conn: &Conn, client_id: &str, text: &str) -> Vec<Effect> {
            self.frame(
                conn,
                serde_json::json!({"type":"send","client_id":client_id,"text":text}),
            )
        }
    }

    fn ack_of(effects: &[Effect]) -> (Seq, bool) {
        effects
            .iter()
            .find_map(|e| match e {
                Effect::Reply(ServerMessage::Ack { seq, duplicate, .. }) => {
                    Some((*seq, *duplicate))
                }
                _ => None,
            })
            .expect("an ack")
    }

    fn error_of(effects: &[Effect]) -> ErrorCode {
        effects
            .iter()
            .find_map(|e| match e {
                Effect::Reply(ServerMessage::Error { code, .. }) => Some(*code),
                _ => None,
            })
            .expect("an error reply")
    }

    fn broadcasts(effects: &[Effect]) -> usize {
        effects
            .iter()
            .filter(|e| matches!(e, Effect::Broadcast(_) | Effect::BroadcastOthers(_)))
            .count()
    }

    #[test]
    fn sends_get_gap_free_increasing_sequence_numbers() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let seqs: Vec<Seq> = (0..5)
            .map(|i| ack_of(&f.send(&ann, &format!("c{i}"), "hi")).0)
            .collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
        assert_eq!(f.room.head(), 5);
    }

    #[test]
    fn a_resend_with_the_same_client_id_is_acknowledged_again_but_not_stored_twice() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let first = f.send(&ann, "same", "hello");
        let again = f.send(&ann, "same", "hello");
        assert_eq!(ack_of(&first), (1, false));
        assert_eq!(ack_of(&again), (1, true));
        assert_eq!(broadcasts(&again), 0, "a duplicate is not re-broadcast");
        assert_eq!(f.room.head(), 1);
    }

    #[test]
    fn the_same_client_id_from_two_users_is_two_messages() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let bob = conn("bob", Role::Member);
        assert_eq!(ack_of(&f.send(&ann, "x", "a")).0, 1);
        assert_eq!(ack_of(&f.send(&bob, "x", "b")).0, 2);
    }

    #[test]
    fn the_server_stamps_the_author_from_the_session() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let effects = f.send(&ann, "c", "hi");
        let event = effects
            .iter()
            .find_map(|e| match e {
                Effect::Broadcast(ServerMessage::Event { event }) => Some(event.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(event.author, ann.author);
        assert_eq!(event.at, f.now);
    }

    #[test]
    fn an_invalid_frame_gets_an_error_and_nothing_is_broadcast() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let effects = f.frame(&ann, serde_json::json!({"type":"send","text":"no id"}));
        assert_eq!(error_of(&effects), ErrorCode::InvalidFrame);
        assert_eq!(broadcasts(&effects), 0);
        let effects = f.send(&ann, "c", &"x".repeat(limits::TEXT_MAX_CHARS + 1));
        assert_eq!(error_of(&effects), ErrorCode::TooLarge);
        assert_eq!(f.room.head(), 0);
        // The room keeps working.
        assert_eq!(ack_of(&f.send(&ann, "ok", "fine")).0, 1);
    }

    #[test]
    fn a_binary_frame_is_refused_with_invalid_frame() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let effects = f
            .room
            .on_frame(&ann, &mut f.limiter, Frame::Binary(10), 5, Vec::new);
        assert_eq!(error_of(&effects), ErrorCode::InvalidFrame);
    }

    #[test]
    fn anything_before_hello_closes_the_connection() {
        let mut f = Fixture::new();
        let mut ann = conn("ann", Role::Member);
        ann.joined = false;
        let effects = f.send(&ann, "c", "hi");
        assert!(effects.contains(&Effect::Close(
            close::INVALID_HANDSHAKE,
            ErrorCode::InvalidFrame
        )));
        assert_eq!(f.room.head(), 0);
    }

    #[test]
    fn a_hello_with_another_protocol_version_is_refused_and_closed() {
        let mut f = Fixture::new();
        let mut ann = conn("ann", Role::Member);
        ann.joined = false;
        let effects = f.frame(&ann, serde_json::json!({"type":"hello","protocol":99}));
        assert_eq!(error_of(&effects), ErrorCode::UnsupportedProtocol);
        assert!(effects.contains(&Effect::Close(
            close::UNSUPPORTED_PROTOCOL,
            ErrorCode::UnsupportedProtocol
        )));
        assert!(!effects.contains(&Effect::Joined));
    }

    #[test]
    fn a_hello_without_a_cursor_gets_the_latest_page_only() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        for i in 0..120 {
            f.send(&ann, &format!("c{i}"), "hi");
        }
        let effects = f.frame(&ann, serde_json::json!({"type":"hello","protocol":1}));
        assert_eq!(effects[0], Effect::Joined);
        let Effect::Reply(ServerMessage::Welcome { head, present, .. }) = &effects[1] else {
            panic!("welcome expected: {effects:?}")
        };
        assert_eq!(*head, 120);
        assert_eq!(present.len(), 1, "the joining user is present");
        let Effect::Reply(ServerMessage::History {
            messages,
            has_more,
            reason,
        }) = &effects[2]
        else {
            panic!("history expected")
        };
        assert_eq!(messages.len(), PAGE_DEFAULT as usize);
        assert_eq!(messages.first().unwrap().seq, 71);
        assert_eq!(messages.last().unwrap().seq, 120);
        assert!(*has_more);
        assert_eq!(*reason, HistoryReason::Latest);
    }

    #[test]
    fn a_hello_with_a_cursor_replays_exactly_the_missed_events_edits_and_deletes_included() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        f.send(&ann, "a", "one");
        f.send(&ann, "b", "two");
        f.frame(
            &ann,
            serde_json::json!({"type":"edit","client_id":"e","target":1,"text":"uno"}),
        );
        f.frame(
            &ann,
            serde_json::json!({"type":"delete","client_id":"d","target":2}),
        );
        let effects = f.frame(
            &ann,
            serde_json::json!({"type":"hello","protocol":1,"after":1}),
        );
        let replayed: Vec<Seq> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Reply(ServerMessage::Replay { events, .. }) => Some(events),
                _ => None,
            })
            .flatten()
            .map(|e| e.seq)
            .collect();
        assert_eq!(replayed, vec![2, 3, 4]);
    }

    #[test]
    fn a_replay_larger_than_one_batch_comes_in_ordered_batches_with_done_on_the_last() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        for i in 0..250 {
            f.send(&ann, &format!("c{i}"), "hi");
        }
        let frames = f.room.sync(Some(0)).unwrap();
        assert_eq!(frames.len(), 3);
        let mut expected = 1;
        for (i, frame) in frames.iter().enumerate() {
            let ServerMessage::Replay { events, done } = frame else {
                panic!()
            };
            assert_eq!(*done, i == 2);
            for e in events {
                assert_eq!(e.seq, expected);
                expected += 1;
            }
        }
        assert_eq!(expected, 251);
    }

    #[test]
    fn a_cursor_too_far_behind_or_ahead_gets_a_reset_page_instead_of_a_replay() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        for i in 0..(REPLAY_MAX_EVENTS + 10) {
            f.send(&ann, &format!("c{i}"), "hi");
        }
        for cursor in [0, 9, f.room.head() + 5] {
            let frames = f.room.sync(Some(cursor)).unwrap();
            assert!(
                matches!(
                    frames.as_slice(),
                    [ServerMessage::History {
                        reason: HistoryReason::Reset,
                        ..
                    }]
                ),
                "cursor {cursor}"
            );
        }
        assert!(matches!(
            f.room.sync(Some(10)).unwrap()[0],
            ServerMessage::Replay { .. }
        ));
    }

    #[test]
    fn older_pages_are_fetched_by_sequence_cursor() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        for i in 0..30 {
            f.send(&ann, &format!("c{i}"), "hi");
        }
        let effects = f.frame(
            &ann,
            serde_json::json!({"type":"history","before":11,"limit":5}),
        );
        let Effect::Reply(ServerMessage::History {
            messages,
            has_more,
            reason,
        }) = &effects[0]
        else {
            panic!()
        };
        assert_eq!(
            messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![6, 7, 8, 9, 10]
        );
        assert!(*has_more);
        assert_eq!(*reason, HistoryReason::Older);
        let effects = f.frame(&ann, serde_json::json!({"type":"history","before":3}));
        let Effect::Reply(ServerMessage::History {
            messages, has_more, ..
        }) = &effects[0]
        else {
            panic!()
        };
        assert_eq!(messages.len(), 2);
        assert!(!*has_more);
    }

    #[test]
    fn editing_keeps_previous_versions_and_only_the_author_may_edit() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let bob = conn("bob", Role::Member);
        f.send(&ann, "a", "first");
        let effects = f.frame(
            &bob,
            serde_json::json!({"type":"edit","client_id":"e1","target":1,"text":"hacked"}),
        );
        assert_eq!(error_of(&effects), ErrorCode::Forbidden);
        let effects = f.frame(
            &ann,
            serde_json::json!({"type":"edit","client_id":"e2","target":1,"text":"second"}),
        );
        assert_eq!(ack_of(&effects).0, 2);
        let message = f.room.store().message(1).unwrap().unwrap();
        assert_eq!(message.text, "second");
        assert!(message.edited_at.is_some());
        assert_eq!(f.room.store().versions[&1], vec!["first".to_string()]);
    }

    #[test]
    fn deleting_leaves_a_tombstone_and_a_deleted_message_cannot_be_edited() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        f.send(&ann, "a", "secret");
        assert_eq!(
            ack_of(&f.frame(
                &ann,
                serde_json::json!({"type":"delete","client_id":"d","target":1})
            ))
            .0,
            2
        );
        let message = f.room.store().message(1).unwrap().unwrap();
        assert!(message.deleted);
        assert_eq!(message.text, "");
        let effects = f.frame(
            &ann,
            serde_json::json!({"type":"edit","client_id":"e","target":1,"text":"back"}),
        );
        assert_eq!(error_of(&effects), ErrorCode::NotFound);
    }

    #[test]
    fn a_member_cannot_delete_anothers_message_but_a_moderator_can() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let bob = conn("bob", Role::Member);
        let mod_ = conn("mo", Role::Moderator);
        f.send(&ann, "a", "hi");
        let effects = f.frame(
            &bob,
            serde_json::json!({"type":"delete","client_id":"d","target":1}),
        );
        assert_eq!(error_of(&effects), ErrorCode::Forbidden);
        let effects = f.frame(
            &mod_,
            serde_json::json!({"type":"delete","client_id":"d","target":1}),
        );
        assert_eq!(ack_of(&effects).0, 2);
    }

    #[test]
    fn a_read_only_member_cannot_post() {
        let mut f = Fixture::new();
        let reader = conn("r", Role::ReadOnly);
        assert_eq!(error_of(&f.send(&reader, "a", "hi")), ErrorCode::Forbidden);
        assert_eq!(f.room.head(), 0);
    }

    #[test]
    fn editing_a_message_that_does_not_exist_is_not_found() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let effects = f.frame(
            &ann,
            serde_json::json!({"type":"edit","client_id":"e","target":42,"text":"x"}),
        );
        assert_eq!(error_of(&effects), ErrorCode::NotFound);
    }

    #[test]
    fn sends_beyond_the_burst_are_rate_limited_with_the_client_id_and_a_retry_time() {
        let mut room = Room::open(MemoryStore::default(), info()).unwrap();
        let ann = conn("ann", Role::Member);
        let mut limiter = ConnLimiter::new(RateLimits::default(), 0);
        let burst = RateLimits::default().send_burst as usize;
        for i in 0..burst {
            let raw = serde_json::json!({"type":"send","client_id":format!("c{i}"),"text":"x"})
                .to_string();
            let effects = room.on_frame(&ann, &mut limiter, Frame::Text(&raw), 0, Vec::new);
            ack_of(&effects);
        }
        let raw = r#"{"type":"send","client_id":"late","text":"x"}"#;
        let effects = room.on_frame(&ann, &mut limiter, Frame::Text(raw), 0, Vec::new);
        let Effect::Reply(ServerMessage::Error {
            code,
            client_id,
            retry_after_ms,
            ..
        }) = &effects[0]
        else {
            panic!()
        };
        assert_eq!(*code, ErrorCode::RateLimited);
        assert_eq!(client_id.as_deref(), Some("late"));
        assert_eq!(*retry_after_ms, Some(200));
        // After the retry time the same send goes through.
        let effects = room.on_frame(&ann, &mut limiter, Frame::Text(raw), 200, Vec::new);
        ack_of(&effects);
    }

    #[test]
    fn a_connection_that_keeps_flooding_is_closed() {
        let mut room = Room::open(MemoryStore::default(), info()).unwrap();
        let ann = conn("ann", Role::Member);
        let limits = RateLimits::default();
        let mut limiter = ConnLimiter::new(limits, 0);
        let mut closed_after = None;
        for i in 0..(limits.frame_burst as usize + FLOOD_STRIKES as usize + 1) {
            let effects = room.on_frame(
                &ann,
                &mut limiter,
                Frame::Text(r#"{"type":"typing"}"#),
                0,
                Vec::new,
            );
            if effects.contains(&Effect::Close(close::RATE_LIMITED, ErrorCode::RateLimited)) {
                closed_after = Some(i);
                break;
            }
        }
        assert_eq!(
            closed_after,
            Some(limits.frame_burst as usize + FLOOD_STRIKES as usize - 1)
        );
    }

    #[test]
    fn typing_goes_to_the_others_and_ping_gets_a_pong() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let effects = f.frame(&ann, serde_json::json!({"type":"typing"}));
        assert!(matches!(
            effects.as_slice(),
            [Effect::BroadcastOthers(ServerMessage::Typing { .. })]
        ));
        let effects = f.frame(&ann, serde_json::json!({"type":"ping"}));
        assert_eq!(effects, vec![Effect::Reply(ServerMessage::Pong {})]);
    }

    #[test]
    fn a_user_is_present_only_through_a_joined_connection() {
        let ann = conn("ann", Role::Member);
        let mut bob = conn("bob", Role::Member);
        bob.joined = false;
        assert!(is_present([&ann, &bob], "ann"));
        assert!(!is_present([&ann, &bob], "bob"), "not before the hello");
        assert!(!is_present([], "ann"));
    }

    #[test]
    fn presence_lists_each_joined_user_once() {
        let ann1 = conn("ann", Role::Member);
        let ann2 = conn("ann", Role::Member);
        let mut bob = conn("bob", Role::Member);
        bob.joined = false;
        let members = presence([&ann1, &ann2, &bob]);
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].user_id, "ann");
    }

    fn reply(f: &mut Fixture, who: &Conn, id: &str, target: Seq, also: bool) -> Vec<Effect> {
        f.frame(
            who,
            serde_json::json!({"type":"reply","client_id":id,"target":target,"text":format!("re {id}"),"also_in_room":also}),
        )
    }

    fn react(f: &mut Fixture, who: &Conn, id: &str, target: Seq, add: bool) -> Vec<Effect> {
        f.frame(
            who,
            serde_json::json!({"type":"react","client_id":id,"target":target,"emoji":"🎉","add":add}),
        )
    }

    fn replayed(f: &mut Fixture, who: &Conn, after: Seq) -> Vec<Event> {
        f.frame(
            who,
            serde_json::json!({"type":"hello","protocol":1,"after":after}),
        )
        .into_iter()
        .filter_map(|e| match e {
            Effect::Reply(ServerMessage::Replay { events, .. }) => Some(events),
            _ => None,
        })
        .flatten()
        .collect()
    }

    #[test]
    fn a_thread_only_reply_counts_on_its_root_but_stays_out_of_the_timeline() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let bob = conn("bob", Role::Member);
        f.send(&ann, "a", "root");
        reply(&mut f, &bob, "r1", 1, false);
        reply(&mut f, &ann, "r2", 1, true);
        let root = f.room.store().message(1).unwrap().unwrap();
        assert_eq!(root.replies.map(|r| (r.count, r.last_at)), Some((2, f.now)));
        let (page, _) = f.room.store().messages_before(None, 50).unwrap();
        let seqs: Vec<Seq> = page.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![1, 3], "the also-to-room reply only");
        let (root, replies, has_more) = f.room.thread(1).unwrap();
        assert_eq!(root.seq, 1);
        assert_eq!(
            replies.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert!(!has_more);
    }

    #[test]
    fn a_reply_to_a_reply_joins_the_same_thread() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        f.send(&ann, "a", "root");
        reply(&mut f, &ann, "r1", 1, false);
        reply(&mut f, &ann, "r2", 2, false);
        let reply = f.room.store().message(3).unwrap().unwrap();
        assert_eq!(reply.thread, Some(1));
        assert_eq!(
            f.room.thread(3).unwrap().0.seq,
            1,
            "any message opens its thread"
        );
    }

    #[test]
    fn replying_to_a_deleted_or_missing_message_is_not_found() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        f.send(&ann, "a", "root");
        f.frame(
            &ann,
            serde_json::json!({"type":"delete","client_id":"d","target":1}),
        );
        assert_eq!(
            error_of(&reply(&mut f, &ann, "r", 1, false)),
            ErrorCode::NotFound
        );
        assert_eq!(
            error_of(&reply(&mut f, &ann, "s", 99, false)),
            ErrorCode::NotFound
        );
        assert_eq!(f.room.head(), 2);
    }

    #[test]
    fn reactions_toggle_per_user_and_are_replayed_after_a_reconnect() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let bob = conn("bob", Role::Member);
        f.send(&ann, "a", "party");
        react(&mut f, &ann, "e1", 1, true);
        react(&mut f, &bob, "e2", 1, true);
        react(&mut f, &ann, "e3", 1, false);
        let m = f.room.store().message(1).unwrap().unwrap();
        assert_eq!(m.reactions.len(), 1);
        assert_eq!(m.reactions[0].by, vec![bob.member()]);
        assert!(m.reacted("bob", "🎉") && !m.reacted("ann", "🎉"));
        // A client that held only the message gets the reactions by replay and ends up with
        // the same view.
        let events = replayed(&mut f, &ann, 1);
        assert_eq!(events.len(), 3);
        let mut view =
            MessageView::from_event(&f.room.store().events_after(0, 1).unwrap()[0]).unwrap();
        for e in &events {
            view.apply(e);
        }
        assert_eq!(view, m);
    }

    #[test]
    fn a_reaction_must_be_an_emoji_and_a_read_only_member_cannot_react() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let reader = conn("r", Role::ReadOnly);
        f.send(&ann, "a", "hi");
        let effects = f.frame(
            &ann,
            serde_json::json!({"type":"react","client_id":"e","target":1,"emoji":"lol","add":true}),
        );
        assert_eq!(error_of(&effects), ErrorCode::InvalidInput);
        assert_eq!(
            error_of(&react(&mut f, &reader, "e", 1, true)),
            ErrorCode::Forbidden
        );
        assert_eq!(f.room.head(), 1);
    }

    #[test]
    fn only_owners_and_moderators_pin_and_the_pinned_list_follows_pins_and_deletes() {
        let mut f = Fixture::new();
        let ann = conn("ann", Role::Member);
        let mo = conn("mo", Role::Moderator);
        f.send(&ann, "a", "one");
        f.send(&ann, "b", "two");
        let pin = |target: Seq, id: &str, pinned: bool| serde_json::json!({"type":"pin","client_id":id,"target":target,"pinned":pinned});
        assert_eq!(
            error_of(&f.frame(&ann, pin(1, "p0", true))),
            ErrorCode::Forbidden
        );
        ack_of(&f.frame(&mo, pin(1, "p1", true)));
        ack_of(&f.frame(&mo, pin(2, "p2", true)));
        let effects = f.frame(&ann, serde_json::json!({"type":"pins"}));
        let Effect::Reply(ServerMessage::Pinned { messages }) = &effects[0] else {
            panic!("{effects:?}")
        };
        assert_eq!(
            messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![2, 1]
        );
        f.frame(
            &ann,
            serde_json::json!({"type":"delete","client_id":"d","target":2}),
        );
        ack_of(&f.frame(&mo, pin(1, "p3", false)));
        assert!(f.room.store().pinned(10).unwrap().is_empty());
    }

    #[test]
    fn read_positions_only_move_forward_and_unread_counts_others_messages_and_mentions() {
        let mut f = Fixture::new();
        let ann = f.member_who_joined("ann");
        let bob = f.member_who_joined("bob");
        f.send(&ann, "a", "hello @BOB");
        f.send(&ann, "b", "plain");
        f.send(&bob, "c", "mine do not count");
        reply(&mut f, &ann, "r", 1, false);
        assert_eq!(
            f.room.unread("bob").unwrap(),
            (
                0,
                UnreadCounts {
                    unread: 2,
                    mentions: 1
                }
            )
        );
        let effects = f.frame(&bob, serde_json::json!({"type":"read","seq":2}));
        let counts = ServerMessage::Unread {
            read: 2,
            counts: UnreadCounts::default(),
        };
        assert_eq!(
            effects,
            vec![
                Effect::NotifyUser("bob".into(), counts.clone()),
                Effect::ToUser("bob".into(), counts)
            ]
        );
        // Going back is a no-op answered to the asking connection only.
        let effects = f.frame(&bob, serde_json::json!({"type":"read","seq":1}));
        assert!(matches!(
            effects.as_slice(),
            [Effect::Reply(ServerMessage::Unread { read: 2, .. })]
        ));
        // A read past the head stops at the head.
        f.frame(&bob, serde_json::json!({"type":"read","seq":999}));
        assert_eq!(f.room.unread("bob").unwrap().0, f.room.head());
    }

    #[test]
    fn a_deleted_message_no_longer_counts_as_unread_or_as_a_mention() {
        let mut f = Fixture::new();
        f.member_who_joined("bob");
        let ann = conn("ann", Role::Member);
        f.send(&ann, "a", "@bob look");
        assert_eq!(f.room.unread("bob").unwrap().1.mentions, 1);
        f.frame(
            &ann,
            serde_json::json!({"type":"delete","client_id":"d","target":1}),
        );
        assert_eq!(f.room.unread("bob").unwrap().1, UnreadCounts::default());
    }

    fn notices(effects: &[Effect]) -> Vec<&ServerMessage> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Notify(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_watch_gets_the_counts_and_then_only_notices_of_what_changes_them() {
        let mut f = Fixture::new();
        f.member_who_joined("bob");
        let ann = conn("ann", Role::Member);
        f.send(&ann, "a", "before");
        let mut watcher = conn("bob", Role::Member);
        watcher.joined = false;
        let effects = f.frame(&watcher, serde_json::json!({"type":"watch","protocol":1}));
        assert_eq!(
            effects,
            vec![
                Effect::Watching,
                Effect::Reply(ServerMessage::Unread {
                    read: 0,
                    counts: UnreadCounts {
                        unread: 1,
                        mentions: 0
                    }
                })
            ]
        );
        // Not a join: no welcome, no history, no presence, no membership.
        assert!(!effects.iter().any(|e| matches!(
            e,
            Effect::Joined | Effect::NewMember(_) | Effect::Broadcast(_)
        )));

        let posted = f.send(&ann, "b", "hi @bob");
        assert_eq!(
            notices(&posted),
            vec![&ServerMessage::Activity {
                seq: 2,
                by: "ann".into(),
                main: true,
                mentions: vec!["bob".into()],
                removed: false,
            }]
        );
        let thread_only = reply(&mut f, &ann, "r", 1, false);
        assert!(matches!(
            notices(&thread_only).as_slice(),
            [ServerMessage::Activity {
                seq: 3,
                main: false,
                ..
            }]
        ));
        // Reactions and plain edits change no counts: watchers hear nothing of them.
        assert!(notices(&react(&mut f, &ann, "e", 1, true)).is_empty());
        let edit = f.frame(
            &ann,
            serde_json::json!({"type":"edit","client_id":"ed","target":1,"text":"after"}),
        );
        assert!(notices(&edit).is_empty());
        // An edit that mentions someone new counts as a mention of them only, once.
        let edit = f.frame(
            &ann,
            serde_json::json!({"type":"edit","client_id":"ed2","target":1,"text":"after @bob"}),
        );
        assert_eq!(
            notices(&edit),
            vec![&ServerMessage::Activity {
                seq: 1,
                by: "ann".into(),
                main: false,
                mentions: vec!["bob".into()],
                removed: false,
            }]
        );
        let again = f.frame(
            &ann,
            serde_json::json!({"type":"edit","client_id":"ed3","target":1,"text":"after @bob!"}),
        );
        assert!(notices(&again).is_empty());
    }

    #[test]
    fn deleting_a_message_tells_watchers_whose_it_was_and_whom_it_mentioned() {
        let mut f = Fixture::new();
        f.member_who_joined("bob");
        let ann = conn("ann", Role::Member);
        f.send(&ann, "a", "@bob look");
        let deleted = f.frame(
            &conn("mod", Role::Moderator),
            serde_json::json!({"type":"delete","client_id":"d","target":1}),
        );
        assert_eq!(
            notices(&deleted),
            vec![&ServerMessage::Activity {
                seq: 1,
                by: "ann".into(),
                main: true,
                mentions: vec!["bob".into()],
                removed: true,
            }]
        );
    }

    #[test]
    fn a_watcher_only_listens_and_a_joined_connection_cannot_turn_into_one() {
        let mut f = Fixture::new();
        let mut watcher = conn("bob", Role::Member);
        watcher.joined = false;
        f.frame(&watcher, serde_json::json!({"type":"watch","protocol":1}));
        watcher.watching = true;
        assert_eq!(
            error_of(&f.send(&watcher, "a", "sneaky")),
            ErrorCode::InvalidFrame
        );
        assert_eq!(f.room.head(), 0);
        assert_eq!(
            f.frame(&watcher, serde_json::json!({"type":"ping"})),
            vec![Effect::Reply(ServerMessage::Pong {})]
        );
        let joined = conn("ann", Role::Member);
        assert_eq!(
            error_of(&f.frame(&joined, serde_json::json!({"type":"watch","protocol":1}))),
            ErrorCode::InvalidFrame
        );
        // A watch in another protocol version is refused and closed, like a hello.
        let mut old = conn("cy", Role::Member);
        old.joined = false;
        let effects = f.frame(&old, serde_json::json!({"type":"watch","protocol":0}));
        assert!(effects.contains(&Effect::Close(
            close::UNSUPPORTED_PROTOCOL,
            ErrorCode::UnsupportedProtocol
        )));
    }

    #[test]
    fn the_welcome_carries_your_read_position_and_a_first_join_is_announced_once() {
        let mut f = Fixture::new();
        let mut ann = conn("ann", Role::Member);
        ann.joined = false;
        let first = f.frame(&ann, serde_json::json!({"type":"hello","protocol":1}));
        assert!(first.contains(&Effect::NewMember(ann.member())));
        ann.joined = true;
        f.send(&ann, "a", "hi");
        f.frame(&ann, serde_json::json!({"type":"read","seq":1}));
        ann.joined = false;
        let again = f.frame(&ann, serde_json::json!({"type":"hello","protocol":1}));
        assert!(!again.iter().any(|e| matches!(e, Effect::NewMember(_))));
        assert!(again.iter().any(|e| matches!(
            e,
            Effect::Reply(ServerMessage::Welcome { read: Some(1), .. })
        )));
        ann.joined = true;
        let members = f.frame(&ann, serde_json::json!({"type":"members"}));
        assert_eq!(
            members,
            vec![Effect::Reply(ServerMessage::Members {
                members: vec![ann.member()]
            })]
        );
    }

    #[test]
    fn a_failing_store_gives_the_client_a_generic_internal_error_and_logs_the_detail() {
        struct Broken;
        impl RoomStore for Broken {
            type Error = &'static str;
            fn head(&self) -> Result<Seq, &'static str> {
                Ok(0)
            }
            fn find_mutation(&self, _: &str, _: &str) -> Result<Option<Seq>, &'static str> {
                Ok(None)
            }
            fn message(&self, _: Seq) -> Result<Option<MessageView>, &'static str> {
                Ok(None)
            }
            fn append(&mut self, _: &Event) -> Result<(), &'static str> {
                Err("disk full at /var/secret/path")
            }
            fn events_after(&self, _: Seq, _: usize) -> Result<Vec<Event>, &'static str> {
                Ok(vec![])
            }
            fn messages_before(
                &self,
                _: Option<Seq>,
                _: usize,
            ) -> Result<(Vec<MessageView>, bool), &'static str> {
                Ok((vec![], false))
            }
            fn set_answer_text(&mut self, _: Seq, _: &str) -> Result<(), &'static str> {
                Err("disk full")
            }
            fn unfinished_answers(&self) -> Result<Vec<MessageView>, &'static str> {
                Ok(vec![])
            }
            fn summary(&self) -> Result<Option<Summary>, &'static str> {
                Ok(None)
            }
            fn set_summary(&mut self, _: &Summary) -> Result<(), &'static str> {
                Err("disk full")
            }
            fn thread_replies(
                &self,
                _: Seq,
                _: usize,
            ) -> Result<(Vec<MessageView>, bool), &'static str> {
                Ok((vec![], false))
            }
            fn pinned(&self, _: usize) -> Result<Vec<MessageView>, &'static str> {
                Ok(vec![])
            }
            fn record_member(&mut self, _: &Member, _: Millis) -> Result<bool, &'static str> {
                Ok(false)
            }
            fn members(&self, _: usize) -> Result<Vec<Member>, &'static str> {
                Ok(vec![])
            }
            fn mentioned(&self, _: Seq) -> Result<Vec<String>, &'static str> {
                Err("disk full")
            }
            fn add_mentions(&mut self, _: Seq, _: &[&str]) -> Result<(), &'static str> {
                Ok(())
            }
            fn read_position(&self, _: &str) -> Result<Option<Seq>, &'static str> {
                Ok(None)
            }
            fn set_read_position(&mut self, _: &str, _: Seq) -> Result<(), &'static str> {
                Ok(())
            }
            fn unread_counts(&self, _: &str, _: Seq) -> Result<UnreadCounts, &'static str> {
                Ok(UnreadCounts::default())
            }
            fn member(&self, _: &str) -> Result<Option<MemberRecord>, &'static str> {
                Ok(None)
            }
            fn put_member(&mut self, _: &MemberRecord) -> Result<(), &'static str> {
                Ok(())
            }
            fn member_records(&self) -> Result<Vec<MemberRecord>, &'static str> {
                Ok(vec![])
            }
            fn renamed_since(&self, _: Millis) -> Result<Vec<MemberRecord>, &'static str> {
                Ok(vec![])
            }
            fn append_audit(&mut self, _: &AuditEntry) -> Result<(), &'static str> {
                Ok(())
            }
            fn audit_before(
                &self,
                _: Option<u64>,
                _: usize,
            ) -> Result<Vec<AuditEntry>, &'static str> {
                Ok(vec![])
            }
            fn invite(&self, _: &str) -> Result<Option<Invite>, &'static str> {
                Ok(None)
            }
            fn put_invite(&mut self, _: &Invite) -> Result<(), &'static str> {
                Ok(())
            }
            fn invites(&self) -> Result<Vec<Invite>, &'static str> {
                Ok(vec![])
            }
        }
        let mut room = Room::open(Broken, info()).unwrap();
        let ann = conn("ann", Role::Member);
        let mut limiter = ConnLimiter::new(RateLimits::default(), 0);
        let raw = r#"{"type":"send","client_id":"c","text":"x"}"#;
        let effects = room.on_frame(&ann, &mut limiter, Frame::Text(raw), 0, Vec::new);
        assert!(matches!(&effects[0], Effect::Log(detail) if detail.contains("disk full")));
        let Effect::Reply(ServerMessage::Error { code, message, .. }) = &effects[1] else {
            panic!()
        };
        assert_eq!(*code, ErrorCode::Internal);
        assert!(!message.contains("secret"));
        assert_eq!(
            room.head(),
            0,
            "a failed append does not advance the sequence"
        );
    }

    // -----------------------------------------------------------------------------------------
    // Membership and moderation

    /// A fixture room where `owner` created it and `ann` (member) and `mod` (moderator) joined.
    fn moderated() -> (Fixture, Conn, Conn, Conn) {
        let mut f = Fixture::new();
        let mut owner = conn("owner", Role::Member);
        let mut ann = conn("ann", Role::Member);
        let mut moderator = conn("mod", Role::Member);
        for c in [&mut owner, &mut ann, &mut moderator] {
            f.room.admit(c, "owner", 0).unwrap();
        }
        assert_eq!(owner.author.role, Role::Owner);
        assert_eq!(ann.author.role, Role::Member);
        f.command(
            &owner,
            Command::SetRole {
                user_id: "mod".into(),
                role: Role::Moderator,
            },
        )
        .unwrap();
        moderator.author.role = Role::Moderator;
        (f, owner, ann, moderator)
    }

    impl Fixture {
        fn command(&mut self, conn: &Conn, command: Command) -> Result<Vec<Effect>, ErrorCode> {
            self.now += 1;
            self.room
                .command(conn, command, self.now)
                .map_err(|f| f.into_error().0.code)
        }
    }

    #[test]
    fn the_creator_is_owner_and_others_join_a_public_room_as_members() {
        let (f, ..) = moderated();
        let roles: Vec<(String, Role)> = f
            .room
            .store()
            .member_records()
            .unwrap()
            .into_iter()
            .map(|m| (m.user_id, m.role))
            .collect();
        assert_eq!(
            roles,
            vec![
                ("owner".into(), Role::Owner),
                ("ann".into(), Role::Member),
                ("mod".into(), Role::Moderator)
            ]
        );
    }

    #[test]
    fn a_kick_closes_every_connection_of_the_target_and_is_audited() {
        let (mut f, _, _, moderator) = moderated();
        let effects = f
            .command(
                &moderator,
                Command::Kick {
                    user_id: "ann".into(),
                },
            )
            .unwrap();
        assert!(effects.contains(&Effect::CloseUser(
            "ann".into(),
            close::KICKED,
            ErrorCode::Kicked
        )));
        let log = f.room.store().audit_before(None, 10).unwrap();
        assert_eq!(log[0].action, "kick");
        assert_eq!(log[0].actor_id, "mod");
        assert_eq!(log[0].target_id.as_deref(), Some("ann"));
    }

    #[test]
    fn a_moderator_cannot_kick_the_owner_or_another_moderator() {
        let (mut f, owner, ann, moderator) = moderated();
        let kick_owner = Command::Kick {
            user_id: "owner".into(),
        };
        assert_eq!(
            f.command(&moderator, kick_owner.clone()),
            Err(ErrorCode::Forbidden)
        );
        // A member may not kick at all.
        assert_eq!(f.command(&ann, kick_owner), Err(ErrorCode::Forbidden));
        // The owner may kick the moderator.
        assert!(f
            .command(
                &owner,
                Command::Kick {
                    user_id: "mod".into()
                }
            )
            .is_ok());
    }

    #[test]
    fn a_global_admin_may_moderate_anyone_whatever_their_room_role() {
        let (mut f, ..) = moderated();
        let mut admin = conn("root", Role::Member);
        admin.admin = true;
        f.room.admit(&mut admin, "owner", 0).unwrap();
        assert!(f
            .command(
                &admin,
                Command::Ban {
                    user_id: "owner".into()
                }
            )
            .is_ok());
    }

    #[test]
    fn a_muted_member_gets_muted_with_the_time_left_until_the_mute_ends() {
        let (mut f, _, ann, moderator) = moderated();
        f.command(
            &moderator,
            Command::Mute {
                user_id: "ann".into(),
                seconds: 60,
            },
        )
        .unwrap();
        let effects = f.send(&ann, "m1", "can I talk?");
        let Some(Effect::Reply(ServerMessage::Error {
            code,
            retry_after_ms,
            ..
        })) = effects.first()
        else {
            panic!("{effects:?}")
        };
        assert_eq!(*code, ErrorCode::Muted);
        let left = retry_after_ms.unwrap();
        assert!(left > 59_000 && left <= 60_000, "{left}");
        f.now += 60_000;
        assert!(!ack_of(&f.send(&ann, "m2", "now?")).1);
    }

    #[test]
    fn a_banned_user_is_refused_at_connect_and_at_join() {
        let (mut f, owner, ann, _) = moderated();
        f.command(
            &owner,
            Command::Ban {
                user_id: "ann".into(),
            },
        )
        .unwrap();
        let mut again = ann.clone();
        let err = f.room.admit(&mut again, "owner", 5).unwrap_err();
        assert_eq!(err.into_error().0.code, ErrorCode::Banned);
        let err = f.room.join(&ann, "owner", None, 5).unwrap_err();
        assert_eq!(err.into_error().0.code, ErrorCode::Banned);
    }

    #[test]
    fn a_banned_user_may_not_read_the_room_outside_a_connection_and_others_may() {
        let (mut f, owner, _, _) = moderated();
        assert!(f.room.may_read("ann").is_ok());
        assert!(f.room.may_read("never-joined").is_ok());
        f.command(
            &owner,
            Command::Ban {
                user_id: "ann".into(),
            },
        )
        .unwrap();
        let err = f.room.may_read("ann").unwrap_err();
        assert_eq!(err.into_error().0.code, ErrorCode::Banned);
    }

    #[test]
    fn read_only_members_cannot_post_and_role_changes_are_broadcast() {
        let (mut f, owner, mut ann, _) = moderated();
        let effects = f
            .command(
                &owner,
                Command::SetRole {
                    user_id: "ann".into(),
                    role: Role::ReadOnly,
                },
            )
            .unwrap();
        assert!(effects.contains(&Effect::SetRole("ann".into(), Role::ReadOnly)));
        assert!(effects.iter().any(|e| matches!(
            e,
            Effect::Broadcast(ServerMessage::MemberUpdated {
                role: Role::ReadOnly,
                ..
            })
        )));
        ann.author.role = Role::ReadOnly;
        assert_eq!(error_of(&f.send(&ann, "x", "hi")), ErrorCode::Forbidden);
    }

    #[test]
    fn the_owner_can_switch_when_the_assistant_answers() {
        let (mut f, owner, ..) = moderated();
        assert_eq!(
            f.room.info().assistant,
            crate::protocol::AssistantMode::Mention
        );
        f.command(
            &owner,
            Command::UpdateRoom {
                name: None,
                topic: None,
                private: None,
                assistant: Some(crate::protocol::AssistantMode::All),
            },
        )
        .unwrap();
        assert_eq!(f.room.info().assistant, crate::protocol::AssistantMode::All);
    }

    #[test]
    fn a_private_room_admits_only_members_and_invitees() {
        let (mut f, owner, ..) = moderated();
        f.command(
            &owner,
            Command::UpdateRoom {
                name: None,
                topic: None,
                private: Some(true),
                assistant: None,
            },
        )
        .unwrap();
        let mut eve = conn("eve", Role::Member);
        let err = f.room.admit(&mut eve, "owner", 10).unwrap_err();
        assert_eq!(err.into_error().0.code, ErrorCode::Forbidden);
        let invite = f
            .room
            .create_invite(
                &owner,
                &CreateInvite {
                    expires_in_seconds: Some(60),
                    max_uses: Some(1),
                },
                "tok".into(),
                10,
            )
            .unwrap();
        assert_eq!(invite.expires_at, Some(60_010));
        assert_eq!(
            f.room.join(&eve, "owner", Some("tok"), 20).unwrap(),
            Role::Member
        );
        assert!(f.room.admit(&mut eve, "owner", 30).is_ok());
        // Used up now.
        let mallory = conn("mallory", Role::Member);
        let err = f.room.join(&mallory, "owner", Some("tok"), 20).unwrap_err();
        assert_eq!(err.into_error().0.code, ErrorCode::InviteInvalid);
    }

    #[test]
    fn a_revoked_invite_admits_no_one() {
        let (mut f, owner, ..) = moderated();
        f.room
            .create_invite(&owner, &CreateInvite::default(), "tok".into(), 10)
            .unwrap();
        f.command(
            &owner,
            Command::RevokeInvite {
                token: "tok".into(),
            },
        )
        .unwrap();
        let eve = conn("eve", Role::Member);
        let err = f.room.join(&eve, "owner", Some("tok"), 20).unwrap_err();
        assert_eq!(err.into_error().0.code, ErrorCode::InviteInvalid);
    }

    #[test]
    fn a_rename_reaches_the_room_and_pages_show_the_current_name_on_old_messages() {
        let (mut f, _, ann, _) = moderated();
        f.send(&ann, "a", "hello");
        let effects = f
            .room
            .profile_changed(
                Member {
                    user_id: "ann".into(),
                    name: "Annie".into(),
                    avatar: None,
                },
                f.now + 1,
            )
            .unwrap();
        assert!(matches!(
            &effects[0],
            Effect::Broadcast(ServerMessage::ProfileUpdated { member }) if member.name == "Annie"
        ));
        let (page, _) = f.room.store().messages_before(None, 10).unwrap();
        assert_eq!(page[0].author.name, "Annie");
    }

    #[test]
    fn a_client_catching_up_by_replay_learns_names_changed_since_what_it_holds_and_no_others() {
        let (mut f, _, ann, moderator) = moderated();
        f.send(&ann, "a", "hello");
        // A rename before the cursor's event is already in what the client holds.
        f.now += 10;
        f.room
            .profile_changed(
                Member {
                    user_id: "mod".into(),
                    name: "Moderator".into(),
                    avatar: None,
                },
                f.now,
            )
            .unwrap();
        f.send(&moderator, "b", "second");
        f.now += 10;
        f.room
            .profile_changed(
                Member {
                    user_id: "ann".into(),
                    name: "Annie".into(),
                    avatar: None,
                },
                f.now,
            )
            .unwrap();
        let mut returning = ann.clone();
        returning.joined = false;
        let effects = f.frame(
            &returning,
            serde_json::json!({"type":"hello","protocol":1,"after":2}),
        );
        let renamed: Vec<&str> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Reply(ServerMessage::ProfileUpdated { member }) => {
                    Some(member.name.as_str())
                }
                _ => None,
            })
            .collect();
        assert_eq!(renamed, ["Annie"]);
        // Without a cursor the page itself carries current names: no extra frames.
        let effects = f.frame(&returning, serde_json::json!({"type":"hello","protocol":1}));
        assert!(!effects
            .iter()
            .any(|e| matches!(e, Effect::Reply(ServerMessage::ProfileUpdated { .. }))));
    }

    #[test]
    fn only_those_allowed_read_the_audit_log() {
        let (f, owner, ann, moderator) = moderated();
        assert!(f.room.audit_log(&owner, None).is_ok());
        assert!(f.room.audit_log(&moderator, None).is_ok());
        assert_eq!(
            f.room
                .audit_log(&ann, None)
                .unwrap_err()
                .into_error()
                .0
                .code,
            ErrorCode::Forbidden
        );
    }

    #[test]
    fn a_moderator_deleting_someone_elses_message_is_audited() {
        let (mut f, _, ann, moderator) = moderated();
        let seq = ack_of(&f.send(&ann, "a", "spam")).0;
        f.frame(
            &moderator,
            serde_json::json!({"type":"delete","client_id":"d","target":seq}),
        );
        let log = f.room.store().audit_before(None, 10).unwrap();
        assert_eq!(log[0].action, "delete_message");
        assert_eq!(log[0].target_id.as_deref(), Some("ann"));
    }

    #[test]
    fn a_moderate_frame_is_answered_with_applied() {
        let (mut f, _, _, moderator) = moderated();
        let effects = f.frame(
            &moderator,
            serde_json::json!({"type":"moderate","client_id":"m1","command":{"action":"mute","user_id":"ann","seconds":5}}),
        );
        assert_eq!(
            effects[0],
            Effect::Reply(ServerMessage::Applied {
                client_id: "m1".into()
            })
        );
        let effects = f.frame(
            &moderator,
            serde_json::json!({"type":"moderate","client_id":"m2","command":{"action":"mute","user_id":"ann","seconds":0}}),
        );
        assert_eq!(error_of(&effects), ErrorCode::InvalidInput);
    }
}
