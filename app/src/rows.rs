//! The message list's view model: one `Rc<RowView>` per timeline row, rebuilt after each change
//! but reused (same `Rc`) for rows that did not change, so the memoized row components compare
//! their props by pointer and skip re-rendering. Markdown is rendered here, once per message
//! text, never during a render.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
// The day citations name: the reader's local day in the browser, UTC in the native tests.
#[cfg(not(target_arch = "wasm32"))]
use crate::format::utc_date as day;
#[cfg(target_arch = "wasm32")]
use crate::web::local_date as day;

use shared::client::{ClientRoom, Pending, PendingOp, PendingStatus, Row};
use shared::permissions::{may, outranks, Action};
use shared::protocol::{
    AnswerState, Attachment, Author, Citation, Member, MessageView, Millis, Role, Seq, Vote,
};

/// Where a row stands with the room, as `data-status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Stored by the room.
    Sent,
    /// Ours, not confirmed yet.
    Pending,
    /// Ours, refused; carries the room's message.
    Failed(String),
}

impl Status {
    /// The `data-status` value.
    pub fn attr(&self) -> &'static str {
        match self {
            Status::Sent => "sent",
            Status::Pending => "pending",
            Status::Failed(_) => "failed",
        }
    }
}

/// What an unconfirmed change of ours does to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PendingKind {
    /// A new message.
    Send,
    /// An edit of a stored message.
    Edit,
    /// A delete of a stored message.
    Delete,
}

/// One rendered row.
#[derive(Debug, Clone, PartialEq)]
pub struct RowView {
    /// The message's sequence number; `None` for a send the room has not stored yet.
    pub seq: Option<Seq>,
    /// The client id that posted the message (or of the pending send).
    pub client_id: String,
    /// Author's display name (their current one: renames reach old messages).
    pub author: String,
    /// Author's user id (for their profile card).
    pub author_id: String,
    /// A short id after the name (`#a1b2c3`) when another author or member of the room has
    /// the same name (display names are not unique: this tells an impersonator apart).
    pub author_tag: Option<String>,
    /// Posted at (server time), or queued at for a pending send.
    pub at: Millis,
    /// Markdown source as shown (a pending edit's new text while it is unconfirmed).
    pub text: String,
    /// `text` rendered to safe HTML.
    pub html: Rc<str>,
    /// Edited at least once.
    pub edited: bool,
    /// A tombstone.
    pub deleted: bool,
    /// Written by us.
    pub mine: bool,
    /// Whether the Edit action is offered.
    pub can_edit: bool,
    /// Whether the Delete action is offered.
    pub can_delete: bool,
    /// Sent, pending or failed.
    pub status: Status,
    /// Our unconfirmed change to this row: its outbox id and what it does.
    pub pending: Option<(String, PendingKind)>,
    /// Set on the assistant's answers.
    pub answer: Option<AnswerRow>,
    /// Reactions, in the order each emoji was first used.
    pub reactions: Vec<ReactionView>,
    /// On a thread root: reply count and last reply time.
    pub replies: Option<(u32, Millis)>,
    /// On a reply also sent to the room: its thread's root.
    pub in_thread: Option<Seq>,
    /// Pinned to the room.
    pub pinned: bool,
    /// Whether Pin/Unpin is offered.
    pub can_pin: bool,
    /// Whether reacting (and replying) is offered.
    pub can_react: bool,
    /// The text mentions us.
    pub mentions_me: bool,
    /// Its files (none once deleted).
    pub attachments: Rc<[Attachment]>,
    /// The link that gets a preview card (the text's first http(s) link).
    pub link: Option<Rc<str>>,
}

/// One emoji's reactions as a row shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactionView {
    /// The emoji.
    pub emoji: String,
    /// How many reacted.
    pub count: usize,
    /// Whether we did (clicking then takes ours back).
    pub mine: bool,
    /// Who reacted, for the hover title.
    pub who: String,
}

