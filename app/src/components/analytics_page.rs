//! `/analytics` (global admins) and `/analytics/<slug>` (a room's owner, and admins): live
//! usage — messages, people and connections, active rooms, sign-ups, the assistant's answers,
//! ratings and latency — as charts one can read at a glance, and a table per room. The admin
//! page also holds a socket to the `Metrics` object, so the current minute and "connected now"
//! move as rooms report; history is fetched again every minute.

use std::rc::Rc;

use gloo_events::EventListener;
use gloo_timers::callback::Interval;
use shared::metrics::{Analytics, LiveUpdate, Point, Range, Source};
use wasm_bindgen::JsCast;
use web_sys::{MessageEvent, WebSocket};
use yew::prelude::*;

use crate::api;
use crate::components::chart::{Bar, Line, Split, TimeChart};
use crate::components::not_found_page;
use crate::web;

/// Props of [`AnalyticsPage`].
#[derive(Properties, PartialEq)]
pub struct AnalyticsPageProps {
    /// One room's page (its owner's), or everywhere's (admins) when `None`.
    #[prop_or_default]
    pub room: Option<AttrValue>,
}

/// How often the history is fetched again while the page is open.
const REFRESH_MS: u32 = 60_000;

/// The values of one field of every point.
pub(crate) fn values(points: &[Point], field: impl Fn(&Point) -> Option<f64>) -> Vec<Option<f64>> {
    points.iter().map(field).collect()
}

fn count(v: u64) -> Option<f64> {
    Some(v as f64)
}

/// The range picker shared with the performance page.
#[derive(Properties, PartialEq)]
pub(crate) struct RangePickerProps {
    pub range: Range,
    pub ranges: &'static [Range],
    pub on_pick: Callback<Range>,
}

#[function_component]
pub(crate) fn RangePicker(props: &RangePickerProps) -> Html {
    html! {
        <div class="range-picker" role="group" aria-label="Period">
            { for props.ranges.iter().map(|r| {
                let on_pick = props.on_pick.clone();
                let r = *r;
                let label = match r {
                    Range::Hour => "Last hour",
                    Range::Day => "Last 24 hours",
                    Range::Month => "Last 30 days",
                };
                html! {
                    <button type="button" aria-pressed={(r == props.range).to_string()}
                        onclick={Callback::from(move |_: MouseEvent| on_pick.emit(r))}>{ label }</button>
                }
            }) }
        </div>
    }
}

/// The live socket's URL.
fn live_url() -> String {
    let location = web::window().location();
    let scheme = match location.protocol().as_deref() {
        Ok("https:") => "wss:",
        _ => "ws:",
    };
    format!(
        "{scheme}//{}/api/admin/analytics/live",
        location.host().unwrap_or_default()
    )
}

/// A page's numbers as loaded, with the live updates taken in since.
#[derive(Default, PartialEq)]
pub(crate) struct PageState {
    /// The numbers.
    pub page: Option<Analytics>,
    /// The last load's failure.
    pub error: Option<String>,
    /// The server answered `not_found`: not an admin (or not the room's owner).
    pub not_found: bool,
}

/// What changes a [`PageState`].
pub(crate) enum PageAction {
    Loaded(Analytics),
    Failed(String),
    NotFound,
    Live(LiveUpdate),
}

impl Reducible for PageState {
    type Action = PageAction;

    // A reducer, not a state handle: the socket's listener outlives the render it was made in,
    // and must apply each update to the numbers as they are now.
    fn reduce(self: Rc<Self>, action: PageAction) -> Rc<Self> {
        let mut next = PageState {
            page: self.page.clone(),
            error: self.error.clone(),
            not_found: self.not_found,
        };
        match action {
            PageAction::Loaded(page) => {
                next.page = Some(page);
                next.error = None;
                next.not_found = false;
            }
            PageAction::Failed(message) => next.error = Some(message),
            PageAction::NotFound => {
                next.page = None;
                next.not_found = true;
            }
            PageAction::Live(update) => {
                if let Some(page) = next.page.as_mut() {
                    page.apply_live(&update);
                }
            }
        }
        Rc::new(next)
    }
}

