//! Live analytics and performance monitoring (issue 12), the Worker's side: the analytics
//! routes, browser vitals, sign-ups and slow requests sent to the aggregating [`Metrics`]
//! object, and `Server-Timing` on API responses ([`timing`]).
//!
//! Rooms count in memory (`shared::metrics::RoomMeter`) and report a batch at most every 5 s on
//! their alarm; the aggregator keeps per-minute, hourly and daily rollups and pushes changes to
//! open analytics pages. History comes from the aggregator, or in production from Workers
//! Analytics Engine's SQL API when `ANALYTICS_ACCOUNT_ID` and `ANALYTICS_API_TOKEN` are set
//! ([`engine`]).

pub mod client;
mod engine;
mod object;
pub mod timing;

use shared::error::ErrorCode;
use shared::metrics::{
    route_of, Analytics, Range, SlowRequest, VitalsReport, SLOW_REQUEST_MS_DEFAULT,
    VITALS_MAX_BYTES,
};
use worker::{console_error, Context, Env, Headers, Method, Request, RequestInit, Response};

use client::{post, send, MetricsCall, Query, BINDING, LIVE_URL, OBJECT_NAME};

use crate::http::{
    check_origin, client_ip, fail, json, query_param, rate_limit, ApiError, ApiResult,
};
use crate::time::now;
pub use object::Metrics;

fn range_of(req: &Request) -> Result<Range, ApiError> {
    match query_param(req, "range") {
        None => Ok(Range::Day),
        Some(text) => Range::parse(&text)
            .ok_or_else(|| fail(ErrorCode::InvalidInput, "range must be 1h, 24h or 30d.")),
    }
}

/// A page's numbers: the aggregator's, with history from Analytics Engine when production
/// configured its SQL API (the aggregator's own rollups if that fails, with a warning).
async fn page(env: &Env, range: Range, room: Option<&str>) -> Result<Analytics, ApiError> {
    let query = MetricsCall::Query(Query {
        range,
        room: room.map(str::to_owned),
    });
    let mut page: Analytics = post(env, &query).await?.json().await?;
    let api = engine::SqlApi::from_settings(
        crate::config::string(env, "ANALYTICS_ACCOUNT_ID"),
        crate::config::string(env, "ANALYTICS_API_TOKEN"),
    );
    if let Some(api) = api {
        match engine::history(&api, range, room, page.now).await {
            Ok(history) => {
                // The minute still open is not in Analytics Engine yet: the aggregator's.
                let open = page.points.last().cloned();
                page.points = history.points;
                if let (Some(open), Some(last)) = (open, page.points.last_mut()) {
                    if last.at == open.at {
                        *last = open;
                    }
                }
                // Connected now is the aggregator's to say.
                for line in &mut page.rooms {
                    if let Some(h) = history.rooms.iter().find(|h| h.room == line.room) {
                        *line = shared::metrics::RoomLine {
                            connections: line.connections,
                            users: line.users,
                            ..h.clone()
                        };
                    }
                }
                page.source = shared::metrics::Source::AnalyticsEngine;
            }
            Err(e) => {
                console_error!("Analytics Engine history failed: {}", e.0);
                page.warning = Some(
                    "Analytics Engine did not answer; this is the aggregator's own history.".into(),
                );
            }
        }
    }
    Ok(page)
}

/// `GET /api/admin/analytics?range=1h|24h|30d`: everywhere's numbers, for global admins only;
/// anyone else is told there is no such API.
pub async fn admin_analytics(req: &Request, env: &Env, admin: bool) -> ApiResult {
    if !admin {
        return Err(no_api(req));
    }
    let range = range_of(req)?;
    Ok(json(&page(env, range, None).await?, 200)?)
}

/// `GET /api/rooms/<slug>/analytics?range=…`: one room's numbers, for its owner and global
/// admins; to anyone else the room does not exist (`not_found`), as for a private room.
pub async fn room_analytics(req: &Request, env: &Env, slug: &str, allowed: bool) -> ApiResult {
    if !allowed {
        return Err(fail(
            ErrorCode::NotFound,
            format!("There is no room named {slug}."),
        ));
    }
    let range = range_of(req)?;
    Ok(json(&page(env, range, Some(slug)).await?, 200)?)
}

