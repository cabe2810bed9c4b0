//! The message composer: Enter sends, Shift+Enter adds a line, IME composition never sends.

use shared::limits::{validate_text, TEXT_MAX_CHARS};
use web_sys::HtmlTextAreaElement;
use yew::prelude::*;

use crate::format::char_counter;
use crate::keys::sends;

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
}

/// The composer form.
#[function_component]
pub fn Composer(props: &ComposerProps) -> Html {
    let input = use_node_ref();
    let count = use_state(|| 0usize);
    let error = use_state(|| None::<String>);

    let submit = {
        let input = input.clone();
        let count = count.clone();
        let error = error.clone();
        let on_send = props.on_send.clone();
        Callback::from(move |()| {
            let Some(area) = input.cast::<HtmlTextAreaElement>() else {
                return;
            };
            let text = area.value();
            match validate_text(&text) {
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
    let onkeydown = Callback::from(move |e: KeyboardEvent| {
        if sends(&e.key(), e.shift_key(), e.is_composing(), e.key_code()) {
            e.prevent_default();
            submit.emit(());
        }
    });
    let oninput = {
        let count = count.clone();
        let error = error.clone();
        let on_typing = props.on_typing.clone();
        Callback::from(move |e: InputEvent| {
            if let Some(area) = e.target_dyn_into::<HtmlTextAreaElement>() {
                count.set(area.value().chars().count());
            }
            if error.is_some() {
                error.set(None);
            }
            on_typing.emit(());
        })
    };
    let over = *count > TEXT_MAX_CHARS;
    html! {
        <form class="composer" {onsubmit}>
            <textarea
                ref={input}
                aria-label="Message"
                placeholder="Write a message…"
                rows="1"
                disabled={props.disabled}
                aria-invalid={error.is_some().then_some("true")}
                aria-describedby="composer-help"
                {onkeydown}
                {oninput}
            />
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
