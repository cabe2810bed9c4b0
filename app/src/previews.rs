//! Link previews, asked for once per link per page load: every row showing the same link shares
//! one request and its answer (none, on a 204 or an error: the card is simply left out), and a
//! row rendered again never asks again.

use std::cell::RefCell;
use std::rc::Rc;

use shared::protocol::http::LinkPreview;
use yew::Callback;

enum Entry {
    /// Asked; these rows wait for the answer.
    Asking(Vec<Callback<()>>),
    /// The answer (`None`: no card).
    Known(Option<Rc<LinkPreview>>),
}

thread_local! {
    // A list searched by link: a page shows a few dozen links at most, and a map would add
    // its own code to the download.
    static PREVIEWS: RefCell<Vec<(String, Entry)>> = const { RefCell::new(Vec::new()) };
}

/// The preview of `url` if known (`Some(None)`: there is none); else `None`, and `ready` is
/// called once the answer is in.
pub fn preview(url: &str, ready: Callback<()>) -> Option<Option<Rc<LinkPreview>>> {
    let ask = PREVIEWS.with(|p| {
        let mut p = p.borrow_mut();
        match p.iter_mut().find(|(u, _)| u == url).map(|(_, e)| e) {
            Some(Entry::Known(known)) => Err(known.clone()),
            Some(Entry::Asking(waiting)) => {
                waiting.push(ready);
                Ok(false)
            }
            None => {
                p.push((url.to_owned(), Entry::Asking(vec![ready])));
                Ok(true)
            }
        }
    });
    match ask {
        Err(known) => Some(known),
        Ok(false) => None,
        Ok(true) => {
            let url = url.to_owned();
            wasm_bindgen_futures::spawn_local(async move {
                let known = crate::api::preview(&url).await.ok().flatten().map(Rc::new);
                let waiting = PREVIEWS.with(|p| {
                    let mut p = p.borrow_mut();
                    match p.iter_mut().find(|(u, _)| *u == url) {
                        Some((_, entry)) => match std::mem::replace(entry, Entry::Known(known)) {
                            Entry::Asking(waiting) => waiting,
                            Entry::Known(_) => Vec::new(),
                        },
                        None => Vec::new(),
                    }
                });
                for ready in waiting {
                    ready.emit(());
                }
            });
            None
        }
    }
}
