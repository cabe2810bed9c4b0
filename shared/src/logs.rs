//! Structured logs (issue 12): the entries the Worker, the rooms, the assistant and the browser
//! report, the rules that make them safe to keep, and the shapes the logger Worker (`logger/`)
//! stores and answers.
//!
//! **The rule: a log never carries chat message text**, nor emails, tokens, cookies or other
//! secrets. Three layers keep it so:
//! 1. Callers build entries from structured parts ([`LogEntry::event`] takes a `&'static str`
//!    message; context fields are typed and validated), so user text has no natural way in.
//!    Text that might hold user input anyway (a debug dump of a frame) is wrapped with
//!    [`mark_user_text`], and everything between the markers is removed.
//! 2. [`scrub`] runs on every entry before it leaves its reporter (the Worker, the app).
//! 3. The logger runs [`scrub`] again on what it receives: it never trusts the caller.
//!
//! Keys ([`key_for`]) are ordered newest first under KV's ascending listing, and each carries
//! a [`KeyMeta`] so a listing filters by level and time without reading values.
//!
//! Two clocks: [`LogEntry::at`] is when the thing happened by its reporter's clock (the
//! browser's may be wrong); [`LogRecord::logged_at`] is when the logger stored it, by the
//! logger's clock. The log is ordered, paged, tailed and time-filtered by `logged_at`, so an
//! entry that arrives late (a browser's batch) still shows up in a live tail.

use serde::{Deserialize, Serialize};

use crate::error::{ChatError, ErrorCode};

/// Longest [`LogEntry::message`], in characters.
pub const MAX_MESSAGE_CHARS: usize = 500;
/// Longest [`LogError::detail`], in characters.
pub const MAX_DETAIL_CHARS: usize = 2_000;
/// Longest [`LogContext::route`], in characters.
pub const MAX_ROUTE_CHARS: usize = 200;
/// Largest entry, serialized as JSON, in bytes. [`scrub`] shrinks an entry to fit.
pub const MAX_ENTRY_BYTES: usize = 8 * 1024;
/// Most entries in one [`LogBatch`].
pub const MAX_BATCH_ENTRIES: usize = 50;
/// Largest [`LogBatch`] body, in bytes: a full batch of full entries plus the envelope.
pub const MAX_BATCH_BYTES: usize = MAX_BATCH_ENTRIES * (MAX_ENTRY_BYTES + 1) + 1024;
/// Longest [`KeyMeta::summary`], in bytes (KV allows 1024 bytes of metadata per key).
pub const MAX_SUMMARY_BYTES: usize = 200;
/// Longest search text of a [`Filter`], in characters.
pub const MAX_QUERY_CHARS: usize = 200;
/// How long the logger keeps an entry: 30 days (KV `expirationTtl`).
pub const RETENTION_SECONDS: u64 = 30 * 24 * 60 * 60;
/// Entries in a page when the query does not say.
pub const DEFAULT_PAGE: usize = 50;
/// Most entries in one page.
pub const MAX_PAGE: usize = 100;
/// The prefix of every log entry's KV key (the namespace may hold other keys later).
pub const KEY_PREFIX: &str = "log/";
/// The longest `unique` part of a key, in bytes.
pub const MAX_UNIQUE: usize = 32;
/// The domain string a caller puts before the user id in the HMAC of [`UserHash`], so the hash
/// is never equal to another keyed hash of the same id made for another purpose.
pub const USER_HASH_DOMAIN: &str = "durable-chat/logs/user/v1:";

/// Opens text that may hold user input; see [`mark_user_text`].
pub const USER_TEXT_START: char = '\u{27E6}'; // ⟦
/// Closes text opened by [`USER_TEXT_START`].
pub const USER_TEXT_END: char = '\u{27E7}'; // ⟧

/// What a scrubbed span of user text becomes.
pub const REMOVED_TEXT: &str = "[text]";
/// What a scrubbed credential value (cookie, header, query or form value) becomes.
pub const REDACTED: &str = "[redacted]";
/// What a scrubbed email address becomes.
pub const REDACTED_EMAIL: &str = "[email]";
/// What a scrubbed JSON Web Token becomes.
pub const REDACTED_JWT: &str = "[jwt]";
/// What a scrubbed long random-looking string (key, hash, id) becomes.
pub const REDACTED_SECRET: &str = "[secret]";

/// How serious an entry is. Ordered: `Debug < Info < Warn < Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Detail for debugging.
    Debug,
    /// Something worth knowing happened.
    Info,
    /// Something went wrong and was handled.
    Warn,
    /// Something failed (every 5xx, every `internal`).
    Error,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 4] = [Level::Debug, Level::Info, Level::Warn, Level::Error];

    /// The level's name on the wire and in queries.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// The level a name stands for.
    pub fn parse(name: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.as_str() == name)
    }

    /// This level and every more serious one (a viewer's "warn and above").
    pub fn and_above(self) -> Vec<Level> {
        Level::ALL.into_iter().filter(|l| *l >= self).collect()
    }
}

/// Who reported an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The main Worker (routes, sessions, the directory).
    Worker,
    /// A room's Durable Object.
    Room,
    /// The assistant's provider calls (Workers AI or an OpenAI-compatible server).
    Assistant,
    /// The app in a browser (panics, failed requests), reported through the Worker.
    Browser,
}

impl Source {
    /// The source's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Worker => "worker",
            Source::Room => "room",
            Source::Assistant => "assistant",
            Source::Browser => "browser",
        }
    }
}

/// A pseudonymous user: the first 128 bits of a keyed hash of the user's id, as 32 lowercase
/// hex characters. Entries of one user can be grouped; nobody without the key can tell who it
/// is, and rotating the key unlinks old entries from new ones.
///
/// `shared` has no crypto, so the caller computes the MAC: HMAC-SHA256 with a logging key (the
/// Worker derives one from its session secret) over [`USER_HASH_DOMAIN`] followed by the user
/// id, and hands the result to [`UserHash::from_mac`]. This is not a plain hash on purpose:
/// user ids are short and guessable, and an unkeyed hash of one is only a lookup away from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserHash(String);

impl UserHash {
    /// Hex characters in a user hash.
    pub const LEN: usize = 32;

    /// The hash from a MAC the caller computed (at least 16 bytes; the rest is dropped).
    /// `None` for a shorter input: a truncated MAC would be guessable.
    pub fn from_mac(mac: &[u8]) -> Option<UserHash> {
        (mac.len() >= Self::LEN / 2).then(|| UserHash(hex(&mac[..Self::LEN / 2])))
    }

    /// A hash received as text, if it has the shape of one.
    pub fn parse(text: &str) -> Option<UserHash> {
        is_user_hash(text).then(|| UserHash(text.to_string()))
    }

    /// The hex text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_user_hash(text: &str) -> bool {
    text.len() == UserHash::LEN && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Where an entry happened. Every field is optional and validated by [`scrub`]: a field that
/// does not have its documented shape is dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogContext {
    /// The route, as a path (`/api/rooms/:slug/ws` or the concrete path); query values of
    /// credentials and search text are scrubbed. At most [`MAX_ROUTE_CHARS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The room's slug.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    /// The request's id (`cf-ray` or the Worker's own): letters, digits and `-_.:`, at most 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The user, pseudonymous ([`UserHash`]); never the user id itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserHash>,
}

/// The error an entry reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogError {
    /// A stable code: an [`ErrorCode`] name, or another short `snake_case` name (`panic`,
    /// `fetch_failed`). Lowercase letters, digits and `_.-`, at most 40; otherwise `unknown`.
    pub code: String,
    /// What went wrong, for the operator: the provider's status and text, a panic's message.
    /// Scrubbed, at most [`MAX_DETAIL_CHARS`].
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    /// When it happened, by the reporter's clock (ms since the Unix epoch).
    pub at: i64,
    /// How serious.
    pub level: Level,
    /// What happened, in a fixed sentence or event name (`ai_failed`, `request failed`): never
    /// user text (see the module's rule). At most [`MAX_MESSAGE_CHARS`].
    pub message: String,
    /// Who reported it.
    pub source: Source,
    /// Where it happened.
    #[serde(default)]
    pub context: LogContext,
    /// The error, if it reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<LogError>,
}