/// Loads a page's numbers for `room` and `range`, now and every minute while mounted.
#[hook]
pub(crate) fn use_analytics(room: Option<AttrValue>, range: Range) -> UseReducerHandle<PageState> {
    let state = use_reducer(PageState::default);
    {
        let state = state.dispatcher();
        use_effect_with((room, range), move |(room, range)| {
            let load = {
                let (room, range) = (room.clone(), *range);
                move || {
                    let (state, room) = (state.clone(), room.clone());
                    wasm_bindgen_futures::spawn_local(async move {
                        match api::analytics(room.as_deref(), range).await {
                            Ok(loaded) => state.dispatch(PageAction::Loaded(loaded)),
                            Err(e) if e.status == 404 => state.dispatch(PageAction::NotFound),
                            Err(e) => state.dispatch(PageAction::Failed(e.message)),
                        }
                    });
                }
            };
            load();
            let timer = Interval::new(REFRESH_MS, load);
            move || drop(timer)
        });
    }
    state
}

/// The analytics page.
#[function_component]
pub fn AnalyticsPage(props: &AnalyticsPageProps) -> Html {
    let range = use_state(|| Range::Day);
    let state = use_analytics(props.room.clone(), *range);
    let live = use_state(|| false);

    // Everywhere's page listens to the aggregator; a room's owner reloads each minute.
    {
        let (updates, live) = (state.dispatcher(), live.clone());
        use_effect_with(props.room.clone(), move |room| {
            let mut held: Option<(WebSocket, Vec<EventListener>)> = None;
            if room.is_none() {
                if let Ok(ws) = WebSocket::new(&live_url()) {
                    let on_message = {
                        EventListener::new(&ws, "message", move |event| {
                            let Some(text) = event
                                .dyn_ref::<MessageEvent>()
                                .and_then(|m| m.data().as_string())
                            else {
                                return;
                            };
                            let Ok(update) = serde_json::from_str::<LiveUpdate>(&text) else {
                                return;
                            };
                            updates.dispatch(PageAction::Live(update));
                        })
                    };
                    let on_open = {
                        let live = live.clone();
                        EventListener::new(&ws, "open", move |_| live.set(true))
                    };
                    let on_close = {
                        let live = live.clone();
                        EventListener::new(&ws, "close", move |_| live.set(false))
                    };
                    held = Some((ws, vec![on_message, on_open, on_close]));
                }
            }
            move || {
                if let Some((ws, listeners)) = held {
                    drop(listeners);
                    let _ = ws.close();
                }
            }
        });
    }

    if state.not_found {
        return not_found_page();
    }
    let on_pick = {
        let range = range.clone();
        Callback::from(move |r: Range| range.set(r))
    };
    let title = match &props.room {
        Some(slug) => format!("Analytics · {slug}"),
        None => "Analytics".to_owned(),
    };
    let body = match &state.page {
        None => html! { <p class="muted" role="status">{ "Loading…" }</p> },
        Some(page) => view(page, props.room.is_none()),
    };
    html! {
        <section class="analytics-page" aria-labelledby="analytics-title">
            <header class="analytics-head">
                <h1 id="analytics-title">{ title }</h1>
                if props.room.is_none() {
                    <nav class="analytics-nav" aria-label="Monitoring">
                        <a href="/admin">{ "Administration" }</a>
                        <a href="/performance">{ "Performance" }</a>
                    </nav>
                    <span class={classes!("live-dot", live.then_some("on"))} role="status">
                        { if *live { "Live" } else { "Not live" } }
                    </span>
                }
            </header>
            <RangePicker range={*range} ranges={&[Range::Hour, Range::Day, Range::Month][..]} {on_pick} />
            if let Some(message) = &state.error {
                <p class="field-error" role="alert">{ message }</p>
            }
            { body }
        </section>
    }
}

