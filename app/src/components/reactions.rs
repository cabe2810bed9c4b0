//! A message's reactions: one toggle per emoji (count, and who reacted on hover) and a small
//! picker to add one.

use shared::protocol::Seq;
use yew::prelude::*;

use crate::rows::{ReactionView, RowAction, QUICK_REACTIONS};

/// Props of [`Reactions`].
#[derive(Properties, PartialEq)]
pub struct ReactionsProps {
    /// The message.
    pub seq: Seq,
    /// Its reactions.
    pub reactions: Vec<ReactionView>,
    /// Whether we may react.
    pub can_react: bool,
    /// Where toggles go.
    pub on_action: Callback<RowAction>,
}

/// `<div class="reactions">`.
#[function_component]
pub fn Reactions(props: &ReactionsProps) -> Html {
    let picking = use_state(|| false);
    let seq = props.seq;
    let toggle = |emoji: String, add: bool| {
        props
            .on_action
            .reform(move |_: MouseEvent| RowAction::React(seq, emoji.clone(), add))
    };
    let open_picker = {
        let picking = picking.clone();
        Callback::from(move |_: MouseEvent| picking.set(!*picking))
    };
    html! {
        <div class="reactions">
            { for props.reactions.iter().map(|r| html! {
                <button type="button" class={classes!("reaction", r.mine.then_some("mine"))}
                    title={r.who.clone()} aria-pressed={r.mine.to_string()}
                    disabled={!props.can_react}
                    onclick={toggle(r.emoji.clone(), !r.mine)}>
                    { &r.emoji }{ " " }{ r.count }
                </button>
            }) }
            if props.can_react {
                <button type="button" class="react" aria-label="Add a reaction" aria-expanded={picking.to_string()}
                    onclick={open_picker}>{ "☺+" }</button>
                if *picking {
                    <span class="picker" role="group" aria-label="Reactions">
                        { for QUICK_REACTIONS.iter().map(|emoji| {
                            let mine = props.reactions.iter().any(|r| r.emoji == *emoji && r.mine);
                            let choose = {
                                let picking = picking.clone();
                                let emit = toggle((*emoji).to_owned(), !mine);
                                Callback::from(move |e: MouseEvent| {
                                    picking.set(false);
                                    emit.emit(e);
                                })
                            };
                            html! { <button type="button" onclick={choose}>{ *emoji }</button> }
                        }) }
                    </span>
                }
            }
        </div>
    }
}
