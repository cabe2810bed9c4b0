//! The wire protocol between the app and a room, written once for both halves.
//!
//! Every frame is one JSON object tagged by `type`. Compatibility rules (see ARCHITECTURE.md):
//! variants and fields are only ever added; a new field is optional (`#[serde(default)]`) so an
//! old peer's frames still parse; a client ignores server frames whose `type` it does not know
//! ([`ServerMessage::Unknown`]). A change that breaks those rules bumps [`PROTOCOL_VERSION`].
//!
//! One exception to "one object per frame", opt-in: a client whose socket URL carries
//! [`BATCH_QUERY`] may receive a JSON array of server messages in one WebSocket frame (the room
//! coalesces a burst; see [`batch_frame`]). It reads every frame with [`decode_frames`]. A
//! client that does not ask never sees an array.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

use crate::error::{ChatError, ErrorCode};
use crate::moderation::Command;

/// Version of this protocol. The client sends it in [`ClientMessage::Hello`]; a room that speaks
/// another version answers `unsupported_protocol` and closes with [`close::UNSUPPORTED_PROTOCOL`].
pub const PROTOCOL_VERSION: u32 = 1;

/// A room event's sequence number: assigned by the room, gap-free, starting at 1.
pub type Seq = u64;

/// Milliseconds since the Unix epoch, as the server's clock saw it.
pub type Millis = i64;

/// Frames a client sends to a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// First frame on every connection.
    Hello {
        /// The client's [`PROTOCOL_VERSION`].
        protocol: u32,
        /// The highest sequence the client already holds. `None` asks for the latest page;
        /// `Some(n)` asks for every event after `n` (a replay), or a fresh page if the gap is
        /// larger than [`crate::limits::REPLAY_MAX_EVENTS`].
        #[serde(default)]
        after: Option<Seq>,
    },
    /// Post a new message.
    Send {
        /// Client-chosen id of this send; a resend with the same id is acknowledged again and
        /// never stored twice.
        client_id: String,
        /// Markdown source (may be blank when `attachments` is not empty).
        text: String,
        /// Uploads to attach ([`http::UploadTicket::id`]), stored and not yet attached, in
        /// the order to show them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<String>,
    },
    /// Replace the text of one of your own messages. Earlier versions are kept.
    Edit {
        /// Client-chosen id of this edit (de-duplicated like a send).
        client_id: String,
        /// The sequence number of the message to edit.
        target: Seq,
        /// The new markdown source.
        text: String,
    },
    /// Delete one of your own messages: a tombstone replaces its body for everyone.
    Delete {
        /// Client-chosen id of this delete (de-duplicated like a send).
        client_id: String,
        /// The sequence number of the message to delete.
        target: Seq,
    },
    /// Ask for the page of messages just before `before` (keyset pagination).
    History {
        /// Exclusive upper bound: messages with `seq < before`.
        before: Seq,
        /// Page size; clamped to [`crate::limits::PAGE_MAX`].
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Stop the assistant's answer `target` (the asker or a moderator). A queued answer is
    /// taken off the queue; a streaming one keeps the text written so far.
    Stop {
        /// Client-chosen id (de-duplicated like a send).
        client_id: String,
        /// The answer message's `seq`.
        target: Seq,
    },
    /// Write a new version of a finished answer (the asker or a moderator). Earlier versions
    /// are kept and can be switched between.
    Regenerate {
        /// Client-chosen id (de-duplicated like a send).
        client_id: String,
        /// The answer message's `seq`.
        target: Seq,
    },
    /// Rate an assistant answer: one vote per user, changeable; `none` withdraws it.
    Rate {
        /// Client-chosen id (de-duplicated like a send).
        client_id: String,
        /// The answer message's `seq`.
        target: Seq,
        /// The vote.
        vote: Vote,
        /// Optional reason, seen only by admins.
        #[serde(default)]
        reason: Option<String>,
    },
    /// Reply to a message in its thread (a reply to a reply goes to the same thread).
    Reply {
        /// Client-chosen id (de-duplicated like a send).
        client_id: String,
        /// The message replied to.
        target: Seq,
        /// Markdown source.
        text: String,
        /// Also show the reply in the room's timeline ("also send to room").
        #[serde(default)]
        also_in_room: bool,
        /// Uploads to attach, as in [`ClientMessage::Send`].
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<String>,
    },
    /// Add (`add: true`) or take back your emoji reaction to a message. Explicit rather than a
    /// toggle, so a resend after a lost ack cannot flip it back.
    React {
        /// Client-chosen id (de-duplicated like a send).
        client_id: String,
        /// The message.
        target: Seq,
        /// The emoji (one grapheme cluster, at most [`crate::limits::EMOJI_MAX_BYTES`]).
        emoji: String,
        /// Add or remove.
        add: bool,
    },
    /// Pin or unpin a message (owners and moderators).
    Pin {
        /// Client-chosen id (de-duplicated like a send).
        client_id: String,
        /// The message.
        target: Seq,
        /// Pin or unpin.
        pinned: bool,
    },
    /// You have read the room's timeline up to `seq`. Read positions only move forward.
    Read {
        /// The newest message read.
        seq: Seq,
    },
    /// Ask for a thread: its root and its newest replies ([`ServerMessage::Thread`]).
    Thread {
        /// The thread's root message.
        root: Seq,
    },
    /// Ask for the room's pinned messages ([`ServerMessage::Pinned`]).
    Pins {},
    /// Ask for the room's members, for mention autocomplete ([`ServerMessage::Members`]).
    Members {},
    /// The user is typing. Send at most every few seconds; peers expire it on their own.
    Typing {},
    /// Keep-alive. Sent as the exact text [`PING_FRAME`], which the runtime answers with
    /// [`PONG_FRAME`] without waking a hibernating room.
    Ping {},
    /// First frame of a connection that only follows the room's unread counts (for a room
    /// list): answered with [`ServerMessage::Unread`], then [`ServerMessage::Activity`] for
    /// each message posted or deleted. A watcher is not present and gets no messages.
    Watch {
        /// The client's [`PROTOCOL_VERSION`].
        protocol: u32,
    },
    /// Ask for a slice of the people present, sorted by name ([`ServerMessage::PresencePage`]):
    /// in a large room the welcome carries only their number, and a client showing a member
    /// list asks for what it displays. The socket then hears when someone in the slice leaves.
    Presence {
        /// How many matching people to skip.
        #[serde(default)]
        offset: u32,
        /// How many to return (at most 100).
        #[serde(default = "presence_limit")]
        limit: u32,
        /// Only people whose name contains this (any case).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        query: Option<String>,
    },
    /// "Catch me up" (no `thread`): a summary, only for you, of the timeline since your read
    /// position; with `thread`, a summary of that thread. Answered by
    /// [`ServerMessage::Private`] frames as it is written; nothing is stored in the room's log.
    CatchUp {
        /// The thread to summarize instead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thread: Option<Seq>,
        /// The catch-up covers the timeline after this seq: the read position the client had
        /// when it opened the room (the page marks what it shows as read at once, so the
        /// stored position is already past what the user missed). Omitted: the stored one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<Seq>,
    },
    /// A privileged command (kick, ban, mute, role change, room settings). Answered by
    /// [`ServerMessage::Applied`] or an error carrying the same `client_id`; not sequenced.
    Moderate {
        /// Client-chosen id, echoed in the answer.
        client_id: String,
        /// What to do.
        command: Command,
    },
}

impl ClientMessage {
    /// The client id of a mutation (a frame the room stores and acknowledges), `None` for the
    /// frames it only answers. Mutations are what the send rate limit counts, so this match
    /// names every variant: a new one cannot silently skip the limit.
    pub fn client_id(&self) -> Option<&str> {
        match self {
            ClientMessage::Send { client_id, .. }
            | ClientMessage::Reply { client_id, .. }
            | ClientMessage::React { client_id, .. }
            | ClientMessage::Pin { client_id, .. }
            | ClientMessage::Edit { client_id, .. }
            | ClientMessage::Delete { client_id, .. }
            | ClientMessage::Stop { client_id, .. }
            | ClientMessage::Regenerate { client_id, .. }
            | ClientMessage::Rate { client_id, .. }
            | ClientMessage::Moderate { client_id, .. } => Some(client_id),
            ClientMessage::Hello { .. }
            | ClientMessage::History { .. }
            | ClientMessage::Read { .. }
            | ClientMessage::Thread { .. }
            | ClientMessage::Pins {}
            | ClientMessage::Members {}
            | ClientMessage::Typing {}
            | ClientMessage::Ping {}
            | ClientMessage::CatchUp { .. }
            | ClientMessage::Presence { .. }
            | ClientMessage::Watch { .. } => None,
        }
    }
}

/// The exact ping frame text; matched byte for byte by the runtime's auto-response.
pub const PING_FRAME: &str = r#"{"type":"ping"}"#;
/// The exact pong frame text.
pub const PONG_FRAME: &str = r#"{"type":"pong"}"#;

