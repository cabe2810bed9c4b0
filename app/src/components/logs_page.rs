//! `/logs`: the structured log for global admins (issue 12). The server answers only them
//! (`GET /api/admin/logs`, `/api/admin/logs/tail`); to anyone else the route does not exist,
//! and this page says "Not found" as the server did.
//!
//! Filters (levels, a stored-between time range, text), a newest-first table whose rows open
//! on their details, "Older" for the next page (the logger's cursor), and "Live", which polls
//! the tail every [`LIVE_POLL_MS`] while the page is visible and puts new entries on top. The
//! log keeps entries 30 days; a tail that finds more than one answer holds says so (`gap`).

use std::collections::BTreeSet;
use std::rc::Rc;

use shared::logs::{Filter, Level, LogPage, LogRecord, PageCursor, TailPage, TailQuery};
use wasm_bindgen::JsValue;
use web_sys::{HtmlInputElement, VisibilityState};
use yew::prelude::*;

use crate::api;
use crate::components::not_found_page;
use crate::web;

/// How often "Live" asks for new entries.
const LIVE_POLL_MS: u32 = 2_500;

/// What the filter form holds, as typed.
#[derive(Debug, Clone, PartialEq, Default)]
struct Criteria {
    /// Levels to show; none shows all.
    levels: Vec<Level>,
    /// `datetime-local` values (local time), or empty.
    from: String,
    to: String,
    text: String,
}

impl Criteria {
    /// The filter to ask for, or why the form cannot be read.
    fn filter(&self) -> Result<Filter, String> {
        let time = |value: &str, name: &str| -> Result<Option<i64>, String> {
            if value.trim().is_empty() {
                return Ok(None);
            }
            // A `datetime-local` value has no zone: the Date parser reads it as local time.
            let ms = js_sys::Date::new(&JsValue::from_str(value)).get_time();
            if ms.is_finite() {
                Ok(Some(ms as i64))
            } else {
                Err(format!("The {name} time is not a date."))
            }
        };
        let text = self.text.trim();
        Ok(Filter {
            levels: self.levels.clone(),
            from: time(&self.from, "from")?,
            // "To 12:30" includes the whole minute.
            to: time(&self.to, "to")?.map(|ms| ms + 59_999),
            text: (!text.is_empty()).then(|| text.to_owned()),
            cursor: None,
            limit: None,
        })
    }
}

/// The page's state.
#[derive(Debug, Clone, PartialEq, Default)]
struct View {
    /// Newest first.
    entries: Vec<LogRecord>,
    /// Where "Older" resumes.
    cursor: Option<String>,
    /// Where the next tail starts.
    after: Option<String>,
    /// A tail skipped entries.
    gap: bool,
    loading: bool,
    error: Option<String>,
    /// The server said there is no such route: not an admin.
    not_found: bool,
    /// Keys of the rows shown open.
    open: BTreeSet<String>,
}

enum Change {
    Loading,
    /// A first page (replaces the list).
    Loaded(LogPage),
    /// An older page (appended).
    Older(LogPage),
    /// New entries (on top).
    Tail(TailPage),
    Failed(api::ApiError),
    Toggle(String),
}

impl Reducible for View {
    type Action = Change;

    fn reduce(self: Rc<Self>, change: Change) -> Rc<Self> {
        let mut view = (*self).clone();
        match change {
            Change::Loading => view.loading = true,
            Change::Loaded(page) => {
                view.after = page.entries.first().map(|r| r.key.clone());
                view.entries = page.entries;
                view.cursor = page.cursor;
                view.gap = false;
                view.loading = false;
                view.error = None;
                view.not_found = false;
            }
            Change::Older(page) => {
                let known: BTreeSet<String> = view.entries.iter().map(|r| r.key.clone()).collect();
                view.entries
                    .extend(page.entries.into_iter().filter(|r| !known.contains(&r.key)));
                view.cursor = page.cursor;
                view.loading = false;
                view.error = None;
            }
            Change::Tail(page) => {
                let known: BTreeSet<String> = view.entries.iter().map(|r| r.key.clone()).collect();
                let mut fresh: Vec<LogRecord> = page
                    .entries
                    .into_iter()
                    .filter(|r| !known.contains(&r.key))
                    .collect();
                if page.after.is_some() {
                    view.after = page.after;
                }
                view.gap |= page.gap;
                if fresh.is_empty() {
                    return if view == *self { self } else { Rc::new(view) };
                }
                fresh.append(&mut view.entries);
                view.entries = fresh;
                view.error = None;
            }
            Change::Failed(e) => {
                view.loading = false;
                if e.status == 404 {
                    view.not_found = true;
                } else {
                    view.error = Some(e.message);
                }
            }
            Change::Toggle(key) => {
                if !view.open.remove(&key) {
                    view.open.insert(key);
                }
            }
        }
        Rc::new(view)
    }
}

fn page_visible() -> bool {
    web::window()
        .document()
        .is_none_or(|d| d.visibility_state() == VisibilityState::Visible)
}

