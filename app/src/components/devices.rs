//! The devices page: the account's signed-in sessions, with "sign out" for each other device
//! and for all of them at once, and the providers it signs in with, to link or unlink.

use shared::auth::{Device, Provider};
use yew::prelude::*;

use crate::{api, format, web};

/// Props of [`DevicesPage`].
#[derive(Properties, PartialEq)]
pub struct DevicesPageProps {
    /// The server says this session has ended.
    pub on_unauthorized: Callback<()>,
}

/// "Firefox on Linux · Berlin, DE".
fn describe(device: &Device) -> String {
    match &device.place {
        Some(place) => format!("{} · {place}", device.browser),
        None => device.browser.clone(),
    }
}

/// The list of signed-in devices.
#[function_component]
pub fn DevicesPage(props: &DevicesPageProps) -> Html {
    let devices = use_state(|| None::<Vec<Device>>);
    let error = use_state(|| None::<String>);
    let reload = {
        let (devices, error) = (devices.clone(), error.clone());
        let on_unauthorized = props.on_unauthorized.clone();
        Callback::from(move |()| {
            let (devices, error, on_unauthorized) =
                (devices.clone(), error.clone(), on_unauthorized.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::devices().await {
                    Ok(list) => {
                        devices.set(Some(list.sessions));
                        error.set(None);
                    }
                    Err(e) if e.status == 401 => on_unauthorized.emit(()),
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };
    {
        let reload = reload.clone();
        use_effect_with((), move |_| reload.emit(()));
    }
    let revoke = {
        let (reload, error) = (reload.clone(), error.clone());
        Callback::from(move |id: String| {
            let (reload, error) = (reload.clone(), error.clone());
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = api::revoke(&id).await {
                    error.set(Some(e.message));
                }
                reload.emit(());
            });
        })
    };
    let revoke_others = {
        let (reload, error) = (reload.clone(), error.clone());
        Callback::from(move |_: MouseEvent| {
            let (reload, error) = (reload.clone(), error.clone());
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = api::revoke_others().await {
                    error.set(Some(e.message));
                }
                reload.emit(());
            });
        })
    };
    let now = web::now();
    let list = match &*devices {
        None => html! { <p class="muted" role="status">{ "Loading…" }</p> },
        Some(list) => html! {
            <ul class="devices">
                { for list.iter().map(|d| {
                    let id = d.id.clone();
                    let revoke = revoke.reform(move |_: MouseEvent| id.clone());
                    html! {
                        <li class={classes!("device", d.current.then_some("current"))}
                            data-current={d.current.to_string()}>
                            <div class="device-name">
                                { describe(d) }
                                if d.current {
                                    <span class="badge">{ "This device" }</span>
                                }
                            </div>
                            <div class="muted small">
                                { format!("Signed in {} · last active {}",
                                    web::local_date_time(d.created_at),
                                    format::ago(now, d.last_seen_at)) }
                            </div>
                            if !d.current {
                                <button type="button" onclick={revoke}>{ "Sign out" }</button>
                            }
                        </li>
                    }
                }) }
            </ul>
        },
    };
    let others = devices
        .as_ref()
        .is_some_and(|list| list.iter().any(|d| !d.current));
    html! {
        <section class="devices-page">
            <h1>{ "Devices" }</h1>
            <p class="muted">{ "Where your account is signed in. Signing a device out closes its open rooms at once." }</p>
            if let Some(message) = &*error {
                <p class="field-error" role="alert">{ message }</p>
            }
            { list }
            if others {
                <button type="button" onclick={revoke_others}>{ "Sign out all other devices" }</button>
            }
            <SignInMethods />
        </section>
    }
}

/// The providers this account signs in with (each may be unlinked, but not the last one), and
/// the configured ones it could link: signing in with one while signed in links it.
#[function_component]
fn SignInMethods() -> Html {
    let linked = use_state(|| None::<Vec<Provider>>);
    let offered = use_state(Vec::<Provider>::new);
    let error = use_state(|| None::<String>);
    {
        let (linked, offered) = (linked.clone(), offered.clone());
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(options) = api::login_options().await {
                    offered.set(options.providers);
                }
                if let Ok(session) = api::session().await {
                    linked.set(Some(session.providers));
                }
            });
        });
    }
    let Some(mine) = (*linked).clone() else {
        return html! {};
    };
    let unlink = {
        let (linked, error) = (linked.clone(), error.clone());
        Callback::from(move |provider: Provider| {
            let (linked, error) = (linked.clone(), error.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::unlink(provider).await {
                    Ok(session) => {
                        linked.set(Some(session.providers));
                        error.set(None);
                    }
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };
    let mut shown = mine.clone();
    shown.extend(offered.iter().filter(|p| !mine.contains(p)));
    let last = mine.len() == 1;
    html! {
        <section class="sign-in-methods" aria-label="Sign-in methods">
            <h2>{ "Sign-in methods" }</h2>
            if let Some(message) = &*error {
                <p class="field-error" role="alert">{ message }</p>
            }
            <ul>
                { for shown.into_iter().map(|p| {
                    let is_linked = mine.contains(&p);
                    html! {
                        <li data-provider={p.as_str()} data-linked={is_linked.to_string()}>
                            <span>{ p.label() }</span>
                            if is_linked {
                                <span class="muted small">{ " linked " }</span>
                                <button type="button" disabled={last}
                                    title={last.then_some("Your only way to sign in: link another first")}
                                    onclick={unlink.reform(move |_: MouseEvent| p)}>
                                    { "Unlink" }
                                </button>
                            } else {
                                <a class="button" href={format!("/api/auth/{}/start", p.as_str())}>
                                    { format!("Link {}", p.label()) }
                                </a>
                            }
                        </li>
                    }
                }) }
            </ul>
        </section>
    }
}