/// The query a client appends to a room's socket URL (`/api/rooms/<slug>/ws?batch=1`) to accept
/// batched frames. A query, not a hello field: it is known before the first frame is sent, and a
/// server that does not know it ignores it (a hello with an unknown field would be refused).
pub const BATCH_QUERY: &str = "batch=1";

/// The socket URL's query parameter that carries the connection's first frame (its
/// [`ClientMessage::Hello`] or [`ClientMessage::Watch`]), so the room answers while it accepts
/// the socket instead of a round trip later: a join is the upgrade and the welcome, as fast as
/// the socket can open. It passes the same gate as a first frame sent on the socket (a bad one
/// gets the same error and close); a client may still send its hello as a frame instead.
pub const FIRST_FRAME_PARAM: &str = "first";

/// `first=<message as JSON, percent-encoded>`, for a socket URL's query.
pub fn first_frame_query(message: &ClientMessage) -> String {
    let json = serde_json::to_string(message).unwrap_or_default();
    let mut query = String::with_capacity(FIRST_FRAME_PARAM.len() + 1 + json.len() * 2);
    query.push_str(FIRST_FRAME_PARAM);
    query.push('=');
    for byte in json.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            query.push(char::from(byte));
        } else {
            query.push_str(&format!("%{byte:02X}"));
        }
    }
    query
}

/// The first frame a socket URL's `query` carries ([`FIRST_FRAME_PARAM`]), decoded: `None`
/// when it carries none, an `invalid_frame` error when it is not percent-encoded UTF-8.
pub fn first_frame_in_query(query: &str) -> Option<Result<String, ChatError>> {
    let value = query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        (name == FIRST_FRAME_PARAM).then_some(value)
    })?;
    let bad = || {
        ChatError::new(
            ErrorCode::InvalidFrame,
            "The first frame in the socket URL is not percent-encoded UTF-8.",
        )
    };
    let mut bytes = Vec::with_capacity(value.len());
    let mut rest = value.bytes();
    while let Some(byte) = rest.next() {
        match byte {
            b'%' => {
                let hex = [rest.next(), rest.next()];
                let [Some(high), Some(low)] = hex else {
                    return Some(Err(bad()));
                };
                let digit = |b: u8| char::from(b).to_digit(16);
                match (digit(high), digit(low)) {
                    (Some(h), Some(l)) => bytes.push((h * 16 + l) as u8),
                    _ => return Some(Err(bad())),
                }
            }
            // Form encoding's space; this encoder never writes one.
            b'+' => bytes.push(b' '),
            other => bytes.push(other),
        }
    }
    Some(String::from_utf8(bytes).map_err(|_| bad()))
}

/// One WebSocket frame carrying `messages` (each already a serialized [`ServerMessage`]), in
/// order: the message itself when there is one, else a JSON array of them.
pub fn batch_frame<S: AsRef<str>>(messages: &[S]) -> String {
    match messages {
        [one] => one.as_ref().to_owned(),
        many => {
            let len = many.iter().map(|m| m.as_ref().len() + 1).sum::<usize>() + 1;
            let mut frame = String::with_capacity(len);
            frame.push('[');
            for (i, message) in many.iter().enumerate() {
                if i > 0 {
                    frame.push(',');
                }
                frame.push_str(message.as_ref());
            }
            frame.push(']');
            frame
        }
    }
}

/// The server messages in one WebSocket frame, in order: one object, or (for a client that sent
/// [`BATCH_QUERY`]) an array of them.
pub fn decode_frames(frame: &str) -> Result<Vec<ServerMessage>, serde_json::Error> {
    if !frame.trim_start().starts_with('[') {
        return ServerMessage::from_json(frame).map(|message| vec![message]);
    }
    // One pass for the usual batch; only a batch that does not read that way (a newer
    // server's frame of an unknown type reusing a known field name) is read frame by frame,
    // so one unknown frame never costs the others.
    serde_json::from_str(frame).or_else(|_| {
        serde_json::from_str::<Vec<serde_json::Value>>(frame)?
            .iter()
            .map(|value| ServerMessage::from_json(&value.to_string()))
            .collect()
    })
}

/// Frames a room sends to a client.
///
/// Serialized tagged by `type` like [`ClientMessage`]; deserialized by a hand-written impl
/// (below) that reads the same format in one pass.
// A frame lives from its making to its serialization (or, in the app, to its application): the
// few hundred bytes of a thread's root inline cost nothing there, and boxing it would cost an
// allocation on every thread frame.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Answer to [`ClientMessage::Hello`]; followed by one [`ServerMessage::History`] or by
    /// [`ServerMessage::Replay`] frames, after which the connection is live.
    Welcome {
        /// The room's [`PROTOCOL_VERSION`].
        protocol: u32,
        /// Who the server says you are.
        you: Author,
        /// The room's directory entry.
        room: RoomInfo,
        /// The room's latest sequence number at the time of the welcome.
        head: Seq,
        /// Who is connected now (one entry per user, however many tabs).
        present: Vec<Member>,
        /// Your read position in this room (none before you first read anything).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        read: Option<Seq>,
    },
    /// A page of messages in their current state (edits applied, deletions as tombstones),
    /// ascending by `seq`.
    History {
        /// Messages, oldest first.
        messages: Vec<MessageView>,
        /// Whether older messages exist before the first one in this page.
        has_more: bool,
        /// Why this page was sent.
        reason: HistoryReason,
    },
    /// Events the client missed, in order. `done` marks the last batch; live events follow.
    Replay {
        /// Consecutive events after the client's cursor.
        events: Vec<Event>,
        /// True on the final batch of this replay.
        done: bool,
    },
    /// A live room event.
    Event {
        /// The event.
        event: Event,
    },
    /// The room stored (or had already stored) a client's mutation.
    Ack {
        /// The id the client gave the mutation.
        client_id: String,
        /// The sequence number of the event it became.
        seq: Seq,
        /// True when this is a resend of an already stored mutation.
        #[serde(default)]
        duplicate: bool,
    },
    /// A request was refused. The room keeps running and nothing was broadcast.
    Error {
        /// Stable, machine-readable code.
        code: ErrorCode,
        /// Human-readable explanation, safe to show.
        message: String,
        /// The mutation this error answers, when it answers one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// When the client may try again (for `rate_limited`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// A user came online in this room (their first connection).
    PresenceJoin {
        /// Who.
        member: Member,
    },
    /// A user left this room (their last connection closed).
    PresenceLeave {
        /// The user's id.
        user_id: String,
    },
    /// Someone is typing; show it for a few seconds unless refreshed.
    Typing {
        /// Who is typing.
        user_id: String,
        /// Their display name.
        name: String,
    },
    /// More text of an assistant answer that is being written. Not sequenced: the answer's
    /// text is persisted as it grows and its final text arrives in a sequenced
    /// [`EventKind::AnswerStatus`]. `offset` is the byte length of the text this chunk
    /// continues, so a client appends only what it does not hold yet (exactly once, also after
    /// a reconnect, when the room sends the whole text so far with offset 0).
    Stream {
        /// The answer message's `seq`.
        target: Seq,
        /// The answer version being written.
        version: u32,
        /// Byte offset in the answer text where `text` starts.
        offset: u32,
        /// The new text.
        text: String,
    },
    /// A thread: its root and newest replies, oldest first. Later replies arrive as events.
    Thread {
        /// The root message.
        root: MessageView,
        /// Replies, oldest first.
        replies: Vec<MessageView>,
        /// Whether older replies exist than the first one here.
        has_more: bool,
    },
    /// The room's pinned messages, newest pin first.
    Pinned {
        /// The messages.
        messages: Vec<MessageView>,
    },
    /// The room's members (everyone who ever joined), for mention autocomplete.
    Members {
        /// Members, most recently seen first.
        members: Vec<Member>,
    },
    /// Your read position and what is unread after it (sent to all your connections when any
    /// of them reads).
    Unread {
        /// Your read position.
        read: Seq,
        /// Counts after it.
        counts: UnreadCounts,
    },
    /// Keep-alive answer.
    Pong {},
    /// A [`ClientMessage::Moderate`] command was carried out.
    Applied {
        /// The command's client id.
        client_id: String,
    },
    /// A member's role or mute changed (sent to everyone, so controls follow at once).
    MemberUpdated {
        /// Who.
        user_id: String,
        /// Their role now.
        role: Role,
        /// Muted until, if muted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        muted_until: Option<Millis>,
    },
    /// A user changed their name or avatar: show the new ones, on old messages too.
    ProfileUpdated {
        /// Their id, name and avatar now.
        member: Member,
    },
    /// The room's name, topic or privacy changed.
    RoomUpdated {
        /// The room's entry now.
        room: RoomInfo,
    },
    /// To watching connections: a message that counts for unread counts was posted, an edit
    /// mentioned someone new (`main` false, only the new mentions), or a message was deleted
    /// ([`crate::unread::UnreadTracker`] keeps the counts from these).
    Activity {
        /// The message.
        seq: Seq,
        /// Its author's user id.
        by: String,
        /// Whether it shows in the timeline (not a thread-only reply).
        main: bool,
        /// User ids it mentions.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        mentions: Vec<String>,
        /// The message was deleted (it no longer counts).
        #[serde(default, skip_serializing_if = "is_false")]
        removed: bool,
    },
    /// How many people are present, in a room large enough to count them instead of
    /// announcing each (sent after the welcome, then at most once a second while it changes).
    PresenceCount {
        /// People present (not sockets).
        count: u32,
    },
    /// A slice of the people present ([`ClientMessage::Presence`]).
    PresencePage {
        /// The people, sorted by name.
        members: Vec<Member>,
        /// How many match the query.
        total: u32,
        /// Where the slice starts.
        offset: u32,
    },
    /// An answer only you see ("catch me up", a thread summary), whole as it stands: sent as
    /// it is written, when it ends, and again after your hello while it is recent.
    Private {
        /// The answer.
        answer: PrivateAnswer,
    },
    /// A frame type this build does not know; ignored so that newer rooms can add frames.
    Unknown,
}

