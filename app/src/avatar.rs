//! Avatars are resized in the browser, not in the Worker: an image larger than
//! [`UPLOAD_MAX_SIDE`] pixels a side (or than the server's byte limit) is drawn onto a canvas at
//! that size and sent as JPEG, so a phone photo uploads as a small file and the Worker only
//! checks bytes, with no image decoder in it.

/// The largest side an uploaded avatar keeps (the server accepts up to 1024).
pub const UPLOAD_MAX_SIDE: u32 = 512;

/// The target size for an image of `width` × `height`: unchanged when it fits in `max`, else
/// scaled down to fit, keeping its proportions (never below 1 pixel).
pub fn fit(width: u32, height: u32, max: u32) -> (u32, u32) {
    let longest = width.max(height);
    if longest <= max || longest == 0 {
        return (width, height);
    }
    let scale = f64::from(max) / f64::from(longest);
    let side = |v: u32| ((f64::from(v) * scale).round() as u32).max(1);
    (side(width), side(height))
}

/// The file to upload: the original when it is small enough, else a downscaled JPEG. The error
/// is a message for the user.
#[cfg(target_arch = "wasm32")]
pub async fn prepare(file: &web_sys::File) -> Result<web_sys::Blob, String> {
    use js_sys::Promise;
    use shared::profile::AVATAR_MAX_BYTES;
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{Blob, CanvasRenderingContext2d, HtmlCanvasElement, HtmlImageElement, Url};

    use crate::web::window;

    let unreadable = || "That file is not an image this browser can read.".to_owned();
    let url = Url::create_object_url_with_blob(file).map_err(|_| unreadable())?;
    let img = HtmlImageElement::new().map_err(|_| unreadable())?;
    let loaded = Promise::new(&mut |resolve, reject| {
        img.set_onload(Some(&resolve));
        img.set_onerror(Some(&reject));
    });
    img.set_src(&url);
    let result = JsFuture::from(loaded).await;
    let _ = Url::revoke_object_url(&url);
    result.map_err(|_| unreadable())?;
    let (width, height) = (img.natural_width(), img.natural_height());
    let (w, h) = fit(width, height, UPLOAD_MAX_SIDE);
    if (w, h) == (width, height) && file.size() <= AVATAR_MAX_BYTES as f64 {
        return Ok(file.clone().into());
    }
    let failed = || "The image could not be resized; try a smaller one.".to_owned();
    let canvas: HtmlCanvasElement = window()
        .document()
        .and_then(|d| d.create_element("canvas").ok())
        .and_then(|c| c.dyn_into().ok())
        .ok_or_else(failed)?;
    canvas.set_width(w);
    canvas.set_height(h);
    let context: CanvasRenderingContext2d = canvas
        .get_context("2d")
        .ok()
        .flatten()
        .and_then(|c| c.dyn_into().ok())
        .ok_or_else(failed)?;
    context
        .draw_image_with_html_image_element_and_dw_and_dh(&img, 0.0, 0.0, w.into(), h.into())
        .map_err(|_| failed())?;
    let encoded = Promise::new(&mut |resolve, _reject| {
        let _ = canvas.to_blob_with_type_and_encoder_options(
            &resolve,
            "image/jpeg",
            &wasm_bindgen::JsValue::from_f64(0.9),
        );
    });
    JsFuture::from(encoded)
        .await
        .ok()
        .and_then(|b| b.dyn_into::<Blob>().ok())
        .ok_or_else(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_image_that_fits_keeps_its_size() {
        assert_eq!(fit(300, 200, 512), (300, 200));
        assert_eq!(fit(512, 512, 512), (512, 512));
    }

    #[test]
    fn a_large_image_is_scaled_to_fit_keeping_its_proportions() {
        assert_eq!(fit(4000, 3000, 512), (512, 384));
        assert_eq!(fit(1000, 4000, 512), (128, 512));
        assert_eq!(fit(10_000, 1, 512), (512, 1), "never below one pixel");
    }
}
