//! One message row, memoized: it re-renders only when its `Rc<RowView>` is replaced.

use std::rc::Rc;

use shared::limits::validate_text;
use web_sys::HtmlTextAreaElement;
use yew::prelude::*;

use crate::components::answer::AnswerBar;
use crate::components::attachments::{attachments, Media};
use crate::components::citations::AnswerText;
use crate::components::link_preview::LinkPreviewCard;
use crate::components::reactions::Reactions;
use crate::keys::sends;
use crate::rows::{PendingKind, RowAction, RowView, Status};
use crate::web;

/// Props of [`MessageRow`]. Compared by pointer: the row builder reuses the `Rc` of a row that
/// did not change, so a 10,000-row list re-renders only the rows that did.
#[derive(Properties)]
pub struct MessageRowProps {
    /// The row.
    pub row: Rc<RowView>,
    /// Edit, delete, retry, discard.
    pub on_action: Callback<RowAction>,
    /// Shown in the thread panel (no thread buttons there).
    #[prop_or_default]
    pub in_panel: bool,
}

impl PartialEq for MessageRowProps {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.row, &other.row)
            && self.on_action == other.on_action
            && self.in_panel == other.in_panel
    }
}

/// `<li class="message" data-seq data-client-id data-status>`.
#[function_component]
pub fn MessageRow(props: &MessageRowProps) -> Html {
    let row = &props.row;
    let media = use_context::<Media>();
    let editing = use_state(|| false);
    let confirming = use_state(|| false);
    let edit_error = use_state(|| None::<String>);
    let editor = use_node_ref();
    // The answer version shown (None: the current one).
    let shown_version = use_state(|| None::<u32>);

    {
        // The editor starts from the stored text once, when editing starts. It is not bound
        // to the text in the markup: a rendered `value` is written back on every render, and
        // the row renders again whenever anyone reacts or replies to it.
        let editor = editor.clone();
        let text = row.text.clone();
        use_effect_with(*editing, move |editing| {
            if *editing {
                if let Some(area) = editor.cast::<HtmlTextAreaElement>() {
                    area.set_value(&text);
                    let _ = area.focus();
                    let end = area.value().len() as u32;
                    let _ = area.set_selection_range(end, end);
                }
            }
        });
    }

    let start_edit = {
        let editing = editing.clone();
        Callback::from(move |_: MouseEvent| editing.set(true))
    };
    let cancel_edit = {
        let editing = editing.clone();
        let edit_error = edit_error.clone();
        Callback::from(move |()| {
            editing.set(false);
            edit_error.set(None);
        })
    };
    let save_edit = {
        let editing = editing.clone();
        let edit_error = edit_error.clone();
        let editor = editor.clone();
        let on_action = props.on_action.clone();
        let row = row.clone();
        Callback::from(move |()| {
            let (Some(area), Some(seq)) = (editor.cast::<HtmlTextAreaElement>(), row.seq) else {
                return;
            };
            let text = area.value();
            match validate_text(&text) {
                Ok(()) => {
                    if text != row.text {
                        on_action.emit(RowAction::Edit(seq, text));
                    }
                    editing.set(false);
                    edit_error.set(None);
                }
                Err(e) => edit_error.set(Some(e.message)),
            }
        })
    };
    let on_edit_key = {
        let save_edit = save_edit.clone();
        let cancel_edit = cancel_edit.clone();
        Callback::from(move |e: KeyboardEvent| {
            if sends(&e.key(), e.shift_key(), e.is_composing(), e.key_code()) {
                e.prevent_default();
                save_edit.emit(());
            } else if e.key() == "Escape" {
                e.prevent_default();
                cancel_edit.emit(());
            }
        })
    };
    let ask_delete = {
        let confirming = confirming.clone();
        Callback::from(move |_: MouseEvent| confirming.set(true))
    };
    let cancel_delete = {
        let confirming = confirming.clone();
        Callback::from(move |_: MouseEvent| confirming.set(false))
    };
    let confirm_delete = {
        let confirming = confirming.clone();
        let on_action = props.on_action.clone();
        let seq = row.seq;
        Callback::from(move |_: MouseEvent| {
            confirming.set(false);
            if let Some(seq) = seq {
                on_action.emit(RowAction::Delete(seq));
            }
        })
    };
    let pending_id = row
        .pending
        .as_ref()
        .map(|(id, _)| id.clone())
        .unwrap_or_default();
    let retry = {
        let on_action = props.on_action.clone();
        let id = pending_id.clone();
        Callback::from(move |_: MouseEvent| on_action.emit(RowAction::Retry(id.clone())))
    };
    let discard = {
        let on_action = props.on_action.clone();
        Callback::from(move |_: MouseEvent| on_action.emit(RowAction::Discard(pending_id.clone())))
    };

    let body = if row.deleted {
        html! { <p class="tombstone">{ "Message deleted" }</p> }
    } else if *editing {
        let save = save_edit.reform(|_: MouseEvent| ());
        let cancel = cancel_edit.reform(|_: MouseEvent| ());
        html! {
            <div class="edit">
                <textarea ref={editor} aria-label="Edit message"
                    onkeydown={on_edit_key} />
                if let Some(message) = &*edit_error {
                    <span class="field-error" role="alert">{ message }</span>
                }
                <div class="edit-actions">
                    <button type="button" class="primary" onclick={save}>{ "Save" }</button>
                    <button type="button" onclick={cancel}>{ "Cancel" }</button>
                    <span class="hint">{ "Enter to save, Escape to cancel" }</span>
                </div>
            </div>
        }
    } else if let Some(text) = row.answer.as_ref().and_then(|a| {
        let shown = (*shown_version)?;
        a.previous.get(shown.checked_sub(1)? as usize)
    }) {
        // An earlier answer version, rendered on demand (rarely looked at).
        let html: AttrValue = shared::markdown::render(text).into();
        html! { <div class="body earlier">{ Html::from_html_unchecked(html) }</div> }
    } else if let Some(answer) = row.answer.as_ref().filter(|a| !a.citations.is_empty()) {
        // A finished answer citing its sources: its markers are live (see `AnswerText`).
        html! {
            <AnswerText html={AttrValue::from(row.html.clone())}
                citations={answer.citations.clone()} />
        }
    } else {
        let streaming = row
            .answer
            .as_ref()
            .is_some_and(|a| a.state == shared::protocol::AnswerState::Streaming);
        html! {
            <div class={classes!("body", streaming.then_some("streaming"))}>
                { Html::from_html_unchecked(AttrValue::from(row.html.clone())) }
            </div>
        }
    };
    let answer_bar = match (&row.answer, row.seq) {
        (Some(answer), Some(seq)) if !row.deleted => {
            let on_show = {
                let shown_version = shown_version.clone();
                let current = answer.version;
                Callback::from(move |v: u32| {
                    shown_version.set((v < current).then_some(v));
                })
            };
            html! {
                <AnswerBar seq={seq} answer={answer.clone()}
                    shown={shown_version.unwrap_or(answer.version)}
                    on_show={on_show} on_action={props.on_action.clone()} />
            }
        }
        _ => Html::default(),
    };

    let state_line = match (&row.status, row.pending.as_ref().map(|(_, k)| *k)) {
        (Status::Pending, kind) => html! {
            <span class="sending">
                { match kind {
                    Some(PendingKind::Edit) => "Saving…",
                    Some(PendingKind::Delete) => "Deleting…",
                    _ => "Sending…",
                } }
            </span>
        },
        (Status::Failed(message), _) => html! {
            <div class="failure">
                <span class="failure-text">{ message }</span>
                <button type="button" onclick={retry}>{ "Retry" }</button>
                <button type="button" onclick={discard}>{ "Discard" }</button>
            </div>
        },
        (Status::Sent, _) => Html::default(),
    };

    let pinned = row.pinned;
    let social = match row.seq {
        Some(seq) if row.status == Status::Sent && !row.deleted => {
            let open_thread = props
                .on_action
                .reform(move |_: MouseEvent| RowAction::OpenThread(seq));
            let thread_line = match (row.replies, props.in_panel) {
                (Some((count, last)), false) => html! {
                    <button type="button" class="thread-link" onclick={open_thread.clone()}>
                        { format!("{count} repl{} · last {}", if count == 1 { "y" } else { "ies" },
                            web::local_hh_mm(last)) }
                    </button>
                },
                _ => Html::default(),
            };
            let in_thread = match (row.in_thread, props.in_panel) {
                (Some(root), false) => {
                    let open = props
                        .on_action
                        .reform(move |_: MouseEvent| RowAction::OpenThread(root));
                    html! {
                        <button type="button" class="thread-link" onclick={open}>
                            { "replied in a thread" }
                        </button>
                    }
                }
                _ => Html::default(),
            };
            html! {
                <div class="social">
                    <Reactions seq={seq} reactions={row.reactions.clone()}
                        can_react={row.can_react} on_action={props.on_action.clone()} />
                    { thread_line }
                    { in_thread }
                    if row.can_react && !props.in_panel {
                        <button type="button" class="reply" onclick={open_thread}>{ "Reply" }</button>
                    }
                    if row.can_pin {
                        <button type="button" class="pin"
                            onclick={props.on_action.reform(move |_: MouseEvent| RowAction::Pin(seq, !pinned))}>
                            { if pinned { "Unpin" } else { "Pin" } }
                        </button>
                    }
                </div>
            }
        }
        _ => Html::default(),
    };

    let actions = if row.status == Status::Sent && !*editing {
        if *confirming {
            html! {
                <div class="actions confirming">
                    <span>{ "Delete this message?" }</span>
                    <button type="button" class="danger" onclick={confirm_delete}>{ "Yes, delete" }</button>
                    <button type="button" onclick={cancel_delete}>{ "Cancel" }</button>
                </div>
            }
        } else if row.can_edit || row.can_delete {
            html! {
                <div class="actions">
                    if row.can_edit {
                        <button type="button" onclick={start_edit}>{ "Edit" }</button>
                    }
                    if row.can_delete {
                        <button type="button" onclick={ask_delete}>{ "Delete" }</button>
                    }
                </div>
            }
        } else {
            Html::default()
        }
    } else {
        Html::default()
    };

    let show_profile = {
        let on_action = props.on_action.clone();
        let id = row.author_id.clone();
        Callback::from(move |_: MouseEvent| on_action.emit(RowAction::ShowProfile(id.clone())))
    };

    html! {
        <li class={classes!("message", row.mine.then_some("mine"), row.deleted.then_some("deleted"),
                row.answer.is_some().then_some("answer"), row.mentions_me.then_some("mentions-me"),
                row.pinned.then_some("pinned"))}
            data-seq={row.seq.map(|s| s.to_string())}
            data-client-id={row.client_id.clone()}
            data-status={row.status.attr()}>
            <div class="meta">
                <button type="button" class="author" title="Show profile"
                    onclick={show_profile}>{ &row.author }</button>
                if let Some(tag) = &row.author_tag {
                    <span class="author-tag" title="Someone else here has this name: this is their id">
                        { tag }
                    </span>
                }
                <time datetime={web::iso(row.at)} title={web::local_date_time(row.at)}>
                    { web::local_hh_mm(row.at) }
                </time>
                if row.edited && !row.deleted {
                    <span class="edited">{ "(edited)" }</span>
                }
                if row.pinned {
                    <span class="pinned-mark" title="Pinned">{ "📌" }</span>
                }
            </div>
            { body }
            if !row.deleted {
                { attachments(media.as_ref(), &row.attachments) }
                if let (Some(url), false) = (&row.link, *editing) {
                    <LinkPreviewCard url={url.clone()} />
                }
            }
            { answer_bar }
            { social }
            { state_line }
            { actions }
        </li>
    }
}