impl LogEntry {
    /// An entry whose message is a fixed text chosen by the code (a `&'static str`, so nothing a
    /// user typed can be formatted into it). Add context and the error with the `with_*`
    /// methods; they validate as [`scrub`] does.
    pub fn event(at: i64, level: Level, source: Source, message: &'static str) -> LogEntry {
        LogEntry {
            at,
            level,
            message: message.to_string(),
            source,
            context: LogContext::default(),
            error: None,
        }
    }

    /// A server failure: every 5xx and every `internal` of the Worker or a room. The level is
    /// `error` for a 5xx, `warn` otherwise.
    pub fn server_error(
        at: i64,
        source: Source,
        route: &str,
        status: u16,
        code: ErrorCode,
        detail: &str,
    ) -> LogEntry {
        let level = if status >= 500 || code == ErrorCode::Internal {
            Level::Error
        } else {
            Level::Warn
        };
        LogEntry::event(at, level, source, "request failed")
            .with_route(route)
            .with_error(code.as_str(), &format!("status {status}: {detail}"))
    }

    /// The assistant's provider failed (`ai_failed`, `ai_timeout`, `ai_unavailable`, ...):
    /// `provider` names it (`workers-ai`, `openai`), `status` is its HTTP status if it
    /// answered, `detail` its error text (scrubbed).
    pub fn provider_failure(
        at: i64,
        room: &str,
        code: ErrorCode,
        provider: &str,
        status: Option<u16>,
        detail: &str,
    ) -> LogEntry {
        let status = status.map_or_else(|| "no status".to_string(), |s| format!("status {s}"));
        LogEntry::event(
            at,
            Level::Error,
            Source::Assistant,
            "assistant provider failed",
        )
        .with_room(room)
        .with_error(code.as_str(), &format!("{provider} ({status}): {detail}"))
    }

    /// A panic in the app: `panic` is the panic's message and location.
    pub fn browser_panic(at: i64, route: &str, panic: &str) -> LogEntry {
        LogEntry::event(at, Level::Error, Source::Browser, "panic")
            .with_route(route)
            .with_error("panic", panic)
    }

    /// A request of the app that failed: `status` is `None` when no answer came (network
    /// error), `code` the API's error code if it sent one.
    pub fn browser_failed_request(
        at: i64,
        route: &str,
        method: &str,
        status: Option<u16>,
        code: Option<&str>,
    ) -> LogEntry {
        let level = match status {
            Some(s) if s < 500 => Level::Warn,
            _ => Level::Error,
        };
        let method: String = method
            .chars()
            .filter(char::is_ascii_alphabetic)
            .take(10)
            .collect();
        let status = status.map_or_else(|| "no answer".to_string(), |s| format!("status {s}"));
        LogEntry::event(at, level, Source::Browser, "request failed")
            .with_route(route)
            .with_error(
                code.unwrap_or("fetch_failed"),
                &format!("{} {status}", method.to_ascii_uppercase()),
            )
    }

    /// With a route (scrubbed and capped).
    pub fn with_route(mut self, route: &str) -> LogEntry {
        self.context.route = clean_route(route);
        self
    }

    /// With a room slug (dropped unless it is a valid slug).
    pub fn with_room(mut self, slug: &str) -> LogEntry {
        self.context.room = clean_room(slug);
        self
    }

    /// With a request id (dropped unless it has the shape of one).
    pub fn with_request_id(mut self, id: &str) -> LogEntry {
        self.context.request_id = clean_request_id(id);
        self
    }

    /// With the pseudonymous user.
    pub fn with_user(mut self, user: UserHash) -> LogEntry {
        self.context.user = Some(user);
        self
    }

    /// With an error code and detail (scrubbed and capped).
    pub fn with_error(mut self, code: &str, detail: &str) -> LogEntry {
        self.error = Some(LogError {
            code: clean_code(code),
            detail: clean_free_text(detail, MAX_DETAIL_CHARS),
        });
        self
    }

    /// The entry as JSON, in bytes (what [`MAX_ENTRY_BYTES`] bounds).
    pub fn json_len(&self) -> usize {
        serde_json::to_string(self).map_or(usize::MAX, |s| s.len())
    }

    /// Whether `text` (lowercased by the caller) occurs in the message, the error or the
    /// context, ignoring case.
    pub fn contains_text(&self, needle_lower: &str) -> bool {
        let found = |s: &str| s.to_lowercase().contains(needle_lower);
        found(&self.message)
            || self
                .error
                .as_ref()
                .is_some_and(|e| found(&e.code) || found(&e.detail))
            || self.context.route.as_deref().is_some_and(found)
            || self.context.room.as_deref().is_some_and(found)
            || self.context.request_id.as_deref().is_some_and(found)
            || found(self.source.as_str())
    }

    /// Checks what the logger refuses outright (after [`scrub`] has made the rest safe): an
    /// entry with no message, a time before 2000 or an entry larger than
    /// [`MAX_ENTRY_BYTES`] as received.
    pub fn validate(&self) -> Result<(), ChatError> {
        if self.message.trim().is_empty() {
            return Err(ChatError::new(ErrorCode::InvalidInput, "message is empty"));
        }
        if self.at < 946_684_800_000 {
            return Err(ChatError::new(
                ErrorCode::InvalidInput,
                "at must be milliseconds since the Unix epoch",
            ));
        }
        if self.json_len() > MAX_ENTRY_BYTES {
            return Err(ChatError::new(
                ErrorCode::TooLarge,
                format!("an entry is at most {MAX_ENTRY_BYTES} bytes of JSON"),
            ));
        }
        Ok(())
    }
}

/// Wraps text that may hold user input (a frame dumped for debugging) so [`scrub`] removes it
/// whole: the log keeps only that something was there. Marker characters inside `text` are
/// dropped so it cannot close its own span early.
pub fn mark_user_text(text: &str) -> String {
    let inner: String = text
        .chars()
        .filter(|c| *c != USER_TEXT_START && *c != USER_TEXT_END)
        .collect();
    format!("{USER_TEXT_START}{inner}{USER_TEXT_END}")
}

/// Makes an entry safe to store, in place: scrubs the free text (message, error detail, route;
/// see [`scrub_text`]), drops context fields that do not have their documented shape, caps
/// every field, and shrinks the entry until its JSON fits [`MAX_ENTRY_BYTES`]. Idempotent.
pub fn scrub(entry: &mut LogEntry) {
    entry.message = clean_free_text(&entry.message, MAX_MESSAGE_CHARS);
    if let Some(error) = entry.error.as_mut() {
        error.code = clean_code(&error.code);
        error.detail = clean_free_text(&error.detail, MAX_DETAIL_CHARS);
    }
    let context = &mut entry.context;
    context.route = context.route.as_deref().and_then(clean_route);
    context.room = context.room.as_deref().and_then(clean_room);
    context.request_id = context.request_id.as_deref().and_then(clean_request_id);
    if context.user.as_ref().is_some_and(|u| !is_user_hash(&u.0)) {
        context.user = None;
    }
    // Multi-byte characters and JSON escapes can make capped fields still too large together.
    for _ in 0..8 {
        let len = entry.json_len();
        if len <= MAX_ENTRY_BYTES {
            return;
        }
        let over = len - MAX_ENTRY_BYTES;
        let shrink = |text: &mut String| {
            let keep = text.len().saturating_sub(over + 16);
            *text = cut_bytes(text, keep);
        };
        match entry.error.as_mut() {
            Some(error) if !error.detail.is_empty() => shrink(&mut error.detail),
            _ => shrink(&mut entry.message),
        }
    }
    if entry.json_len() > MAX_ENTRY_BYTES {
        // Escapes at worst multiply by 6: this always fits.
        entry.message = truncate_chars(&entry.message, 100);
        if let Some(error) = entry.error.as_mut() {
            error.detail.clear();
        }
    }
}

