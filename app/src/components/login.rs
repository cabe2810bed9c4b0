//! The sign-in choices: a button per configured provider (a plain link: the Worker redirects to
//! the provider and back), and on a dev server the local account by name.

use shared::auth::{LoginError, LoginOptions};
use shared::protocol::http::SessionInfo;
use yew::prelude::*;

use crate::api;
use crate::components::name_form::{NameForm, NameKind};

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
                <NameForm kind={NameKind::Local} on_session={props.on_session.clone()} />
            }
            if !options.providers.is_empty() || options.dev_login {
                <p class="muted or">{ "or continue as a guest" }</p>
            }
        </section>
    }
}
