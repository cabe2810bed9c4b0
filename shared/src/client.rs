//! The client half of the protocol, with no I/O: the room as one browser tab sees it.
//!
//! [`ClientRoom`] holds the loaded messages, the replay cursor and the outbox of sends that the
//! room has not confirmed yet. The app feeds it server frames and user actions, asks it which
//! frames to send, and renders [`ClientRoom::timeline`]. Because it is plain Rust it is tested
//! natively against the real [`crate::room::Room`] (see the property tests in `tests/`).

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::error::{ChatError, ErrorCode};
use crate::protocol::{
    Author, ClientMessage, Event, EventKind, HistoryReason, Member, MessageView, Millis,
    PrivateAnswer, RoomInfo, Seq, ServerMessage, UnreadCounts, Vote, PROTOCOL_VERSION,
};

/// How long a typing indicator lasts without a refresh.
pub const TYPING_TTL_MS: Millis = 6_000;
/// Unacknowledged mutations in flight at once. Bounds what a reconnect flushes in one go, so a
/// long offline session is delivered at the room's pace instead of tripping its flood limit.
pub const MAX_IN_FLIGHT: usize = 8;
/// Messages kept in the offline cache per room.
pub const CACHE_MESSAGES: usize = 200;

/// A mutation waiting for the room to confirm it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The id the room de-duplicates on; stays the same across every retry.
    pub client_id: String,
    /// What to do.
    pub op: PendingOp,
    /// When the user did it.
    pub created_at: Millis,
    /// Where it stands.
    pub status: PendingStatus,
}

/// A mutation the user made.
// Externally tagged (the serde default): these live only in the app's cache, and an
// internally tagged enum costs several KB of wasm to deserialize.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingOp {
    /// A new message.
    Send {
        /// Markdown source.
        text: String,
        /// Its files, already stored (the app uploads them before it queues the send).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<crate::protocol::Attachment>,
    },
    /// An edit of an own message.
    Edit {
        /// The message.
        target: Seq,
        /// The new text.
        text: String,
    },
    /// A delete of an own message.
    Delete {
        /// The message.
        target: Seq,
    },
    /// Stop an assistant answer.
    Stop {
        /// The answer.
        target: Seq,
    },
    /// Ask for a new version of an assistant answer.
    Regenerate {
        /// The answer.
        target: Seq,
    },
    /// Rate an assistant answer.
    Rate {
        /// The answer.
        target: Seq,
        /// The vote.
        vote: Vote,
        /// Optional reason.
        reason: Option<String>,
    },
    /// A reply in a thread.
    Reply {
        /// The thread's root.
        thread: Seq,
        /// Markdown source.
        text: String,
        /// Also show it in the room's timeline.
        also_in_room: bool,
        /// Its files, already stored.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<crate::protocol::Attachment>,
    },
    /// Add or take back a reaction.
    React {
        /// The message.
        target: Seq,
        /// The emoji.
        emoji: String,
        /// Add (true) or take back.
        add: bool,
    },
    /// Pin or unpin a message.
    Pin {
        /// The message.
        target: Seq,
        /// Pin (true) or unpin.
        pinned: bool,
    },
}

impl PendingOp {
    /// Whether the op is a one-off command on an answer: when the room refuses it (the answer
    /// finished meanwhile, ...) there is nothing to retry, so it leaves the outbox and the
    /// refusal is shown as the room's last error.
    pub fn is_command(&self) -> bool {
        // Every variant named: a new op must decide.
        match self {
            PendingOp::Stop { .. }
            | PendingOp::Regenerate { .. }
            | PendingOp::Rate { .. }
            | PendingOp::React { .. }
            | PendingOp::Pin { .. } => true,
            PendingOp::Send { .. }
            | PendingOp::Edit { .. }
            | PendingOp::Delete { .. }
            | PendingOp::Reply { .. } => false,
        }
    }
}

/// Where a pending mutation stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PendingStatus {
    /// Waiting to be sent (offline, or waiting for a window slot or a retry time).
    Queued {
        /// Not before this time (after a `rate_limited` answer).
        #[serde(default)]
        not_before: Millis,
    },
    /// Sent on the current connection; no answer yet.
    InFlight,
    /// Acknowledged as this sequence number; waiting for the event itself.
    Acked {
        /// The event's sequence number.
        seq: Seq,
    },
    /// Refused for good; the user may retry or discard.
    Failed {
        /// Why.
        code: ErrorCode,
        /// Human message.
        message: String,
    },
}

/// The ids a send frame names its files by.
fn ids(attachments: &[crate::protocol::Attachment]) -> Vec<String> {
    attachments.iter().map(|a| a.id.clone()).collect()
}

impl Pending {
    fn frame(&self) -> ClientMessage {
        let client_id = self.client_id.clone();
        match &self.op {
            PendingOp::Send { text, attachments } => ClientMessage::Send {
                client_id,
                text: text.clone(),
                attachments: ids(attachments),
            },
            PendingOp::Edit { target, text } => ClientMessage::Edit {
                client_id,
                target: *target,
                text: text.clone(),
            },
            PendingOp::Delete { target } => ClientMessage::Delete {
                client_id,
                target: *target,
            },
            PendingOp::Stop { target } => ClientMessage::Stop {
                client_id,
                target: *target,
            },
            PendingOp::Regenerate { target } => ClientMessage::Regenerate {
                client_id,
                target: *target,
            },
            PendingOp::Rate {
                target,
                vote,
                reason,
            } => ClientMessage::Rate {
                client_id,
                target: *target,
                vote: *vote,
                reason: reason.clone(),
            },
            PendingOp::Reply {
                thread,
                text,
                also_in_room,
                attachments,
            } => ClientMessage::Reply {
                client_id,
                target: *thread,
                text: text.clone(),
                also_in_room: *also_in_room,
                attachments: ids(attachments),
            },
            PendingOp::React { target, emoji, add } => ClientMessage::React {
                client_id,
                target: *target,
                emoji: emoji.clone(),
                add: *add,
            },
            PendingOp::Pin { target, pinned } => ClientMessage::Pin {
                client_id,
                target: *target,
                pinned: *pinned,
            },
        }
    }
}

/// Connection phase, as the banner shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No connection (before the first, or between attempts).
    Offline,
    /// Socket open, hello sent, catching up.
    Syncing,
    /// Caught up; events arrive as they happen.
    Live,
}

/// What the app should do after applying a server frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// Messages or the cursor changed: re-render and re-cache.
    pub messages_changed: bool,
    /// The outbox changed: persist it.
    pub outbox_changed: bool,
    /// The local state cannot be reconciled (a sequence gap): reconnect without a cursor.
    pub resync: bool,
    /// The connection just became live: flush the outbox.
    pub went_live: bool,
    /// Requests to send now (a shown thread or pinned list to fetch again).
    pub requests: Vec<ClientMessage>,
}

impl Applied {
    fn merge(&mut self, other: Applied) {
        self.messages_changed |= other.messages_changed;
        self.outbox_changed |= other.outbox_changed;
        self.resync |= other.resync;
        self.went_live |= other.went_live;
        self.requests.extend(other.requests);
    }
}

/// One row of the rendered timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Row<'a> {
    /// A message the room stored (possibly with a pending edit or delete of ours on top).
    Message {
        /// The message.
        message: &'a MessageView,
        /// Our unconfirmed change to it, if any.
        pending: Option<&'a Pending>,
    },
    /// A send the room has not confirmed yet.
    Pending(&'a Pending),
}

/// What the offline cache keeps of a room (stored in IndexedDB by the app).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CachedRoom {
    /// The newest loaded messages, ascending.
    pub messages: Vec<MessageView>,
    /// The cursor: the highest sequence number applied.
    pub head: Option<Seq>,
    /// Whether older messages exist before the first cached one.
    pub has_more: bool,
    /// Unconfirmed mutations, oldest first.
    pub outbox: Vec<Pending>,
    /// Who we were (to render "mine" before the welcome arrives).
    #[serde(default)]
    pub me: Option<Author>,
    /// The room's entry as last seen.
    #[serde(default)]
    pub room: Option<RoomInfo>,
}

