//! How rooms and the Worker reach the aggregating `Metrics` object: one typed call enum, one
//! client function. A leaf module (it names nothing else of the crate), so the room object, the
//! room store and sign-up can use it without import cycles.

use std::cell::Cell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};
use shared::metrics::{Range, RoomReport, SlowRequest, VitalsReport};
use worker::{console_error, Env, Headers, Method, Request, RequestInit, Response};

/// The aggregator's Durable Object namespace.
pub const BINDING: &str = "METRICS";
/// The one aggregator's name.
pub(super) const OBJECT_NAME: &str = "global";
const CALL_URL: &str = "https://metrics.internal/call";
pub(super) const LIVE_URL: &str = "https://metrics.internal/live";

/// SQLite rows read and written by one object's statements, counted as they run and taken
/// with each report.
#[derive(Clone, Default)]
pub struct SqlRows(Rc<Cell<(u64, u64)>>);

impl SqlRows {
    /// Adds one statement's rows.
    pub fn add(&self, read: usize, written: usize) {
        let (r, w) = self.0.get();
        self.0.set((
            r.saturating_add(read as u64),
            w.saturating_add(written as u64),
        ));
    }

    /// The rows since the last take.
    pub fn take(&self) -> (u64, u64) {
        self.0.replace((0, 0))
    }
}

/// What the aggregator is asked, by rooms and by the Worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "call", content = "body", rename_all = "snake_case")]
// Built once per request and sent at once: boxing the batch would only add noise.
#[allow(clippy::large_enum_variant)]
pub enum MetricsCall {
    /// A room's batch.
    Report(RoomReport),
    /// An account was created.
    Account,
    /// A page load's vitals (validated by the Worker).
    Vitals(VitalsReport),
    /// A slow request.
    Slow(SlowRequest),
    /// A page's numbers.
    Query(Query),
}

/// A page's numbers: everywhere's, or one room's.
#[derive(Debug, Serialize, Deserialize)]
pub struct Query {
    /// The range shown.
    pub range: Range,
    /// One room only.
    #[serde(default)]
    pub room: Option<String>,
}

pub(super) async fn post(env: &Env, call: &MetricsCall) -> worker::Result<Response> {
    let body = serde_json::to_string(call).map_err(|e| worker::Error::RustError(e.to_string()))?;
    let headers = Headers::new();
    headers.set("Content-Type", "application/json")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(body.into()));
    let req = Request::new_with_init(CALL_URL, &init)?;
    let stub = env.durable_object(BINDING)?.get_by_name(OBJECT_NAME)?;
    let response = stub.fetch_with_request(req).await?;
    if response.status_code() >= 400 {
        return Err(worker::Error::RustError(format!(
            "the metrics object answered {}",
            response.status_code()
        )));
    }
    Ok(response)
}

/// Sends something to count.
pub async fn send(env: &Env, call: &MetricsCall) -> worker::Result<()> {
    post(env, call).await.map(|_| ())
}

/// A room's batch (from its alarm). A lost batch is logged, never retried: it is analytics.
pub async fn report_room(env: &Env, report: RoomReport) {
    let room = report.room.clone();
    if let Err(e) = send(env, &MetricsCall::Report(report)).await {
        console_error!("metrics report of {room} failed: {e}");
    }
}

/// A sign-up, counted in the minute it happened.
pub async fn account_created(env: &Env) {
    if let Err(e) = send(env, &MetricsCall::Account).await {
        console_error!("counting a new account failed: {e}");
    }
}
