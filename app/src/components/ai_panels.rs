//! The assistant's panels outside rooms: what it remembers about you (profile page, view and
//! delete), and its answers and ratings per room and model (admin page).

use yew::prelude::*;

use crate::api::{self, Fact};

/// "What the assistant remembers": the user's facts with Forget buttons.
#[function_component]
pub fn MemoryPanel() -> Html {
    let facts = use_state(|| None::<Vec<Fact>>);
    let error = use_state(|| None::<String>);
    let reload = {
        let (facts, error) = (facts.clone(), error.clone());
        Callback::from(move |()| {
            let (facts, error) = (facts.clone(), error.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::memory().await {
                    Ok(memory) => facts.set(Some(memory.facts)),
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };
    {
        let reload = reload.clone();
        use_effect_with((), move |()| reload.emit(()));
    }
    let forget = |id: Option<f64>| {
        let (reload, error) = (reload.clone(), error.clone());
        Callback::from(move |_: MouseEvent| {
            let (reload, error) = (reload.clone(), error.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::forget(id).await {
                    Ok(_) => reload.emit(()),
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };
    html! {
        <section class="card memory-panel" aria-label="Assistant memory">
            <h2>{ "What the assistant remembers about you" }</h2>
            if let Some(message) = &*error {
                <p class="field-error" role="alert">{ message }</p>
            }
            { match &*facts {
                None => html! { <p class="muted">{ "Loading…" }</p> },
                Some(facts) if facts.is_empty() => html! {
                    <p class="muted">{ "Nothing. With memory on, the assistant keeps short facts from your questions here." }</p>
                },
                Some(facts) => html! {
                    <>
                        <ul class="facts">
                            { for facts.iter().map(|f| html! {
                                <li key={f.id.to_string()}>
                                    <span>{ &f.fact }</span>
                                    <button type="button" onclick={forget(Some(f.id))}>{ "Forget" }</button>
                                </li>
                            }) }
                        </ul>
                        <button type="button" class="danger" onclick={forget(None)}>{ "Forget everything" }</button>
                    </>
                },
            } }
        </section>
    }
}

/// The assistant's answers and ratings per room and model, and recent thumbs-down.
#[function_component]
pub fn AssistantStats() -> Html {
    let report = use_state(|| None::<serde_json::Value>);
    let error = use_state(|| None::<String>);
    {
        let (report, error) = (report.clone(), error.clone());
        use_effect_with((), move |()| {
            wasm_bindgen_futures::spawn_local(async move {
                match api::admin_ai().await {
                    Ok(value) => report.set(Some(value)),
                    Err(e) => error.set(Some(e.message)),
                }
            });
        });
    }
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Number(n) => {
            let f = n.as_f64().unwrap_or_default();
            if f.fract() == 0.0 {
                format!("{f:.0}")
            } else {
                format!("{f:.2}")
            }
        }
        serde_json::Value::String(s) => s.clone(),
        _ => "–".into(),
    };
    let empty = Vec::new();
    let lines = report
        .as_ref()
        .and_then(|r| r["lines"].as_array())
        .unwrap_or(&empty);
    let low = report
        .as_ref()
        .and_then(|r| r["recent_low"].as_array())
        .unwrap_or(&empty);
    html! {
        <section class="card" aria-label="Assistant">
            <h2>{ "Assistant" }</h2>
            if let Some(message) = &*error {
                <p class="field-error" role="alert">{ message }</p>
            }
            <table class="ai-stats">
                <thead><tr>
                    <th>{ "Room" }</th><th>{ "Model" }</th><th>{ "Answers" }</th><th>{ "Failed" }</th>
                    <th>{ "First token ms" }</th><th>{ "👍" }</th><th>{ "👎" }</th><th>{ "Ratio" }</th>
                </tr></thead>
                <tbody>
                    { for lines.iter().map(|l| html! {
                        <tr>
                            <td>{ text(&l["room"]) }</td><td>{ text(&l["model"]) }</td>
                            <td>{ text(&l["answers"]) }</td><td>{ text(&l["failed"]) }</td>
                            <td>{ text(&l["avg_first_token_ms"]) }</td>
                            <td>{ text(&l["up"]) }</td><td>{ text(&l["down"]) }</td>
                            <td>{ text(&l["ratio"]) }</td>
                        </tr>
                    }) }
                </tbody>
            </table>
            <h3>{ "Recent low-rated answers" }</h3>
            <ul class="low-rated">
                { for low.iter().map(|l| html! {
                    <li>
                        <a href={format!("/r/{}", text(&l["room"]))}>{ text(&l["room"]) }</a>
                        { format!(" #{} · {} · {}", text(&l["target"]), text(&l["model"]), text(&l["reason"])) }
                    </li>
                }) }
            </ul>
        </section>
    }
}
