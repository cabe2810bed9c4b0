//! The `Metrics` Durable Object: one for the whole deployment (`idFromName("global")`). Rooms
//! send it their batches, the Worker sign-ups, vitals and slow requests; it keeps the rollups
//! in its SQLite (`shared::metrics::store`), pushes each change to the open analytics pages'
//! sockets (hibernating, like a room's), and once a minute has closed writes it to Workers
//! Analytics Engine (production) or to D1's `metrics_minutes` (local, where Analytics Engine
//! cannot be queried).
//!
//! One object is enough while rooms report at most every 5 s each: a thousand busy rooms are
//! 200 small requests a second. Past that, rooms would report to one of several shards.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;

use shared::error::{ChatError, ErrorCode};
use shared::metrics::store::{MetricsStore, EVERYWHERE};
use shared::metrics::{
    floor_to, GaugeBook, LiveUpdate, Point, Resolution, Rollup, LIVE_KIND, MINUTE_MS,
};
use shared::protocol::{PING_FRAME, PONG_FRAME};
use shared::room::store::StoreError;
use worker::wasm_bindgen::JsValue;
use worker::{
    console_error, console_warn, durable_object, DurableObject, Env, Request, Response, State,
    WebSocket, WebSocketIncomingMessage, WebSocketPair, WebSocketRequestResponsePair,
};

use super::client::{MetricsCall, SqlRows};
use super::engine;
use crate::http::error_response;
use crate::rooms::store::DurableSql;
use crate::time::now;

/// The live pages hear at most one update a second, however many rooms report.
const PUSH_EVERY_MS: i64 = 1_000;
/// A closed minute is exported this long after it closed (its last batches are in by then).
const EXPORT_DELAY_MS: i64 = 2_000;
/// The tag of the analytics pages' sockets.
const LIVE_TAG: &str = "live";

struct Loaded {
    store: MetricsStore<DurableSql>,
    book: GaugeBook,
}

#[durable_object]
pub struct Metrics {
    state: State,
    env: Env,
    loaded: RefCell<Option<Loaded>>,
    /// When the alarm is set for, as far as this instance knows (saves a storage read per
    /// batch).
    alarm_at: Cell<Option<i64>>,
    last_push: Cell<i64>,
    /// A change arrived within a second of the last push: the alarm sends it.
    push_due: Cell<bool>,
    /// Rooms whose batches the next push carries.
    pending_rooms: RefCell<BTreeSet<String>>,
}

fn storage_error(e: StoreError) -> worker::Error {
    worker::Error::RustError(format!("metrics storage: {e}"))
}

impl DurableObject for Metrics {
    fn new(state: State, env: Env) -> Self {
        match WebSocketRequestResponsePair::new(PING_FRAME, PONG_FRAME) {
            Ok(pair) => state.set_websocket_auto_response(&pair),
            Err(e) => console_warn!("websocket auto-response unavailable: {e:?}"),
        }
        Metrics {
            state,
            env,
            loaded: RefCell::new(None),
            alarm_at: Cell::new(None),
            last_push: Cell::new(0),
            push_due: Cell::new(false),
            pending_rooms: RefCell::new(BTreeSet::new()),
        }
    }

    async fn fetch(&self, mut req: Request) -> worker::Result<Response> {
        match req.path().as_str() {
            "/call" => match req.json::<MetricsCall>().await {
                Ok(call) => self.call(call).await,
                Err(e) => error_response(&ChatError::new(
                    ErrorCode::InvalidFrame,
                    format!("Not a metrics call: {e}"),
                )),
            },
            "/live" => self.accept_live(),
            _ => Response::error("not found", 404),
        }
    }

    async fn websocket_message(
        &self,
        _ws: WebSocket,
        _message: WebSocketIncomingMessage,
    ) -> worker::Result<()> {
        // The pages only listen (keep-alive pings are answered by the runtime).
        Ok(())
    }

    async fn websocket_close(
        &self,
        ws: WebSocket,
        _code: usize,
        _reason: String,
        _was_clean: bool,
    ) -> worker::Result<()> {
        let _ = ws.close(Some(1000), Some("closed"));
        Ok(())
    }

    async fn alarm(&self) -> worker::Result<Response> {
        self.alarm_at.set(None);
        let at = now();
        let minute_start = floor_to(at, MINUTE_MS);
        let (connected, changed) = self.with(|loaded| {
            let mut changed = loaded.store.expire_gauges(&mut loaded.book, at)?;
            let connected = loaded.book.totals().connections > 0;
            // Every minute anyone is connected has a row, so history needs no guessing.
            if connected
                && loaded
                    .store
                    .rollup(Resolution::Minute, EVERYWHERE, minute_start)?
                    .is_none()
            {
                changed = true;
            }
            if changed {
                loaded
                    .store
                    .record_everywhere(&Rollup::default(), &loaded.book, at)?;
            }
            loaded.store.prune(at)?;
            Ok((connected, changed))
        })?;
        if changed || self.push_due.get() {
            self.push(at);
        }
        let more = self.export(minute_start).await;
        let next = if more {
            at + EXPORT_DELAY_MS
        } else if connected {
            minute_start + MINUTE_MS + EXPORT_DELAY_MS
        } else {
            return Response::ok("done");
        };
        self.alarm_by(next).await;
        Response::ok("done")
    }
}

