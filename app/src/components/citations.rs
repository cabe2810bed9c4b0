//! An answer's text with its citations live: each `[n]` button (linked by [`crate::cite`])
//! shows a card with the source's author, time and an excerpt on hover or focus, and opens the
//! source in context on click; under the text, "Sources: [1] Ann · [2] Bob", which is also how
//! a touch screen reaches them. The handlers sit on the answer's container (the buttons are in
//! the sanitized HTML, which carries no handlers of its own) and find the button an event came
//! from by its class.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use shared::protocol::{Citation, Seq};
use wasm_bindgen::JsCast;
use web_sys::{Element, EventTarget, HtmlElement};
use yew::prelude::*;

use crate::api;
use crate::cite::{excerpt, find};
use crate::conn::RoomHandle;
use crate::web;

/// What a hover card says of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Quote {
    /// Being fetched.
    Loading,
    /// Its words, on one line.
    Text(String),
    /// It was deleted.
    Deleted,
    /// The room would not show it.
    Missing,
}

/// What citations need from the room page, provided to every answer in it.
#[derive(Clone)]
pub struct Sources {
    /// The room.
    pub slug: AttrValue,
    /// Its loaded messages (quoted without asking the room).
    pub handle: RoomHandle,
    /// Sources fetched for their hover card, by seq.
    pub fetched: Rc<RefCell<HashMap<Seq, Quote>>>,
    /// Open a message in context.
    pub open: Callback<Seq>,
}

impl PartialEq for Sources {
    fn eq(&self, other: &Self) -> bool {
        self.slug == other.slug
            && self.handle == other.handle
            && Rc::ptr_eq(&self.fetched, &other.fetched)
            && self.open == other.open
    }
}

impl Sources {
    /// The source's words: from the page's own copy when it has the message, else as fetched.
    fn quote(&self, seq: Seq) -> Option<Quote> {
        let loaded = self.handle.with_room(|room| {
            room.message(seq).map(|m| {
                if m.deleted {
                    Quote::Deleted
                } else {
                    Quote::Text(excerpt(&m.text))
                }
            })
        });
        loaded.or_else(|| self.fetched.borrow().get(&seq).cloned())
    }

    /// Fetches a source the page does not have (once), then calls `done`. The citation carries
    /// no text on purpose: a deleted message's words are read from the room, which has
    /// scrubbed them, never from a copy.
    fn fetch(&self, seq: Seq, done: Callback<()>) {
        if self.quote(seq).is_some() {
            return;
        }
        self.fetched.borrow_mut().insert(seq, Quote::Loading);
        let (slug, fetched) = (self.slug.clone(), self.fetched.clone());
        wasm_bindgen_futures::spawn_local(async move {
            let quote = match api::context(&slug, seq).await {
                Ok(ctx) => match ctx.messages.iter().find(|m| m.seq == ctx.target) {
                    Some(m) if m.deleted => Quote::Deleted,
                    Some(m) => Quote::Text(excerpt(&m.text)),
                    None => Quote::Missing,
                },
                Err(_) => Quote::Missing,
            };
            fetched.borrow_mut().insert(seq, quote);
            done.emit(());
        });
    }
}

/// Props of [`AnswerText`].
#[derive(Properties, PartialEq)]
pub struct AnswerTextProps {
    /// Sanitized HTML with linked markers.
    pub html: AttrValue,
    /// The sources its markers cite.
    pub citations: Rc<[Citation]>,
    /// Extra classes of the `.body` (`streaming`).
    #[prop_or_default]
    pub class: Classes,
}

/// The hover card's id.
const CARD_ID: &str = "cite-card";

/// The citation button an event came from.
fn cite_button(target: Option<EventTarget>) -> Option<(Element, u32)> {
    let el = target?.dyn_into::<Element>().ok()?;
    let button = el.closest(".cite-ref").ok()??;
    let n = button.get_attribute("data-n")?.parse().ok()?;
    Some((button, n))
}

