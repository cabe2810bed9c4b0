//! The connection banner.

use yew::prelude::*;

use crate::status::BannerState;

/// Props of [`Banner`].
#[derive(Properties, PartialEq)]
pub struct BannerProps {
    /// What to show.
    pub state: BannerState,
    /// "Retry now".
    pub on_retry: Callback<()>,
}

/// `<div role="status" class="banner" data-phase="…">`. Always in the DOM so that screen
/// readers announce its changes; visually hidden while live.
#[function_component]
pub fn Banner(props: &BannerProps) -> Html {
    let state = &props.state;
    let on_retry = props.on_retry.reform(|_: MouseEvent| ());
    html! {
        <div role="status" class="banner" data-phase={state.phase}>
            <span class="banner-text">{ &state.text }</span>
            if state.can_retry {
                <button type="button" class="link-button" onclick={on_retry}>{ "Retry now" }</button>
            }
        </div>
    }
}
