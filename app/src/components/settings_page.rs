//! `/settings` (issue 12): the Worker's secrets and provider settings, for global admins. The
//! server answers anyone else `not_found`, and so does this page. Each setting of
//! `shared::settings::CATALOGUE` gets a labelled input; what is in effect is shown as the
//! server describes it (a saved secret by its last four characters, a secret from the
//! environment only as "set in environment"). Save sends only the inputs that were filled in
//! (and the values ticked to clear), and shows each one's result beside it.

use std::collections::HashMap;
use std::rc::Rc;

use shared::settings::{
    FieldResult, Group, SaveSettings, Setting, SettingState, SettingsView, Source, CATALOGUE,
};
use web_sys::{HtmlInputElement, HtmlTextAreaElement};
use yew::prelude::*;

use crate::components::not_found_page;
use crate::{api, web};

enum Load {
    Loading,
    /// Not an admin: the server says there is nothing here.
    NotFound,
    Failed(String),
    Ready(SettingsView),
}

/// An input (or, for a PEM key, a text area) and its "clear the saved value" box, per setting.
#[derive(Default)]
struct Inputs {
    values: HashMap<&'static str, NodeRef>,
    clears: HashMap<&'static str, NodeRef>,
}

impl Inputs {
    fn new() -> Inputs {
        let mut inputs = Inputs::default();
        for setting in CATALOGUE {
            inputs.values.insert(setting.name, NodeRef::default());
            inputs.clears.insert(setting.name, NodeRef::default());
        }
        inputs
    }

    fn value(&self, name: &str) -> String {
        let Some(node) = self.values.get(name) else {
            return String::new();
        };
        node.cast::<HtmlInputElement>()
            .map(|i| i.value())
            .or_else(|| node.cast::<HtmlTextAreaElement>().map(|t| t.value()))
            .unwrap_or_default()
    }

    fn clear_ticked(&self, name: &str) -> bool {
        self.clears
            .get(name)
            .and_then(|n| n.cast::<HtmlInputElement>())
            .is_some_and(|i| i.checked())
    }

    /// The save: every filled-in input, and every ticked clear (a value typed wins).
    fn collect(&self) -> SaveSettings {
        let mut save = SaveSettings::default();
        for setting in CATALOGUE {
            let value = self.value(setting.name);
            if !value.trim().is_empty() {
                save.values.insert(setting.name.to_owned(), Some(value));
            } else if self.clear_ticked(setting.name) {
                save.values.insert(setting.name.to_owned(), None);
            }
        }
        save
    }

    /// Empties the inputs whose value was saved (a secret is not left on the screen).
    fn reset(&self, saved: &[FieldResult]) {
        for result in saved.iter().filter(|r| r.ok) {
            if let Some(node) = self.values.get(result.field.as_str()) {
                if let Some(input) = node.cast::<HtmlInputElement>() {
                    input.set_value("");
                } else if let Some(area) = node.cast::<HtmlTextAreaElement>() {
                    area.set_value("");
                }
            }
            if let Some(input) = self
                .clears
                .get(result.field.as_str())
                .and_then(|n| n.cast::<HtmlInputElement>())
            {
                input.set_checked(false);
            }
        }
    }
}

fn input_id(name: &str) -> String {
    format!("setting-{}", name.to_ascii_lowercase().replace('_', "-"))
}

/// What is in effect, in words.
fn describe(state: &SettingState) -> String {
    match state.source {
        Source::Stored => {
            let mut text = format!("Saved: {}", state.shown.as_deref().unwrap_or("••••"));
            if let (Some(by), Some(at)) = (&state.updated_by, state.updated_at) {
                text.push_str(&format!(" (by {by}, {})", web::local_date_time(at)));
            }
            if state.in_environment {
                text.push_str(". Also set in environment.");
            }
            text
        }
        Source::Environment => match &state.shown {
            Some(value) => format!("Set in environment: {value}"),
            None => "Set in environment".to_owned(),
        },
        Source::Unreadable => "Saved, but it does not open with this SETTINGS_KEY; the \
                               environment's value applies."
            .to_owned(),
        Source::Unset | Source::Unknown => "Not set".to_owned(),
    }
}

fn field(
    setting: &Setting,
    state: Option<&SettingState>,
    result: Option<&FieldResult>,
    inputs: &Inputs,
    enabled: bool,
) -> Html {
    let id = input_id(setting.name);
    let help_id = format!("{id}-help");
    let result_id = format!("{id}-result");
    let node = inputs.values.get(setting.name).cloned().unwrap_or_default();
    let clear = inputs.clears.get(setting.name).cloned().unwrap_or_default();
    let current = state.map(describe).unwrap_or_default();
    let stored = state.is_some_and(|s| s.source == Source::Stored);
    let described = if result.is_some() {
        format!("{help_id} {result_id}")
    } else {
        help_id.clone()
    };
    let input = if setting.rule == shared::settings::Rule::P256Pkcs8Pem {
        html! {
            <textarea id={id.clone()} ref={node} rows="4" spellcheck="false" autocomplete="off"
                aria-describedby={described} disabled={!enabled} />
        }
    } else {
        html! {
            <input id={id.clone()} ref={node} autocomplete="off" spellcheck="false"
                type={if setting.secret { "password" } else { "text" }}
                aria-describedby={described} disabled={!enabled} />
        }
    };
    html! {
        <div class="setting" key={setting.name} data-setting={setting.name}>
            <label for={id.clone()}>{ setting.label }</label>
            { input }
            <p class="muted" id={help_id}>
                { current }
                if !setting.help.is_empty() { { " — " }{ setting.help } }
            </p>
            if stored && enabled {
                <label class="check">
                    <input type="checkbox" ref={clear} />
                    { format!(" Clear the saved {} (the environment's value applies)", setting.label) }
                </label>
            }
            if let Some(r) = result {
                <p id={result_id} class={if r.ok { "muted" } else { "field-error" }} role="status">
                    { if r.ok { "✓ " } else { "✗ " } }{ &r.message }
                    if let Some(cf) = &r.cloudflare {
                        <br />
                        { if cf.ok { "✓ Cloudflare: " } else { "✗ Cloudflare: " } }{ &cf.message }
                    }
                </p>
            }
        </div>
    }
}

