//! Focus for side panels (issue 13: "focus management for dialogs and the thread panel"): a
//! panel that opens takes the keyboard to where the reader meant to go, and gives it back to
//! whatever opened it when it closes, so a keyboard user is never dropped at the top of the
//! page. (The lightbox is a modal `<dialog>` and does the same in `lightbox.rs`.)

use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlElement};
use yew::prelude::*;

use crate::web;

/// On mount, focuses the first element inside `panel` matching `first` (a CSS selector list,
/// tried in order) and remembers what had focus; on unmount, gives focus back to it if it is
/// still on the page.
#[hook]
pub fn use_panel_focus(panel: NodeRef, first: &'static str) {
    use_effect_with((), move |_| {
        let opener = web::window()
            .document()
            .and_then(|d| d.active_element())
            .and_then(|e| e.dyn_into::<HtmlElement>().ok());
        let target = panel.cast::<Element>().and_then(|p| {
            first
                .split(',')
                .find_map(|css| p.query_selector(css.trim()).ok().flatten())
        });
        if let Some(el) = target.and_then(|e| e.dyn_into::<HtmlElement>().ok()) {
            let _ = el.focus();
        }
        move || {
            if let Some(opener) = opener.filter(|o| o.is_connected()) {
                let _ = opener.focus();
            }
        }
    });
}

/// A panel's `keydown`: Escape closes it, unless something inside already used that Escape (a
/// mention list or an edit box handles its own and marks the event).
pub fn close_on_escape(on_close: Callback<()>) -> Callback<KeyboardEvent> {
    Callback::from(move |e: KeyboardEvent| {
        if e.key() == "Escape" && !e.default_prevented() {
            e.prevent_default();
            on_close.emit(());
        }
    })
}
