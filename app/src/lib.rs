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
pub mod update;
#[cfg(target_arch = "wasm32")]
pub mod uploads;
#[cfg(target_arch = "wasm32")]
pub mod vitals;
#[cfg(target_arch = "wasm32")]
pub mod watch;
#[cfg(target_arch = "wasm32")]
pub mod web;
#[cfg(target_arch = "wasm32")]
pub mod welcome;
#[cfg(target_arch = "wasm32")]
pub mod xhr;

/// Mounts the app on `<body>`, with the new-version prompt on a root of its own, and registers
/// the service worker. The chat bundle, started on a page outside the chat, hands it to the full
/// bundle instead (route.rs).
#[cfg(target_arch = "wasm32")]
pub fn run() {
    #[cfg(not(feature = "full"))]
    if !route::Route::parse(&web::window().location().pathname().unwrap_or_default())
        .in_chat_bundle()
    {
        web::start_bundle(web::Bundle::Full);
        return;
    }
    report::install();
    // The page's until it is left.
    std::mem::forget(update::start_service_worker());
    // A sample of page loads measures its web vitals (issue 12).
    vitals::start();
    web::remove_splash();
    yew::Renderer::<components::app::App>::new().render();
    components::update_prompt::mount();
}