/// A room as one client sees it.
#[derive(Debug, Clone, Default)]
pub struct ClientRoom {
    messages: BTreeMap<Seq, MessageView>,
    head: Option<Seq>,
    has_more: bool,
    outbox: VecDeque<Pending>,
    phase: Option<Phase>,
    welcome_head: Seq,
    me: Option<Author>,
    room: Option<RoomInfo>,
    present: Vec<Member>,
    typing: BTreeMap<String, (String, Millis)>,
    loading_older: bool,
    last_error: Option<ChatError>,
    thread: Option<OpenThread>,
    pinned: Option<Vec<MessageView>>,
    members: Vec<Member>,
    read: Option<Seq>,
    /// The read position the room reported when this connection went live: what the user
    /// had not read when they opened the room (the page then marks what it shows as read).
    welcome_read: Option<Seq>,
    unread: UnreadCounts,
    private: BTreeMap<u64, PrivateAnswer>,
    /// In a large room: how many are present (the welcome lists nobody), and the slice of
    /// them the member list shows.
    present_count: Option<u32>,
    present_page: Option<PresentPage>,
}

/// A slice of the people present in a large room ([`ServerMessage::PresencePage`]), with the
/// pages that continued it appended ("Show more").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresentPage {
    /// The people, sorted by name.
    pub members: Vec<Member>,
    /// How many match the query it was asked with.
    pub total: u32,
    /// Where it starts.
    pub offset: u32,
}

impl PresentPage {
    /// The offset that asks for the people after these.
    pub fn end(&self) -> u32 {
        self.offset + self.members.len() as u32
    }
}

/// The thread shown in the side panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenThread {
    /// The root's `seq`.
    pub root: Seq,
    /// The root message, once the room sent it.
    pub message: Option<MessageView>,
    /// Replies, by `seq`.
    pub replies: BTreeMap<Seq, MessageView>,
    /// Whether older replies exist than those loaded.
    pub has_more: bool,
}

impl OpenThread {
    fn apply(&mut self, event: &Event) {
        if let Some(root) = self.message.as_mut() {
            root.apply(event);
        }
        match &event.kind {
            EventKind::Reply { thread, .. }
            | EventKind::Answer {
                thread: Some(thread),
                ..
            } if *thread == self.root => {
                if let Some(reply) = MessageView::from_event(event) {
                    self.replies.insert(reply.seq, reply);
                }
            }
            EventKind::Edit { target, .. }
            | EventKind::Delete { target }
            | EventKind::React { target, .. }
            | EventKind::Pin { target, .. }
            | EventKind::AnswerStatus { target, .. }
            | EventKind::Feedback { target, .. } => {
                if let Some(reply) = self.replies.get_mut(target) {
                    reply.apply(event);
                }
            }
            _ => {}
        }
    }
}

impl ClientRoom {
    /// An empty room.
    pub fn new() -> Self {
        Self::default()
    }

    /// A room restored from the offline cache. Anything that was in flight is queued again: its
    /// connection is gone, and the room de-duplicates the resend.
    pub fn from_cache(cache: CachedRoom) -> Self {
        let mut room = ClientRoom {
            messages: cache.messages.into_iter().map(|m| (m.seq, m)).collect(),
            head: cache.head,
            has_more: cache.has_more,
            outbox: cache.outbox.into(),
            me: cache.me,
            room: cache.room,
            ..Self::default()
        };
        room.requeue_in_flight();
        room
    }

    /// What to cache: the newest [`CACHE_MESSAGES`] messages, the cursor and the outbox.
    pub fn to_cache(&self) -> CachedRoom {
        let skip = self.messages.len().saturating_sub(CACHE_MESSAGES);
        CachedRoom {
            messages: self.messages.values().skip(skip).cloned().collect(),
            head: self.head,
            has_more: self.has_more || skip > 0,
            outbox: self.outbox.iter().cloned().collect(),
            me: self.me.clone(),
            room: self.room.clone(),
        }
    }

    /// The connection phase.
    pub fn phase(&self) -> Phase {
        self.phase.unwrap_or(Phase::Offline)
    }

    /// The highest sequence number applied: what a reconnect asks to replay after.
    pub fn head(&self) -> Option<Seq> {
        self.head
    }

    /// Who the room says we are.
    pub fn me(&self) -> Option<&Author> {
        self.me.as_ref()
    }

    /// The room's directory entry.
    pub fn room(&self) -> Option<&RoomInfo> {
        self.room.as_ref()
    }

    /// Who is connected.
    pub fn present(&self) -> &[Member] {
        &self.present
    }

    /// How many people are present: the room's count in a large room (whose welcome lists
    /// nobody), else the length of [`ClientRoom::present`].
    pub fn present_count(&self) -> usize {
        self.present_count
            .map_or(self.present.len(), |count| count as usize)
    }

    /// Whether the room counts its people instead of listing them (a large room): the member
    /// list then asks for the slice it shows ([`ClientRoom::ask_presence`]).
    pub fn presence_is_counted(&self) -> bool {
        self.present_count.is_some()
    }

    /// The slice of present people last asked for, in a large room.
    pub fn present_page(&self) -> Option<&PresentPage> {
        self.present_page.as_ref()
    }

    /// Asks for a slice of the people present (only while live). A slice from offset 0
    /// replaces the one held; one that starts where the held one ends is appended to it.
    pub fn ask_presence(
        &self,
        offset: u32,
        limit: u32,
        query: Option<String>,
    ) -> Option<ClientMessage> {
        (self.phase() == Phase::Live).then_some(ClientMessage::Presence {
            offset,
            limit,
            query,
        })
    }

    /// Whether older messages exist before the first loaded one.
    pub fn has_more(&self) -> bool {
        self.has_more
    }

    /// The loaded messages, ascending.
    pub fn messages(&self) -> impl DoubleEndedIterator<Item = &MessageView> + ExactSizeIterator {
        self.messages.values()
    }

    /// The outbox, oldest first.
    pub fn outbox(&self) -> impl Iterator<Item = &Pending> {
        self.outbox.iter()
    }

    /// The last error not tied to a mutation (shown as a notice), if any.
    pub fn last_error(&self) -> Option<&ChatError> {
        self.last_error.as_ref()
    }

    /// Dismisses the notice.
    pub fn clear_error(&mut self) {
        self.last_error = None;
    }

    /// Names of people typing now, excluding us.
    pub fn typing(&self, now: Millis) -> Vec<&str> {
        let me = self.me.as_ref().map(|a| a.id.as_str());
        self.typing
            .iter()
            .filter(|(id, (_, until))| *until > now && Some(id.as_str()) != me)
            .map(|(_, (name, _))| name.as_str())
            .collect()
    }

