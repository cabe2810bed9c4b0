//! Files on their way into a message, the pure parts: what each file (a "chip") is doing, which
//! request it needs next, which failures a retry can fix, and when a message's files are all
//! stored so it may be sent. No browser APIs: `uploads.rs` drives this with real requests and
//! keeps it in IndexedDB, and the tests here run natively.
//!
//! A file goes: measured in the browser (size, playing time, a thumbnail) → announced
//! (`POST …/uploads` with the client's `upload_id`, which the room answers with the same ticket
//! however often it is asked, or with the stored attachment) → its thumbnail (`PUT …/thumb`) →
//! its bytes (`PUT …/uploads/{id}`) → stored. A message is sent only when every one of its
//! files is stored, with the client id chosen when its first file was attached, so a resend
//! after a reload is the same message to the room.

use serde::{Deserialize, Serialize};
use shared::limits::ATTACHMENTS_PER_MESSAGE;
use shared::protocol::http::UploadTicket;
use shared::protocol::{Attachment, Millis, Seq};
use shared::ErrorCode;

/// The longest side of a thumbnail the browser makes, in pixels.
pub const THUMB_MAX_SIDE: u32 = 320;
/// Requests one room's uploads run at once: a second keeps the line busy while one ends,
/// more would only split the bandwidth and hold the browser's six connections to the origin.
pub const PARALLEL: usize = 2;
/// A file whose announcement the room keeps answering "not found" (its upload expired and the
/// same id keeps naming it) stops after this many tries.
const NOT_FOUND_TRIES: u32 = 3;

/// The size of a thumbnail of an image `width` × `height`: at most [`THUMB_MAX_SIDE`] a side,
/// never larger than the image, proportions kept.
pub fn thumb_size(width: u32, height: u32) -> (u32, u32) {
    crate::avatar::fit(width, height, THUMB_MAX_SIDE)
}

/// What the browser measured of a file before announcing it (layout hints for the room).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measured {
    /// Pixels, of an image or video.
    pub width: Option<u32>,
    /// Pixels, of an image or video.
    pub height: Option<u32>,
    /// Playing time of audio or video.
    pub duration_ms: Option<u64>,
}

/// A request a file needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Announce it (`POST …/uploads`).
    Begin,
    /// Send its thumbnail (`PUT …/uploads/{id}/thumb`).
    Thumb(String),
    /// Send its bytes (`PUT …/uploads/{id}`).
    File(String),
}

/// Where a file stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Being measured (and its thumbnail made) in the browser.
    Measuring,
    /// Ready for its next request, not before this time (a retry's wait).
    Idle {
        /// Milliseconds since the epoch (0: at once).
        not_before: Millis,
    },
    /// A request is under way; for the bytes, how many have gone.
    Busy {
        /// Which request.
        task: Task,
        /// Bytes of the file sent so far.
        sent: u64,
    },
    /// Stored: a message may carry it.
    Stored,
    /// It cannot be stored: the room's reason. Only cancelling it takes it away.
    Failed(String),
}

/// One file attached to a message being written or sent. What is kept in IndexedDB is what a
/// reload cannot work out again: the ids, the room's answers and a refusal; where it stood is
/// worked out again ([`Chip::restored`]) and the file measured again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chip {
    /// The client's id for this upload, sent with every announcement.
    pub upload_id: String,
    /// The file's name on the sender's device.
    pub name: String,
    /// Bytes.
    pub size: u64,
    /// The browser's idea of its type (from its name): only for measuring it here; the room
    /// decides by its bytes.
    pub mime: String,
    /// What was measured.
    #[serde(skip)]
    pub measured: Measured,
    /// A thumbnail was made and still has to be sent.
    pub thumb_due: bool,
    /// The attachment id the room gave it.
    pub ticket: Option<String>,
    /// The room's record of it, once stored.
    pub stored: Option<Attachment>,
    /// Where it stands.
    #[serde(skip, default = "measuring")]
    pub step: Step,
    /// Failed tries since its last success (the backoff's exponent).
    #[serde(skip)]
    pub attempt: u32,
    /// Why the last try failed, while it waits to try again.
    #[serde(skip)]
    pub note: Option<String>,
    /// Why it cannot be stored, once the room refused it for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Times the room said its upload was gone (expired unattached) and it was announced
    /// again; not reset by a success, so an id that keeps naming a gone upload stops.
    #[serde(default)]
    pub expired: u32,
}

