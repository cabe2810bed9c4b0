//! `/admin` (global admins only; the server refuses everyone else): users (search, global
//! role, disable), rooms, and the global audit log.

use shared::moderation::http::{AdminUser, UpdateUser};
use shared::moderation::AuditEntry;
use shared::protocol::RoomInfo;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::api;
use crate::web;

/// The admin page.
#[function_component]
pub fn AdminPage() -> Html {
    let users = use_state(Vec::<AdminUser>::new);
    let rooms = use_state(Vec::<RoomInfo>::new);
    let audit = use_state(Vec::<AuditEntry>::new);
    let error = use_state(|| None::<String>);
    let query = use_state(String::new);
    let version = use_state(|| 0u32);
    let search = use_node_ref();

    {
        let (users, rooms, audit, error) =
            (users.clone(), rooms.clone(), audit.clone(), error.clone());
        use_effect_with(((*query).clone(), *version), move |(q, _)| {
            let q = q.clone();
            wasm_bindgen_futures::spawn_local(async move {
                let result = async {
                    users.set(api::admin_users(&q).await?.users);
                    rooms.set(api::admin_rooms().await?.rooms);
                    audit.set(api::admin_audit().await?.entries);
                    Ok::<(), api::ApiError>(())
                }
                .await;
                error.set(result.err().map(|e| e.message));
            });
        });
    }
    let onsubmit = {
        let (query, search) = (query.clone(), search.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if let Some(input) = search.cast::<HtmlInputElement>() {
                query.set(input.value());
            }
        })
    };
    let update = {
        let (error, version) = (error.clone(), version.clone());
        Callback::from(move |(user_id, change): (String, UpdateUser)| {
            let (error, version) = (error.clone(), version.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::admin_update_user(&user_id, &change).await {
                    Ok(_) => version.set(*version + 1),
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };

    html! {
        <section class="admin-page">
            <h1>{ "Administration" }</h1>
            <nav class="analytics-nav" aria-label="Monitoring">
                <a href="/analytics">{ "Analytics" }</a>
                <a href="/performance">{ "Performance" }</a>
            </nav>
            if let Some(message) = &*error {
                <p class="field-error" role="alert">{ message }</p>
            }
            <section class="card">
                <h2>{ "Users" }</h2>
                <form class="admin-search" {onsubmit}>
                    <input ref={search} aria-label="Search users" placeholder="Name or id" />
                    <button type="submit">{ "Search" }</button>
                </form>
                <table class="admin-users">
                    <thead><tr><th>{ "Name" }</th><th>{ "Role" }</th><th>{ "State" }</th><th><span class="visually-hidden">{ "Actions" }</span></th></tr></thead>
                    <tbody>
                        { for users.iter().map(|u| {
                            let id = u.profile.user_id.clone();
                            let admin = u.role == "admin";
                            let disabled = u.disabled_at.is_some();
                            let toggle_role = {
                                let (update, id) = (update.clone(), id.clone());
                                Callback::from(move |_: MouseEvent| update.emit((id.clone(), UpdateUser {
                                    role: Some(if admin { "user" } else { "admin" }.into()),
                                    disabled: None,
                                })))
                            };
                            let toggle_disabled = {
                                let (update, id) = (update.clone(), id.clone());
                                Callback::from(move |_: MouseEvent| update.emit((id.clone(), UpdateUser {
                                    role: None,
                                    disabled: Some(!disabled),
                                })))
                            };
                            html! {
                                <tr data-user-id={id.clone()}>
                                    <td title={id.clone()}>{ &u.profile.name }</td>
                                    <td>{ &u.role }</td>
                                    <td>{ if disabled { "disabled" } else { "active" } }</td>
                                    <td>
                                        <button type="button" onclick={toggle_role}>
                                            { if admin { "Make user" } else { "Make admin" } }
                                        </button>
                                        <button type="button" class={(!disabled).then_some("danger")} onclick={toggle_disabled}>
                                            { if disabled { "Enable" } else { "Disable" } }
                                        </button>
                                    </td>
                                </tr>
                            }
                        }) }
                    </tbody>
                </table>
            </section>
            <section class="card">
                <h2>{ "Rooms" }</h2>
                <ul class="admin-rooms">
                    { for rooms.iter().map(|r| html! {
                        <li>
                            <a href={format!("/r/{}", r.slug)}>{ &r.name }</a>
                            if r.private { <span class="badge">{ "private" }</span> }
                            <span class="muted">{ format!(" {} messages", r.message_count) }</span>
                        </li>
                    }) }
                </ul>
            </section>
            <section class="card">
                <h2>{ "Audit log" }</h2>
                <ol class="audit-list">
                    { for audit.iter().map(|e| html! {
                        <li>
                            <time>{ web::local_date_time(e.at) }</time>
                            { format!(" {} — {}", e.actor_name, e.action) }
                            if let Some(t) = &e.target_id { { format!(" → {t}") } }
                        </li>
                    }) }
                </ol>
            </section>
            <crate::components::ai_panels::AssistantStats />
        </section>
    }
}
