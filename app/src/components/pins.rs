//! The room's pinned messages.

use std::rc::Rc;

use yew::prelude::*;

use crate::components::message_row::MessageRow;
use crate::rows::{RowAction, RowView};

/// Props of [`PinsPanel`].
#[derive(Properties, PartialEq)]
pub struct PinsPanelProps {
    /// Pinned messages, newest first.
    pub rows: Vec<Rc<RowView>>,
    /// Row actions (unpin, react, open thread).
    pub on_action: Callback<RowAction>,
    /// Close the panel.
    pub on_close: Callback<()>,
}

/// `<aside aria-label="Pinned messages">`.
#[function_component]
pub fn PinsPanel(props: &PinsPanelProps) -> Html {
    let close = props.on_close.reform(|_: MouseEvent| ());
    html! {
        <aside class="pins-panel" aria-label="Pinned messages">
            <header>
                <h2>{ "Pinned" }</h2>
                <button type="button" onclick={close} aria-label="Close pinned messages">{ "×" }</button>
            </header>
            if props.rows.is_empty() {
                <p class="muted">{ "Nothing is pinned." }</p>
            }
            <ol class="pinned-messages">
                { for props.rows.iter().map(|row| html! {
                    <MessageRow key={row.key()} row={row.clone()} on_action={props.on_action.clone()} />
                }) }
            </ol>
        </aside>
    }
}
