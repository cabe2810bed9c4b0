//! SVG charts for the analytics pages, drawn by hand: no chart library (the app's first
//! download is measured). The arithmetic — ticks, scales, paths, the point under the pointer —
//! is `shared::metrics::chart`, tested natively; this file only renders it.
//!
//! Colours come from classes in `assets/style.css` (the CSP allows no inline style), widths
//! and positions from SVG attributes.

use std::rc::Rc;

use shared::metrics::chart::{self, Scale};
use web_sys::Element;
use yew::prelude::*;

/// One series of a [`TimeChart`].
#[derive(Clone, PartialEq)]
pub struct Line {
    /// The legend's name.
    pub name: &'static str,
    /// Its colour class (`s1` … `s4`).
    pub class: &'static str,
    /// One value per period (missing: no data then).
    pub values: Vec<Option<f64>>,
}

/// Props of [`TimeChart`].
#[derive(Properties, PartialEq)]
pub struct TimeChartProps {
    /// The chart's heading (also its accessible name).
    pub title: AttrValue,
    /// The first period's start, ms since the epoch.
    pub start: i64,
    /// Period length, ms.
    pub step_ms: i64,
    /// The series.
    pub lines: Rc<Vec<Line>>,
    /// Appended to values in the readout (`ms`, `µs`).
    #[prop_or_default]
    pub unit: AttrValue,
}

const W: f64 = 640.0;
const H: f64 = 190.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 22.0;

/// A time label: the hour and minute within a day, the date beyond.
fn time_label(at: i64, step_ms: i64) -> String {
    let date = js_sys::Date::new(&(at as f64).into());
    if step_ms >= 3_600_000 {
        format!("{}/{}", date.get_month() + 1, date.get_date())
    } else {
        format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
    }
}

fn value_label(value: Option<f64>, unit: &str) -> String {
    match value {
        None => "–".into(),
        Some(v) if unit.is_empty() => chart::label(v),
        Some(v) => format!("{} {unit}", chart::label(v)),
    }
}

