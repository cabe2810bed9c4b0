//! The "New version — reload" prompt ([`crate::update`]), mounted on its own root so it shows
//! on every page, signed in or not.

use gloo_events::EventListener;
use yew::prelude::*;

use crate::{update, web};

/// Hidden until a newer build is announced; then a polite status with a Reload button.
#[function_component]
pub fn UpdatePrompt() -> Html {
    let available = use_state(|| false);
    {
        let available = available.clone();
        use_effect_with((), move |_| {
            let listener =
                EventListener::new(&web::window(), update::EVENT, move |_| available.set(true));
            move || drop(listener)
        });
    }
    let reload = Callback::from(|_: MouseEvent| {
        let _ = web::window().location().reload();
    });
    html! {
        <div class="update-prompt" role="status" hidden={!*available}>
            if *available {
                <span>{ "New version of Durable Chat — reload to use it." }</span>
                <button type="button" class="primary" onclick={reload}>{ "Reload" }</button>
            }
        </div>
    }
}

/// Mounts the prompt on a root of its own at the end of the page, so it shows over whatever
/// the page's main root renders; `None` if the page has no body.
pub fn mount() -> Option<Mounted> {
    let document = web::window().document()?;
    let root = document.create_element("div").ok()?;
    document.body()?.append_child(&root).ok()?;
    let handle = yew::Renderer::<UpdatePrompt>::with_root(root.clone()).render();
    Some(Mounted { root, handle })
}

/// The prompt as [`mount`] mounted it.
pub struct Mounted {
    root: web_sys::Element,
    handle: yew::AppHandle<UpdatePrompt>,
}

impl Mounted {
    /// Removes the prompt and its root, for a bundle that takes the page over with its own.
    pub fn remove(self) {
        self.handle.destroy();
        self.root.remove();
    }
}