fn level_class(level: Level) -> &'static str {
    match level {
        Level::Debug => "log-debug",
        Level::Info => "log-info",
        Level::Warn => "log-warn",
        Level::Error => "log-error",
    }
}

/// The log viewer.
#[function_component]
pub fn LogsPage() -> Html {
    let view = use_reducer(View::default);
    // The criteria typed, and those applied (what the list shows).
    let form = use_state(Criteria::default);
    let applied = use_state(|| None::<Filter>);
    let form_error = use_state(|| None::<String>);
    let live = use_state(|| false);

    {
        // The first page, and again whenever other criteria are applied.
        let view = view.clone();
        use_effect_with((*applied).clone(), move |applied| {
            let filter = applied.clone().unwrap_or_default();
            view.dispatch(Change::Loading);
            wasm_bindgen_futures::spawn_local(async move {
                match api::admin_logs(&filter.to_query()).await {
                    Ok(page) => view.dispatch(Change::Loaded(page)),
                    Err(e) => view.dispatch(Change::Failed(e)),
                }
            });
        });
    }
    {
        // Live: poll the tail while the page is visible. The poll reads the newest key from a
        // ref the render keeps current, so the timer is not restarted by every new entry.
        let after = use_mut_ref(|| None::<String>);
        *after.borrow_mut() = view.after.clone();
        let in_flight = use_mut_ref(|| false);
        let view = view.clone();
        let live_now = *live && !view.not_found;
        use_effect_with(
            (live_now, (*applied).clone()),
            move |(live_now, applied)| {
                let filter = applied.clone().unwrap_or_default();
                let timer = live_now.then(|| {
                    gloo_timers::callback::Interval::new(LIVE_POLL_MS, move || {
                        if !page_visible() || *in_flight.borrow() {
                            return;
                        }
                        let query = TailQuery {
                            after: after.borrow().clone(),
                            filter: Filter {
                                levels: filter.levels.clone(),
                                text: filter.text.clone(),
                                ..Filter::default()
                            },
                        };
                        *in_flight.borrow_mut() = true;
                        let (view, in_flight) = (view.clone(), in_flight.clone());
                        wasm_bindgen_futures::spawn_local(async move {
                            match api::admin_logs_tail(&query.to_query()).await {
                                Ok(page) => view.dispatch(Change::Tail(page)),
                                Err(e) => view.dispatch(Change::Failed(e)),
                            }
                            *in_flight.borrow_mut() = false;
                        });
                    })
                });
                move || drop(timer)
            },
        );
    }

    if view.not_found {
        return not_found_page();
    }

    let onsubmit = {
        let (form, applied, form_error) = (form.clone(), applied.clone(), form_error.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            match form.filter() {
                Ok(filter) => {
                    form_error.set(None);
                    applied.set(Some(filter));
                }
                Err(message) => form_error.set(Some(message)),
            }
        })
    };
    let level_box = |level: Level| {
        let checked = form.levels.contains(&level);
        let onchange = {
            let form = form.clone();
            Callback::from(move |e: Event| {
                let on = e.target_unchecked_into::<HtmlInputElement>().checked();
                let mut next = (*form).clone();
                next.levels.retain(|l| *l != level);
                if on {
                    next.levels.push(level);
                    next.levels.sort();
                }
                form.set(next);
            })
        };
        html! {
            <label class="log-level-choice">
                <input type="checkbox" name="level" value={level.as_str()} {checked} {onchange} />
                { level.as_str() }
            </label>
        }
    };
    let text_field = |value: String, set: fn(&mut Criteria, String)| {
        let form = form.clone();
        (
            value,
            Callback::from(move |e: InputEvent| {
                let mut next = (*form).clone();
                set(
                    &mut next,
                    e.target_unchecked_into::<HtmlInputElement>().value(),
                );
                form.set(next);
            }),
        )
    };
    let (from_value, on_from) = text_field(form.from.clone(), |c, v| c.from = v);
    let (to_value, on_to) = text_field(form.to.clone(), |c, v| c.to = v);
    let (text_value, on_text) = text_field(form.text.clone(), |c, v| c.text = v);
    let on_live = {
        let live = live.clone();
        Callback::from(move |e: Event| {
            live.set(e.target_unchecked_into::<HtmlInputElement>().checked());
        })
    };
    let on_older = {
        let (view, applied) = (view.clone(), applied.clone());
        Callback::from(move |_: MouseEvent| {
            let Some(cursor) = view.cursor.as_deref().and_then(PageCursor::parse) else {
                return;
            };
            let mut filter = (*applied).clone().unwrap_or_default();
            filter.cursor = Some(cursor);
            view.dispatch(Change::Loading);
            let view = view.clone();
            wasm_bindgen_futures::spawn_local(async move {
                match api::admin_logs(&filter.to_query()).await {
                    Ok(page) => view.dispatch(Change::Older(page)),
                    Err(e) => view.dispatch(Change::Failed(e)),
                }
            });
        })
    };

    let rows = view.entries.iter().map(|record| {
        let entry = &record.entry;
        let open = view.open.contains(&record.key);
        let details_id = format!("log-details-{}", record.key.replace('/', "-"));
        let toggle = {
            let (view, key) = (view.clone(), record.key.clone());
            Callback::from(move |_: MouseEvent| view.dispatch(Change::Toggle(key.clone())))
        };
        let place = match (&entry.context.route, &entry.context.room) {
            (Some(route), Some(room)) => format!("{route} ({room})"),
            (Some(route), None) => route.clone(),
            (None, Some(room)) => room.clone(),
            (None, None) => String::new(),
        };
        let code = entry.error.as_ref().map(|e| e.code.clone()).unwrap_or_default();
        html! {
            <>
                <tr class={classes!("log-row", level_class(entry.level))} data-key={record.key.clone()}>
                    <td><time datetime={web::iso(record.logged_at)}>{ web::local_date_time(record.logged_at) }</time></td>
                    <td class="log-level">{ entry.level.as_str() }</td>
                    <td>{ entry.source.as_str() }</td>
                    <td class="log-message">{ &entry.message }</td>
                    <td class="log-place">{ place }</td>
                    <td class="log-code">{ code }</td>
                    <td>
                        <button type="button" onclick={toggle}
                            aria-expanded={if open { "true" } else { "false" }}
                            aria-controls={details_id.clone()}
                            aria-label={format!("Details of the entry of {}", web::local_date_time(record.logged_at))}>
                            { if open { "Hide" } else { "Details" } }
                        </button>
                    </td>
                </tr>
                if open {
                    <tr class="log-details-row" id={details_id}>
                        <td colspan="7">
                            <dl class="log-details">
                                <dt>{ "Stored" }</dt><dd>{ web::iso(record.logged_at) }</dd>
                                <dt>{ "Happened (reporter's clock)" }</dt><dd>{ web::iso(entry.at) }</dd>
                                if let Some(route) = &entry.context.route { <dt>{ "Route" }</dt><dd>{ route }</dd> }
                                if let Some(room) = &entry.context.room { <dt>{ "Room" }</dt><dd>{ room }</dd> }
                                if let Some(id) = &entry.context.request_id { <dt>{ "Request" }</dt><dd>{ id }</dd> }
                                if let Some(user) = &entry.context.user { <dt>{ "User (pseudonymous)" }</dt><dd>{ user.as_str() }</dd> }
                                if let Some(error) = &entry.error {
                                    <dt>{ "Error" }</dt><dd>{ &error.code }</dd>
                                    if !error.detail.is_empty() { <dt>{ "Detail" }</dt><dd class="log-detail-text">{ &error.detail }</dd> }
                                }
                                <dt>{ "Key" }</dt><dd>{ &record.key }</dd>
                            </dl>
                        </td>
                    </tr>
                }
            </>
        }
    });

    html! {
        <section class="logs-page">
            <h1>{ "Logs" }</h1>
            <form class="logs-filters card" {onsubmit} aria-label="Filter the log">
                <fieldset class="log-levels">
                    <legend>{ "Levels (none: all)" }</legend>
                    { for Level::ALL.into_iter().map(level_box) }
                </fieldset>
                <label for="logs-from">{ "From" }</label>
                <input id="logs-from" type="datetime-local" value={from_value} oninput={on_from} />
                <label for="logs-to">{ "To" }</label>
                <input id="logs-to" type="datetime-local" value={to_value} oninput={on_to} />
                <label for="logs-text">{ "Text" }</label>
                <input id="logs-text" type="search" placeholder="message, code, route, room, request id"
                    maxlength="200" value={text_value} oninput={on_text} />
                <button type="submit">{ "Apply" }</button>
                <label class="logs-live">
                    <input type="checkbox" checked={*live} onchange={on_live} />
                    { "Live" }
                </label>
            </form>
            if let Some(message) = &*form_error {
                <p class="field-error" role="alert">{ message }</p>
            }
            if let Some(message) = &view.error {
                <p class="field-error" role="alert">{ message }</p>
            }
            if view.gap {
                <p class="notice" role="status">{ "More entries arrived than Live shows at once: some were skipped. Apply the filters again to see them all." }</p>
            }
            <table class="logs-table">
                <caption class="visually-hidden">{ "Log entries, newest first" }</caption>
                <thead>
                    <tr>
                        <th scope="col">{ "Time" }</th>
                        <th scope="col">{ "Level" }</th>
                        <th scope="col">{ "Source" }</th>
                        <th scope="col">{ "Message" }</th>
                        <th scope="col">{ "Route / room" }</th>
                        <th scope="col">{ "Code" }</th>
                        <th scope="col"><span class="visually-hidden">{ "Details" }</span></th>
                    </tr>
                </thead>
                <tbody>{ for rows }</tbody>
            </table>
            if view.entries.is_empty() && !view.loading {
                <p class="muted" role="status">{ "No entries." }</p>
            }
            if view.loading {
                <p class="muted" role="status">{ "Loading…" }</p>
            }
            if view.cursor.is_some() {
                <button type="button" class="logs-older" onclick={on_older} disabled={view.loading}>{ "Older" }</button>
            }
        </section>
    }
}
