//! Workers Analytics Engine in production: closed minutes written as data points (`ANALYTICS`,
//! `writeDataPoint`), and history read back through the SQL API
//! (`POST /client/v4/accounts/<id>/analytics_engine/sql`, a bearer token with Account Analytics
//! Read) when `ANALYTICS_ACCOUNT_ID` and `ANALYTICS_API_TOKEN` are set.
//!
//! The layout of a data point, which the queries below read back:
//!
//! | kind | index1 | blob1 | blob2 | blob3 | doubles |
//! | --- | --- | --- | --- | --- | --- |
//! | a minute's counts | room, or `*` | `minute` | room (`''` everywhere) | | 1 messages, 2 answers, 3 answers failed, 4 up, 5 down, 6 accounts, 7 events, 8 connects, 9 peak connections, 10 peak users, 11 peak rooms, 12 rows read, 13 rows written, 14 DB bytes, 15 the minute (ms) |
//! | one histogram bucket | room, or `*` | `dist` | room | metric | 1 value, 2 count, 15 the minute |
//!
//! Analytics Engine samples rows at high volume; every sum is weighted by `_sample_interval`.

use serde_json::Value;
use shared::metrics::{
    floor_to, Analytics, Gauges, Percentiles, Point, Range, Rollup, RoomLine, Source,
};

/// The dataset `wrangler.toml` binds as `ANALYTICS` (checked by a test).
pub const DATASET: &str = "durable_chat_events";
/// Data points one invocation may write (the platform's limit is 250).
pub const POINTS_PER_INVOCATION: usize = 240;

/// The histograms exported, by the name the queries use.
const DISTRIBUTIONS: [&str; 9] = [
    "first_token_ms",
    "total_ms",
    "broadcast_us",
    "fanout",
    "alarm_lag_ms",
    "lcp_ms",
    "inp_ms",
    "cls_milli",
    "first_message_ms",
];

fn histogram<'a>(rollup: &'a Rollup, name: &str) -> Option<&'a shared::metrics::Histogram> {
    Some(match name {
        "first_token_ms" => &rollup.first_token_ms,
        "total_ms" => &rollup.total_ms,
        "broadcast_us" => &rollup.broadcast_us,
        "fanout" => &rollup.fanout,
        "alarm_lag_ms" => &rollup.alarm_lag_ms,
        "lcp_ms" => &rollup.lcp_ms,
        "inp_ms" => &rollup.inp_ms,
        "cls_milli" => &rollup.cls_milli,
        "first_message_ms" => &rollup.first_message_ms,
        _ => return None,
    })
}

/// One data point, as `writeDataPoint` takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct DataPoint {
    /// The sampling key.
    pub index: String,
    /// blob1…
    pub blobs: Vec<String>,
    /// double1…
    pub doubles: Vec<f64>,
}

/// The data points of one minute's rollup (see the module's table).
pub fn data_points(minute: i64, room: &str, rollup: &Rollup) -> Vec<DataPoint> {
    let index = if room.is_empty() { "*" } else { room }.to_owned();
    let peak = rollup.peak.unwrap_or_default();
    let last = rollup.last.unwrap_or_default();
    let counts = [
        rollup.messages,
        rollup.answers,
        rollup.answers_failed,
        rollup.up,
        rollup.down,
        rollup.accounts,
        rollup.events,
        rollup.connects,
        peak.connections,
        peak.users,
        peak.rooms,
        rollup.rows_read,
        rollup.rows_written,
        last.db_bytes,
    ];
    let mut doubles: Vec<f64> = counts.iter().map(|v| *v as f64).collect();
    doubles.push(minute as f64);
    let mut points = vec![DataPoint {
        index: index.clone(),
        blobs: vec!["minute".into(), room.into()],
        doubles,
    }];
    for name in DISTRIBUTIONS {
        let Some(h) = histogram(rollup, name) else {
            continue;
        };
        for (value, count) in h.weighted() {
            let mut doubles = vec![value as f64, count as f64];
            // double15 is the minute in every kind of point.
            doubles.resize(14, 0.0);
            doubles.push(minute as f64);
            points.push(DataPoint {
                index: index.clone(),
                blobs: vec!["dist".into(), room.into(), name.into()],
                doubles,
            });
        }
    }
    points
}

