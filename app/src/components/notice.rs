//! The notice for errors that are not tied to one message (`ClientRoom::last_error`).

use shared::{ChatError, ErrorCode};
use yew::prelude::*;

/// Props of [`Notice`].
#[derive(Properties, PartialEq)]
pub struct NoticeProps {
    /// The error to show.
    pub error: ChatError,
    /// Dismiss.
    pub on_dismiss: Callback<()>,
}

/// The text shown for an error: the room's message, with friendlier words for common codes.
pub fn notice_text(error: &ChatError) -> String {
    match error.code {
        ErrorCode::RateLimited => match error.retry_after_ms {
            Some(ms) => format!(
                "You are sending too fast. Wait {} s and try again.",
                ms.div_ceil(1000)
            ),
            None => "You are sending too fast. Wait a moment and try again.".into(),
        },
        _ => error.message.clone(),
    }
}

/// A dismissible alert.
#[function_component]
pub fn Notice(props: &NoticeProps) -> Html {
    let dismiss = props.on_dismiss.reform(|_: MouseEvent| ());
    html! {
        <div class="notice" role="alert" data-code={props.error.code.as_str()}>
            <span class="notice-text">{ notice_text(&props.error) }</span>
            <button type="button" class="icon-button" aria-label="Dismiss" onclick={dismiss}>{ "×" }</button>
        </div>
    }
}
