//! The room connection: owns the WebSocket, the timers and the offline cache for one open room,
//! and feeds everything through [`ClientRoom`]. Components read from it and call its actions;
//! it asks them to re-render through `notify`.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use gloo_events::EventListener;
use gloo_timers::callback::{Interval, Timeout};
use shared::client::{CachedRoom, ClientRoom, PendingOp, Phase};
use shared::limits::validate_text;
use shared::protocol::{
    close, decode_frames, first_frame_query, ClientMessage, Millis, Seq, ServerMessage,
    BATCH_QUERY, PING_FRAME,
};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{CloseEvent, MessageEvent, WebSocket};
use yew::Callback;

use crate::backoff::{self, Throttle, TYPING_EVERY_MS};
use crate::cache::Cache;
use crate::rows::{RowAction, RowCache, RowView};
use crate::status::{after_refusal, banner_state, ended, AfterRefusal, BannerState, Ended, Link};
use crate::web::{self, now, warn};

/// Keep-alive interval while a socket is open.
pub const PING_EVERY_MS: Millis = 30_000;
/// A socket that delivered nothing (not even a pong) for this long is dead.
pub const DEAD_AFTER_MS: Millis = 75_000;
/// How long a room waits for the offline cache before it connects without it.
const CACHE_WAIT_MS: u32 = 3_000;
/// Message changes are written to the cache at most this often.
const PERSIST_DEBOUNCE_MS: u32 = 250;

/// A WebSocket and its handlers; dropping it detaches them and closes the socket.
pub(crate) struct Socket {
    pub(crate) ws: WebSocket,
    _on_open: Closure<dyn FnMut()>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    /// Opens a socket to `url` with these handlers (text frames only), or `None` if the
    /// browser refuses the URL.
    pub(crate) fn open(
        url: &str,
        on_open: impl FnMut() + 'static,
        mut on_text: impl FnMut(&str) + 'static,
        mut on_close: impl FnMut(u16, String) + 'static,
    ) -> Option<Socket> {
        let ws = WebSocket::new(url).ok()?;
        let on_open = Closure::<dyn FnMut()>::new(on_open);
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            if let Some(text) = e.data().as_string() {
                on_text(&text);
            }
        });
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
            on_close(e.code(), e.reason());
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Some(Socket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        if self.ws.ready_state() <= WebSocket::OPEN {
            let _ = self.ws.close_with_code(1000);
        }
    }
}

struct Conn {
    slug: String,
    room: ClientRoom,
    rows: RowCache,
    rows_built: Option<Rc<Vec<Rc<RowView>>>>,
    socket: Option<Socket>,
    open: bool,
    generation: u32,
    attempt: u32,
    ever_live: bool,
    link: Link,
    last_frame: Millis,
    last_ping: Millis,
    typing: Throttle,
    typing_shown: usize,
    /// Whose room this is: the cache and outbox are theirs alone.
    user_id: String,
    cache: Option<Cache>,
    /// Client ids of the outbox records this tab last wrote or loaded: the ones that have left
    /// the outbox since are confirmed (or discarded) and their records are deleted.
    persisted_outbox: Vec<String>,
    reconnect_timer: Option<Timeout>,
    persist_timer: Option<Timeout>,
    /// Connects without the cache if reading it takes longer than [`CACHE_WAIT_MS`].
    cache_fallback: Option<Timeout>,
    tick: Option<Interval>,
    listeners: Vec<EventListener>,
    closed: bool,
    notify: Callback<()>,
    on_unauthorized: Callback<()>,
    /// The first unread message when the room first went live (where the "New" divider and
    /// "jump to first unread" point; our read position moves on as soon as we have seen it).
    unread_from: Option<Seq>,
    unread_known: bool,
    /// The pinned list is shown.
    pins_open: bool,
}

/// A shared handle to one open room.
#[derive(Clone)]
pub struct RoomHandle(Rc<RefCell<Conn>>);

