//! The thread side panel: the root, its replies (live), "Summarize thread" with the summaries
//! only this user sees, and a reply composer with "also send to the room".

use std::rc::Rc;

use shared::protocol::{Member, Seq};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::components::composer::Composer;
use crate::components::focus::{close_on_escape, use_panel_focus};
use crate::components::message_row::MessageRow;
use crate::components::upload_chips::UploadList;
use crate::rows::{RowAction, RowView};
use crate::upload::Target;
use crate::uploads::Uploads;

/// Props of [`ThreadPanel`].
#[derive(Properties, PartialEq)]
pub struct ThreadPanelProps {
    /// Root first, then replies and our pending replies.
    pub rows: Vec<Rc<RowView>>,
    /// Row actions (react, edit, delete, pin, retry).
    pub on_action: Callback<RowAction>,
    /// A reply and whether to also send it to the room.
    pub on_reply: Callback<(String, bool)>,
    /// Close the panel.
    pub on_close: Callback<()>,
    /// Replying is not allowed.
    #[prop_or_default]
    pub disabled: bool,
    /// Members, for mention autocomplete.
    #[prop_or_default]
    pub members: Rc<Vec<Member>>,
    /// Our user id.
    #[prop_or_default]
    pub me: Option<AttrValue>,
    /// Ask the assistant for a summary of this thread, only for us.
    #[prop_or_default]
    pub on_summarize: Callback<()>,
    /// This thread's private summaries.
    #[prop_or_default]
    pub private: Html,
    /// The room's uploads (files may be attached to replies).
    #[prop_or_default]
    pub uploads: Option<Uploads>,
    /// The thread's root.
    #[prop_or_default]
    pub root: Seq,
}

/// `<aside aria-label="Thread">`; the reply box takes focus when it opens, Escape closes it
/// and focus goes back to what opened it.
#[function_component]
pub fn ThreadPanel(props: &ThreadPanelProps) -> Html {
    let also = use_node_ref();
    let on_send = {
        let also = also.clone();
        let on_reply = props.on_reply.clone();
        Callback::from(move |text: String| {
            let also_in_room = also.cast::<HtmlInputElement>().is_some_and(|b| b.checked());
            on_reply.emit((text, also_in_room));
        })
    };
    let close = props.on_close.reform(|_: MouseEvent| ());
    let summarize = props.on_summarize.reform(|_: MouseEvent| ());
    let panel = use_node_ref();
    use_panel_focus(
        panel.clone(),
        "textarea:not([disabled]), button[aria-label=\"Close the thread\"]",
    );
    let onkeydown = close_on_escape(props.on_close.clone());
    html! {
        <aside class="thread-panel" aria-label="Thread" ref={panel} {onkeydown}>
            <header>
                <h2>{ "Thread" }</h2>
                <button type="button" class="summarize" onclick={summarize}
                    disabled={props.rows.is_empty()}>{ "Summarize thread" }</button>
                <button type="button" onclick={close} aria-label="Close the thread">{ "×" }</button>
            </header>
            <ol class="thread-messages">
                if props.rows.is_empty() {
                    <li class="muted">{ "Loading…" }</li>
                }
                { for props.rows.iter().map(|row| html! {
                    <MessageRow key={row.key()} row={row.clone()} on_action={props.on_action.clone()} in_panel=true />
                }) }
            </ol>
            { props.private.clone() }
            if let Some(uploads) = &props.uploads {
                <UploadList uploads={uploads.clone()} target={Target::Thread(props.root)} sent=true />
            }
            <label class="also-to-room">
                <input type="checkbox" ref={also} />{ " Also send to the room" }
            </label>
            <Composer on_send={on_send} disabled={props.disabled}
                members={props.members.clone()} me={props.me.clone()}
                placeholder="Reply in thread…" label="Reply"
                uploads={props.uploads.clone()} target={Target::Thread(props.root)} />
        </aside>
    }
}