fn measuring() -> Step {
    Step::Measuring
}

/// Whether a failure can be fixed by trying again later.
pub fn retryable(code: ErrorCode, status: u16) -> bool {
    match code {
        // The room has said no for good, for this file: its size, its type, the room's space,
        // or what the sender may do there.
        ErrorCode::TooLarge
        | ErrorCode::QuotaExceeded
        | ErrorCode::UnsupportedMedia
        | ErrorCode::InvalidInput
        | ErrorCode::InvalidFrame
        | ErrorCode::Forbidden
        | ErrorCode::Banned
        | ErrorCode::Kicked
        | ErrorCode::NetworkBanned => false,
        // Waiting helps: a rate limit, a dropped connection (status 0), a session being
        // renewed, a server error.
        ErrorCode::RateLimited | ErrorCode::Unauthorized | ErrorCode::Muted => true,
        _ => status == 0 || status >= 500 || status == 408 || status == 429,
    }
}

/// A failed request as the chip needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// HTTP status, 0 without an answer.
    pub status: u16,
    /// The room's code.
    pub code: ErrorCode,
    /// The room's message, safe to show.
    pub message: String,
}

impl Chip {
    /// A file just attached, to be measured.
    pub fn new(upload_id: String, name: String, size: u64, mime: String) -> Self {
        Chip {
            upload_id,
            name,
            size,
            mime,
            measured: Measured::default(),
            thumb_due: false,
            ticket: None,
            stored: None,
            step: Step::Measuring,
            attempt: 0,
            note: None,
            refused: None,
            expired: 0,
        }
    }

    /// Measured (with a thumbnail to send, or not): ready to be announced.
    pub fn measured(&mut self, measured: Measured, thumb: bool) {
        self.measured = measured;
        // A file stored before it was measured again (a reload) needs nothing more.
        if self.step == Step::Measuring {
            // Once announced, a thumbnail is only sent if it still was to be (measured again
            // after a reload, a file whose thumbnail went already has none to send).
            self.thumb_due = thumb && (self.ticket.is_none() || self.thumb_due);
            self.step = Step::Idle { not_before: 0 };
        }
    }

    /// Read back after a reload: stored or refused stays so; anything else is measured again
    /// (its thumbnail is not kept) and carries on from the room's last answer.
    pub fn restored(&mut self) {
        self.step = if self.stored.is_some() {
            Step::Stored
        } else if let Some(why) = &self.refused {
            Step::Failed(why.clone())
        } else {
            Step::Measuring
        };
    }

    /// It cannot be stored: `why`, for good.
    pub fn give_up(&mut self, why: String) {
        self.refused = Some(why.clone());
        self.step = Step::Failed(why);
    }

    /// The request to make now, if any.
    pub fn next(&self, now: Millis) -> Option<Task> {
        match (&self.step, &self.ticket) {
            (Step::Idle { not_before }, _) if *not_before > now => None,
            (Step::Idle { .. }, None) => Some(Task::Begin),
            (Step::Idle { .. }, Some(id)) if self.thumb_due => Some(Task::Thumb(id.clone())),
            (Step::Idle { .. }, Some(id)) => Some(Task::File(id.clone())),
            _ => None,
        }
    }

    /// A request started.
    pub fn start(&mut self, task: Task) {
        self.step = Step::Busy { task, sent: 0 };
    }

