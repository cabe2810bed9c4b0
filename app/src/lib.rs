//! Durable Chat's browser client: a Yew app that renders the room state machine from
//! `shared::client` and dispatches user actions to it. Protocol rules live in `shared`; this
//! crate owns the browser side (sockets, timers, IndexedDB, DOM).
//!
//! The pure modules (formatting, backoff, scroll decisions, row building, banner wording) are
//! unit-tested natively; the browser modules only build for wasm32.

pub mod avatar;
pub mod backoff;
pub mod cite;
pub mod commands;
pub mod files;
pub mod format;
pub mod keys;
pub mod media;
pub mod offline;
pub mod presence;
pub mod report;
pub mod route;
pub mod rows;
pub mod scroll;
pub mod status;
pub mod upload;
pub mod version;

#[cfg(target_arch = "wasm32")]
pub mod api;
#[cfg(target_arch = "wasm32")]
pub mod cache;
#[cfg(target_arch = "wasm32")]
pub mod components;
#[cfg(target_arch = "wasm32")]
pub mod conn;
#[cfg(target_arch = "wasm32")]
pub mod previews;
#[cfg(target_arch = "wasm32")]
pub mod probe;
#[cfg(target_arch = "wasm32")]
pub mod uploads;
#[cfg(target_arch = "wasm32")]
pub mod vitals;
#[cfg(target_arch = "wasm32")]
pub mod watch;
#[cfg(target_arch = "wasm32")]
pub mod web;
#[cfg(target_arch = "wasm32")]
pub mod xhr;

/// Mounts the app on `<body>` and registers the service worker.
#[cfg(target_arch = "wasm32")]
pub fn run() {
    report::install();
    register_service_worker();
    // A sample of page loads measures its web vitals (issue 12).
    vitals::start();
    yew::Renderer::<components::app::App>::new().render();
}

#[cfg(target_arch = "wasm32")]
fn register_service_worker() {
    let navigator = web::window().navigator();
    // `serviceWorker` is missing on insecure origins other than localhost.
    if !js_sys::Reflect::has(&navigator, &"serviceWorker".into()).unwrap_or(false) {
        return;
    }
    let promise = navigator.service_worker().register("/sw.js");
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = wasm_bindgen_futures::JsFuture::from(promise).await {
            web_sys::console::warn_2(&"service worker not registered:".into(), &e);
        }
    });
}