fn clean_free_text(text: &str, max_chars: usize) -> String {
    // Bound the work on hostile input: only the start can survive the cap anyway. The cut
    // backs off to a space so a secret cut in two is not left as a short, unrecognised piece.
    let budget = max_chars * 8;
    let text = if text.len() > budget {
        let cut = cut_bytes(text, budget);
        match cut.rfind(char::is_whitespace) {
            Some(space) => cut[..space].to_string(),
            None => cut,
        }
    } else {
        text.to_string()
    };
    truncate_chars(&scrub_text(&text), max_chars)
}

fn clean_route(route: &str) -> Option<String> {
    let route = clean_free_text(route.trim(), MAX_ROUTE_CHARS);
    (!route.is_empty()).then_some(route)
}

fn clean_room(slug: &str) -> Option<String> {
    crate::limits::is_valid_slug(slug).then(|| slug.to_string())
}

fn clean_request_id(id: &str) -> Option<String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    ok.then(|| id.to_string())
}

fn clean_code(code: &str) -> String {
    let ok = !code.is_empty()
        && code.len() <= 40
        && code
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'));
    if ok {
        code.to_string()
    } else {
        "unknown".to_string()
    }
}

/// At most `max` characters; a cut text ends with `…`.
fn truncate_chars(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// At most `max` bytes, cut at a character boundary.
fn cut_bytes(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Scrubbing free text.

/// Removes what a log must never keep from free text, in this order:
/// - text between [`USER_TEXT_START`] and [`USER_TEXT_END`] (to the end if unclosed) →
///   [`REMOVED_TEXT`];
/// - the values of `Cookie`, `Set-Cookie`, `Authorization`, `Proxy-Authorization`,
///   `X-Api-Key` and `X-Auth-Token` headers (to the end of the line, or the quoted JSON value)
///   → [`REDACTED`];
/// - the credential after `Bearer` (and after `Basic` when it looks like one) → [`REDACTED`];
/// - the values of query parameters named `token`, `code`, `key`, `secret`, `session`,
///   `password`, `state`, `sig` and of search text (`q`, `query`, `text`, `message`, `body`,
///   `content`, `search`), and anywhere, of `name=value` or `name: value` pairs whose name
///   contains `token`, `secret`, `passw`, `pwd`, `session`, `cookie`, `apikey`, `api_key`,
///   `credential`, `signature` or `private_key` → [`REDACTED`];
/// - email addresses (also with `%40`) → [`REDACTED_EMAIL`];
/// - JSON Web Tokens (`eyJ….….…`) → [`REDACTED_JWT`];
/// - long random-looking strings: 32 or more hex digits (keys, hashes, user ids, UUIDs), or
///   24 or more characters of base64 that change between upper case, lower case and digits as
///   often as random text does → [`REDACTED_SECRET`].
///
/// Words, paths, slugs, numbers, codes and `CamelCase` names survive.
pub fn scrub_text(text: &str) -> String {
    let text = remove_user_text(text);
    let text = redact_headers(&text);
    let text = redact_auth_schemes(&text);
    let text = redact_pairs(&text);
    let text = redact_emails(&text);
    let text = redact_jwts(&text);
    redact_secrets(&text)
}

/// Replaces byte ranges (sorted, non-overlapping) of `text` with `with`.
fn replace_ranges(text: &str, ranges: &[(usize, usize, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (start, end, with) in ranges {
        out.push_str(&text[at..*start]);
        out.push_str(with);
        at = *end;
    }
    out.push_str(&text[at..]);
    out
}

fn remove_user_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find(USER_TEXT_START) {
        out.push_str(&rest[..start]);
        out.push_str(REMOVED_TEXT);
        let after = &rest[start + USER_TEXT_START.len_utf8()..];
        match after.find(USER_TEXT_END) {
            Some(end) => rest = &after[end + USER_TEXT_END.len_utf8()..],
            None => return out,
        }
    }
    out.push_str(rest);
    out
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Where the value after a `name` ending at `end` starts: past an optional closing quote,
/// spaces, `=` or `:`, spaces. `None` if no separator follows.
fn value_start(bytes: &[u8], mut i: usize, allow_colon: bool) -> Option<usize> {
    if i < bytes.len() && matches!(bytes[i], b'"' | b'\'') {
        i += 1;
    }
    while i < bytes.len() && bytes[i] == b' ' {
        i += 1;
    }
    match bytes.get(i) {
        Some(b'=') => {}
        Some(b':') if allow_colon => {}
        _ => return None,
    }
    i += 1;
    while i < bytes.len() && matches!(bytes[i], b' ' | b'\t') {
        i += 1;
    }
    Some(i)
}

/// The end of a value starting at `start`: a quoted value ends at its closing quote (the
/// quotes stay), a bare one at the first byte `stop` accepts.
fn value_range(bytes: &[u8], start: usize, stop: impl Fn(u8) -> bool) -> (usize, usize) {
    if let Some(&q) = bytes.get(start).filter(|b| matches!(b, b'"' | b'\'')) {
        let from = start + 1;
        let mut end = from;
        while end < bytes.len() && bytes[end] != q {
            if bytes[end] == b'\\' {
                end += 1;
            }
            end += 1;
        }
        (from, end.min(bytes.len()))
    } else {
        let mut end = start;
        while end < bytes.len() && !stop(bytes[end]) {
            end += 1;
        }
        (start, end)
    }
}

const SECRET_HEADERS: [&str; 6] = [
    "proxy-authorization",
    "authorization",
    "set-cookie",
    "cookie",
    "x-api-key",
    "x-auth-token",
];

fn redact_headers(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !is_name_byte(bytes[i - 1]);
        let header = boundary
            .then(|| {
                SECRET_HEADERS
                    .into_iter()
                    .find(|h| lower.as_bytes()[i..].starts_with(h.as_bytes()))
            })
            .flatten()
            .filter(|h| !bytes.get(i + h.len()).is_some_and(|b| is_name_byte(*b)));
        let Some(header) = header else {
            i += 1;
            continue;
        };
        let name_end = i + header.len();
        match value_start(bytes, name_end, true) {
            Some(start) => {
                let (from, end) = value_range(bytes, start, |b| b == b'\n' || b == b'\r');
                if end > from {
                    ranges.push((from, end, REDACTED));
                }
                i = end.max(name_end);
            }
            None => i = name_end,
        }
    }
    replace_ranges(text, &ranges)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'+' | b'/' | b'=')
}

fn redact_auth_schemes(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !bytes[i - 1].is_ascii_alphanumeric();
        let scheme = ["bearer", "basic"]
            .into_iter()
            .find(|s| boundary && lower.as_bytes()[i..].starts_with(s.as_bytes()));
        let Some(scheme) = scheme else {
            i += 1;
            continue;
        };
        let mut start = i + scheme.len();
        if !bytes.get(start).is_some_and(|b| *b == b' ' || *b == b'\t') {
            i = start;
            continue;
        }
        while start < bytes.len() && matches!(bytes[start], b' ' | b'\t') {
            start += 1;
        }
        let mut end = start;
        while end < bytes.len() && is_token_byte(bytes[end]) {
            end += 1;
        }
        let token = &text[start..end];
        // "Basic" is also an English word: only a credential-looking word after it goes.
        let credential = match scheme {
            "bearer" => !token.is_empty(),
            _ => {
                token.len() >= 8
                    && token
                        .bytes()
                        .any(|b| b.is_ascii_digit() || b == b'=' || b.is_ascii_uppercase())
            }
        };
        if credential {
            ranges.push((start, end, REDACTED));
        }
        i = end.max(i + scheme.len());
    }
    replace_ranges(text, &ranges)
}

/// Names whose value is a secret anywhere (`name=value`, `name: value`, `"name": "value"`).
const SECRET_NAME_PARTS: [&str; 11] = [
    "token",
    "secret",
    "passw",
    "pwd",
    "session",
    "cookie",
    "apikey",
    "api_key",
    "credential",
    "signature",
    "private_key",
];
/// Query parameters whose value is a credential or a search's text.
const SECRET_QUERY_NAMES: [&str; 15] = [
    "code", "state", "key", "sig", "auth", "token", "secret", "session", "password", "q", "query",
    "text", "message", "body", "content",
];

fn redact_pairs(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !is_name_byte(bytes[i]) || (i > 0 && is_name_byte(bytes[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_name_byte(bytes[i]) {
            i += 1;
        }
        let name = text[start..i].to_ascii_lowercase();
        let in_query = start > 0 && matches!(bytes[start - 1], b'?' | b'&');
        let secret_anywhere = SECRET_NAME_PARTS.iter().any(|p| name.contains(p));
        let secret_in_query = in_query
            && (SECRET_QUERY_NAMES.contains(&name.as_str()) || name == "search" || secret_anywhere);
        if !(secret_anywhere || secret_in_query) {
            continue;
        }
        let Some(value) = value_start(bytes, i, !in_query) else {
            continue;
        };
        // Already scrubbed (a second pass): leave the placeholder whole.
        if bytes[value..].starts_with(REDACTED.as_bytes())
            || bytes[value..].starts_with(format!("\"{REDACTED}").as_bytes())
        {
            continue;
        }
        let (from, end) = value_range(bytes, value, |b| {
            b.is_ascii_whitespace()
                || matches!(
                    b,
                    b'&' | b',' | b';' | b'}' | b']' | b')' | b'#' | b'"' | b'\'' | b'<' | b'>'
                )
        });
        if end > from {
            ranges.push((from, end, REDACTED));
            i = end;
        }
    }
    replace_ranges(text, &ranges)
}

fn is_email_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

fn is_domain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

fn redact_emails(text: &str) -> String {
    let bytes = text.as_bytes();
    let lower = text.to_ascii_lowercase();
    let mut ranges = Vec::new();
    let mut i = 0;
    let mut done = 0; // ranges may not overlap
    while i < bytes.len() {
        let at_len = if bytes[i] == b'@' {
            1
        } else if lower.as_bytes()[i..].starts_with(b"%40") {
            3
        } else {
            i += 1;
            continue;
        };
        let mut left = i;
        while left > done && is_email_local(bytes[left - 1]) {
            left -= 1;
        }
        let mut right = i + at_len;
        while right < bytes.len() && is_domain_byte(bytes[right]) {
            right += 1;
        }
        while right > i + at_len && matches!(bytes[right - 1], b'.' | b'-') {
            right -= 1;
        }
        let domain = &text[i + at_len..right];
        let tld_ok = domain.rsplit_once('.').is_some_and(|(host, tld)| {
            !host.is_empty() && tld.len() >= 2 && tld.bytes().all(|b| b.is_ascii_alphabetic())
        });
        if left < i && tld_ok {
            ranges.push((left, right, REDACTED_EMAIL));
            done = right;
            i = right;
        } else {
            i += at_len;
        }
    }
    replace_ranges(text, &ranges)
}

fn is_b64url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=')
}

fn redact_jwts(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let boundary = i == 0 || !is_b64url_byte(bytes[i - 1]);
        if !(boundary && bytes[i..].starts_with(b"eyJ")) {
            i += 1;
            continue;
        }
        let mut end = i;
        while end < bytes.len() && (is_b64url_byte(bytes[end]) || bytes[end] == b'.') {
            end += 1;
        }
        let token = text[i..end].trim_end_matches('.');
        let segments: Vec<&str> = token.split('.').collect();
        if segments.len() >= 3 && segments.iter().take(2).all(|s| s.len() >= 4) {
            ranges.push((i, i + token.len(), REDACTED_JWT));
        }
        i = end.max(i + 3);
    }
    replace_ranges(text, &ranges)
}

fn is_secret_run_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-')
}