/// Writes data points to the `ANALYTICS` dataset.
pub fn write(dataset: &worker::AnalyticsEngineDataset, points: &[DataPoint]) -> worker::Result<()> {
    for point in points {
        let builder = worker::AnalyticsEngineDataPointBuilder::new()
            .indexes([point.index.as_str()])
            .blobs(point.blobs.iter().map(String::as_str))
            .doubles(point.doubles.iter().copied());
        dataset.write_data_point(&builder.build())?;
    }
    Ok(())
}

/// A string literal for the SQL API, which takes no parameters: slugs are `[a-z0-9-]` by the
/// time they get here, and quotes and backslashes are escaped anyway.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('\'');
    for c in text.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// The first period start and the period length (s) of a range's points.
fn window(range: Range, now: i64) -> (i64, i64) {
    let res = range.points();
    (range.start(now, res), res.step_ms() / 1000)
}

/// How many whole days back the `timestamp` filter reaches (written a minute or two after
/// the minute they hold, so one day more than the range).
fn days_back(range: Range) -> i64 {
    range.span_ms() / shared::metrics::DAY_MS + 1
}

/// The sums of a room's (or everywhere's) minutes per period of the range.
pub fn series_sql(range: Range, room: &str, now: i64) -> String {
    let (start, step) = window(range, now);
    format!(
        "SELECT intDiv(toUInt64(double15 / 1000), {step}) * {step} AS t, \
         SUM(_sample_interval * double1) AS messages, \
         SUM(_sample_interval * double2) AS answers, \
         SUM(_sample_interval * double3) AS answers_failed, \
         SUM(_sample_interval * double4) AS up, \
         SUM(_sample_interval * double5) AS down, \
         SUM(_sample_interval * double6) AS accounts, \
         SUM(_sample_interval * double7) AS events, \
         MAX(double9) AS connections, MAX(double10) AS users, MAX(double11) AS rooms \
         FROM {DATASET} \
         WHERE blob1 = 'minute' AND blob2 = {room} AND double15 >= {start} \
         AND timestamp > NOW() - INTERVAL '{days}' DAY \
         GROUP BY t ORDER BY t FORMAT JSON",
        room = literal(room),
        days = days_back(range),
    )
}

/// p50 and p99 of the assistant's latency and the fan-out time per period.
pub fn series_dists_sql(range: Range, room: &str, now: i64) -> String {
    let (start, step) = window(range, now);
    format!(
        "SELECT intDiv(toUInt64(double15 / 1000), {step}) * {step} AS t, blob3 AS metric, \
         quantileExactWeighted(0.5)(double1, toUInt64(double2 * _sample_interval)) AS p50, \
         quantileExactWeighted(0.99)(double1, toUInt64(double2 * _sample_interval)) AS p99 \
         FROM {DATASET} \
         WHERE blob1 = 'dist' AND blob2 = {room} AND double15 >= {start} \
         AND blob3 IN ('first_token_ms', 'total_ms', 'broadcast_us') \
         AND timestamp > NOW() - INTERVAL '{days}' DAY \
         GROUP BY t, metric ORDER BY t FORMAT JSON",
        room = literal(room),
        days = days_back(range),
    )
}

/// Per-room totals over the range (one room's, if named), busiest first.
pub fn lines_sql(range: Range, room: Option<&str>, now: i64) -> String {
    let start = range.start(now, range.points());
    let rooms = match room {
        Some(room) => format!("blob2 = {}", literal(room)),
        None => "blob2 != ''".to_owned(),
    };
    format!(
        "SELECT blob2 AS room, \
         SUM(_sample_interval * double1) AS messages, \
         SUM(_sample_interval * double2) AS answers, \
         SUM(_sample_interval * double3) AS answers_failed, \
         SUM(_sample_interval * double4) AS up, \
         SUM(_sample_interval * double5) AS down, \
         SUM(_sample_interval * double7) AS events, \
         SUM(_sample_interval * double8) AS connects, \
         MAX(double9) AS peak_connections, \
         SUM(_sample_interval * double12) AS rows_read, \
         SUM(_sample_interval * double13) AS rows_written, \
         MAX(double14) AS db_bytes \
         FROM {DATASET} \
         WHERE blob1 = 'minute' AND {rooms} AND double15 >= {start} \
         AND timestamp > NOW() - INTERVAL '{days}' DAY \
         GROUP BY room ORDER BY messages DESC LIMIT 100 FORMAT JSON",
        days = days_back(range),
    )
}