    /// Bytes of the file sent so far.
    pub fn progress(&mut self, sent: u64) {
        if let Step::Busy { sent: s, .. } = &mut self.step {
            *s = sent.min(self.size);
        }
    }

    /// The room's answer to the announcement.
    pub fn ticket(&mut self, ticket: UploadTicket) {
        self.ticket = Some(ticket.id);
        self.succeeded();
        if let Some(stored) = ticket.stored {
            // A retry of an upload the room already has: nothing left to send.
            self.stored(stored);
        }
    }

    /// The thumbnail was stored.
    pub fn thumb_sent(&mut self) {
        self.thumb_due = false;
        self.succeeded();
    }

    /// The bytes were stored.
    pub fn stored(&mut self, attachment: Attachment) {
        self.stored = Some(attachment);
        self.thumb_due = false;
        self.step = Step::Stored;
        self.note = None;
    }

    fn succeeded(&mut self) {
        self.attempt = 0;
        self.note = None;
        if !matches!(self.step, Step::Stored | Step::Failed(_)) {
            self.step = Step::Idle { not_before: 0 };
        }
    }

    /// A request failed. `backoff` gives the wait before try `attempt` (0 for the first retry).
    pub fn failed(
        &mut self,
        task: &Task,
        failure: Failure,
        now: Millis,
        backoff: impl Fn(u32) -> Millis,
    ) {
        if matches!(self.step, Step::Stored | Step::Failed(_)) {
            return;
        }
        let not_found = failure.code == ErrorCode::NotFound;
        if matches!(task, Task::Thumb(_)) && !not_found && !retryable(failure.code, failure.status)
        {
            // A refused thumbnail costs the file only its preview.
            self.thumb_due = false;
            self.step = Step::Idle { not_before: now };
            return;
        }
        if not_found && !matches!(task, Task::Begin) && self.expired + 1 < NOT_FOUND_TRIES {
            // The upload it names is gone (it expired unattached): announce it again.
            self.expired += 1;
            self.ticket = None;
        } else if not_found || !retryable(failure.code, failure.status) {
            self.give_up(failure.message);
            return;
        }
        self.step = Step::Idle {
            not_before: now + backoff(self.attempt),
        };
        self.attempt += 1;
        self.note = Some(failure.message);
    }

    /// Try now whatever waits (the browser is back online).
    pub fn wake(&mut self) {
        if let Step::Idle { not_before } = &mut self.step {
            *not_before = 0;
        }
    }

    /// (sent, total) for its progress bar.
    pub fn bar(&self) -> (u64, u64) {
        match &self.step {
            Step::Stored => (self.size, self.size),
            Step::Busy {
                task: Task::File(_),
                sent,
            } => (*sent, self.size),
            _ => (0, self.size),
        }
    }

    /// A few words on where it stands, for its chip.
    pub fn status(&self, now: Millis) -> String {
        match &self.step {
            Step::Measuring => "Preparing…".into(),
            Step::Idle { not_before } if *not_before > now => {
                let secs = (not_before - now + 999) / 1000;
                match &self.note {
                    Some(why) => format!("{why} Trying again in {secs} s."),
                    None => format!("Trying again in {secs} s."),
                }
            }
            Step::Idle { .. } => "Waiting…".into(),
            Step::Busy {
                task: Task::Begin | Task::Thumb(_),
                ..
            } => "Starting…".into(),
            Step::Busy { sent, .. } => {
                let percent = sent
                    .saturating_mul(100)
                    .checked_div(self.size)
                    .unwrap_or(100);
                format!("{percent}%")
            }
            Step::Stored => "Ready".into(),
            Step::Failed(message) => message.clone(),
        }
    }

    /// Whether it failed for good.
    pub fn is_failed(&self) -> bool {
        matches!(self.step, Step::Failed(_))
    }
}