    /// The timeline: stored messages in order, then our unconfirmed sends.
    pub fn timeline(&self) -> Vec<Row<'_>> {
        let mut rows: Vec<Row<'_>> = self
            .messages
            .values()
            .map(|message| Row::Message {
                message,
                pending: self.outbox.iter().rev().find(|p| match &p.op {
                    PendingOp::Edit { target, .. }
                    | PendingOp::Delete { target }
                    | PendingOp::Stop { target }
                    | PendingOp::Regenerate { target }
                    | PendingOp::Rate { target, .. } => *target == message.seq,
                    PendingOp::Send { .. }
                    | PendingOp::Reply { .. }
                    | PendingOp::React { .. }
                    | PendingOp::Pin { .. } => false,
                }),
            })
            .collect();
        rows.extend(
            self.outbox
                .iter()
                .filter(|p| matches!(p.op, PendingOp::Send { .. }))
                .map(Row::Pending),
        );
        rows
    }

    /// The open thread, if any.
    pub fn thread(&self) -> Option<&OpenThread> {
        self.thread.as_ref()
    }

    /// Our unconfirmed replies in the open thread, oldest first.
    pub fn thread_pending(&self) -> impl Iterator<Item = &Pending> {
        let root = self.thread.as_ref().map(|t| t.root);
        self.outbox.iter().filter(
            move |p| matches!(p.op, PendingOp::Reply { thread, .. } if Some(thread) == root),
        )
    }

    /// Opens the thread of `seq` (a root or any reply in it) in the side panel and returns the
    /// request for its replies (sent when live; [`ClientRoom::resume`] asks again after a
    /// reconnect).
    pub fn open_thread(&mut self, seq: Seq) -> Option<ClientMessage> {
        let root = self
            .messages
            .get(&seq)
            .and_then(|m| m.thread)
            .unwrap_or(seq);
        let message = self.messages.get(&root).cloned();
        self.thread = Some(OpenThread {
            root,
            message,
            replies: BTreeMap::new(),
            has_more: false,
        });
        (self.phase() == Phase::Live).then_some(ClientMessage::Thread { root })
    }

    /// Closes the thread panel.
    pub fn close_thread(&mut self) {
        self.thread = None;
    }

    /// The pinned messages, once asked for ([`ClientRoom::request_pins`]).
    pub fn pinned(&self) -> Option<&[MessageView]> {
        self.pinned.as_deref()
    }

    /// Asks the assistant for a private "catch me up" (or, with `thread`, a summary of that
    /// thread). Only while live: it is a request, not a mutation the outbox keeps.
    pub fn catch_up(&self, thread: Option<Seq>) -> Option<ClientMessage> {
        // A catch-up covers what was unread when the room was opened, not what is unread now
        // (nothing, once the page has shown it).
        let after = thread.is_none().then(|| self.welcome_read.unwrap_or(0));
        (self.phase() == Phase::Live).then_some(ClientMessage::CatchUp { thread, after })
    }

    /// The private answers the room sent this user, oldest first.
    pub fn private_answers(&self) -> impl Iterator<Item = &PrivateAnswer> {
        self.private.values()
    }

    /// A message this client has loaded (timeline, open thread or pinned list), by `seq`: what
    /// a citation's hover card quotes without asking the room.
    pub fn message(&self, seq: Seq) -> Option<&MessageView> {
        self.messages
            .get(&seq)
            .or_else(|| {
                let thread = self.thread.as_ref()?;
                thread
                    .message
                    .as_ref()
                    .filter(|m| m.seq == seq)
                    .or_else(|| thread.replies.get(&seq))
            })
            .or_else(|| self.pinned.as_ref()?.iter().find(|m| m.seq == seq))
    }

    /// Forgets a private answer the user dismissed (the room sends it again after a reload
    /// while it is recent).
    pub fn dismiss_private(&mut self, id: u64) {
        self.private.remove(&id);
    }

    /// Asks for the pinned list; it then stays current with pin events.
    pub fn request_pins(&mut self) -> Option<ClientMessage> {
        (self.phase() == Phase::Live).then_some(ClientMessage::Pins {})
    }

    /// The room's members, once asked for ([`ClientMessage::Members`]).
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Our read position.
    pub fn read_position(&self) -> Option<Seq> {
        self.read
    }

    /// What the room last said is unread for us.
    pub fn unread(&self) -> UnreadCounts {
        self.unread
    }

    /// The first timeline message after our read position written by someone else (where
    /// "jump to first unread" goes).
    pub fn first_unread(&self) -> Option<Seq> {
        let read = self.read?;
        let me = self.me.as_ref().map(|a| a.id.as_str());
        // `read` comes from the room; at the largest seq nothing can follow it.
        self.messages
            .range(read.checked_add(1)?..)
            .find(|(_, m)| Some(m.author.id.as_str()) != me && !m.deleted)
            .map(|(seq, _)| *seq)
    }

    /// Marks the timeline read up to `seq`. Returns the frame to send when it moves our read
    /// position forward (positions never move back) while live.
    pub fn mark_read(&mut self, seq: Seq) -> Option<ClientMessage> {
        if self.phase() != Phase::Live || self.read.is_some_and(|r| r >= seq) {
            return None;
        }
        self.read = Some(seq);
        self.unread = UnreadCounts::default();
        Some(ClientMessage::Read { seq })
    }

    /// Requests to repeat after the connection went live again: the open thread (it may have
    /// missed a reset) and the pinned list, if they are shown.
    pub fn resume(&self) -> Vec<ClientMessage> {
        let mut frames = Vec::new();
        if let Some(thread) = &self.thread {
            frames.push(ClientMessage::Thread { root: thread.root });
        }
        if self.pinned.is_some() {
            frames.push(ClientMessage::Pins {});
        }
        frames
    }

    /// The hello for a new connection: replay from our cursor, or the latest page.
    pub fn connect(&mut self) -> ClientMessage {
        self.phase = Some(Phase::Syncing);
        self.requeue_in_flight();
        self.hello()
    }

    /// The hello this client would open a connection with now, changing nothing: a client
    /// that puts its hello in the socket URL ([`crate::protocol::first_frame_query`]) asks for
    /// it before the socket exists, and calls [`ClientRoom::connect`] when it opens.
    pub fn hello(&self) -> ClientMessage {
        ClientMessage::Hello {
            protocol: PROTOCOL_VERSION,
            after: self.head,
        }
    }

    /// The connection closed. In-flight mutations go back to the queue (the room may or may
    /// not have stored them; the resend is de-duplicated either way).
    pub fn disconnected(&mut self) {
        self.phase = Some(Phase::Offline);
        // Who is here is unknown until the next welcome (which lists them or counts them).
        self.present.clear();
        self.present_count = None;
        self.present_page = None;
        self.typing.clear();
        self.loading_older = false;
        self.requeue_in_flight();
    }

    fn requeue_in_flight(&mut self) {
        for p in &mut self.outbox {
            if p.status == PendingStatus::InFlight {
                p.status = PendingStatus::Queued { not_before: 0 };
            }
        }
    }

    /// Queues a mutation; it goes out with the next [`ClientRoom::take_frames`].
    pub fn queue(&mut self, client_id: String, op: PendingOp, now: Millis) {
        self.outbox.push_back(Pending {
            client_id,
            op,
            created_at: now,
            status: PendingStatus::Queued { not_before: 0 },
        });
    }

    /// Puts a failed mutation back in the queue.
    pub fn retry(&mut self, client_id: &str) -> bool {
        match self.outbox.iter_mut().find(|p| p.client_id == client_id) {
            Some(p) if matches!(p.status, PendingStatus::Failed { .. }) => {
                p.status = PendingStatus::Queued { not_before: 0 };
                true
            }
            _ => false,
        }
    }

    /// Drops a failed mutation.
    pub fn discard(&mut self, client_id: &str) -> bool {
        let before = self.outbox.len();
        self.outbox.retain(|p| {
            p.client_id != client_id || !matches!(p.status, PendingStatus::Failed { .. })
        });
        before != self.outbox.len()
    }

    /// Frames to send now: queued mutations, in order, up to [`MAX_IN_FLIGHT`] unanswered.
    /// Only while live, so that a replay never races our own sends.
    pub fn take_frames(&mut self, now: Millis) -> Vec<ClientMessage> {
        if self.phase() != Phase::Live {
            return Vec::new();
        }
        let mut in_flight = self
            .outbox
            .iter()
            .filter(|p| p.status == PendingStatus::InFlight)
            .count();
        let mut frames = Vec::new();
        for p in &mut self.outbox {
            if in_flight >= MAX_IN_FLIGHT {
                break;
            }
            if let PendingStatus::Queued { not_before } = p.status {
                if not_before > now {
                    // Keep order: nothing after a delayed mutation overtakes it.
                    break;
                }
                p.status = PendingStatus::InFlight;
                in_flight += 1;
                frames.push(p.frame());
            }
        }
        frames
    }

    /// When the next queued mutation becomes sendable, if one is waiting on a retry time.
    pub fn next_retry_at(&self) -> Option<Millis> {
        self.outbox.iter().find_map(|p| match p.status {
            PendingStatus::Queued { not_before } if not_before > 0 => Some(not_before),
            _ => None,
        })
    }

    /// A history request for the page before the oldest loaded message, unless one is already
    /// under way or there is nothing older.
    pub fn request_older(&mut self) -> Option<ClientMessage> {
        if self.loading_older || !self.has_more || self.phase() != Phase::Live {
            return None;
        }
        let before = self.messages.keys().next().copied()?;
        self.loading_older = true;
        Some(ClientMessage::History {
            before,
            limit: None,
        })
    }

    /// Applies one server frame.
    pub fn apply(&mut self, message: ServerMessage, now: Millis) -> Applied {
        let mut applied = Applied::default();
        match message {
            ServerMessage::Welcome {
                you,
                room,
                head,
                present,
                read,
                ..
            } => {
                self.read = read;
                self.welcome_read = read;
                self.me = Some(you);
                self.room = Some(room);
                self.present = present;
                // A count, if the room counts, follows the welcome.
                self.present_count = None;
                self.present_page = None;
                // Whoever is here shows under their current name, on old messages too.
                let names: BTreeMap<&str, &str> = self
                    .present
                    .iter()
                    .map(|m| (m.user_id.as_str(), m.name.as_str()))
                    .collect();
                for message in self.messages.values_mut() {
                    if let Some(name) = names.get(message.author.id.as_str()) {
                        if message.author.name != *name {
                            message.author.name = (*name).to_owned();
                        }
                    }
                }
                self.welcome_head = head;
                applied.messages_changed = true;
            }
            ServerMessage::History {
                messages,
                has_more,
                reason,
            } => match reason {
                HistoryReason::Latest | HistoryReason::Reset => {
                    if reason == HistoryReason::Reset || self.head.is_none() {
                        self.messages.clear();
                    }
                    for m in messages {
                        self.messages.insert(m.seq, m);
                    }
                    self.has_more = has_more;
                    self.head = Some(self.welcome_head);
                    self.drop_sends_already_stored(&mut applied);
                    self.settle_acked(&mut applied);
                    applied.merge(self.go_live());
                    applied.messages_changed = true;
                }
                HistoryReason::Older => {
                    self.loading_older = false;
                    for m in messages {
                        // An older page never overwrites what events already brought.
                        self.messages.entry(m.seq).or_insert(m);
                    }
                    self.has_more = has_more;
                    applied.messages_changed = true;
                }
            },
            ServerMessage::Replay { events, done } => {
                for event in events {
                    applied.merge(self.apply_event(event));
                    if applied.resync {
                        return applied;
                    }
                }
                if done {
                    applied.merge(self.go_live());
                }
            }
            ServerMessage::Event { event } => applied.merge(self.apply_event(event)),
            ServerMessage::Ack { client_id, seq, .. } => {
                if let Some(p) = self.outbox.iter_mut().find(|p| p.client_id == client_id) {
                    p.status = PendingStatus::Acked { seq };
                    applied.outbox_changed = true;
                }
                self.settle_acked(&mut applied);
            }
            ServerMessage::Error {
                code,
                message,
                client_id,
                retry_after_ms,
            } => {
                let pending = client_id
                    .as_deref()
                    .and_then(|id| self.outbox.iter_mut().find(|p| p.client_id == id));
                match pending {
                    Some(p) if p.op.is_command() && !code.is_retryable() => {
                        let id = p.client_id.clone();
                        self.outbox.retain(|p| p.client_id != id);
                        applied.outbox_changed = true;
                        self.last_error = Some(ChatError {
                            code,
                            message,
                            retry_after_ms,
                        });
                    }
                    Some(p) if code.is_retryable() => {
                        p.status = PendingStatus::Queued {
                            // The delay comes from the room: a huge one waits "forever"
                            // instead of wrapping into the past or overflowing.
                            not_before: now.saturating_add(
                                Millis::try_from(retry_after_ms.unwrap_or(1_000))
                                    .unwrap_or(Millis::MAX),
                            ),
                        };
                        applied.outbox_changed = true;
                    }
                    Some(p) => {
                        p.status = PendingStatus::Failed { code, message };
                        applied.outbox_changed = true;
                    }
                    None => {
                        self.loading_older = false;
                        self.last_error = Some(ChatError {
                            code,
                            message,
                            retry_after_ms,
                        });
                    }
                }
            }
            ServerMessage::PresenceJoin { member } => {
                if !self.present.iter().any(|m| m.user_id == member.user_id) {
                    if let Some(count) = self.present_count.as_mut() {
                        *count += 1;
                    }
                    self.present.push(member);
                }
            }
            ServerMessage::PresenceLeave { user_id } => {
                // Welcomed with a count, a client keeps counting from what it hears.
                if let Some(count) = self.present_count.as_mut() {
                    *count = count.saturating_sub(1);
                }
                self.present.retain(|m| m.user_id != user_id);
                if let Some(page) = self.present_page.as_mut() {
                    let before = page.members.len();
                    page.members.retain(|m| m.user_id != user_id);
                    if page.members.len() < before {
                        page.total = page.total.saturating_sub(1);
                    }
                }
                self.typing.remove(&user_id);
            }
            ServerMessage::Typing { user_id, name } => {
                self.typing.insert(user_id, (name, now + TYPING_TTL_MS));
            }
            ServerMessage::Stream {
                target,
                version,
                offset,
                text,
            } => {
                if let Some(m) = self.messages.get_mut(&target) {
                    applied.messages_changed |= m.apply_stream(version, offset, &text);
                }
                if let Some(reply) = self
                    .thread
                    .as_mut()
                    .and_then(|t| t.replies.get_mut(&target))
                {
                    applied.messages_changed |= reply.apply_stream(version, offset, &text);
                }
            }
            ServerMessage::Thread {
                root,
                replies,
                has_more,
            } => {
                if let Some(thread) = self.thread.as_mut().filter(|t| t.root == root.seq) {
                    thread.message = Some(root);
                    thread.replies = replies.into_iter().map(|m| (m.seq, m)).collect();
                    thread.has_more = has_more;
                    applied.messages_changed = true;
                }
            }
            ServerMessage::Pinned { messages } => {
                self.pinned = Some(messages);
                applied.messages_changed = true;
            }
            ServerMessage::Members { members } => self.members = members,
            ServerMessage::Unread { read, counts } => {
                if self.read.is_none_or(|r| r <= read) {
                    self.read = Some(read);
                    self.unread = counts;
                    applied.messages_changed = true;
                }
            }
            ServerMessage::MemberUpdated { user_id, role, .. } => {
                if let Some(me) = self.me.as_mut().filter(|me| me.id == user_id) {
                    me.role = role;
                    applied.messages_changed = true;
                }
            }
            ServerMessage::ProfileUpdated { member } => {
                for message in self.messages.values_mut() {
                    if message.author.id == member.user_id {
                        message.author.name.clone_from(&member.name);
                    }
                }
                if let Some(me) = self.me.as_mut().filter(|me| me.id == member.user_id) {
                    me.name.clone_from(&member.name);
                }
                if let Some(present) = self
                    .present
                    .iter_mut()
                    .find(|m| m.user_id == member.user_id)
                {
                    present.clone_from(&member);
                }
                if let Some(shown) = self.present_page.as_mut().and_then(|page| {
                    page.members
                        .iter_mut()
                        .find(|m| m.user_id == member.user_id)
                }) {
                    *shown = member;
                }
                applied.messages_changed = true;
            }
            ServerMessage::RoomUpdated { room } => {
                self.room = Some(room);
                applied.messages_changed = true;
            }
            ServerMessage::PresenceCount { count } => {
                self.present_count = Some(count);
                applied.messages_changed = true;
            }
            ServerMessage::PresencePage {
                members,
                total,
                offset,
            } => {
                match self.present_page.as_mut() {
                    // The next page of the list shown ("Show more").
                    Some(page) if offset > 0 && offset == page.end() => {
                        page.members.extend(members);
                        page.total = total;
                    }
                    // A later page that no longer continues the list (someone in it left
                    // while it was asked for): the list shown stays; asking again continues it.
                    Some(_) if offset > 0 => return applied,
                    _ => {
                        self.present_page = Some(PresentPage {
                            members,
                            total,
                            offset,
                        })
                    }
                }
                applied.messages_changed = true;
            }
            ServerMessage::Private { answer } => {
                // Each frame holds the whole answer as it stands.
                self.private.insert(answer.id, answer);
                applied.messages_changed = true;
            }
            ServerMessage::Applied { .. }
            | ServerMessage::Pong {}
            | ServerMessage::Activity { .. }
            | ServerMessage::Unknown => {}
        }
        applied
    }

    fn go_live(&mut self) -> Applied {
        let was_live = self.phase() == Phase::Live;
        self.phase = Some(Phase::Live);
        Applied {
            went_live: !was_live,
            requests: if was_live { Vec::new() } else { self.resume() },
            ..Applied::default()
        }
    }

    fn apply_event(&mut self, event: Event) -> Applied {
        let mut applied = Applied::default();
        let head = self.head.unwrap_or(0);
        if self.head.is_some() && event.seq <= head {
            return applied; // Already applied: a replay overlapping a live event.
        }
        if self.head.is_some() && event.seq != head + 1 {
            applied.resync = true;
            return applied;
        }
        if self.head.is_none() {
            // Events before the first page cannot be placed; the page brings them.
            return applied;
        }
        let mine = self.me.as_ref().is_some_and(|me| me.id == event.author.id);
        if mine {
            let before = self.outbox.len();
            self.outbox.retain(|p| p.client_id != event.client_id);
            applied.outbox_changed = before != self.outbox.len();
        }
        match &event.kind {
            EventKind::Message { .. } | EventKind::Answer { thread: None, .. } => {
                if let Some(m) = MessageView::from_event(&event) {
                    self.messages.insert(m.seq, m);
                }
            }
            EventKind::Reply { thread, .. }
            | EventKind::Answer {
                thread: Some(thread),
                ..
            } => {
                if let Some(m) = MessageView::from_event(&event).filter(MessageView::in_timeline) {
                    self.messages.insert(m.seq, m);
                }
                if let Some(root) = self.messages.get_mut(thread) {
                    root.apply(&event);
                }
            }
            EventKind::Edit { target, .. }
            | EventKind::Delete { target }
            | EventKind::AnswerStatus { target, .. }
            | EventKind::Feedback { target, .. }
            | EventKind::React { target, .. }
            | EventKind::Pin { target, .. } => {
                if let Some(m) = self.messages.get_mut(target) {
                    m.apply(&event);
                }
            }
            // Newer than this build: nothing to show, but the cursor moves past it.
            EventKind::Unknown => {}
        }
        if let Some(thread) = self.thread.as_mut() {
            thread.apply(&event);
        }
        if self.apply_to_pins(&event) {
            applied.requests.push(ClientMessage::Pins {});
        }
        self.head = Some(event.seq);
        self.typing.remove(&event.author.id);
        self.settle_acked(&mut applied);
        applied.messages_changed = true;
        applied
    }

    /// Keeps a shown pinned list current: a pin adds the message (from what is loaded), an
    /// unpin or delete removes it, other changes update it in place. Returns true when a pin
    /// names a message not loaded here, so the list must be fetched again.
    fn apply_to_pins(&mut self, event: &Event) -> bool {
        let Some(pinned) = self.pinned.as_mut() else {
            return false;
        };
        for m in pinned.iter_mut() {
            m.apply(event);
        }
        pinned.retain(|m| m.pinned);
        if let EventKind::Pin {
            target,
            pinned: true,
        } = &event.kind
        {
            let known = self.messages.get(target).or_else(|| {
                self.thread
                    .as_ref()
                    .and_then(|t| t.replies.get(target).or(t.message.as_ref()))
                    .filter(|m| m.seq == *target)
            });
            if pinned.iter().any(|p| p.seq == *target) {
                return false;
            }
            match known {
                Some(m) => {
                    let mut m = m.clone();
                    m.pinned = true;
                    pinned.push(m);
                    pinned.sort_by_key(|m| std::cmp::Reverse(m.seq));
                }
                None => return true,
            }
        }
        false
    }

    /// A page can show that a send of ours was stored (its ack was lost with a connection):
    /// drop it rather than resend. Sends older than the page are still resent, and the room
    /// de-duplicates them.
    fn drop_sends_already_stored(&mut self, applied: &mut Applied) {
        let Some(me) = self.me.as_ref() else { return };
        let messages = &self.messages;
        let before = self.outbox.len();
        self.outbox.retain(|p| {
            !matches!(p.op, PendingOp::Send { .. })
                || !messages
                    .values()
                    .rev()
                    .any(|m| m.author.id == me.id && m.client_id == p.client_id)
        });
        if before != self.outbox.len() {
            applied.outbox_changed = true;
        }
    }

    /// Drops acknowledged mutations whose event is already applied.
    fn settle_acked(&mut self, applied: &mut Applied) {
        let head = self.head.unwrap_or(0);
        let before = self.outbox.len();
        self.outbox
            .retain(|p| !matches!(p.status, PendingStatus::Acked { seq } if seq <= head));
        if before != self.outbox.len() {
            applied.outbox_changed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{AnswerState, Role};

    fn author(id: &str) -> Author {
        Author {
            id: id.into(),
            name: id.into(),
            role: Role::Member,
        }
    }

    fn info() -> RoomInfo {
        RoomInfo {
            slug: "r".into(),
            name: "R".into(),
            topic: String::new(),
            created_at: 0,
            last_activity: None,
            message_count: 0,
            assistant: Default::default(),
            private: false,
        }
    }

    fn post(seq: Seq, by: &str, client_id: &str, text: &str) -> Event {
        Event {
            seq,
            at: seq as Millis,
            author: author(by),
            client_id: client_id.into(),
            kind: EventKind::Message {
                text: text.into(),
                attachments: Vec::new(),
            },
        }
    }

    fn welcome(room: &mut ClientRoom, head: Seq) {
        room.apply(
            ServerMessage::Welcome {
                protocol: PROTOCOL_VERSION,
                you: author("me"),
                room: info(),
                head,
                present: vec![],
                read: None,
            },
            0,
        );
    }

    fn live_room(me: &str, head: Seq) -> ClientRoom {
        let mut room = ClientRoom::new();
        room.connect();
        room.apply(
            ServerMessage::Welcome {
                protocol: PROTOCOL_VERSION,
                you: author(me),
                room: info(),
                head,
                present: vec![],
                read: None,
            },
            0,
        );
        room.apply(
            ServerMessage::History {
                messages: vec![],
                has_more: false,
                reason: HistoryReason::Latest,
            },
            0,
        );
        room
    }

    #[test]
    fn nothing_is_sent_until_the_connection_is_live() {
        let mut room = ClientRoom::new();
        room.queue(
            "a".into(),
            PendingOp::Send {
                text: "hi".into(),
                attachments: vec![],
            },
            0,
        );
        assert!(room.take_frames(0).is_empty());
        room.connect();
        assert!(room.take_frames(0).is_empty(), "not while syncing");
    }

    #[test]
    fn a_send_stays_pending_until_its_event_arrives_then_becomes_a_message() {
        let mut room = live_room("me", 0);
        room.queue(
            "a".into(),
            PendingOp::Send {
                text: "hi".into(),
                attachments: vec![],
            },
            0,
        );
        assert_eq!(room.take_frames(0).len(), 1);
        room.apply(
            ServerMessage::Ack {
                client_id: "a".into(),
                seq: 1,
                duplicate: false,
            },
            0,
        );
        assert!(matches!(room.timeline().as_slice(), [Row::Pending(_)]));
        room.apply(
            ServerMessage::Event {
                event: post(1, "me", "a", "hi"),
            },
            0,
        );
        assert!(matches!(
            room.timeline().as_slice(),
            [Row::Message { pending: None, .. }]
        ));
        assert_eq!(room.outbox().count(), 0);
    }

    #[test]
    fn in_flight_sends_are_resent_with_the_same_id_after_a_reconnect() {
        let mut room = live_room("me", 0);
        room.queue(
            "a".into(),
            PendingOp::Send {
                text: "hi".into(),
                attachments: vec![],
            },
            0,
        );
        let first = room.take_frames(0);
        room.disconnected();
        room.connect();
        room.apply(
            ServerMessage::Replay {
                events: vec![],
                done: true,
            },
            0,
        );
        assert_eq!(room.take_frames(0), first);
    }

    #[test]
    fn at_most_max_in_flight_mutations_are_unanswered_at_once() {
        let mut room = live_room("me", 0);
        for i in 0..(MAX_IN_FLIGHT + 3) {
            room.queue(
                format!("c{i}"),
                PendingOp::Send {
                    text: "x".into(),
                    attachments: vec![],
                },
                0,
            );
        }
        assert_eq!(room.take_frames(0).len(), MAX_IN_FLIGHT);
        assert!(room.take_frames(0).is_empty());
        room.apply(
            ServerMessage::Ack {
                client_id: "c0".into(),
                seq: 1,
                duplicate: false,
            },
            0,
        );
        room.apply(
            ServerMessage::Event {
                event: post(1, "me", "c0", "x"),
            },
            0,
        );
        assert_eq!(room.take_frames(0).len(), 1);
    }

    #[test]
    fn a_rate_limited_send_waits_for_its_retry_time_and_keeps_its_place() {
        let mut room = live_room("me", 0);
        room.queue(
            "a".into(),
            PendingOp::Send {
                text: "1".into(),
                attachments: vec![],
            },
            0,
        );
        room.queue(
            "b".into(),
            PendingOp::Send {
                text: "2".into(),
                attachments: vec![],
            },
            0,
        );
        room.take_frames(0);
        room.apply(
            ServerMessage::Error {
                code: ErrorCode::RateLimited,
                message: "slow down".into(),
                client_id: Some("a".into()),
                retry_after_ms: Some(500),
            },
            100,
        );
        assert_eq!(room.next_retry_at(), Some(600));
        assert!(room.take_frames(599).is_empty());
        let frames = room.take_frames(600);
        assert!(matches!(&frames[..], [ClientMessage::Send { client_id, .. }] if client_id == "a"));
    }

    #[test]
    fn a_refused_send_is_failed_and_can_be_retried_or_discarded() {
        let mut room = live_room("me", 0);
        room.queue(
            "a".into(),
            PendingOp::Send {
                text: "x".into(),
                attachments: vec![],
            },
            0,
        );
        room.take_frames(0);
        room.apply(
            ServerMessage::Error {
                code: ErrorCode::TooLarge,
                message: "too long".into(),
                client_id: Some("a".into()),
                retry_after_ms: None,
            },
            0,
        );
        assert!(matches!(
            room.outbox().next().unwrap().status,
            PendingStatus::Failed {
                code: ErrorCode::TooLarge,
                ..
            }
        ));
        assert!(
            room.take_frames(0).is_empty(),
            "a failed send is not resent by itself"
        );
        assert!(room.retry("a"));
        assert_eq!(room.take_frames(0).len(), 1);
        room.apply(
            ServerMessage::Error {
                code: ErrorCode::Forbidden,
                message: "no".into(),
                client_id: Some("a".into()),
                retry_after_ms: None,
            },
            0,
        );
        assert!(room.discard("a"));
        assert_eq!(room.outbox().count(), 0);
    }

    #[test]
    fn an_event_already_applied_is_ignored_and_a_gap_asks_for_a_resync() {
        let mut room = live_room("me", 0);
        assert!(
            room.apply(
                ServerMessage::Event {
                    event: post(1, "bob", "x", "one")
                },
                0
            )
            .messages_changed
        );
        let again = room.apply(
            ServerMessage::Event {
                event: post(1, "bob", "x", "one"),
            },
            0,
        );
        assert!(!again.messages_changed);
        assert_eq!(room.messages().count(), 1);
        let gap = room.apply(
            ServerMessage::Event {
                event: post(5, "bob", "y", "five"),
            },
            0,
        );
        assert!(gap.resync);
        assert_eq!(room.head(), Some(1));
    }

    #[test]
    fn a_reset_page_replaces_what_the_client_held() {
        let mut room = live_room("me", 0);
        room.apply(
            ServerMessage::Event {
                event: post(1, "bob", "x", "old"),
            },
            0,
        );
        room.disconnected();
        room.connect();
        welcome(&mut room, 900);
        let page = vec![MessageView::from_event(&post(899, "bob", "z", "new")).unwrap()];
        room.apply(
            ServerMessage::History {
                messages: page,
                has_more: true,
                reason: HistoryReason::Reset,
            },
            0,
        );
        assert_eq!(
            room.messages().map(|m| m.seq).collect::<Vec<_>>(),
            vec![899]
        );
        assert_eq!(room.head(), Some(900));
        assert_eq!(room.phase(), Phase::Live);
    }

    #[test]
    fn a_pending_send_found_in_the_latest_page_is_not_sent_again() {
        let mut room = ClientRoom::new();
        room.queue(
            "a".into(),
            PendingOp::Send {
                text: "hi".into(),
                attachments: vec![],
            },
            0,
        );
        room.queue(
            "b".into(),
            PendingOp::Send {
                text: "yo".into(),
                attachments: vec![],
            },
            0,
        );
        room.connect();
        welcome(&mut room, 1);
        let page = vec![MessageView::from_event(&post(1, "me", "a", "hi")).unwrap()];
        room.apply(
            ServerMessage::History {
                messages: page,
                has_more: false,
                reason: HistoryReason::Latest,
            },
            0,
        );
        let frames = room.take_frames(0);
        assert!(
            matches!(&frames[..], [ClientMessage::Send { client_id, .. }] if client_id == "b"),
            "{frames:?}"
        );
    }

    #[test]
    fn edits_and_deletes_apply_to_loaded_messages() {
        let mut room = live_room("me", 0);
        room.apply(
            ServerMessage::Event {
                event: post(1, "bob", "x", "hi"),
            },
            0,
        );
        room.apply(
            ServerMessage::Event {
                event: Event {
                    seq: 2,
                    at: 2,
                    author: author("bob"),
                    client_id: "e".into(),
                    kind: EventKind::Edit {
                        target: 1,
                        text: "hello".into(),
                    },
                },
            },
            0,
        );
        let m = room.messages().next().unwrap();
        assert_eq!(m.text, "hello");
        assert_eq!(m.edited_at, Some(2));
        room.apply(
            ServerMessage::Event {
                event: Event {
                    seq: 3,
                    at: 3,
                    author: author("bob"),
                    client_id: "d".into(),
                    kind: EventKind::Delete { target: 1 },
                },
            },
            0,
        );
        assert!(room.messages().next().unwrap().deleted);
    }

    #[test]
    fn the_cache_round_trips_and_requeues_what_was_in_flight() {
        let mut room = live_room("me", 0);
        room.apply(
            ServerMessage::Event {
                event: post(1, "bob", "x", "hi"),
            },
            0,
        );
        room.queue(
            "a".into(),
            PendingOp::Send {
                text: "yo".into(),
                attachments: vec![],
            },
            0,
        );
        room.take_frames(0);
        let restored = ClientRoom::from_cache(room.to_cache());
        assert_eq!(restored.head(), Some(1));
        assert_eq!(restored.messages().count(), 1);
        assert_eq!(
            restored.outbox().next().unwrap().status,
            PendingStatus::Queued { not_before: 0 }
        );
    }

    #[test]
    fn the_cache_keeps_only_the_newest_messages_and_marks_that_more_exist() {
        let mut room = live_room("me", 0);
        for seq in 1..=(CACHE_MESSAGES as Seq + 10) {
            room.apply(
                ServerMessage::Event {
                    event: post(seq, "bob", &format!("c{seq}"), "x"),
                },
                0,
            );
        }
        let cache = room.to_cache();
        assert_eq!(cache.messages.len(), CACHE_MESSAGES);
        assert_eq!(cache.messages[0].seq, 11);
        assert!(cache.has_more);
    }

    #[test]
    fn typing_expires_and_never_shows_ourselves() {
        let mut room = live_room("me", 0);
        room.apply(
            ServerMessage::Typing {
                user_id: "bob".into(),
                name: "Bob".into(),
            },
            1_000,
        );
        room.apply(
            ServerMessage::Typing {
                user_id: "me".into(),
                name: "Me".into(),
            },
            1_000,
        );
        assert_eq!(room.typing(1_001), vec!["Bob"]);
        assert!(room.typing(1_000 + TYPING_TTL_MS).is_empty());
    }

    #[test]
    fn only_one_older_page_request_is_in_flight_at_a_time() {
        let mut room = ClientRoom::new();
        room.connect();
        welcome(&mut room, 60);
        room.apply(
            ServerMessage::History {
                messages: vec![MessageView::from_event(&post(51, "bob", "x", "hi")).unwrap()],
                has_more: true,
                reason: HistoryReason::Latest,
            },
            0,
        );
        assert_eq!(
            room.request_older(),
            Some(ClientMessage::History {
                before: 51,
                limit: None
            })
        );
        assert_eq!(room.request_older(), None);
        room.apply(
            ServerMessage::History {
                messages: vec![],
                has_more: false,
                reason: HistoryReason::Older,
            },
            0,
        );
        assert_eq!(room.request_older(), None, "nothing older exists");
    }

    fn event(seq: Seq, by: &str, kind: EventKind) -> Event {
        Event {
            seq,
            at: seq as Millis,
            author: author(by),
            client_id: format!("k{seq}"),
            kind,
        }
    }

    #[test]
    fn a_thread_only_reply_updates_its_root_and_the_open_thread_but_not_the_timeline() {
        let mut room = live_room("me", 0);
        room.apply(
            ServerMessage::Event {
                event: post(1, "bob", "a", "root"),
            },
            0,
        );
        let ask = room.open_thread(1);
        assert_eq!(ask, Some(ClientMessage::Thread { root: 1 }));
        let reply = |seq, also| {
            event(
                seq,
                "bob",
                EventKind::Reply {
                    thread: 1,
                    text: "re".into(),
                    also_in_room: also,
                    attachments: Vec::new(),
                },
            )
        };
        room.apply(
            ServerMessage::Event {
                event: reply(2, false),
            },
            0,
        );
        room.apply(
            ServerMessage::Event {
                event: reply(3, true),
            },
            0,
        );
        let timeline: Vec<Seq> = room.messages().map(|m| m.seq).collect();
        assert_eq!(timeline, vec![1, 3]);
        assert_eq!(room.messages().next().unwrap().replies.unwrap().count, 2);
        let thread = room.thread().unwrap();
        assert_eq!(
            thread.replies.keys().copied().collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(thread.message.as_ref().unwrap().replies.unwrap().count, 2);
        // Opening a reply opens its root's thread.
        room.close_thread();
        room.open_thread(3);
        assert_eq!(room.thread().unwrap().root, 1);
    }

    #[test]
    fn after_a_reconnect_the_open_thread_and_pinned_list_are_asked_for_again() {
        let mut room = live_room("me", 0);
        room.open_thread(1);
        room.request_pins();
        room.apply(ServerMessage::Pinned { messages: vec![] }, 0);
        room.disconnected();
        room.connect();
        welcome(&mut room, 0);
        let applied = room.apply(
            ServerMessage::Replay {
                events: vec![],
                done: true,
            },
            0,
        );
        assert!(applied.went_live);
        assert_eq!(
            applied.requests,
            vec![ClientMessage::Thread { root: 1 }, ClientMessage::Pins {}]
        );
    }

    #[test]
    fn read_positions_only_move_forward_and_the_first_unread_skips_our_own_messages() {
        let mut room = ClientRoom::new();
        room.connect();
        room.apply(
            ServerMessage::Welcome {
                protocol: PROTOCOL_VERSION,
                you: author("me"),
                room: info(),
                head: 3,
                present: vec![],
                read: Some(1),
            },
            0,
        );
        let page = [
            post(1, "bob", "a", "x"),
            post(2, "me", "b", "y"),
            post(3, "bob", "c", "z"),
        ]
        .iter()
        .map(|e| MessageView::from_event(e).unwrap())
        .collect();
        room.apply(
            ServerMessage::History {
                messages: page,
                has_more: false,
                reason: HistoryReason::Latest,
            },
            0,
        );
        assert_eq!(room.first_unread(), Some(3));
        assert_eq!(room.mark_read(3), Some(ClientMessage::Read { seq: 3 }));
        assert_eq!(room.mark_read(2), None, "never backwards");
        assert_eq!(room.mark_read(3), None, "nothing new");
        assert_eq!(room.first_unread(), None);
        // An older position from another tab does not move ours back.
        room.apply(
            ServerMessage::Unread {
                read: 1,
                counts: UnreadCounts {
                    unread: 2,
                    mentions: 0,
                },
            },
            0,
        );
        assert_eq!(room.read_position(), Some(3));
    }

    #[test]
    fn a_pin_of_a_message_not_loaded_here_asks_for_the_pinned_list_again() {
        let mut room = live_room("me", 0);
        room.apply(
            ServerMessage::Event {
                event: post(1, "bob", "a", "x"),
            },
            0,
        );
        room.apply(ServerMessage::Pinned { messages: vec![] }, 0);
        let applied = room.apply(
            ServerMessage::Event {
                event: event(
                    2,
                    "mo",
                    EventKind::Pin {
                        target: 1,
                        pinned: true,
                    },
                ),
            },
            0,
        );
        assert!(applied.requests.is_empty());
        assert_eq!(room.pinned().unwrap()[0].seq, 1);
        let applied = room.apply(
            ServerMessage::Event {
                event: event(
                    3,
                    "mo",
                    EventKind::Pin {
                        target: 99,
                        pinned: true,
                    },
                ),
            },
            0,
        );
        assert_eq!(applied.requests, vec![ClientMessage::Pins {}]);
        room.apply(
            ServerMessage::Event {
                event: event(
                    4,
                    "mo",
                    EventKind::Pin {
                        target: 1,
                        pinned: false,
                    },
                ),
            },
            0,
        );
        assert!(room.pinned().unwrap().is_empty());
    }

    fn private(id: u64, state: AnswerState, text: &str) -> ServerMessage {
        ServerMessage::Private {
            answer: PrivateAnswer {
                id,
                kind: crate::protocol::PrivateKind::CatchUp,
                thread: None,
                after: 1,
                upto: 9,
                considered: 3,
                total: 8,
                state,
                text: text.into(),
                error: None,
                meta: None,
                at: 0,
            },
        }
    }

    #[test]
    fn catch_up_is_asked_only_while_live_and_names_the_thread_it_summarizes() {
        let mut room = ClientRoom::new();
        assert_eq!(room.catch_up(None), None, "not before the welcome");
        room.connect();
        welcome(&mut room, 0);
        assert_eq!(room.catch_up(None), None, "not while syncing");
        let room = live_room("me", 0);
        assert_eq!(
            room.catch_up(None),
            Some(ClientMessage::CatchUp {
                thread: None,
                after: Some(0)
            })
        );
        assert_eq!(
            room.catch_up(Some(4)),
            Some(ClientMessage::CatchUp {
                thread: Some(4),
                after: None
            })
        );
    }

    #[test]
    fn private_frames_with_the_same_id_are_one_answer_showing_the_latest_text() {
        let mut room = live_room("me", 0);
        let applied = room.apply(private(7, AnswerState::Queued, ""), 0);
        assert!(applied.messages_changed, "the page shows it");
        room.apply(private(7, AnswerState::Streaming, "So far"), 0);
        room.apply(private(7, AnswerState::Done, "So far, all of it"), 0);
        let answers: Vec<&PrivateAnswer> = room.private_answers().collect();
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].text, "So far, all of it");
        assert_eq!(answers[0].state, AnswerState::Done);
        assert!(room.timeline().is_empty(), "never a timeline message");
    }

    #[test]
    fn a_dismissed_private_answer_is_gone_and_the_others_stay() {
        let mut room = live_room("me", 0);
        room.apply(private(1, AnswerState::Done, "first"), 0);
        room.apply(private(2, AnswerState::Streaming, "second"), 0);
        room.dismiss_private(1);
        let ids: Vec<u64> = room.private_answers().map(|a| a.id).collect();
        assert_eq!(ids, [2]);
        room.dismiss_private(1);
        assert_eq!(
            room.private_answers().count(),
            1,
            "dismissing twice is harmless"
        );
    }

    #[test]
    fn a_loaded_message_is_found_by_seq_in_the_timeline_or_the_open_thread_and_nowhere_else() {
        let mut room = live_room("me", 0);
        room.apply(
            ServerMessage::Event {
                event: post(1, "bob", "a", "root"),
            },
            0,
        );
        assert_eq!(room.message(1).map(|m| m.text.as_str()), Some("root"));
        assert!(room.message(2).is_none());
        room.open_thread(1);
        room.apply(
            ServerMessage::Thread {
                root: MessageView::from_event(&post(1, "bob", "a", "root")).unwrap(),
                replies: vec![MessageView {
                    thread: Some(1),
                    ..MessageView::from_event(&post(2, "ann", "b", "in the thread")).unwrap()
                }],
                has_more: false,
            },
            0,
        );
        assert_eq!(
            room.message(2).map(|m| m.text.as_str()),
            Some("in the thread")
        );
    }

    fn person(i: u32) -> Member {
        Member {
            user_id: format!("u{i}"),
            name: format!("Person {i:03}"),
            avatar: None,
        }
    }

    /// A live room of 60 people, as a large room welcomes: nobody listed, then the count.
    fn counted_room() -> ClientRoom {
        let mut room = live_room("me", 0);
        room.apply(ServerMessage::PresenceCount { count: 60 }, 0);
        room
    }

    fn page(offset: u32, people: std::ops::Range<u32>, total: u32) -> ServerMessage {
        ServerMessage::PresencePage {
            members: people.map(person).collect(),
            total,
            offset,
        }
    }

    fn shown(room: &ClientRoom) -> Vec<String> {
        room.present_page()
            .map(|p| p.members.iter().map(|m| m.user_id.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn a_welcome_followed_by_a_count_is_counted_with_that_number_and_lists_nobody() {
        let mut room = live_room("me", 0);
        assert!(!room.presence_is_counted());
        let applied = room.apply(ServerMessage::PresenceCount { count: 4_812 }, 0);
        assert!(applied.messages_changed, "the header must re-render");
        assert!(room.presence_is_counted());
        assert_eq!(room.present_count(), 4_812);
        assert!(room.present().is_empty());
        assert!(room.present_page().is_none(), "nothing asked for yet");
    }

    #[test]
    fn a_small_room_lists_who_is_here_and_counts_them_from_the_list() {
        let mut room = live_room("me", 0);
        room.apply(ServerMessage::PresenceJoin { member: person(1) }, 0);
        room.apply(ServerMessage::PresenceJoin { member: person(2) }, 0);
        room.apply(ServerMessage::PresenceJoin { member: person(2) }, 0);
        assert!(!room.presence_is_counted());
        assert_eq!(room.present_count(), 2);
        room.apply(
            ServerMessage::PresenceLeave {
                user_id: "u1".into(),
            },
            0,
        );
        assert_eq!(room.present_count(), 1);
    }

    #[test]
    fn a_slice_is_asked_for_only_while_live_and_applies_when_it_comes() {
        let mut room = ClientRoom::new();
        assert_eq!(room.ask_presence(0, 50, None), None, "not connected");
        room = counted_room();
        assert_eq!(
            room.ask_presence(0, 50, Some("per".into())),
            Some(ClientMessage::Presence {
                offset: 0,
                limit: 50,
                query: Some("per".into())
            })
        );
        room.apply(page(0, 0..50, 60), 0);
        let held = room.present_page().cloned().unwrap();
        assert_eq!((held.members.len(), held.total, held.offset), (50, 60, 0));
        assert_eq!(held.members[0], person(0));
        assert_eq!(held.end(), 50);
    }

    #[test]
    fn the_next_slice_is_appended_and_a_slice_from_the_start_replaces_the_list() {
        let mut room = counted_room();
        room.apply(page(0, 0..50, 60), 0);
        room.apply(page(50, 50..60, 60), 0);
        assert_eq!(shown(&room).len(), 60);
        assert_eq!(room.present_page().unwrap().end(), 60);
        // A search (or a refresh) starts again from the top.
        room.apply(page(0, 7..8, 1), 0);
        assert_eq!(shown(&room), ["u7"]);
        assert_eq!(room.present_page().unwrap().total, 1);
    }

    #[test]
    fn a_later_slice_that_no_longer_continues_the_list_is_not_appended() {
        let mut room = counted_room();
        room.apply(page(0, 0..50, 60), 0);
        // Someone shown left while "Show more" was on its way: the room's offset 50 now skips
        // one person, and the list shown is not silently given a gap.
        room.apply(
            ServerMessage::PresenceLeave {
                user_id: "u3".into(),
            },
            0,
        );
        let applied = room.apply(page(50, 51..60, 59), 0);
        assert!(!applied.messages_changed);
        assert_eq!(shown(&room).len(), 49);
        assert_eq!(
            room.present_page().unwrap().end(),
            49,
            "asking again continues it"
        );
    }

    #[test]
    fn someone_in_the_slice_leaving_is_removed_from_it_and_the_count_and_total_drop() {
        let mut room = counted_room();
        room.apply(page(0, 0..50, 60), 0);
        room.apply(
            ServerMessage::PresenceLeave {
                user_id: "u4".into(),
            },
            0,
        );
        assert!(!shown(&room).contains(&"u4".to_string()));
        assert_eq!(shown(&room).len(), 49);
        assert_eq!(room.present_page().unwrap().total, 59);
        assert_eq!(room.present_count(), 59);
        // Someone not shown leaving moves the count only.
        room.apply(
            ServerMessage::PresenceLeave {
                user_id: "u99".into(),
            },
            0,
        );
        assert_eq!(room.present_count(), 58);
        assert_eq!(room.present_page().unwrap().total, 59);
        assert_eq!(shown(&room).len(), 49);
    }

    #[test]
    fn a_rename_shows_in_the_slice() {
        let mut room = counted_room();
        room.apply(page(0, 0..3, 60), 0);
        let renamed = Member {
            name: "Zed".into(),
            ..person(1)
        };
        room.apply(
            ServerMessage::ProfileUpdated {
                member: renamed.clone(),
            },
            0,
        );
        assert_eq!(room.present_page().unwrap().members[1], renamed);
    }

    #[test]
    fn a_new_welcome_forgets_the_count_and_the_slice_until_the_room_counts_again() {
        let mut room = counted_room();
        room.apply(page(0, 0..50, 60), 0);
        room.disconnected();
        assert!(
            !room.presence_is_counted(),
            "offline, nobody is known to be here"
        );
        assert!(room.present_page().is_none());

        let mut room = counted_room();
        room.apply(page(0, 0..50, 60), 0);
        room.connect();
        room.apply(
            ServerMessage::Welcome {
                protocol: PROTOCOL_VERSION,
                you: author("me"),
                room: info(),
                head: 0,
                present: vec![person(1), person(2)],
                read: None,
            },
            0,
        );
        assert!(!room.presence_is_counted());
        assert_eq!(room.present_count(), 2);
        assert!(
            room.present_page().is_none(),
            "a new connection holds no slice"
        );
    }
}
