//! "Who's here": the people present, searchable. A small room's list is filtered here; a large
//! room's comes from the room a slice at a time (the rules are in [`crate::presence`]).

use std::rc::Rc;

use gloo_timers::callback::{Interval, Timeout};
use shared::client::PresentPage;
use shared::protocol::{Member, Millis};
use web_sys::{HtmlElement, HtmlInputElement};
use yew::prelude::*;

use crate::components::focus::close_on_escape;
use crate::conn::RoomHandle;
use crate::presence::{
    matching, query, refresh_limit, showing, slice_is_stale, PAGE, QUERY_MAX_CHARS, REFRESH_MS,
    SEARCH_DEBOUNCE_MS,
};
use crate::web;

/// Props of [`PresencePanel`].
#[derive(Properties, PartialEq)]
pub struct PresencePanelProps {
    /// The room, to ask for slices.
    pub handle: RoomHandle,
    /// The room counts its people (a large room): the list comes from it in slices.
    pub counted: bool,
    /// How many are present.
    pub count: usize,
    /// The connection is live (slices can be asked for).
    pub live: bool,
    /// A large room: the slice the room last sent.
    pub page: Option<PresentPage>,
    /// A small room: everyone present.
    pub present: Rc<Vec<Member>>,
    /// Show someone's profile card.
    pub on_profile: Callback<String>,
    /// Close the panel (the room page then focuses the button that opened it).
    pub on_close: Callback<()>,
}

/// The slice last asked for from the top: its query, the count then, and when.
struct Asked {
    query: Option<String>,
    count: usize,
    at: Millis,
}

/// Asks a large room for the slice shown when there is none on this connection yet, the
/// search changed, or it is stale ([`slice_is_stale`]).
fn ask_if_due(
    handle: &RoomHandle,
    asked: &mut Option<Asked>,
    props: (bool, bool, usize, usize),
    query: Option<String>,
) {
    let (counted, live, count, shown) = props;
    if !live {
        // A new connection holds no slice: ask again once live.
        *asked = None;
        return;
    }
    if !counted {
        return;
    }
    let now = web::now();
    let limit = match asked {
        Some(a) if a.query == query => {
            if !slice_is_stale(a.count, count, a.at, now) {
                return;
            }
            refresh_limit(shown)
        }
        _ => PAGE,
    };
    if handle.ask_presence(0, limit, query.clone()) {
        *asked = Some(Asked {
            query,
            count,
            at: now,
        });
    }
}

fn person(member: &Member, on_profile: &Callback<String>) -> Html {
    let open = on_profile.reform({
        let id = member.user_id.clone();
        move |_: MouseEvent| id.clone()
    });
    let initial: String = member.name.chars().take(1).collect();
    html! {
        <li key={member.user_id.clone()}>
            <button type="button" class="presence-person" onclick={open}>
                if let Some(url) = &member.avatar {
                    <img class="avatar" src={url.clone()} alt="" width="28" height="28" />
                } else {
                    <span class="avatar avatar-initial" aria-hidden="true">{ initial }</span>
                }
                <span class="presence-name">{ &member.name }</span>
            </button>
        </li>
    }
}

/// `<aside>` labelled "Who's here"; focus moves to its search box when it opens, Escape
/// closes it.
#[function_component]
pub fn PresencePanel(props: &PresencePanelProps) -> Html {
    let field = use_node_ref();
    // What is typed filters a small room at once; the room is asked once typing pauses.
    let typed = use_state(String::new);
    let asked_query = use_state(|| None::<String>);
    let debounce = use_mut_ref(|| None::<Timeout>);
    let asked = use_mut_ref(|| None::<Asked>);
    let rerender = use_force_update();
    {
        let field = field.clone();
        use_effect_with((), move |_| {
            if let Some(el) = field.cast::<HtmlElement>() {
                let _ = el.focus();
            }
            // Each render checks whether the slice is stale; this makes one every so often.
            let timer = Interval::new(REFRESH_MS as u32, move || rerender.force_update());
            move || drop(timer)
        });
    }
    {
        let handle = props.handle.clone();
        let shown = props.page.as_ref().map_or(0, |p| p.members.len());
        let state = (props.counted, props.live, props.count, shown);
        let (asked, query) = (asked.clone(), (*asked_query).clone());
        use_effect(move || {
            ask_if_due(&handle, &mut asked.borrow_mut(), state, query);
            || ()
        });
    }
    let oninput = {
        let (typed, asked_query, debounce) = (typed.clone(), asked_query.clone(), debounce);
        Callback::from(move |e: InputEvent| {
            let value = e.target_unchecked_into::<HtmlInputElement>().value();
            typed.set(value.clone());
            let asked_query = asked_query.clone();
            // Replacing the timeout cancels the one before.
            *debounce.borrow_mut() = Some(Timeout::new(SEARCH_DEBOUNCE_MS, move || {
                asked_query.set(query(&value))
            }));
        })
    };
    let onkeydown = close_on_escape(props.on_close.clone());
    let (people, total, query_shown, more): (Vec<&Member>, usize, Option<String>, _) =
        if props.counted {
            let page = props.page.as_ref();
            let more = page.filter(|p| p.end() < p.total && props.live).map(|p| {
                let (handle, end, q) = (props.handle.clone(), p.end(), (*asked_query).clone());
                Callback::from(move |_: MouseEvent| {
                    handle.ask_presence(end, PAGE, q.clone());
                })
            });
            (
                page.map(|p| p.members.iter().collect()).unwrap_or_default(),
                page.map_or(0, |p| p.total as usize),
                (*asked_query).clone(),
                more,
            )
        } else {
            let q = query(&typed);
            let people = matching(&props.present, q.as_deref());
            let total = people.len();
            (people, total, q, None)
        };
    let loading = props.counted && props.page.is_none();
    let summary = if !props.live && people.is_empty() {
        "Not connected: who is here shows once the room is back.".to_owned()
    } else if loading {
        "Loading…".to_owned()
    } else {
        showing(people.len(), total, query_shown.as_deref())
    };
    let close = props.on_close.reform(|_: MouseEvent| ());
    html! {
        <aside class="presence-panel" aria-labelledby="presence-title" {onkeydown}>
            <header>
                <h2 id="presence-title">{ "Who's here" }</h2>
                <button type="button" onclick={close} aria-label="Close who's here">{ "×" }</button>
            </header>
            <div class="presence-search">
                <input ref={field} type="search" aria-label="Search people here"
                    placeholder="Search people here" maxlength={QUERY_MAX_CHARS.to_string()}
                    aria-describedby="presence-summary" autocomplete="off" {oninput} />
                <p id="presence-summary" class="muted">{ summary }</p>
            </div>
            <ul class="presence-list" aria-label="People here">
                { for people.iter().map(|m| person(m, &props.on_profile)) }
            </ul>
            if let Some(onclick) = more {
                <button type="button" class="presence-more" {onclick}>{ "Show more" }</button>
            }
        </aside>
    }
}