/// Where a message goes: the room's timeline or a thread. Kept as the thread's root or null.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Option<Seq>", into = "Option<Seq>")]
pub enum Target {
    /// The timeline.
    Main,
    /// A reply in the thread of this root.
    Thread(Seq),
}

impl From<Option<Seq>> for Target {
    fn from(thread: Option<Seq>) -> Self {
        thread.map_or(Target::Main, Target::Thread)
    }
}

impl From<Target> for Option<Seq> {
    fn from(target: Target) -> Self {
        match target {
            Target::Main => None,
            Target::Thread(root) => Some(root),
        }
    }
}

/// What the user sent: the text and, for a thread reply, whether it also goes to the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// Markdown (may be blank when files go with it).
    pub text: String,
    /// A thread reply also shown in the timeline.
    pub also_in_room: bool,
}

/// A message with files: being written (files attached, not sent yet), or sent and waiting for
/// its files to be stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draft {
    /// The message's client id, chosen when its first file was attached.
    pub client_id: String,
    /// The room.
    pub slug: String,
    /// Where it goes.
    pub target: Target,
    /// When its first file was attached.
    pub created_at: Millis,
    /// Set when the user pressed Send.
    pub sent: Option<Sent>,
    /// Its files, in the order attached (the order the message shows them).
    pub chips: Vec<Chip>,
}

/// The message a finished draft becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ready {
    /// Where it goes.
    pub target: Target,
    /// Its text.
    pub text: String,
    /// For a reply: also in the timeline.
    pub also_in_room: bool,
    /// Its files, stored, in order.
    pub attachments: Vec<Attachment>,
}

impl Draft {
    /// A new draft for `target` with no files yet.
    pub fn new(client_id: String, slug: String, target: Target, created_at: Millis) -> Self {
        Draft {
            client_id,
            slug,
            target,
            created_at,
            sent: None,
            chips: Vec::new(),
        }
    }

    /// How many of `offered` files fit (a message carries at most
    /// [`ATTACHMENTS_PER_MESSAGE`]), and what to tell the user about the rest.
    pub fn room_for(&self, offered: usize) -> (usize, Option<String>) {
        let free = ATTACHMENTS_PER_MESSAGE.saturating_sub(self.chips.len());
        if offered <= free {
            (offered, None)
        } else {
            (
                free,
                Some(format!(
                    "A message can carry {ATTACHMENTS_PER_MESSAGE} files; {} left out.",
                    offered - free
                )),
            )
        }
    }

    /// The message to send, once it was sent by the user and every file is stored. Never
    /// before: a message is not sent with files the room does not have.
    pub fn ready(&self) -> Option<Ready> {
        let sent = self.sent.as_ref()?;
        let attachments = self
            .chips
            .iter()
            .map(|c| c.stored.clone())
            .collect::<Option<Vec<_>>>()?;
        Some(Ready {
            target: self.target,
            text: sent.text.clone(),
            also_in_room: sent.also_in_room,
            attachments,
        })
    }

    /// Nothing left to send: sent, no files, no words (every file was cancelled).
    pub fn is_empty(&self) -> bool {
        self.chips.is_empty() && self.sent.as_ref().is_none_or(|s| s.text.trim().is_empty())
    }

