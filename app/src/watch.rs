//! Live unread counts for the room list: one watching socket per joined room that is not
//! open ([`ClientMessage::Watch`], in its URL). The room answers with the counts, then sends a small notice
//! for each message posted or deleted, which [`UnreadTracker`] turns into counts. The sockets
//! hibernate with the room, so an idle watch costs the server nothing.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::rc::{Rc, Weak};

use gloo_timers::callback::{Interval, Timeout};
use shared::protocol::{
    close, first_frame_query, ClientMessage, ServerMessage, UnreadCounts, PING_FRAME,
};
use shared::unread::UnreadTracker;
use shared::PROTOCOL_VERSION;
use yew::Callback;

use crate::backoff;
use crate::conn::{drop_later, socket_url, Socket, PING_EVERY_MS};

/// At most this many rooms are watched (the browser caps sockets per page); the rest keep the
/// room list's periodic counts.
pub const MAX_WATCHED: usize = 50;

/// A change of one room's live counts: `None` when its watch is down (use the room list's).
pub type CountsChanged = Callback<(String, Option<UnreadCounts>)>;

/// The watched rooms.
pub struct Watchers {
    me: String,
    on_counts: CountsChanged,
    rooms: HashMap<String, RoomWatch>,
}

impl Watchers {
    /// Watches nothing yet; counts for user `me` are reported to `on_counts`.
    pub fn new(me: String, on_counts: CountsChanged) -> Self {
        Watchers {
            me,
            on_counts,
            rooms: HashMap::new(),
        }
    }

    /// Whose counts these are.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// Watches exactly these rooms (up to [`MAX_WATCHED`]): opens the new ones and closes the
    /// ones no longer wanted.
    pub fn set(&mut self, slugs: BTreeSet<String>) {
        let wanted: BTreeSet<String> = slugs.into_iter().take(MAX_WATCHED).collect();
        self.rooms.retain(|slug, _| wanted.contains(slug));
        for slug in wanted {
            if !self.rooms.contains_key(&slug) {
                let watch = RoomWatch::start(slug.clone(), &self.me, self.on_counts.clone());
                self.rooms.insert(slug, watch);
            }
        }
    }
}

struct State {
    slug: String,
    tracker: UnreadTracker,
    on_counts: CountsChanged,
    socket: Option<Socket>,
    attempt: u32,
    retry: Option<Timeout>,
    _ping: Option<Interval>,
    stopped: bool,
}

/// One room's watch; dropping it closes the socket and reports the counts gone.
struct RoomWatch(Rc<RefCell<State>>);

impl RoomWatch {
    fn start(slug: String, me: &str, on_counts: CountsChanged) -> Self {
        let state = Rc::new(RefCell::new(State {
            slug,
            tracker: UnreadTracker::new(me),
            on_counts,
            socket: None,
            attempt: 0,
            retry: None,
            _ping: None,
            stopped: false,
        }));
        // Hibernating rooms answer pings themselves; the ping keeps proxies from timing the
        // idle socket out.
        let weak = Rc::downgrade(&state);
        state.borrow_mut()._ping = Some(Interval::new(PING_EVERY_MS as u32, move || {
            if let Some(state) = weak.upgrade() {
                if let Some(socket) = &state.borrow().socket {
                    let _ = socket.ws.send_with_str(PING_FRAME);
                }
            }
        }));
        connect(&state);
        RoomWatch(state)
    }
}

impl Drop for RoomWatch {
    fn drop(&mut self) {
        let mut state = self.0.borrow_mut();
        state.stopped = true;
        state.retry = None;
        drop_later(state.socket.take());
        state.on_counts.emit((state.slug.clone(), None));
    }
}

fn connect(state: &Rc<RefCell<State>>) {
    let (frame, closed) = (Rc::downgrade(state), Rc::downgrade(state));
    // The watch rides in the socket URL: the room answers with the counts as it accepts.
    let watch = ClientMessage::Watch {
        protocol: PROTOCOL_VERSION,
    };
    let url = format!(
        "{}?{}",
        socket_url(&state.borrow().slug),
        first_frame_query(&watch)
    );
    let socket = Socket::open(
        &url,
        || {},
        move |text| on_frame(&frame, text),
        move |code, _| on_close(&closed, code),
    );
    let retry = socket.is_none();
    state.borrow_mut().socket = socket;
    if retry {
        schedule_retry(state);
    }
}

fn on_frame(state: &Weak<RefCell<State>>, text: &str) {
    let Some(state) = state.upgrade() else { return };
    let Ok(message) = ServerMessage::from_json(text) else {
        return;
    };
    let mut s = state.borrow_mut();
    if matches!(message, ServerMessage::Unread { .. }) {
        s.attempt = 0;
    }
    if s.tracker.apply(&message) {
        let (slug, counts, on_counts) = (s.slug.clone(), s.tracker.counts(), s.on_counts.clone());
        drop(s);
        on_counts.emit((slug, counts));
    }
}

fn on_close(state: &Weak<RefCell<State>>, code: u16) {
    let Some(state) = state.upgrade() else { return };
    let (slug, on_counts) = {
        let mut s = state.borrow_mut();
        drop_later(s.socket.take());
        // Counts missed while down come with the next watch's first frame; until then the
        // room list's own counts show.
        s.tracker = UnreadTracker::new(s.tracker.me());
        (s.slug.clone(), s.on_counts.clone())
    };
    on_counts.emit((slug, None));
    if code == close::UNSUPPORTED_PROTOCOL {
        crate::update::announce();
    }
    if !close::is_terminal(code) {
        schedule_retry(&state);
    }
}

fn schedule_retry(state: &Rc<RefCell<State>>) {
    let mut s = state.borrow_mut();
    if s.stopped {
        return;
    }
    let delay = backoff::delay_ms(s.attempt, js_sys::Math::random());
    s.attempt = s.attempt.saturating_add(1);
    let weak = Rc::downgrade(state);
    s.retry = Some(Timeout::new(delay as u32, move || {
        if let Some(state) = weak.upgrade() {
            connect(&state);
        }
    }));
}
