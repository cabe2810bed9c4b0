//! `/profile`: edit one's display name, about, preferences, assistant preferences and avatar.

use shared::profile::{Profile, Theme};
use web_sys::{HtmlInputElement, HtmlSelectElement, HtmlTextAreaElement};
use yew::prelude::*;

use crate::api;

/// Props of [`ProfilePage`].
#[derive(Properties, PartialEq)]
pub struct ProfilePageProps {
    /// The saved profile's display name changed (the top bar shows it).
    pub on_saved: Callback<Profile>,
}

#[derive(Clone, PartialEq)]
enum Load {
    Loading,
    Failed(String),
    /// The stored profile, and which filling of the form shows it: the form's fields are
    /// filled when this number changes (the first load, each save), and otherwise left to
    /// the person typing in them.
    Ready(Box<Profile>, u32),
}

fn text(input: &NodeRef) -> String {
    input
        .cast::<HtmlInputElement>()
        .map(|i| i.value())
        .or_else(|| input.cast::<HtmlTextAreaElement>().map(|a| a.value()))
        .unwrap_or_default()
}

struct Fields {
    name: NodeRef,
    pronouns: NodeRef,
    status: NodeRef,
    bio: NodeRef,
    time_zone: NodeRef,
    language: NodeRef,
    accent: NodeRef,
    theme: NodeRef,
    ai_tone: NodeRef,
    ai_interests: NodeRef,
    ai_instructions: NodeRef,
    ai_language: NodeRef,
    ai_memory: NodeRef,
    avatar: NodeRef,
}

impl Fields {
    fn read(&self, base: &Profile) -> Profile {
        let mut p = base.clone();
        p.name = text(&self.name);
        p.pronouns = text(&self.pronouns);
        p.status = text(&self.status);
        p.bio = text(&self.bio);
        p.time_zone = text(&self.time_zone);
        p.language = text(&self.language);
        p.accent = text(&self.accent);
        p.theme = match self
            .theme
            .cast::<HtmlSelectElement>()
            .map(|s| s.value())
            .as_deref()
        {
            Some("light") => Theme::Light,
            Some("dark") => Theme::Dark,
            _ => Theme::System,
        };
        p.ai.tone = text(&self.ai_tone);
        p.ai.interests = text(&self.ai_interests);
        p.ai.instructions = text(&self.ai_instructions);
        p.ai.language = text(&self.ai_language);
        p.ai.memory = self
            .ai_memory
            .cast::<HtmlInputElement>()
            .is_some_and(|i| i.checked());
        p
    }

    /// Shows `p` in the form. The fields are not bound to the profile in the markup: a
    /// rendered `value` is written back on every render, and the page renders again whenever
    /// anything around it changes (a room's unread count), which would wipe what is being typed.
    fn fill(&self, p: &Profile) {
        let set = |node: &NodeRef, value: &str| {
            if let Some(input) = node.cast::<HtmlInputElement>() {
                input.set_value(value);
            } else if let Some(area) = node.cast::<HtmlTextAreaElement>() {
                area.set_value(value);
            } else if let Some(select) = node.cast::<HtmlSelectElement>() {
                select.set_value(value);
            }
        };
        set(&self.name, &p.name);
        set(&self.pronouns, &p.pronouns);
        set(&self.status, &p.status);
        set(&self.bio, &p.bio);
        set(&self.time_zone, &p.time_zone);
        set(&self.language, &p.language);
        set(&self.accent, &p.accent);
        set(
            &self.theme,
            match p.theme {
                Theme::Light => "light",
                Theme::Dark => "dark",
                _ => "system",
            },
        );
        set(&self.ai_tone, &p.ai.tone);
        set(&self.ai_interests, &p.ai.interests);
        set(&self.ai_instructions, &p.ai.instructions);
        set(&self.ai_language, &p.ai.language);
        if let Some(memory) = self.ai_memory.cast::<HtmlInputElement>() {
            memory.set_checked(p.ai.memory);
        }
    }
}

fn line(id: &'static str, label: &'static str, node: &NodeRef) -> Html {
    html! {
        <>
            <label for={id}>{ label }</label>
            <input id={id} ref={node.clone()} />
        </>
    }
}