/// The `type` tag of each [`ServerMessage`] variant, as a closed list: the hand-written deserializer
/// matches on it without a wildcard, and [`ServerMessage::server_type`] maps every variant to it
/// without one, so a variant added to the enum without its deserializer arm does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // Each variant names the variant of the same name.
pub enum ServerType {
    Welcome,
    History,
    Replay,
    Event,
    Ack,
    Error,
    PresenceJoin,
    PresenceLeave,
    Typing,
    Stream,
    Thread,
    Pinned,
    Members,
    Unread,
    Pong,
    Applied,
    MemberUpdated,
    ProfileUpdated,
    RoomUpdated,
    Activity,
    PresenceCount,
    PresencePage,
    Private,
    /// A tag this build does not know.
    #[serde(other)]
    Unknown,
}

impl ServerMessage {
    /// This frame's `type` tag.
    pub fn server_type(&self) -> ServerType {
        match self {
            ServerMessage::Welcome { .. } => ServerType::Welcome,
            ServerMessage::History { .. } => ServerType::History,
            ServerMessage::Replay { .. } => ServerType::Replay,
            ServerMessage::Event { .. } => ServerType::Event,
            ServerMessage::Ack { .. } => ServerType::Ack,
            ServerMessage::Error { .. } => ServerType::Error,
            ServerMessage::PresenceJoin { .. } => ServerType::PresenceJoin,
            ServerMessage::PresenceLeave { .. } => ServerType::PresenceLeave,
            ServerMessage::Typing { .. } => ServerType::Typing,
            ServerMessage::Stream { .. } => ServerType::Stream,
            ServerMessage::Thread { .. } => ServerType::Thread,
            ServerMessage::Pinned { .. } => ServerType::Pinned,
            ServerMessage::Members { .. } => ServerType::Members,
            ServerMessage::Unread { .. } => ServerType::Unread,
            ServerMessage::Pong { .. } => ServerType::Pong,
            ServerMessage::Applied { .. } => ServerType::Applied,
            ServerMessage::MemberUpdated { .. } => ServerType::MemberUpdated,
            ServerMessage::ProfileUpdated { .. } => ServerType::ProfileUpdated,
            ServerMessage::RoomUpdated { .. } => ServerType::RoomUpdated,
            ServerMessage::Activity { .. } => ServerType::Activity,
            ServerMessage::PresenceCount { .. } => ServerType::PresenceCount,
            ServerMessage::PresencePage { .. } => ServerType::PresencePage,
            ServerMessage::Private { .. } => ServerType::Private,
            ServerMessage::Unknown => ServerType::Unknown,
        }
    }

    /// Reads one frame as the app receives it. A frame whose `type` this build does not know
    /// is [`ServerMessage::Unknown`] whatever its other fields hold: the one-pass reader types
    /// each field name once for all frame types, so a newer room's frame that uses a known
    /// name for another type of value (`"seq": "…"`) fails there, and is recognized here by
    /// its tag alone (the compatibility rule in the module docs).
    pub fn from_json(text: &str) -> serde_json::Result<ServerMessage> {
        serde_json::from_str(text).or_else(|err| {
            #[derive(Deserialize)]
            struct Tag {
                #[serde(rename = "type")]
                kind: ServerType,
            }
            match serde_json::from_str::<Tag>(text) {
                Ok(Tag {
                    kind: ServerType::Unknown,
                }) => Ok(ServerMessage::Unknown),
                _ => Err(err),
            }
        })
    }
}

fn required<T, E: de::Error>(value: Option<T>, field: &'static str) -> Result<T, E> {
    value.ok_or_else(|| E::missing_field(field))
}

/// Reads the `type`-tagged format in one pass through a flat struct. serde's derive for
/// internally tagged enums first buffers each frame into a generic `Content` tree and
/// instantiates every nested type twice; in the app that was the largest single function
/// (~29 KB of wasm) on the path of every frame.
impl<'de> Deserialize<'de> for ServerMessage {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Flat {
            #[serde(rename = "type")]
            kind: ServerType,
            protocol: Option<u32>,
            you: Option<Author>,
            room: Option<RoomInfo>,
            head: Option<Seq>,
            present: Option<Vec<Member>>,
            messages: Option<Vec<MessageView>>,
            has_more: Option<bool>,
            reason: Option<HistoryReason>,
            events: Option<Vec<Event>>,
            done: Option<bool>,
            event: Option<Event>,
            client_id: Option<String>,
            seq: Option<Seq>,
            #[serde(default)]
            duplicate: bool,
            code: Option<ErrorCode>,
            message: Option<String>,
            retry_after_ms: Option<u64>,
            member: Option<Member>,
            user_id: Option<String>,
            name: Option<String>,
            target: Option<Seq>,
            version: Option<u32>,
            offset: Option<u32>,
            text: Option<String>,
            read: Option<Seq>,
            root: Option<MessageView>,
            replies: Option<Vec<MessageView>>,
            members: Option<Vec<Member>>,
            counts: Option<UnreadCounts>,
            role: Option<Role>,
            muted_until: Option<Millis>,
            by: Option<String>,
            main: Option<bool>,
            mentions: Option<Vec<String>>,
            #[serde(default)]
            removed: bool,
            answer: Option<PrivateAnswer>,
            count: Option<u32>,
            total: Option<u32>,
        }
        let f = Flat::deserialize(deserializer)?;
        Ok(match f.kind {
            ServerType::Welcome => ServerMessage::Welcome {
                protocol: required(f.protocol, "protocol")?,
                you: required(f.you, "you")?,
                room: required(f.room, "room")?,
                head: required(f.head, "head")?,
                present: required(f.present, "present")?,
                read: f.read,
            },
            ServerType::History => ServerMessage::History {
                messages: required(f.messages, "messages")?,
                has_more: required(f.has_more, "has_more")?,
                reason: required(f.reason, "reason")?,
            },
            ServerType::Replay => ServerMessage::Replay {
                events: required(f.events, "events")?,
                done: required(f.done, "done")?,
            },
            ServerType::Event => ServerMessage::Event {
                event: required(f.event, "event")?,
            },
            ServerType::Ack => ServerMessage::Ack {
                client_id: required(f.client_id, "client_id")?,
                seq: required(f.seq, "seq")?,
                duplicate: f.duplicate,
            },
            ServerType::Error => ServerMessage::Error {
                code: required(f.code, "code")?,
                message: required(f.message, "message")?,
                client_id: f.client_id,
                retry_after_ms: f.retry_after_ms,
            },
            ServerType::PresenceJoin => ServerMessage::PresenceJoin {
                member: required(f.member, "member")?,
            },
            ServerType::PresenceLeave => ServerMessage::PresenceLeave {
                user_id: required(f.user_id, "user_id")?,
            },
            ServerType::Typing => ServerMessage::Typing {
                user_id: required(f.user_id, "user_id")?,
                name: required(f.name, "name")?,
            },
            ServerType::Stream => ServerMessage::Stream {
                target: required(f.target, "target")?,
                version: required(f.version, "version")?,
                offset: required(f.offset, "offset")?,
                text: required(f.text, "text")?,
            },
            ServerType::Thread => ServerMessage::Thread {
                root: required(f.root, "root")?,
                replies: required(f.replies, "replies")?,
                has_more: required(f.has_more, "has_more")?,
            },
            ServerType::Pinned => ServerMessage::Pinned {
                messages: required(f.messages, "messages")?,
            },
            ServerType::Members => ServerMessage::Members {
                members: required(f.members, "members")?,
            },
            ServerType::Unread => ServerMessage::Unread {
                read: required(f.read, "read")?,
                counts: required(f.counts, "counts")?,
            },
            ServerType::Pong => ServerMessage::Pong {},
            ServerType::Applied => ServerMessage::Applied {
                client_id: required(f.client_id, "client_id")?,
            },
            ServerType::MemberUpdated => ServerMessage::MemberUpdated {
                user_id: required(f.user_id, "user_id")?,
                role: required(f.role, "role")?,
                muted_until: f.muted_until,
            },
            ServerType::ProfileUpdated => ServerMessage::ProfileUpdated {
                member: required(f.member, "member")?,
            },
            ServerType::RoomUpdated => ServerMessage::RoomUpdated {
                room: required(f.room, "room")?,
            },
            ServerType::Activity => ServerMessage::Activity {
                seq: required(f.seq, "seq")?,
                by: required(f.by, "by")?,
                main: required(f.main, "main")?,
                mentions: f.mentions.unwrap_or_default(),
                removed: f.removed,
            },
            ServerType::PresenceCount => ServerMessage::PresenceCount {
                count: required(f.count, "count")?,
            },
            ServerType::PresencePage => ServerMessage::PresencePage {
                members: required(f.members, "members")?,
                total: required(f.total, "total")?,
                offset: required(f.offset, "offset")?,
            },
            ServerType::Private => ServerMessage::Private {
                answer: required(f.answer, "answer")?,
            },
            ServerType::Unknown => ServerMessage::Unknown,
        })
    }
}

