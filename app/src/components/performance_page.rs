//! `/performance` (global admins): how the system runs — per room, connections, events a
//! second, fan-out size and time, SQLite rows read and written, database size and alarm lag;
//! the browsers' web vitals (LCP, INP, CLS, time to the first message); and the slowest recent
//! API requests with where their time went (`Server-Timing` phases).

use std::rc::Rc;

use shared::metrics::chart;
use shared::metrics::{Percentiles, Range, Vital};
use yew::prelude::*;

use crate::components::analytics_page::{use_analytics, values, RangePicker};
use crate::components::chart::{Bar, Line, TimeChart};
use crate::components::not_found_page;
use crate::web;

fn pair(p: Percentiles, unit: &str) -> String {
    let one = |v: Option<u64>| v.map_or("–".to_owned(), |v| chart::label(v as f64));
    format!("{} / {}{unit}", one(p.p50), one(p.p99))
}

/// One vital's row, with the threshold the web calls "good" at the 75th percentile.
fn vital_row(name: &str, vital: &Vital, good: u64, format: fn(u64) -> String) -> Html {
    let show = |v: Option<u64>| v.map_or("–".to_owned(), format);
    let verdict = match vital.p75 {
        None => "",
        Some(p75) if p75 <= good => "good",
        Some(_) => "needs work",
    };
    html! {
        <tr>
            <th scope="row">{ name }</th>
            <td>{ show(vital.p50) }</td>
            <td>{ show(vital.p75) }</td>
            <td>{ show(vital.p99) }</td>
            <td>{ vital.samples }</td>
            <td>{ verdict }</td>
        </tr>
    }
}

fn millis(v: u64) -> String {
    chart::millis(v as f64)
}

fn shift(v: u64) -> String {
    format!("{:.3}", v as f64 / 1000.0)
}

