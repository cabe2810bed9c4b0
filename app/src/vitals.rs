//! Web vitals of a sample of page loads (issue 12): largest contentful paint, interaction to
//! next paint, cumulative layout shift and the time until the first message is on screen,
//! measured with `PerformanceObserver` and sent once, when the page is hidden, to
//! `POST /api/vitals` (`navigator.sendBeacon`, which outlives the page).
//!
//! One load in ten is measured (`DC_VITALS_SAMPLE_PERCENT` at build time changes that;
//! `localStorage.dc_vitals = "all"` or `"off"` overrides it in one browser). A load that is not
//! sampled costs one random number.

use std::cell::RefCell;
use std::rc::Rc;

use gloo_events::EventListener;
use gloo_timers::callback::Interval;
use shared::metrics::VitalsReport;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::VisibilityState;

use crate::web;

#[wasm_bindgen]
extern "C" {
    /// The browser's `PerformanceObserver` (bound here: web-sys would add a feature for it).
    type PerformanceObserver;

    #[wasm_bindgen(constructor, catch)]
    fn new(callback: &js_sys::Function) -> Result<PerformanceObserver, JsValue>;

    #[wasm_bindgen(method, catch)]
    fn observe(this: &PerformanceObserver, options: &js_sys::Object) -> Result<(), JsValue>;

    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// The share of page loads measured, in percent.
fn sample_percent() -> f64 {
    option_env!("DC_VITALS_SAMPLE_PERCENT")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| (0.0..=100.0).contains(v))
        .unwrap_or(10.0)
}

/// Whether this page load is measured.
fn sampled() -> bool {
    let stored = js_sys::Reflect::get(&web::window(), &"localStorage".into())
        .ok()
        .and_then(|storage| js_sys::Reflect::get(&storage, &"dc_vitals".into()).ok())
        .and_then(|v| v.as_string());
    match stored.as_deref() {
        Some("all") => true,
        Some("off") => false,
        _ => js_sys::Math::random() * 100.0 < sample_percent(),
    }
}

/// What this page load measured so far.
#[derive(Default)]
struct Measured {
    report: VitalsReport,
    sent: bool,
}

fn number(entry: &JsValue, key: &str) -> Option<f64> {
    js_sys::Reflect::get(entry, &key.into()).ok()?.as_f64()
}

/// Observes entries of `kind` (including those before the observer started), handing each
/// to `take`. An unsupported kind is skipped: the report just lacks that measure.
fn observe(kind: &str, extra: &[(&str, JsValue)], take: impl Fn(&JsValue) + 'static) {
    let callback = Closure::<dyn Fn(JsValue)>::new(move |list: JsValue| {
        let entries = js_sys::Reflect::get(&list, &"getEntries".into())
            .ok()
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .and_then(|f| f.call0(&list).ok())
            .map(|entries| js_sys::Array::from(&entries))
            .unwrap_or_default();
        for entry in entries.iter() {
            take(&entry);
        }
    });
    let options = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&options, &"type".into(), &kind.into());
    let _ = js_sys::Reflect::set(&options, &"buffered".into(), &true.into());
    for (key, value) in extra {
        let _ = js_sys::Reflect::set(&options, &(*key).into(), value);
    }
    let Ok(observer) = PerformanceObserver::new(callback.as_ref().unchecked_ref()) else {
        return;
    };
    if observer.observe(&options).is_ok() {
        // Lives as long as the page.
        callback.forget();
    }
}

/// Sends the report once, if it holds anything.
fn send(measured: &RefCell<Measured>) {
    let mut measured = measured.borrow_mut();
    if measured.sent || measured.report.validate().is_err() {
        return;
    }
    measured.sent = true;
    let Ok(body) = serde_json::to_string(&measured.report) else {
        return;
    };
    let _ = web::window()
        .navigator()
        .send_beacon_with_opt_str("/api/vitals", Some(&body));
}

/// Starts measuring this page load, if it is in the sample.
pub fn start() {
    if !sampled() {
        return;
    }
    let measured = Rc::new(RefCell::new(Measured::default()));
    {
        let measured = Rc::clone(&measured);
        // The last candidate is the largest paint.
        observe("largest-contentful-paint", &[], move |entry| {
            measured.borrow_mut().report.lcp_ms = number(entry, "startTime");
        });
    }
    {
        let measured = Rc::clone(&measured);
        observe("layout-shift", &[], move |entry| {
            let recent_input = js_sys::Reflect::get(entry, &"hadRecentInput".into())
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            if let (false, Some(value)) = (recent_input, number(entry, "value")) {
                let mut m = measured.borrow_mut();
                m.report.cls = Some(m.report.cls.unwrap_or(0.0) + value);
            }
        });
    }
    {
        let measured = Rc::clone(&measured);
        // The slowest interaction of the load (the INP of a page with few interactions).
        observe(
            "event",
            &[("durationThreshold", 16.0.into())],
            move |entry| {
                let interaction = number(entry, "interactionId").unwrap_or(0.0);
                if let (true, Some(duration)) = (interaction > 0.0, number(entry, "duration")) {
                    let mut m = measured.borrow_mut();
                    m.report.inp_ms = Some(m.report.inp_ms.map_or(duration, |d| d.max(duration)));
                }
            },
        );
    }
    {
        // The first stored message on screen: checked a few times a second for a minute.
        let measured = Rc::clone(&measured);
        let polls = Rc::new(RefCell::new(None::<Interval>));
        let held = Rc::clone(&polls);
        let mut left = 300u32;
        *polls.borrow_mut() = Some(Interval::new(200, move || {
            let found = web::window()
                .document()
                .and_then(|d| d.query_selector("li.message[data-seq]").ok().flatten())
                .is_some();
            left = left.saturating_sub(1);
            if found {
                measured.borrow_mut().report.first_message_ms = Some(performance_now());
            }
            if found || left == 0 {
                // Dropped from a later turn: an interval may not cancel itself mid-call.
                let held = Rc::clone(&held);
                wasm_bindgen_futures::spawn_local(async move {
                    held.borrow_mut().take();
                });
            }
        }));
    }
    let Some(document) = web::window().document() else {
        return;
    };
    let hidden = {
        let (measured, document) = (Rc::clone(&measured), document.clone());
        EventListener::new(&document.clone(), "visibilitychange", move |_| {
            if document.visibility_state() == VisibilityState::Hidden {
                send(&measured);
            }
        })
    };
    let gone = EventListener::new(&web::window(), "pagehide", move |_| send(&measured));
    // Both live as long as the page.
    hidden.forget();
    gone.forget();
}
