//! The room's "Files" panel: every file shared in the room, newest first, filtered by kind and
//! paged with "Load more"; an entry opens its message in context (the panel the answers'
//! sources use). The paging rules are [`crate::files`]'s.

use std::cell::RefCell;
use std::rc::Rc;

use shared::limits::human_bytes;
use shared::media::Kind;
use shared::protocol::http::FileEntry;
use shared::protocol::Seq;
use yew::prelude::*;

use crate::api;
use crate::files::{kind_param, Filter, Pages};
use crate::media::{kind_icon, kind_name, thumb_url};
use crate::web;

/// Props of [`FilesPanel`].
#[derive(Properties, PartialEq)]
pub struct FilesPanelProps {
    /// The room.
    pub slug: AttrValue,
    /// Open a message in context.
    pub on_open: Callback<Seq>,
    /// Close the panel.
    pub on_close: Callback<()>,
}

/// Asks for the next page of every list of `pages` not finished yet.
fn load(
    slug: AttrValue,
    pages: Rc<RefCell<Pages>>,
    busy: UseStateHandle<bool>,
    error: UseStateHandle<Option<String>>,
    redraw: Callback<()>,
) {
    let (filter, wanted) = {
        let p = pages.borrow();
        (p.filter(), p.wanted())
    };
    if wanted.is_empty() {
        return;
    }
    busy.set(true);
    wasm_bindgen_futures::spawn_local(async move {
        for (lane, kind, before) in wanted {
            match api::files(&slug, kind.map(kind_param), before).await {
                Ok(page) => {
                    let mut p = pages.borrow_mut();
                    // Answers for a filter no longer shown are dropped.
                    if p.filter() == filter {
                        p.add(lane, before, page);
                    }
                }
                Err(e) => {
                    error.set(Some(e.message));
                    break;
                }
            }
        }
        busy.set(false);
        redraw.emit(());
    });
}

fn entry(slug: &str, e: &FileEntry, on_open: &Callback<Seq>) -> Html {
    let a = &e.attachment;
    let seq = e.message;
    let open = on_open.reform(move |_: MouseEvent| seq);
    let preview = matches!(a.kind, Kind::Image | Kind::Video) && a.thumb;
    html! {
        <li key={a.id.clone()} class="file-entry" data-kind={kind_param(a.kind)} data-seq={seq.to_string()}>
            <button type="button" class="file-open" onclick={open}
                title="Show the message it was shared in">
                if preview {
                    <img src={thumb_url(slug, &a.id)} alt="" loading="lazy" width="48" height="48" />
                } else {
                    <span class="file-icon" aria-hidden="true">{ kind_icon(a.kind) }</span>
                }
                <span class="file-entry-text">
                    <span class="file-name">{ &a.name }</span>
                    <span class="muted">
                        { format!("{} · {} · {} · {}", kind_name(a.kind), human_bytes(a.size),
                            e.author.name, web::local_date(e.at)) }
                        if e.thread.is_some() { { " · in a thread" } }
                    </span>
                </span>
            </button>
        </li>
    }
}

/// `<aside aria-label="Files">`.
#[function_component]
pub fn FilesPanel(props: &FilesPanelProps) -> Html {
    let filter = use_state(|| Filter::All);
    let pages = use_mut_ref(|| Pages::new(Filter::All));
    let busy = use_state(|| false);
    let error = use_state(|| None::<String>);
    let update = use_force_update();
    let redraw = Callback::from(move |()| update.force_update());
    {
        let (pages, busy, error, redraw) =
            (pages.clone(), busy.clone(), error.clone(), redraw.clone());
        let slug = props.slug.clone();
        use_effect_with(*filter, move |filter| {
            *pages.borrow_mut() = Pages::new(*filter);
            error.set(None);
            load(slug, pages, busy, error, redraw);
        });
    }
    let more = {
        let (pages, busy, error, redraw) =
            (pages.clone(), busy.clone(), error.clone(), redraw.clone());
        let slug = props.slug.clone();
        Callback::from(move |_: MouseEvent| {
            load(
                slug.clone(),
                pages.clone(),
                busy.clone(),
                error.clone(),
                redraw.clone(),
            )
        })
    };
    let close = props.on_close.reform(|_: MouseEvent| ());
    let p = pages.borrow();
    let shown = p.shown();
    html! {
        <aside class="files-panel" aria-label="Files">
            <header>
                <h2>{ "Files" }</h2>
                <button type="button" onclick={close} aria-label="Close files">{ "×" }</button>
            </header>
            <nav class="tabs file-filters" aria-label="Kinds of file">
                { for Filter::ALL.into_iter().map(|f| {
                    let filter = filter.clone();
                    html! {
                        <button type="button" aria-pressed={(*filter == f).to_string()}
                            onclick={move |_: MouseEvent| filter.set(f)}>{ f.label() }</button>
                    }
                }) }
            </nav>
            if let Some(message) = &*error {
                <p class="field-error" role="alert">{ message }</p>
            }
            if !p.started() {
                <p class="muted">{ "Loading…" }</p>
            } else if shown.is_empty() && !p.more() {
                <p class="muted">{ "No files here yet." }</p>
            }
            <ol class="file-list">
                { for shown.iter().map(|e| entry(&props.slug, e, &props.on_open)) }
            </ol>
            if p.started() && p.more() {
                <button type="button" onclick={more} disabled={*busy}>{ "Load more" }</button>
            }
        </aside>
    }
}