impl PartialEq for RoomHandle {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

/// Drops a socket after the current event handler returns: its closures may be running.
impl Conn {
    /// The socket is gone (closed, dead, or given up on): mark the room disconnected, which
    /// queues its in-flight mutations again, and release the socket.
    fn lose_socket(&mut self) {
        let socket = self.socket.take();
        self.open = false;
        self.room.disconnected();
        self.rows_built = None;
        drop_later(socket);
    }
}

/// Drops a socket after the current handler returns (it may be one of the socket's own).
pub(crate) fn drop_later(socket: Option<Socket>) {
    if let Some(socket) = socket {
        wasm_bindgen_futures::spawn_local(async move { drop(socket) });
    }
}

pub(crate) fn socket_url(slug: &str) -> String {
    let location = web::window().location();
    let scheme = match location.protocol().as_deref() {
        Ok("https:") => "wss:",
        _ => "ws:",
    };
    let host = location.host().unwrap_or_default();
    let slug = String::from(js_sys::encode_uri_component(slug));
    format!("{scheme}//{host}/api/rooms/{slug}/ws")
}

/// A joined room's socket URL: it accepts batched frames, which [`RoomHandle`] decodes, and
/// carries the hello, so the room sends the welcome as the socket opens (no round trip).
fn room_socket_url(slug: &str, hello: &ClientMessage) -> String {
    format!(
        "{}?{BATCH_QUERY}&{}",
        socket_url(slug),
        first_frame_query(hello)
    )
}

impl RoomHandle {
    /// `user_id`'s view of a room, not connected yet; [`RoomHandle::start`] loads their cache
    /// and connects.
    pub fn new(
        slug: String,
        user_id: String,
        notify: Callback<()>,
        on_unauthorized: Callback<()>,
    ) -> Self {
        RoomHandle(Rc::new(RefCell::new(Conn {
            slug,
            user_id,
            room: ClientRoom::new(),
            rows: RowCache::default(),
            rows_built: None,
            socket: None,
            open: false,
            generation: 0,
            attempt: 0,
            ever_live: false,
            link: Link::Idle,
            last_frame: 0,
            last_ping: 0,
            typing: Throttle::default(),
            typing_shown: 0,
            cache: None,
            persisted_outbox: Vec::new(),
            reconnect_timer: None,
            persist_timer: None,
            cache_fallback: None,
            tick: None,
            listeners: Vec::new(),
            closed: false,
            notify,
            on_unauthorized,
            unread_from: None,
            unread_known: false,
            pins_open: false,
        })))
    }

    fn weak(&self) -> Weak<RefCell<Conn>> {
        Rc::downgrade(&self.0)
    }

    fn upgrade(weak: &Weak<RefCell<Conn>>) -> Option<RoomHandle> {
        weak.upgrade().map(RoomHandle)
    }

    fn notify(&self) {
        let notify = self.0.borrow().notify.clone();
        notify.emit(());
    }

