//! The name form: a guest's display name, or the dev server's local account by name. Shared
//! by the first-visit prompt and the sign-in panel.

use shared::limits::validate_display_name;
use shared::protocol::http::SessionInfo;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::api;

/// Which session a [`NameForm`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// A guest with this display name (`POST /api/session`).
    Guest,
    /// The dev server's local account of this name (`POST /api/auth/local`).
    Local,
}

/// Props of [`NameForm`].
#[derive(Properties, PartialEq)]
pub struct NameFormProps {
    /// Guest or local account.
    pub kind: NameKind,
    /// The session was created.
    pub on_session: Callback<SessionInfo>,
}

/// One name field and its button: the guest prompt ("Display name", "Continue") and the dev
/// server's local account ("Local account name", "Sign in") differ only in wording and API.
#[function_component]
pub fn NameForm(props: &NameFormProps) -> Html {
    let input = use_node_ref();
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);
    let kind = props.kind;
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
                let created = match kind {
                    NameKind::Guest => api::create_session(name).await,
                    NameKind::Local => api::dev_login(name).await,
                };
                match created {
                    Ok(session) => on_session.emit(session),
                    Err(e) => error.set(Some(e.message)),
                }
                busy.set(false);
            });
        })
    };
    let (class, id, name, autocomplete, label, button) = match kind {
        NameKind::Guest => (
            "guest-login",
            "display-name",
            "name",
            "nickname",
            "Display name",
            "Continue",
        ),
        NameKind::Local => (
            "local-login",
            "local-name",
            "local-name",
            "username",
            "Local account name",
            "Sign in",
        ),
    };
    let error_id = format!("{id}-error");
    html! {
        <form {class} {onsubmit}>
            <label for={id}>{ label }</label>
            <input {id} ref={input} {name} {autocomplete}
                required=true maxlength="40" autofocus={kind == NameKind::Guest}
                aria-invalid={error.is_some().then_some("true")}
                aria-describedby={error_id.clone()} />
            <p id={error_id} class="field-error" role="alert">
                { error.as_deref().unwrap_or_default() }
            </p>
            <button type="submit" class="primary" disabled={*busy}>{ button }</button>
            if kind == NameKind::Local {
                <p class="muted small">{ "Development server: no password, localhost only." }</p>
            }
        </form>
    }
}
