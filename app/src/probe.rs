//! Measuring a file in the browser before it is announced: an image's or video's size, a
//! video's or audio's playing time, and a thumbnail (an image scaled to
//! [`THUMB_MAX_SIDE`](crate::upload::THUMB_MAX_SIDE), or a video's frame), encoded as WebP (JPEG
//! where the browser cannot) within [`THUMB_MAX_BYTES`]. The Worker has no decoder: what it
//! shows before a file loads is what the sender's browser measured here. Every step has a
//! deadline and every failure only means less is known: a file that cannot be measured is
//! still sent.

use js_sys::{Function, Promise};
use shared::limits::THUMB_MAX_BYTES;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, CanvasRenderingContext2d, Event, EventTarget, HtmlCanvasElement, HtmlImageElement,
    HtmlMediaElement, HtmlVideoElement, Url,
};

use crate::upload::{thumb_size, Measured};
use crate::web::window;

/// How long one step (decoding, reading metadata, seeking) may take.
const STEP_MS: i32 = 10_000;

/// What measuring found.
#[derive(Default)]
pub struct Probe {
    /// Sizes and playing time.
    pub measured: Measured,
    /// A thumbnail to send, when one was made (a small image is its own).
    pub thumb: Option<Blob>,
}

/// Measures `file`, whose type the browser guesses as `mime`.
pub async fn probe(file: &Blob, mime: &str) -> Probe {
    let Ok(url) = Url::create_object_url_with_blob(file) else {
        return Probe::default();
    };
    let found = if mime.starts_with("image/") && mime != "image/svg+xml" {
        image(&url, file.size()).await
    } else if mime.starts_with("video/") {
        video(&url).await
    } else if mime.starts_with("audio/") {
        audio(&url).await
    } else {
        None
    };
    let _ = Url::revoke_object_url(&url);
    found.unwrap_or_default()
}

/// Waits for the first of `events` on `target`, at most `ms`: its type, or `None`.
async fn first_of(target: &EventTarget, events: &[&str], ms: i32) -> Option<String> {
    let mut resolve: Option<Function> = None;
    let promise = Promise::new(&mut |done, _| resolve = Some(done));
    let resolve = resolve?;
    for name in events {
        let _ = target.add_event_listener_with_callback(name, &resolve);
    }
    let timer = window()
        .set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms)
        .ok();
    let fired = JsFuture::from(promise).await.ok();
    for name in events {
        let _ = target.remove_event_listener_with_callback(name, &resolve);
    }
    if let Some(timer) = timer {
        window().clear_timeout_with_handle(timer);
    }
    fired
        .and_then(|v| v.dyn_into::<Event>().ok())
        .map(|e| e.type_())
}

async fn image(url: &str, bytes: f64) -> Option<Probe> {
    let img = HtmlImageElement::new().ok()?;
    img.set_src(url);
    if first_of(&img, &["load", "error"], STEP_MS).await.as_deref() != Some("load") {
        return None;
    }
    let (width, height) = (img.natural_width(), img.natural_height());
    let measured = Measured {
        width: Some(width).filter(|w| *w > 0),
        height: Some(height).filter(|h| *h > 0),
        duration_ms: None,
    };
    let (w, h) = thumb_size(width, height);
    // An image already as small as a thumbnail shows as itself (a small GIF keeps moving).
    let thumb = if (w, h) == (width, height) && bytes <= THUMB_MAX_BYTES as f64 {
        None
    } else {
        let canvas = canvas(w, h)?;
        context(&canvas)?
            .draw_image_with_html_image_element_and_dw_and_dh(&img, 0.0, 0.0, w.into(), h.into())
            .ok()?;
        encode(&canvas).await
    };
    Some(Probe { measured, thumb })
}

/// A media element reading `url`'s metadata only.
fn media(tag: &str, url: &str) -> Option<HtmlMediaElement> {
    let el: HtmlMediaElement = window()
        .document()?
        .create_element(tag)
        .ok()?
        .dyn_into()
        .ok()?;
    el.set_muted(true);
    el.set_preload("metadata");
    el.set_src(url);
    Some(el)
}