    /// Renders the cached room at once, then connects (without the cache if IndexedDB has not
    /// answered within [`CACHE_WAIT_MS`]: a stuck browser database must not keep a room from
    /// opening).
    pub fn start(&self) {
        self.listen_to_window();
        let weak = self.weak();
        self.0.borrow_mut().tick = Some(Interval::new(1_000, move || {
            if let Some(h) = Self::upgrade(&weak) {
                h.on_tick();
            }
        }));
        let weak = self.weak();
        self.0.borrow_mut().cache_fallback = Some(Timeout::new(CACHE_WAIT_MS, move || {
            if let Some(h) = Self::upgrade(&weak) {
                web::warn("the offline cache did not answer in time; connecting without it");
                h.connect();
            }
        }));
        let this = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let (slug, user_id) = {
                let c = this.0.borrow();
                (c.slug.clone(), c.user_id.clone())
            };
            let cache = Cache::open(&user_id).await;
            let cached = match &cache {
                Some(cache) => cache.load(&slug).await,
                None => None,
            };
            {
                let mut c = this.0.borrow_mut();
                if c.closed {
                    return;
                }
                c.cache_fallback = None;
                c.cache = cache;
                if let Some(cached) = cached {
                    c.persisted_outbox =
                        cached.outbox.iter().map(|p| p.client_id.clone()).collect();
                    if c.link != Link::Idle {
                        // The fallback connected first, so the room is ahead of the cache: only
                        // the cache's unsent mutations join the outbox (same client ids, so the
                        // room de-duplicates any it already has).
                        for p in cached.outbox {
                            if !c.room.outbox().any(|q| q.client_id == p.client_id) {
                                c.room.queue(p.client_id, p.op, p.created_at);
                            }
                        }
                        Self::flush(&mut c);
                    } else {
                        let mut restored = ClientRoom::from_cache(cached);
                        // Anything the user queued while the cache was loading comes after it.
                        for p in c.room.outbox() {
                            restored.queue(p.client_id.clone(), p.op.clone(), p.created_at);
                        }
                        c.room = restored;
                        c.rows_built = None;
                    }
                }
            }
            this.notify();
            this.connect();
        });
    }

    fn listen_to_window(&self) {
        let window = web::window();
        let weak = self.weak();
        let online = EventListener::new(&window, "online", move |_| {
            if let Some(h) = Self::upgrade(&weak) {
                h.reconnect_if_down();
                h.notify();
            }
        });
        let weak = self.weak();
        let offline = EventListener::new(&window, "offline", move |_| {
            if let Some(h) = Self::upgrade(&weak) {
                h.notify();
            }
        });
        let weak = self.weak();
        let document = window.document().expect("a window has a document");
        let visible = EventListener::new(&document, "visibilitychange", move |_| {
            let shown = web::window()
                .document()
                .is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Visible);
            if let (true, Some(h)) = (shown, Self::upgrade(&weak)) {
                h.reconnect_if_down();
            }
        });
        let weak = self.weak();
        let focus = EventListener::new(&window, "focus", move |_| {
            if let Some(h) = Self::upgrade(&weak) {
                h.focused();
            }
        });
        self.0.borrow_mut().listeners = vec![online, offline, visible, focus];
    }

    /// Closes the socket, stops the timers and writes the cache (the page is leaving the room).
    pub fn close(&self) {
        let socket = {
            let mut c = self.0.borrow_mut();
            c.closed = true;
            c.reconnect_timer = None;
            c.tick = None;
            c.listeners.clear();
            c.persist_timer = None;
            c.socket.take()
        };
        self.persist_now();
        drop_later(socket);
    }

    fn reconnect_if_down(&self) {
        let down = {
            let c = self.0.borrow();
            c.socket.is_none() && !c.closed && !c.link.is_final() && c.link != Link::Idle
        };
        if down {
            self.connect();
        }
    }

    /// Whether we are a global admin (rows offer what that allows).
    pub fn set_admin(&self, admin: bool) {
        {
            let mut c = self.0.borrow_mut();
            c.rows.set_admin(admin);
            c.rows_built = None;
        }
        self.notify();
    }

    /// Connects now, skipping any backoff wait.
    pub fn retry_now(&self) {
        self.reconnect_if_down();
    }

    fn connect(&self) {
        let mut c = self.0.borrow_mut();
        c.reconnect_timer = None;
        if c.closed || c.socket.is_some() || c.link.is_final() {
            return;
        }
        let generation = c.generation.wrapping_add(1);
        let (open, frame, closed) = (self.weak(), self.weak(), self.weak());
        let Some(socket) = Socket::open(
            &room_socket_url(&c.slug, &c.room.hello()),
            move || {
                if let Some(h) = Self::upgrade(&open) {
                    h.on_open(generation);
                }
            },
            move |text| {
                if let Some(h) = Self::upgrade(&frame) {
                    h.on_frame(generation, text);
                }
            },
            move |code, reason| {
                if let Some(h) = Self::upgrade(&closed) {
                    h.on_close(generation, code, reason);
                }
            },
        ) else {
            drop(c);
            self.schedule_reconnect();
            return;
        };
        c.generation = generation;
        c.socket = Some(socket);
        c.open = false;
        c.link = Link::Connecting;
        drop(c);
        self.notify();
    }

    fn schedule_reconnect(&self) {
        let mut c = self.0.borrow_mut();
        if c.closed || c.link.is_final() {
            return;
        }
        let delay = backoff::delay_ms(c.attempt, js_sys::Math::random());
        c.attempt = c.attempt.saturating_add(1);
        c.link = Link::Waiting(now() + delay, None);
        let weak = self.weak();
        c.reconnect_timer = Some(Timeout::new(delay as u32, move || {
            if let Some(h) = Self::upgrade(&weak) {
                h.connect();
            }
        }));
    }

    fn send_raw(c: &Conn, text: &str) {
        if let (Some(socket), true) = (&c.socket, c.open) {
            // A failed send means the socket is closing; its close event handles the rest.
            let _ = socket.ws.send_with_str(text);
        }
    }

    fn send_frame(c: &Conn, frame: &ClientMessage) {
        if let Ok(text) = serde_json::to_string(frame) {
            Self::send_raw(c, &text);
        }
    }

    /// Sends whatever the outbox allows now.
    fn flush(c: &mut Conn) {
        let frames = c.room.take_frames(now());
        for frame in &frames {
            Self::send_frame(c, frame);
        }
    }

    fn on_open(&self, generation: u32) {
        {
            let mut c = self.0.borrow_mut();
            if c.generation != generation || c.socket.is_none() {
                return;
            }
            c.open = true;
            let t = now();
            c.last_frame = t;
            c.last_ping = t;
            // Its hello went in the socket URL (nothing came in since: no socket was open).
            c.room.connect();
        }
        self.notify();
    }

    /// One WebSocket frame: a message, or a batch of them (we ask for batches in
    /// [`room_socket_url`]), applied in order.
    fn on_frame(&self, generation: u32, text: &str) {
        let messages = match decode_frames(text) {
            Ok(messages) => messages,
            Err(e) => {
                warn(&format!("ignoring an unreadable frame: {e}"));
                return;
            }
        };
        for message in messages {
            // A message that resynced the room dropped this socket: the rest of the batch
            // belongs to it and is not applied (the generation moved on).
            self.on_message(generation, message);
        }
    }

    fn on_message(&self, generation: u32, message: ServerMessage) {
        let mut c = self.0.borrow_mut();
        if c.generation != generation {
            return;
        }
        let t = now();
        c.last_frame = t;
        if matches!(message, ServerMessage::Pong {} | ServerMessage::Unknown) {
            return;
        }
        let applied = c.room.apply(message, t);
        if applied.resync {
            // Our copy cannot be reconciled with the room: start over from its latest page,
            // keeping only the sends the user is still waiting for.
            let cached = c.room.to_cache();
            c.room = ClientRoom::from_cache(CachedRoom {
                outbox: cached.outbox,
                me: cached.me,
                room: cached.room,
                ..CachedRoom::default()
            });
            c.lose_socket();
            drop(c);
            self.persist_now();
            self.connect();
            return;
        }
        if applied.went_live {
            c.attempt = 0;
            c.ever_live = true;
            c.link = Link::Live;
            if !c.unread_known {
                c.unread_known = true;
                c.unread_from = c.room.first_unread();
            }
            // Fresh members for mention autocomplete.
            Self::send_frame(&c, &ClientMessage::Members {});
        }
        for request in &applied.requests {
            Self::send_frame(&c, request);
        }
        if applied.messages_changed {
            Self::mark_read_if_seen(&mut c);
        }
        Self::flush(&mut c);
        if applied.messages_changed || applied.outbox_changed {
            c.rows_built = None;
        }
        drop(c);
        if applied.outbox_changed {
            self.persist_now();
        } else if applied.messages_changed {
            self.persist_soon();
        }
        self.notify();
    }

    fn on_close(&self, generation: u32, code: u16, reason: String) {
        let (unauthorized, never_opened) = {
            let mut c = self.0.borrow_mut();
            if c.generation != generation {
                return;
            }
            let never_opened = !c.open;
            c.lose_socket();
            if close::is_terminal(code) {
                c.link = Link::Stopped(code, reason);
                c.reconnect_timer = None;
            }
            if code == close::UNSUPPORTED_PROTOCOL {
                crate::update::announce();
            }
            (code == close::UNAUTHORIZED, never_opened)
        };
        if !self.0.borrow().link.is_final() {
            self.schedule_reconnect();
            if never_opened && web::online() {
                // Refused before it opened: the browser hides the upgrade's answer (this
                // close is 1006 whatever the reason), so ask the room why, once per attempt.
                self.ask_why_refused(generation);
            }
        }
        if unauthorized {
            let cb = self.0.borrow().on_unauthorized.clone();
            cb.emit(());
        }
        self.persist_now();
        self.notify();
    }

    /// Asks the room whether it would admit us now, after the socket of `generation` closed
    /// before it opened; the answer is read by [`RoomHandle::on_admission`].
    fn ask_why_refused(&self, generation: u32) {
        let slug = self.0.borrow().slug.clone();
        let weak = self.weak();
        wasm_bindgen_futures::spawn_local(async move {
            let answer = crate::api::admission(&slug).await;
            if let Some(h) = Self::upgrade(&weak) {
                h.on_admission(generation, answer);
            }
        });
    }

    /// The room's admission answer: a refusal for good stops the reconnects and says why; an
    /// ended session goes to the name prompt; anything passing leaves the backoff running.
    fn on_admission(&self, generation: u32, answer: Result<(), crate::api::ApiError>) {
        let after = after_refusal(
            answer
                .as_ref()
                .map(|_| ())
                .map_err(|e| (e.code, e.message.as_str())),
        );
        let unauthorized = {
            let mut c = self.0.borrow_mut();
            // Only while still waiting after that attempt: a newer socket speaks for itself.
            if c.closed || c.generation != generation || c.socket.is_some() || c.link.is_final() {
                return;
            }
            match after {
                AfterRefusal::Stop(code, message) => {
                    c.link = Link::Refused(code, message);
                    c.reconnect_timer = None;
                    false
                }
                AfterRefusal::SessionEnded => {
                    c.link = Link::Stopped(
                        close::UNAUTHORIZED,
                        shared::ErrorCode::Unauthorized.as_str().into(),
                    );
                    c.reconnect_timer = None;
                    true
                }
                AfterRefusal::KeepTrying(note) => {
                    if let Link::Waiting(_, shown) = &mut c.link {
                        *shown = note;
                    }
                    false
                }
            }
        };
        if unauthorized {
            let cb = self.0.borrow().on_unauthorized.clone();
            cb.emit(());
        }
        self.notify();
    }

    fn on_tick(&self) {
        let t = now();
        let mut c = self.0.borrow_mut();
        if c.closed {
            return;
        }
        let mut changed = matches!(c.link, Link::Waiting(..));
        if c.open {
            if t - c.last_frame > DEAD_AFTER_MS {
                warn("no frame for 75 s; reconnecting");
                c.lose_socket();
                drop(c);
                self.schedule_reconnect();
                self.notify();
                return;
            }
            if t - c.last_ping >= PING_EVERY_MS {
                c.last_ping = t;
                Self::send_raw(&c, PING_FRAME);
            }
        }
        if c.room.phase() == Phase::Live && c.room.next_retry_at().is_some_and(|at| at <= t) {
            Self::flush(&mut c);
            c.rows_built = None;
            changed = true;
        }
        let typing = c.room.typing(t).len();
        if typing != c.typing_shown {
            c.typing_shown = typing;
            changed = true;
        }
        drop(c);
        if changed {
            self.notify();
        }
    }

    fn persist_now(&self) {
        let (cache, slug, data, confirmed) = {
            let mut c = self.0.borrow_mut();
            c.persist_timer = None;
            let Some(cache) = c.cache.clone() else {
                return;
            };
            let data = c.room.to_cache();
            let current: Vec<String> = data.outbox.iter().map(|p| p.client_id.clone()).collect();
            let confirmed: Vec<String> = c
                .persisted_outbox
                .iter()
                .filter(|id| !current.contains(id))
                .cloned()
                .collect();
            c.persisted_outbox = current;
            (cache, c.slug.clone(), data, confirmed)
        };
        wasm_bindgen_futures::spawn_local(async move {
            cache.save(&slug, &data, &confirmed).await;
        });
    }

    fn persist_soon(&self) {
        let mut c = self.0.borrow_mut();
        if c.persist_timer.is_some() || c.cache.is_none() {
            return;
        }
        let weak = self.weak();
        c.persist_timer = Some(Timeout::new(PERSIST_DEBOUNCE_MS, move || {
            if let Some(h) = Self::upgrade(&weak) {
                h.persist_now();
            }
        }));
    }

    fn mutate(&self, op: PendingOp) {
        {
            let mut c = self.0.borrow_mut();
            c.room.queue(web::client_id(), op, now());
            Self::flush(&mut c);
            c.rows_built = None;
        }
        // The user saw it queued: it must survive a reload.
        self.persist_now();
        self.notify();
    }

    /// Queues a new message. Fails with a message to show when the text is not valid.
    pub fn send(&self, text: String) -> Result<(), String> {
        validate_text(&text).map_err(|e| e.message)?;
        self.mutate(PendingOp::Send {
            text,
            attachments: Vec::new(),
        });
        Ok(())
    }

    /// Queues a message whose client id was chosen earlier: one with files, chosen when its
    /// first file was attached, so that after a reload the same message is queued again and
    /// the room de-duplicates it. Already in the outbox (queued before the reload): nothing to
    /// do.
    pub fn queue_as(&self, client_id: String, op: PendingOp, created_at: Millis) {
        {
            let mut c = self.0.borrow_mut();
            if c.room.outbox().any(|p| p.client_id == client_id) {
                return;
            }
            c.room.queue(client_id, op, created_at);
            Self::flush(&mut c);
            c.rows_built = None;
        }
        self.persist_now();
        self.notify();
    }

    /// The room's slug.
    pub fn slug(&self) -> String {
        self.0.borrow().slug.clone()
    }

    /// Applies a row action.
    pub fn act(&self, action: RowAction) {
        match action {
            RowAction::Edit(target, text) => {
                if validate_text(&text).is_ok() {
                    self.mutate(PendingOp::Edit { target, text });
                }
            }
            RowAction::Delete(target) => self.mutate(PendingOp::Delete { target }),
            RowAction::Stop(target) => self.mutate(PendingOp::Stop { target }),
            RowAction::Regenerate(target) => self.mutate(PendingOp::Regenerate { target }),
            RowAction::Rate(target, vote, reason) => self.mutate(PendingOp::Rate {
                target,
                vote,
                reason,
            }),
            RowAction::React(target, emoji, add) => {
                self.mutate(PendingOp::React { target, emoji, add })
            }
            RowAction::Pin(target, pinned) => self.mutate(PendingOp::Pin { target, pinned }),
            RowAction::OpenThread(seq) => {
                {
                    let mut c = self.0.borrow_mut();
                    if let Some(frame) = c.room.open_thread(seq) {
                        Self::send_frame(&c, &frame);
                    }
                }
                self.notify();
            }
            RowAction::Retry(id) | RowAction::Discard(id) if id.is_empty() => {}
            // Handled by the room page (it opens the card).
            RowAction::ShowProfile(_) => {}
            RowAction::Retry(id) => {
                {
                    let mut c = self.0.borrow_mut();
                    c.room.retry(&id);
                    Self::flush(&mut c);
                    c.rows_built = None;
                }
                self.persist_now();
                self.notify();
            }
            RowAction::Discard(id) => {
                {
                    let mut c = self.0.borrow_mut();
                    c.room.discard(&id);
                    c.rows_built = None;
                }
                self.persist_now();
                self.notify();
            }
        }
    }

    /// Marks the newest timeline message read while the page is visible and focused (the
    /// reader can see it arrive).
    fn mark_read_if_seen(c: &mut Conn) {
        let seen = web::window().document().is_some_and(|d| {
            d.visibility_state() == web_sys::VisibilityState::Visible
                && d.has_focus().unwrap_or(false)
        });
        let newest = c.room.messages().next_back().map(|m| m.seq);
        if let (true, Some(seq)) = (seen, newest) {
            if let Some(frame) = c.room.mark_read(seq) {
                Self::send_frame(c, &frame);
            }
        }
    }

    /// The window got focus: what is on screen is now read.
    pub fn focused(&self) {
        Self::mark_read_if_seen(&mut self.0.borrow_mut());
    }

    /// Where the "New" divider goes.
    pub fn unread_from(&self) -> Option<Seq> {
        self.0.borrow().unread_from
    }

    /// Queues a reply in the open thread.
    pub fn reply(&self, text: String, also_in_room: bool) -> Result<(), String> {
        validate_text(&text).map_err(|e| e.message)?;
        let thread = self
            .0
            .borrow()
            .room
            .thread()
            .map(|t| t.root)
            .ok_or("No thread is open.")?;
        self.mutate(PendingOp::Reply {
            thread,
            text,
            also_in_room,
            attachments: Vec::new(),
        });
        Ok(())
    }

    /// Asks the assistant for a private catch-up (or, with `thread`, a summary of that thread).
    /// False when the room is not live (a request, not a mutation: nothing keeps it for later).
    pub fn catch_up(&self, thread: Option<Seq>) -> bool {
        let c = self.0.borrow();
        match c.room.catch_up(thread) {
            Some(frame) => {
                Self::send_frame(&c, &frame);
                true
            }
            None => false,
        }
    }

    /// Asks the room for a slice of who is here (a large room's member list). False when the
    /// room is not live: the panel asks again once it is.
    pub fn ask_presence(&self, offset: u32, limit: u32, query: Option<String>) -> bool {
        let c = self.0.borrow();
        match c.room.ask_presence(offset, limit, query) {
            Some(frame) => {
                Self::send_frame(&c, &frame);
                true
            }
            None => false,
        }
    }

    /// Hides a private answer.
    pub fn dismiss_private(&self, id: u64) {
        self.0.borrow_mut().room.dismiss_private(id);
        self.notify();
    }

    /// Closes the thread panel.
    pub fn close_thread(&self) {
        self.0.borrow_mut().room.close_thread();
        self.notify();
    }

    /// Shows or hides the pinned list.
    pub fn toggle_pins(&self) {
        {
            let mut c = self.0.borrow_mut();
            c.pins_open = !c.pins_open;
            if c.pins_open {
                if let Some(frame) = c.room.request_pins() {
                    Self::send_frame(&c, &frame);
                }
            }
        }
        self.notify();
    }

    /// Whether the pinned list is shown.
    pub fn pins_open(&self) -> bool {
        self.0.borrow().pins_open
    }

    /// Asks for the page before the oldest loaded message (no-op if one is under way).
    pub fn load_older(&self) {
        let mut c = self.0.borrow_mut();
        if let Some(frame) = c.room.request_older() {
            Self::send_frame(&c, &frame);
        }
    }

    /// The user typed: tell the room, at most every few seconds.
    pub fn typing(&self) {
        let mut c = self.0.borrow_mut();
        if c.room.phase() == Phase::Live && c.typing.allow(now(), TYPING_EVERY_MS) {
            Self::send_frame(&c, &ClientMessage::Typing {});
        }
    }

    /// Dismisses the notice.
    pub fn dismiss_error(&self) {
        self.0.borrow_mut().room.clear_error();
        self.notify();
    }

    /// Reads the room state.
    pub fn with_room<T>(&self, f: impl FnOnce(&ClientRoom) -> T) -> T {
        f(&self.0.borrow().room)
    }

    /// The rows to render, rebuilt only after a change.
    pub fn rows(&self) -> Rc<Vec<Rc<RowView>>> {
        let mut c = self.0.borrow_mut();
        if let Some(rows) = &c.rows_built {
            return rows.clone();
        }
        let c = &mut *c;
        let rows = c.rows.build(&c.room);
        c.rows_built = Some(rows.clone());
        rows
    }

    /// The open thread's rows (empty when none is open).
    pub fn thread_rows(&self) -> Vec<Rc<RowView>> {
        let c = self.0.borrow();
        c.rows.thread_rows(&c.room)
    }

    /// The pinned list's rows.
    pub fn pinned_rows(&self) -> Vec<Rc<RowView>> {
        let c = self.0.borrow();
        c.rows.pinned_rows(&c.room)
    }

    /// The connection banner.
    pub fn banner(&self) -> BannerState {
        let c = self.0.borrow();
        banner_state(&c.link, c.ever_live || c.attempt > 0, web::online(), now())
    }

    /// How the link ended, when it ended for good (the room refused or removed us, or is gone).
    pub fn ended(&self) -> Option<Ended> {
        ended(&self.0.borrow().link)
    }
}
