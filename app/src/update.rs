//! "New version — reload" (issue 13): a tab left open across a deploy keeps running the build
//! it loaded, while the server and the service worker have moved on. Two things tell it so:
//! - the service worker changes with every build (its precache manifest), so after a deploy a
//!   new worker installs and takes over the page (`controllerchange`); a page that had no
//!   worker before (a first visit) gains one the same way, which is not an update;
//! - a room refuses a socket that speaks another protocol version (close code
//!   `UNSUPPORTED_PROTOCOL`), which only a newer build can fix.
//!
//! Either raises [`EVENT`] on the window; the prompt ([`crate::components::update_prompt`])
//! offers to reload. Nothing reloads by itself: the reader may be in the middle of a message.

use gloo_events::EventListener;
use wasm_bindgen::JsCast;

use crate::web;

/// The window event that says a newer build is available.
pub const EVENT: &str = "dc-new-version";

/// Says that a newer build is available.
pub fn announce() {
    if let Ok(event) = web_sys::Event::new(EVENT) {
        let _ = web::window().dispatch_event(&event);
    }
}

/// Registers the service worker, and announces a new version when a newer worker takes over a
/// page that an older one controlled.
pub fn start_service_worker() {
    let navigator = web::window().navigator();
    // `serviceWorker` is missing on insecure origins other than localhost.
    if !js_sys::Reflect::has(&navigator, &"serviceWorker".into()).unwrap_or(false) {
        return;
    }
    let container = navigator.service_worker();
    // A page without a worker (a first visit) gains its first one by the same event: that one
    // is not an update, every later one is.
    let controlled = std::cell::Cell::new(container.controller().is_some());
    let target: &web_sys::EventTarget = container.unchecked_ref();
    EventListener::new(target, "controllerchange", move |_| {
        if controlled.replace(true) {
            announce();
        }
    })
    .forget();
    let promise = container.register("/sw.js");
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = wasm_bindgen_futures::JsFuture::from(promise).await {
            web_sys::console::warn_2(&"service worker not registered:".into(), &e);
        }
    });
}