/// `<div class="answer-text">`: the body, its hover card, and the sources list.
#[function_component]
pub fn AnswerText(props: &AnswerTextProps) -> Html {
    let sources = use_context::<Sources>();
    let wrap = use_node_ref();
    let card = use_node_ref();
    // The card shown: citation number and where (px from the container's corner).
    let hover = use_state(|| None::<(u32, i32, i32)>);
    let redraw = use_force_update();

    {
        // Placed through the CSSOM: the page's CSP allows no inline style attributes.
        let card = card.clone();
        use_effect_with(*hover, move |hover| {
            if let (Some((_, top, left)), Some(el)) = (hover, card.cast::<HtmlElement>()) {
                let style = el.style();
                let _ = style.set_property("top", &format!("{top}px"));
                let _ = style.set_property("left", &format!("{left}px"));
            }
        });
    }

    let show = {
        let (wrap, hover, sources) = (wrap.clone(), hover.clone(), sources.clone());
        let citations = props.citations.clone();
        move |target: Option<EventTarget>| {
            let (Some((button, n)), Some(container)) =
                (cite_button(target), wrap.cast::<Element>())
            else {
                return;
            };
            let (b, w) = (
                button.get_bounding_client_rect(),
                container.get_bounding_client_rect(),
            );
            let top = (b.bottom() - w.top() + 4.0) as i32;
            let left = (b.left() - w.left()).clamp(0.0, (w.width() - 288.0).max(0.0)) as i32;
            if let (Some(c), Some(sources)) = (find(&citations, n), &sources) {
                let redraw = redraw.clone();
                sources.fetch(c.seq, Callback::from(move |()| redraw.force_update()));
            }
            // The card describes the button (one card shows at a time, hence one id).
            let _ = button.set_attribute("aria-describedby", CARD_ID);
            hover.set(Some((n, top, left)));
        }
    };
    let hide = {
        let hover = hover.clone();
        move |target: Option<EventTarget>| {
            if cite_button(target).is_some() {
                hover.set(None);
            }
        }
    };
    let onmouseover = {
        let show = show.clone();
        Callback::from(move |e: MouseEvent| show(e.target()))
    };
    let onfocusin = Callback::from(move |e: FocusEvent| show(e.target()));
    let onmouseout = {
        let hide = hide.clone();
        Callback::from(move |e: MouseEvent| hide(e.target()))
    };
    let onfocusout = Callback::from(move |e: FocusEvent| hide(e.target()));
    let onkeydown = {
        let hover = hover.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" && hover.is_some() {
                hover.set(None);
            }
        })
    };
    let open = {
        let (sources, hover) = (sources.clone(), hover.clone());
        Callback::from(move |seq: Seq| {
            hover.set(None);
            if let Some(sources) = &sources {
                sources.open.emit(seq);
            }
        })
    };
    let onclick = {
        let citations = props.citations.clone();
        let open = open.clone();
        Callback::from(move |e: MouseEvent| {
            if let Some(c) = cite_button(e.target()).and_then(|(_, n)| find(&citations, n)) {
                open.emit(c.seq);
            }
        })
    };

    let shown = hover.and_then(|(n, ..)| find(&props.citations, n));
    let quote = shown.and_then(|c| sources.as_ref()?.quote(c.seq));
    html! {
        <>
            <div class="answer-text" ref={wrap} {onclick} {onmouseover} {onmouseout} {onfocusin}
                {onfocusout} {onkeydown}>
                <div class={classes!("body", props.class.clone())}>
                    { Html::from_html_unchecked(props.html.clone()) }
                </div>
                if let Some(c) = shown {
                    <div class="cite-card" id={CARD_ID} role="tooltip" ref={card}>
                        <div class="cite-card-meta">
                            <span class="author">{ &c.author }</span>
                            <time datetime={web::iso(c.at)}>{ web::local_date_time(c.at) }</time>
                        </div>
                        <p class="excerpt">{
                            match quote {
                                Some(Quote::Text(text)) => html! { text },
                                Some(Quote::Deleted) => html! { <em>{ "Message deleted" }</em> },
                                Some(Quote::Missing) => html! { <em>{ "Not available" }</em> },
                                Some(Quote::Loading) | None => html! { <em>{ "Loading…" }</em> },
                            }
                        }</p>
                    </div>
                }
            </div>
            if !props.citations.is_empty() {
                <p class="sources">
                    <span class="sources-label">{ "Sources:" }</span>
                    { for props.citations.iter().map(|c| {
                        let seq = c.seq;
                        html! {
                            <button type="button" class="source" title={web::local_date_time(c.at)}
                                onclick={open.reform(move |_: MouseEvent| seq)}>
                                { format!("[{}] {}", c.n, c.author) }
                            </button>
                        }
                    }) }
                </p>
            }
        </>
    }
}
