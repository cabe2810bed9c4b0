//! The message composer: Enter sends, Shift+Enter adds a line, IME composition never sends.
//! With the room's uploads, it attaches files too: the "Attachment" button (a file picker) or
//! pasting files; their chips show above the field, and a message with files may have no words.

use std::rc::Rc;

use shared::limits::{validate_text, TEXT_MAX_CHARS};
use shared::mentions::{suggestions, typing_mention};
use shared::protocol::Member;
use wasm_bindgen::JsCast;
use web_sys::{FileList, HtmlInputElement, HtmlTextAreaElement};
use yew::prelude::*;

use crate::components::upload_chips::UploadList;
use crate::format::char_counter;
use crate::keys::sends;
use crate::upload::Target;
use crate::uploads::Uploads;

/// Props of [`Composer`].
#[derive(Properties, PartialEq)]
pub struct ComposerProps {
    /// A valid message to send.
    pub on_send: Callback<String>,
    /// The user typed (throttled by the receiver).
    #[prop_or_default]
    pub on_typing: Callback<()>,
    /// Posting is not allowed (read-only role, or the room refused us).
    #[prop_or_default]
    pub disabled: bool,
    /// The room's members, for `@name` autocomplete.
    #[prop_or_default]
    pub members: Rc<Vec<Member>>,
    /// Our user id (left out of suggestions).
    #[prop_or_default]
    pub me: Option<AttrValue>,
    /// The empty field's hint.
    #[prop_or(AttrValue::Static("Write a message…"))]
    pub placeholder: AttrValue,
    /// The field's accessible name.
    #[prop_or(AttrValue::Static("Message"))]
    pub label: AttrValue,
    /// The room's uploads: files may be attached (none: no Attachment button).
    #[prop_or_default]
    pub uploads: Option<Uploads>,
    /// Where the message goes (which draft its files join).
    #[prop_or(Target::Main)]
    pub target: Target,
}

/// The files of a list (a picker's, a paste's or a drop's).
pub fn files_of(list: Option<FileList>) -> Vec<web_sys::File> {
    let Some(list) = list else {
        return Vec::new();
    };
    (0..list.length()).filter_map(|i| list.item(i)).collect()
}

/// The byte index in `text` of a UTF-16 offset (what a textarea's selection reports).
fn byte_index(text: &str, utf16: usize) -> usize {
    let mut units = 0;
    for (i, c) in text.char_indices() {
        if units >= utf16 {
            return i;
        }
        units += c.len_utf16();
    }
    text.len()
}

/// The text before the caret.
fn before_caret(area: &HtmlTextAreaElement) -> (String, usize) {
    let text = area.value();
    let caret = area
        .selection_start()
        .ok()
        .flatten()
        .map_or(text.len(), |p| byte_index(&text, p as usize));
    (text, caret)
}

/// Replaces the half-typed mention before the caret with `@name `.
fn complete_mention(area: &HtmlTextAreaElement, name: &str) {
    let (text, caret) = before_caret(area);
    let Some(at) = text[..caret].rfind('@') else {
        return;
    };
    let inserted = format!("{}@{name} ", &text[..at]);
    let caret_utf16 = inserted.encode_utf16().count() as u32;
    area.set_value(&format!("{inserted}{}", &text[caret..]));
    let _ = area.set_selection_range(caret_utf16, caret_utf16);
    let _ = area.focus();
}

