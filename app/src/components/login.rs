//! The sign-in choices: a button per configured provider (a plain link: the Worker redirects to
//! the provider and back), and on a dev server the local account by name.

use shared::auth::{LoginError, LoginOptions};
use shared::limits::validate_display_name;
use shared::protocol::http::SessionInfo;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::api;

/// Props of [`LoginPanel`].
#[derive(Properties, PartialEq)]
pub struct LoginPanelProps {
    /// Signed in (local account).
    pub on_session: Callback<SessionInfo>,
    /// Why the last sign-in failed (`?login_error=` on the way back from the Worker).
    #[prop_or_default]
    pub error: Option<LoginError>,
}

/// Provider buttons and the local-account form; renders nothing when neither is offered.
#[function_component]
pub fn LoginPanel(props: &LoginPanelProps) -> Html {
    let options = use_state(|| None::<LoginOptions>);
    {
        let options = options.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                // No options (an old server, or offline): only the guest name prompt shows.
                if let Ok(o) = api::login_options().await {
                    options.set(Some(o));
                }
            });
        });
    }
    let input = use_node_ref();
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);
    let onsubmit = {
        let (input, error, busy) = (input.clone(), error.clone(), busy.clone());
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
                match api::dev_login(name).await {
                    Ok(session) => on_session.emit(session),
                    Err(e) => error.set(Some(e.message)),
                }
                busy.set(false);
            });
        })
    };
    let failed = props.error.map(|code| {
        html! {
            <p class="field-error login-error" role="alert" data-code={code.as_str()}>
                { code.message() }
            </p>
        }
    });
    let Some(options) = &*options else {
        return html! { <>{ failed }</> };
    };
    html! {
        <section class="login" aria-label="Sign in">
            { failed }
            if !options.providers.is_empty() {
                <div class="providers">
                    { for options.providers.iter().map(|p| html! {
                        <a class="button provider" href={format!("/api/auth/{}/start", p.as_str())}>
                            { format!("Continue with {}", p.label()) }
                        </a>
                    }) }
                </div>
            }
            if options.dev_login {
                <form class="local-login" {onsubmit}>
                    <label for="local-name">{ "Local account name" }</label>
                    <input id="local-name" ref={input} name="local-name" autocomplete="username"
                        required=true maxlength="40"
                        aria-invalid={error.is_some().then_some("true")}
                        aria-describedby="local-name-error" />
                    <p id="local-name-error" class="field-error" role="alert">
                        { error.as_deref().unwrap_or_default() }
                    </p>
                    <button type="submit" class="primary" disabled={*busy}>{ "Sign in" }</button>
                    <p class="muted small">{ "Development server: no password, localhost only." }</p>
                </form>
            }
            if !options.providers.is_empty() || options.dev_login {
                <p class="muted or">{ "or continue as a guest" }</p>
            }
        </section>
    }
}
