//! Search: this room or all your rooms, with filters (`from:`, `in:thread`, `has:link`,
//! `has:file`, `has:image`, `tag:`, `after:`, `before:`, `on:`); highlighted snippets; a result
//! opens the messages around it. An image's tag opens it with its `tag:` search under way.

use shared::protocol::http::{Context, SearchHit, SearchResults};
use shared::search::snippet_parts;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::api;
use crate::components::focus::{close_on_escape, use_panel_focus};
use crate::route::Route;
use crate::web;

/// Props of [`SearchPanel`].
#[derive(Properties, PartialEq)]
pub struct SearchPanelProps {
    /// The open room.
    pub slug: AttrValue,
    /// Go to a path (a result in another room).
    pub on_navigate: Callback<String>,
    /// Close the panel.
    pub on_close: Callback<()>,
    /// A search to run at once (an image's tag asked for it).
    #[prop_or_default]
    pub query: Option<String>,
}

fn snippet(text: &str) -> Html {
    html! {
        { for snippet_parts(text).into_iter().map(|(part, marked)| if marked {
            html! { <mark>{ part }</mark> }
        } else {
            html! { { part } }
        }) }
    }
}

/// The messages around a message, that one marked: a search result or an answer's source
/// opened in context.
pub fn context_messages(ctx: &Context) -> Html {
    html! {
        <ol class="context-messages">
            { for ctx.messages.iter().map(|m| html! {
                <li class={classes!("context-message", (m.seq == ctx.target).then_some("target"))}
                    data-seq={m.seq.to_string()}>
                    <span class="author">{ &m.author.name }</span>
                    <time title={web::local_date_time(m.at)}>{ web::local_hh_mm(m.at) }</time>
                    <div class="body">{
                        if m.deleted { html! { <em>{ "Message deleted" }</em> } }
                        else { Html::from_html_unchecked(shared::markdown::render(&m.text).into()) }
                    }</div>
                    if !m.deleted && !m.attachments.is_empty() {
                        <ul class="context-files">
                            { for m.attachments.iter().map(|a| html! {
                                <li>
                                    <span aria-hidden="true">{ crate::media::kind_icon(a.kind) }{ " " }</span>
                                    { &a.name }
                                </li>
                            }) }
                        </ul>
                    }
                </li>
            }) }
        </ol>
    }
}