fn redact_secrets(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if !is_secret_run_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_secret_run_byte(bytes[i]) {
            i += 1;
        }
        let run = &text[start..i];
        // Standard base64 has `/` in it, and so do paths: judge each `/` segment, then decide
        // how much to remove. A path (with a segment that is a lowercase word of 3 letters or more)
        // loses only its secret segments; anything else goes whole, so no piece of a
        // base64 secret split by `/` survives.
        let mut flagged = Vec::new();
        let mut offset = start;
        for part in run.split('/') {
            if looks_secret(part) {
                flagged.push((offset, offset + part.len(), REDACTED_SECRET));
            }
            offset += part.len() + 1;
        }
        let path_like = run
            .split('/')
            .any(|part| part.len() >= 3 && part.bytes().all(|b| b.is_ascii_lowercase()));
        if path_like {
            ranges.extend(flagged);
        } else if !flagged.is_empty() || looks_secret(run) {
            ranges.push((start, i, REDACTED_SECRET));
        }
    }
    replace_ranges(text, &ranges)
}

/// Whether a run of base64/hex characters looks like a key, token, hash or id rather than a
/// word, a slug, a path or a name:
/// - 32 or more hex digits (and `-`): keys, hashes, user ids, UUIDs;
/// - at least 20 letters and digits that break into "words" (a digit run, a lowercase run
///   with one capital before it, a run of capitals) at 32 or more words per 100 characters.
///   Random base64 does so at about 55 (under 32 once in a hundred draws of 20 characters,
///   far less for longer ones); `CamelCaseNames`, `snake_case`, slugs and paths stay under
///   30. Random text of only lowercase letters (and digits) is not recognised reliably: that
///   is why credentials are also found by their names (cookies, `token=`, `Bearer`).
fn looks_secret(run: &str) -> bool {
    let core = run.trim_end_matches('=');
    let hex_digits = core.bytes().filter(u8::is_ascii_hexdigit).count();
    if hex_digits >= 32 && core.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return true;
    }
    let (alnum, words) = words_in(core.as_bytes());
    alnum >= 20 && words * 100 >= alnum * 32
}

/// Letters and digits in `s`, and the words they form (see [`looks_secret`]).
fn words_in(s: &[u8]) -> (usize, usize) {
    let run = |mut i: usize, test: fn(&u8) -> bool| {
        while i < s.len() && test(&s[i]) {
            i += 1;
        }
        i
    };
    let (mut i, mut words) = (0, 0);
    while i < s.len() {
        let b = s[i];
        if b.is_ascii_digit() {
            i = run(i, u8::is_ascii_digit);
            words += 1;
        } else if b.is_ascii_uppercase() {
            let end = run(i, u8::is_ascii_uppercase);
            if end < s.len() && s[end].is_ascii_lowercase() {
                // `HTTPServer`: `HTTP` and `Server`.
                words += usize::from(end - i >= 2) + 1;
                i = run(end, u8::is_ascii_lowercase);
            } else {
                words += 1;
                i = end;
            }
        } else if b.is_ascii_lowercase() {
            i = run(i, u8::is_ascii_lowercase);
            words += 1;
        } else {
            i += 1;
        }
    }
    (
        s.iter().filter(|b| b.is_ascii_alphanumeric()).count(),
        words,
    )
}

// ---------------------------------------------------------------------------------------------
// Keys, metadata, records.

/// The largest time a key can hold (ms; the year 2286).
const MAX_KEY_MS: i64 = 9_999_999_999_999;