/// A time series: axes with round ticks, one line per series (broken where there is no
/// data), a legend, and a readout of the period under the pointer (or the arrow keys).
#[function_component]
pub fn TimeChart(props: &TimeChartProps) -> Html {
    let hover = use_state(|| None::<usize>);
    let svg = use_node_ref();
    let len = props
        .lines
        .iter()
        .map(|l| l.values.len())
        .max()
        .unwrap_or(0);
    let max = props
        .lines
        .iter()
        .flat_map(|l| l.values.iter().flatten())
        .fold(0.0f64, |a, b| a.max(*b));
    let ticks = chart::ticks(max, 4);
    let top = ticks.last().copied().unwrap_or(1.0);
    let x = Scale {
        from: 0.0,
        to: len.saturating_sub(1) as f64,
        start: LEFT,
        end: W - RIGHT,
    };
    let y = Scale {
        from: 0.0,
        to: top,
        start: H - BOTTOM,
        end: TOP,
    };
    let end = props.start + props.step_ms * len.saturating_sub(1) as i64;
    let times = chart::time_ticks(props.start, end, 6);

    let onmousemove = {
        let (hover, svg) = (hover.clone(), svg.clone());
        Callback::from(move |e: MouseEvent| {
            let Some(element) = svg.cast::<Element>() else {
                return;
            };
            let rect = element.get_bounding_client_rect();
            if rect.width() <= 0.0 {
                return;
            }
            let px = (f64::from(e.client_x()) - rect.left()) * W / rect.width();
            hover.set(chart::nearest(px, len, &x));
        })
    };
    let onmouseleave = {
        let hover = hover.clone();
        Callback::from(move |_: MouseEvent| hover.set(None))
    };
    let onkeydown = {
        let hover = hover.clone();
        Callback::from(move |e: KeyboardEvent| {
            let last = len.saturating_sub(1);
            let at = (*hover).unwrap_or(last);
            let next = match e.key().as_str() {
                "ArrowLeft" => at.saturating_sub(1),
                "ArrowRight" => (at + 1).min(last),
                "Home" => 0,
                "End" => last,
                _ => return,
            };
            e.prevent_default();
            hover.set(Some(next));
        })
    };
    let onblur = {
        let hover = hover.clone();
        Callback::from(move |_: FocusEvent| hover.set(None))
    };

    // The readout: the hovered period, else the latest.
    let shown = (*hover).or(len.checked_sub(1));
    let readout = shown.map(|i| {
        let values = props
            .lines
            .iter()
            .map(|l| {
                let v = l.values.get(i).copied().flatten();
                format!("{} {}", l.name, value_label(v, &props.unit))
            })
            .collect::<Vec<_>>()
            .join(" · ");
        let at = props.start + props.step_ms * i as i64;
        format!("{} — {values}", time_label(at, props.step_ms))
    });
    let latest = props
        .lines
        .iter()
        .map(|l| {
            let last = l.values.iter().rev().flatten().next().copied();
            format!("{} latest {}", l.name, value_label(last, &props.unit))
        })
        .collect::<Vec<_>>()
        .join(", ");
    let label = format!("{}: {latest}", props.title);

    html! {
        <figure class="chart">
            <figcaption>
                <span class="chart-title">{ &props.title }</span>
                <span class="chart-legend" aria-hidden="true">
                    { for props.lines.iter().map(|l| html! {
                        <span class={classes!("legend", l.class)}>{ l.name }</span>
                    }) }
                </span>
            </figcaption>
            <p class="chart-readout" aria-live="polite">{ readout.unwrap_or_default() }</p>
            <svg ref={svg} viewBox={format!("0 0 {W} {H}")} role="img" aria-label={label.clone()}
                tabindex="0" {onmousemove} {onmouseleave} {onkeydown} {onblur}>
                <title>{ label }</title>
                { for ticks.iter().map(|t| {
                    let py = y.at(*t);
                    html! {
                        <g class="grid">
                            <line x1={LEFT.to_string()} x2={(W - RIGHT).to_string()}
                                y1={format!("{py:.1}")} y2={format!("{py:.1}")} />
                            <text class="tick" x={(LEFT - 4.0).to_string()} y={format!("{:.1}", py + 3.5)}
                                text-anchor="end">{ chart::label(*t) }</text>
                        </g>
                    }
                }) }
                { for times.iter().map(|at| {
                    let px = x.at((at - props.start) as f64 / props.step_ms as f64);
                    html! {
                        <text class="tick" x={format!("{px:.1}")} y={(H - 6.0).to_string()}
                            text-anchor="middle">{ time_label(*at, props.step_ms) }</text>
                    }
                }) }
                <line class="axis" x1={LEFT.to_string()} x2={LEFT.to_string()}
                    y1={TOP.to_string()} y2={(H - BOTTOM).to_string()} />
                <line class="axis" x1={LEFT.to_string()} x2={(W - RIGHT).to_string()}
                    y1={(H - BOTTOM).to_string()} y2={(H - BOTTOM).to_string()} />
                { for props.lines.iter().map(|l| html! {
                    <path class={classes!("series", l.class)}
                        d={chart::path(&l.values, |i| x.at(i as f64), |v| y.at(v))} />
                }) }
                if let Some(i) = *hover {
                    <line class="cursor" x1={format!("{:.1}", x.at(i as f64))} x2={format!("{:.1}", x.at(i as f64))}
                        y1={TOP.to_string()} y2={(H - BOTTOM).to_string()} />
                    { for props.lines.iter().filter_map(|l| {
                        let v = l.values.get(i).copied().flatten()?;
                        Some(html! {
                            <circle class={classes!("dot", l.class)} r="3"
                                cx={format!("{:.1}", x.at(i as f64))} cy={format!("{:.1}", y.at(v))} />
                        })
                    }) }
                }
            </svg>
        </figure>
    }
}

/// Props of [`Bar`].
#[derive(Properties, PartialEq)]
pub struct BarProps {
    /// The value.
    pub value: f64,
    /// The largest value in its column (a full bar).
    pub max: f64,
    /// What the number says, shown beside the bar.
    pub label: AttrValue,
}

/// A number with a bar of its share of the column's largest, for tables.
#[function_component]
pub fn Bar(props: &BarProps) -> Html {
    let share = if props.max > 0.0 {
        (props.value / props.max).clamp(0.0, 1.0)
    } else {
        0.0
    };
    html! {
        <span class="bar-cell">
            <svg class="bar" viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true">
                <rect x="0" y="0" height="8" width={format!("{:.1}", share * 100.0)} />
            </svg>
            <span>{ &props.label }</span>
        </span>
    }
}

/// Props of [`Split`].
#[derive(Properties, PartialEq)]
pub struct SplitProps {
    /// Thumbs up.
    pub up: u64,
    /// Thumbs down.
    pub down: u64,
}

/// The ratings' split: one bar, up and down in proportion, with the numbers.
#[function_component]
pub fn Split(props: &SplitProps) -> Html {
    let total = props.up + props.down;
    let share = if total == 0 {
        0.0
    } else {
        props.up as f64 / total as f64
    };
    let text = if total == 0 {
        "No ratings yet".to_owned()
    } else {
        format!(
            "{} up ({:.0}%) · {} down",
            props.up,
            share * 100.0,
            props.down
        )
    };
    html! {
        <figure class="split">
            <figcaption>{ "Answer ratings" }</figcaption>
            <svg viewBox="0 0 100 10" preserveAspectRatio="none" role="img" aria-label={text.clone()}>
                <rect class={if total == 0 { "empty" } else { "down" }} x="0" y="0" width="100" height="10" />
                <rect class="up" x="0" y="0" height="10" width={format!("{:.1}", share * 100.0)} />
            </svg>
            <p class="muted">{ text }</p>
        </figure>
    }
}
