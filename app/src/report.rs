//! The app's error reports (issue 12): its panics and its failed API requests (a 5xx answer, or
//! no answer at all) go to `POST /api/logs/client`, which the Worker checks, scrubs and hands to
//! the logging Worker.
//!
//! Only what locates a failure is sent, built by `shared::logs`' browser builders: the page's
//! route (an invite's token replaced), the request's method and API route (without its query,
//! ids and tokens replaced), the status and the error code; for a panic, where it happened and
//! its message only when that is a fixed text in the code. Never a message's text, a name, a
//! search's words, or anything a panic formatted from data.
//!
//! Reports are debounced ([`DEBOUNCE_MS`]: what fails together goes in one request of at most
//! [`BATCH`] entries), the same failure is reported once per page, and a page reports at most
//! [`MAX_PER_PAGE`] entries: an app stuck failing in a loop must not flood the log (the Worker
//! also limits reports per client address). A panic is sent at once: after a panic the app
//! does not run again, so nothing later would send it.

use shared::logs::LogEntry;

use crate::route::Route;

/// The most entries one page load reports.
pub const MAX_PER_PAGE: usize = 20;
/// The most entries in one report (the Worker's limit).
pub const BATCH: usize = 10;
/// How long the first failure waits for others before the report goes.
pub const DEBOUNCE_MS: u32 = 2_000;

/// What a page has reported and has yet to send.
#[derive(Debug, Default)]
pub struct Reporter {
    queued: Vec<LogEntry>,
    /// Entries accepted since the page loaded.
    accepted: usize,
    /// The failures already reported (route, code, detail), each once per page.
    seen: Vec<(Option<String>, Option<String>, Option<String>)>,
}

impl Reporter {
    /// Queues an entry to send; `false` when the page already reported as many as it may or
    /// this same failure.
    pub fn accept(&mut self, entry: LogEntry) -> bool {
        if self.accepted >= MAX_PER_PAGE {
            return false;
        }
        let error = entry.error.as_ref();
        let key = (
            entry.context.route.clone(),
            error.map(|e| e.code.clone()),
            error.map(|e| e.detail.clone()),
        );
        if self.seen.contains(&key) {
            return false;
        }
        self.seen.push(key);
        self.accepted += 1;
        self.queued.push(entry);
        true
    }

    /// The next report's entries (at most [`BATCH`], oldest first).
    pub fn take_batch(&mut self) -> Vec<LogEntry> {
        let n = self.queued.len().min(BATCH);
        self.queued.drain(..n).collect()
    }

    /// Whether entries wait to be sent.
    pub fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }
}

/// A page's route as reported: the route's path, an invite's token replaced (the token lets
/// anyone in). Unknown paths are the home page's, as the app shows them.
pub fn page_route(path: &str) -> String {
    match Route::parse(path) {
        Route::Invite(slug, _) => format!("/invite/{slug}/:token"),
        route => route.path(),
    }
}

