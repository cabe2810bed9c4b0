//! The side panel an answer's citation opens: the cited message among the messages around it
//! (or in its thread), fetched and shown as the search panel shows a result in context.

use shared::protocol::http::Context;
use shared::protocol::Seq;
use web_sys::HtmlElement;
use yew::prelude::*;

use crate::api;
use crate::components::search::context_messages;

/// Props of [`SourcePanel`].
#[derive(Properties, PartialEq)]
pub struct SourcePanelProps {
    /// The room.
    pub slug: AttrValue,
    /// The cited message.
    pub seq: Seq,
    /// Close the panel.
    pub on_close: Callback<()>,
}

/// `<aside aria-label="Source">`.
#[function_component]
pub fn SourcePanel(props: &SourcePanelProps) -> Html {
    let found = use_state(|| None::<Result<Context, String>>);
    let panel = use_node_ref();
    {
        let (found, panel) = (found.clone(), panel.clone());
        let slug = props.slug.clone();
        use_effect_with(props.seq, move |seq| {
            found.set(None);
            // Keyboard and screen reader users land on what they opened.
            if let Some(el) = panel.cast::<HtmlElement>() {
                let _ = el.focus();
            }
            let seq = *seq;
            wasm_bindgen_futures::spawn_local(async move {
                found.set(Some(api::context(&slug, seq).await.map_err(|e| e.message)));
            });
        });
    }
    {
        let panel = panel.clone();
        use_effect_with(found.is_some(), move |_| {
            let target = panel
                .cast::<HtmlElement>()
                .and_then(|el| el.query_selector("li.target").ok().flatten());
            if let Some(el) = target {
                el.scroll_into_view();
            }
        });
    }
    let close = props.on_close.reform(|_: MouseEvent| ());
    html! {
        <aside class="source-panel" aria-label="Source" tabindex="-1" ref={panel}>
            <header>
                <h2>{ "Source" }</h2>
                <button type="button" onclick={close} aria-label="Close the source">{ "×" }</button>
            </header>
            { match &*found {
                None => html! { <p class="muted">{ "Loading…" }</p> },
                Some(Err(message)) => html! { <p class="field-error" role="alert">{ message }</p> },
                Some(Ok(ctx)) => html! {
                    <>
                        if ctx.thread.is_some() {
                            <p class="muted">{ "In a thread" }</p>
                        }
                        { context_messages(ctx) }
                    </>
                },
            } }
        </aside>
    }
}
