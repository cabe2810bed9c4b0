//! Answers only this user sees ("catch me up", thread summaries): cards labelled "Only visible
//! to you", their text rendered like an answer's, with its state and a Dismiss.

use std::rc::Rc;

use shared::protocol::{AnswerState, Citation, PrivateAnswer, PrivateKind};
use yew::prelude::*;

use crate::components::answer::state_name;
use crate::components::citations::AnswerText;
use crate::format::coverage;

/// Props of [`PrivateAnswers`].
#[derive(Properties, PartialEq)]
pub struct PrivateAnswersProps {
    /// Oldest first.
    pub answers: Vec<PrivateAnswer>,
    /// Hide one.
    pub on_dismiss: Callback<u64>,
}

/// `<div class="private-answers" aria-live="polite">`, present even when empty: a live region
/// must be in the page before what it announces. It is busy while an answer is being written,
/// so a screen reader reads the answer once, when it is finished, not every streamed word.
/// Renders again only when an answer changed (its props are compared).
#[function_component]
pub fn PrivateAnswers(props: &PrivateAnswersProps) -> Html {
    let busy = props.answers.iter().any(|a| a.state.is_active());
    html! {
        <div class="private-answers" aria-live="polite" aria-busy={busy.to_string()}>
            { for props.answers.iter().map(|a| card(a, &props.on_dismiss)) }
        </div>
    }
}

/// One answer's card.
fn card(a: &PrivateAnswer, on_dismiss: &Callback<u64>) -> Html {
    let citations: Rc<[Citation]> = a
        .meta
        .as_ref()
        .map_or(&[][..], |m| m.citations.as_slice())
        .into();
    let html = shared::markdown::render(&a.text);
    let html = AttrValue::from(crate::cite::link_citations(
        &html,
        &citations,
        &crate::web::local_date,
    ));
    let id = a.id;
    let dismiss = on_dismiss.reform(move |_: MouseEvent| id);
    let kind = match a.kind {
        PrivateKind::CatchUp => "Catch-up",
        PrivateKind::Thread => "Thread summary",
        PrivateKind::Unknown => "Assistant",
    };
    let state = match a.state {
        AnswerState::Queued => {
            html! { <p class="answer-state">{ "Waiting for the assistant…" }</p> }
        }
        AnswerState::Streaming => html! { <p class="answer-state writing">{ "Writing…" }</p> },
        AnswerState::Stopped => html! { <p class="answer-state">{ "Stopped" }</p> },
        AnswerState::Failed => html! {
            <p class="answer-state failed">
                { "The assistant could not answer: " }
                { a.error.as_ref().map(|e| e.message.clone()).unwrap_or_default() }
            </p>
        },
        AnswerState::Done | AnswerState::Unknown => Html::default(),
    };
    let covers = (a.state != AnswerState::Queued)
        .then(|| coverage(a.kind == PrivateKind::Thread, a.considered, a.total))
        .flatten();
    let streaming = a.state == AnswerState::Streaming;
    html! {
        <article key={a.id.to_string()} class="private-answer" data-id={a.id.to_string()} data-state={state_name(a.state)}
            aria-label={format!("{kind}, only visible to you")}>
            <header>
                <span class="private-badge">{ "Only visible to you" }</span>
                <span class="private-kind">{ kind }</span>
                <button type="button" class="dismiss" onclick={dismiss}>{ "Dismiss" }</button>
            </header>
            if !a.text.is_empty() {
                <AnswerText {html} {citations}
                    class={classes!(streaming.then_some("streaming"))} />
            }
            { state }
            if let Some(note) = covers {
                <p class="coverage">{ note }</p>
            }
        </article>
    }
}
