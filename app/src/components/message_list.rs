//! The scrolling message list: renders a window of the newest loaded rows that grows as the
//! reader scrolls up (then loads older pages from the room), sticks to the bottom while the
//! reader is there, and otherwise offers a "New messages" button.

use std::cell::Cell;
use std::rc::Rc;

use web_sys::Element;
use yew::prelude::*;

use crate::components::message_row::MessageRow;
use crate::rows::{RowAction, RowView, Status};
use crate::scroll::{adjust, at_top, window_start, Adjust, AtTop, Metrics, WINDOW};

/// Props of [`MessageList`].
#[derive(Properties)]
pub struct MessageListProps {
    /// The rows, oldest first.
    pub rows: Rc<Vec<Rc<RowView>>>,
    /// Whether older messages exist.
    #[prop_or_default]
    pub has_more: bool,
    /// Row actions.
    pub on_action: Callback<RowAction>,
    /// Load the page before the oldest row.
    #[prop_or_default]
    pub on_load_older: Callback<()>,
    /// The first unread message when the room was opened: a "New" divider goes before it.
    #[prop_or_default]
    pub first_unread: Option<u64>,
}

impl PartialEq for MessageListProps {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.rows, &other.rows)
            && self.has_more == other.has_more
            && self.on_action == other.on_action
            && self.on_load_older == other.on_load_older
            && self.first_unread == other.first_unread
    }
}

fn metrics(el: &Element) -> Metrics {
    Metrics {
        top: el.scroll_top() as f64,
        height: el.scroll_height() as f64,
        client: el.client_height() as f64,
    }
}

/// Where the list stood at the last scroll or update.
#[derive(Default)]
struct Seen {
    metrics: Cell<Metrics>,
    at_bottom: Cell<bool>,
    first: Cell<Option<u64>>,
    start: Cell<Option<usize>>,
    last_key: std::cell::RefCell<Option<String>>,
}

/// `<ol aria-label="Messages">` inside a scroll container.
#[function_component]
pub fn MessageList(props: &MessageListProps) -> Html {
    let scroller = use_node_ref();
    let show_new = use_state(|| false);
    let seen = use_memo((), |_| {
        let seen = Seen::default();
        seen.at_bottom.set(true);
        seen
    });

    // Bumped to re-render when only the window changes.
    let redraw = use_state(|| 0u32);
    // The first rendered row (see `scroll::WINDOW`). At the bottom the window follows the
    // newest rows; scrolled up it keeps its start, so rows arriving below never shift the rows
    // being read, and an older page (which only loads when the start is 0) shows in full.
    let len = props.rows.len();
    let start = match seen.start.get() {
        Some(start) if !seen.at_bottom.get() => start.min(len),
        _ => window_start(len, WINDOW),
    };
    seen.start.set(Some(start));
    // Reaching the top: render more loaded rows, or load the page before them.
    let reach_top = {
        let seen = seen.clone();
        let redraw = redraw.clone();
        let on_load_older = props.on_load_older.clone();
        let has_more = props.has_more;
        Callback::from(move |()| match at_top(start, has_more) {
            AtTop::ShowMore => {
                seen.start.set(Some(start.saturating_sub(WINDOW)));
                redraw.set(*redraw + 1);
            }
            AtTop::LoadOlder => on_load_older.emit(()),
            AtTop::Nothing => {}
        })
    };
    let onscroll = {
        let scroller = scroller.clone();
        let seen = seen.clone();
        let show_new = show_new.clone();
        let redraw = redraw.clone();
        let reach_top = reach_top.clone();
        Callback::from(move |_: Event| {
            let Some(el) = scroller.cast::<Element>() else {
                return;
            };
            let m = metrics(&el);
            seen.metrics.set(m);
            seen.at_bottom.set(m.at_bottom());
            if m.at_bottom() {
                if *show_new {
                    show_new.set(false);
                }
                // Back at the newest messages: drop what scrolling up rendered, so updates
                // are cheap again. The view stays pinned to the bottom.
                if start < window_start(len, WINDOW) {
                    redraw.set(*redraw + 1);
                }
            }
            if m.near_top() {
                reach_top.emit(());
            }
        })
    };

    {
        let scroller = scroller.clone();
        let seen = seen.clone();
        let show_new = show_new.clone();
        let has_more = props.has_more;
        let reach_top = reach_top.clone();
        use_effect_with((props.rows.clone(), start), move |(rows, start)| {
            if let Some(el) = scroller.cast::<Element>() {
                let rows = &rows[*start..];
                let first = rows.iter().find_map(|r| r.seq);
                let last = rows.last();
                let last_key = last.map(|r| r.key());
                let prepended =
                    matches!((seen.first.get(), first), (Some(old), Some(new)) if new < old);
                let appended = *seen.last_key.borrow() != last_key && last_key.is_some();
                // Our own new send always brings the reader to it.
                let own_send = appended
                    && last
                        .is_some_and(|r| r.mine && r.seq.is_none() && r.status == Status::Pending);
                let before = seen.metrics.get();
                let decision = adjust(
                    before,
                    el.scroll_height() as f64,
                    prepended,
                    appended,
                    seen.at_bottom.get() || own_send,
                );
                match decision {
                    Adjust::ToBottom => {
                        el.set_scroll_top(el.scroll_height());
                        if *show_new {
                            show_new.set(false);
                        }
                    }
                    Adjust::KeepPlace(top) => el.set_scroll_top(top as i32),
                    Adjust::ShowNewButton => show_new.set(true),
                    Adjust::Nothing => {}
                }
                let m = metrics(&el);
                seen.metrics.set(m);
                seen.at_bottom.set(m.at_bottom());
                seen.first.set(first);
                *seen.last_key.borrow_mut() = last_key;
                // A first page shorter than the screen cannot be scrolled up: load more now.
                if (has_more || *start > 0) && m.height <= m.client {
                    reach_top.emit(());
                }
            }
        });
    }

    let jump = {
        let scroller = scroller.clone();
        let show_new = show_new.clone();
        Callback::from(move |_: MouseEvent| {
            if let Some(el) = scroller.cast::<Element>() {
                el.set_scroll_top(el.scroll_height());
            }
            show_new.set(false);
        })
    };

    let on_action = props.on_action.clone();
    let mut items = Vec::with_capacity(props.rows.len() - start + 1);
    for row in &props.rows[start..] {
        if row.seq.is_some() && row.seq == props.first_unread {
            items.push(html! {
                <li key="unread-divider" class="unread-divider" role="separator">{ "New" }</li>
            });
        }
        items.push(html! {
            <MessageRow key={row.key()} row={row.clone()} on_action={on_action.clone()} />
        });
    }
    html! {
        <div class="message-pane">
            <div class="scroller" ref={scroller} {onscroll}>
                if props.has_more || start > 0 {
                    <p class="history-edge">{ "Loading older messages…" }</p>
                } else if !props.rows.is_empty() {
                    <p class="history-edge">{ "This is the beginning of the room." }</p>
                } else {
                    <p class="history-edge">{ "No messages yet. Say hello!" }</p>
                }
                <ol class="messages" aria-label="Messages" data-loaded={props.rows.len().to_string()}>
                    { for items }
                </ol>
            </div>
            if *show_new {
                <button type="button" class="new-messages" onclick={jump}>{ "New messages ↓" }</button>
            }
        </div>
    }
}
