//! The display-name prompt shown when there is no session.

use shared::protocol::http::SessionInfo;
use yew::prelude::*;

use crate::components::about::About;
use crate::components::login::LoginPanel;
use crate::components::name_form::{NameForm, NameKind};
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
    /// Whether the server has yet to say there is no session: "Loading…" in place of the
    /// forms, under the same card and heading, as the page's splash (app/index.html) shows.
    #[prop_or_default]
    pub checking: bool,
}

/// The sign-in choices, then "Display name" + "Continue" as a guest.
#[function_component]
pub fn NamePrompt(props: &NamePromptProps) -> Html {
    html! {
        <main class="welcome">
            <div class="card name-prompt">
                <h1>{ "Durable Chat" }</h1>
                if let Some(reason) = &props.reason {
                    <p class="muted">{ reason }</p>
                }
                if props.checking {
                    <p class="muted" role="status">{ "Loading…" }</p>
                } else {
                    <LoginPanel on_session={props.on_session.clone()} error={props.login_error} />
                    <NameForm kind={NameKind::Guest} on_session={props.on_session.clone()} />
                }
                <About />
            </div>
        </main>
    }
}
