//! The welcome bundle (ARCHITECTURE.md, "The app's bundles"): what a page runs first when this
//! browser has no session it knows of (a browser that has one goes straight to the chat:
//! assets/boot.js). A new visitor's first page is the sign-in prompt, which needs a fraction of
//! the app: this bundle is that prompt, and it hands the page to the chat bundle once there is
//! a session, or to the full bundle on a page outside the chat. The chat bundle downloads while
//! the visitor reads the prompt (the service worker precaches it) rather than before the prompt
//! can show.

use std::cell::RefCell;

use shared::auth::LoginError;
use shared::protocol::http::SessionInfo;
use yew::prelude::*;

use crate::components::name_prompt::NamePrompt;
use crate::components::update_prompt;
use crate::route::Route;
use crate::web::{self, Bundle};
use crate::{api, report, update};

/// What the welcome bundle put on the page, removed when the chat takes over.
struct Mounted {
    prompt: yew::AppHandle<Welcome>,
    /// "New version — reload": a deploy while the prompt is open would leave it handing over
    /// to a chat bundle the server no longer has.
    update: Option<update_prompt::Mounted>,
    /// Its watch over the service worker; the chat starts its own.
    worker: Option<update::ServiceWorker>,
}

thread_local! {
    static MOUNTED: RefCell<Option<Mounted>> = const { RefCell::new(None) };
}

/// Starts the page: the bundle that renders it, or the prompt.
pub fn run() {
    let route = Route::parse(&web::window().location().pathname().unwrap_or_default());
    if !route.in_chat_bundle() {
        web::start_bundle(Bundle::Full);
        return;
    }
    report::install();
    let worker = update::start_service_worker();
    web::remove_splash();
    let prompt = yew::Renderer::<Welcome>::new().render();
    let update = update_prompt::mount();
    MOUNTED.with(|mounted| {
        *mounted.borrow_mut() = Some(Mounted {
            prompt,
            update,
            worker,
        })
    });
}

/// Removes the prompt's root and hands the page to the chat, which asks for the session itself
/// and keeps it for the next visit. Not from inside a callback of the prompt: its root goes
/// first, then the chat comes.
fn hand_over_to_the_chat() {
    wasm_bindgen_futures::spawn_local(async {
        if let Some(mounted) = MOUNTED.with(|mounted| mounted.borrow_mut().take()) {
            mounted.prompt.destroy();
            if let Some(update) = mounted.update {
                update.remove();
            }
            drop(mounted.worker);
        }
        web::start_bundle(Bundle::Chat);
    });
}

/// What the server said about the session, once it has.
#[derive(Clone, PartialEq)]
struct NoSession {
    /// Why the prompt shows, if the question failed.
    reason: Option<AttrValue>,
    /// Why the last sign-in failed, if it did.
    login_error: Option<LoginError>,
}

/// The sign-in prompt. Its card and heading show at once, with "Loading…" in place of the
/// forms until the server says there is no session; a session, found or made, hands the page
/// to the chat.
#[function_component]
fn Welcome() -> Html {
    let answer = use_state(|| None::<NoSession>);
    {
        let answer = answer.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                // The question that answers 200 with no session, so a new visitor's start
                // logs no failed request; a 401 still means none.
                let reason = match api::session_state().await {
                    // Signed in without this browser knowing (a sign-in through a provider
                    // just came back, or the browser's storage was cleared).
                    Ok(Some(_)) => return hand_over_to_the_chat(),
                    Ok(None) => None,
                    Err(e) if e.status == 401 => None,
                    Err(e) => Some(e.message.into()),
                };
                // Read only now: a failed sign-in by someone with a session is the chat's to
                // show.
                answer.set(Some(NoSession {
                    reason,
                    login_error: web::take_login_error(),
                }));
            });
        });
    }
    let on_session = Callback::from(|_: SessionInfo| hand_over_to_the_chat());
    match &*answer {
        None => html! { <NamePrompt {on_session} checking=true /> },
        Some(no) => html! {
            <NamePrompt {on_session} reason={no.reason.clone()} login_error={no.login_error} />
        },
    }
}
