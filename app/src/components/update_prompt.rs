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
