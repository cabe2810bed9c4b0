//! The root: session, routing, room list, layout.

use std::collections::BTreeSet;
use std::rc::Rc;

use gloo_events::EventListener;
use shared::protocol::http::{RoomUnread, SessionInfo};
use shared::protocol::{RoomInfo, UnreadCounts};
use shared::unread::RoomCounts;
use yew::prelude::*;

use crate::api;
use crate::backoff;
use crate::cache::Cache;
use crate::components::about::About;
use crate::components::login::LoginPanel;
use crate::components::name_prompt::NamePrompt;
use crate::components::room::RoomPage;
use crate::components::sidebar::{link_click, Sidebar};
use crate::offline;
use crate::route::Route;
use crate::watch::Watchers;
use crate::web;

#[derive(Clone, PartialEq)]
enum Session {
    Loading,
    /// No session; the reason to show, if the session ended.
    Anonymous(Option<AttrValue>),
    Ready(SessionInfo),
}

fn current_route() -> Route {
    Route::parse(&web::window().location().pathname().unwrap_or_default())
}

/// Whether this bundle renders `route`. The chat bundle leaves the other pages to the full
/// bundle, which a page load of their address starts (lib.rs `run`).
fn renders(route: &Route) -> bool {
    cfg!(feature = "full") || route.in_chat_bundle()
}

/// The page for a route outside the chat, in the full bundle; `None` for the chat's own routes
/// (and for the devices page without an account).
#[cfg(feature = "full")]
fn full_page(
    route: &Route,
    me: &SessionInfo,
    on_unauthorized: Callback<()>,
    on_profile_saved: Callback<shared::profile::Profile>,
) -> Option<Html> {
    use crate::components::admin_page::AdminPage;
    use crate::components::analytics_page::AnalyticsPage;
    use crate::components::devices::DevicesPage;
    use crate::components::logs_page::LogsPage;
    use crate::components::performance_page::PerformancePage;
    use crate::components::profile_page::ProfilePage;
    use crate::components::settings_page::SettingsPage;

    Some(match route {
        Route::Devices if me.signed_in => html! { <DevicesPage {on_unauthorized} /> },
        Route::Profile => html! { <ProfilePage on_saved={on_profile_saved} /> },
        Route::Admin => html! { <AdminPage /> },
        // The logs, settings, analytics and performance pages ask the server, which answers
        // only global admins (a room's owner: that room's analytics); anyone else sees "Not
        // found".
        Route::Logs => html! { <LogsPage /> },
        Route::Settings => html! { <SettingsPage /> },
        Route::Analytics => html! { <AnalyticsPage /> },
        Route::RoomAnalytics(room) => {
            html! { <AnalyticsPage room={AttrValue::from(room.clone())} /> }
        }
        Route::Performance => html! { <PerformancePage /> },
        _ => return None,
    })
}

#[cfg(not(feature = "full"))]
fn full_page(
    _route: &Route,
    _me: &SessionInfo,
    _on_unauthorized: Callback<()>,
    _on_profile_saved: Callback<shared::profile::Profile>,
) -> Option<Html> {
    None
}

/// How often the room list is refreshed while the app is open. Unread counts are live through
/// the rooms' watches; the list brings new rooms, activity times, and counts for rooms whose
/// watch is down.
const ROOM_LIST_REFRESH_MS: u32 = 60_000;

enum CountsChange {
    Listed(Vec<RoomUnread>),
    Live(String, Option<UnreadCounts>),
}

#[derive(Default, PartialEq)]
struct Counts(RoomCounts);

impl Reducible for Counts {
    type Action = CountsChange;

    fn reduce(self: Rc<Self>, action: CountsChange) -> Rc<Self> {
        let mut counts = self.0.clone();
        match action {
            CountsChange::Listed(listed) => counts.set_listed(listed),
            CountsChange::Live(slug, live) => counts.set_live(&slug, live),
        }
        if counts == self.0 {
            self
        } else {
            Rc::new(Counts(counts))
        }
    }
}

