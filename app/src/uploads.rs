//! The files of one open room on their way into messages: measured in the browser, announced,
//! sent with progress, retried with backoff, kept in IndexedDB (`drafts` and `files`, see
//! `cache.rs`) so a reload or an outage resumes them, and the message queued in the room's
//! outbox, under the client id chosen when its first file was attached, once every file is
//! stored. The rules are [`crate::upload`]'s; this drives them with real requests.
//!
//! Components render [`Uploads::composing`] (the chips of the message being written) and
//! [`Uploads::outgoing`] (messages sent and waiting for their files); they subscribe, so
//! progress re-renders the chips, not the room.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use gloo_events::EventListener;
use gloo_timers::callback::Interval;
use shared::client::{Pending, PendingOp, PendingStatus};
use shared::protocol::http::BeginUpload;
use shared::protocol::Attachment;
use web_sys::{Blob, File, Url, XmlHttpRequest};
use yew::Callback;

use crate::api::{self, ApiError};
use crate::backoff::delay_ms;
use crate::cache::Cache;
use crate::conn::RoomHandle;
use crate::upload::{Chip, Draft, Failure, Ready, Sent, Step, Target, Task, PARALLEL};
use crate::web::{self, now, warn};
use crate::xhr::Put;

/// A few values by upload id. A list, not a map: a room has a handful of uploads at a time,
/// and a map's code for each new value type would be one more thing in the app's download.
struct Keyed<T>(Vec<(String, T)>);

impl<T> Keyed<T> {
    fn get(&self, id: &str) -> Option<&T> {
        self.0.iter().find(|(k, _)| k == id).map(|(_, v)| v)
    }
    fn get_mut(&mut self, id: &str) -> Option<&mut T> {
        self.0.iter_mut().find(|(k, _)| k == id).map(|(_, v)| v)
    }
    fn contains_key(&self, id: &str) -> bool {
        self.get(id).is_some()
    }
    fn insert(&mut self, id: String, value: T) {
        self.remove(&id);
        self.0.push((id, value));
    }
    fn remove(&mut self, id: &str) -> Option<T> {
        let i = self.0.iter().position(|(k, _)| k == id)?;
        Some(self.0.swap_remove(i).1)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

/// What the browser holds of a file while it is sent.
struct Local {
    /// Its bytes.
    file: Blob,
    /// Its thumbnail, once made.
    thumb: Option<Blob>,
    /// Its bytes are in IndexedDB (written with its draft; a file attached before the
    /// database opened is written with the first save after).
    kept: bool,
    /// An object URL its chip shows (an image's thumbnail, or a small image itself).
    preview: Option<String>,
}

impl Drop for Local {
    fn drop(&mut self) {
        if let Some(url) = &self.preview {
            let _ = Url::revoke_object_url(url);
        }
    }
}

struct Inner {
    slug: String,
    user_id: String,
    room: RoomHandle,
    cache: Option<Cache>,
    drafts: Vec<Draft>,
    local: Keyed<Local>,
    /// Uploads with a request under way, with the `XMLHttpRequest` of a `PUT` (to abort it).
    running: Keyed<Option<XmlHttpRequest>>,
    subscribers: Vec<(u32, Callback<()>)>,
    next_subscriber: u32,
    /// What the composer should say (files left out).
    notice: Option<String>,
    tick: Option<Interval>,
    online: Option<EventListener>,
    closed: bool,
}

/// A shared handle to one room's uploads.
#[derive(Clone)]
pub struct Uploads(Rc<RefCell<Inner>>);

impl PartialEq for Uploads {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

/// A file's chip as rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct ChipView {
    /// Its upload id (for Cancel).
    pub upload_id: String,
    /// File name.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// Bytes sent (the progress bar's value).
    pub sent: u64,
    /// Where it stands, in words.
    pub status: String,
    /// It failed for good (the status is the room's reason).
    pub failed: bool,
    /// Stored.
    pub done: bool,
    /// A local image to show.
    pub preview: Option<String>,
}

/// A message sent and waiting for its files.
#[derive(Debug, Clone, PartialEq)]
pub struct DraftView {
    /// Its client id.
    pub client_id: String,
    /// Its words.
    pub text: String,
    /// Its files.
    pub chips: Vec<ChipView>,
}

/// Ends a subscription when dropped.
pub struct Subscription {
    uploads: Weak<RefCell<Inner>>,
    id: u32,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(inner) = self.uploads.upgrade() {
            if let Ok(mut inner) = inner.try_borrow_mut() {
                inner.subscribers.retain(|(id, _)| *id != self.id);
            }
        }
    }
}

fn chip_view(chip: &Chip, local: Option<&Local>, at: shared::protocol::Millis) -> ChipView {
    let (sent, _) = chip.bar();
    ChipView {
        upload_id: chip.upload_id.clone(),
        name: chip.name.clone(),
        size: chip.size,
        sent,
        status: chip.status(at),
        failed: chip.is_failed(),
        done: chip.step == Step::Stored,
        preview: local.and_then(|l| l.preview.clone()),
    }
}

/// The pending op a finished draft becomes.
fn op(ready: Ready) -> PendingOp {
    match ready.target {
        Target::Main => PendingOp::Send {
            text: ready.text,
            attachments: ready.attachments,
        },
        Target::Thread(thread) => PendingOp::Reply {
            thread,
            text: ready.text,
            also_in_room: ready.also_in_room,
            attachments: ready.attachments,
        },
    }
}

impl Uploads {
    /// `user_id`'s uploads in the room `room` shows; [`Uploads::start`] resumes the kept ones.
    pub fn new(room: RoomHandle, user_id: String) -> Self {
        Uploads(Rc::new(RefCell::new(Inner {
            slug: room.slug(),
            user_id,
            room,
            cache: None,
            drafts: Vec::new(),
            local: Keyed(Vec::new()),
            running: Keyed(Vec::new()),
            subscribers: Vec::new(),
            next_subscriber: 0,
            notice: None,
            tick: None,
            online: None,
            closed: false,
        })))
    }

