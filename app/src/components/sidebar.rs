//! The room list and the new-room form.

use std::rc::Rc;

use shared::limits::{validate_room_name, validate_topic};
use shared::protocol::http::RoomUnread;
use shared::protocol::AssistantMode;
use shared::protocol::RoomInfo;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::api;
use crate::format::ago;
use crate::route::Route;
use crate::web;

/// A click on an in-app link: navigate without reloading, unless the user asked for a new tab.
pub fn link_click(path: String, on_navigate: Callback<String>) -> Callback<MouseEvent> {
    Callback::from(move |e: MouseEvent| {
        if e.button() == 0 && !e.ctrl_key() && !e.meta_key() && !e.shift_key() && !e.alt_key() {
            e.prevent_default();
            on_navigate.emit(path.clone());
        }
    })
}

/// "3", or "999+" at the room's counting cap.
pub fn unread_label(count: u32) -> String {
    if count >= shared::limits::UNREAD_COUNT_CAP {
        format!("{}+", shared::limits::UNREAD_COUNT_CAP)
    } else {
        count.to_string()
    }
}

/// Props of [`Sidebar`].
#[derive(Properties, PartialEq)]
pub struct SidebarProps {
    /// The rooms, most recently active first.
    pub rooms: Rc<Vec<RoomInfo>>,
    /// Our unread counts in the rooms we joined.
    #[prop_or_default]
    pub unread: Rc<Vec<RoomUnread>>,
    /// Why the list could not be loaded, if it could not.
    #[prop_or_default]
    pub error: Option<AttrValue>,
    /// The open room's slug.
    #[prop_or_default]
    pub current: Option<AttrValue>,
    /// Go to a path.
    pub on_navigate: Callback<String>,
    /// A room was created.
    pub on_created: Callback<RoomInfo>,
}

/// `<nav aria-label="Rooms">` and the new-room form.
#[function_component]
pub fn Sidebar(props: &SidebarProps) -> Html {
    let now = web::now();
    html! {
        <>
            <nav aria-label="Rooms" class="room-list">
                <h2>{ "Rooms" }</h2>
                if let Some(error) = &props.error {
                    <p class="field-error">{ error }</p>
                }
                if props.rooms.is_empty() && props.error.is_none() {
                    <p class="muted">{ "No rooms yet. Create the first one below." }</p>
                }
                <ul>
                    { for props.rooms.iter().map(|room| {
                        let path = Route::Room(room.slug.clone()).path();
                        let current = props.current.as_deref() == Some(room.slug.as_str());
                        let activity = room.last_activity.map(|t| ago(now, t));
                        // The open room is being read: its badge would only lag behind.
                        let counts = props.unread.iter()
                            .find(|u| u.slug == room.slug && !current)
                            .map(|u| u.counts)
                            .filter(|c| c.unread > 0 || c.mentions > 0);
                        html! {
                            <li key={room.slug.clone()}>
                                <a href={path.clone()} class={classes!("room-link", current.then_some("current"))}
                                    aria-current={current.then_some("page")}
                                    onclick={link_click(path, props.on_navigate.clone())}>
                                    <span class="room-name">{ &room.name }
                                        if let Some(c) = counts {
                                            <span class="badge unread" title="Unread messages">{ unread_label(c.unread) }</span>
                                            if c.mentions > 0 {
                                                <span class="badge mention" title="Mentions of you">{ format!("@{}", c.mentions) }</span>
                                            }
                                        }
                                    </span>
                                    if !room.topic.is_empty() {
                                        <span class="room-topic">{ &room.topic }</span>
                                    }
                                    <span class="room-stats">
                                        { format!("{} message{}", room.message_count, if room.message_count == 1 { "" } else { "s" }) }
                                        if let Some(activity) = activity {
                                            { " · " }{ activity }
                                        }
                                    </span>
                                </a>
                            </li>
                        }
                    }) }
                </ul>
            </nav>
            <AssistantRoomButton on_open={props.on_created.clone()} />
            <NewRoomForm on_created={props.on_created.clone()} />
        </>
    }
}