/// The whole app.
#[function_component]
pub fn App() -> Html {
    let session = use_state(|| Session::Loading);
    let route = use_state(current_route);
    let rooms = use_state(|| Rc::new(Vec::<RoomInfo>::new()));
    let rooms_error = use_state(|| None::<AttrValue>);
    let unread = use_reducer(Counts::default);
    let watchers = use_mut_ref(|| None::<Watchers>);
    let sidebar_open = use_state(|| false);
    let login_error = use_state(web::take_login_error);
    let admin = use_state(|| false);
    let invite_error = use_state(|| None::<String>);

    {
        let (session, rooms) = (session.clone(), rooms.clone());
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                // Without an answer from the server (offline, or the server is down) the app
                // starts from the last session and room list this browser had, and keeps
                // asking: the rooms' offline copies and outboxes work meanwhile.
                let mut started_offline = false;
                let mut attempt = 0;
                loop {
                    // The question that answers 200 with no session, so a new visitor's start
                    // logs no failed request; a 401 still means none.
                    let answer = match api::session_state().await {
                        Err(e) if e.status == 401 => Ok(None),
                        answer => answer,
                    };
                    match answer {
                        Ok(Some(info)) => {
                            offline::remember_session(&info);
                            session.set(Session::Ready(info));
                        }
                        Ok(None) => {
                            offline::forget();
                            session.set(Session::Anonymous(started_offline.then(|| {
                                "Your session has ended. Choose a display name to continue.".into()
                            })));
                        }
                        Err(e) if e.status == 0 => {
                            if !started_offline {
                                let Some(last) = offline::last() else {
                                    session.set(Session::Anonymous(Some(e.message.into())));
                                    return;
                                };
                                started_offline = true;
                                rooms.set(Rc::new(last.rooms));
                                session.set(Session::Ready(last.session));
                            }
                            let wait = backoff::delay_ms(attempt, js_sys::Math::random());
                            attempt += 1;
                            gloo_timers::future::TimeoutFuture::new(wait as u32).await;
                            continue;
                        }
                        Err(e) => session.set(Session::Anonymous(Some(e.message.into()))),
                    }
                    return;
                }
            });
        });
    }
    {
        let route = route.clone();
        use_effect_with((), move |_| {
            let listener = EventListener::new(&web::window(), "popstate", move |_| {
                let next = current_route();
                if renders(&next) {
                    route.set(next);
                } else {
                    let _ = web::window().location().reload();
                }
            });
            move || drop(listener)
        });
    }

    {
        // Whether to offer the admin page (the server checks on every admin request).
        let admin = admin.clone();
        let ready = matches!(*session, Session::Ready(_));
        use_effect_with(ready, move |ready| {
            if *ready {
                wasm_bindgen_futures::spawn_local(async move {
                    if let Ok(profile) = api::profile().await {
                        admin.set(profile.admin);
                        web::apply_look(&profile);
                    }
                });
            }
        });
    }

    let refresh_rooms = {
        let (rooms, rooms_error, session) = (rooms.clone(), rooms_error.clone(), session.clone());
        let unread = unread.clone();
        Callback::from(move |()| {
            let (rooms, rooms_error, session) =
                (rooms.clone(), rooms_error.clone(), session.clone());
            let unread = unread.clone();
            wasm_bindgen_futures::spawn_local(async move {
                match api::rooms().await {
                    Ok(list) => {
                        if let Session::Ready(me) = &*session {
                            offline::remember_rooms(&me.user_id, &list.rooms);
                        }
                        rooms.set(Rc::new(list.rooms));
                        unread.dispatch(CountsChange::Listed(list.unread));
                        rooms_error.set(None);
                    }
                    Err(e) if e.status == 401 => {
                        offline::forget();
                        session.set(Session::Anonymous(None))
                    }
                    Err(e) => rooms_error.set(Some(e.message.into())),
                }
            });
        })
    };
    {
        let refresh_rooms = refresh_rooms.clone();
        let ready = matches!(*session, Session::Ready(_));
        use_effect_with((ready, (*route).clone()), move |(ready, _)| {
            if *ready {
                refresh_rooms.emit(());
            }
        });
    }
    {
        // Refresh the room list while the app is open.
        let refresh_rooms = refresh_rooms.clone();
        let ready = matches!(*session, Session::Ready(_));
        use_effect_with(ready, move |ready| {
            let timer = ready.then(|| {
                gloo_timers::callback::Interval::new(ROOM_LIST_REFRESH_MS, move || {
                    refresh_rooms.emit(())
                })
            });
            move || drop(timer)
        });
    }

    {
        // Watch every joined room but the open one (whose socket carries its own counts).
        let user_id = match &*session {
            Session::Ready(info) => Some(info.user_id.clone()),
            _ => None,
        };
        let open = match &*route {
            Route::Room(slug) => Some(slug.clone()),
            _ => None,
        };
        let wanted: BTreeSet<String> = unread
            .0
            .joined()
            .filter(|slug| Some(*slug) != open.as_deref())
            .map(str::to_owned)
            .collect();
        let dispatcher = unread.dispatcher();
        use_effect_with((user_id, wanted), move |(user_id, wanted)| {
            let mut watchers = watchers.borrow_mut();
            let Some(me) = user_id else {
                *watchers = None;
                return;
            };
            // Another user signed in: their own counts, from new watches.
            if watchers.as_ref().is_none_or(|w| w.me() != me) {
                let on_counts = Callback::from(move |(slug, counts)| {
                    dispatcher.dispatch(CountsChange::Live(slug, counts))
                });
                *watchers = Some(Watchers::new(me.clone(), on_counts));
            }
            if let Some(watchers) = watchers.as_mut() {
                watchers.set(wanted.clone());
            }
        });
    }

    let on_navigate = {
        let (route, sidebar_open) = (route.clone(), sidebar_open.clone());
        Callback::from(move |path: String| {
            let next = Route::parse(&path);
            if !renders(&next) {
                // The full bundle's page: loading the address starts it (lib.rs `run`).
                let _ = web::window().location().assign(&path);
                return;
            }
            if let Ok(history) = web::window().history() {
                let _ = history.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&path));
            }
            if next == Route::Home {
                if let Some(doc) = web::window().document() {
                    doc.set_title("Durable Chat");
                }
            }
            route.set(next);
            sidebar_open.set(false);
        })
    };
    let on_session = {
        let session = session.clone();
        Callback::from(move |info: SessionInfo| {
            offline::remember_session(&info);
            session.set(Session::Ready(info))
        })
    };
    let on_unauthorized = {
        let session = session.clone();
        Callback::from(move |()| {
            // The session's cache stays on disk (its unsent messages go out when the same
            // person signs in again) but this page lets go of it.
            Cache::close();
            offline::forget();
            session.set(Session::Anonymous(Some(
                "Your session has ended. Choose a display name to continue.".into(),
            )))
        })
    };
    let on_created = {
        let (on_navigate, refresh_rooms) = (on_navigate.clone(), refresh_rooms.clone());
        Callback::from(move |room: RoomInfo| {
            refresh_rooms.emit(());
            on_navigate.emit(Route::Room(room.slug).path());
        })
    };
    let on_profile_saved = {
        let session = session.clone();
        Callback::from(move |profile: shared::profile::Profile| {
            web::apply_look(&profile);
            if let Session::Ready(info) = &*session {
                session.set(Session::Ready(SessionInfo {
                    name: profile.name,
                    ..info.clone()
                }));
            }
        })
    };
    {
        // `/invite/<slug>/<token>`: accept, then open the room.
        let (on_navigate, invite_error, refresh_rooms) = (
            on_navigate.clone(),
            invite_error.clone(),
            refresh_rooms.clone(),
        );
        let ready = matches!(*session, Session::Ready(_));
        use_effect_with(((*route).clone(), ready), move |(route, ready)| {
            if let (Route::Invite(slug, token), true) = (route.clone(), *ready) {
                wasm_bindgen_futures::spawn_local(async move {
                    match api::join(&slug, &token).await {
                        Ok(_) => {
                            invite_error.set(None);
                            refresh_rooms.emit(());
                            on_navigate.emit(Route::Room(slug).path());
                        }
                        Err(e) => invite_error.set(Some(e.message)),
                    }
                });
            }
        });
    }
    let toggle_sidebar = {
        let sidebar_open = sidebar_open.clone();
        Callback::from(move |_: MouseEvent| sidebar_open.set(!*sidebar_open))
    };

    let me = match &*session {
        // The page's splash (app/index.html), rendered again: the same card and heading with
        // "Loading…", so the page does not change until the session is known.
        Session::Loading => return html! { <NamePrompt {on_session} checking=true /> },
        Session::Anonymous(reason) => {
            return html! { <NamePrompt {on_session} reason={reason.clone()} login_error={*login_error} /> }
        }
        Session::Ready(me) => me.clone(),
    };

    let slug = match &*route {
        Route::Room(slug) => Some(AttrValue::from(slug.clone())),
        _ => None,
    };
    let other_page = full_page(&route, &me, on_unauthorized.clone(), on_profile_saved);
    let sign_out = {
        let session = session.clone();
        let user_id = me.user_id.clone();
        Callback::from(move |_: MouseEvent| {
            let (session, user_id) = (session.clone(), user_id.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::sign_out().await {
                    Ok(()) => {
                        // Whoever uses this browser next must not see this user's rooms nor
                        // send their unsent messages.
                        Cache::forget(&user_id);
                        offline::forget();
                        session.set(Session::Anonymous(Some("You have signed out.".into())))
                    }
                    Err(e) => web::warn(&format!("sign-out failed: {}", e.message)),
                }
            });
        })
    };
    html! {
        <div class={classes!(
            "app",
            if slug.is_some() { "in-room" } else { "at-home" },
            sidebar_open.then_some("sidebar-open"),
        )}>
            <header class="topbar">
                if slug.is_some() {
                    <button type="button" class="sidebar-toggle" aria-controls="sidebar"
                        aria-expanded={if *sidebar_open { "true" } else { "false" }}
                        onclick={toggle_sidebar}>{ "Rooms" }</button>
                }
                <a class="brand" href="/" onclick={link_click("/".into(), on_navigate.clone())}>
                    <img src="/icon.svg" alt="" width="24" height="24" />
                    { "Durable Chat" }
                </a>
                <nav class="topnav" aria-label="Account and administration">
                    if *admin {
                        <a href="/admin" onclick={link_click("/admin".into(), on_navigate.clone())}>{ "Admin" }</a>
                        <a href="/logs" onclick={link_click(Route::Logs.path(), on_navigate.clone())}>{ "Logs" }</a>
                        <a href="/settings" onclick={link_click(Route::Settings.path(), on_navigate.clone())}>{ "Settings" }</a>
                    }
                    <a class="whoami" href="/profile" title="Edit your profile"
                        onclick={link_click("/profile".into(), on_navigate.clone())}>{ &me.name }</a>
                    if me.signed_in {
                        <a class="topbar-link" href="/devices"
                            onclick={link_click(Route::Devices.path(), on_navigate.clone())}>{ "Devices" }</a>
                        <button type="button" class="topbar-link" onclick={sign_out}>{ "Sign out" }</button>
                    }
                </nav>
            </header>
            <aside id="sidebar" class="sidebar">
                <Sidebar rooms={(*rooms).clone()} unread={Rc::new(unread.0.shown())} error={(*rooms_error).clone()} current={slug.clone()}
                    on_navigate={on_navigate.clone()} {on_created} />
                <About />
            </aside>
            <main class="main">
                if let Some(slug) = slug {
                    <RoomPage key={format!("{}/{slug}", me.user_id)} slug={slug.clone()} user_id={AttrValue::from(me.user_id.clone())} {on_unauthorized} on_navigate={on_navigate.clone()} admin={*admin} />
                } else if let Some(page) = other_page {
                    { page }
                } else if matches!(*route, Route::Invite(..)) {
                    <section class="home-intro">
                        if let Some(message) = &*invite_error {
                            <p class="field-error" role="alert">{ message }</p>
                        } else {
                            <p class="muted" role="status">{ "Joining…" }</p>
                        }
                    </section>
                } else {
                    <section class="home-intro">
                        <h1>{ format!("Hello, {}", me.name) }</h1>
                        <p class="muted">{ "Pick a room from the list or create a new one." }</p>
                        if !me.signed_in {
                            <p class="muted">{ "Sign in to keep your name and messages on every device." }</p>
                            <LoginPanel on_session={on_session.clone()} error={*login_error} />
                        }
                    </section>
                }
            </main>
        </div>
    }
}
