//! A `PUT` of a file that reports how much has gone: `fetch` has no upload progress, so the
//! bytes of an attachment go through `XMLHttpRequest`. Its answer is read like every other API
//! answer ([`crate::api::read_answer`]).

use js_sys::{Function, Promise};
use serde::de::DeserializeOwned;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, ProgressEvent, XmlHttpRequest};

use crate::api::{read_answer, ApiError};

/// A `PUT` under way. [`Put::abort`] (from a clone of its request) ends it early.
pub struct Put {
    xhr: XmlHttpRequest,
    done: JsFuture,
    _progress: Closure<dyn FnMut(ProgressEvent)>,
    _end: Closure<dyn FnMut()>,
    finished: bool,
}

impl Put {
    /// Starts sending `body` to `url`; `on_progress` hears the bytes sent so far.
    pub fn start(
        url: &str,
        body: &Blob,
        mut on_progress: impl FnMut(u64) + 'static,
    ) -> Result<Put, ApiError> {
        let fail = |_| ApiError::network();
        let xhr = XmlHttpRequest::new().map_err(fail)?;
        xhr.open_with_async("PUT", url, true).map_err(fail)?;
        let _ = xhr.set_request_header("Accept", "application/json");
        // The room decides what a file is by its bytes; the body claims nothing.
        let _ = xhr.set_request_header("Content-Type", "application/octet-stream");
        let progress = Closure::<dyn FnMut(ProgressEvent)>::new(move |e: ProgressEvent| {
            on_progress(e.loaded() as u64);
        });
        xhr.upload()
            .map_err(fail)?
            .set_onprogress(Some(progress.as_ref().unchecked_ref()));
        let mut resolve: Option<Function> = None;
        let promise = Promise::new(&mut |done, _| resolve = Some(done));
        let resolve = resolve.ok_or_else(ApiError::network)?;
        // `loadend` follows every ending: answered, failed, aborted or timed out.
        let end = Closure::<dyn FnMut()>::new(move || {
            let _ = resolve.call0(&JsValue::NULL);
        });
        xhr.set_onloadend(Some(end.as_ref().unchecked_ref()));
        xhr.send_with_opt_blob(Some(body)).map_err(fail)?;
        Ok(Put {
            xhr,
            done: JsFuture::from(promise),
            _progress: progress,
            _end: end,
            finished: false,
        })
    }

    /// The request, to abort it while [`Put::finish`] waits.
    pub fn request(&self) -> XmlHttpRequest {
        self.xhr.clone()
    }

    /// Waits for the answer: the body as `T`, or the room's error (status 0 when there was no
    /// answer, aborted included).
    pub async fn finish<T: DeserializeOwned>(mut self) -> Result<T, ApiError> {
        let _ = (&mut self.done).await;
        self.finished = true;
        let status = self.xhr.status().unwrap_or(0);
        let text = self.xhr.response_text().ok().flatten().unwrap_or_default();
        read_answer(status, (200..300).contains(&status), &text)
    }
}

impl Drop for Put {
    fn drop(&mut self) {
        // Its handlers are about to be freed: the request must not call them any more.
        if let Ok(upload) = self.xhr.upload() {
            upload.set_onprogress(None);
        }
        self.xhr.set_onloadend(None);
        if !self.finished {
            let _ = self.xhr.abort();
        }
    }
}