/// Why a [`ServerMessage::History`] page was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HistoryReason {
    /// The latest page, for a client that holds nothing.
    Latest,
    /// The client's cursor was too far behind (or ahead) to replay: drop what you hold and
    /// start over from this latest page.
    Reset,
    /// An older page the client asked for with [`ClientMessage::History`].
    Older,
}

/// Who wrote something, as stamped by the server from the session (never from a frame).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Author {
    /// Stable user id.
    pub id: String,
    /// Display name at the time of writing.
    pub name: String,
    /// Role in the room at the time of writing.
    pub role: Role,
}

/// A member's role in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Created the room.
    Owner,
    /// Can moderate others' messages.
    Moderator,
    /// Can post and manage their own messages.
    Member,
    /// Can read only.
    ReadOnly,
    /// A role this build does not know (added by a newer server).
    #[serde(other)]
    Unknown,
}

/// Someone connected to a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// User id.
    pub user_id: String,
    /// Display name.
    pub name: String,
    /// Avatar URL, if they uploaded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
}

/// A room's directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomInfo {
    /// URL name, `/r/<slug>`.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Optional topic.
    #[serde(default)]
    pub topic: String,
    /// Creation time.
    pub created_at: Millis,
    /// Time of the last message, when known.
    #[serde(default)]
    pub last_activity: Option<Millis>,
    /// Messages posted so far (updated by the room in batches, so it may lag a few seconds).
    #[serde(default)]
    pub message_count: u64,
    /// When the assistant answers here.
    #[serde(default)]
    pub assistant: AssistantMode,
    /// Invite-only: hidden from the directory, joined only with an invite.
    #[serde(default)]
    pub private: bool,
}

/// When the assistant answers in a room.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssistantMode {
    /// Never.
    Off,
    /// When a message mentions `@assistant`.
    #[default]
    Mention,
    /// Every message (for example a personal assistant room).
    All,
    /// A mode this build does not know; treated as `mention`.
    #[serde(other)]
    Unknown,
}

/// One sequenced room event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Server-assigned, gap-free sequence number.
    pub seq: Seq,
    /// Server time of the event.
    pub at: Millis,
    /// Who caused it.
    pub author: Author,
    /// The id the author's client gave the mutation.
    pub client_id: String,
    /// What happened.
    pub kind: EventKind,
}

/// What a room event did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// A new message; its id is the event's `seq`.
    Message {
        /// Markdown source.
        text: String,
        /// Its files, as the room stored them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
    },
    /// A message's text was replaced.
    Edit {
        /// The edited message's `seq`.
        target: Seq,
        /// The new markdown source.
        text: String,
    },
    /// A message was deleted.
    Delete {
        /// The deleted message's `seq`.
        target: Seq,
    },
    /// The assistant will answer `prompt`: this event posts the answer message (its id is the
    /// event's `seq`), empty and queued. Authored by the assistant.
    Answer {
        /// The message being answered.
        prompt: Seq,
        /// The user id of who asked.
        asker: String,
        /// The thread the answer belongs to, when the question was a reply in one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        thread: Option<Seq>,
    },
    /// An answer changed state: queued again for a new version, started streaming (text
    /// empty), or finished (final text, and why it ended).
    AnswerStatus {
        /// The answer message's `seq`.
        target: Seq,
        /// The version this status is about; a higher version than the message holds keeps
        /// the current text as an earlier version.
        version: u32,
        /// The new state.
        status: AnswerState,
        /// The text (ignored while queued: the current text stays until the new version
        /// starts).
        #[serde(default)]
        text: String,
        /// Why it failed, for `failed`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<AnswerError>,
        /// How it was produced, once finished.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        meta: Option<AnswerMeta>,
    },
    /// The event's author rated an answer (replacing their earlier vote).
    Feedback {
        /// The answer message's `seq`.
        target: Seq,
        /// The vote; `none` withdraws it.
        vote: Vote,
    },
    /// A reply in a thread; its id is the event's `seq`.
    Reply {
        /// The thread's root message.
        thread: Seq,
        /// Markdown source.
        text: String,
        /// Also shown in the room's timeline.
        #[serde(default, skip_serializing_if = "is_false")]
        also_in_room: bool,
        /// Its files, as the room stored them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
    },
    /// The event's author added or took back a reaction.
    React {
        /// The message reacted to.
        target: Seq,
        /// The emoji.
        emoji: String,
        /// Added (true) or taken back.
        add: bool,
    },
    /// A message was pinned or unpinned.
    Pin {
        /// The message.
        target: Seq,
        /// Pinned (true) or unpinned.
        pinned: bool,
    },
    /// An event kind this build does not know (added by a newer room). It still takes its
    /// place in the sequence: a client applies it as nothing and moves its cursor past it.
    Unknown,
}

/// The `type` tag of each [`EventKind`] variant, as a closed list: the hand-written deserializer
/// matches on it without a wildcard, and [`EventKind::event_type`] maps every variant to it
/// without one, so a variant added to the enum without its deserializer arm does not compile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs)] // Each variant names the variant of the same name.
pub enum EventType {
    Message,
    Edit,
    Delete,
    Answer,
    AnswerStatus,
    Feedback,
    Reply,
    React,
    Pin,
    /// A tag this build does not know.
    #[serde(other)]
    Unknown,
}

impl EventKind {
    /// The message this event acts on by its `target` field (an edit, delete, reaction, pin,
    /// answer status or rating), if any.
    pub fn target(&self) -> Option<Seq> {
        match self {
            EventKind::Edit { target, .. }
            | EventKind::Delete { target }
            | EventKind::AnswerStatus { target, .. }
            | EventKind::Feedback { target, .. }
            | EventKind::React { target, .. }
            | EventKind::Pin { target, .. } => Some(*target),
            EventKind::Message { .. }
            | EventKind::Answer { .. }
            | EventKind::Reply { .. }
            | EventKind::Unknown => None,
        }
    }

    /// The existing message this event changes ([`MessageView::apply`]): its target, or the
    /// root of the thread a reply (or an answer in a thread) joins.
    pub fn changes(&self) -> Option<Seq> {
        match self {
            EventKind::Reply { thread, .. } => Some(*thread),
            EventKind::Answer { thread, .. } => *thread,
            other => other.target(),
        }
    }

    /// This event's `kind` tag.
    pub fn event_type(&self) -> EventType {
        match self {
            EventKind::Message { .. } => EventType::Message,
            EventKind::Edit { .. } => EventType::Edit,
            EventKind::Delete { .. } => EventType::Delete,
            EventKind::Answer { .. } => EventType::Answer,
            EventKind::AnswerStatus { .. } => EventType::AnswerStatus,
            EventKind::Feedback { .. } => EventType::Feedback,
            EventKind::Reply { .. } => EventType::Reply,
            EventKind::React { .. } => EventType::React,
            EventKind::Pin { .. } => EventType::Pin,
            EventKind::Unknown => EventType::Unknown,
        }
    }
}

