//! The card shown when clicking an author: their public profile.

use shared::profile::PublicProfile;
use yew::prelude::*;

use crate::api;

/// Props of [`ProfileCard`].
#[derive(Properties, PartialEq)]
pub struct ProfileCardProps {
    /// Whose card.
    pub user_id: AttrValue,
    /// Close it.
    pub on_close: Callback<()>,
}

/// "Guest" or "Signed in with GitHub, Google", and the short id: two people may share a
/// name, so the card says which kind of person this is.
fn account_kind(p: &PublicProfile) -> String {
    let short: String = p.user_id.chars().take(6).collect();
    if p.signed_in && !p.providers.is_empty() {
        let with: Vec<&str> = p
            .providers
            .iter()
            .map(|provider| provider.label())
            .collect();
        format!("Signed in with {} · #{short}", with.join(", "))
    } else if p.signed_in {
        format!("Signed-in account · #{short}")
    } else {
        format!("Guest (not signed in) · #{short}")
    }
}

/// A small dialog with someone's name, avatar, pronouns, status, time zone and bio, and
/// whether they are a guest or signed in (and with what).
#[function_component]
pub fn ProfileCard(props: &ProfileCardProps) -> Html {
    let profile = use_state(|| None::<Result<PublicProfile, String>>);
    {
        let profile = profile.clone();
        use_effect_with(props.user_id.clone(), move |id| {
            let id = id.to_string();
            profile.set(None);
            wasm_bindgen_futures::spawn_local(async move {
                profile.set(Some(api::user(&id).await.map_err(|e| e.message)));
            });
        });
    }
    let close = {
        let on_close = props.on_close.clone();
        Callback::from(move |_: MouseEvent| on_close.emit(()))
    };
    let body = match &*profile {
        None => html! { <p class="muted" role="status">{ "Loading…" }</p> },
        Some(Err(message)) => html! { <p class="field-error">{ message }</p> },
        Some(Ok(p)) => html! {
            <>
                <div class="card-head">
                    if let Some(url) = &p.avatar {
                        <img class="avatar" src={url.clone()} alt="" width="48" height="48" />
                    }
                    <div>
                        <h2 class="card-name">{ &p.name }</h2>
                        <p class="card-kind muted">{ account_kind(p) }</p>
                        if !p.pronouns.is_empty() {
                            <p class="muted">{ &p.pronouns }</p>
                        }
                    </div>
                </div>
                if !p.status.is_empty() {
                    <p class="card-status">{ &p.status }</p>
                }
                if !p.time_zone.is_empty() {
                    <p class="muted">{ format!("Time zone: {}", p.time_zone) }</p>
                }
                if !p.bio.is_empty() {
                    <p class="card-bio">{ &p.bio }</p>
                }
            </>
        },
    };
    html! {
        <div class="profile-card card" role="dialog" aria-label="Profile">
            { body }
            <button type="button" onclick={close}>{ "Close" }</button>
        </div>
    }
}
