//! The room page: header, banner, notice, message list, the answers only this user sees,
//! typing line and composer, and the side panels.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use shared::client::Phase;
use shared::permissions::{may, Action};
use shared::protocol::{Attachment, PrivateAnswer, PrivateKind, Seq};
use web_sys::HtmlElement;
use yew::prelude::*;

use crate::commands::is_catch_up;
use crate::components::attachments::Media;
use crate::components::banner::Banner;
use crate::components::citations::Sources;
use crate::components::composer::{files_of, Composer};
use crate::components::files_panel::FilesPanel;
use crate::components::lightbox::Lightbox;
use crate::components::message_list::MessageList;
use crate::components::notice::Notice;
use crate::components::pins::PinsPanel;
use crate::components::presence_panel::PresencePanel;
use crate::components::private::PrivateAnswers;
use crate::components::profile_card::ProfileCard;
use crate::components::room_panel::RoomPanel;
use crate::components::search::SearchPanel;
use crate::components::sidebar::link_click;
use crate::components::source_panel::SourcePanel;
use crate::components::thread_panel::ThreadPanel;
use crate::components::upload_chips::UploadList;
use crate::conn::RoomHandle;
use crate::format::typing_line;
use crate::presence::thousands;
use crate::rows::{announcement, RowAction};
use crate::status::Ended;
use crate::upload::Target;
use crate::uploads::Uploads;
use crate::web;

/// Props of [`RoomPage`].
#[derive(Properties, PartialEq)]
pub struct RoomPageProps {
    /// The room.
    pub slug: AttrValue,
    /// Who is signed in: the page's offline cache is theirs.
    pub user_id: AttrValue,
    /// The room closed with `unauthorized`: ask for a name again.
    pub on_unauthorized: Callback<()>,
    /// Go to a path.
    pub on_navigate: Callback<String>,
    /// Whether we are a global admin (may do everything in every room).
    #[prop_or_default]
    pub admin: bool,
}

/// Callbacks handed to children; created once so memoized children keep equal props.
struct Actions {
    on_action: Callback<RowAction>,
    on_load_older: Callback<()>,
    on_send: Callback<String>,
    on_typing: Callback<()>,
    on_retry: Callback<()>,
    on_dismiss: Callback<()>,
    on_reply: Callback<(String, bool)>,
    on_close_thread: Callback<()>,
    on_toggle_pins: Callback<()>,
    on_catch_up: Callback<()>,
    on_summarize: Callback<()>,
    on_dismiss_private: Callback<u64>,
}