/// An API request's route as reported: its path without query or fragment (a search's words,
/// a URL to preview), and each segment that looks like an id or a token (16 or more letters,
/// digits and dashes with a digit in it) replaced by `:id`.
pub fn api_route(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.split('/')
        .map(|segment| {
            let id_like = segment.len() >= 16
                && segment.bytes().any(|b| b.is_ascii_digit())
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if id_like {
                ":id"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// What a panic tells: where it happened, and its message only when the code wrote it as a
/// fixed text (`panic!("…")`, a `&'static str` payload); a formatted message may hold data.
pub fn panic_detail(location: Option<(&str, u32, u32)>, static_message: Option<&str>) -> String {
    let at = location.map_or_else(
        || "at an unknown place".to_owned(),
        |(file, line, column)| format!("at {file}:{line}:{column}"),
    );
    match static_message {
        Some(message) => format!("{message} ({at})"),
        None => format!("panicked {at}"),
    }
}

#[cfg(target_arch = "wasm32")]
pub use browser::{failed_request, install, network_failure};

#[cfg(target_arch = "wasm32")]
mod browser {
    use std::cell::RefCell;

    use shared::logs::LogEntry;
    use wasm_bindgen::JsValue;
    use web_sys::{Request, RequestCredentials, RequestInit};

    use super::{api_route, page_route, panic_detail, Reporter, DEBOUNCE_MS};
    use crate::web;

    /// Where reports go (never reported themselves).
    const ENDPOINT: &str = "/api/logs/client";

    thread_local! {
        static REPORTER: RefCell<Reporter> = RefCell::new(Reporter::default());
        static TIMER: RefCell<Option<gloo_timers::callback::Timeout>> = const { RefCell::new(None) };
    }

    /// Reports the app's panics: chained after the hook in place (which prints to the
    /// console), then sent at once.
    pub fn install() {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            web_sys::console::error_1(&JsValue::from_str(&info.to_string()));
            let location = info.location().map(|l| (l.file(), l.line(), l.column()));
            let fixed = info.payload().downcast_ref::<&'static str>().copied();
            let entry = LogEntry::browser_panic(
                web::now(),
                &page_route(&current_path()),
                &panic_detail(location, fixed),
            );
            queue(entry, true);
        }));
    }

    /// A request that got no answer: reported, unless the browser is offline (which says
    /// nothing of the server).
    pub fn network_failure(method: &str, path: &str) {
        if web::online() {
            failed_request(method, path, None, None);
        }
    }

    /// A request answered 5xx (`status`), or not at all (`None`), with the error code it sent.
    pub fn failed_request(method: &str, path: &str, status: Option<u16>, code: Option<&str>) {
        if path.starts_with(ENDPOINT) {
            return;
        }
        let entry =
            LogEntry::browser_failed_request(web::now(), &api_route(path), method, status, code);
        queue(entry, false);
    }

    fn current_path() -> String {
        web::window().location().pathname().unwrap_or_default()
    }

    /// Queues an entry; sends now, or once the debounce passes.
    fn queue(entry: LogEntry, now: bool) {
        // A panic inside the reporter itself finds it borrowed: that one is not reported.
        let accepted = REPORTER.with(|r| r.try_borrow_mut().is_ok_and(|mut r| r.accept(entry)));
        if !accepted {
            return;
        }
        if now {
            flush();
            return;
        }
        TIMER.with(|timer| {
            let Ok(mut timer) = timer.try_borrow_mut() else {
                return;
            };
            if timer.is_none() {
                *timer = Some(gloo_timers::callback::Timeout::new(DEBOUNCE_MS, || {
                    TIMER.with(|t| {
                        if let Ok(mut t) = t.try_borrow_mut() {
                            *t = None;
                        }
                    });
                    flush();
                }));
            }
        });
    }

    /// Sends everything queued, a batch per request.
    fn flush() {
        loop {
            let batch = REPORTER.with(|r| {
                r.try_borrow_mut()
                    .map(|mut r| r.take_batch())
                    .unwrap_or_default()
            });
            if batch.is_empty() {
                return;
            }
            send(&batch);
        }
    }

    /// One report, not waited on: kept alive past a page being closed (`keepalive`), and its
    /// own failure reported nowhere.
    fn send(entries: &[LogEntry]) {
        let Ok(body) = serde_json::to_string(&shared::logs::LogBatch {
            entries: entries.to_vec(),
        }) else {
            return;
        };
        let init = RequestInit::new();
        init.set_method("POST");
        init.set_credentials(RequestCredentials::SameOrigin);
        init.set_body(&JsValue::from_str(&body));
        // Not in this web-sys's RequestInit: set on the object as the Fetch spec names it.
        let _ = js_sys::Reflect::set(&init, &"keepalive".into(), &JsValue::TRUE);
        let Ok(request) = Request::new_with_str_and_init(ENDPOINT, &init) else {
            return;
        };
        let _ = request.headers().set("Content-Type", "application/json");
        let promise = web::window().fetch_with_request(&request);
        wasm_bindgen_futures::spawn_local(async move {
            let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(route: &str, status: u16) -> LogEntry {
        LogEntry::browser_failed_request(1_760_000_000_000, route, "GET", Some(status), None)
    }

    #[test]
    fn a_page_reports_at_most_twenty_entries_and_each_failure_once() {
        let mut reporter = Reporter::default();
        assert!(reporter.accept(failure("/api/rooms", 502)));
        assert!(
            !reporter.accept(failure("/api/rooms", 502)),
            "the same failure again"
        );
        assert!(
            reporter.accept(failure("/api/rooms", 503)),
            "another status is another failure"
        );
        for i in 0..30 {
            reporter.accept(failure(&format!("/api/r{i}"), 500));
        }
        let mut sent = Vec::new();
        loop {
            let batch = reporter.take_batch();
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= BATCH);
            sent.extend(batch);
        }
        assert_eq!(sent.len(), MAX_PER_PAGE);
        assert!(!reporter.has_queued());
        assert!(
            !reporter.accept(failure("/api/new", 500)),
            "the page is done"
        );
    }

    #[test]
    fn routes_keep_the_place_and_drop_queries_ids_and_tokens() {
        assert_eq!(
            page_route("/invite/club/0123456789abcdef0123456789abcdef"),
            "/invite/club/:token"
        );
        assert_eq!(page_route("/r/general"), "/r/general");
        assert_eq!(page_route("/logs"), "/logs");
        assert_eq!(page_route("/somewhere/else"), "/");
        assert_eq!(
            api_route("/api/search?q=my secret words"),
            "/api/search",
            "a search's words never go"
        );
        assert_eq!(
            api_route("/api/users/0123456789abcdef0123456789abcdef"),
            "/api/users/:id"
        );
        assert_eq!(
            api_route("/api/rooms/general/invites/6f1e2d3c4b5a69788796a5b4c3d2e1f0#x"),
            "/api/rooms/general/invites/:id"
        );
        assert_eq!(
            api_route("/api/rooms/a-long-room-name-here/messages"),
            "/api/rooms/a-long-room-name-here/messages",
            "a slug of words stays"
        );
    }

    #[test]
    fn a_panic_tells_where_and_only_a_fixed_message() {
        assert_eq!(
            panic_detail(
                Some(("app/src/x.rs", 3, 9)),
                Some("the app runs in a window")
            ),
            "the app runs in a window (at app/src/x.rs:3:9)"
        );
        assert_eq!(
            panic_detail(Some(("app/src/x.rs", 3, 9)), None),
            "panicked at app/src/x.rs:3:9"
        );
        assert_eq!(panic_detail(None, None), "panicked at an unknown place");
    }
}
