//! The assistant's controls under an answer: its state (waiting, writing, stopped, failed with
//! Retry), Stop, Regenerate, the version switcher, thumbs up/down with an optional reason, and
//! how the answer was produced.

use shared::protocol::{AnswerState, Seq, Vote};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::rows::{AnswerRow, RowAction};

/// Props of [`AnswerBar`].
#[derive(Properties, PartialEq)]
pub struct AnswerBarProps {
    /// The answer message.
    pub seq: Seq,
    /// Its assistant state.
    pub answer: AnswerRow,
    /// The version being shown (1-based; the current one unless the user switched).
    pub shown: u32,
    /// Show another version.
    pub on_show: Callback<u32>,
    /// Stop, regenerate, rate.
    pub on_action: Callback<RowAction>,
}

/// `<div class="answer-bar" data-state>`.
#[function_component]
pub fn AnswerBar(props: &AnswerBarProps) -> Html {
    let a = &props.answer;
    let seq = props.seq;
    let asking_reason = use_state(|| false);
    let reason = use_node_ref();

    let act = |action: RowAction| {
        let on_action = props.on_action.clone();
        Callback::from(move |_: MouseEvent| on_action.emit(action.clone()))
    };
    let vote = |v: Vote| {
        let on_action = props.on_action.clone();
        let mine = a.mine;
        let asking_reason = asking_reason.clone();
        Callback::from(move |_: MouseEvent| {
            // Pressing the same thumb again withdraws the vote.
            let v = if mine == Some(v) { Vote::None } else { v };
            on_action.emit(RowAction::Rate(seq, v, None));
            asking_reason.set(v == Vote::Down);
        })
    };
    let send_reason = {
        let on_action = props.on_action.clone();
        let asking_reason = asking_reason.clone();
        let reason = reason.clone();
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if let Some(input) = reason.cast::<HtmlInputElement>() {
                let text = input.value();
                if !text.trim().is_empty() {
                    on_action.emit(RowAction::Rate(seq, Vote::Down, Some(text)));
                }
            }
            asking_reason.set(false);
        })
    };
    let skip_reason = {
        let asking_reason = asking_reason.clone();
        Callback::from(move |_: MouseEvent| asking_reason.set(false))
    };

    let state = match a.state {
        AnswerState::Queued => {
            html! { <span class="answer-state">{ "Waiting for the assistant…" }</span> }
        }
        AnswerState::Streaming => {
            html! { <span class="answer-state writing">{ "Writing…" }</span> }
        }
        AnswerState::Stopped => html! { <span class="answer-state">{ "Stopped" }</span> },
        AnswerState::Failed => html! {
            <span class="answer-state failed" role="alert">
                { "The assistant could not answer: " }
                { a.error.clone().unwrap_or_default() }
            </span>
        },
        AnswerState::Done | AnswerState::Unknown => Html::default(),
    };
    let versions = a.previous.len() as u32 + 1;
    let switcher = if versions > 1 {
        let prev = {
            let on_show = props.on_show.clone();
            let shown = props.shown;
            Callback::from(move |_: MouseEvent| on_show.emit(shown.saturating_sub(1).max(1)))
        };
        let next = {
            let on_show = props.on_show.clone();
            let shown = props.shown;
            Callback::from(move |_: MouseEvent| on_show.emit((shown + 1).min(versions)))
        };
        html! {
            <span class="versions">
                <button type="button" aria-label="Previous version" disabled={props.shown <= 1}
                    onclick={prev}>{ "‹" }</button>
                <span class="version">{ format!("{}/{}", props.shown, versions) }</span>
                <button type="button" aria-label="Next version" disabled={props.shown >= versions}
                    onclick={next}>{ "›" }</button>
            </span>
        }
    } else {
        Html::default()
    };
    let (up, down) = a.tally;
    html! {
        <div class="answer-bar" data-state={state_name(a.state)}>
            { state }
            { switcher }
            if a.can_stop {
                <button type="button" onclick={act(RowAction::Stop(seq))}>{ "Stop" }</button>
            }
            if a.can_regenerate {
                <button type="button" onclick={act(RowAction::Regenerate(seq))}>
                    { if a.state == AnswerState::Failed { "Retry" } else { "Regenerate" } }
                </button>
            }
            if a.can_rate {
                <span class="votes">
                    <button type="button" class="vote" aria-label="Helpful"
                        aria-pressed={(a.mine == Some(Vote::Up)).to_string()}
                        onclick={vote(Vote::Up)}>{ format!("👍 {up}") }</button>
                    <button type="button" class="vote" aria-label="Not helpful"
                        aria-pressed={(a.mine == Some(Vote::Down)).to_string()}
                        onclick={vote(Vote::Down)}>{ format!("👎 {down}") }</button>
                </span>
            }
            if *asking_reason {
                <form class="reason" onsubmit={send_reason}>
                    <input ref={reason} aria-label="What was wrong?" maxlength="500"
                        placeholder="What was wrong? (optional)" />
                    <button type="submit">{ "Send" }</button>
                    <button type="button" onclick={skip_reason}>{ "Skip" }</button>
                </form>
            }
            if let Some(meta) = &a.meta {
                <span class="answer-meta">{ meta }</span>
            }
        </div>
    }
}

/// The `data-state` value of an answer's state.
pub(crate) fn state_name(state: AnswerState) -> &'static str {
    match state {
        AnswerState::Queued => "queued",
        AnswerState::Streaming => "streaming",
        AnswerState::Done => "done",
        AnswerState::Stopped => "stopped",
        AnswerState::Failed => "failed",
        AnswerState::Unknown => "unknown",
    }
}
