//! The card under a message for its first link: the site, the title (a link out, marked as
//! the user's and not followed), the description and the page's image, which the Worker
//! fetched and serves from this origin (the reader's browser never contacts the linked site
//! until they follow the link). Nothing shows while it loads, nor when there is no preview.

use std::rc::Rc;

use yew::prelude::*;

use crate::previews::preview;

/// Props of [`LinkPreviewCard`].
#[derive(Properties, PartialEq)]
pub struct LinkPreviewProps {
    /// The link.
    pub url: Rc<str>,
}

/// `<aside class="link-preview">`.
#[function_component]
pub fn LinkPreviewCard(props: &LinkPreviewProps) -> Html {
    let update = use_force_update();
    let ready = Callback::from(move |()| update.force_update());
    let Some(Some(p)) = preview(&props.url, ready) else {
        return Html::default();
    };
    // Only a same-origin path is shown as an image (the CSP would refuse anything else).
    let image = p
        .image
        .as_ref()
        .filter(|i| i.starts_with('/') && !i.starts_with("//"));
    let title = p.title.clone().unwrap_or_else(|| p.url.clone());
    html! {
        <aside class="link-preview" aria-label="Link preview">
            if let Some(src) = image {
                <img src={src.clone()} alt="" loading="lazy" decoding="async" />
            }
            <div class="link-preview-text">
                if let Some(site) = &p.site_name {
                    <span class="link-site muted">{ site }</span>
                }
                <a href={props.url.to_string()} target="_blank" rel="noopener nofollow ugc">{ title }</a>
                if let Some(description) = &p.description {
                    <p class="link-description">{ description }</p>
                }
            </div>
        </aside>
    }
}