impl Metrics {
    /// Runs `work` on the opened store and gauge book.
    fn with<T>(
        &self,
        work: impl FnOnce(&mut Loaded) -> Result<T, StoreError>,
    ) -> worker::Result<T> {
        let mut loaded = self.loaded.borrow_mut();
        if loaded.is_none() {
            let sql = DurableSql(self.state.storage().sql(), SqlRows::default());
            let store = MetricsStore::open(sql).map_err(storage_error)?;
            let book = store.gauges().map_err(storage_error)?;
            *loaded = Some(Loaded { store, book });
        }
        let loaded = loaded
            .as_mut()
            .ok_or_else(|| worker::Error::RustError("metrics store not open".into()))?;
        work(loaded).map_err(storage_error)
    }

    async fn call(&self, call: MetricsCall) -> worker::Result<Response> {
        let at = now();
        let room = match &call {
            MetricsCall::Report(report) => {
                if let Err(refusal) = report.validate() {
                    return error_response(&refusal);
                }
                Some(report.room.clone())
            }
            _ => None,
        };
        match call {
            MetricsCall::Query(query) => {
                let page = self.with(|loaded| {
                    loaded
                        .store
                        .analytics(query.range, query.room.as_deref(), &loaded.book, at)
                })?;
                return Response::from_json(&page);
            }
            MetricsCall::Slow(slow) => {
                self.with(|loaded| loaded.store.record_slow(&slow))?;
                return Response::from_json(&serde_json::json!({ "ok": true }));
            }
            MetricsCall::Report(report) => {
                self.with(|l| l.store.record_report(&report, &mut l.book, at))?;
            }
            MetricsCall::Account => {
                let delta = Rollup {
                    accounts: 1,
                    ..Rollup::default()
                };
                self.with(|l| l.store.record_everywhere(&delta, &l.book, at))?;
            }
            MetricsCall::Vitals(vitals) => {
                self.with(|l| l.store.record_everywhere(&vitals.rollup(), &l.book, at))?;
            }
        }
        if let Some(room) = room {
            self.pending_rooms.borrow_mut().insert(room);
        }
        if at - self.last_push.get() >= PUSH_EVERY_MS {
            self.push(at);
        } else {
            self.push_due.set(true);
            self.alarm_by(self.last_push.get() + PUSH_EVERY_MS).await;
        }
        // The minute this batch landed in is exported once it closed.
        self.alarm_by(floor_to(at, MINUTE_MS) + MINUTE_MS + EXPORT_DELAY_MS)
            .await;
        Response::from_json(&serde_json::json!({ "ok": true }))
    }

    /// The update the live pages receive: everywhere's current minute so far and who is
    /// connected now.
    fn update(&self, at: i64) -> worker::Result<LiveUpdate> {
        let minute_start = floor_to(at, MINUTE_MS);
        let (minute, current) = self.with(|loaded| {
            let minute = loaded
                .store
                .rollup(Resolution::Minute, EVERYWHERE, minute_start)?
                .unwrap_or_default();
            Ok((minute, loaded.book.totals()))
        })?;
        let peak = minute.peak.unwrap_or(current);
        Ok(LiveUpdate {
            kind: LIVE_KIND.to_owned(),
            minute: Point::of(minute_start, &minute, peak),
            current,
            rooms: std::mem::take(&mut *self.pending_rooms.borrow_mut())
                .into_iter()
                .collect(),
        })
    }

    /// Sends the update to every open page.
    fn push(&self, at: i64) {
        self.push_due.set(false);
        self.last_push.set(at);
        let sockets = self.state.get_websockets_with_tag(LIVE_TAG);
        if sockets.is_empty() {
            self.pending_rooms.borrow_mut().clear();
            return;
        }
        let text = match self.update(at).and_then(|u| {
            serde_json::to_string(&u).map_err(|e| worker::Error::RustError(e.to_string()))
        }) {
            Ok(text) => text,
            Err(e) => {
                console_error!("live metrics update failed: {e}");
                return;
            }
        };
        for ws in sockets {
            // A socket that is closing throws; its close handler cleans up.
            let _ = ws.send_with_str(&text);
        }
    }

    /// An analytics page's socket (the Worker checked that an admin opened it): hibernating,
    /// tagged, and sent the current numbers at once.
    fn accept_live(&self) -> worker::Result<Response> {
        let pair = WebSocketPair::new()?;
        self.state
            .accept_websocket_with_tags(&pair.server, &[LIVE_TAG]);
        let first = self.update(now()).and_then(|mut u| {
            // The first frame names no rooms: it is the state, not a batch.
            u.rooms.clear();
            serde_json::to_string(&u).map_err(|e| worker::Error::RustError(e.to_string()))
        })?;
        let _ = pair.server.send_with_str(&first);
        Response::from_websocket(pair.client)
    }

