//! The display-name prompt shown when there is no session.

use shared::limits::validate_display_name;
use shared::protocol::http::SessionInfo;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::api;
use crate::components::login::LoginPanel;
use shared::auth::LoginError;

/// Props of [`NamePrompt`].
#[derive(Properties, PartialEq)]
pub struct NamePromptProps {
    /// The session was created.
    pub on_session: Callback<SessionInfo>,
    /// Why the prompt is shown again, if it is (e.g. the session ended).
    #[prop_or_default]
    pub reason: Option<AttrValue>,
    /// Why the last sign-in failed, if it did.
    #[prop_or_default]
    pub login_error: Option<LoginError>,
}

/// The sign-in choices, then "Display name" + "Continue" as a guest.
#[function_component]
pub fn NamePrompt(props: &NamePromptProps) -> Html {
    let input = use_node_ref();
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);
    let onsubmit = {
        let input = input.clone();
        let error = error.clone();
        let busy = busy.clone();
        let on_session = props.on_session.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if *busy {
                return;
            }
            let Some(field) = input.cast::<HtmlInputElement>() else {
                return;
            };
            let name = match validate_display_name(&field.value()) {
                Ok(name) => name,
                Err(e) => return error.set(Some(e.message)),
            };
            busy.set(true);
            let (error, busy, on_session) = (error.clone(), busy.clone(), on_session.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::create_session(name).await {
                    Ok(session) => on_session.emit(session),
                    Err(e) => error.set(Some(e.message)),
                }
                busy.set(false);
            });
        })
    };
    html! {
        <main class="welcome">
            <div class="card name-prompt">
                <h1>{ "Durable Chat" }</h1>
                if let Some(reason) = &props.reason {
                    <p class="muted">{ reason }</p>
                }
                <LoginPanel on_session={props.on_session.clone()} error={props.login_error} />
            <form class="guest-login" {onsubmit}>
                <label for="display-name">{ "Display name" }</label>
                <input id="display-name" ref={input} name="name" autocomplete="nickname"
                    required=true maxlength="40" autofocus=true
                    aria-invalid={error.is_some().then_some("true")}
                    aria-describedby="display-name-error" />
                <p id="display-name-error" class="field-error" role="alert">
                    { error.as_deref().unwrap_or_default() }
                </p>
                <button type="submit" class="primary" disabled={*busy}>{ "Continue" }</button>
            </form>
            </div>
        </main>
    }
}
