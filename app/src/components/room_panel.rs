//! The room's side panel: members (with the moderation controls the permission table allows),
//! invite links, the audit log and the room's settings. Every control is hidden when `shared::permissions` says the
//! viewer may not use it; the server checks again.

use shared::moderation::{AuditEntry, Command, CreateInvite, Invite, MemberRecord};
use shared::permissions::{may, outranks, Action};
use shared::protocol::{AssistantMode, Role};
use web_sys::HtmlSelectElement;
use yew::prelude::*;

use crate::api;
use crate::web;

/// Props of [`RoomPanel`].
#[derive(Properties, PartialEq)]
pub struct RoomPanelProps {
    /// The room.
    pub slug: AttrValue,
    /// Who we are.
    pub me: AttrValue,
    /// Our role in the room.
    pub role: Role,
    /// Whether we are a global admin.
    pub admin: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Tab {
    Members,
    Invites,
    Audit,
    Settings,
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Moderator => "moderator",
        Role::Member => "member",
        Role::ReadOnly => "read-only",
        Role::Unknown => "unknown",
    }
}

/// Members, invites and audit log.
#[function_component]
pub fn RoomPanel(props: &RoomPanelProps) -> Html {
    let tab = use_state(|| Tab::Members);
    let members = use_state(Vec::<MemberRecord>::new);
    let invites = use_state(Vec::<Invite>::new);
    let audit = use_state(Vec::<AuditEntry>::new);
    let error = use_state(|| None::<String>);
    let version = use_state(|| 0u32);

    let can = |action| may(props.role, props.admin, action);
    {
        let (members, invites, audit, error) = (
            members.clone(),
            invites.clone(),
            audit.clone(),
            error.clone(),
        );
        let slug = props.slug.to_string();
        let (can_invite, can_audit) = (can(Action::Invite), can(Action::ViewAudit));
        use_effect_with((*tab, *version, props.role), move |(tab, _, _)| {
            let tab = *tab;
            wasm_bindgen_futures::spawn_local(async move {
                let result = match tab {
                    Tab::Members => api::members(&slug).await.map(|m| members.set(m.members)),
                    Tab::Invites if can_invite => {
                        api::invites(&slug).await.map(|i| invites.set(i.invites))
                    }
                    Tab::Audit if can_audit => {
                        api::room_audit(&slug).await.map(|a| audit.set(a.entries))
                    }
                    _ => Ok(()),
                };
                error.set(result.err().map(|e| e.message));
            });
        });
    }

    let run = {
        let (error, version) = (error.clone(), version.clone());
        let slug = props.slug.to_string();
        Callback::from(move |command: Command| {
            let (error, version, slug) = (error.clone(), version.clone(), slug.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::moderate(&slug, &command).await {
                    Ok(_) => {
                        error.set(None);
                        version.set(*version + 1);
                    }
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };
    let new_invite = {
        let (error, version) = (error.clone(), version.clone());
        let slug = props.slug.to_string();
        Callback::from(move |_: MouseEvent| {
            let (error, version, slug) = (error.clone(), version.clone(), slug.clone());
            wasm_bindgen_futures::spawn_local(async move {
                let request = CreateInvite {
                    expires_in_seconds: Some(7 * 24 * 3600),
                    max_uses: None,
                };
                match api::create_invite(&slug, &request).await {
                    Ok(_) => version.set(*version + 1),
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };

    let topic_ref = use_node_ref();
    let assistant_ref = use_node_ref();
    let private_ref = use_node_ref();
    let save_settings = {
        let run = run.clone();
        let (topic_ref, assistant_ref, private_ref) = (
            topic_ref.clone(),
            assistant_ref.clone(),
            private_ref.clone(),
        );
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let topic = topic_ref
                .cast::<web_sys::HtmlInputElement>()
                .map(|i| i.value())
                .filter(|t| !t.trim().is_empty());
            let value = |r: &NodeRef| r.cast::<HtmlSelectElement>().map(|s| s.value());
            let assistant = match value(&assistant_ref).as_deref() {
                Some("mention") => Some(AssistantMode::Mention),
                Some("all") => Some(AssistantMode::All),
                Some("off") => Some(AssistantMode::Off),
                _ => None,
            };
            let private = match value(&private_ref).as_deref() {
                Some("private") => Some(true),
                Some("public") => Some(false),
                _ => None,
            };
            run.emit(Command::UpdateRoom {
                name: None,
                topic,
                private,
                assistant,
            });
        })
    };
    let select = |t: Tab| {
        let tab = tab.clone();
        Callback::from(move |_: MouseEvent| tab.set(t))
    };
    let now = web::now();
    let origin = web::window().location().origin().unwrap_or_default();
    let body = match *tab {
        Tab::Members => html! {
            <ul class="member-list">
                { for members.iter().map(|m| {
                    let target = m.user_id.clone();
                    let power = m.user_id != props.me.as_str()
                        && outranks(props.role, props.admin, m.role);
                    let muted = m.mute_left(now).is_some();
                    let cmd = |make: fn(String) -> Command| {
                        let (run, target) = (run.clone(), target.clone());
                        Callback::from(move |_: MouseEvent| run.emit(make(target.clone())))
                    };
                    let on_role = {
                        let (run, target) = (run.clone(), target.clone());
                        Callback::from(move |e: Event| {
                            let Some(select) = e.target_dyn_into::<HtmlSelectElement>() else { return };
                            let role = match select.value().as_str() {
                                "owner" => Role::Owner,
                                "moderator" => Role::Moderator,
                                "read_only" => Role::ReadOnly,
                                _ => Role::Member,
                            };
                            run.emit(Command::SetRole { user_id: target.clone(), role });
                        })
                    };
                    html! {
                        <li class="member" data-user-id={m.user_id.clone()}>
                            <span class="member-name">{ &m.name }</span>
                            <span class="role-badge">{ role_name(m.role) }</span>
                            if m.banned { <span class="badge">{ "banned" }</span> }
                            if muted { <span class="badge">{ "muted" }</span> }
                            if power {
                                <span class="member-actions">
                                    if can(Action::Kick) && !m.banned {
                                        <button type="button" onclick={cmd(|user_id| Command::Kick { user_id })}>{ "Kick" }</button>
                                    }
                                    if can(Action::Mute) {
                                        if muted {
                                            <button type="button" onclick={cmd(|user_id| Command::Unmute { user_id })}>{ "Unmute" }</button>
                                        } else {
                                            <button type="button" onclick={cmd(|user_id| Command::Mute { user_id, seconds: 600 })}>{ "Mute 10 min" }</button>
                                        }
                                    }
                                    if can(Action::Ban) {
                                        if m.banned {
                                            <button type="button" onclick={cmd(|user_id| Command::Unban { user_id })}>{ "Unban" }</button>
                                        } else {
                                            <button type="button" class="danger" onclick={cmd(|user_id| Command::Ban { user_id })}>{ "Ban" }</button>
                                        }
                                    }
                                    if can(Action::AssignRole) {
                                        <select aria-label="Role" onchange={on_role}>
                                            { for [Role::Owner, Role::Moderator, Role::Member, Role::ReadOnly].into_iter().map(|r| html! {
                                                <option value={match r { Role::ReadOnly => "read_only", other => role_name(other) }}
                                                    selected={r == m.role}>{ role_name(r) }</option>
                                            }) }
                                        </select>
                                    }
                                </span>
                            }
                        </li>
                    }
                }) }
            </ul>
        },
        Tab::Invites => html! {
            <>
                <button type="button" class="primary" onclick={new_invite}>{ "New invite link (7 days)" }</button>
                <ul class="invite-list">
                    { for invites.iter().map(|i| {
                        let link = format!("{origin}/invite/{}/{}", props.slug, i.token);
                        let state = match i.check(now) {
                            Ok(()) => format!("{} uses", i.uses),
                            Err(e) => e.message,
                        };
                        let revoke = {
                            let (run, token) = (run.clone(), i.token.clone());
                            Callback::from(move |_: MouseEvent| run.emit(Command::RevokeInvite { token: token.clone() }))
                        };
                        html! {
                            <li>
                                <input readonly=true value={link} aria-label="Invite link" />
                                <span class="muted">{ state }</span>
                                if i.revoked_at.is_none() {
                                    <button type="button" onclick={revoke}>{ "Revoke" }</button>
                                }
                            </li>
                        }
                    }) }
                </ul>
            </>
        },
        Tab::Settings => html! {
            <form class="room-settings" onsubmit={save_settings}>
                <label for="room-settings-topic">{ "New topic" }</label>
                <input id="room-settings-topic" ref={topic_ref} maxlength="200" />
                <label for="room-settings-assistant">{ "Assistant answers" }</label>
                <select id="room-settings-assistant" ref={assistant_ref}>
                    <option value="" selected=true>{ "(unchanged)" }</option>
                    <option value="mention">{ "when @assistant is mentioned" }</option>
                    <option value="all">{ "every message" }</option>
                    <option value="off">{ "never" }</option>
                </select>
                <label for="room-settings-private">{ "Who can join" }</label>
                <select id="room-settings-private" ref={private_ref}>
                    <option value="" selected=true>{ "(unchanged)" }</option>
                    <option value="public">{ "anyone" }</option>
                    <option value="private">{ "invited people only" }</option>
                </select>
                <button type="submit" class="primary">{ "Save settings" }</button>
                if props.role == Role::Owner || props.admin {
                    // The room's usage (issue 12): the server shows it to its creator and admins.
                    <a class="room-analytics-link" href={format!("/analytics/{}", props.slug)}>{ "Room analytics" }</a>
                }
            </form>
        },
        Tab::Audit => html! {
            <ol class="audit-list">
                { for audit.iter().map(|e| html! {
                    <li>
                        <time>{ web::local_date_time(e.at) }</time>
                        { format!(" {} — {}", e.actor_name, e.action) }
                        if let Some(t) = &e.target_id { { format!(" → {t}") } }
                        if !e.detail.is_empty() { <span class="muted">{ format!(" ({})", e.detail) }</span> }
                    </li>
                }) }
            </ol>
        },
    };
    html! {
        <aside class="room-panel card" aria-label="Room members and moderation">
            <nav class="tabs" aria-label="Members and moderation">
                <button type="button" aria-pressed={(*tab == Tab::Members).to_string()} onclick={select(Tab::Members)}>{ "Members" }</button>
                if can(Action::Invite) {
                    <button type="button" aria-pressed={(*tab == Tab::Invites).to_string()} onclick={select(Tab::Invites)}>{ "Invites" }</button>
                }
                if can(Action::ViewAudit) {
                    <button type="button" aria-pressed={(*tab == Tab::Audit).to_string()} onclick={select(Tab::Audit)}>{ "Audit log" }</button>
                }
                if can(Action::EditRoom) {
                    <button type="button" aria-pressed={(*tab == Tab::Settings).to_string()} onclick={select(Tab::Settings)}>{ "Settings" }</button>
                }
            </nav>
            if let Some(message) = &*error {
                <p class="field-error" role="alert">{ message }</p>
            }
            { body }
        </aside>
    }
}