    /// Makes the alarm fire no later than `at`; an earlier one is kept (it does every duty).
    async fn alarm_by(&self, at: i64) {
        if self.alarm_at.get().is_some_and(|set| set <= at) {
            return;
        }
        let storage = self.state.storage();
        let result = match storage.get_alarm().await {
            Ok(Some(set)) if set <= at => {
                self.alarm_at.set(Some(set));
                Ok(())
            }
            Ok(_) => storage.set_alarm((at - now()).max(1)).await.map(|()| {
                self.alarm_at.set(Some(at));
            }),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            console_error!("could not set the metrics alarm: {e}");
        }
    }

    /// Writes closed minutes (before `before`) to Analytics Engine, or to D1 where there is no
    /// `ANALYTICS` binding (local development). Returns whether some are left for next time.
    async fn export(&self, before: i64) -> bool {
        let rows = match self.with(|loaded| loaded.store.unexported(before)) {
            Ok(rows) => rows,
            Err(e) => {
                console_error!("metrics export: {e}");
                return false;
            }
        };
        if rows.is_empty() {
            return false;
        }
        let full = rows.len() == shared::metrics::store::EXPORT_BATCH;
        let written = match self.env.analytics_engine("ANALYTICS") {
            Ok(dataset) => write_engine(&dataset, &rows),
            Err(_) => match write_d1(&self.env, &rows).await {
                Ok(()) => rows.len(),
                Err(e) => {
                    // Kept unexported: tried again at the next alarm.
                    console_error!("metrics export to D1 failed: {e}");
                    return false;
                }
            },
        };
        let marked = self.with(|loaded| {
            for (at, room, _) in &rows[..written] {
                loaded.store.mark_exported(*at, room)?;
            }
            Ok(())
        });
        if let Err(e) = marked {
            console_error!("metrics export: {e}");
        }
        full || written < rows.len()
    }
}

/// Writes as many rows as one invocation may (their data points, at most
/// [`engine::POINTS_PER_INVOCATION`]); returns how many rows went.
fn write_engine(dataset: &worker::AnalyticsEngineDataset, rows: &[(i64, String, Rollup)]) -> usize {
    let mut budget = engine::POINTS_PER_INVOCATION;
    for (i, (at, room, rollup)) in rows.iter().enumerate() {
        let points = engine::data_points(*at, room, rollup);
        if points.len() > budget {
            return i;
        }
        budget -= points.len();
        if let Err(e) = engine::write(dataset, &points) {
            console_error!("Analytics Engine write failed: {e}");
            return i;
        }
    }
    rows.len()
}

/// The local stand-in: one row per minute and room in D1's `metrics_minutes`
/// (migrations/0008_metrics.sql), the main counts as columns and the whole rollup as JSON.
async fn write_d1(env: &Env, rows: &[(i64, String, Rollup)]) -> worker::Result<()> {
    let db = env.d1(crate::directory::BINDING)?;
    let mut statements = Vec::with_capacity(rows.len());
    for (at, room, rollup) in rows {
        let peak = rollup.peak.unwrap_or_default();
        let percentile = |h: &shared::metrics::Histogram, q| {
            h.percentile(q).map_or(JsValue::NULL, |v| (v as f64).into())
        };
        let data =
            serde_json::to_string(rollup).map_err(|e| worker::Error::RustError(e.to_string()))?;
        let count = |v: u64| JsValue::from(v as f64);
        statements.push(
            db.prepare(
                "INSERT INTO metrics_minutes (minute, room, messages, answers, answers_failed,
                   up, down, accounts, events, connects, connections, users, rooms, rows_read,
                   rows_written, first_token_p50, first_token_p99, total_p50, total_p99, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                   ?17, ?18, ?19, ?20)
                 ON CONFLICT (minute, room) DO UPDATE SET
                   messages = excluded.messages, answers = excluded.answers,
                   answers_failed = excluded.answers_failed, up = excluded.up,
                   down = excluded.down, accounts = excluded.accounts,
                   events = excluded.events, connects = excluded.connects,
                   connections = excluded.connections, users = excluded.users,
                   rooms = excluded.rooms, rows_read = excluded.rows_read,
                   rows_written = excluded.rows_written,
                   first_token_p50 = excluded.first_token_p50,
                   first_token_p99 = excluded.first_token_p99,
                   total_p50 = excluded.total_p50, total_p99 = excluded.total_p99,
                   data = excluded.data",
            )
            .bind(&[
                (*at as f64).into(),
                room.as_str().into(),
                count(rollup.messages),
                count(rollup.answers),
                count(rollup.answers_failed),
                count(rollup.up),
                count(rollup.down),
                count(rollup.accounts),
                count(rollup.events),
                count(rollup.connects),
                count(peak.connections),
                count(peak.users),
                count(peak.rooms),
                count(rollup.rows_read),
                count(rollup.rows_written),
                percentile(&rollup.first_token_ms, 0.5),
                percentile(&rollup.first_token_ms, 0.99),
                percentile(&rollup.total_ms, 0.5),
                percentile(&rollup.total_ms, 0.99),
                data.into(),
            ])?,
        );
    }
    db.batch(statements).await?;
    Ok(())
}