/// The KV key of an entry stored at `logged_at` (ms): [`KEY_PREFIX`], the time inverted
/// (`9999999999999 - ms`, 13 digits) so that KV's ascending listing yields the newest first,
/// `-`, and `unique` (lowercase letters and digits, at most [`MAX_UNIQUE`]; anything else is
/// dropped), which keeps two entries of one millisecond apart — KV allows one write per second
/// per key, so every entry gets its own key. Within one millisecond, keys order by `unique`.
pub fn key_for(logged_at: i64, unique: &str) -> String {
    let inverted = MAX_KEY_MS - logged_at.clamp(0, MAX_KEY_MS);
    let unique: String = unique
        .chars()
        .filter(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        .take(MAX_UNIQUE)
        .collect();
    format!("{KEY_PREFIX}{inverted:013}-{unique}")
}

/// The time and unique part of a key made by [`key_for`]; `None` for anything else.
pub fn parse_key(key: &str) -> Option<(i64, &str)> {
    let rest = key.strip_prefix(KEY_PREFIX)?;
    let (digits, unique) = rest.split_once('-')?;
    let valid_unique = !unique.is_empty()
        && unique.len() <= MAX_UNIQUE
        && unique
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase());
    if digits.len() != 13 || !digits.bytes().all(|b| b.is_ascii_digit()) || !valid_unique {
        return None;
    }
    let inverted: i64 = digits.parse().ok()?;
    Some((MAX_KEY_MS - inverted, unique))
}

/// The metadata stored with each key, so a listing can filter by level and time and show a
/// line without reading values. Short field names: KV allows 1024 bytes of metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMeta {
    /// The entry's level.
    #[serde(rename = "l")]
    pub level: Level,
    /// The entry's [`LogEntry::at`].
    #[serde(rename = "a")]
    pub at: i64,
    /// The entry's source.
    #[serde(rename = "s")]
    pub source: Source,
    /// The start of the (scrubbed) message, at most [`MAX_SUMMARY_BYTES`].
    #[serde(rename = "m")]
    pub summary: String,
}

impl KeyMeta {
    /// The metadata of a scrubbed entry.
    pub fn of(entry: &LogEntry) -> KeyMeta {
        KeyMeta {
            level: entry.level,
            at: entry.at,
            source: entry.source,
            summary: cut_bytes(&entry.message, MAX_SUMMARY_BYTES),
        }
    }
}

/// A stored entry, as the logger answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogRecord {
    /// Its KV key (what a tail's `after` takes).
    pub key: String,
    /// When the logger stored it (ms, the logger's clock): the log's order.
    pub logged_at: i64,
    /// The entry.
    pub entry: LogEntry,
}

/// The body of `POST /entries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogBatch {
    /// At most [`MAX_BATCH_ENTRIES`], in the order they happened (oldest first).
    pub entries: Vec<LogEntry>,
}

/// An entry of a batch the logger did not store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedEntry {
    /// Its index in the batch.
    pub index: usize,
    /// Why: `invalid_frame` (not an entry's shape), `invalid_input`, `too_large`.
    pub code: ErrorCode,
    /// A human explanation.
    pub message: String,
}

/// The answer to `POST /entries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchReceipt {
    /// Entries stored.
    pub written: usize,
    /// Entries refused, with why.
    pub rejected: Vec<RejectedEntry>,
}

/// A page of `GET /entries`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPage {
    /// The entries. With a text search a page may hold fewer than the limit (even none) while
    /// a cursor remains: each request reads a bounded number of values.
    pub entries: Vec<LogRecord>,
    /// Where the next page starts (pass it as `cursor`); `None` when the log is exhausted.
    pub cursor: Option<String>,
}

/// The answer to `GET /entries/tail`: what was stored since `after`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailPage {
    /// New entries that match, newest first, at most the limit.
    pub entries: Vec<LogRecord>,
    /// Pass this as the next poll's `after`: the newest key seen (matching or not). `None`
    /// only while the log is empty.
    pub after: Option<String>,
    /// More matched than one answer holds (or too many arrived to scan): the entries shown are
    /// the newest, and some older new ones were skipped — reload the page to see them all.
    pub gap: bool,
}

// ---------------------------------------------------------------------------------------------
// Queries.

/// Where a listing resumes: past the key `after`, in the KV listing that starts at `list`
/// (a KV list cursor; `None` for the first). Encoded as `after~list`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageCursor {
    /// The last key examined (keys up to it are skipped).
    pub after: Option<String>,
    /// The KV list cursor of the listing to resume.
    pub list: Option<String>,
}

impl PageCursor {
    /// The cursor as text for a query.
    pub fn encode(&self) -> String {
        format!(
            "{}~{}",
            self.after.as_deref().unwrap_or(""),
            self.list.as_deref().unwrap_or("")
        )
    }

    /// A cursor from [`PageCursor::encode`]'s text.
    pub fn parse(text: &str) -> Option<PageCursor> {
        let (after, list) = text.split_once('~')?;
        if !after.is_empty() && parse_key(after).is_none() {
            return None;
        }
        if list.len() > 1024 || list.chars().any(|c| c.is_control()) {
            return None;
        }
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        Some(PageCursor {
            after: some(after),
            list: some(list),
        })
    }
}

/// What to list: `GET /entries?level=&from=&to=&q=&cursor=&limit=`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    /// Levels to keep (`level=warn,error`); empty keeps all.
    pub levels: Vec<Level>,
    /// Stored at or after (ms, inclusive; `from=`).
    pub from: Option<i64>,
    /// Stored at or before (ms, inclusive; `to=`).
    pub to: Option<i64>,
    /// Text the entry contains, ignoring case (`q=`; message, error, route, room, request id).
    pub text: Option<String>,
    /// Where to resume ([`LogPage::cursor`]; `cursor=`).
    pub cursor: Option<PageCursor>,
    /// Entries per page (`limit=`, 1 to [`MAX_PAGE`]; [`DEFAULT_PAGE`] if unset).
    pub limit: Option<usize>,
}

fn invalid(message: impl Into<String>) -> ChatError {
    ChatError::new(ErrorCode::InvalidInput, message)
}

impl Filter {
    /// The page size to use.
    pub fn page_size(&self) -> usize {
        self.limit.unwrap_or(DEFAULT_PAGE).clamp(1, MAX_PAGE)
    }

    /// The search text, lowercased, if any.
    pub fn needle(&self) -> Option<String> {
        self.text
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_lowercase)
    }

    /// Whether a key stored at `logged_at` with this metadata can match: level and time (the
    /// text needs the value). Keys without metadata pass the level check.
    pub fn admits(&self, logged_at: i64, meta: Option<&KeyMeta>) -> bool {
        self.admits_time(logged_at)
            && (self.levels.is_empty() || meta.is_none_or(|m| self.levels.contains(&m.level)))
    }

    fn admits_time(&self, logged_at: i64) -> bool {
        self.from.is_none_or(|from| logged_at >= from) && self.to.is_none_or(|to| logged_at <= to)
    }

    /// Whether a stored entry matches every part of the filter.
    pub fn matches(&self, record: &LogRecord) -> bool {
        self.admits_time(record.logged_at)
            && (self.levels.is_empty() || self.levels.contains(&record.entry.level))
            && self
                .needle()
                .is_none_or(|needle| record.entry.contains_text(&needle))
    }

    /// The filter from a query string (without `?`). Unknown parameters are ignored; a bad
    /// value is an `invalid_input` error naming it.
    pub fn from_query(query: &str) -> Result<Filter, ChatError> {
        let mut filter = Filter::default();
        for (name, value) in query_pairs(query)? {
            match name.as_str() {
                "level" => {
                    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                        let level = Level::parse(part).ok_or_else(|| {
                            invalid("level must be debug, info, warn or error (comma-separated)")
                        })?;
                        if !filter.levels.contains(&level) {
                            filter.levels.push(level);
                        }
                    }
                }
                "from" | "to" => {
                    let ms: i64 = value.trim().parse().map_err(|_| {
                        invalid(format!("{name} must be milliseconds since the Unix epoch"))
                    })?;
                    if name == "from" {
                        filter.from = Some(ms);
                    } else {
                        filter.to = Some(ms);
                    }
                }
                "q" => {
                    if value.chars().count() > MAX_QUERY_CHARS {
                        return Err(ChatError::new(
                            ErrorCode::TooLarge,
                            format!("q is at most {MAX_QUERY_CHARS} characters"),
                        ));
                    }
                    filter.text = Some(value).filter(|v| !v.trim().is_empty());
                }
                "cursor" if !value.is_empty() => {
                    filter.cursor =
                        Some(PageCursor::parse(&value).ok_or_else(|| invalid("bad cursor"))?);
                }
                "limit" => {
                    let limit: usize = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|l| (1..=MAX_PAGE).contains(l))
                        .ok_or_else(|| invalid(format!("limit must be 1 to {MAX_PAGE}")))?;
                    filter.limit = Some(limit);
                }
                _ => {}
            }
        }
        Ok(filter)
    }

    /// The query string (without `?`) [`Filter::from_query`] reads back.
    pub fn to_query(&self) -> String {
        let mut pairs: Vec<(&str, String)> = Vec::new();
        if !self.levels.is_empty() {
            let levels: Vec<&str> = self.levels.iter().map(|l| l.as_str()).collect();
            pairs.push(("level", levels.join(",")));
        }
        if let Some(from) = self.from {
            pairs.push(("from", from.to_string()));
        }
        if let Some(to) = self.to {
            pairs.push(("to", to.to_string()));
        }
        if let Some(text) = &self.text {
            pairs.push(("q", text.clone()));
        }
        if let Some(cursor) = &self.cursor {
            pairs.push(("cursor", cursor.encode()));
        }
        if let Some(limit) = self.limit {
            pairs.push(("limit", limit.to_string()));
        }
        encode_pairs(&pairs)
    }
}