/// `/r/<slug>`. Keyed by slug in the parent, so each room gets a fresh connection.
#[function_component]
pub fn RoomPage(props: &RoomPageProps) -> Html {
    let update = use_force_update();
    let card = use_state(|| None::<AttrValue>);
    // The cited message shown in context.
    let source = use_state(|| None::<Seq>);
    let panel_open = use_state(|| false);
    let handle = {
        let slug = props.slug.to_string();
        let user_id = props.user_id.to_string();
        let on_unauthorized = props.on_unauthorized.clone();
        use_memo((), move |_| {
            RoomHandle::new(
                slug,
                user_id,
                Callback::from(move |()| update.force_update()),
                on_unauthorized,
            )
        })
    };
    {
        let handle = (*handle).clone();
        use_effect_with((), move |_| {
            handle.start();
            move || handle.close()
        });
    }
    {
        let handle = (*handle).clone();
        use_effect_with(props.admin, move |admin| handle.set_admin(*admin));
    }
    // Files on their way into messages; kept in IndexedDB, so they resume after a reload.
    let uploads = {
        let (h, user_id) = ((*handle).clone(), props.user_id.to_string());
        use_memo((), move |_| Uploads::new(h, user_id))
    };
    {
        let uploads = (*uploads).clone();
        use_effect_with((), move |_| {
            uploads.start();
            move || uploads.close()
        });
    }
    let actions = {
        let h = (*handle).clone();
        let card = card.clone();
        let uploads = (*uploads).clone();
        use_memo((), move |_| Actions {
            on_action: {
                let h = h.clone();
                Callback::from(move |a| match a {
                    RowAction::ShowProfile(user_id) => card.set(Some(user_id.into())),
                    other => h.act(other),
                })
            },
            on_load_older: {
                let h = h.clone();
                Callback::from(move |()| h.load_older())
            },
            on_send: {
                let (h, uploads) = (h.clone(), uploads.clone());
                Callback::from(move |text: String| {
                    // Asked privately rather than posted. Offline it is posted after all: the
                    // room answers that message privately too, once it is delivered.
                    if is_catch_up(&text) && h.catch_up(None) {
                        return;
                    }
                    // With files, it goes once they are stored.
                    if uploads.commit(Target::Main, text.clone(), false) {
                        return;
                    }
                    if let Err(message) = h.send(text) {
                        web::warn(&message);
                    }
                })
            },
            on_catch_up: {
                let h = h.clone();
                Callback::from(move |()| {
                    h.catch_up(None);
                })
            },
            on_summarize: {
                let h = h.clone();
                Callback::from(move |()| {
                    if let Some(root) = h.with_room(|room| room.thread().map(|t| t.root)) {
                        h.catch_up(Some(root));
                    }
                })
            },
            on_dismiss_private: {
                let h = h.clone();
                Callback::from(move |id| h.dismiss_private(id))
            },
            on_typing: {
                let h = h.clone();
                Callback::from(move |()| h.typing())
            },
            on_retry: {
                let h = h.clone();
                Callback::from(move |()| h.retry_now())
            },
            on_reply: {
                let h = h.clone();
                let uploads = uploads.clone();
                Callback::from(move |(text, also): (String, bool)| {
                    let root = h.with_room(|room| room.thread().map(|t| t.root));
                    if let Some(root) = root {
                        if uploads.commit(Target::Thread(root), text.clone(), also) {
                            return;
                        }
                    }
                    if let Err(message) = h.reply(text, also) {
                        web::warn(&message);
                    }
                })
            },
            on_close_thread: {
                let h = h.clone();
                Callback::from(move |()| h.close_thread())
            },
            on_toggle_pins: {
                let h = h.clone();
                Callback::from(move |()| h.toggle_pins())
            },
            on_dismiss: Callback::from(move |()| h.dismiss_error()),
        })
    };
    let sources = {
        let (h, source) = ((*handle).clone(), source.clone());
        let slug = props.slug.clone();
        use_memo((), move |_| Sources {
            slug,
            handle: h,
            fetched: Rc::new(RefCell::new(HashMap::new())),
            open: Callback::from(move |seq| source.set(Some(seq))),
        })
    };
    let searching = use_state(|| false);
    // A search asked for from elsewhere (an image's tag).
    let search_query = use_state(|| None::<String>);
    let who_open = use_state(|| false);
    let who_button = use_node_ref();
    let toggle_search = {
        let (searching, search_query) = (searching.clone(), search_query.clone());
        Callback::from(move |()| {
            searching.set(!*searching);
            search_query.set(None);
        })
    };
    let files_open = use_state(|| false);
    let lightbox = use_state(|| None::<Attachment>);
    let media = {
        let (lightbox, searching, search_query) =
            (lightbox.clone(), searching.clone(), search_query.clone());
        let slug = props.slug.clone();
        use_memo((), move |_| Media {
            slug,
            open_image: Callback::from(move |a| lightbox.set(Some(a))),
            search: Callback::from(move |query| {
                search_query.set(Some(query));
                searching.set(true);
            }),
        })
    };
    // Files dragged over the room: a drop zone shows until they are dropped or leave.
    let dragging = use_state(|| false);
    let drag_depth = use_mut_ref(|| 0i32);
    let carries_files = |e: &DragEvent| {
        e.data_transfer()
            .is_some_and(|d| d.types().includes(&"Files".into(), 0))
    };
    let ondragenter = {
        let (dragging, depth) = (dragging.clone(), drag_depth.clone());
        Callback::from(move |e: DragEvent| {
            if carries_files(&e) {
                e.prevent_default();
                *depth.borrow_mut() += 1;
                dragging.set(true);
            }
        })
    };
    let ondragover = Callback::from(move |e: DragEvent| {
        if carries_files(&e) {
            // Without this the browser opens the file instead of dropping it here.
            e.prevent_default();
            if let Some(data) = e.data_transfer() {
                data.set_drop_effect("copy");
            }
        }
    });
    let ondragleave = {
        let (dragging, depth) = (dragging.clone(), drag_depth.clone());
        Callback::from(move |_: DragEvent| {
            let mut depth = depth.borrow_mut();
            *depth = (*depth - 1).max(0);
            if *depth == 0 {
                dragging.set(false);
            }
        })
    };
    let ondrop = {
        let (dragging, depth) = (dragging.clone(), drag_depth.clone());
        let uploads = (*uploads).clone();
        // A room that does not exist keeps its (empty) main column, but takes no files.
        let allowed = can_post_now(&handle, props.admin) && handle.ended() != Some(Ended::NotFound);
        Callback::from(move |e: DragEvent| {
            let files = files_of(e.data_transfer().and_then(|d| d.files()));
            *depth.borrow_mut() = 0;
            dragging.set(false);
            if !files.is_empty() {
                e.prevent_default();
                if allowed {
                    uploads.add(Target::Main, files);
                }
            }
        })
    };

    let rows = handle.rows();
    let banner = handle.banner();
    // New messages from others, read out by screen readers: what the polite live region says,
    // and the newest message accounted for (none until the room is first live).
    let announced = use_state(String::new);
    let seen = use_mut_ref(|| None::<Seq>);
    {
        let (announced, seen) = (announced.clone(), seen.clone());
        let live = banner.phase == "live";
        use_effect_with((rows.clone(), live), move |(rows, live)| {
            let mut seen = seen.borrow_mut();
            if *live || seen.is_some() {
                let (text, newest) = announcement(rows, *seen);
                *seen = newest;
                if let Some(text) = text {
                    announced.set(text);
                }
            }
        });
    }
    let ended = handle.ended();
    let thread_rows = handle.thread_rows();
    let pins_open = handle.pins_open();
    let pinned_rows = if pins_open {
        handle.pinned_rows()
    } else {
        Vec::new()
    };
    let unread_from = handle.unread_from();
    let (thread_open, members, me, unread, private) = handle.with_room(|room| {
        (
            room.thread().map(|t| t.root),
            Rc::new(room.members().to_vec()),
            room.me().map(|a| AttrValue::from(a.id.clone())),
            room.unread(),
            room.private_answers().cloned().collect::<Vec<_>>(),
        )
    });
    // A thread's summary shows in its panel while that thread is open; the rest below the
    // timeline.
    let (in_thread, private): (Vec<PrivateAnswer>, Vec<PrivateAnswer>) =
        private.into_iter().partition(|a| {
            a.kind == PrivateKind::Thread && a.thread.is_some() && a.thread == thread_open
        });
    // Offered while there is something unread and no catch-up is already on screen.
    let offer_catch_up = (unread_from.is_some() || unread.unread > 0)
        && !private.iter().any(|a| a.kind == PrivateKind::CatchUp);
    let thread_root = thread_open;
    let jump = Callback::from(move |_: MouseEvent| {
        let target = unread_from.and_then(|seq| {
            web::window()
                .document()?
                .query_selector(&format!("ol.messages > li[data-seq=\"{seq}\"]"))
                .ok()
                .flatten()
        });
        if let Some(el) = target {
            el.scroll_into_view();
        }
    });
    let admin = props.admin;
    let (name, topic, present, counted, typing, has_more, error, can_post, my_role) = handle
        .with_room(|room| {
            let info = room.room();
            (
                info.map(|r| r.name.clone())
                    .unwrap_or_else(|| props.slug.to_string()),
                info.map(|r| r.topic.clone()).unwrap_or_default(),
                room.present()
                    .iter()
                    .map(|m| m.name.clone())
                    .collect::<Vec<_>>(),
                // A large room counts instead of listing: "4,812 here".
                room.presence_is_counted().then(|| room.present_count()),
                typing_line(&room.typing(web::now())),
                room.has_more(),
                room.last_error().cloned(),
                room.me().is_none_or(|me| may(me.role, admin, Action::Post)),
                room.me()
                    .map(|me| (AttrValue::from(me.id.clone()), me.role)),
            )
        });
    {
        let title = format!("{name} — Durable Chat");
        use_effect_with(title, |title| {
            if let Some(doc) = web::window().document() {
                doc.set_title(title);
            }
        });
    }

    let not_found = ended == Some(Ended::NotFound);
    let removed = match ended {
        Some(Ended::Removed(notice)) => Some(notice),
        _ => None,
    };
    let toggle_panel = {
        let panel_open = panel_open.clone();
        Callback::from(move |_: MouseEvent| panel_open.set(!*panel_open))
    };
    let toggle_who = {
        let who_open = who_open.clone();
        Callback::from(move |_: MouseEvent| who_open.set(!*who_open))
    };
    let close_who = {
        let (who_open, who_button) = (who_open.clone(), who_button.clone());
        Callback::from(move |()| {
            who_open.set(false);
            // Back to where the panel was opened from.
            if let Some(button) = who_button.cast::<HtmlElement>() {
                let _ = button.focus();
            }
        })
    };
    let who_panel = (*who_open).then(|| {
        handle.with_room(|room| {
            html! {
                <PresencePanel handle={(*handle).clone()} counted={room.presence_is_counted()}
                    count={room.present_count()} live={room.phase() == Phase::Live}
                    page={room.present_page().cloned()}
                    present={Rc::new(room.present().to_vec())}
                    on_profile={{
                        let card = card.clone();
                        Callback::from(move |id: String| card.set(Some(id.into())))
                    }}
                    on_close={close_who.clone()} />
            }
        })
    });
    let close_card = {
        let card = card.clone();
        Callback::from(move |()| card.set(None))
    };
    let lightbox_view = (*lightbox).clone().map(|shown| {
        // Every image of the loaded timeline, in order; one opened elsewhere (a thread reply
        // not in the timeline) is shown alone.
        let mut images: Vec<Attachment> = rows
            .iter()
            .flat_map(|r| {
                crate::media::images(&r.attachments)
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        let index = match images.iter().position(|a| a.id == shown.id) {
            Some(i) => i,
            None => {
                images = vec![shown];
                0
            }
        };
        let images = Rc::new(images);
        let on_move = {
            let (lightbox, images) = (lightbox.clone(), images.clone());
            Callback::from(move |i: usize| lightbox.set(images.get(i).cloned()))
        };
        let on_close = {
            let lightbox = lightbox.clone();
            Callback::from(move |()| lightbox.set(None))
        };
        html! {
            <Lightbox slug={props.slug.clone()} {images} {index} {on_move} {on_close} />
        }
    });
    let toggle_files = {
        let files_open = files_open.clone();
        Callback::from(move |_: MouseEvent| files_open.set(!*files_open))
    };
    html! {
        <ContextProvider<Media> context={(*media).clone()}>
        <ContextProvider<Sources> context={(*sources).clone()}>
        <section class="room" aria-labelledby="room-title">
            <header class="room-header">
                <div class="room-heading">
                    <h1 id="room-title">{ &name }</h1>
                    if !topic.is_empty() {
                        <p class="room-topic">{ &topic }</p>
                    }
                </div>
                <div class="present">
                    if let Some(count) = counted {
                        <span class="present-dot" aria-hidden="true"></span>
                        <span class="present-count" data-count={count.to_string()}>
                            { format!("{} here", thousands(count)) }
                        </span>
                    } else if !present.is_empty() {
                        <span class="present-dot" aria-hidden="true"></span>
                        <span class="present-names" data-count={present.len().to_string()}
                            title={present.join(", ")}>
                            { format!("{} here: {}", present.len(), present.join(", ")) }
                        </span>
                    }
                    <button type="button" class="who-toggle" ref={who_button}
                        aria-expanded={who_open.to_string()} onclick={toggle_who}>{ "Who's here" }</button>
                </div>
                <div class="room-tools">
                    <button type="button" class="panel-toggle" aria-expanded={panel_open.to_string()}
                        onclick={toggle_panel}>{ "Members" }</button>
                    if unread_from.is_some() {
                        <button type="button" class="jump-unread" onclick={jump}>
                            { "Jump to first unread" }
                        </button>
                    }
                    if offer_catch_up && ended.is_none() {
                        <button type="button" class="catch-up"
                            title="A summary of what you missed, only for you"
                            onclick={actions.on_catch_up.reform(|_: MouseEvent| ())}>
                            { "Catch me up" }
                        </button>
                    }
                    if unread.mentions > 0 {
                        <span class="badge mention" title="Mentions of you">{ format!("@{}", unread.mentions) }</span>
                    }
                    <button type="button" aria-pressed={pins_open.to_string()}
                        onclick={actions.on_toggle_pins.reform(|_: MouseEvent| ())}>{ "📌 Pinned" }</button>
                    <button type="button" class="files-toggle" aria-pressed={files_open.to_string()}
                        onclick={toggle_files}>{ "Files" }</button>
                    <button type="button" aria-pressed={searching.to_string()}
                        onclick={toggle_search.reform(|_: MouseEvent| ())}>{ "🔍 Search" }</button>
                </div>
            </header>
            if let Some(message) = removed {
                <div class="card empty-state" role="alert"><p>{ message }</p></div>
            }
            if let (true, Some((me_id, role))) = (*panel_open, my_role.clone()) {
                <RoomPanel slug={props.slug.clone()} me={me_id} role={role} admin={admin} />
            }
            if let Some(user_id) = (*card).clone() {
                <ProfileCard {user_id} on_close={close_card} />
            }
            if let Some(error) = error {
                <Notice {error} on_dismiss={actions.on_dismiss.clone()} />
            }
            <div class="room-body">
                <div class={classes!("room-main", dragging.then_some("dragging"))}
                    {ondragenter} {ondragover} {ondragleave} {ondrop}>
                    // While the room runs, its connection status floats over the top of the
                    // timeline: it comes and goes with every (re)connect, and in the flow it
                    // pushed the whole room down and back up (most of a first open's layout
                    // shift). Once the room has ended it is the page's last word and takes its
                    // place in the flow. Always this one element, so screen readers hear it
                    // change, down to "This room does not exist."
                    <div class={classes!("banner-slot", ended.is_none().then_some("floating"))}>
                        <Banner state={banner} on_retry={actions.on_retry.clone()} />
                    </div>
                    if not_found {
                        <div class="card empty-state">
                            <p>{ "This room does not exist (or no longer does)." }</p>
                            <a href="/" onclick={link_click("/".into(), props.on_navigate.clone())}>{ "Back to all rooms" }</a>
                        </div>
                    } else {
                        if *dragging {
                            <div class="drop-zone" aria-hidden="true">{ "Drop files to attach them" }</div>
                        }
                        <MessageList rows={rows} has_more={has_more}
                            first_unread={unread_from}
                            on_action={actions.on_action.clone()}
                            on_load_older={actions.on_load_older.clone()} />
                        <PrivateAnswers answers={private}
                            on_dismiss={actions.on_dismiss_private.clone()} />
                        <UploadList uploads={(*uploads).clone()} target={Target::Main} sent=true />
                        <p class="typing" aria-live="polite">{ typing.unwrap_or_default() }</p>
                        <p class="visually-hidden new-message-announcer" aria-live="polite">{ (*announced).clone() }</p>
                        <Composer on_send={actions.on_send.clone()} on_typing={actions.on_typing.clone()}
                            disabled={!can_post || ended.is_some()}
                            members={members.clone()} me={me.clone()}
                            uploads={Some((*uploads).clone())} />
                    }
                </div>
                if !not_found {
                    if let Some(root) = thread_root {
                        <ThreadPanel rows={thread_rows} uploads={Some((*uploads).clone())} {root} on_action={actions.on_action.clone()}
                            on_reply={actions.on_reply.clone()} on_close={actions.on_close_thread.clone()}
                            disabled={!can_post || ended.is_some()} members={members} me={me}
                            on_summarize={actions.on_summarize.clone()}
                            private={html! {
                                <PrivateAnswers answers={in_thread}
                                    on_dismiss={actions.on_dismiss_private.clone()} />
                            }} />
                    }
                    if let Some(seq) = *source {
                        <SourcePanel slug={props.slug.clone()} {seq}
                            on_close={{
                                let source = source.clone();
                                Callback::from(move |()| source.set(None))
                            }} />
                    }
                    if *files_open {
                        <FilesPanel slug={props.slug.clone()}
                            on_open={{
                                let source = source.clone();
                                Callback::from(move |seq| source.set(Some(seq)))
                            }}
                            on_close={{
                                let files_open = files_open.clone();
                                Callback::from(move |()| files_open.set(false))
                            }} />
                    }
                    if pins_open {
                        <PinsPanel rows={pinned_rows} on_action={actions.on_action.clone()}
                            on_close={actions.on_toggle_pins.clone()} />
                    }
                    { who_panel.unwrap_or_default() }
                    if *searching {
                        <SearchPanel slug={props.slug.clone()} on_navigate={props.on_navigate.clone()}
                            on_close={toggle_search} query={(*search_query).clone()} />
                    }
                }
            </div>
            { lightbox_view.unwrap_or_default() }
        </section>
        </ContextProvider<Sources>>
        </ContextProvider<Media>>
    }
}

/// Whether we may post in the room now (a drop of files is ignored otherwise).
fn can_post_now(handle: &RoomHandle, admin: bool) -> bool {
    handle.with_room(|room| room.me().is_none_or(|me| may(me.role, admin, Action::Post)))
}
