//! A message's files: images inline (their thumbnail, sized before it loads so the timeline
//! does not jump; a click opens the lightbox) with the classifier's labels as tags that search
//! the room, players for video and audio (an audio's transcript under it), and a card with a
//! download link for anything else.

use shared::limits::human_bytes;
use shared::media::Kind;
use shared::protocol::Attachment;
use wasm_bindgen::JsCast;
use yew::prelude::*;

use crate::media::{
    display_size, duration, file_url, inline_image_url, kind_icon, kind_name, label_text,
    tag_query, thumb_url, INLINE_MAX_SIDE,
};

/// What a message's files need from the room page, provided to every row.
#[derive(Clone, PartialEq)]
pub struct Media {
    /// The room (the files' addresses).
    pub slug: AttrValue,
    /// Open an image in the lightbox.
    pub open_image: Callback<Attachment>,
    /// Search the room (a tag's `tag:` query).
    pub search: Callback<String>,
}

fn size_attrs(a: &Attachment) -> (Option<String>, Option<String>) {
    match display_size(a, INLINE_MAX_SIDE) {
        Some((w, h)) => (Some(w.to_string()), Some(h.to_string())),
        None => (None, None),
    }
}

fn image(media: &Media, a: &Attachment) -> Html {
    let (width, height) = size_attrs(a);
    let open = {
        let (open, a) = (media.open_image.clone(), a.clone());
        Callback::from(move |e: MouseEvent| {
            // The lightbox gives focus back to what had it; a click does not focus a button
            // in every browser (Safari), so the button takes it first.
            if let Some(button) = e
                .current_target()
                .and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok())
            {
                let _ = button.focus();
            }
            open.emit(a.clone())
        })
    };
    html! {
        <li class="attachment image" data-kind="image">
            <button type="button" class="image-open" onclick={open} title="Open the image">
                <img src={inline_image_url(&media.slug, a)} alt={a.name.clone()}
                    {width} {height} loading="lazy" decoding="async" />
            </button>
            if !a.labels.is_empty() {
                <ul class="labels" aria-label="What the image shows">
                    { for a.labels.iter().map(|l| {
                        let search = media.search.clone();
                        let query = tag_query(&l.name);
                        let title = format!("Search this room for {query}");
                        html! {
                            <li>
                                <button type="button" class="tag" {title}
                                    onclick={move |_: MouseEvent| search.emit(query.clone())}>
                                    { label_text(l) }
                                </button>
                            </li>
                        }
                    }) }
                </ul>
            }
        </li>
    }
}

fn video(media: &Media, a: &Attachment) -> Html {
    let (width, height) = size_attrs(a);
    let poster = a.thumb.then(|| thumb_url(&media.slug, &a.id));
    html! {
        <li class="attachment video" data-kind="video">
            <video controls=true preload="metadata" src={file_url(&media.slug, &a.id)}
                {poster} {width} {height} aria-label={a.name.clone()} />
            { caption(media, a) }
        </li>
    }
}

fn audio(media: &Media, a: &Attachment) -> Html {
    html! {
        <li class="attachment audio" data-kind="audio">
            <audio controls=true preload="metadata" src={file_url(&media.slug, &a.id)}
                aria-label={a.name.clone()} />
            { caption(media, a) }
            if let Some(words) = a.transcript.as_ref().filter(|t| !t.trim().is_empty()) {
                <p class="transcript"><span class="muted">{ "Transcript: " }</span>{ words }</p>
            }
        </li>
    }
}

/// Name, size (and playing time) and a download link, under a player.
fn caption(media: &Media, a: &Attachment) -> Html {
    let mut facts = human_bytes(a.size);
    if let Some(ms) = a.duration_ms {
        facts = format!("{} · {facts}", duration(ms));
    }
    html! {
        <p class="attachment-caption">
            <a href={file_url(&media.slug, &a.id)} download={a.name.clone()}>{ &a.name }</a>
            <span class="muted">{ format!(" · {facts}") }</span>
        </p>
    }
}

fn card(media: &Media, a: &Attachment) -> Html {
    html! {
        <li class="attachment file-card" data-kind={crate::files::kind_param(a.kind)}>
            <span class="file-icon" aria-hidden="true" title={kind_name(a.kind)}>{ kind_icon(a.kind) }</span>
            <a class="file-name" href={file_url(&media.slug, &a.id)} download={a.name.clone()}>
                { &a.name }
            </a>
            <span class="file-size muted">{ format!("{} · {}", kind_name(a.kind), human_bytes(a.size)) }</span>
        </li>
    }
}

/// `<ul class="attachments">`: nothing without files. A function, not a component: the row
/// that calls it is already memoized, and each component costs the download its own copy of
/// Yew's lifecycle.
pub fn attachments(media: Option<&Media>, list: &[Attachment]) -> Html {
    let (Some(media), false) = (media, list.is_empty()) else {
        return Html::default();
    };
    html! {
        <ul class="attachments">
            { for list.iter().map(|a| match a.kind {
                Kind::Image => image(media, a),
                Kind::Video => video(media, a),
                Kind::Audio => audio(media, a),
                _ => card(media, a),
            }) }
        </ul>
    }
}