/// Through a flat struct, like [`ServerMessage`]'s impl; unknown kinds become
/// [`EventKind::Unknown`] whatever their other fields hold.
impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Flat {
            kind: EventType,
            text: Option<String>,
            target: Option<Seq>,
            prompt: Option<Seq>,
            asker: Option<String>,
            version: Option<u32>,
            status: Option<AnswerState>,
            error: Option<AnswerError>,
            meta: Option<AnswerMeta>,
            vote: Option<Vote>,
            thread: Option<Seq>,
            #[serde(default)]
            also_in_room: bool,
            #[serde(default)]
            attachments: Vec<Attachment>,
            emoji: Option<String>,
            add: Option<bool>,
            pinned: Option<bool>,
        }
        // An event is small: it is read into a value first, so that a kind this build does
        // not know is `Unknown` whatever its other fields hold (a newer room may use a known
        // field name for another type of value) and the client moves its cursor past it. A
        // known kind is then read from the value in one pass through the flat struct.
        let value = serde_json::Value::deserialize(deserializer)?;
        if let Some(Ok(EventType::Unknown)) = value.get("kind").map(EventType::deserialize) {
            return Ok(EventKind::Unknown);
        }
        let f = Flat::deserialize(value).map_err(de::Error::custom)?;
        Ok(match f.kind {
            EventType::Message => EventKind::Message {
                text: required(f.text, "text")?,
                attachments: f.attachments,
            },
            EventType::Edit => EventKind::Edit {
                target: required(f.target, "target")?,
                text: required(f.text, "text")?,
            },
            EventType::Delete => EventKind::Delete {
                target: required(f.target, "target")?,
            },
            EventType::Answer => EventKind::Answer {
                prompt: required(f.prompt, "prompt")?,
                asker: required(f.asker, "asker")?,
                thread: f.thread,
            },
            EventType::AnswerStatus => EventKind::AnswerStatus {
                target: required(f.target, "target")?,
                version: required(f.version, "version")?,
                status: required(f.status, "status")?,
                text: f.text.unwrap_or_default(),
                error: f.error,
                meta: f.meta,
            },
            EventType::Feedback => EventKind::Feedback {
                target: required(f.target, "target")?,
                vote: required(f.vote, "vote")?,
            },
            EventType::Reply => EventKind::Reply {
                thread: required(f.thread, "thread")?,
                text: required(f.text, "text")?,
                also_in_room: f.also_in_room,
                attachments: f.attachments,
            },
            EventType::React => EventKind::React {
                target: required(f.target, "target")?,
                emoji: required(f.emoji, "emoji")?,
                add: required(f.add, "add")?,
            },
            EventType::Pin => EventKind::Pin {
                target: required(f.target, "target")?,
                pinned: required(f.pinned, "pinned")?,
            },
            EventType::Unknown => EventKind::Unknown,
        })
    }
}

/// A message in its current state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    /// The message's id: the `seq` of the event that posted it.
    pub seq: Seq,
    /// When it was posted.
    pub at: Millis,
    /// Who posted it.
    pub author: Author,
    /// The client id of the posting send.
    pub client_id: String,
    /// Current markdown source; empty once deleted.
    pub text: String,
    /// When it was last edited.
    #[serde(default)]
    pub edited_at: Option<Millis>,
    /// True once deleted (a tombstone).
    #[serde(default)]
    pub deleted: bool,
    /// Set on the assistant's answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<AnswerView>,
    /// On a thread reply: the thread's root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Seq>,
    /// On a thread reply: also shown in the room's timeline.
    #[serde(default, skip_serializing_if = "is_false")]
    pub also_in_room: bool,
    /// On a thread root: how many replies it has had and when the last came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replies: Option<ThreadSummary>,
    /// Reactions, in the order each emoji was first used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reactions: Vec<Reaction>,
    /// Pinned to the room.
    #[serde(default, skip_serializing_if = "is_false")]
    pub pinned: bool,
    /// Its files (none once deleted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
}

/// A file attached to a message, as the room recorded it when its upload was stored. The bytes
/// are served by `GET /api/rooms/{slug}/files/{id}` to the room's members only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Unguessable id (128 random bits, base64url), unique in the room.
    pub id: String,
    /// The file's name, sanitized ([`crate::limits::validate_file_name`]).
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// The content type its bytes were recognised as (never the name's or the sender's claim).
    pub mime: String,
    /// What kind of file it is, which decides how it is shown.
    pub kind: crate::media::Kind,
    /// Pixels, for images and videos (measured by the sender's browser: a layout hint only,
    /// so the timeline does not jump when the image loads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Pixels (see `width`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Playing time of audio and video, as the sender's browser measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// A thumbnail (an image, or a video's poster frame) is served at `…/files/{id}/thumb`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub thumb: bool,
    /// What an image classifier saw in it, most likely first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
    /// What an audio file says, when it was transcribed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transcript: Option<String>,
}

/// One thing an image classifier saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    /// The class name, as the model names it (`Egyptian Mau`, `espresso`).
    pub name: String,
    /// Confidence in thousandths (0–1000): an integer, so events compare exactly.
    pub score: u16,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_false(value: &bool) -> bool {
    !*value
}

/// A thread root's replies, as the timeline shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadSummary {
    /// Replies posted (deleted ones included: they stay in the thread as tombstones).
    pub count: u32,
    /// When the last reply was posted.
    pub last_at: Millis,
}

/// One emoji's reactions to a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// The emoji.
    pub emoji: String,
    /// Who reacted, in order.
    pub by: Vec<Member>,
}

/// Unread messages in a room after a member's read position.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadCounts {
    /// Timeline messages by others after the read position (capped at
    /// [`crate::limits::UNREAD_COUNT_CAP`]).
    pub unread: u32,
    /// Of those (and thread replies), the ones that mention you.
    pub mentions: u32,
}

/// Where an assistant answer is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerState {
    /// Waiting for the room's one generation slot.
    Queued,
    /// Being written; [`ServerMessage::Stream`] frames carry the text.
    Streaming,
    /// Finished normally.
    Done,
    /// Stopped by the asker or a moderator; the text written so far stays.
    Stopped,
    /// The provider failed; `error` says why and Regenerate retries.
    Failed,
    /// A state this build does not know.
    #[serde(other)]
    Unknown,
}

impl AnswerState {
    /// Whether the answer is still waiting or being written.
    pub fn is_active(self) -> bool {
        matches!(self, AnswerState::Queued | AnswerState::Streaming)
    }
}

/// Why an answer failed, safe to show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerError {
    /// Stable code (`ai_unavailable`, `ai_timeout`, `ai_failed`, `internal`).
    pub code: ErrorCode,
    /// Human message.
    pub message: String,
}

/// How an answer was produced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerMeta {
    /// Provider name (`workers-ai`, `openai`, ...).
    pub provider: String,
    /// Model name.
    pub model: String,
    /// Prompt tokens (as the provider counted them; estimated when it did not say).
    pub tokens_in: u32,
    /// Answer tokens.
    pub tokens_out: u32,
    /// Time from the request to the first token, in ms.
    pub first_token_ms: u32,
    /// Time from the request to the end, in ms.
    pub total_ms: u32,
    /// The room messages retrieved for the prompt, in the order they were numbered: source
    /// `[n]` in the text is `retrieved[n - 1]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retrieved: Vec<Seq>,
    /// The sources the text cites, each once, in the order first cited. Every one was
    /// retrieved: a number the model invented is removed from the text before anyone sees it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub citations: Vec<Citation>,
    /// How many citations the model invented (numbers it was not given), removed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_citations: u32,
}

fn presence_limit() -> u32 {
    50
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// A room message an answer cites as `[n]`: enough to name it and open it in context. Its text is
/// not copied here: the log keeps no second copy of words a delete must scrub, so a client reads
/// the excerpt it shows on hover from the message itself (`GET /api/rooms/<slug>/context/<seq>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Citation {
    /// The number the text cites it by.
    pub n: u32,
    /// The message.
    pub seq: Seq,
    /// Its author's name when it was retrieved.
    pub author: String,
    /// When it was posted.
    pub at: Millis,
    /// Its thread's root, for a thread reply (the message opens in that thread).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Seq>,
}

/// What a private answer is ([`ServerMessage::Private`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrivateKind {
    /// "Catch me up": what happened in the room's timeline since the asker's read position.
    CatchUp,
    /// "Summarize thread": a thread's root and replies.
    Thread,
    /// A kind this build does not know.
    #[serde(other)]
    Unknown,
}

/// An answer only its asker sees: never an event, never broadcast, sent to the asker's own
/// connections in the room as it is written and when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateAnswer {
    /// The room's id for it.
    pub id: u64,
    /// What was asked.
    pub kind: PrivateKind,
    /// The summarized thread's root (kind `thread`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<Seq>,
    /// The range it covers is the messages after this seq …
    pub after: Seq,
    /// … up to and including this one.
    pub upto: Seq,
    /// How many messages in that range it was given (the prompt budget may keep fewer than
    /// the range holds; the note under the answer says so).
    pub considered: u32,
    /// How many messages the range holds.
    pub total: u32,
    /// Queued, streaming, done or failed.
    pub state: AnswerState,
    /// The text so far (the whole text, not a delta).
    pub text: String,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<AnswerError>,
    /// How it was produced, once done (its citations among them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<AnswerMeta>,
    /// When it was asked.
    pub at: Millis,
}

/// A rating of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Vote {
    /// Helpful.
    Up,
    /// Not helpful.
    Down,
    /// No vote (withdraws an earlier one).
    None,
}