/// The profile editor.
#[function_component]
pub fn ProfilePage(props: &ProfilePageProps) -> Html {
    let load = use_state(|| Load::Loading);
    let message = use_state(|| None::<(bool, String)>);
    let busy = use_state(|| false);
    let fields = use_memo((), |_| Fields {
        name: NodeRef::default(),
        pronouns: NodeRef::default(),
        status: NodeRef::default(),
        bio: NodeRef::default(),
        time_zone: NodeRef::default(),
        language: NodeRef::default(),
        accent: NodeRef::default(),
        theme: NodeRef::default(),
        ai_tone: NodeRef::default(),
        ai_interests: NodeRef::default(),
        ai_instructions: NodeRef::default(),
        ai_language: NodeRef::default(),
        ai_memory: NodeRef::default(),
        avatar: NodeRef::default(),
    });
    {
        let load = load.clone();
        use_effect_with((), move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                load.set(match api::profile().await {
                    Ok(p) => Load::Ready(Box::new(p), 1),
                    Err(e) => Load::Failed(e.message),
                });
            });
        });
    }

    {
        // After the render that shows the form for a new filling.
        let (fields, load) = (fields.clone(), load.clone());
        let filling = match &*load {
            Load::Ready(_, filling) => *filling,
            _ => 0,
        };
        use_effect_with(filling, move |_| {
            if let Load::Ready(p, _) = &*load {
                fields.fill(p);
            }
        });
    }

    let (profile, filling) = match &*load {
        Load::Loading => return html! { <p class="muted" role="status">{ "Loading…" }</p> },
        Load::Failed(m) => return html! { <p class="field-error" role="alert">{ m }</p> },
        Load::Ready(p, filling) => ((**p).clone(), *filling),
    };

    let onsubmit = {
        let (fields, load, message, busy) =
            (fields.clone(), load.clone(), message.clone(), busy.clone());
        let on_saved = props.on_saved.clone();
        let base = profile.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let next = fields.read(&base);
            // The same rules as the server, so most mistakes show before a round trip.
            if let Err(err) = next.clone().validated() {
                message.set(Some((false, err.message)));
                return;
            }
            let (load, message, busy, on_saved) = (
                load.clone(),
                message.clone(),
                busy.clone(),
                on_saved.clone(),
            );
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                match api::save_profile(&next).await {
                    Ok(saved) => {
                        on_saved.emit(saved.clone());
                        // The form shows what was stored (trimmed, normalized).
                        load.set(Load::Ready(Box::new(saved), filling + 1));
                        message.set(Some((true, "Saved.".into())));
                    }
                    Err(e) => message.set(Some((false, e.message))),
                }
                busy.set(false);
            });
        })
    };
    let on_avatar = {
        let (fields, load, message) = (fields.clone(), load.clone(), message.clone());
        Callback::from(move |_: Event| {
            let Some(file) = fields
                .avatar
                .cast::<HtmlInputElement>()
                .and_then(|i| i.files())
                .and_then(|f| f.get(0))
            else {
                return;
            };
            let (load, message) = (load.clone(), message.clone());
            wasm_bindgen_futures::spawn_local(async move {
                // Large images are resized here, so the upload is small.
                let image = match crate::avatar::prepare(&file).await {
                    Ok(image) => image,
                    Err(e) => return message.set(Some((false, e))),
                };
                match api::upload_avatar(&image).await {
                    Ok(saved) => {
                        // Same filling: fields being edited are not reset by a new avatar.
                        load.set(Load::Ready(Box::new(saved), filling));
                        message.set(Some((true, "Avatar updated.".into())));
                    }
                    Err(e) => message.set(Some((false, e.message))),
                }
            });
        })
    };

    let f = &*fields;
    html! {
        <section class="profile-page card">
            <h1>{ "Your profile" }</h1>
            <div class="avatar-row">
                if let Some(url) = &profile.avatar {
                    <img class="avatar large" src={url.clone()} alt="Your avatar" width="64" height="64" />
                }
                <label for="avatar">{ "Avatar (PNG, JPEG, WebP or GIF; large images are resized)" }</label>
                <input id="avatar" type="file" accept="image/png,image/jpeg,image/webp,image/gif"
                    ref={f.avatar.clone()} onchange={on_avatar} />
            </div>
            <form class="profile-form" {onsubmit}>
                { line("profile-name", "Display name", &f.name) }
                { line("profile-pronouns", "Pronouns", &f.pronouns) }
                { line("profile-status", "Status", &f.status) }
                <label for="profile-bio">{ "About you" }</label>
                <textarea id="profile-bio" ref={f.bio.clone()} />
                { line("profile-tz", "Time zone", &f.time_zone) }
                { line("profile-language", "Language", &f.language) }
                { line("profile-accent", "Accent color (#rrggbb)", &f.accent) }
                <label for="profile-theme">{ "Theme" }</label>
                <select id="profile-theme" ref={f.theme.clone()}>
                    <option value="system">{ "System" }</option>
                    <option value="light">{ "Light" }</option>
                    <option value="dark">{ "Dark" }</option>
                </select>
                <fieldset>
                    <legend>{ "The assistant" }</legend>
                    { line("ai-tone", "Tone", &f.ai_tone) }
                    { line("ai-interests", "Interests", &f.ai_interests) }
                    <label for="ai-instructions">{ "Custom instructions" }</label>
                    <textarea id="ai-instructions" ref={f.ai_instructions.clone()} />
                    { line("ai-language", "Answer language", &f.ai_language) }
                    <label class="check">
                        <input type="checkbox" ref={f.ai_memory.clone()} />
                        { " Let the assistant remember things about me" }
                    </label>
                </fieldset>
                if let Some((ok, text)) = &*message {
                    <p class={if *ok { "muted" } else { "field-error" }} role="status">{ text }</p>
                }
                <button type="submit" class="primary" disabled={*busy}>{ "Save profile" }</button>
            </form>
            <crate::components::ai_panels::MemoryPanel />
        </section>
    }
}