/// The performance page.
#[function_component]
pub fn PerformancePage() -> Html {
    let range = use_state(|| Range::Hour);
    let state = use_analytics(None, *range);
    if state.not_found {
        return not_found_page();
    }
    let on_pick = {
        let range = range.clone();
        Callback::from(move |r: Range| range.set(r))
    };
    let body = match &state.page {
        None => html! { <p class="muted" role="status">{ "Loading…" }</p> },
        Some(page) => {
            let points = &page.points;
            let start = points.first().map_or(page.now, |p| p.at);
            let us = |v: Option<u64>| v.map(|v| v as f64);
            let events = Rc::new(vec![Line {
                name: "events",
                class: "s1",
                values: values(points, |p| Some(p.events as f64)),
            }]);
            let fanout = Rc::new(vec![
                Line {
                    name: "p50",
                    class: "s1",
                    values: values(points, |p| us(p.broadcast_us.p50)),
                },
                Line {
                    name: "p99",
                    class: "s4",
                    values: values(points, |p| us(p.broadcast_us.p99)),
                },
            ]);
            let max_rows = page.rooms.iter().map(|l| l.rows_read).max().unwrap_or(0) as f64;
            let vitals = page.vitals.unwrap_or_default();
            html! {
                <>
                    <div class="charts">
                        <TimeChart title="Events sequenced" {start} step_ms={page.step_ms} lines={events} />
                        <TimeChart title="Fan-out time (p50, p99)" {start} step_ms={page.step_ms} unit="µs" lines={fanout} />
                    </div>
                    <p class="muted">
                        { "A Worker's clock moves only across I/O, so a fan-out (synchronous sends) mostly reads 0 µs; the sockets per fan-out below are what it costs." }
                    </p>
                    <section class="card">
                        <h2>{ "Rooms" }</h2>
                        <table class="metrics-table">
                            <caption class="visually-hidden">{ "How each room runs, busiest first" }</caption>
                            <thead><tr>
                                <th scope="col">{ "Room" }</th>
                                <th scope="col">{ "Connected" }</th>
                                <th scope="col">{ "Events/s" }</th>
                                <th scope="col">{ "Sockets per fan-out p50 / p99" }</th>
                                <th scope="col">{ "Fan-out p50 / p99" }</th>
                                <th scope="col">{ "Rows read" }</th>
                                <th scope="col">{ "Rows written" }</th>
                                <th scope="col">{ "Database" }</th>
                                <th scope="col">{ "Alarm lag p50 / p99" }</th>
                            </tr></thead>
                            <tbody>
                                { for page.rooms.iter().map(|l| html! {
                                    <tr key={l.room.clone()}>
                                        <th scope="row"><a href={format!("/analytics/{}", l.room)}>{ &l.room }</a></th>
                                        <td>{ l.connections }</td>
                                        <td>{ format!("{:.3}", l.events_per_s) }</td>
                                        <td>{ pair(l.fanout, "") }</td>
                                        <td>{ pair(l.broadcast_us, " µs") }</td>
                                        <td><Bar value={l.rows_read as f64} max={max_rows} label={chart::label(l.rows_read as f64)} /></td>
                                        <td>{ chart::label(l.rows_written as f64) }</td>
                                        <td>{ chart::bytes(l.db_bytes) }</td>
                                        <td>{ pair(l.alarm_lag_ms, " ms") }</td>
                                    </tr>
                                }) }
                            </tbody>
                        </table>
                    </section>
                    <section class="card">
                        <h2>{ "Browser vitals" }</h2>
                        <table class="metrics-table">
                            <thead><tr>
                                <th scope="col">{ "Measure" }</th>
                                <th scope="col">{ "p50" }</th>
                                <th scope="col">{ "p75" }</th>
                                <th scope="col">{ "p99" }</th>
                                <th scope="col">{ "Page loads" }</th>
                                <th scope="col">{ "At p75" }</th>
                            </tr></thead>
                            <tbody>
                                { vital_row("Largest contentful paint", &vitals.lcp_ms, 2_500, millis) }
                                { vital_row("Interaction to next paint", &vitals.inp_ms, 200, millis) }
                                { vital_row("Cumulative layout shift", &vitals.cls_milli, 100, shift) }
                                { vital_row("Time to first message", &vitals.first_message_ms, 2_500, millis) }
                            </tbody>
                        </table>
                        <p class="muted">{ "Measured in a sample of page loads (10% unless the build says otherwise)." }</p>
                    </section>
                    <section class="card">
                        <h2>{ "Slow requests" }</h2>
                        if page.slow.is_empty() {
                            <p class="muted">{ "None lately." }</p>
                        } else {
                            <table class="metrics-table">
                                <thead><tr>
                                    <th scope="col">{ "When" }</th>
                                    <th scope="col">{ "Request" }</th>
                                    <th scope="col">{ "Status" }</th>
                                    <th scope="col">{ "Total" }</th>
                                    <th scope="col">{ "Where the time went" }</th>
                                </tr></thead>
                                <tbody>
                                    { for page.slow.iter().map(|s| html! {
                                        <tr>
                                            <td><time>{ web::local_date_time(s.at) }</time></td>
                                            <td><code>{ format!("{} {}", s.method, s.route) }</code></td>
                                            <td>{ s.status }</td>
                                            <td>{ chart::millis(s.ms) }</td>
                                            <td>{ s.phases.iter().map(|p| format!("{} {}", p.name, chart::millis(p.ms))).collect::<Vec<_>>().join(" · ") }</td>
                                        </tr>
                                    }) }
                                </tbody>
                            </table>
                        }
                    </section>
                </>
            }
        }
    };
    html! {
        <section class="analytics-page" aria-labelledby="performance-title">
            <header class="analytics-head">
                <h1 id="performance-title">{ "Performance" }</h1>
                <nav class="analytics-nav" aria-label="Monitoring">
                    <a href="/admin">{ "Administration" }</a>
                    <a href="/analytics">{ "Analytics" }</a>
                </nav>
            </header>
            <RangePicker range={*range} ranges={&[Range::Hour, Range::Day, Range::Month][..]} {on_pick} />
            if let Some(message) = &state.error {
                <p class="field-error" role="alert">{ message }</p>
            }
            { body }
        </section>
    }
}
