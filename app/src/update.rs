//! "New version — reload" (issue 13): a tab left open across a deploy keeps running the build
//! it loaded, while the server and the service worker have moved on. Two things tell it so:
//! - the service worker changes with every build (its precache manifest), so after a deploy a
//!   new worker installs and takes over the page (`controllerchange`); a page that had no
//!   worker before (a first visit) gains one the same way, which is not an update;
//! - a room refuses a socket that speaks another protocol version (close code
//!   `UNSUPPORTED_PROTOCOL`), which only a newer build can fix.
//!
//! The browser looks for a new worker only when a page is navigated to, so an open tab asks
//! it to every few minutes and when the tab comes back into view ([`ServiceWorker`]).
//!
//! Either raises [`EVENT`] on the window; the prompt ([`crate::components::update_prompt`])
//! offers to reload. Nothing reloads by itself: the reader may be in the middle of a message.

use std::cell::Cell;

use gloo_events::EventListener;
use gloo_timers::callback::Interval;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::web;

/// The window event that says a newer build is available.
pub const EVENT: &str = "dc-new-version";

/// Says that a newer build is available.
pub fn announce() {
    if let Ok(event) = web_sys::Event::new(EVENT) {
        let _ = web::window().dispatch_event(&event);
    }
}

/// How often an open tab asks whether a new build was deployed. The browser itself checks
/// only when a page is navigated to, which a chat left open for a day never is.
const CHECK_EVERY_MS: u32 = 10 * 60 * 1000;

/// The page's service worker as a bundle started it: while kept, a newer worker taking over
/// the page announces a new version, and the browser is asked to look for one every
/// [`CHECK_EVERY_MS`] and whenever the tab comes back into view. Dropping it stops both (the
/// welcome bundle's, when the chat takes the page over with its own).
pub struct ServiceWorker {
    _taken_over: EventListener,
    _shown: EventListener,
    _timer: Interval,
}

/// Registers the service worker (unless the page has one already) and starts announcing new
/// versions; `None` where the browser has no service workers.
pub fn start_service_worker() -> Option<ServiceWorker> {
    let window = web::window();
    let navigator = window.navigator();
    // `serviceWorker` is missing on insecure origins other than localhost.
    if !js_sys::Reflect::has(&navigator, &"serviceWorker".into()).unwrap_or(false) {
        return None;
    }
    let container = navigator.service_worker();
    // A page without a worker (a first visit) gains its first one by the same event: that one
    // is not an update, every later one is.
    let controlled = Cell::new(container.controller().is_some());
    let target: &web_sys::EventTarget = container.unchecked_ref();
    let taken_over = EventListener::new(target, "controllerchange", move |_| {
        if controlled.replace(true) {
            announce();
        }
    });
    let document = window.document()?;
    let shown = EventListener::new(&document.clone(), "visibilitychange", move |_| {
        if !document.hidden() {
            check(navigator.service_worker());
        }
    });
    let timer = {
        let container = container.clone();
        Interval::new(CHECK_EVERY_MS, move || check(container.clone()))
    };
    wasm_bindgen_futures::spawn_local(register(container));
    Some(ServiceWorker {
        _taken_over: taken_over,
        _shown: shown,
        _timer: timer,
    })
}

/// The page's registration, if it has one.
async fn registration(
    container: &web_sys::ServiceWorkerContainer,
) -> Option<web_sys::ServiceWorkerRegistration> {
    let found = JsFuture::from(container.get_registration()).await.ok()?;
    found.dyn_into().ok()
}

/// Registers `/sw.js` unless the page has a registration already: the browser checked that one
/// for a new build on the way to the page, so registering it again would be a second check per
/// page (and, for a worker registered under another URL, a new worker taking the page over).
async fn register(container: web_sys::ServiceWorkerContainer) {
    if registration(&container).await.is_some() {
        return;
    }
    if let Err(e) = JsFuture::from(container.register("/sw.js")).await {
        web_sys::console::warn_2(&"service worker not registered:".into(), &e);
    }
}

/// Asks the browser to look for a new worker; one that installs takes the page over and
/// announces itself. Offline the check fails, and the next one tries again.
fn check(container: web_sys::ServiceWorkerContainer) {
    wasm_bindgen_futures::spawn_local(async move {
        if let Some(checked) = registration(&container)
            .await
            .and_then(|registration| registration.update().ok())
        {
            let _ = JsFuture::from(checked).await;
        }
    });
}