/// The reactions of a message as seen by `me`.
pub fn reaction_views(m: &MessageView, me: Option<&str>) -> Vec<ReactionView> {
    m.reactions
        .iter()
        .map(|r| ReactionView {
            emoji: r.emoji.clone(),
            count: r.by.len(),
            mine: r.by.iter().any(|b| Some(b.user_id.as_str()) == me),
            who: r
                .by
                .iter()
                .map(|b| b.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })
        .collect()
}

/// The reactions offered in a row's picker.
pub const QUICK_REACTIONS: [&str; 6] = ["👍", "❤️", "😂", "🎉", "😮", "👀"];

/// The assistant-specific part of an answer's row.
#[derive(Debug, Clone, PartialEq)]
pub struct AnswerRow {
    /// Queued, streaming, done, stopped, failed.
    pub state: AnswerState,
    /// Current version (from 1).
    pub version: u32,
    /// Earlier versions' texts, oldest first.
    pub previous: Vec<String>,
    /// Why the current version failed.
    pub error: Option<String>,
    /// "openai · model · 120 → 48 tokens · first token 0.3 s · 2.1 s", once finished.
    pub meta: Option<String>,
    /// Whether Stop is offered (the asker or a moderator, while it is active).
    pub can_stop: bool,
    /// Whether Regenerate is offered (the asker or a moderator, once finished).
    pub can_regenerate: bool,
    /// Whether voting is offered.
    pub can_rate: bool,
    /// Up and down votes.
    pub tally: (usize, usize),
    /// Our own vote.
    pub mine: Option<Vote>,
    /// The sources the current version cites, once it ended (its `[n]` markers are buttons in
    /// the row's `html`).
    pub citations: Rc<[Citation]>,
}

impl RowView {
    /// The key Yew diffs the list by: the seq for stored messages, the client id before that.
    pub fn key(&self) -> String {
        match self.seq {
            Some(seq) => seq.to_string(),
            None => format!("p-{}", self.client_id),
        }
    }
}

/// A user action on a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowAction {
    /// Replace a message's text.
    Edit(Seq, String),
    /// Delete a message.
    Delete(Seq),
    /// Queue a failed mutation again.
    Retry(String),
    /// Drop a failed mutation.
    Discard(String),
    /// Stop an assistant answer.
    Stop(Seq),
    /// Write a new version of an assistant answer (also the retry of a failed one).
    Regenerate(Seq),
    /// Rate an assistant answer, with an optional reason.
    Rate(Seq, Vote, Option<String>),
    /// Add (true) or take back (false) our reaction.
    React(Seq, String, bool),
    /// Pin (true) or unpin a message.
    Pin(Seq, bool),
    /// Open the thread of a message in the side panel.
    OpenThread(Seq),
    /// Show an author's profile card.
    ShowProfile(String),
}

/// What decides whether a stored message's row changed. A message's text only changes by an
/// edit (which moves `edited_at`) or a delete, so this avoids comparing texts.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fingerprint {
    author: String,
    tagged: bool,
    edited_at: Option<Millis>,
    deleted: bool,
    text_len: usize,
    pending: Option<(String, u8)>,
    answer: Option<(AnswerState, u32, usize, usize)>,
    reactions: Vec<(String, usize)>,
    replies: Option<(u32, Millis)>,
    pinned: bool,
}

fn status_kind(status: &PendingStatus) -> u8 {
    match status {
        PendingStatus::Queued { .. } | PendingStatus::InFlight | PendingStatus::Acked { .. } => 0,
        PendingStatus::Failed { .. } => 1,
    }
}

fn pending_status(p: &Pending) -> Status {
    match &p.status {
        PendingStatus::Failed { message, .. } => Status::Failed(message.clone()),
        _ => Status::Pending,
    }
}

/// The citations of an answer's current version (none while it is written: its markers are
/// plain text until the room has checked them).
fn citations(m: &MessageView) -> &[Citation] {
    m.answer
        .as_ref()
        .and_then(|a| a.meta.as_ref())
        .map_or(&[], |meta| meta.citations.as_slice())
}

/// The link a row previews: the first http(s) link of its words, as the Worker picks it
/// (`shared::media::link`), none for a tombstone.
fn preview_link(text: &str, deleted: bool) -> Option<Rc<str>> {
    if deleted {
        return None;
    }
    shared::media::link::first_link(text).map(Rc::from)
}

fn render(text: &str) -> Rc<str> {
    shared::markdown::render(text).into()
}

/// Reuses rows between rebuilds.
#[derive(Default)]
pub struct RowCache {
    me: Option<(String, Role)>,
    /// Whether we are a global admin, who may do everything in every room.
    admin: bool,
    my_name: Option<String>,
    messages: HashMap<Seq, (Fingerprint, Rc<RowView>)>,
    sends: HashMap<String, (u8, Rc<RowView>)>,
    /// Names (folded) that two or more different people in the room have.
    twins: HashSet<String>,
}