    fn weak(&self) -> Weak<RefCell<Inner>> {
        Rc::downgrade(&self.0)
    }

    fn upgrade(weak: &Weak<RefCell<Inner>>) -> Option<Uploads> {
        weak.upgrade().map(Uploads)
    }

    /// Resumes the drafts kept for this room and listens for the browser coming back online.
    pub fn start(&self) {
        let weak = self.weak();
        let online = EventListener::new(&web::window(), "online", move |_| {
            if let Some(u) = Self::upgrade(&weak) {
                for d in &mut u.0.borrow_mut().drafts {
                    d.chips.iter_mut().for_each(Chip::wake);
                }
                u.pump();
            }
        });
        let weak = self.weak();
        // Retries come due, and their countdowns move.
        let tick = Interval::new(1_000, move || {
            if let Some(u) = Self::upgrade(&weak) {
                let waiting = u.0.borrow().drafts.iter().any(|d| {
                    d.chips
                        .iter()
                        .any(|c| matches!(c.step, Step::Idle { not_before } if not_before > 0))
                });
                if waiting {
                    u.pump();
                    u.notify();
                }
            }
        });
        {
            let mut inner = self.0.borrow_mut();
            inner.online = Some(online);
            inner.tick = Some(tick);
        }
        let this = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let user_id = this.0.borrow().user_id.clone();
            let Some(cache) = Cache::open(&user_id).await else {
                return;
            };
            this.0.borrow_mut().cache = Some(cache.clone());
            this.resume(&cache).await;
        });
    }

    /// Reads back this room's drafts and their files, and carries on with them.
    async fn resume(&self, cache: &Cache) {
        let slug = self.0.borrow().slug.clone();
        let mut found = Vec::new();
        for json in cache.drafts().await {
            match serde_json::from_str::<Draft>(&json) {
                Ok(draft) if draft.slug == slug => found.push(draft),
                Ok(_) => {}
                Err(e) => warn(&format!("ignoring an unreadable draft: {e}")),
            }
        }
        for mut draft in found {
            for chip in &mut draft.chips {
                chip.restored();
                if chip.step == Step::Stored || chip.is_failed() {
                    continue;
                }
                match cache.file(&chip.upload_id).await {
                    Some(file) => {
                        self.0.borrow_mut().local.insert(
                            chip.upload_id.clone(),
                            Local {
                                file,
                                thumb: None,
                                kept: true,
                                preview: None,
                            },
                        );
                    }
                    None => chip.give_up("This file is no longer here; attach it again.".into()),
                }
            }
            let to_measure: Vec<String> = draft
                .chips
                .iter()
                .filter(|c| c.step == Step::Measuring)
                .map(|c| c.upload_id.clone())
                .collect();
            {
                let mut inner = self.0.borrow_mut();
                if inner.closed {
                    return;
                }
                if inner.drafts.iter().any(|d| d.client_id == draft.client_id) {
                    continue;
                }
                // Files attached while this was read join the draft kept for the same place.
                let same = draft.sent.is_none().then(|| {
                    inner
                        .drafts
                        .iter()
                        .position(|d| d.sent.is_none() && d.target == draft.target)
                });
                match same.flatten() {
                    Some(i) => {
                        let newer = std::mem::replace(&mut inner.drafts[i], draft);
                        inner.drafts[i].chips.extend(newer.chips);
                        let client_id = newer.client_id;
                        if let Some(cache) = inner.cache.clone() {
                            wasm_bindgen_futures::spawn_local(async move {
                                cache.drop_files(Some(&client_id), &[]).await;
                            });
                        }
                        let kept = inner.drafts[i].client_id.clone();
                        drop(inner);
                        self.save(&kept);
                    }
                    None => inner.drafts.push(draft),
                }
            }
            for id in to_measure {
                self.measure(id);
            }
        }
        // Files attached before the database was open are written now.
        let ids: Vec<String> = self
            .0
            .borrow()
            .drafts
            .iter()
            .map(|d| d.client_id.clone())
            .collect();
        for id in ids {
            self.save(&id);
        }
        self.finish_ready();
        self.pump();
        self.notify();
    }

    /// Stops every request (the page leaves the room); the drafts stay kept for next time.
    pub fn close(&self) {
        let mut inner = self.0.borrow_mut();
        inner.closed = true;
        inner.tick = None;
        inner.online = None;
        for (_, xhr) in &inner.running.0 {
            if let Some(xhr) = xhr {
                let _ = xhr.abort();
            }
        }
        inner.local.0.clear();
    }

    /// Re-renders `on_change` whenever the uploads change, until the subscription is dropped.
    pub fn subscribe(&self, on_change: Callback<()>) -> Subscription {
        let mut inner = self.0.borrow_mut();
        let id = inner.next_subscriber;
        inner.next_subscriber += 1;
        inner.subscribers.push((id, on_change));
        Subscription {
            uploads: self.weak(),
            id,
        }
    }

    fn notify(&self) {
        let subscribers: Vec<Callback<()>> = self
            .0
            .borrow()
            .subscribers
            .iter()
            .map(|(_, cb)| cb.clone())
            .collect();
        for cb in subscribers {
            cb.emit(());
        }
    }

    /// Attaches files to the message being written for `target`.
    pub fn add(&self, target: Target, files: Vec<File>) {
        if files.is_empty() {
            return;
        }
        let (client_id, added) = {
            let mut inner = self.0.borrow_mut();
            let slug = inner.slug.clone();
            let i = match inner
                .drafts
                .iter()
                .position(|d| d.sent.is_none() && d.target == target)
            {
                Some(i) => i,
                None => {
                    inner
                        .drafts
                        .push(Draft::new(web::client_id(), slug, target, now()));
                    inner.drafts.len() - 1
                }
            };
            let (take, notice) = inner.drafts[i].room_for(files.len());
            inner.notice = notice;
            let mut added = Vec::new();
            for file in files.into_iter().take(take) {
                let chip = Chip::new(
                    web::client_id(),
                    file.name(),
                    file.size() as u64,
                    file.type_(),
                );
                let blob: Blob = file.into();
                added.push(chip.upload_id.clone());
                inner.local.insert(
                    chip.upload_id.clone(),
                    Local {
                        file: blob,
                        thumb: None,
                        kept: false,
                        preview: None,
                    },
                );
                inner.drafts[i].chips.push(chip);
            }
            (inner.drafts[i].client_id.clone(), added)
        };
        self.save(&client_id);
        for id in added {
            self.measure(id);
        }
        self.notify();
    }

    /// Keeps a draft in IndexedDB, with the bytes of its files not kept yet.
    fn save(&self, client_id: &str) {
        let mut inner = self.0.borrow_mut();
        let inner = &mut *inner;
        let (Some(cache), Some(draft)) = (
            inner.cache.clone(),
            inner.drafts.iter().find(|d| d.client_id == client_id),
        ) else {
            return;
        };
        let Ok(json) = serde_json::to_string(draft) else {
            return;
        };
        // The bytes of files not written yet go in the same transaction as the draft.
        let mut files = Vec::new();
        for chip in &draft.chips {
            if let Some(local) = inner.local.get_mut(&chip.upload_id).filter(|l| !l.kept) {
                local.kept = true;
                files.push((chip.upload_id.clone(), local.file.clone()));
            }
        }
        let client_id = client_id.to_owned();
        wasm_bindgen_futures::spawn_local(async move {
            cache.save_draft(&client_id, json, &files).await;
        });
    }

    /// Measures a file and makes its thumbnail, then lets it be announced.
    fn measure(&self, upload_id: String) {
        let Some((file, mime)) = self.with_chip(&upload_id, |inner, chip| {
            let file = inner.local.get(&upload_id)?.file.clone();
            Some((file, chip.mime.clone()))
        }) else {
            return;
        };
        let weak = self.weak();
        wasm_bindgen_futures::spawn_local(async move {
            let probe = crate::probe::probe(&file, &mime).await;
            let Some(this) = Self::upgrade(&weak) else {
                return;
            };
            let client_id = {
                let mut inner = this.0.borrow_mut();
                let inner = &mut *inner;
                let Some(draft) = inner
                    .drafts
                    .iter_mut()
                    .find(|d| d.chip(&upload_id).is_some())
                else {
                    return;
                };
                let Some(i) = draft.chip(&upload_id) else {
                    return;
                };
                draft.chips[i].measured(probe.measured, probe.thumb.is_some());
                if let Some(local) = inner.local.get_mut(&upload_id) {
                    let shown = match &probe.thumb {
                        Some(thumb) => Some(thumb.clone()),
                        None if mime.starts_with("image/") => Some(local.file.clone()),
                        None => None,
                    };
                    local.preview = shown.and_then(|b| Url::create_object_url_with_blob(&b).ok());
                    local.thumb = probe.thumb;
                }
                draft.client_id.clone()
            };
            this.save(&client_id);
            this.pump();
            this.notify();
        });
    }

    /// Runs `f` on the chip of an upload.
    fn with_chip<T>(
        &self,
        upload_id: &str,
        f: impl FnOnce(&Inner, &Chip) -> Option<T>,
    ) -> Option<T> {
        let inner = self.0.borrow();
        let chip = inner
            .drafts
            .iter()
            .find_map(|d| d.chip(upload_id).map(|i| &d.chips[i]))?;
        f(&inner, chip)
    }

    /// Starts the requests that are due, at most [`PARALLEL`] at once.
    fn pump(&self) {
        let started: Vec<(String, Task)> = {
            let mut inner = self.0.borrow_mut();
            if inner.closed {
                return;
            }
            let t = now();
            let mut free = PARALLEL.saturating_sub(inner.running.len());
            let mut started = Vec::new();
            let inner = &mut *inner;
            for draft in &mut inner.drafts {
                for chip in &mut draft.chips {
                    if free == 0 {
                        break;
                    }
                    if inner.running.contains_key(&chip.upload_id) {
                        continue;
                    }
                    if let Some(task) = chip.next(t) {
                        chip.start(task.clone());
                        inner.running.insert(chip.upload_id.clone(), None);
                        started.push((chip.upload_id.clone(), task));
                        free -= 1;
                    }
                }
            }
            started
        };
        let any = !started.is_empty();
        for (upload_id, task) in started {
            self.run(upload_id, task);
        }
        if any {
            self.notify();
        }
    }

    /// Makes one request of an upload.
    fn run(&self, upload_id: String, task: Task) {
        let weak = self.weak();
        let slug = self.0.borrow().slug.clone();
        match task.clone() {
            Task::Begin => {
                let Some(request) = self.with_chip(&upload_id, |_, c| {
                    Some(BeginUpload {
                        upload_id: c.upload_id.clone(),
                        name: c.name.clone(),
                        size: c.size,
                        width: c.measured.width,
                        height: c.measured.height,
                        duration_ms: c.measured.duration_ms,
                    })
                }) else {
                    self.0.borrow_mut().running.remove(&upload_id);
                    return;
                };
                wasm_bindgen_futures::spawn_local(async move {
                    let answer = api::begin_upload(&slug, &request).await;
                    if let Some(this) = Self::upgrade(&weak) {
                        this.answered(&upload_id, &task, answer.map(Answer::Ticket));
                    }
                });
            }
            Task::Thumb(id) => {
                let thumb = self
                    .0
                    .borrow()
                    .local
                    .get(&upload_id)
                    .and_then(|l| l.thumb.clone());
                wasm_bindgen_futures::spawn_local(async move {
                    let answer = match thumb {
                        Some(thumb) => api::put_thumb(&slug, &id, &thumb).await,
                        // Made before a reload and not again: the file goes without.
                        None => Ok(()),
                    };
                    if let Some(this) = Self::upgrade(&weak) {
                        this.answered(&upload_id, &task, answer.map(|()| Answer::Thumb));
                    }
                });
            }
            Task::File(id) => {
                let Some(file) = self
                    .0
                    .borrow()
                    .local
                    .get(&upload_id)
                    .map(|l| l.file.clone())
                else {
                    self.lost(&upload_id);
                    return;
                };
                let progress = {
                    let (weak, upload_id) = (weak.clone(), upload_id.clone());
                    move |sent: u64| {
                        if let Some(this) = Self::upgrade(&weak) {
                            this.progress(&upload_id, sent);
                        }
                    }
                };
                let url = format!("/api/rooms/{slug}/uploads/{id}");
                let put = match Put::start(&url, &file, progress) {
                    Ok(put) => put,
                    Err(e) => {
                        self.answered(&upload_id, &task, Err(e));
                        return;
                    }
                };
                if let Some(slot) = self.0.borrow_mut().running.get_mut(&upload_id) {
                    *slot = Some(put.request());
                }
                wasm_bindgen_futures::spawn_local(async move {
                    let answer = put.finish::<Attachment>().await;
                    if let Some(this) = Self::upgrade(&weak) {
                        this.answered(&upload_id, &task, answer.map(Answer::Stored));
                    }
                });
            }
        }
    }

    /// A file whose bytes this page no longer has cannot be sent: it says so.
    fn lost(&self, upload_id: &str) {
        {
            let mut inner = self.0.borrow_mut();
            inner.running.remove(upload_id);
            if let Some(chip) = inner
                .drafts
                .iter_mut()
                .find_map(|d| d.chip(upload_id).map(|i| &mut d.chips[i]))
            {
                chip.give_up("This file is no longer here; attach it again.".into());
            }
        }
        self.notify();
    }

    fn progress(&self, upload_id: &str, sent: u64) {
        {
            let mut inner = self.0.borrow_mut();
            let Some(chip) = inner
                .drafts
                .iter_mut()
                .find_map(|d| d.chip(upload_id).map(|i| &mut d.chips[i]))
            else {
                return;
            };
            chip.progress(sent);
        }
        self.notify();
    }

    /// A request of an upload ended.
    fn answered(&self, upload_id: &str, task: &Task, answer: Result<Answer, ApiError>) {
        let client_id = {
            let mut inner = self.0.borrow_mut();
            inner.running.remove(upload_id);
            if inner.closed {
                return;
            }
            let slug = inner.slug.clone();
            let Some(draft) = inner
                .drafts
                .iter_mut()
                .find(|d| d.chip(upload_id).is_some())
            else {
                // Cancelled meanwhile: what the room made of it goes too.
                let made = match &answer {
                    Ok(Answer::Ticket(t)) => Some(t.id.clone()),
                    Ok(Answer::Stored(a)) => Some(a.id.clone()),
                    _ => None,
                };
                drop(inner);
                if let Some(id) = made {
                    forget_upload(slug, id);
                }
                self.pump();
                return;
            };
            let Some(i) = draft.chip(upload_id) else {
                return;
            };
            let chip = &mut draft.chips[i];
            match answer {
                Ok(Answer::Ticket(ticket)) => chip.ticket(ticket),
                Ok(Answer::Thumb) => chip.thumb_sent(),
                Ok(Answer::Stored(attachment)) => chip.stored(attachment),
                Err(e) => chip.failed(
                    task,
                    Failure {
                        status: e.status,
                        code: e.code,
                        message: e.message,
                    },
                    now(),
                    |attempt| delay_ms(attempt, js_sys::Math::random()),
                ),
            }
            draft.client_id.clone()
        };
        self.save(&client_id);
        self.finish_ready();
        self.pump();
        self.notify();
    }

    /// Queues every draft whose files are all stored in the room's outbox (under its own
    /// client id), and drops the ones nothing is left of.
    fn finish_ready(&self) {
        let (done, emptied, slug, cache, room) = {
            let mut inner = self.0.borrow_mut();
            let mut done = Vec::new();
            let mut emptied = Vec::new();
            let mut i = 0;
            while i < inner.drafts.len() {
                let draft = &inner.drafts[i];
                if draft.sent.is_some() && draft.is_empty() {
                    emptied.push(inner.drafts.remove(i));
                } else if let Some(ready) = draft.ready() {
                    let draft = inner.drafts.remove(i);
                    done.push((draft, ready));
                } else {
                    i += 1;
                }
            }
            for (draft, _) in &done {
                for chip in &draft.chips {
                    inner.local.remove(&chip.upload_id);
                }
            }
            (
                done,
                emptied,
                inner.slug.clone(),
                inner.cache.clone(),
                inner.room.clone(),
            )
        };
        for draft in emptied {
            if let Some(cache) = cache.clone() {
                wasm_bindgen_futures::spawn_local(async move {
                    cache.drop_files(Some(&draft.client_id), &[]).await;
                });
            }
        }
        for (draft, ready) in done {
            let op = op(ready);
            let ids: Vec<String> = draft.chips.iter().map(|c| c.upload_id.clone()).collect();
            if let Some(cache) = cache.clone() {
                // Made before the room's own write of its outbox (below), so IndexedDB runs it
                // first: the message is in the outbox before its draft is gone.
                let pending = Pending {
                    client_id: draft.client_id.clone(),
                    op: op.clone(),
                    created_at: draft.created_at,
                    status: PendingStatus::Queued { not_before: 0 },
                };
                let slug = slug.clone();
                wasm_bindgen_futures::spawn_local(async move {
                    cache.finish_draft(&slug, &pending, &ids).await;
                });
            }
            room.queue_as(draft.client_id, op, draft.created_at);
        }
    }

    /// Takes a file away (its chip's Cancel): its request is aborted, the room forgets it.
    pub fn cancel(&self, upload_id: &str) {
        let (slug, cache, client_id, ticket, emptied) = {
            let mut inner = self.0.borrow_mut();
            let Some(d) = inner
                .drafts
                .iter()
                .position(|d| d.chip(upload_id).is_some())
            else {
                return;
            };
            let Some(i) = inner.drafts[d].chip(upload_id) else {
                return;
            };
            let chip = inner.drafts[d].chips.remove(i);
            if let Some(Some(xhr)) = inner.running.remove(upload_id) {
                let _ = xhr.abort();
            }
            inner.local.remove(upload_id);
            let emptied = inner.drafts[d].is_empty();
            let client_id = inner.drafts[d].client_id.clone();
            if emptied {
                inner.drafts.remove(d);
            }
            (
                inner.slug.clone(),
                inner.cache.clone(),
                client_id,
                chip.stored.map(|a| a.id).or(chip.ticket),
                emptied,
            )
        };
        if let Some(id) = ticket {
            forget_upload(slug, id);
        }
        if let Some(cache) = cache {
            let upload_id = upload_id.to_owned();
            let gone = emptied.then(|| client_id.clone());
            wasm_bindgen_futures::spawn_local(async move {
                cache.drop_files(gone.as_deref(), &[upload_id]).await;
            });
        }
        if !emptied {
            self.save(&client_id);
        }
        self.finish_ready();
        self.pump();
        self.notify();
    }

    /// The user sent the message being written for `target`: it goes once its files are
    /// stored. False when it has no files (the caller sends it as any message).
    pub fn commit(&self, target: Target, text: String, also_in_room: bool) -> bool {
        let client_id = {
            let mut inner = self.0.borrow_mut();
            let Some(draft) = inner
                .drafts
                .iter_mut()
                .find(|d| d.sent.is_none() && d.target == target && !d.chips.is_empty())
            else {
                return false;
            };
            draft.sent = Some(Sent { text, also_in_room });
            let client_id = draft.client_id.clone();
            inner.notice = None;
            client_id
        };
        self.save(&client_id);
        self.finish_ready();
        self.pump();
        self.notify();
        true
    }

    /// Whether the message being written for `target` has files (then it may have no words).
    pub fn has_files(&self, target: Target) -> bool {
        self.0
            .borrow()
            .drafts
            .iter()
            .any(|d| d.sent.is_none() && d.target == target && !d.chips.is_empty())
    }

    /// The chips of the message being written for `target`.
    pub fn composing(&self, target: Target) -> Vec<ChipView> {
        let inner = self.0.borrow();
        let t = now();
        inner
            .drafts
            .iter()
            .filter(|d| d.sent.is_none() && d.target == target)
            .flat_map(|d| d.chips.iter())
            .map(|c| chip_view(c, inner.local.get(&c.upload_id), t))
            .collect()
    }

    /// Messages sent to `target` and waiting for their files.
    pub fn outgoing(&self, target: Target) -> Vec<DraftView> {
        let inner = self.0.borrow();
        let t = now();
        inner
            .drafts
            .iter()
            .filter(|d| d.target == target)
            .filter_map(|d| {
                let sent = d.sent.as_ref()?;
                Some(DraftView {
                    client_id: d.client_id.clone(),
                    text: sent.text.clone(),
                    chips: d
                        .chips
                        .iter()
                        .map(|c| chip_view(c, inner.local.get(&c.upload_id), t))
                        .collect(),
                })
            })
            .collect()
    }

    /// What the composer should say about the last files offered (some left out).
    pub fn notice(&self) -> Option<String> {
        self.0.borrow().notice.clone()
    }

    /// Forgets the notice.
    pub fn clear_notice(&self) {
        self.0.borrow_mut().notice = None;
        self.notify();
    }
}

/// What a successful request answered.
enum Answer {
    Ticket(shared::protocol::http::UploadTicket),
    Thumb,
    Stored(Attachment),
}

/// Tells the room to drop an upload nobody will send (a failure is left to its expiry).
fn forget_upload(slug: String, id: String) {
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = api::cancel_upload(&slug, &id).await {
            warn(&format!("cancelling an upload failed: {}", e.message));
        }
    });
}
