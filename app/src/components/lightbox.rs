//! The lightbox: one image of the room at full size in a modal dialog (the browser's own
//! `<dialog>` opened with `showModal`, so the page behind is inert and Escape closes it), with
//! ←/→ (and buttons) to move among the images of the room's loaded messages and a Download
//! link. Focus goes into it when it opens and back to what opened it when it closes.

use std::rc::Rc;

use shared::protocol::Attachment;
use wasm_bindgen::JsCast;
use web_sys::{HtmlDialogElement, HtmlElement};
use yew::prelude::*;

use crate::media::file_url;
use crate::web;

/// Props of [`Lightbox`].
#[derive(Properties, PartialEq)]
pub struct LightboxProps {
    /// The room.
    pub slug: AttrValue,
    /// The images to move among, in the room's order.
    pub images: Rc<Vec<Attachment>>,
    /// The one shown.
    pub index: usize,
    /// Show another.
    pub on_move: Callback<usize>,
    /// Close the lightbox.
    pub on_close: Callback<()>,
}

/// `<dialog class="lightbox">`.
#[function_component]
pub fn Lightbox(props: &LightboxProps) -> Html {
    let dialog = use_node_ref();
    {
        // Opened once; on closing, focus returns to whatever had it (the image's button).
        let dialog = dialog.clone();
        use_effect_with((), move |_| {
            let opener = web::window()
                .document()
                .and_then(|d| d.active_element())
                .and_then(|e| e.dyn_into::<HtmlElement>().ok());
            if let Some(d) = dialog.cast::<HtmlDialogElement>() {
                let _ = d.show_modal();
            }
            move || {
                if let Some(d) = dialog.cast::<HtmlDialogElement>() {
                    d.close();
                }
                if let Some(opener) = opener.filter(|o| o.is_connected()) {
                    let _ = opener.focus();
                }
            }
        });
    }
    let count = props.images.len();
    let Some(image) = props.images.get(props.index) else {
        return Html::default();
    };
    let step = |delta: isize| {
        let (on_move, index) = (props.on_move.clone(), props.index);
        move || {
            if count > 1 {
                let next = (index as isize + delta).rem_euclid(count as isize) as usize;
                on_move.emit(next);
            }
        }
    };
    let onkeydown = {
        let (previous, next) = (step(-1), step(1));
        Callback::from(move |e: KeyboardEvent| match e.key().as_str() {
            "ArrowLeft" => {
                e.prevent_default();
                previous();
            }
            "ArrowRight" => {
                e.prevent_default();
                next();
            }
            _ => {}
        })
    };
    // Escape: the dialog's `cancel`, closed through the page so it unmounts. A browser may
    // close it without a `cancel` (Chromium does when the page had no user activation since it
    // opened, so a page cannot trap its visitor), so `close` is heard too.
    let oncancel = {
        let on_close = props.on_close.clone();
        Callback::from(move |e: Event| {
            e.prevent_default();
            on_close.emit(());
        })
    };
    let onclose = props.on_close.reform(|_: Event| ());
    let close = props.on_close.reform(|_: MouseEvent| ());
    let previous = {
        let step = step(-1);
        Callback::from(move |_: MouseEvent| step())
    };
    let next = {
        let step = step(1);
        Callback::from(move |_: MouseEvent| step())
    };
    let url = file_url(&props.slug, &image.id);
    let (width, height) = (
        image.width.map(|w| w.to_string()),
        image.height.map(|h| h.to_string()),
    );
    html! {
        <dialog class="lightbox" ref={dialog} aria-label={format!("Image: {}", image.name)}
            {onkeydown} {oncancel} {onclose}>
            <header class="lightbox-bar">
                <span class="lightbox-name">{ &image.name }</span>
                if count > 1 {
                    <span class="muted">{ format!("{} of {count}", props.index + 1) }</span>
                }
                <a href={url.clone()} download={image.name.clone()}>{ "Download" }</a>
                <button type="button" onclick={close} aria-label="Close">{ "×" }</button>
            </header>
            <div class="lightbox-stage">
                if count > 1 {
                    <button type="button" class="lightbox-step" onclick={previous}
                        aria-label="Previous image">{ "←" }</button>
                }
                <img src={url} alt={image.name.clone()} {width} {height} />
                if count > 1 {
                    <button type="button" class="lightbox-step" onclick={next}
                        aria-label="Next image">{ "→" }</button>
                }
            </div>
        </dialog>
    }
}