/// The settings page.
#[function_component]
pub fn SettingsPage() -> Html {
    let load = use_state(|| Load::Loading);
    let results = use_state(HashMap::<String, FieldResult>::new);
    let notice = use_state(|| None::<(bool, String)>);
    let busy = use_state(|| false);
    let version = use_state(|| 0u32);
    let inputs: Rc<Inputs> = use_memo((), |_| Inputs::new());
    let cloudflare = use_node_ref();

    {
        let load = load.clone();
        use_effect_with(*version, move |_| {
            wasm_bindgen_futures::spawn_local(async move {
                load.set(match api::admin_settings().await {
                    Ok(view) => Load::Ready(view),
                    Err(e) if e.status == 404 => Load::NotFound,
                    Err(e) => Load::Failed(e.message),
                });
            });
        });
    }
    let onsubmit = {
        let (results, notice, busy, version) = (
            results.clone(),
            notice.clone(),
            busy.clone(),
            version.clone(),
        );
        let (inputs, cloudflare) = (inputs.clone(), cloudflare.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let mut save = inputs.collect();
            if save.values.is_empty() {
                notice.set(Some((
                    false,
                    "Nothing to save: fill in a value or tick a clear.".into(),
                )));
                return;
            }
            save.cloudflare = cloudflare
                .cast::<HtmlInputElement>()
                .is_some_and(|c| c.checked());
            let (results, notice, busy, version, inputs) = (
                results.clone(),
                notice.clone(),
                busy.clone(),
                version.clone(),
                inputs.clone(),
            );
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                match api::save_settings(&save).await {
                    Ok(outcome) => {
                        inputs.reset(&outcome.results);
                        let failed = outcome.results.iter().filter(|r| !r.ok).count();
                        notice.set(Some(if failed == 0 {
                            (true, "Saved.".to_owned())
                        } else {
                            (
                                false,
                                format!(
                                    "{failed} of {} not saved: see below.",
                                    outcome.results.len()
                                ),
                            )
                        }));
                        results.set(
                            outcome
                                .results
                                .into_iter()
                                .map(|r| (r.field.clone(), r))
                                .collect(),
                        );
                        version.set(*version + 1);
                    }
                    Err(e) => notice.set(Some((false, e.message))),
                }
                busy.set(false);
            });
        })
    };

    let view = match &*load {
        Load::Loading => return html! { <p class="muted" role="status">{ "Loading…" }</p> },
        Load::NotFound => return not_found_page(),
        Load::Failed(message) => {
            return html! { <p class="field-error" role="alert">{ message }</p> }
        }
        Load::Ready(view) => view,
    };
    let enabled = view.storage.available;
    let mut groups: Vec<Group> = Vec::new();
    for setting in CATALOGUE {
        if !groups.contains(&setting.group) {
            groups.push(setting.group);
        }
    }
    let state_of = |name: &str| view.settings.iter().find(|s| s.name == name);
    html! {
        // Focusable so a keyboard can scroll it even when every field is disabled (no key).
        <section class="admin-page settings-page" tabindex="0" aria-labelledby="settings-title">
            <h1 id="settings-title">{ "Settings" }</h1>
            <p class="muted">
                { format!("A saved value overrides the environment's and reaches every instance of the Worker within {} s, without a redeploy. Secrets are shown only by their last four characters.", view.cache_seconds) }
            </p>
            if !enabled {
                <p class="field-error" role="alert">
                    { view.storage.message.clone().unwrap_or_else(|| "Saving is unavailable.".into()) }
                </p>
            }
            if let Some(until) = view.previous_session_key_until {
                <p class="muted">
                    { format!("The previous session key still verifies existing sessions until {}.", web::local_date_time(until)) }
                </p>
            }
            <form class="profile-form card" onsubmit={onsubmit}>
                { for groups.iter().map(|group| html! {
                    <fieldset key={group.title()}>
                        <legend>{ group.title() }</legend>
                        { for CATALOGUE.iter().filter(|s| s.group == *group).map(|s| {
                            field(s, state_of(s.name), results.get(s.name), &inputs, enabled)
                        }) }
                    </fieldset>
                }) }
                if view.cloudflare && enabled {
                    <label class="check">
                        <input type="checkbox" ref={cloudflare} />
                        { " Also save to Cloudflare (set each value as a Worker secret)" }
                    </label>
                }
                if let Some((ok, text)) = &*notice {
                    <p class={if *ok { "muted" } else { "field-error" }} role="status">{ text }</p>
                }
                <button type="submit" class="primary" disabled={*busy || !enabled}>{ "Save" }</button>
            </form>
        </section>
    }
}