/// Per-room p50 and p99 of every distribution a room reports.
pub fn lines_dists_sql(range: Range, room: Option<&str>, now: i64) -> String {
    let start = range.start(now, range.points());
    let rooms = match room {
        Some(room) => format!("blob2 = {}", literal(room)),
        None => "blob2 != ''".to_owned(),
    };
    format!(
        "SELECT blob2 AS room, blob3 AS metric, \
         quantileExactWeighted(0.5)(double1, toUInt64(double2 * _sample_interval)) AS p50, \
         quantileExactWeighted(0.99)(double1, toUInt64(double2 * _sample_interval)) AS p99 \
         FROM {DATASET} \
         WHERE blob1 = 'dist' AND {rooms} AND double15 >= {start} \
         AND timestamp > NOW() - INTERVAL '{days}' DAY \
         GROUP BY room, metric FORMAT JSON",
        days = days_back(range),
    )
}

/// Why the SQL API's answer could not be used.
#[derive(Debug, PartialEq)]
pub struct Unreadable(pub String);

/// The rows of a `FORMAT JSON` answer (`{"meta": […], "data": [{…}], "rows": n}`).
pub fn rows(body: &str) -> Result<Vec<serde_json::Map<String, Value>>, Unreadable> {
    let value: Value =
        serde_json::from_str(body).map_err(|e| Unreadable(format!("not JSON: {e}")))?;
    let data = value
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| Unreadable("no `data` array".into()))?;
    Ok(data
        .iter()
        .filter_map(|row| row.as_object().cloned())
        .collect())
}

/// A number from a row: 64-bit integers come as strings in ClickHouse's JSON.
fn number(row: &serde_json::Map<String, Value>, key: &str) -> Option<f64> {
    match row.get(key)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .filter(|v| v.is_finite())
}

fn count(row: &serde_json::Map<String, Value>, key: &str) -> u64 {
    number(row, key).map_or(0, |v| v.max(0.0).round() as u64)
}

fn text(row: &serde_json::Map<String, Value>, key: &str) -> String {
    row.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn percentiles(row: &serde_json::Map<String, Value>) -> Percentiles {
    let read = |key| number(row, key).map(|v| v.max(0.0).round() as u64);
    Percentiles {
        p50: read("p50"),
        p99: read("p99"),
    }
}

/// The four answers of a page's queries, as read.
pub struct Answers<'a> {
    /// [`series_sql`]'s.
    pub series: &'a str,
    /// [`series_dists_sql`]'s.
    pub series_dists: &'a str,
    /// [`lines_sql`]'s.
    pub lines: &'a str,
    /// [`lines_dists_sql`]'s.
    pub lines_dists: &'a str,
}

/// A page's history from the SQL API's answers: a dense series (periods without a row are
/// zero: the aggregator writes a row for every minute anyone is connected) and the room lines.
pub fn analytics(range: Range, now: i64, answers: &Answers<'_>) -> Result<Analytics, Unreadable> {
    let (start, step_s) = window(range, now);
    let step_ms = step_s * 1000;
    let end = floor_to(now, step_ms);
    let mut points: Vec<Point> = Vec::new();
    let mut at = start;
    while at <= end {
        points.push(Point {
            at,
            ..Point::default()
        });
        at += step_ms;
    }
    let slot = |t: f64| -> Option<usize> {
        let at = (t as i64).checked_mul(1000)?;
        (at >= start && at <= end).then(|| ((at - start) / step_ms) as usize)
    };
    for row in rows(answers.series)? {
        let Some(i) = number(&row, "t").and_then(slot) else {
            continue;
        };
        let point = &mut points[i];
        point.messages = count(&row, "messages");
        point.answers = count(&row, "answers");
        point.answers_failed = count(&row, "answers_failed");
        point.up = count(&row, "up");
        point.down = count(&row, "down");
        point.accounts = count(&row, "accounts");
        point.events = count(&row, "events");
        point.connections = count(&row, "connections");
        point.users = count(&row, "users");
        point.rooms = count(&row, "rooms");
    }
    for row in rows(answers.series_dists)? {
        let Some(i) = number(&row, "t").and_then(slot) else {
            continue;
        };
        let value = percentiles(&row);
        match text(&row, "metric").as_str() {
            "first_token_ms" => points[i].first_token = value,
            "total_ms" => points[i].total = value,
            "broadcast_us" => points[i].broadcast_us = value,
            _ => {}
        }
    }
    let mut lines: Vec<RoomLine> = Vec::new();
    for row in rows(answers.lines)? {
        let room = text(&row, "room");
        if room.is_empty() {
            continue;
        }
        let rollup = Rollup {
            messages: count(&row, "messages"),
            answers: count(&row, "answers"),
            answers_failed: count(&row, "answers_failed"),
            up: count(&row, "up"),
            down: count(&row, "down"),
            events: count(&row, "events"),
            connects: count(&row, "connects"),
            rows_read: count(&row, "rows_read"),
            rows_written: count(&row, "rows_written"),
            peak: Some(Gauges {
                connections: count(&row, "peak_connections"),
                ..Gauges::default()
            }),
            last: Some(Gauges {
                db_bytes: count(&row, "db_bytes"),
                ..Gauges::default()
            }),
            ..Rollup::default()
        };
        lines.push(RoomLine::of(&room, &rollup, range, None));
    }
    for row in rows(answers.lines_dists)? {
        let room = text(&row, "room");
        let Some(line) = lines.iter_mut().find(|l| l.room == room) else {
            continue;
        };
        let value = percentiles(&row);
        match text(&row, "metric").as_str() {
            "first_token_ms" => line.first_token = value,
            "total_ms" => line.total = value,
            "broadcast_us" => line.broadcast_us = value,
            "fanout" => line.fanout = value,
            "alarm_lag_ms" => line.alarm_lag_ms = value,
            _ => {}
        }
    }
    Ok(Analytics {
        range: Some(range),
        step_ms,
        now,
        source: Source::AnalyticsEngine,
        points,
        rooms: lines,
        ..Analytics::default()
    })
}