/// The playing time, in milliseconds. A recording made by `MediaRecorder` states none (its
/// duration reads as infinite) until the element has looked at its end, so it is sent there
/// once to find out.
async fn duration_ms(el: &HtmlMediaElement) -> Option<u64> {
    let mut d = el.duration();
    if d.is_infinite() {
        el.set_current_time(1e101);
        let _ = first_of(el, &["durationchange", "seeked", "error"], STEP_MS).await;
        d = el.duration();
        el.set_current_time(0.0);
    }
    (d.is_finite() && d > 0.0).then(|| (d * 1000.0).round() as u64)
}

async fn audio(url: &str) -> Option<Probe> {
    let el = media("audio", url)?;
    if first_of(&el, &["loadedmetadata", "error"], STEP_MS)
        .await
        .as_deref()
        != Some("loadedmetadata")
    {
        return None;
    }
    let measured = Measured {
        duration_ms: duration_ms(&el).await,
        ..Measured::default()
    };
    el.remove_attribute("src").ok()?;
    Some(Probe {
        measured,
        thumb: None,
    })
}

async fn video(url: &str) -> Option<Probe> {
    let el = media("video", url)?;
    if first_of(&el, &["loadedmetadata", "error"], STEP_MS)
        .await
        .as_deref()
        != Some("loadedmetadata")
    {
        return None;
    }
    let video: &HtmlVideoElement = el.unchecked_ref();
    let (width, height) = (video.video_width(), video.video_height());
    let duration_ms = duration_ms(&el).await;
    let measured = Measured {
        width: Some(width).filter(|w| *w > 0),
        height: Some(height).filter(|h| *h > 0),
        duration_ms,
    };
    // The poster: a frame a little way in (the very first is often black), once decoded.
    let at = duration_ms.map_or(0.0, |d| (d as f64 / 1000.0 / 4.0).min(1.0));
    el.set_current_time(at);
    let _ = first_of(&el, &["seeked", "error"], STEP_MS).await;
    let thumb = if el.ready_state() >= HtmlMediaElement::HAVE_CURRENT_DATA && width > 0 {
        let (w, h) = thumb_size(width, height);
        poster(video, w, h).await
    } else {
        None
    };
    el.remove_attribute("src").ok()?;
    Some(Probe { measured, thumb })
}

async fn poster(video: &HtmlVideoElement, w: u32, h: u32) -> Option<Blob> {
    let canvas = canvas(w, h)?;
    context(&canvas)?
        .draw_image_with_html_video_element_and_dw_and_dh(video, 0.0, 0.0, w.into(), h.into())
        .ok()?;
    encode(&canvas).await
}

fn canvas(w: u32, h: u32) -> Option<HtmlCanvasElement> {
    let canvas: HtmlCanvasElement = window()
        .document()?
        .create_element("canvas")
        .ok()?
        .dyn_into()
        .ok()?;
    canvas.set_width(w.max(1));
    canvas.set_height(h.max(1));
    Some(canvas)
}

fn context(canvas: &HtmlCanvasElement) -> Option<CanvasRenderingContext2d> {
    canvas.get_context("2d").ok()??.dyn_into().ok()
}

/// The canvas as WebP, else JPEG, at a quality that fits [`THUMB_MAX_BYTES`].
async fn encode(canvas: &HtmlCanvasElement) -> Option<Blob> {
    for (kind, quality) in [
        ("image/webp", 0.8),
        ("image/jpeg", 0.8),
        ("image/jpeg", 0.5),
    ] {
        let encoded = Promise::new(&mut |resolve, _| {
            let _ = canvas.to_blob_with_type_and_encoder_options(
                &resolve,
                kind,
                &JsValue::from_f64(quality),
            );
        });
        let Some(blob) = JsFuture::from(encoded)
            .await
            .ok()
            .and_then(|b| b.dyn_into::<Blob>().ok())
        else {
            continue;
        };
        // A browser that cannot write the type gives PNG instead, which the room refuses.
        if blob.type_() == kind && blob.size() <= THUMB_MAX_BYTES as f64 {
            return Some(blob);
        }
    }
    None
}
