//! Files on their way: the chips of the message being written (name, size, a progress bar,
//! where it stands, Cancel), and the messages already sent that wait for their files. Both
//! subscribe to the room's [`Uploads`], so progress re-renders only them.

use shared::limits::human_bytes;
use yew::prelude::*;

use crate::upload::Target;
use crate::uploads::{ChipView, Uploads};

/// Props of [`UploadList`].
#[derive(Properties, PartialEq)]
pub struct UploadsProps {
    /// The room's uploads.
    pub uploads: Uploads,
    /// The timeline or a thread.
    pub target: Target,
    /// Show the messages sent and waiting, not the chips being attached.
    #[prop_or_default]
    pub sent: bool,
}

/// Re-renders the component whenever the uploads change.
#[hook]
fn use_uploads(uploads: &Uploads) {
    let update = use_force_update();
    let uploads = uploads.clone();
    use_effect_with(uploads, move |uploads| {
        let subscription = uploads.subscribe(Callback::from(move |()| update.force_update()));
        move || drop(subscription)
    });
}

fn chip(c: &ChipView, uploads: &Uploads) -> Html {
    let cancel = {
        let (uploads, id) = (uploads.clone(), c.upload_id.clone());
        Callback::from(move |_: MouseEvent| uploads.cancel(&id))
    };
    let state = if c.failed {
        "failed"
    } else if c.done {
        "done"
    } else {
        "sending"
    };
    html! {
        <li key={c.upload_id.clone()} class="chip" data-state={state} role="group"
            aria-label={c.name.clone()}>
            if let Some(src) = &c.preview {
                <img class="chip-preview" src={src.clone()} alt="" />
            }
            <span class="chip-label">
                <span class="chip-name" title={c.name.clone()}>{ &c.name }</span>
                <span class="chip-size muted">{ human_bytes(c.size) }</span>
            </span>
            <progress aria-label={format!("Uploading {}", c.name)}
                max={c.size.max(1).to_string()} value={c.sent.to_string()} />
            <span class={classes!("chip-status", c.failed.then_some("field-error"))}
                role={c.failed.then_some("alert")}>{ &c.status }</span>
            <button type="button" class="chip-cancel" onclick={cancel}>{ "Cancel" }</button>
        </li>
    }
}

/// The chips of the message being written (`sent` false), or the messages sent and waiting
/// for their files to be stored (`sent`). One component for both: each component costs the
/// app's download its own copy of Yew's lifecycle.
#[function_component]
pub fn UploadList(props: &UploadsProps) -> Html {
    use_uploads(&props.uploads);
    if props.sent {
        return outgoing(&props.uploads, props.target);
    }
    let chips = props.uploads.composing(props.target);
    let notice = props.uploads.notice();
    if chips.is_empty() && notice.is_none() {
        return Html::default();
    }
    html! {
        <div class="chips-box">
            if let Some(notice) = notice {
                <p class="field-error" role="alert">{ notice }</p>
            }
            <ul class="chips" aria-label="Attachments">
                { for chips.iter().map(|c| chip(c, &props.uploads)) }
            </ul>
        </div>
    }
}

fn outgoing(uploads: &Uploads, target: Target) -> Html {
    let drafts = uploads.outgoing(target);
    if drafts.is_empty() {
        return Html::default();
    }
    html! {
        <ol class="outgoing" aria-label="Sending with files">
            { for drafts.iter().map(|d| html! {
                <li key={d.client_id.clone()} class="outgoing-message" data-client-id={d.client_id.clone()}>
                    if !d.text.trim().is_empty() {
                        <p class="outgoing-text">{ &d.text }</p>
                    }
                    <span class="sending">{ "Sends when its files are uploaded" }</span>
                    <ul class="chips" aria-label="Attachments">
                        { for d.chips.iter().map(|c| chip(c, uploads)) }
                    </ul>
                </li>
            }) }
        </ol>
    }
}