/// The charts and the table of a loaded page.
fn view(page: &Analytics, everywhere: bool) -> Html {
    let points = &page.points;
    let start = points.first().map_or(page.now, |p| p.at);
    let per = if page.step_ms >= 3_600_000 {
        "hour"
    } else {
        "minute"
    };
    let total = |f: fn(&Point) -> u64| points.iter().map(f).sum::<u64>();
    let (up, down) = (total(|p| p.up), total(|p| p.down));
    let chart = |title: String, unit: &'static str, lines: Vec<Line>| {
        html! {
            <TimeChart title={title} start={start} step_ms={page.step_ms} unit={unit} lines={Rc::new(lines)} />
        }
    };
    let ms = |v: Option<u64>| v.map(|v| v as f64);
    let max_messages = page.rooms.iter().map(|l| l.messages).max().unwrap_or(0) as f64;
    html! {
        <>
            <div class="tiles" role="list">
                <div class="tile" role="listitem"><span class="tile-value">{ page.current.connections }</span><span class="tile-label">{ "connections now" }</span></div>
                <div class="tile" role="listitem"><span class="tile-value">{ page.current.users }</span><span class="tile-label">{ "people now" }</span></div>
                if everywhere {
                    <div class="tile" role="listitem"><span class="tile-value">{ page.current.rooms }</span><span class="tile-label">{ "active rooms now" }</span></div>
                }
                <div class="tile" role="listitem"><span class="tile-value">{ total(|p| p.messages) }</span><span class="tile-label">{ "messages" }</span></div>
                <div class="tile" role="listitem"><span class="tile-value">{ total(|p| p.answers) }</span><span class="tile-label">{ "assistant answers" }</span></div>
                if everywhere {
                    <div class="tile" role="listitem"><span class="tile-value">{ total(|p| p.accounts) }</span><span class="tile-label">{ "new accounts" }</span></div>
                }
            </div>
            <div class="charts">
                { chart(format!("Messages per {per}"), "", vec![
                    Line { name: "messages", class: "s1", values: values(points, |p| count(p.messages)) },
                ]) }
                { chart("Active people and connections".into(), "", vec![
                    Line { name: "connections", class: "s1", values: values(points, |p| count(p.connections)) },
                    Line { name: "people", class: "s2", values: values(points, |p| count(p.users)) },
                ]) }
                if everywhere {
                    { chart(format!("Active rooms and new accounts per {per}"), "", vec![
                        Line { name: "active rooms", class: "s3", values: values(points, |p| count(p.rooms)) },
                        Line { name: "new accounts", class: "s2", values: values(points, |p| count(p.accounts)) },
                    ]) }
                }
                { chart(format!("Assistant answers per {per}"), "", vec![
                    Line { name: "answers", class: "s1", values: values(points, |p| count(p.answers)) },
                    Line { name: "failed", class: "s4", values: values(points, |p| count(p.answers_failed)) },
                ]) }
                { chart("Answer latency (p50 and p99)".into(), "ms", vec![
                    Line { name: "first token p50", class: "s1", values: values(points, |p| ms(p.first_token.p50)) },
                    Line { name: "first token p99", class: "s2", values: values(points, |p| ms(p.first_token.p99)) },
                    Line { name: "total p50", class: "s3", values: values(points, |p| ms(p.total.p50)) },
                    Line { name: "total p99", class: "s4", values: values(points, |p| ms(p.total.p99)) },
                ]) }
            </div>
            <Split {up} {down} />
            <section class="card">
                <h2>{ if everywhere { "Rooms" } else { "This room" } }</h2>
                <table class="metrics-table">
                    <caption class="visually-hidden">{ "Per room, busiest first" }</caption>
                    <thead><tr>
                        <th scope="col">{ "Room" }</th>
                        <th scope="col">{ "Messages" }</th>
                        <th scope="col">{ "Answers" }</th>
                        <th scope="col">{ "Ratings up / down" }</th>
                        <th scope="col">{ "Connected now" }</th>
                        <th scope="col">{ "Peak" }</th>
                    </tr></thead>
                    <tbody>
                        { for page.rooms.iter().map(|l| html! {
                            <tr key={l.room.clone()}>
                                <th scope="row"><a href={format!("/r/{}", l.room)}>{ &l.room }</a></th>
                                <td><Bar value={l.messages as f64} max={max_messages} label={l.messages.to_string()} /></td>
                                <td>{ l.answers }</td>
                                <td>{ format!("{} / {}", l.up, l.down) }</td>
                                <td>{ l.connections }</td>
                                <td>{ l.peak_connections }</td>
                            </tr>
                        }) }
                    </tbody>
                </table>
                if page.rooms.is_empty() {
                    <p class="muted">{ "Nothing reported in this period." }</p>
                }
            </section>
            <p class="muted source">
                { match page.source {
                    Source::AnalyticsEngine => "History from Workers Analytics Engine.",
                    Source::DurableObject => "History from the aggregator's own rollups.",
                } }
                if let Some(warning) = &page.warning { { format!(" {warning}") } }
            </p>
        </>
    }
}