/// Props of [`NewRoomForm`].
#[derive(Properties, PartialEq)]
pub struct NewRoomFormProps {
    /// A room was created.
    pub on_created: Callback<RoomInfo>,
}

/// "Room name", "Topic", "Create room".
#[function_component]
pub fn NewRoomForm(props: &NewRoomFormProps) -> Html {
    let name_ref = use_node_ref();
    let topic_ref = use_node_ref();
    let assistant_ref = use_node_ref();
    let private_ref = use_node_ref();
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);
    let onsubmit = {
        let (name_ref, topic_ref) = (name_ref.clone(), topic_ref.clone());
        let (assistant_ref, private_ref) = (assistant_ref.clone(), private_ref.clone());
        let (error, busy) = (error.clone(), busy.clone());
        let on_created = props.on_created.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if *busy {
                return;
            }
            let (Some(name_field), Some(topic_field)) = (
                name_ref.cast::<HtmlInputElement>(),
                topic_ref.cast::<HtmlInputElement>(),
            ) else {
                return;
            };
            let checked = validate_room_name(&name_field.value())
                .and_then(|name| validate_topic(&topic_field.value()).map(|topic| (name, topic)));
            let (name, topic) = match checked {
                Ok(ok) => ok,
                Err(e) => return error.set(Some(e.message)),
            };
            let assistant = match assistant_ref
                .cast::<web_sys::HtmlSelectElement>()
                .map(|s| s.value())
                .as_deref()
            {
                Some("all") => AssistantMode::All,
                Some("off") => AssistantMode::Off,
                _ => AssistantMode::Mention,
            };
            let private = private_ref
                .cast::<HtmlInputElement>()
                .is_some_and(|c| c.checked());
            busy.set(true);
            error.set(None);
            let (error, busy, on_created) = (error.clone(), busy.clone(), on_created.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::create_room(name, topic, assistant, private).await {
                    Ok(room) => {
                        name_field.set_value("");
                        topic_field.set_value("");
                        on_created.emit(room);
                    }
                    Err(e) => error.set(Some(e.message)),
                }
                busy.set(false);
            });
        })
    };
    html! {
        <form class="new-room" {onsubmit}>
            <h2>{ "New room" }</h2>
            <label for="room-name">{ "Room name" }</label>
            <input id="room-name" ref={name_ref} name="room_name" required=true maxlength="60" />
            <label for="room-topic">{ "Topic" }<span class="muted">{ " (optional)" }</span></label>
            <input id="room-topic" ref={topic_ref} name="topic" maxlength="200" aria-label="Topic" />
            <label for="room-assistant">{ "Assistant answers" }</label>
            <select id="room-assistant" ref={assistant_ref} name="assistant">
                <option value="mention" selected=true>{ "when @assistant is mentioned" }</option>
                <option value="all">{ "every message" }</option>
                <option value="off">{ "never" }</option>
            </select>
            <label class="check">
                <input type="checkbox" ref={private_ref} name="private" />
                { " Private (invite only)" }
            </label>
            if let Some(message) = &*error {
                <p class="field-error" role="alert">{ message }</p>
            }
            <button type="submit" class="primary" disabled={*busy}>{ "Create room" }</button>
        </form>
    }
}

/// Props of [`AssistantRoomButton`].
#[derive(Properties, PartialEq)]
pub struct AssistantRoomButtonProps {
    /// The room to open.
    pub on_open: Callback<RoomInfo>,
}

/// "Your assistant": opens (creating on first use) the user's private room with the assistant.
#[function_component]
pub fn AssistantRoomButton(props: &AssistantRoomButtonProps) -> Html {
    let error = use_state(|| None::<String>);
    let onclick = {
        let (error, on_open) = (error.clone(), props.on_open.clone());
        Callback::from(move |_: MouseEvent| {
            let (error, on_open) = (error.clone(), on_open.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::assistant_room().await {
                    Ok(room) => {
                        error.set(None);
                        on_open.emit(room);
                    }
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };
    html! {
        <div class="assistant-room">
            <button type="button" {onclick}>{ "Your assistant" }</button>
            if let Some(message) = &*error {
                <p class="field-error" role="alert">{ message }</p>
            }
        </div>
    }
}