/// `GET /api/admin/analytics/live`: an analytics page's socket, handed to the aggregator.
pub async fn live(req: &Request, env: &Env, admin: bool) -> ApiResult {
    if !admin {
        return Err(no_api(req));
    }
    let upgrade = req.headers().get("Upgrade")?.unwrap_or_default();
    if !upgrade.eq_ignore_ascii_case("websocket") {
        return Err(fail(
            ErrorCode::InvalidInput,
            "This endpoint takes a WebSocket upgrade.",
        ));
    }
    check_origin(req, true)?;
    let headers = Headers::new();
    headers.set("Upgrade", "websocket")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Get).with_headers(headers);
    let inner = Request::new_with_init(LIVE_URL, &init)?;
    let stub = env.durable_object(BINDING)?.get_by_name(OBJECT_NAME)?;
    Ok(stub.fetch_with_request(inner).await?)
}

fn no_api(req: &Request) -> ApiError {
    fail(ErrorCode::NotFound, format!("No API at {}.", req.path()))
}

/// `POST /api/vitals`: one page load's web vitals. Rate-limited per address
/// (`VITALS_LIMITER`), capped at [`VITALS_MAX_BYTES`], every value range-checked; answered
/// 204. No session needed: the sign-in page is measured too.
pub async fn vitals(mut req: Request, env: &Env) -> ApiResult {
    check_origin(&req, false)?;
    rate_limit(env, "VITALS_LIMITER", client_ip(&req)).await?;
    let body = crate::body::read_capped(&mut req, VITALS_MAX_BYTES)
        .await
        .or_else(|e| Err(ApiError::from(e.into_chat_error("A vitals report")?)))?;
    let report: VitalsReport = serde_json::from_slice(&body).map_err(|e| {
        fail(
            ErrorCode::InvalidFrame,
            format!("A vitals report is JSON with lcp_ms, inp_ms, cls and first_message_ms: {e}"),
        )
    })?;
    report.validate()?;
    send(env, &MetricsCall::Vitals(report)).await?;
    let mut response = Response::empty()?.with_status(204);
    response.headers_mut().set("Cache-Control", "no-store")?;
    Ok(response)
}

/// The threshold past which a request is listed as slow (`SLOW_REQUEST_MS`).
fn slow_threshold_ms(env: &Env) -> f64 {
    crate::config::string(env, "SLOW_REQUEST_MS")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v > 0.0)
        .unwrap_or(SLOW_REQUEST_MS_DEFAULT as f64)
}

/// At most one slow request a second is recorded per isolate: when everything is slow, the
/// aggregator must not also get a request per request.
fn slow_slot_free(now_ms: f64) -> bool {
    thread_local! {
        static LAST: std::cell::Cell<f64> = const { std::cell::Cell::new(f64::MIN) };
    }
    LAST.with(|last| {
        if now_ms - last.get() < 1_000.0 {
            return false;
        }
        last.set(now_ms);
        true
    })
}

/// Adds `Server-Timing` to an API response (not to a socket upgrade, whose headers are the
/// runtime's and the room's), and sends a slow request's timings to the aggregator once the
/// response is on its way ([`slow_slot_free`] permitting).
pub fn finish(
    response: &mut Response,
    phases: &timing::Phases,
    total_ms: f64,
    env: &Env,
    ctx: &Context,
    method: &str,
    path: &str,
) {
    let status = response.status_code();
    if status == 101 {
        return;
    }
    // A response passed through from elsewhere may have immutable headers: then it goes
    // without.
    let _ = response
        .headers_mut()
        .set("Server-Timing", &phases.header(total_ms));
    if total_ms < slow_threshold_ms(env) || !slow_slot_free(timing::now_ms()) {
        return;
    }
    let slow = SlowRequest {
        at: now(),
        method: method.to_owned(),
        route: route_of(path),
        status,
        ms: (total_ms * 10.0).round() / 10.0,
        phases: phases.to_vec(),
    };
    let env = env.clone();
    ctx.wait_until(async move {
        if let Err(e) = send(&env, &MetricsCall::Slow(slow)).await {
            console_error!("recording a slow request failed: {e}");
        }
    });
}