/// `<aside aria-label="Search">`.
#[function_component]
pub fn SearchPanel(props: &SearchPanelProps) -> Html {
    let field = use_node_ref();
    let everywhere = use_node_ref();
    let results = use_state(|| None::<SearchResults>);
    let context = use_state(|| None::<(AttrValue, Context)>);
    let error = use_state(|| None::<String>);
    let busy = use_state(|| false);

    // Searches for what the field says, in this room or (the box ticked) all of them.
    let run = {
        let (field, everywhere) = (field.clone(), everywhere.clone());
        let (results, context, error, busy) = (
            results.clone(),
            context.clone(),
            error.clone(),
            busy.clone(),
        );
        let slug = props.slug.clone();
        Callback::from(move |()| {
            let Some(input) = field.cast::<HtmlInputElement>() else {
                return;
            };
            let all = everywhere
                .cast::<HtmlInputElement>()
                .is_some_and(|b| b.checked());
            let (results, context, error, busy) = (
                results.clone(),
                context.clone(),
                error.clone(),
                busy.clone(),
            );
            let slug = slug.clone();
            busy.set(true);
            wasm_bindgen_futures::spawn_local(async move {
                let scope = (!all).then_some(slug.as_str());
                match api::search(scope, &input.value()).await {
                    Ok(found) => {
                        results.set(Some(found));
                        context.set(None);
                        error.set(None);
                    }
                    Err(e) => error.set(Some(e.message)),
                }
                busy.set(false);
            });
        })
    };
    let onsubmit = {
        let run = run.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            run.emit(());
        })
    };
    {
        // A search asked for from elsewhere: written into the field (where it can be changed)
        // and run.
        let (field, run) = (field.clone(), run.clone());
        use_effect_with(props.query.clone(), move |query| {
            if let (Some(query), Some(input)) = (query, field.cast::<HtmlInputElement>()) {
                input.set_value(query);
                run.emit(());
            }
        });
    }
    let open = |hit: &SearchHit| {
        let (context, error) = (context.clone(), error.clone());
        let (slug, seq) = (hit.slug.clone(), hit.seq);
        Callback::from(move |_: MouseEvent| {
            let (context, error, slug) = (context.clone(), error.clone(), slug.clone());
            wasm_bindgen_futures::spawn_local(async move {
                match api::context(&slug, seq).await {
                    Ok(found) => context.set(Some((slug.into(), found))),
                    Err(e) => error.set(Some(e.message)),
                }
            });
        })
    };
    let close = props.on_close.reform(|_: MouseEvent| ());
    let body = if let Some((slug, ctx)) = &*context {
        let back = {
            let context = context.clone();
            Callback::from(move |_: MouseEvent| context.set(None))
        };
        let path = Route::Room(slug.to_string()).path();
        html! {
            <div class="search-context">
                <div class="context-bar">
                    <button type="button" onclick={back}>{ "← Results" }</button>
                    if *slug != props.slug {
                        <a href={path.clone()} onclick={crate::components::sidebar::link_click(path, props.on_navigate.clone())}>
                            { format!("Open {slug}") }
                        </a>
                    }
                    if ctx.thread.is_some() {
                        <span class="muted">{ "in a thread" }</span>
                    }
                </div>
                { context_messages(ctx) }
            </div>
        }
    } else if let Some(found) = &*results {
        html! {
            <>
                if found.partial {
                    <p class="notice" role="status">
                        { format!("Some rooms did not answer in time: {}. Their results are missing.",
                            found.missing.join(", ")) }
                    </p>
                }
                if found.hits.is_empty() {
                    <p class="muted">{ "No messages found." }</p>
                }
                <ol class="search-results">
                    { for found.hits.iter().map(|hit| html! {
                        <li key={format!("{}-{}", hit.slug, hit.seq)}>
                            <button type="button" class="search-hit" onclick={open(hit)}>
                                <span class="hit-meta">
                                    if hit.slug != props.slug.as_str() {
                                        <span class="hit-room">{ &hit.slug }{ " · " }</span>
                                    }
                                    <span class="author">{ &hit.author.name }</span>
                                    { " · " }{ web::local_date_time(hit.at) }
                                    if hit.thread.is_some() { { " · in a thread" } }
                                </span>
                                <span class="snippet">{ snippet(&hit.snippet) }</span>
                            </button>
                        </li>
                    }) }
                </ol>
            </>
        }
    } else {
        html! {
            <p class="muted">{ "Filters: from:name, in:thread, has:link, has:file, has:image, tag:cat (what an image shows), after:2026-01-31, before:…, on:…" }</p>
        }
    };
    let panel = use_node_ref();
    use_panel_focus(panel.clone(), "input[type=\"search\"]");
    let onkeydown = close_on_escape(props.on_close.clone());
    html! {
        <aside class="search-panel" aria-label="Search" ref={panel} {onkeydown}>
            <header>
                <h2>{ "Search" }</h2>
                <button type="button" onclick={close} aria-label="Close search">{ "×" }</button>
            </header>
            <form class="search-form" {onsubmit}>
                <input ref={field} type="search" aria-label="Search messages"
                    placeholder="Search messages, has:image, has:file, tag:cat" />
                <label><input ref={everywhere} type="checkbox" />{ " All my rooms" }</label>
                <button type="submit" class="primary" disabled={*busy}>{ "Search" }</button>
            </form>
            if let Some(message) = &*error {
                <p class="field-error" role="alert">{ message }</p>
            }
            { body }
        </aside>
    }
}