/// The assistant-specific state of an answer message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerView {
    /// The message being answered.
    pub prompt: Seq,
    /// Who asked (user id).
    pub asker: String,
    /// Current state.
    pub state: AnswerState,
    /// Current version, from 1.
    pub version: u32,
    /// Earlier versions' texts, oldest first (version `i + 1` is `previous[i]`).
    #[serde(default)]
    pub previous: Vec<String>,
    /// Set when the current version failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<AnswerError>,
    /// Set once the current version finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<AnswerMeta>,
    /// Each voter's vote (user id → up/down).
    #[serde(default)]
    pub votes: std::collections::BTreeMap<String, Vote>,
}

impl AnswerView {
    /// (up, down) vote counts.
    pub fn tally(&self) -> (usize, usize) {
        let up = self.votes.values().filter(|v| **v == Vote::Up).count();
        (up, self.votes.len() - up)
    }
}

impl MessageView {
    /// Applies an edit or a delete event to this message. Returns false when the event is not
    /// about this message or is not an edit/delete.
    pub fn apply(&mut self, event: &Event) -> bool {
        match &event.kind {
            EventKind::Edit { target, text } if *target == self.seq && !self.deleted => {
                self.text.clone_from(text);
                self.edited_at = Some(event.at);
                true
            }
            EventKind::Delete { target } if *target == self.seq => {
                self.text.clear();
                self.deleted = true;
                self.reactions.clear();
                self.attachments.clear();
                self.pinned = false;
                // An answer's earlier versions are its words too.
                if let Some(answer) = self.answer.as_mut() {
                    answer.previous.clear();
                }
                true
            }
            EventKind::Reply { thread, .. }
            | EventKind::Answer {
                thread: Some(thread),
                ..
            } if *thread == self.seq => {
                let count = self.replies.map_or(0, |r| r.count);
                self.replies = Some(ThreadSummary {
                    // The count comes from the room; at the top it stays there.
                    count: count.saturating_add(1),
                    last_at: event.at,
                });
                true
            }
            EventKind::React { target, emoji, add } if *target == self.seq && !self.deleted => {
                let who = &event.author.id;
                let index = self.reactions.iter().position(|r| &r.emoji == emoji);
                match (index, *add) {
                    (Some(i), true) => {
                        let by = &mut self.reactions[i].by;
                        if by.iter().any(|m| &m.user_id == who) {
                            return false;
                        }
                        by.push(Member {
                            user_id: who.clone(),
                            name: event.author.name.clone(),
                            avatar: None,
                        });
                    }
                    (None, true) => self.reactions.push(Reaction {
                        emoji: emoji.clone(),
                        by: vec![Member {
                            user_id: who.clone(),
                            name: event.author.name.clone(),
                            avatar: None,
                        }],
                    }),
                    (Some(i), false) => {
                        let by = &mut self.reactions[i].by;
                        let before = by.len();
                        by.retain(|m| &m.user_id != who);
                        if by.len() == before {
                            return false;
                        }
                        if by.is_empty() {
                            self.reactions.remove(i);
                        }
                    }
                    (None, false) => return false,
                }
                true
            }
            EventKind::Pin { target, pinned } if *target == self.seq && !self.deleted => {
                let changed = self.pinned != *pinned;
                self.pinned = *pinned;
                changed
            }
            EventKind::AnswerStatus {
                target,
                version,
                status,
                text,
                error,
                meta,
            } if *target == self.seq && !self.deleted => {
                let Some(answer) = self.answer.as_mut() else {
                    return false;
                };
                if *version > answer.version {
                    answer.previous.push(std::mem::take(&mut self.text));
                    answer.version = *version;
                }
                answer.state = *status;
                if *status != AnswerState::Queued {
                    self.text.clone_from(text);
                    answer.error.clone_from(error);
                    answer.meta.clone_from(meta);
                }
                true
            }
            EventKind::Feedback { target, vote } if *target == self.seq => {
                let Some(answer) = self.answer.as_mut() else {
                    return false;
                };
                if *vote == Vote::None {
                    answer.votes.remove(&event.author.id);
                } else {
                    answer.votes.insert(event.author.id.clone(), *vote);
                }
                true
            }
            _ => false,
        }
    }

    /// Appends streamed text to an answer being written, if it continues exactly what this
    /// view holds (overlapping text is skipped; a gap or another version is ignored). Returns
    /// whether the text changed.
    pub fn apply_stream(&mut self, version: u32, offset: u32, text: &str) -> bool {
        let Some(answer) = &self.answer else {
            return false;
        };
        let (held, offset) = (self.text.len(), offset as usize);
        if answer.state != AnswerState::Streaming || answer.version != version || offset > held {
            return false;
        }
        match text.get(held - offset..) {
            Some(rest) if !rest.is_empty() => {
                self.text.push_str(rest);
                true
            }
            _ => false,
        }
    }

    /// Whether the message belongs in the room's timeline (everything but thread-only
    /// replies).
    pub fn in_timeline(&self) -> bool {
        self.thread.is_none() || self.also_in_room
    }

    /// Whether `user_id` reacted with `emoji`.
    pub fn reacted(&self, user_id: &str, emoji: &str) -> bool {
        self.reactions
            .iter()
            .any(|r| r.emoji == emoji && r.by.iter().any(|m| m.user_id == user_id))
    }

    /// The message an event posts, if it posts one.
    pub fn from_event(event: &Event) -> Option<Self> {
        match &event.kind {
            EventKind::Message { text, attachments } => Some(MessageView {
                seq: event.seq,
                at: event.at,
                author: event.author.clone(),
                client_id: event.client_id.clone(),
                text: text.clone(),
                edited_at: None,
                deleted: false,
                answer: None,
                thread: None,
                also_in_room: false,
                replies: None,
                reactions: Vec::new(),
                pinned: false,
                attachments: attachments.clone(),
            }),
            EventKind::Reply {
                thread,
                text,
                also_in_room,
                attachments,
            } => Some(MessageView {
                seq: event.seq,
                at: event.at,
                author: event.author.clone(),
                client_id: event.client_id.clone(),
                text: text.clone(),
                edited_at: None,
                deleted: false,
                answer: None,
                thread: Some(*thread),
                also_in_room: *also_in_room,
                replies: None,
                reactions: Vec::new(),
                pinned: false,
                attachments: attachments.clone(),
            }),
            EventKind::Answer {
                prompt,
                asker,
                thread,
            } => Some(MessageView {
                seq: event.seq,
                at: event.at,
                author: event.author.clone(),
                client_id: event.client_id.clone(),
                text: String::new(),
                edited_at: None,
                deleted: false,
                answer: Some(AnswerView {
                    prompt: *prompt,
                    asker: asker.clone(),
                    state: AnswerState::Queued,
                    version: 1,
                    previous: Vec::new(),
                    error: None,
                    meta: None,
                    votes: Default::default(),
                }),
                thread: *thread,
                also_in_room: false,
                replies: None,
                reactions: Vec::new(),
                pinned: false,
                attachments: Vec::new(),
            }),
            _ => None,
        }
    }
}

/// WebSocket close codes (4000–4999 are the application's), each with the matching
/// [`ErrorCode`] as the close reason.
pub mod close {
    /// The client's protocol version is not spoken here; reload the app.
    pub const UNSUPPORTED_PROTOCOL: u16 = 4000;
    /// No valid session.
    pub const UNAUTHORIZED: u16 = 4001;
    /// The session may not be in this room.
    pub const FORBIDDEN: u16 = 4003;
    /// The room does not exist.
    pub const NOT_FOUND: u16 = 4004;
    /// The connection sent frames faster than allowed for too long.
    pub const RATE_LIMITED: u16 = 4008;
    /// The first frame was not a valid hello.
    pub const INVALID_HANDSHAKE: u16 = 4009;
    /// A moderator removed the user from the room (reason `kicked`).
    pub const KICKED: u16 = 4010;
    /// The user was banned from the room (reason `banned`).
    pub const BANNED: u16 = 4011;

    /// Whether a client should stop reconnecting after this close code (a retry cannot help).
    pub fn is_terminal(code: u16) -> bool {
        matches!(
            code,
            UNSUPPORTED_PROTOCOL | UNAUTHORIZED | FORBIDDEN | NOT_FOUND | KICKED | BANNED
        )
    }
}

/// Request and response bodies of the HTTP API.
pub mod http {
    use serde::{Deserialize, Serialize};

    use super::{Author, MessageView, Millis, RoomInfo, Seq, UnreadCounts};
    use crate::error::ErrorCode;