    /// Index of the chip of an upload.
    pub fn chip(&self, upload_id: &str) -> Option<usize> {
        self.chips.iter().position(|c| c.upload_id == upload_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::media::Kind;

    fn attachment(id: &str) -> Attachment {
        Attachment {
            id: id.into(),
            name: "cat.png".into(),
            size: 100,
            mime: "image/png".into(),
            kind: Kind::Image,
            width: Some(10),
            height: Some(10),
            duration_ms: None,
            thumb: true,
            labels: Vec::new(),
            transcript: None,
        }
    }

    fn chip() -> Chip {
        Chip::new("up1".into(), "cat.png".into(), 100, "image/png".into())
    }

    fn failure(status: u16, code: ErrorCode) -> Failure {
        Failure {
            status,
            code,
            message: "The room said no.".into(),
        }
    }

    /// The app's own backoff, without jitter.
    fn backoff(attempt: u32) -> Millis {
        crate::backoff::delay_ms(attempt, 0.0)
    }

    #[test]
    fn a_file_is_measured_then_announced_then_its_thumbnail_then_its_bytes_then_stored() {
        let mut c = chip();
        assert_eq!(c.next(0), None, "nothing is sent while it is measured");
        c.measured(
            Measured {
                width: Some(640),
                height: Some(480),
                duration_ms: None,
            },
            true,
        );
        assert_eq!(c.next(0), Some(Task::Begin));
        c.start(Task::Begin);
        assert_eq!(c.next(0), None, "one request at a time");
        c.ticket(UploadTicket {
            id: "AAAA".into(),
            stored: None,
        });
        assert_eq!(c.next(0), Some(Task::Thumb("AAAA".into())));
        c.start(Task::Thumb("AAAA".into()));
        c.thumb_sent();
        assert_eq!(c.next(0), Some(Task::File("AAAA".into())));
        c.start(Task::File("AAAA".into()));
        c.progress(40);
        assert_eq!(c.bar(), (40, 100));
        assert_eq!(c.status(0), "40%");
        c.stored(attachment("AAAA"));
        assert_eq!(c.bar(), (100, 100));
        assert_eq!(c.status(0), "Ready");
        assert_eq!(c.next(0), None);
    }

    #[test]
    fn a_retried_announcement_the_room_already_stored_skips_the_bytes() {
        let mut c = chip();
        c.measured(Measured::default(), false);
        c.start(Task::Begin);
        c.ticket(UploadTicket {
            id: "AAAA".into(),
            stored: Some(attachment("AAAA")),
        });
        assert_eq!(c.step, Step::Stored);
        assert_eq!(c.next(0), None);
    }

    #[test]
    fn a_failure_a_retry_can_fix_waits_longer_each_time_and_the_browser_coming_online_ends_the_wait(
    ) {
        let mut c = chip();
        c.measured(Measured::default(), false);
        c.start(Task::Begin);
        c.failed(&Task::Begin, failure(0, ErrorCode::Unknown), 1_000, backoff);
        assert_eq!(c.next(1_000), None);
        assert_eq!(c.next(1_500), Some(Task::Begin), "half a second first");
        assert!(
            c.status(1_000).contains("Trying again in 1 s"),
            "{}",
            c.status(1_000)
        );
        c.start(Task::Begin);
        c.failed(
            &Task::Begin,
            failure(503, ErrorCode::Internal),
            2_000,
            backoff,
        );
        assert_eq!(c.next(2_500), None, "then a second");
        assert_eq!(c.next(3_000), Some(Task::Begin));
        c.start(Task::Begin);
        c.failed(
            &Task::Begin,
            failure(429, ErrorCode::RateLimited),
            4_000,
            backoff,
        );
        c.wake();
        assert_eq!(c.next(4_000), Some(Task::Begin));
        c.start(Task::Begin);
        c.ticket(UploadTicket {
            id: "A".into(),
            stored: None,
        });
        assert_eq!(c.attempt, 0, "a success starts the backoff over");
        assert_eq!(c.note, None);
    }

    #[test]
    fn a_file_too_large_unsupported_or_over_the_quota_stops_with_the_rooms_message() {
        for code in [
            ErrorCode::TooLarge,
            ErrorCode::QuotaExceeded,
            ErrorCode::UnsupportedMedia,
        ] {
            let mut c = chip();
            c.measured(Measured::default(), false);
            c.start(Task::Begin);
            c.failed(&Task::Begin, failure(413, code), 0, backoff);
            assert_eq!(c.step, Step::Failed("The room said no.".into()), "{code:?}");
            assert!(c.is_failed());
            assert_eq!(c.next(Millis::MAX), None, "{code:?} is never retried");
            assert_eq!(c.status(0), "The room said no.");
        }
    }

    #[test]
    fn a_refused_thumbnail_costs_only_the_preview_and_the_bytes_still_go() {
        let mut c = chip();
        c.measured(Measured::default(), true);
        c.start(Task::Begin);
        c.ticket(UploadTicket {
            id: "T".into(),
            stored: None,
        });
        c.start(Task::Thumb("T".into()));
        c.failed(
            &Task::Thumb("T".into()),
            failure(413, ErrorCode::TooLarge),
            0,
            backoff,
        );
        assert_eq!(c.next(0), Some(Task::File("T".into())));
    }

    #[test]
    fn bytes_sent_to_an_expired_upload_are_announced_again_then_given_up_on() {
        let mut c = chip();
        c.measured(Measured::default(), false);
        for _ in 0..2 {
            c.wake();
            c.start(Task::Begin);
            c.ticket(UploadTicket {
                id: "E".into(),
                stored: None,
            });
            c.start(Task::File("E".into()));
            c.failed(
                &Task::File("E".into()),
                failure(404, ErrorCode::NotFound),
                0,
                backoff,
            );
            assert_eq!(c.ticket, None);
            c.wake();
            assert_eq!(c.next(0), Some(Task::Begin));
        }
        c.start(Task::File("E".into()));
        c.failed(
            &Task::File("E".into()),
            failure(404, ErrorCode::NotFound),
            0,
            backoff,
        );
        assert!(c.is_failed());
    }

    /// The chip as a reload reads it back.
    fn reloaded(c: &Chip) -> Chip {
        let json = serde_json::to_string(c).expect("serializes");
        let mut back: Chip = serde_json::from_str(&json).expect("reads");
        back.restored();
        back
    }

    #[test]
    fn after_a_reload_a_file_is_measured_again_and_carries_on_from_the_rooms_last_answer() {
        let mut c = chip();
        c.measured(Measured::default(), true);
        c.start(Task::Begin);
        let mut back = reloaded(&c);
        assert_eq!(back.step, Step::Measuring, "its thumbnail is made again");
        back.measured(Measured::default(), true);
        assert_eq!(
            back.next(0),
            Some(Task::Begin),
            "announced again, same upload id"
        );
        assert_eq!(back.upload_id, "up1");

        // Announced and its thumbnail sent: only the bytes go again.
        let mut c = chip();
        c.measured(Measured::default(), true);
        c.ticket(UploadTicket {
            id: "R".into(),
            stored: None,
        });
        c.thumb_sent();
        c.start(Task::File("R".into()));
        c.progress(50);
        let mut back = reloaded(&c);
        back.measured(Measured::default(), true);
        assert_eq!(
            back.next(0),
            Some(Task::File("R".into())),
            "the bytes go again"
        );

        // Announced, thumbnail not sent yet: it is made and sent again.
        let mut c = chip();
        c.measured(Measured::default(), true);
        c.ticket(UploadTicket {
            id: "T".into(),
            stored: None,
        });
        let mut back = reloaded(&c);
        back.measured(Measured::default(), true);
        assert_eq!(back.next(0), Some(Task::Thumb("T".into())));

        let mut c = chip();
        c.stored(attachment("S"));
        let mut back = reloaded(&c);
        assert_eq!(back.step, Step::Stored, "a stored file stays stored");
        back.measured(Measured::default(), true);
        assert_eq!(back.step, Step::Stored);

        let mut c = chip();
        c.measured(Measured::default(), false);
        c.start(Task::Begin);
        c.failed(&Task::Begin, failure(413, ErrorCode::TooLarge), 0, backoff);
        let back = reloaded(&c);
        assert_eq!(
            back.step,
            Step::Failed("The room said no.".into()),
            "a refusal stays"
        );
    }

    #[test]
    fn a_message_is_ready_only_once_sent_and_every_file_is_stored_and_keeps_their_order() {
        let mut d = Draft::new("c1".into(), "cats".into(), Target::Main, 0);
        let mut a = chip();
        let mut b = Chip::new("up2".into(), "b.pdf".into(), 5, "application/pdf".into());
        a.stored(attachment("A"));
        d.chips = vec![a, b.clone()];
        assert_eq!(d.ready(), None, "not sent yet");
        d.sent = Some(Sent {
            text: String::new(),
            also_in_room: false,
        });
        assert_eq!(d.ready(), None, "b is not stored");
        b.stored(attachment("B"));
        d.chips[1] = b;
        let ready = d.ready().expect("ready");
        let ids: Vec<&str> = ready.attachments.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["A", "B"]);
        assert_eq!(ready.target, Target::Main);
    }

    #[test]
    fn a_sent_message_whose_files_were_all_cancelled_sends_its_words_or_nothing() {
        let mut d = Draft::new("c1".into(), "cats".into(), Target::Thread(4), 0);
        d.sent = Some(Sent {
            text: "look".into(),
            also_in_room: true,
        });
        assert!(!d.is_empty());
        let ready = d.ready().expect("its words go alone");
        assert!(ready.attachments.is_empty());
        assert_eq!(ready.target, Target::Thread(4));
        assert!(ready.also_in_room);
        d.sent = Some(Sent {
            text: "  ".into(),
            also_in_room: false,
        });
        assert!(d.is_empty(), "nothing is left to send");
    }

    #[test]
    fn a_message_takes_at_most_ten_files_and_says_how_many_were_left_out() {
        let mut d = Draft::new("c".into(), "s".into(), Target::Main, 0);
        assert_eq!(d.room_for(3), (3, None));
        d.chips = (0..8)
            .map(|i| Chip::new(format!("u{i}"), "f".into(), 1, String::new()))
            .collect();
        let (taken, note) = d.room_for(5);
        assert_eq!(taken, 2);
        assert_eq!(
            note.as_deref(),
            Some("A message can carry 10 files; 3 left out.")
        );
    }

    #[test]
    fn a_thumbnail_fits_320_pixels_and_never_grows_a_small_image() {
        assert_eq!(thumb_size(4000, 3000), (320, 240));
        assert_eq!(thumb_size(1080, 1920), (180, 320));
        assert_eq!(thumb_size(200, 100), (200, 100));
    }

    #[test]
    fn a_draft_survives_being_written_as_json() {
        let mut d = Draft::new("c1".into(), "cats".into(), Target::Thread(7), 5);
        let mut c = chip();
        c.measured(
            Measured {
                width: Some(1),
                height: Some(2),
                duration_ms: Some(3),
            },
            true,
        );
        d.chips.push(c);
        let json = serde_json::to_string(&d).expect("serializes");
        let mut back = serde_json::from_str::<Draft>(&json).expect("reads");
        assert_eq!(back.target, Target::Thread(7));
        assert_eq!(back.chips[0].step, Step::Measuring);
        back.chips[0].measured(d.chips[0].measured, true);
        assert_eq!(back, d);
        let main = Draft::new("c2".into(), "cats".into(), Target::Main, 5);
        let json = serde_json::to_string(&main).expect("serializes");
        assert!(json.contains(r#""target":null"#), "{json}");
    }

    #[test]
    fn retries_are_for_waiting_problems_not_for_refusals() {
        assert!(retryable(ErrorCode::Unknown, 0), "no answer");
        assert!(retryable(ErrorCode::Internal, 500));
        assert!(retryable(ErrorCode::RateLimited, 429));
        assert!(!retryable(ErrorCode::TooLarge, 413));
        assert!(!retryable(ErrorCode::QuotaExceeded, 507));
        assert!(!retryable(ErrorCode::UnsupportedMedia, 415));
        assert!(!retryable(ErrorCode::Forbidden, 403));
    }
}