/// The composer form.
#[function_component]
pub fn Composer(props: &ComposerProps) -> Html {
    let input = use_node_ref();
    let count = use_state(|| 0usize);
    let error = use_state(|| None::<String>);
    let suggest = use_state(Vec::<Member>::new);

    let picker = use_node_ref();

    let submit = {
        let input = input.clone();
        let count = count.clone();
        let error = error.clone();
        let on_send = props.on_send.clone();
        let (uploads, target) = (props.uploads.clone(), props.target);
        Callback::from(move |()| {
            let Some(area) = input.cast::<HtmlTextAreaElement>() else {
                return;
            };
            let text = area.value();
            // Files may go without words; words still follow the rules.
            let with_files = uploads.as_ref().is_some_and(|u| u.has_files(target));
            let checked = if with_files && text.trim().is_empty() {
                Ok(())
            } else {
                validate_text(&text)
            };
            match checked {
                Ok(()) => {
                    on_send.emit(text);
                    area.set_value("");
                    count.set(0);
                    error.set(None);
                }
                Err(e) => error.set(Some(e.message)),
            }
        })
    };
    let onsubmit = {
        let submit = submit.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            submit.emit(());
        })
    };
    let onkeydown = {
        let suggest = suggest.clone();
        let input = input.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Tab" && !suggest.is_empty() {
                e.prevent_default();
                if let Some(area) = input.cast::<HtmlTextAreaElement>() {
                    complete_mention(&area, &suggest[0].name);
                }
                suggest.set(Vec::new());
            } else if e.key() == "Escape" && !suggest.is_empty() {
                // Used up: the panel around the composer must not close too.
                e.prevent_default();
                suggest.set(Vec::new());
            } else if sends(&e.key(), e.shift_key(), e.is_composing(), e.key_code()) {
                e.prevent_default();
                suggest.set(Vec::new());
                submit.emit(());
            }
        })
    };
    let oninput = {
        let count = count.clone();
        let error = error.clone();
        let on_typing = props.on_typing.clone();
        let suggest = suggest.clone();
        let members = props.members.clone();
        let me = props.me.clone();
        Callback::from(move |e: InputEvent| {
            if let Some(area) = e.target_dyn_into::<HtmlTextAreaElement>() {
                count.set(area.value().chars().count());
                let (text, caret) = before_caret(&area);
                let found = typing_mention(&text[..caret])
                    .map(|partial| {
                        suggestions(partial, &members, me.as_deref())
                            .into_iter()
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default();
                suggest.set(found);
            }
            if error.is_some() {
                error.set(None);
            }
            on_typing.emit(());
        })
    };
    let attach = {
        let (uploads, target) = (props.uploads.clone(), props.target);
        move |files: Vec<web_sys::File>| {
            if let (Some(uploads), false) = (&uploads, files.is_empty()) {
                uploads.add(target, files);
            }
        }
    };
    let open_picker = {
        let picker = picker.clone();
        Callback::from(move |_: MouseEvent| {
            if let Some(picker) = picker.cast::<HtmlInputElement>() {
                picker.click();
            }
        })
    };
    let onchange = {
        let attach = attach.clone();
        Callback::from(move |e: Event| {
            if let Some(picker) = e.target_dyn_into::<HtmlInputElement>() {
                attach(files_of(picker.files()));
                // The same file may be picked again.
                picker.set_value("");
            }
        })
    };
    let onpaste = Callback::from(move |e: Event| {
        let files = e
            .dyn_ref::<web_sys::ClipboardEvent>()
            .and_then(|e| e.clipboard_data())
            .map(|data| files_of(data.files()))
            .unwrap_or_default();
        if !files.is_empty() {
            // Files, not their names as text.
            e.prevent_default();
            attach(files);
        }
    });
    let over = *count > TEXT_MAX_CHARS;
    html! {
        <form class="composer" {onsubmit}>
            if let Some(uploads) = &props.uploads {
                <UploadList uploads={uploads.clone()} target={props.target} />
            }
            <textarea
                ref={input.clone()}
                aria-label={props.label.clone()}
                placeholder={props.placeholder.clone()}
                rows="1"
                disabled={props.disabled}
                aria-invalid={error.is_some().then_some("true")}
                aria-describedby="composer-help"
                {onkeydown}
                {oninput}
                {onpaste}
            />
            if !suggest.is_empty() {
                <ul class="mention-suggestions" role="listbox" aria-label="Mention">
                    { for suggest.iter().map(|m| {
                        let pick = {
                            let input = input.clone();
                            let suggest = suggest.clone();
                            let name = m.name.clone();
                            Callback::from(move |_: MouseEvent| {
                                if let Some(area) = input.cast::<HtmlTextAreaElement>() {
                                    complete_mention(&area, &name);
                                }
                                suggest.set(Vec::new());
                            })
                        };
                        html! {
                            <li role="option"><button type="button" onclick={pick}>{ "@" }{ &m.name }</button></li>
                        }
                    }) }
                </ul>
            }
            if props.uploads.is_some() {
                <input type="file" multiple=true hidden=true ref={picker} {onchange}
                    tabindex="-1" aria-hidden="true" />
                <button type="button" class="attach" aria-label="Attachment" title="Attach files"
                    disabled={props.disabled} onclick={open_picker}>
                    <span aria-hidden="true">{ "📎" }</span>
                </button>
            }
            <button type="submit" class="primary" disabled={props.disabled}>{ "Send" }</button>
            <div id="composer-help" class="composer-help">
                if let Some(message) = &*error {
                    <span class="field-error" role="alert">{ message }</span>
                }
                if let Some(counter) = char_counter(*count) {
                    <span class={classes!("counter", over.then_some("over"))}>{ counter }</span>
                }
            </div>
        </form>
    }
}