/// What to tail: `GET /entries/tail?after=&level=&q=&limit=` (`from`, `to` and `cursor` do not
/// apply to a tail and are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TailQuery {
    /// The newest key the viewer has ([`TailPage::after`]); `None` starts a tail with the newest
    /// entries.
    pub after: Option<String>,
    /// Level, text and limit.
    pub filter: Filter,
}

impl TailQuery {
    /// The tail query from a query string (without `?`).
    pub fn from_query(query: &str) -> Result<TailQuery, ChatError> {
        let mut filter = Filter::from_query(query)?;
        filter.from = None;
        filter.to = None;
        filter.cursor = None;
        let mut after = None;
        for (name, value) in query_pairs(query)? {
            if name == "after" && !value.is_empty() {
                parse_key(&value).ok_or_else(|| invalid("after must be a log key"))?;
                after = Some(value);
            }
        }
        Ok(TailQuery { after, filter })
    }

    /// The query string (without `?`).
    pub fn to_query(&self) -> String {
        let mut query = self.filter.to_query();
        if let Some(after) = &self.after {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str(&encode_pairs(&[("after", after.clone())]));
        }
        query
    }
}

fn encode_pairs(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={}", encode_component(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string's pairs, decoded (`+` is a space).
fn query_pairs(query: &str) -> Result<Vec<(String, String)>, ChatError> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode_component(name)?, decode_component(value)?))
        })
        .collect()
}

