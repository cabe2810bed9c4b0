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

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use gloo_events::EventListener;
use gloo_timers::callback::Interval;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::{route, web};

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
/// the page announces a new version, and the registration is checked for one every
/// [`CHECK_EVERY_MS`] and whenever the tab comes back into view. Dropping it stops both (the
/// welcome bundle's, when the chat takes the page over with its own).
pub struct ServiceWorker {
    _taken_over: EventListener,
    _shown: EventListener,
    _checks: Rc<RefCell<Option<Checks>>>,
}

/// The registration and the timer that checks it, once registered.
struct Checks {
    registration: web_sys::ServiceWorkerRegistration,
    _timer: Interval,
}

/// Registers the service worker (unless this page's is registered already) and starts
/// announcing new versions; `None` where the browser has no service workers.
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
    let checks = Rc::new(RefCell::new(None::<Checks>));
    let shown = {
        let checks = checks.clone();
        let document = window.document()?;
        EventListener::new(&document.clone(), "visibilitychange", move |_| {
            if !document.hidden() {
                if let Some(checks) = &*checks.borrow() {
                    check(&checks.registration);
                }
            }
        })
    };
    let started = Rc::downgrade(&checks);
    wasm_bindgen_futures::spawn_local(async move {
        let Some(registration) = registration(&container).await else {
            return;
        };
        // Gone if the bundle that started it has handed the page over meanwhile.
        let Some(checks) = started.upgrade() else {
            return;
        };
        let timer = {
            let registration = registration.clone();
            Interval::new(CHECK_EVERY_MS, move || check(&registration))
        };
        *checks.borrow_mut() = Some(Checks {
            registration,
            _timer: timer,
        });
    });
    Some(ServiceWorker {
        _taken_over: taken_over,
        _shown: shown,
        _checks: checks,
    })
}

/// This page's registration: the one found if its worker is [`route::SERVICE_WORKER`], else a
/// new one. A page of a later build finds the worker registered: the browser checked it for a
/// new build on the way to the page, and registering it again would be a second check per
/// page (or, for a worker registered with a query, a new worker taking the page over).
async fn registration(
    container: &web_sys::ServiceWorkerContainer,
) -> Option<web_sys::ServiceWorkerRegistration> {
    let found = JsFuture::from(container.get_registration())
        .await
        .ok()
        .and_then(|found| found.dyn_into::<web_sys::ServiceWorkerRegistration>().ok());
    if let Some(found) = found {
        let worker = found
            .active()
            .or_else(|| found.waiting())
            .or_else(|| found.installing());
        if worker.is_some_and(|w| route::is_service_worker(&w.script_url())) {
            return Some(found);
        }
    }
    match JsFuture::from(container.register(route::SERVICE_WORKER)).await {
        Ok(registered) => registered.dyn_into().ok(),
        Err(e) => {
            web_sys::console::warn_2(&"service worker not registered:".into(), &e);
            None
        }
    }
}

/// Asks the browser to check for a new worker; one that installs takes the page over and
/// announces itself. Offline the check fails, and the next one tries again.
fn check(registration: &web_sys::ServiceWorkerRegistration) {
    if let Ok(checked) = registration.update() {
        wasm_bindgen_futures::spawn_local(async move {
            let _ = JsFuture::from(checked).await;
        });
    }
}