    /// `POST /api/session`: choose a display name and get a session cookie.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CreateSession {
        /// Display name.
        pub name: String,
    }

    /// `GET /api/session` and `POST /api/session` (and inside [`SessionState`]).
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SessionInfo {
        /// Stable user id.
        pub user_id: String,
        /// Display name.
        pub name: String,
        /// Whether this is a signed-in account (false: a guest with a display name only).
        #[serde(default)]
        pub signed_in: bool,
        /// The providers linked to the account (empty for a guest).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub providers: Vec<crate::auth::Provider>,
    }

    /// `GET /api/session?optional=1` ([`SessionState::PATH`]): the session, or none, answered
    /// 200 either way. A page that starts without knowing whether it has a session asks this,
    /// so a new visitor's first request is not a 401 (which a browser logs as a console error).
    /// Plain `GET /api/session` still answers 401 `unauthorized` when there is none.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SessionState {
        /// Who the cookie is; `None` when the request has no valid session (a new visitor, an
        /// ended or revoked session).
        pub session: Option<SessionInfo>,
    }

    impl SessionState {
        /// The request that answers a `SessionState`.
        pub const PATH: &'static str = "/api/session?optional=1";
        /// The query parameter (value `1`) that asks for a `SessionState`.
        pub const QUERY: (&'static str, &'static str) = ("optional", "1");
    }

    /// `POST /api/rooms`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct CreateRoom {
        /// Display name.
        pub name: String,
        /// Optional topic.
        #[serde(default)]
        pub topic: String,
        /// When the assistant answers (default: when mentioned).
        #[serde(default)]
        pub assistant: super::AssistantMode,
        /// Invite-only.
        #[serde(default)]
        pub private: bool,
    }

    /// `GET /api/rooms`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RoomList {
        /// Rooms, most recently active first.
        pub rooms: Vec<RoomInfo>,
        /// Your unread counts in the rooms you have joined (rooms that did not answer in time
        /// are left out).
        #[serde(default)]
        pub unread: Vec<RoomUnread>,
    }

    /// Unread counts of one room for the asking user.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct RoomUnread {
        /// The room.
        pub slug: String,
        /// Your read position (0 before you read anything).
        pub read: Seq,
        /// What is unread after it.
        #[serde(flatten)]
        pub counts: UnreadCounts,
    }

    /// One search result.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct SearchHit {
        /// The room it is in.
        pub slug: String,
        /// The message.
        pub seq: Seq,
        /// When it was posted.
        pub at: Millis,
        /// Who posted it.
        pub author: Author,
        /// On a thread reply: the thread's root.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub thread: Option<Seq>,
        /// An excerpt with the matched terms between [`crate::search::MARK_START`] and
        /// [`crate::search::MARK_END`].
        pub snippet: String,
        /// Relevance: higher is better (negated bm25, or a hybrid score in production).
        pub score: f64,
    }

    /// `GET /api/rooms/{slug}/search?q=` and `GET /api/search?q=`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct SearchResults {
        /// Best first.
        pub hits: Vec<SearchHit>,
        /// True when some rooms did not answer in time and their hits are missing.
        #[serde(default)]
        pub partial: bool,
        /// The rooms that did not answer in time.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub missing: Vec<String>,
    }

    /// `GET /api/rooms/{slug}/context?seq=`: the page around a message, to open a search
    /// result in context.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Context {
        /// The message asked for.
        pub target: Seq,
        /// Set when it is a thread reply: the page is that thread.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub thread: Option<Seq>,
        /// The messages around it (the thread's root first for a thread), ascending.
        pub messages: Vec<MessageView>,
    }

    /// `POST /api/rooms/{slug}/uploads`: announce a file before sending its bytes. The room
    /// checks the limits (size, the room's quota, the sender's rate) before anything is stored.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct BeginUpload {
        /// The client's id for this upload (as a message's `client_id`): announcing it again
        /// returns the same ticket, so a retry after a lost answer never makes a second object.
        pub upload_id: String,
        /// The file's name as the sender's device has it (sanitized by the room).
        pub name: String,
        /// Bytes the `PUT` will send.
        pub size: u64,
        /// Pixels of an image or video (layout hints).
        #[serde(default)]
        pub width: Option<u32>,
        /// Pixels of an image or video.
        #[serde(default)]
        pub height: Option<u32>,
        /// Playing time of audio or video.
        #[serde(default)]
        pub duration_ms: Option<u64>,
    }

    /// The answer to [`BeginUpload`]: where to `PUT` the bytes (`/api/rooms/{slug}/uploads/{id}`,
    /// and an optional thumbnail at `…/{id}/thumb`), or the stored attachment when a retry finds
    /// the bytes already there.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct UploadTicket {
        /// The attachment id the bytes will be stored under.
        pub id: String,
        /// Set when the bytes are already stored: send the message, skip the `PUT`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub stored: Option<super::Attachment>,
    }

    /// One file in a room's "Files" list.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct FileEntry {
        /// The message it is attached to.
        pub message: Seq,
        /// That message's thread root, for a thread reply.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub thread: Option<Seq>,
        /// When it was shared.
        pub at: Millis,
        /// Who shared it.
        pub author: Author,
        /// The file.
        pub attachment: super::Attachment,
    }

    /// `GET /api/rooms/{slug}/files?kind=&before=`: files shared in the room, newest first.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct FileList {
        /// Newest first.
        pub files: Vec<FileEntry>,
        /// Pass as `before` for the next (older) page; absent on the last page.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub next: Option<Seq>,
    }

    /// `GET /api/preview?url=`: what a linked page says about itself.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct LinkPreview {
        /// The link, as asked for.
        pub url: String,
        /// The page's title.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub title: Option<String>,
        /// Its description.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        /// The site's name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub site_name: Option<String>,
        /// The page's image, as a same-origin path (`/api/preview/image?url=…`): the browser
        /// never contacts the third party.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub image: Option<String>,
    }

    /// Body of every non-2xx API response.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ErrorBody {
        /// Stable, machine-readable code.
        pub code: ErrorCode,
        /// Human-readable explanation, safe to show.
        pub message: String,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_first_frame_rides_in_the_socket_url_and_reads_back_as_sent() {
        for message in [
            ClientMessage::Hello {
                protocol: PROTOCOL_VERSION,
                after: Some(42),
            },
            ClientMessage::Hello {
                protocol: PROTOCOL_VERSION,
                after: None,
            },
            ClientMessage::Watch {
                protocol: PROTOCOL_VERSION,
            },
        ] {
            let query = first_frame_query(&message);
            // Only characters a URL query keeps as they are.
            assert!(
                query
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~%=".contains(&b)),
                "{query}"
            );
            let full = format!("{BATCH_QUERY}&{query}&later=1");
            let text = first_frame_in_query(&full)
                .expect("carried")
                .expect("decodes");
            let back: ClientMessage = serde_json::from_str(&text).expect("parses");
            assert_eq!(back, message);
        }
    }

    #[test]
    fn a_socket_url_without_a_first_frame_has_none_and_a_garbled_one_is_an_invalid_frame() {
        assert!(first_frame_in_query(BATCH_QUERY).is_none());
        assert!(first_frame_in_query("").is_none());
        assert!(first_frame_in_query("firstly=1").is_none());
        for garbled in ["first=%7", "first=%zz", "first=%FF%FE", "first=%"] {
            let err = first_frame_in_query(garbled)
                .expect("carried")
                .expect_err(garbled);
            assert_eq!(err.code, ErrorCode::InvalidFrame, "{garbled}");
        }
        // Form encoding's `+` is a space.
        assert_eq!(
            first_frame_in_query("first=a+b")
                .expect("carried")
                .expect("decodes"),
            "a b"
        );
    }

    use super::*;

    #[test]
    fn ping_and_pong_frames_are_the_serialized_variants() {
        assert_eq!(
            serde_json::to_string(&ClientMessage::Ping {}).unwrap(),
            PING_FRAME
        );
        assert_eq!(
            serde_json::to_string(&ServerMessage::Pong {}).unwrap(),
            PONG_FRAME
        );
    }

    #[test]
    fn client_frames_are_tagged_by_snake_case_type() {
        let hello: ClientMessage =
            serde_json::from_str(r#"{"type":"hello","protocol":1,"after":7}"#).unwrap();
        assert_eq!(
            hello,
            ClientMessage::Hello {
                protocol: 1,
                after: Some(7)
            }
        );
        let json = serde_json::to_value(ClientMessage::Delete {
            client_id: "c1".into(),
            target: 3,
        })
        .unwrap();
        assert_eq!(json["type"], "delete");
        assert_eq!(json["target"], 3);
    }

    #[test]
    fn a_client_frame_with_an_unknown_field_is_rejected() {
        let parsed = serde_json::from_str::<ClientMessage>(
            r#"{"type":"send","client_id":"a","text":"hi","author":"mallory"}"#,
        );
        assert!(
            parsed.is_err(),
            "author must never be accepted from a frame"
        );
    }

    fn sample_author() -> Author {
        Author {
            id: "u".into(),
            name: "Ann".into(),
            role: Role::Owner,
        }
    }

    fn sample_event(kind: EventKind) -> Event {
        Event {
            seq: 9,
            at: 99,
            author: sample_author(),
            client_id: "c".into(),
            kind,
        }
    }

    #[test]
    fn every_server_frame_reads_back_as_it_was_written() {
        let room = RoomInfo {
            slug: "s".into(),
            name: "S".into(),
            topic: "t".into(),
            created_at: 1,
            last_activity: Some(2),
            message_count: 3,
            assistant: Default::default(),
            private: true,
        };
        let member = Member {
            user_id: "u".into(),
            name: "Ann".into(),
            avatar: Some("/api/avatars/u/1".into()),
        };
        let view = MessageView::from_event(&sample_event(EventKind::Message {
            text: "hi".into(),
            attachments: Vec::new(),
        }))
        .unwrap();
        let mut rich = view.clone();
        rich.thread = Some(1);
        rich.also_in_room = true;
        rich.replies = Some(ThreadSummary {
            count: 3,
            last_at: 7,
        });
        rich.reactions = vec![Reaction {
            emoji: "👍".into(),
            by: vec![member.clone()],
        }];
        rich.pinned = true;
        let frames = vec![
            ServerMessage::Welcome {
                protocol: PROTOCOL_VERSION,
                you: sample_author(),
                room: room.clone(),
                head: 4,
                present: vec![member.clone()],
                read: Some(3),
            },
            ServerMessage::History {
                messages: vec![view],
                has_more: true,
                reason: HistoryReason::Reset,
            },
            ServerMessage::Replay {
                events: vec![
                    sample_event(EventKind::Message {
                        text: "a".into(),
                        attachments: Vec::new(),
                    }),
                    sample_event(EventKind::Edit {
                        target: 1,
                        text: "b".into(),
                    }),
                    sample_event(EventKind::Delete { target: 1 }),
                    sample_event(EventKind::Reply {
                        thread: 1,
                        text: "r".into(),
                        also_in_room: true,
                        attachments: Vec::new(),
                    }),
                    sample_event(EventKind::Reply {
                        thread: 1,
                        text: "r".into(),
                        also_in_room: false,
                        attachments: Vec::new(),
                    }),
                    sample_event(EventKind::React {
                        target: 1,
                        emoji: "🎉".into(),
                        add: true,
                    }),
                    sample_event(EventKind::Pin {
                        target: 1,
                        pinned: false,
                    }),
                ],
                done: false,
            },
            ServerMessage::Event {
                event: sample_event(EventKind::Message {
                    text: "x".into(),
                    attachments: Vec::new(),
                }),
            },
            ServerMessage::Ack {
                client_id: "c".into(),
                seq: 5,
                duplicate: true,
            },
            ServerMessage::Error {
                code: ErrorCode::RateLimited,
                message: "slow".into(),
                client_id: Some("c".into()),
                retry_after_ms: Some(10),
            },
            ServerMessage::Error {
                code: ErrorCode::InvalidFrame,
                message: "bad".into(),
                client_id: None,
                retry_after_ms: None,
            },
            ServerMessage::PresenceJoin {
                member: member.clone(),
            },
            ServerMessage::PresenceLeave {
                user_id: "u".into(),
            },
            ServerMessage::Typing {
                user_id: "u".into(),
                name: "Ann".into(),
            },
            ServerMessage::Pong {},
            ServerMessage::Thread {
                root: rich.clone(),
                replies: vec![rich.clone()],
                has_more: true,
            },
            ServerMessage::Pinned {
                messages: vec![rich],
            },
            ServerMessage::Members {
                members: vec![Member {
                    user_id: "u".into(),
                    name: "Ann".into(),
                    avatar: None,
                }],
            },
            ServerMessage::Unread {
                read: 4,
                counts: UnreadCounts {
                    unread: 2,
                    mentions: 1,
                },
            },
            ServerMessage::Applied {
                client_id: "m1".into(),
            },
            ServerMessage::MemberUpdated {
                user_id: "u".into(),
                role: Role::Moderator,
                muted_until: Some(77),
            },
            ServerMessage::MemberUpdated {
                user_id: "u".into(),
                role: Role::ReadOnly,
                muted_until: None,
            },
            ServerMessage::ProfileUpdated {
                member: member.clone(),
            },
            ServerMessage::RoomUpdated { room: room.clone() },
            ServerMessage::Activity {
                seq: 9,
                by: "u".into(),
                main: true,
                mentions: vec!["v".into()],
                removed: false,
            },
            ServerMessage::Activity {
                seq: 9,
                by: "u".into(),
                main: false,
                mentions: vec![],
                removed: true,
            },
        ];
        for frame in frames {
            let json = serde_json::to_string(&frame).unwrap();
            let back: ServerMessage = serde_json::from_str(&json).unwrap();
            assert_eq!(back, frame, "{json}");
            // The tag the deserializer matches on is the name the serializer writes.
            let written = serde_json::to_value(&frame).unwrap();
            let tag = serde_json::to_value(frame.server_type()).unwrap();
            assert_eq!(written["type"], tag, "{json}");
            if let ServerMessage::Replay { events, .. } = &frame {
                for event in events {
                    let written = serde_json::to_value(&event.kind).unwrap();
                    let tag = serde_json::to_value(event.kind.event_type()).unwrap();
                    assert_eq!(written["kind"], tag, "{written}");
                }
            }
        }
    }

    #[test]
    fn a_frame_or_event_of_a_type_this_build_does_not_know_reads_as_unknown() {
        let frame: ServerMessage = serde_json::from_str(r#"{"type":"hologram","seq":1}"#).unwrap();
        assert_eq!(frame, ServerMessage::Unknown);
        assert_eq!(frame.server_type(), ServerType::Unknown);
        let kind: EventKind = serde_json::from_str(r#"{"kind":"poll","options":[]}"#).unwrap();
        assert_eq!(kind, EventKind::Unknown);
        assert_eq!(kind.event_type(), EventType::Unknown);
    }

    #[test]
    fn a_known_server_frame_missing_a_field_is_an_error_not_a_default() {
        let err =
            serde_json::from_str::<ServerMessage>(r#"{"type":"ack","client_id":"c"}"#).unwrap_err();
        assert!(err.to_string().contains("seq"), "{err}");
    }

    #[test]
    fn an_unknown_event_kind_still_parses_so_the_cursor_can_move_past_it() {
        let frame: ServerMessage = serde_json::from_str(
            r#"{"type":"event","event":{"seq":3,"at":1,"author":{"id":"u","name":"n","role":"member"},"client_id":"c","kind":{"kind":"reaction","emoji":"+1","target":1}}}"#,
        )
        .unwrap();
        let ServerMessage::Event { event } = frame else {
            panic!()
        };
        assert_eq!(event.seq, 3);
        assert_eq!(event.kind, EventKind::Unknown);
    }

    #[test]
    fn an_unknown_server_frame_type_is_ignorable_by_old_clients() {
        let parsed: ServerMessage =
            serde_json::from_str(r#"{"type":"reaction_added","emoji":"+1"}"#).unwrap();
        assert_eq!(parsed, ServerMessage::Unknown);
    }

    #[test]
    fn an_unknown_role_from_a_newer_server_still_parses() {
        let author: Author =
            serde_json::from_str(r#"{"id":"u","name":"n","role":"assistant"}"#).unwrap();
        assert_eq!(author.role, Role::Unknown);
    }

    #[test]
    fn an_edit_does_not_resurrect_a_deleted_message() {
        let author = Author {
            id: "u".into(),
            name: "Ann".into(),
            role: Role::Member,
        };
        let post = Event {
            seq: 1,
            at: 10,
            author: author.clone(),
            client_id: "a".into(),
            kind: EventKind::Message {
                text: "hi".into(),
                attachments: Vec::new(),
            },
        };
        let mut view = MessageView::from_event(&post).unwrap();
        let delete = Event {
            seq: 2,
            at: 11,
            author: author.clone(),
            client_id: "b".into(),
            kind: EventKind::Delete { target: 1 },
        };
        let edit = Event {
            seq: 3,
            at: 12,
            author,
            client_id: "c".into(),
            kind: EventKind::Edit {
                target: 1,
                text: "back".into(),
            },
        };
        assert!(view.apply(&delete));
        assert!(!view.apply(&edit));
        assert!(view.deleted);
        assert_eq!(view.text, "");
    }

    #[test]
    fn the_optional_session_question_is_its_query_and_reads_none_as_null() {
        use http::SessionState;
        let (name, value) = SessionState::QUERY;
        assert_eq!(SessionState::PATH, format!("/api/session?{name}={value}"));
        let none = SessionState { session: None };
        assert_eq!(serde_json::to_string(&none).unwrap(), r#"{"session":null}"#);
        assert_eq!(
            serde_json::from_str::<SessionState>(r#"{"session":null}"#).unwrap(),
            none
        );
    }

    #[test]
    fn close_codes_that_a_retry_cannot_fix_are_terminal() {
        assert!(close::is_terminal(close::UNAUTHORIZED));
        assert!(close::is_terminal(close::UNSUPPORTED_PROTOCOL));
        assert!(!close::is_terminal(close::RATE_LIMITED));
        assert!(!close::is_terminal(1006));
    }
}