fn decode_component(text: &str) -> Result<String, ChatError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let byte = text
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| invalid("bad percent-encoding in the query"))?;
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| invalid("the query is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    const HEX64: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn entry(message: &str) -> LogEntry {
        LogEntry {
            at: 1_760_000_000_000,
            level: Level::Error,
            message: message.to_string(),
            source: Source::Worker,
            context: LogContext::default(),
            error: None,
        }
    }

    /// Secrets (each must vanish) inside text whose useful words must stay.
    fn corpus() -> Vec<(String, Vec<&'static str>, Vec<&'static str>)> {
        vec![
            (
                "login failed for alice.smith+chat@example.co.uk after 3 tries".into(),
                vec!["alice", "example.co.uk", "@"],
                vec!["login failed for", "after 3 tries", REDACTED_EMAIL],
            ),
            (
                "callback GET /auth/callback/github?code=4f1a9c2e77&state=Zx81kQ&next=/rooms"
                    .into(),
                vec!["4f1a9c2e77", "Zx81kQ"],
                vec![
                    "/auth/callback/github",
                    "code=[redacted]",
                    "state=[redacted]",
                    "next=/rooms",
                ],
            ),
            (
                format!("provider said 401 for header Authorization: Bearer {JWT}"),
                vec!["eyJ", "SflKxwRJ"],
                vec!["provider said 401 for header Authorization:"],
            ),
            (
                format!("token {JWT} expired at 12:00"),
                vec!["eyJ", "SflKxwRJ"],
                vec!["token", REDACTED_JWT, "expired at 12:00"],
            ),
            (
                "upstream refused: Bearer sk-live-abc123 (quota)".into(),
                vec!["sk-live-abc123"],
                vec!["upstream refused: Bearer", "(quota)"],
            ),
            (
                "request headers:\nCookie: dc_session=s3cr3t.v4lue; theme=dark\nAccept: text/html"
                    .into(),
                vec!["s3cr3t", "theme=dark"],
                vec![
                    "request headers:",
                    "Cookie: [redacted]",
                    "Accept: text/html",
                ],
            ),
            (
                "response Set-Cookie: __Host-dc_session=abc.def; Path=/; HttpOnly".into(),
                vec!["abc.def", "HttpOnly"],
                vec!["response Set-Cookie:"],
            ),
            (
                r#"{"headers":{"cookie":"dc_session=xyz789","accept":"*/*"},"status":500}"#.into(),
                vec!["xyz789"],
                vec![r#""accept":"*/*""#, r#""status":500"#],
            ),
            (
                format!("hmac key {HEX64} rejected"),
                vec![&HEX64[..16], &HEX64[40..]],
                vec!["hmac key", REDACTED_SECRET, "rejected"],
            ),
            (
                "api key sk_test_4eC39HqLyjWDarjtT1zdp7dc in use; password=hunter2, ok".into(),
                vec!["4eC39HqLyjWDarjtT1zdp7dc", "hunter2"],
                vec!["api key", "in use;", "ok"],
            ),
            (
                "search /api/rooms/general/search?q=my+secret+plans&limit=20 took 30 ms".into(),
                vec!["secret+plans", "my+"],
                vec!["/api/rooms/general/search", "limit=20", "took 30 ms"],
            ),
            (
                "GET /api/invites/r4Nd0mT0k3nV4lu3Xy7Zq9Wp2/accept 410 invite_invalid".into(),
                vec!["r4Nd0mT0k3nV4lu3Xy7Zq9Wp2"],
                vec!["GET /api/invites/", "/accept 410 invite_invalid"],
            ),
            (
                "user 3f2a9b1c4d5e6f708192a3b4c5d6e7f8 not found".into(),
                vec!["3f2a9b1c4d5e6f708192a3b4c5d6e7f8"],
                vec!["user", "not found"],
            ),
            (
                "base64 secret c2VjcmV0LWtleS1mb3ItdGVzdGluZy1wdXJwb3Nlcy0xMjM0NQ== leaked".into(),
                vec!["c2VjcmV0LWtleS1mb3I"],
                vec!["base64 secret", "leaked"],
            ),
            (
                "fetch https://api.example.com/v1/x?api_key=AKIA1234&region=eu failed".into(),
                vec!["AKIA1234"],
                vec!["https://api.example.com/v1/x?", "region=eu failed"],
            ),
            (
                "mailto user%40example.org bounced".into(),
                vec!["user%40example.org"],
                vec!["mailto", "bounced"],
            ),
            (
                format!(
                    "frame dump {} ignored",
                    mark_user_text("hello, my card is 4111 1111 1111 1111")
                ),
                vec!["hello", "4111", "card"],
                vec!["frame dump", REMOVED_TEXT, "ignored"],
            ),
            (
                "dump ⟦never closed so everything after goes".into(),
                vec!["never closed", "everything"],
                vec!["dump", REMOVED_TEXT],
            ),
        ]
    }

    #[test]
    fn scrubbing_removes_every_secret_in_the_corpus_and_keeps_the_useful_text() {
        for (text, secrets, kept) in corpus() {
            let scrubbed = scrub_text(&text);
            for secret in secrets {
                assert!(
                    !scrubbed.contains(secret),
                    "{secret:?} survived in {scrubbed:?} (from {text:?})"
                );
            }
            for useful in kept {
                assert!(
                    scrubbed.contains(useful),
                    "{useful:?} was lost: {scrubbed:?} (from {text:?})"
                );
            }
        }
    }

    #[test]
    fn scrubbing_leaves_ordinary_operational_text_alone() {
        for text in [
            "request failed: status 500: D1_ERROR: no such table: rooms",
            "GET /api/rooms/general-chat-room-for-everyone-2024/messages?before=120&limit=50",
            "panicked at app/src/components/composer.rs:123:45: index out of bounds",
            "ThisIsAVeryLongCamelCaseIdentifierName was not found",
            "ai_failed: workers-ai (status 429): capacity exceeded, retry later",
            "Basic information about the room",
            "at 1760000000000 the room had 12000 sockets",
            "basic checks passed; state machine idle; session ended",
        ] {
            assert_eq!(scrub_text(text), text);
        }
    }

    #[test]
    fn scrubbing_is_idempotent() {
        for (text, _, _) in corpus() {
            let once = scrub_text(&text);
            assert_eq!(scrub_text(&once), once);
        }
    }

    #[test]
    fn scrub_cleans_every_free_text_field_and_drops_malformed_context() {
        let mut e = entry(&format!("failed for bob@example.com with {JWT}"));
        e.error = Some(LogError {
            code: "Not A Code!".into(),
            detail: format!("Authorization: Bearer {HEX64}"),
        });
        e.context = LogContext {
            route: Some("/oauth/callback?code=abc123&state=xyz".into()),
            room: Some("Not a slug!".into()),
            request_id: Some("id with spaces".into()),
            user: Some(UserHash("bob@example.com".into())),
        };
        scrub(&mut e);
        let json = serde_json::to_string(&e).expect("serializes");
        for secret in [
            "bob@example.com",
            "eyJ",
            HEX64,
            "abc123",
            "xyz",
            "Not a slug",
        ] {
            assert!(!json.contains(secret), "{secret} survived in {json}");
        }
        assert_eq!(e.error.as_ref().map(|e| e.code.as_str()), Some("unknown"));
        assert_eq!(e.context.room, None);
        assert_eq!(e.context.request_id, None);
        assert_eq!(e.context.user, None);
        assert_eq!(
            e.context.route.as_deref(),
            Some("/oauth/callback?code=[redacted]&state=[redacted]")
        );
    }

    #[test]
    fn scrub_caps_fields_and_fits_the_entry_in_8_kb_even_with_wide_characters() {
        let mut e = entry(&"word ".repeat(400));
        e.error = Some(LogError {
            code: "internal".into(),
            detail: "€\u{1}".repeat(5_000),
        });
        scrub(&mut e);
        assert!(e.message.chars().count() <= MAX_MESSAGE_CHARS);
        assert!(e.message.ends_with('…'));
        let detail = &e.error.as_ref().expect("kept").detail;
        assert!(detail.chars().count() <= MAX_DETAIL_CHARS);
        assert!(e.json_len() <= MAX_ENTRY_BYTES, "{} bytes", e.json_len());
        let again = e.clone();
        scrub(&mut e);
        assert_eq!(e, again, "scrub is idempotent");
    }

    #[test]
    fn a_secret_at_the_end_of_a_huge_text_is_not_left_half_cut() {
        let text = format!("{} {HEX64}{HEX64}", "a ".repeat(MAX_DETAIL_CHARS * 4 - 10));
        let mut e = entry("boom");
        e.error = Some(LogError {
            code: "internal".into(),
            detail: text,
        });
        scrub(&mut e);
        let detail = &e.error.as_ref().expect("kept").detail;
        assert!(!detail.contains("9f86d0"), "{detail}");
    }

    #[test]
    fn builders_take_structured_parts_and_validate_them() {
        let user = UserHash::from_mac(&[0xab; 32]).expect("32 bytes");
        let e = LogEntry::server_error(
            1_760_000_000_000,
            Source::Room,
            "/api/rooms/general/ws?token=abc",
            503,
            ErrorCode::Internal,
            "storage failed for carol@example.com",
        )
        .with_room("general")
        .with_request_id("8a1b2c3d4e5f6789-SJC")
        .with_user(user.clone());
        assert_eq!(e.level, Level::Error);
        assert_eq!(e.message, "request failed");
        assert_eq!(e.context.room.as_deref(), Some("general"));
        assert_eq!(e.context.user.as_ref(), Some(&user));
        assert_eq!(user.as_str(), "ab".repeat(16));
        let error = e.error.as_ref().expect("has an error");
        assert_eq!(error.code, "internal");
        assert_eq!(error.detail, "status 503: storage failed for [email]");
        assert_eq!(
            e.context.route.as_deref(),
            Some("/api/rooms/general/ws?token=[redacted]")
        );
        assert_eq!(
            LogEntry::server_error(1, Source::Worker, "/", 404, ErrorCode::NotFound, "").level,
            Level::Warn
        );

        let ai = LogEntry::provider_failure(
            1,
            "general",
            ErrorCode::AiTimeout,
            "openai",
            None,
            "timed out",
        );
        assert_eq!(ai.source, Source::Assistant);
        assert_eq!(
            ai.error.map(|e| e.detail),
            Some("openai (no status): timed out".to_string())
        );
        let failed =
            LogEntry::browser_failed_request(1, "/api/profile", "put", Some(502), Some("internal"));
        assert_eq!(failed.level, Level::Error);
        assert_eq!(
            failed.error.map(|e| e.detail),
            Some("PUT status 502".into())
        );
        let panic = LogEntry::browser_panic(1, "/rooms/general", "panicked at src/x.rs:1:2");
        assert_eq!(panic.source, Source::Browser);
        assert!(UserHash::from_mac(&[1; 8]).is_none());
        assert!(UserHash::parse(&"ab".repeat(16)).is_some());
        assert!(UserHash::parse("AB").is_none());
    }

    #[test]
    fn validate_refuses_empty_messages_bad_times_and_oversize_entries() {
        assert!(entry("ok").validate().is_ok());
        assert_eq!(
            entry("  ").validate().map_err(|e| e.code),
            Err(ErrorCode::InvalidInput)
        );
        let mut old = entry("ok");
        old.at = 12;
        assert_eq!(
            old.validate().map_err(|e| e.code),
            Err(ErrorCode::InvalidInput)
        );
        assert_eq!(
            entry(&"x".repeat(MAX_ENTRY_BYTES))
                .validate()
                .map_err(|e| e.code),
            Err(ErrorCode::TooLarge)
        );
    }

    #[test]
    fn keys_list_newest_first_in_ascending_order_and_parse_back() {
        let older = key_for(1_760_000_000_000, "b");
        let newer = key_for(1_760_000_000_001, "a");
        let much_newer = key_for(1_800_000_000_000, "zz9");
        let mut keys = vec![older.clone(), much_newer.clone(), newer.clone()];
        keys.sort();
        assert_eq!(keys, vec![much_newer.clone(), newer.clone(), older.clone()]);
        assert_eq!(parse_key(&newer), Some((1_760_000_000_001, "a")));
        assert_eq!(parse_key(&much_newer), Some((1_800_000_000_000, "zz9")));
        assert_eq!(older, "log/8239999999999-b");
        assert!(parse_key("log/123-a").is_none());
        assert!(parse_key("other/8239999999999-b").is_none());
        assert!(parse_key("log/8239999999999-").is_none());
        assert!(parse_key("log/8239999999999-B!").is_none());
        assert_eq!(
            key_for(5, "Ab/c-d"),
            "log/9999999999994-bcd",
            "unique keeps lowercase letters and digits only"
        );
        assert_eq!(parse_key(&key_for(-5, "x")).map(|k| k.0), Some(0));
    }

    #[test]
    fn metadata_fits_kv_limits_and_carries_a_short_summary() {
        let mut e = entry(&"é".repeat(MAX_MESSAGE_CHARS));
        e.at = i64::MAX;
        scrub(&mut e);
        let meta = KeyMeta::of(&e);
        assert!(meta.summary.len() <= MAX_SUMMARY_BYTES);
        assert!(meta.summary.starts_with("éé"));
        let json = serde_json::to_string(&meta).expect("serializes");
        assert!(json.len() <= 1024, "{} bytes", json.len());
        assert_eq!(
            serde_json::from_str::<KeyMeta>(&json).expect("parses"),
            meta
        );
    }

    fn record(at: i64, level: Level, message: &str) -> LogRecord {
        let mut e = entry(message);
        e.level = level;
        LogRecord {
            key: key_for(at, "a"),
            logged_at: at,
            entry: e,
        }
    }

    #[test]
    fn a_filter_matches_by_level_time_and_text_ignoring_case() {
        let filter =
            Filter::from_query("level=warn,error&from=100&to=200&q=D1%20Error").expect("valid");
        assert!(filter.matches(&record(150, Level::Error, "the d1 error again")));
        assert!(!filter.matches(&record(150, Level::Info, "the d1 error again")));
        assert!(!filter.matches(&record(99, Level::Error, "the d1 error again")));
        assert!(!filter.matches(&record(201, Level::Error, "the d1 error again")));
        assert!(!filter.matches(&record(150, Level::Error, "something else")));
        let mut in_detail = record(150, Level::Warn, "request failed");
        in_detail.entry.error = Some(LogError {
            code: "internal".into(),
            detail: "D1 ERROR: busy".into(),
        });
        assert!(filter.matches(&in_detail));
        let meta = KeyMeta::of(&record(150, Level::Info, "x").entry);
        assert!(!filter.admits(150, Some(&meta)));
        assert!(filter.admits(150, None));
        assert!(!filter.admits(300, None));
        assert!(Filter::default().matches(&record(1, Level::Debug, "anything")));
    }

    #[test]
    fn a_filter_round_trips_through_its_query_string() {
        let filter = Filter {
            levels: Level::Warn.and_above(),
            from: Some(1),
            to: Some(1_800_000_000_000),
            text: Some("a&b=c ü/+%".into()),
            cursor: Some(PageCursor {
                after: Some(key_for(5, "k1")),
                list: Some("AAAA/+=~x".into()),
            }),
            limit: Some(20),
        };
        assert_eq!(Filter::from_query(&filter.to_query()), Ok(filter.clone()));
        assert_eq!(Filter::from_query(""), Ok(Filter::default()));
        assert_eq!(Filter::default().page_size(), DEFAULT_PAGE);
        let tail = TailQuery {
            after: Some(key_for(9, "z")),
            filter: Filter {
                levels: vec![Level::Error],
                ..Filter::default()
            },
        };
        assert_eq!(TailQuery::from_query(&tail.to_query()), Ok(tail));
    }

    #[test]
    fn bad_query_values_are_invalid_input_naming_the_parameter() {
        for (query, code) in [
            ("level=fatal", ErrorCode::InvalidInput),
            ("from=yesterday", ErrorCode::InvalidInput),
            ("limit=0", ErrorCode::InvalidInput),
            ("limit=101", ErrorCode::InvalidInput),
            ("cursor=nonsense", ErrorCode::InvalidInput),
            ("cursor=log%2Fbad~", ErrorCode::InvalidInput),
            ("q=%zz", ErrorCode::InvalidInput),
            ("q=%FF", ErrorCode::InvalidInput),
        ] {
            assert_eq!(
                Filter::from_query(query).map_err(|e| e.code),
                Err(code),
                "{query}"
            );
        }
        let long = format!("q={}", "x".repeat(MAX_QUERY_CHARS + 1));
        assert_eq!(
            Filter::from_query(&long).map_err(|e| e.code),
            Err(ErrorCode::TooLarge)
        );
        assert!(TailQuery::from_query("after=nope").is_err());
    }

    #[test]
    fn a_cursor_round_trips_with_either_part_missing() {
        for cursor in [
            PageCursor {
                after: Some(key_for(1, "a")),
                list: None,
            },
            PageCursor {
                after: None,
                list: Some("opaque==".into()),
            },
        ] {
            assert_eq!(PageCursor::parse(&cursor.encode()), Some(cursor));
        }
    }

    #[test]
    fn levels_order_and_parse() {
        assert!(Level::Debug < Level::Error);
        assert_eq!(Level::Warn.and_above(), vec![Level::Warn, Level::Error]);
        for level in Level::ALL {
            assert_eq!(Level::parse(level.as_str()), Some(level));
        }
        assert_eq!(
            serde_json::to_string(&Level::Warn).expect("serializes"),
            "\"warn\""
        );
    }

    /// Random tokens from a seeded generator (the same every run).
    fn random_tokens(alphabet: &[u8], len: usize, count: usize) -> Vec<String> {
        let mut seed: u64 = 0x5eed_1234_abcd_0001;
        (0..count)
            .map(|_| {
                (0..len)
                    .map(|_| {
                        seed = seed
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1_442_695_040_888_963_407);
                        alphabet[(seed >> 33) as usize % alphabet.len()] as char
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn random_base64_tokens_of_32_characters_or_more_are_caught_all_but_rarely() {
        const LETTERS_DIGITS: &str =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        for extra in ["+/", "-_", ""] {
            let alphabet = format!("{LETTERS_DIGITS}{extra}");
            for len in [32, 43, 64] {
                let tokens = random_tokens(alphabet.as_bytes(), len, 1000);
                let escaped = tokens
                    .iter()
                    .filter(|t| {
                        let out = scrub_text(&format!("value {t} end"));
                        out.contains(&t[..8]) || out.contains(&t[len - 8..])
                    })
                    .count();
                // A heuristic: about one in 200 escapes (see `looks_secret`).
                assert!(
                    escaped <= 10,
                    "{escaped}/1000 of length {len} over {alphabet:?}"
                );
            }
        }
        for token in random_tokens(b"0123456789abcdef", 32, 200) {
            assert_eq!(
                scrub_text(&token),
                REDACTED_SECRET,
                "every 32-hex string goes"
            );
        }
    }

    #[test]
    fn identifiers_slugs_and_paths_are_not_mistaken_for_secrets() {
        for text in [
            "ThisIsAVeryLongCamelCaseIdentifierName",
            "general-chat-room-for-everyone-2024",
            "X509Certificate2Collection",
            "SHA256WithRSAEncryption",
            "ERR_CONNECTION_REFUSED_BY_PEER",
            "HTTPServerErrorResponseHandler",
            "x86_64-unknown-linux-gnu",
            "NetworkBannedRoomFullTooManyConnections",
            "getElementsByTagNameNS",
            "application/x-www-form-urlencoded",
            "RuntimeError-unreachable-executed",
            "llama_model_load_from_file_failed",
            "D1_ERROR-SQLITE_CONSTRAINT_UNIQUE",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 HeadlessChrome/124.0.6367.60",
            "/api/rooms/general/messages/12345/reactions",
            "2026-04-01T12:34:56.789Z",
        ] {
            assert_eq!(scrub_text(text), text);
        }
    }

    proptest::proptest! {
        #[test]
        fn scrubbing_any_text_never_panics_and_a_second_pass_changes_nothing(
            text in "(\\PC|[ =:&?/@.%\"'\n]|eyJ|Bearer |cookie|token|[0-9a-f]{8}|[A-Za-z0-9]{6}|\u{27E6}|\u{27E7}){0,60}"
        ) {
            let once = scrub_text(&text);
            proptest::prop_assert_eq!(scrub_text(&once), once);
        }

        #[test]
        fn a_scrubbed_entry_always_fits(message in "\\PC{0,700}", detail in "\\PC{0,3000}") {
            let mut e = entry(&message);
            e.error = Some(LogError { code: "internal".into(), detail });
            scrub(&mut e);
            proptest::prop_assert!(e.json_len() <= MAX_ENTRY_BYTES);
            proptest::prop_assert!(e.message.chars().count() <= MAX_MESSAGE_CHARS);
        }
    }
}