/// The SQL API's address and token, when production configured them.
#[derive(Clone)]
pub struct SqlApi {
    /// `https://api.cloudflare.com/client/v4/accounts/<id>/analytics_engine/sql`.
    pub url: String,
    /// The bearer token.
    pub token: String,
}

impl SqlApi {
    /// From `ANALYTICS_ACCOUNT_ID` and `ANALYTICS_API_TOKEN`; `None` unless both are set.
    pub fn from_settings(account: Option<String>, token: Option<String>) -> Option<SqlApi> {
        let account = account.filter(|a| {
            !a.is_empty() && a.len() <= 64 && a.bytes().all(|b| b.is_ascii_alphanumeric())
        })?;
        let token = token.filter(|t| !t.trim().is_empty())?;
        Some(SqlApi {
            url: format!(
                "https://api.cloudflare.com/client/v4/accounts/{account}/analytics_engine/sql"
            ),
            token: token.trim().to_owned(),
        })
    }
}

/// Runs one query.
async fn run(api: &SqlApi, sql: String) -> Result<String, Unreadable> {
    use worker::{Fetch, Headers, Method, Request, RequestInit};
    let failed = |e: worker::Error| Unreadable(e.to_string());
    let headers = Headers::new();
    headers
        .set("Authorization", &format!("Bearer {}", api.token))
        .map_err(failed)?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(sql.into()));
    let request = Request::new_with_init(&api.url, &init).map_err(failed)?;
    let mut response = Fetch::Request(request).send().await.map_err(failed)?;
    let status = response.status_code();
    let body = response.text().await.map_err(failed)?;
    if status != 200 {
        // The API's error text may quote the query; the caller logs it, never a client.
        return Err(Unreadable(format!(
            "status {status}: {}",
            body.chars().take(300).collect::<String>()
        )));
    }
    Ok(body)
}