/// A name as people read it: case and spacing do not tell two names apart.
fn fold(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// The names shared by different user ids among the loaded messages and the member list.
fn twin_names(timeline: &[Row<'_>], members: &[Member]) -> HashSet<String> {
    let mut first_id: HashMap<String, &str> = HashMap::new();
    let mut twins = HashSet::new();
    let people = timeline
        .iter()
        .filter_map(|row| match row {
            Row::Message { message, .. } => {
                Some((message.author.name.as_str(), message.author.id.as_str()))
            }
            Row::Pending(_) => None,
        })
        .chain(
            members
                .iter()
                .map(|m| (m.name.as_str(), m.user_id.as_str())),
        );
    for (name, id) in people {
        let name = fold(name);
        match first_id.get(&name) {
            Some(first) if *first != id => {
                twins.insert(name);
            }
            Some(_) => {}
            None => {
                first_id.insert(name, id);
            }
        }
    }
    twins
}

/// `#` and the first 6 characters of a user id.
fn short_id(id: &str) -> String {
    format!("#{}", id.chars().take(6).collect::<String>())
}

impl RowCache {
    /// Whether we are a global admin; rows offer what that allows.
    pub fn set_admin(&mut self, admin: bool) {
        if admin != self.admin {
            self.admin = admin;
            self.messages.clear();
            self.sends.clear();
        }
    }

    /// Builds the rows for the room's current timeline.
    pub fn build(&mut self, room: &ClientRoom) -> Rc<Vec<Rc<RowView>>> {
        let me = room.me().map(|a| (a.id.clone(), a.role));
        if me != self.me || self.my_name.as_deref() != room.me().map(|a| a.name.as_str()) {
            self.my_name = room.me().map(|a| a.name.clone());
            // Who we are decides "mine" and the offered actions of every row.
            self.messages.clear();
            self.sends.clear();
            self.me = me;
        }
        let timeline = room.timeline();
        self.twins = twin_names(&timeline, room.members());
        let mut messages = HashMap::with_capacity(self.messages.len() + 8);
        let mut sends = HashMap::new();
        let mut rows = Vec::new();
        for row in timeline {
            match row {
                Row::Message { message, pending } => {
                    let fp = Fingerprint {
                        author: message.author.name.clone(),
                        tagged: self.twins.contains(&fold(&message.author.name)),
                        edited_at: message.edited_at,
                        deleted: message.deleted,
                        text_len: message.text.len(),
                        pending: pending.map(|p| (p.client_id.clone(), status_kind(&p.status))),
                        answer: message.answer.as_ref().map(|a| {
                            // Votes change the tally; our own vote is among them.
                            let (up, down) = a.tally();
                            (a.state, a.version, up, down)
                        }),
                        // Who reacted changes the count, the hover title and "mine".
                        reactions: message
                            .reactions
                            .iter()
                            .map(|r| (r.emoji.clone(), r.by.len()))
                            .collect(),
                        replies: message.replies.map(|r| (r.count, r.last_at)),
                        pinned: message.pinned,
                    };
                    let view = match self.messages.remove(&message.seq) {
                        Some((old, view)) if old == fp => view,
                        _ => Rc::new(self.message_row(message, pending)),
                    };
                    rows.push(view.clone());
                    messages.insert(message.seq, (fp, view));
                }
                Row::Pending(p) => {
                    let kind = status_kind(&p.status);
                    let view = match self.sends.remove(&p.client_id) {
                        Some((old, view)) if old == kind => view,
                        _ => Rc::new(self.send_row(p, room.me())),
                    };
                    rows.push(view.clone());
                    sends.insert(p.client_id.clone(), (kind, view));
                }
            }
        }
        self.messages = messages;
        self.sends = sends;
        Rc::new(rows)
    }

    /// The open thread's rows: root, replies, then our unconfirmed replies. Built fresh (a
    /// thread is short) with the same rules as the timeline's rows.
    pub fn thread_rows(&self, room: &ClientRoom) -> Vec<Rc<RowView>> {
        let Some(thread) = room.thread() else {
            return Vec::new();
        };
        let mut rows: Vec<Rc<RowView>> = thread
            .message
            .iter()
            .chain(thread.replies.values())
            .map(|m| Rc::new(self.message_row(m, None)))
            .collect();
        rows.extend(
            room.thread_pending()
                .map(|p| Rc::new(self.send_row(p, room.me()))),
        );
        rows
    }

    /// The pinned list's rows.
    pub fn pinned_rows(&self, room: &ClientRoom) -> Vec<Rc<RowView>> {
        room.pinned()
            .unwrap_or_default()
            .iter()
            .map(|m| Rc::new(self.message_row(m, None)))
            .collect()
    }

    fn message_row(&self, m: &MessageView, pending: Option<&Pending>) -> RowView {
        let (me, role) = match &self.me {
            Some((id, role)) => (Some(id.as_str()), *role),
            None => (None, Role::Unknown),
        };
        let mine = me == Some(m.author.id.as_str());
        let mut text = m.text.clone();
        let mut status = Status::Sent;
        let mut pending_view = None;
        // Commands on answers (stop, regenerate, rate) show on the answer itself.
        if let Some(p) = pending.filter(|p| !p.op.is_command()) {
            status = pending_status(p);
            let kind = match &p.op {
                PendingOp::Edit { text: new, .. } => {
                    if status == Status::Pending {
                        text.clone_from(new);
                    }
                    PendingKind::Edit
                }
                PendingOp::Delete { .. } => PendingKind::Delete,
                _ => PendingKind::Send,
            };
            pending_view = Some((p.client_id.clone(), kind));
        }
        RowView {
            seq: Some(m.seq),
            client_id: m.client_id.clone(),
            author: m.author.name.clone(),
            author_id: m.author.id.clone(),
            author_tag: self
                .twins
                .contains(&fold(&m.author.name))
                .then(|| short_id(&m.author.id)),
            at: m.at,
            html: if m.deleted {
                "".into()
            } else {
                match citations(m) {
                    [] => render(&text),
                    cited => crate::cite::link_citations(&render(&text), cited, &day).into(),
                }
            },
            text,
            edited: m.edited_at.is_some(),
            deleted: m.deleted,
            mine,
            can_edit: !m.deleted && mine && may(role, self.admin, Action::EditOwn),
            can_delete: !m.deleted
                && ((mine && may(role, self.admin, Action::DeleteOwn))
                    // Deleting someone's message is moderating them: only above their role
                    // (as they posted; the room checks their role now).
                    || (may(role, self.admin, Action::DeleteAny)
                        && outranks(role, self.admin, m.author.role))),
            status,
            pending: pending_view,
            answer: m.answer.as_ref().map(|a| {
                let asker = me == Some(a.asker.as_str());
                let manage = asker || may(role, self.admin, Action::ManageAnswers);
                AnswerRow {
                    state: a.state,
                    version: a.version,
                    previous: a.previous.clone(),
                    error: a.error.as_ref().map(|e| e.message.clone()),
                    meta: a.meta.as_ref().filter(|m| !m.model.is_empty()).map(|m| {
                        format!(
                            "{} · {} · {} → {} tokens · first token {:.1} s · {:.1} s",
                            m.provider,
                            m.model,
                            m.tokens_in,
                            m.tokens_out,
                            f64::from(m.first_token_ms) / 1000.0,
                            f64::from(m.total_ms) / 1000.0
                        )
                    }),
                    can_stop: manage && a.state.is_active(),
                    can_regenerate: manage && !a.state.is_active() && !m.deleted,
                    can_rate: may(role, self.admin, Action::Rate)
                        && matches!(a.state, AnswerState::Done | AnswerState::Stopped),
                    tally: a.tally(),
                    mine: me.and_then(|id| a.votes.get(id).copied()),
                    citations: citations(m).into(),
                }
            }),
            reactions: reaction_views(m, me),
            replies: m.replies.map(|r| (r.count, r.last_at)),
            in_thread: m.thread,
            pinned: m.pinned,
            can_pin: !m.deleted && may(role, self.admin, Action::Pin),
            can_react: !m.deleted && may(role, self.admin, Action::React),
            mentions_me: !m.deleted
                && self
                    .my_name
                    .as_deref()
                    .is_some_and(|name| shared::mentions::mentions_name(&m.text, name)),
            attachments: if m.deleted {
                Rc::from([])
            } else {
                m.attachments.as_slice().into()
            },
            link: preview_link(&m.text, m.deleted),
        }
    }

    fn send_row(&self, p: &Pending, me: Option<&Author>) -> RowView {
        let (text, attachments) = match &p.op {
            PendingOp::Send { text, attachments }
            | PendingOp::Reply {
                text, attachments, ..
            } => (text.clone(), attachments.as_slice().into()),
            _ => (String::new(), Rc::from([])),
        };
        RowView {
            seq: None,
            client_id: p.client_id.clone(),
            author: me.map(|a| a.name.clone()).unwrap_or_else(|| "You".into()),
            author_id: me.map(|a| a.id.clone()).unwrap_or_default(),
            author_tag: me
                .filter(|a| self.twins.contains(&fold(&a.name)))
                .map(|a| short_id(&a.id)),
            at: p.created_at,
            html: render(&text),
            link: preview_link(&text, false),
            text,
            edited: false,
            deleted: false,
            mine: true,
            can_edit: false,
            can_delete: false,
            status: pending_status(p),
            pending: Some((p.client_id.clone(), PendingKind::Send)),
            answer: None,
            reactions: Vec::new(),
            replies: None,
            in_thread: None,
            pinned: false,
            can_pin: false,
            can_react: false,
            mentions_me: false,
            attachments,
        }
    }
}

/// What the room's polite live region says after the timeline changed (issue 13: new messages
/// are announced to screen readers), and the newest stored message it has now seen.
///
/// `seen` is the newest sequence number already accounted for, `None` before the room was
/// first shown live (the caller waits for that, so a cache or history still loading is not
/// news): the first look announces nothing (the reader is arriving, not being
/// interrupted), and neither do older pages loaded above, our own messages, or changes to
/// messages already seen (edits, reactions, a streaming answer's growth). Several new messages
/// at once are counted, with the newest spoken.
pub fn announcement(rows: &[Rc<RowView>], seen: Option<Seq>) -> (Option<String>, Option<Seq>) {
    let newest = rows.iter().filter_map(|r| r.seq).max();
    let Some(seen) = seen else {
        // Sequence numbers start at 1: an empty room has seen "0".
        return (None, Some(newest.unwrap_or(0)));
    };
    let fresh: Vec<&RowView> = rows
        .iter()
        .filter(|r| r.seq.is_some_and(|seq| seq > seen) && !r.mine && !r.deleted)
        .map(|r| r.as_ref())
        .collect();
    let newest = newest.map_or(seen, |n| n.max(seen));
    let Some(last) = fresh.iter().max_by_key(|r| r.seq) else {
        return (None, Some(newest));
    };
    let words: Vec<&str> = last.text.split_whitespace().collect();
    let mut said = words.join(" ");
    if said.chars().count() > ANNOUNCED_CHARS {
        said = said.chars().take(ANNOUNCED_CHARS).collect::<String>() + "…";
    }
    let what = match (said.is_empty(), last.attachments.len()) {
        (false, _) => format!("{}: {said}", last.author),
        (true, 0) => format!("{} is writing an answer", last.author),
        (true, 1) => format!("{} shared a file", last.author),
        (true, n) => format!("{} shared {n} files", last.author),
    };
    let text = match fresh.len() {
        1 => what,
        n => format!("{n} new messages. {what}"),
    };
    (Some(text), Some(newest))
}

/// How much of a message the live region reads out: enough to know what it is about.
const ANNOUNCED_CHARS: usize = 140;

#[cfg(test)]
mod tests {
    use super::*;
    use shared::client::CachedRoom;
    use shared::protocol::Role;

    fn author(id: &str) -> Author {
        Author {
            id: id.into(),
            name: id.to_uppercase(),
            role: Role::Member,
        }
    }

    fn message(seq: Seq, by: &str, text: &str) -> MessageView {
        MessageView {
            seq,
            at: seq as Millis,
            author: author(by),
            client_id: format!("c{seq}"),
            text: text.into(),
            edited_at: None,
            deleted: false,
            answer: None,
            thread: None,
            also_in_room: false,
            replies: None,
            reactions: Vec::new(),
            pinned: false,
            attachments: Vec::new(),
        }
    }

    fn room(messages: Vec<MessageView>, outbox: Vec<Pending>) -> ClientRoom {
        ClientRoom::from_cache(CachedRoom {
            head: messages.last().map(|m| m.seq),
            messages,
            outbox,
            me: Some(author("me")),
            ..CachedRoom::default()
        })
    }

    fn queued(id: &str, op: PendingOp) -> Pending {
        Pending {
            client_id: id.into(),
            op,
            created_at: 5,
            status: PendingStatus::Queued { not_before: 0 },
        }
    }

    #[test]
    fn a_rename_rebuilds_the_authors_old_rows_with_the_new_name() {
        let mut cache = RowCache::default();
        let mut r = room(vec![message(1, "bob", "hi")], vec![]);
        let before = cache.build(&r);
        assert_eq!(before[0].author, "BOB");
        r.apply(
            shared::protocol::ServerMessage::ProfileUpdated {
                member: shared::protocol::Member {
                    user_id: "bob".into(),
                    name: "Robert".into(),
                    avatar: None,
                },
            },
            0,
        );
        let after = cache.build(&r);
        assert_eq!(after[0].author, "Robert");
        assert_eq!(after[0].author_id, "bob");
    }

    #[test]
    fn two_authors_sharing_a_name_are_told_apart_by_a_short_id_and_others_are_not_tagged() {
        let mut cache = RowCache::default();
        let twin = |seq: Seq, id: &str| MessageView {
            author: Author {
                id: id.into(),
                name: "Sam".into(),
                role: Role::Member,
            },
            ..message(seq, id, "hi")
        };
        let r = room(
            vec![
                twin(1, "a1b2c3d4e5"),
                twin(2, "f6e5d4c3b2"),
                message(3, "bob", "yo"),
            ],
            vec![],
        );
        let rows = cache.build(&r);
        assert_eq!(rows[0].author, "Sam");
        assert_eq!(rows[0].author_tag.as_deref(), Some("#a1b2c3"));
        assert_eq!(rows[1].author_tag.as_deref(), Some("#f6e5d4"));
        assert_eq!(rows[2].author_tag, None, "a unique name needs no tag");

        // A twin known only from the member list (their messages not loaded) counts too.
        let mut cache = RowCache::default();
        let mut r = room(vec![twin(1, "a1b2c3d4e5")], vec![]);
        assert_eq!(cache.build(&r)[0].author_tag, None);
        r.apply(
            shared::protocol::ServerMessage::Members {
                members: vec![
                    shared::protocol::Member {
                        user_id: "a1b2c3d4e5".into(),
                        name: "Sam".into(),
                        avatar: None,
                    },
                    shared::protocol::Member {
                        user_id: "0000ffff".into(),
                        name: "sam".into(),
                        avatar: None,
                    },
                ],
            },
            0,
        );
        assert_eq!(
            cache.build(&r)[0].author_tag.as_deref(),
            Some("#a1b2c3"),
            "names differing only in case are twins too"
        );
    }

    #[test]
    fn unchanged_rows_are_the_same_rc_after_a_rebuild() {
        let mut cache = RowCache::default();
        let r = room(
            vec![message(1, "bob", "hi"), message(2, "me", "yo")],
            vec![],
        );
        let first = cache.build(&r);
        let second = cache.build(&r);
        assert!(Rc::ptr_eq(&first[0], &second[0]));
        assert!(Rc::ptr_eq(&first[1], &second[1]));
    }

    #[test]
    fn an_edited_message_gets_a_new_row_with_the_new_html() {
        let mut cache = RowCache::default();
        let first = cache.build(&room(vec![message(1, "bob", "hi")], vec![]));
        let mut edited = message(1, "bob", "**bold**");
        edited.edited_at = Some(9);
        let second = cache.build(&room(vec![edited], vec![]));
        assert!(!Rc::ptr_eq(&first[0], &second[0]));
        assert!(second[0].html.contains("<strong>bold</strong>"));
        assert!(second[0].edited);
    }

    #[test]
    fn markdown_html_in_a_message_is_rendered_as_text() {
        let mut cache = RowCache::default();
        let rows = cache.build(&room(
            vec![message(1, "bob", "<script>x()</script>")],
            vec![],
        ));
        assert!(!rows[0].html.contains("<script>"));
        assert!(rows[0].html.contains("&lt;script&gt;"));
    }

    #[test]
    fn only_own_messages_offer_edit_and_delete_to_a_member() {
        let mut cache = RowCache::default();
        let rows = cache.build(&room(
            vec![message(1, "bob", "a"), message(2, "me", "b")],
            vec![],
        ));
        assert!(!rows[0].can_edit && !rows[0].can_delete && !rows[0].mine);
        assert!(rows[1].can_edit && rows[1].can_delete && rows[1].mine);
    }

    #[test]
    fn a_pending_send_is_a_pending_row_after_the_stored_messages() {
        let mut cache = RowCache::default();
        let rows = cache.build(&room(
            vec![message(1, "bob", "a")],
            vec![queued(
                "x1",
                PendingOp::Send {
                    text: "hey".into(),
                    attachments: Vec::new(),
                },
            )],
        ));
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].status, Status::Pending);
        assert_eq!(rows[1].key(), "p-x1");
        assert_eq!(rows[1].author, "ME");
    }

    #[test]
    fn a_failed_send_carries_the_rooms_message() {
        let mut p = queued(
            "x1",
            PendingOp::Send {
                text: "hey".into(),
                attachments: Vec::new(),
            },
        );
        p.status = PendingStatus::Failed {
            code: shared::ErrorCode::TooLarge,
            message: "too long".into(),
        };
        let rows = RowCache::default().build(&room(vec![], vec![p]));
        assert_eq!(rows[0].status, Status::Failed("too long".into()));
        assert_eq!(rows[0].status.attr(), "failed");
    }

    #[test]
    fn a_pending_edit_shows_its_new_text_until_confirmed() {
        let rows = RowCache::default().build(&room(
            vec![message(1, "me", "old")],
            vec![queued(
                "e1",
                PendingOp::Edit {
                    target: 1,
                    text: "new".into(),
                },
            )],
        ));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].text, "new");
        assert_eq!(rows[0].status, Status::Pending);
        assert_eq!(rows[0].pending, Some(("e1".into(), PendingKind::Edit)));
        assert_eq!(
            rows[0].client_id, "c1",
            "data-client-id stays the message's own"
        );
    }

    #[test]
    fn a_deleted_message_has_no_body_and_no_actions() {
        let mut m = message(1, "me", "");
        m.deleted = true;
        let rows = RowCache::default().build(&room(vec![m], vec![]));
        assert!(rows[0].deleted && rows[0].html.is_empty());
        assert!(!rows[0].can_edit && !rows[0].can_delete);
    }

    #[test]
    fn a_row_shows_reactions_with_ours_marked_and_who_reacted_on_hover() {
        let mut m = message(1, "bob", "party");
        m.reactions = vec![shared::protocol::Reaction {
            emoji: "🎉".into(),
            by: vec![
                shared::protocol::Member {
                    user_id: "bob".into(),
                    name: "BOB".into(),
                    avatar: None,
                },
                shared::protocol::Member {
                    user_id: "me".into(),
                    name: "ME".into(),
                    avatar: None,
                },
            ],
        }];
        let rows = RowCache::default().build(&room(vec![m], vec![]));
        assert_eq!(
            rows[0].reactions,
            vec![ReactionView {
                emoji: "🎉".into(),
                count: 2,
                mine: true,
                who: "BOB, ME".into(),
            }]
        );
        assert!(rows[0].can_react);
        assert!(!rows[0].can_pin, "members do not pin");
    }

    #[test]
    fn a_global_admin_is_offered_deleting_and_pinning_anyones_message_as_the_server_allows() {
        let r = room(vec![message(1, "bob", "spam")], vec![]);
        let mut cache = RowCache::default();
        let rows = cache.build(&r);
        assert!(!rows[0].can_delete && !rows[0].can_pin, "a member may not");
        cache.set_admin(true);
        let rows = cache.build(&r);
        assert!(rows[0].can_delete && rows[0].can_pin);
        assert!(!rows[0].can_edit, "not even an admin edits another's words");
    }

    #[test]
    fn a_moderator_is_offered_deleting_only_messages_of_members_below_them() {
        let mut by_owner = message(1, "bob", "owner's");
        by_owner.author.role = Role::Owner;
        let mut by_mod = message(2, "cy", "moderator's");
        by_mod.author.role = Role::Moderator;
        let by_member = message(3, "dee", "member's");
        let mut me = author("me");
        me.role = Role::Moderator;
        let r = ClientRoom::from_cache(CachedRoom {
            head: Some(3),
            messages: vec![by_owner, by_mod, by_member],
            me: Some(me),
            ..CachedRoom::default()
        });
        let rows = RowCache::default().build(&r);
        assert!(!rows[0].can_delete, "not the owner's");
        assert!(!rows[1].can_delete, "not another moderator's");
        assert!(rows[2].can_delete, "a member's");
    }

    #[test]
    fn a_row_that_mentions_us_is_marked_and_others_are_not() {
        let rows = RowCache::default().build(&room(
            vec![message(1, "bob", "hi @me!"), message(2, "bob", "hi @meg")],
            vec![],
        ));
        assert!(rows[0].mentions_me);
        assert!(!rows[1].mentions_me);
    }

    #[test]
    fn a_finished_answer_links_its_citations_and_one_being_written_shows_plain_markers() {
        let answer = |state: AnswerState, meta: Option<shared::protocol::AnswerMeta>| MessageView {
            answer: Some(shared::protocol::AnswerView {
                prompt: 1,
                asker: "me".into(),
                state,
                version: 1,
                previous: Vec::new(),
                error: None,
                meta,
                votes: Default::default(),
            }),
            ..message(2, "assistant", "Friday, says Ann [1].")
        };
        let cited = shared::protocol::AnswerMeta {
            citations: vec![Citation {
                n: 1,
                seq: 1,
                author: "Ann".into(),
                at: 1_772_409_600_000,
                thread: None,
            }],
            ..Default::default()
        };
        let mut cache = RowCache::default();
        let writing = cache.build(&room(
            vec![
                message(1, "ann", "Friday"),
                answer(AnswerState::Streaming, None),
            ],
            vec![],
        ));
        assert!(!writing[1].html.contains("<button"), "{}", writing[1].html);
        let done = cache.build(&room(
            vec![
                message(1, "ann", "Friday"),
                answer(AnswerState::Done, Some(cited)),
            ],
            vec![],
        ));
        assert!(
            done[1]
                .html
                .contains(r#"aria-label="Source 1: Ann, 2026-03-02">1</button>"#),
            "{}",
            done[1].html
        );
        let a = done[1].answer.as_ref().expect("an answer row");
        assert_eq!(a.citations.len(), 1);
        assert_eq!(a.citations[0].seq, 1);
    }

    #[test]
    fn a_new_reaction_rebuilds_only_its_row() {
        let mut cache = RowCache::default();
        let first = cache.build(&room(
            vec![message(1, "bob", "a"), message(2, "bob", "b")],
            vec![],
        ));
        let mut reacted = message(2, "bob", "b");
        reacted.reactions = vec![shared::protocol::Reaction {
            emoji: "👍".into(),
            by: vec![shared::protocol::Member {
                user_id: "bob".into(),
                name: "BOB".into(),
                avatar: None,
            }],
        }];
        let second = cache.build(&room(vec![message(1, "bob", "a"), reacted], vec![]));
        assert!(Rc::ptr_eq(&first[0], &second[0]));
        assert!(!Rc::ptr_eq(&first[1], &second[1]));
        assert_eq!(second[1].reactions.len(), 1);
    }
    #[test]
    fn the_first_look_at_a_room_announces_nothing_and_remembers_the_newest_message() {
        let mut cache = RowCache::default();
        let rows = cache.build(&room(
            vec![message(1, "bob", "hi"), message(2, "ann", "yo")],
            vec![],
        ));
        assert_eq!(announcement(&rows, None), (None, Some(2)));
        assert_eq!(announcement(&[], None), (None, Some(0)));
    }

    #[test]
    fn a_new_message_from_someone_else_is_announced_with_its_author_and_text() {
        let mut cache = RowCache::default();
        let rows = cache.build(&room(
            vec![
                message(1, "bob", "hi"),
                message(2, "ann", "lunch  at\nnoon?"),
            ],
            vec![],
        ));
        assert_eq!(
            announcement(&rows, Some(1)),
            (Some("ANN: lunch at noon?".into()), Some(2))
        );
        // Nothing new since: silence.
        assert_eq!(announcement(&rows, Some(2)), (None, Some(2)));
    }

    #[test]
    fn our_own_messages_and_older_history_are_not_announced_but_several_new_ones_are_counted() {
        let mut cache = RowCache::default();
        let mut mine = message(3, "me", "my own");
        mine.client_id = "mine".into();
        let rows = cache.build(&room(vec![message(1, "bob", "old"), mine], vec![]));
        assert_eq!(announcement(&rows, Some(2)), (None, Some(3)));
        let rows = cache.build(&room(
            vec![
                message(1, "bob", "older page"),
                message(5, "ann", "a"),
                message(6, "bob", "b"),
            ],
            vec![],
        ));
        assert_eq!(
            announcement(&rows, Some(4)),
            (Some("2 new messages. BOB: b".into()), Some(6))
        );
    }

    #[test]
    fn a_long_message_is_read_out_only_in_part() {
        let mut cache = RowCache::default();
        let long = "word ".repeat(100);
        let rows = cache.build(&room(
            vec![message(1, "bob", "x"), message(2, "ann", &long)],
            vec![],
        ));
        let (said, _) = announcement(&rows, Some(1));
        let said = said.unwrap();
        assert!(said.starts_with("ANN: word word"));
        assert!(said.ends_with('…'));
        assert!(said.chars().count() <= "ANN: ".len() + ANNOUNCED_CHARS + 1);
    }
}