/// A page's history from Analytics Engine (`room`: one room's, else everywhere's).
pub async fn history(
    api: &SqlApi,
    range: Range,
    room: Option<&str>,
    now: i64,
) -> Result<Analytics, Unreadable> {
    let everywhere = room.unwrap_or("");
    let (series, series_dists, lines, lines_dists) = futures_util::future::join4(
        run(api, series_sql(range, everywhere, now)),
        run(api, series_dists_sql(range, everywhere, now)),
        run(api, lines_sql(range, room, now)),
        run(api, lines_dists_sql(range, room, now)),
    )
    .await;
    analytics(
        range,
        now,
        &Answers {
            series: &series?,
            series_dists: &series_dists?,
            lines: &lines?,
            lines_dists: &lines_dists?,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::metrics::{HOUR_MS, MINUTE_MS};

    const NOW: i64 = 1_767_225_600_000 + 10 * HOUR_MS + 30 * MINUTE_MS + 12_000;

    #[test]
    fn the_dataset_is_the_one_wrangler_toml_binds_as_analytics() {
        let config = include_str!("../../../wrangler.toml");
        let binding = config
            .split("analytics_engine_datasets]]")
            .nth(1)
            .expect("an Analytics Engine binding");
        assert!(binding.contains("binding = \"ANALYTICS\""), "{binding}");
        assert!(
            binding.contains(&format!("dataset = \"{DATASET}\"")),
            "{binding}"
        );
    }

    #[test]
    fn a_minute_becomes_one_counts_point_and_one_point_per_histogram_bucket() {
        let mut rollup = Rollup {
            messages: 7,
            up: 2,
            rows_read: 40,
            ..Rollup::default()
        }
        .with_gauges(Gauges {
            connections: 3,
            users: 2,
            rooms: 1,
            db_bytes: 8192,
            ..Gauges::default()
        });
        rollup.first_token_ms.record(300);
        rollup.first_token_ms.record(300);
        rollup.total_ms.record(2_000);
        let minute = floor_to(NOW, MINUTE_MS);
        let points = data_points(minute, "lobby", &rollup);
        assert_eq!(points.len(), 3);
        let counts = &points[0];
        assert_eq!(counts.index, "lobby");
        assert_eq!(counts.blobs, ["minute", "lobby"]);
        assert_eq!(counts.doubles.len(), 15);
        assert_eq!((counts.doubles[0], counts.doubles[3]), (7.0, 2.0));
        assert_eq!(counts.doubles[8], 3.0, "double9: peak connections");
        assert_eq!(counts.doubles[13], 8192.0, "double14: database size");
        assert_eq!(counts.doubles[14], minute as f64, "double15: the minute");
        let first_token = &points[1];
        assert_eq!(first_token.blobs, ["dist", "lobby", "first_token_ms"]);
        assert_eq!(first_token.doubles[1], 2.0, "two answers in that bucket");
        assert_eq!(first_token.doubles[14], minute as f64);
        assert!(points
            .iter()
            .all(|p| p.doubles.len() <= 20 && p.blobs.len() <= 20));
        assert_eq!(data_points(minute, "", &Rollup::default())[0].index, "*");
    }

    #[test]
    fn queries_weight_by_the_sample_interval_bucket_by_the_recorded_minute_and_quote_rooms() {
        let sql = series_sql(Range::Day, "lobby", NOW);
        let start = Range::Day.start(NOW, Range::Day.points());
        assert!(
            sql.contains("intDiv(toUInt64(double15 / 1000), 60) * 60 AS t"),
            "{sql}"
        );
        assert!(
            sql.contains("SUM(_sample_interval * double1) AS messages"),
            "{sql}"
        );
        assert!(sql.contains(&format!("double15 >= {start}")), "{sql}");
        assert!(sql.contains("blob2 = 'lobby'"), "{sql}");
        assert!(sql.contains("FROM durable_chat_events"), "{sql}");
        assert!(sql.contains("INTERVAL '2' DAY"), "{sql}");
        assert!(series_sql(Range::Month, "", NOW).contains("3600) * 3600 AS t"));
        let dists = series_dists_sql(Range::Day, "", NOW);
        assert!(
            dists.contains(
                "quantileExactWeighted(0.99)(double1, toUInt64(double2 * _sample_interval))"
            ),
            "{dists}"
        );
        assert!(lines_sql(Range::Month, None, NOW).contains("blob2 != ''"));
        assert!(lines_dists_sql(Range::Day, Some("a'b"), NOW).contains(r"blob2 = 'a\'b'"));
        assert_eq!(literal("x\\' OR 1=1 --\n"), r"'x\\\' OR 1=1 --'");
    }

    /// Answers recorded from the SQL API (`FORMAT JSON`, ClickHouse's shape: 64-bit integers as
    /// strings, floats as numbers), for the last 24 hours of a small deployment.
    fn recorded(minute: i64) -> (String, String, String, String) {
        let t = minute / 1000;
        let series = format!(
            r#"{{"meta":[{{"name":"t","type":"UInt64"}},{{"name":"messages","type":"Float64"}}],
            "data":[
              {{"t":"{t0}","messages":12,"answers":2,"answers_failed":0,"up":1,"down":1,
                "accounts":0,"events":20,"connections":5,"users":4,"rooms":2}},
              {{"t":"{t}","messages":3,"answers":0,"answers_failed":0,"up":0,"down":0,
                "accounts":1,"events":3,"connections":6,"users":5,"rooms":2}},
              {{"t":"12","messages":99}}
            ],"rows":3,"rows_before_limit_at_least":3}}"#,
            t0 = t - 120,
        );
        let series_dists = format!(
            r#"{{"meta":[],"data":[
              {{"t":"{t0}","metric":"first_token_ms","p50":310,"p99":980.0}},
              {{"t":"{t0}","metric":"total_ms","p50":2100,"p99":4096}},
              {{"t":"{t0}","metric":"lcp_ms","p50":1,"p99":1}}
            ],"rows":3}}"#,
            t0 = t - 120,
        );
        let lines = r#"{"meta":[],"data":[
              {"room":"lobby","messages":14,"answers":2,"answers_failed":0,"up":1,"down":1,
               "events":22,"connects":"9","peak_connections":5,"rows_read":"1200",
               "rows_written":80,"db_bytes":"98304"},
              {"room":"quiet","messages":1,"events":1}
            ],"rows":2}"#
            .to_owned();
        let lines_dists = r#"{"meta":[],"data":[
              {"room":"lobby","metric":"broadcast_us","p50":0,"p99":0},
              {"room":"lobby","metric":"fanout","p50":4,"p99":5},
              {"room":"lobby","metric":"alarm_lag_ms","p50":12,"p99":340},
              {"room":"gone","metric":"fanout","p50":1,"p99":1}
            ],"rows":4}"#
            .to_owned();
        (series, series_dists, lines, lines_dists)
    }

    #[test]
    fn recorded_answers_read_back_as_a_dense_series_and_room_lines() {
        let minute = floor_to(NOW, MINUTE_MS);
        let (series, series_dists, lines, lines_dists) = recorded(minute);
        let page = analytics(
            Range::Day,
            NOW,
            &Answers {
                series: &series,
                series_dists: &series_dists,
                lines: &lines,
                lines_dists: &lines_dists,
            },
        )
        .expect("readable");
        assert_eq!(page.source, Source::AnalyticsEngine);
        assert_eq!(page.points.len(), 24 * 60);
        assert_eq!(page.points.last().map(|p| p.at), Some(minute));
        let two_ago = &page.points[page.points.len() - 3];
        assert_eq!(
            (two_ago.messages, two_ago.connections, two_ago.up),
            (12, 5, 1)
        );
        assert_eq!(
            two_ago.first_token,
            Percentiles {
                p50: Some(310),
                p99: Some(980)
            }
        );
        assert_eq!(two_ago.total.p99, Some(4096));
        let last = page.points.last().expect("a point");
        assert_eq!((last.messages, last.accounts, last.users), (3, 1, 5));
        // A row outside the range (t = 12 s after the epoch) is ignored.
        assert_eq!(page.points.iter().map(|p| p.messages).sum::<u64>(), 15);
        let lobby = &page.rooms[0];
        assert_eq!((lobby.room.as_str(), lobby.messages), ("lobby", 14));
        assert_eq!(
            (lobby.connects, lobby.rows_read, lobby.db_bytes),
            (9, 1200, 98_304)
        );
        assert_eq!(lobby.peak_connections, 5);
        assert_eq!(
            lobby.fanout,
            Percentiles {
                p50: Some(4),
                p99: Some(5)
            }
        );
        assert_eq!(lobby.alarm_lag_ms.p99, Some(340));
        assert_eq!(
            page.rooms.len(),
            2,
            "a percentile of an unlisted room adds no line"
        );
    }

    #[test]
    fn an_error_answer_or_a_body_without_data_is_unreadable() {
        assert!(rows(r#"{"errors":[{"message":"bad query"}]}"#).is_err());
        assert!(rows("<html>").is_err());
        assert_eq!(rows(r#"{"data":[]}"#), Ok(Vec::new()));
    }

    #[test]
    fn the_sql_api_is_used_only_with_a_plausible_account_id_and_a_token() {
        let api = SqlApi::from_settings(Some("0123abcd".into()), Some(" tok ".into()))
            .expect("configured");
        assert!(api.url.ends_with("/accounts/0123abcd/analytics_engine/sql"));
        assert_eq!(api.token, "tok");
        assert!(SqlApi::from_settings(Some("0123abcd".into()), None).is_none());
        assert!(SqlApi::from_settings(Some("../x".into()), Some("t".into())).is_none());
        assert!(SqlApi::from_settings(None, Some("t".into())).is_none());
    }
}
