//! Live analytics and performance numbers (issue 12), as plain data and arithmetic: what a room
//! counts between two reports ([`RoomMeter`]), the batch it sends ([`RoomReport`]), the rollups
//! the aggregating Durable Object keeps per minute, hour and day ([`Rollup`], mergeable, with
//! latency [`Histogram`]s so p50/p99 survive a merge), the series an admin page draws
//! ([`series`]), browser vitals ([`VitalsReport`]) and slow requests ([`SlowRequest`]).
//!
//! Nothing here does I/O: the room object feeds [`RoomMeter`], the `Metrics` object stores
//! rollups through [`store`] (feature `server`, the room's [`crate::room::store::Sql`]), and
//! the app draws with [`chart`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{ChatError, ErrorCode};

pub mod chart;
#[cfg(feature = "server")]
pub mod store;

/// How often an active room reports: at most one batch per room per 5 s, on the alarm it
/// already uses (no write anywhere per message).
pub const REPORT_INTERVAL_MS: i64 = 5_000;
/// A room with people connected but nothing happening still reports this often, so the
/// aggregator can tell its connections from those of a room that died without saying so.
pub const HEARTBEAT_MS: i64 = 10 * MINUTE_MS;
/// A room's connections count for this long after its last report (two heartbeats and a
/// margin): a room that stopped reporting (its object was reset) stops counting.
pub const GAUGE_TTL_MS: i64 = 2 * HEARTBEAT_MS + 5 * MINUTE_MS;
/// One minute, in ms.
pub const MINUTE_MS: i64 = 60_000;
/// One hour, in ms.
pub const HOUR_MS: i64 = 60 * MINUTE_MS;
/// One day, in ms.
pub const DAY_MS: i64 = 24 * HOUR_MS;
/// Longest room slug a report may name (the directory's own limit is shorter).
pub const ROOM_NAME_MAX: usize = 64;
/// Slow requests kept for the performance page.
pub const SLOW_KEPT: usize = 100;
/// A request slower than this (ms) is listed with its timings, unless `SLOW_REQUEST_MS` says
/// otherwise.
pub const SLOW_REQUEST_MS_DEFAULT: u64 = 500;

fn is_zero(v: &u64) -> bool {
    *v == 0
}

// ---------------------------------------------------------------------------------------------
// Histograms

/// Values below this have a bucket each.
const LINEAR: u64 = 16;
/// Bits of a value kept after its leading one: every bucket above [`LINEAR`] is 1/16 of its
/// power of two wide, so a percentile read from a bucket's middle is within 3% of the truth.
const SUB_BITS: u32 = 4;
/// The bucket of `u64::MAX`: no bucket is higher.
const LAST_BUCKET: u16 = (LINEAR as u16) + (63 - SUB_BITS as u16) * (LINEAR as u16) + 15;

/// The bucket of a value: exact below 16, then 16 buckets per power of two.
pub fn bucket_of(value: u64) -> u16 {
    if value < LINEAR {
        return value as u16;
    }
    let exponent = 63 - value.leading_zeros();
    let mantissa = (value >> (exponent - SUB_BITS)) & (LINEAR - 1);
    (LINEAR as u32 + (exponent - SUB_BITS) * LINEAR as u32 + mantissa as u32) as u16
}

/// The values a bucket holds (inclusive).
pub fn bucket_range(bucket: u16) -> (u64, u64) {
    let bucket = u64::from(bucket.min(LAST_BUCKET));
    if bucket < LINEAR {
        return (bucket, bucket);
    }
    let k = bucket - LINEAR;
    let shift = (k / LINEAR) as u32;
    let low = (LINEAR + k % LINEAR) << shift;
    (low, low + ((1u64 << shift) - 1))
}

/// The value a bucket stands for: its middle.
pub fn bucket_value(bucket: u16) -> u64 {
    let (low, high) = bucket_range(bucket);
    low + (high - low) / 2
}

/// A distribution of whole numbers (ms, µs, thousandths) in log-linear buckets: small, exact
/// to merge (minutes into hours, rooms into the whole), and good to ~3% for any percentile.
/// Kept sparse, sorted by bucket, as `[[bucket, count], …]` in JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Vec<(u16, u64)>", into = "Vec<(u16, u64)>")]
pub struct Histogram(Vec<(u16, u64)>);

impl From<Vec<(u16, u64)>> for Histogram {
    /// Sorts and merges whatever was stored or sent, so a malformed list cannot break the
    /// invariants the percentiles rely on.
    fn from(pairs: Vec<(u16, u64)>) -> Self {
        let mut histogram = Histogram::default();
        for (bucket, count) in pairs {
            histogram.add(bucket.min(LAST_BUCKET), count);
        }
        histogram
    }
}

impl From<Histogram> for Vec<(u16, u64)> {
    fn from(histogram: Histogram) -> Self {
        histogram.0
    }
}

impl Histogram {
    /// Counts one value.
    pub fn record(&mut self, value: u64) {
        self.add(bucket_of(value), 1);
    }

    fn add(&mut self, bucket: u16, count: u64) {
        if count == 0 {
            return;
        }
        match self.0.binary_search_by_key(&bucket, |(b, _)| *b) {
            Ok(i) => self.0[i].1 = self.0[i].1.saturating_add(count),
            Err(i) => self.0.insert(i, (bucket, count)),
        }
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (bucket, count) in &other.0 {
            self.add(*bucket, *count);
        }
    }

    /// How many values.
    pub fn count(&self) -> u64 {
        self.0.iter().map(|(_, n)| n).sum()
    }

    /// Whether it holds no value.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `q`-quantile (0 < q ≤ 1) by the nearest-rank rule, read as its bucket's middle;
    /// `None` when empty.
    pub fn percentile(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (bucket, count) in &self.0 {
            seen += count;
            if seen >= rank {
                return Some(bucket_value(*bucket));
            }
        }
        self.0.last().map(|(b, _)| bucket_value(*b))
    }

    /// `(value, count)` per bucket, smallest first: how the buckets are exported as weighted
    /// points (Analytics Engine's `quantileExactWeighted` reads them back).
    pub fn weighted(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.iter().map(|(b, n)| (bucket_value(*b), *n))
    }
}

// ---------------------------------------------------------------------------------------------
// Rollups

/// How many are connected: in one room (a report), or everywhere (the aggregator's sum).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Gauges {
    /// Sockets in a room (tabs and devices; the room list's watching sockets are not counted).
    #[serde(skip_serializing_if = "is_zero")]
    pub connections: u64,
    /// People with at least one such socket (per room: one person in two rooms counts twice).
    #[serde(skip_serializing_if = "is_zero")]
    pub users: u64,
    /// Rooms with someone connected (always 0 or 1 in a room's own rollup).
    #[serde(skip_serializing_if = "is_zero")]
    pub rooms: u64,
    /// The room list's watching sockets (one per joined room per open app).
    #[serde(skip_serializing_if = "is_zero")]
    pub watchers: u64,
    /// The room's SQLite database size (summed over rooms for the whole).
    #[serde(skip_serializing_if = "is_zero")]
    pub db_bytes: u64,
}

impl Gauges {
    /// The larger of each.
    pub fn max(self, other: Gauges) -> Gauges {
        Gauges {
            connections: self.connections.max(other.connections),
            users: self.users.max(other.users),
            rooms: self.rooms.max(other.rooms),
            watchers: self.watchers.max(other.watchers),
            db_bytes: self.db_bytes.max(other.db_bytes),
        }
    }
}

/// What happened in one room (or everywhere) during one minute, hour or day. Counters add up,
/// gauges keep their peak and their last value, distributions merge: any two rollups of the
/// same thing merge into the rollup of both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Rollup {
    /// Messages and thread replies people posted.
    #[serde(skip_serializing_if = "is_zero")]
    pub messages: u64,
    /// Assistant answers that ended (done, stopped or failed).
    #[serde(skip_serializing_if = "is_zero")]
    pub answers: u64,
    /// Of which failed.
    #[serde(skip_serializing_if = "is_zero")]
    pub answers_failed: u64,
    /// Thumbs up on answers.
    #[serde(skip_serializing_if = "is_zero")]
    pub up: u64,
    /// Thumbs down on answers.
    #[serde(skip_serializing_if = "is_zero")]
    pub down: u64,
    /// Sequenced events of any kind (messages, edits, reactions, answers' steps…).
    #[serde(skip_serializing_if = "is_zero")]
    pub events: u64,
    /// Sockets opened.
    #[serde(skip_serializing_if = "is_zero")]
    pub connects: u64,
    /// Accounts created (sign-ups; guests are not accounts).
    #[serde(skip_serializing_if = "is_zero")]
    pub accounts: u64,
    /// Fan-outs (one event sent to every joined socket).
    #[serde(skip_serializing_if = "is_zero")]
    pub broadcasts: u64,
    /// SQLite rows the room read.
    #[serde(skip_serializing_if = "is_zero")]
    pub rows_read: u64,
    /// SQLite rows the room wrote.
    #[serde(skip_serializing_if = "is_zero")]
    pub rows_written: u64,
    /// Peak gauges within the period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak: Option<Gauges>,
    /// Gauges at the period's last report: what holds after it until the next report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<Gauges>,
    /// Assistant: time to the first token, ms.
    #[serde(skip_serializing_if = "Histogram::is_empty")]
    pub first_token_ms: Histogram,
    /// Assistant: time to the whole answer, ms.
    #[serde(skip_serializing_if = "Histogram::is_empty")]
    pub total_ms: Histogram,
    /// Time one fan-out took, µs. Workers only advance their clock across I/O, so a fan-out
    /// (synchronous sends) usually reads 0 there: [`Rollup::fanout`] is the size that costs.
    #[serde(skip_serializing_if = "Histogram::is_empty")]
    pub broadcast_us: Histogram,
    /// Sockets one fan-out was sent to.
    #[serde(skip_serializing_if = "Histogram::is_empty")]
    pub fanout: Histogram,
    /// How late the room's alarm ran after the time it was set for, ms.
    #[serde(skip_serializing_if = "Histogram::is_empty")]
    pub alarm_lag_ms: Histogram,
    /// Browser: largest contentful paint, ms.
    #[serde(skip_serializing_if = "Histogram::is_empty")]
    pub lcp_ms: Histogram,
    /// Browser: interaction to next paint (the slowest interaction of a page load), ms.
    #[serde(skip_serializing_if = "Histogram::is_empty")]
    pub inp_ms: Histogram,
    /// Browser: cumulative layout shift, in thousandths.
    #[serde(skip_serializing_if = "Histogram::is_empty")]
    pub cls_milli: Histogram,
    /// Browser: from navigation to the first message on screen, ms.
    #[serde(skip_serializing_if = "Histogram::is_empty")]
    pub first_message_ms: Histogram,
}

impl Rollup {
    /// Adds `later` (a rollup of a later or the same period) into this one.
    pub fn merge(&mut self, later: &Rollup) {
        self.messages += later.messages;
        self.answers += later.answers;
        self.answers_failed += later.answers_failed;
        self.up += later.up;
        self.down += later.down;
        self.events += later.events;
        self.connects += later.connects;
        self.accounts += later.accounts;
        self.broadcasts += later.broadcasts;
        self.rows_read += later.rows_read;
        self.rows_written += later.rows_written;
        self.peak = match (self.peak, later.peak) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.last = later.last.or(self.last);
        self.first_token_ms.merge(&later.first_token_ms);
        self.total_ms.merge(&later.total_ms);
        self.broadcast_us.merge(&later.broadcast_us);
        self.fanout.merge(&later.fanout);
        self.alarm_lag_ms.merge(&later.alarm_lag_ms);
        self.lcp_ms.merge(&later.lcp_ms);
        self.inp_ms.merge(&later.inp_ms);
        self.cls_milli.merge(&later.cls_milli);
        self.first_message_ms.merge(&later.first_message_ms);
    }

    /// The same rollup with its gauges set to `gauges` (its peak grows to them).
    pub fn with_gauges(mut self, gauges: Gauges) -> Rollup {
        self.peak = Some(self.peak.map_or(gauges, |p| p.max(gauges)));
        self.last = Some(gauges);
        self
    }
}

/// The start of the `step_ms` period holding `at`.
pub fn floor_to(at: i64, step_ms: i64) -> i64 {
    at.div_euclid(step_ms) * step_ms
}

// ---------------------------------------------------------------------------------------------
// What a room counts and reports

/// One room's batch for the aggregator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomReport {
    /// The room's slug.
    pub room: String,
    /// What happened since the room's previous report (its gauges unset).
    pub counts: Rollup,
    /// The room as it is now.
    pub gauges: Gauges,
}

impl RoomReport {
    /// Refuses what no room would send: an empty or overlong name.
    pub fn validate(&self) -> Result<(), ChatError> {
        if self.room.is_empty() || self.room.len() > ROOM_NAME_MAX {
            return Err(ChatError::new(
                ErrorCode::InvalidInput,
                "A report names its room.",
            ));
        }
        Ok(())
    }
}

/// What a room counts in memory between two reports. Counting is a field increment; only
/// [`RoomMeter::take`] makes a batch, at most every [`REPORT_INTERVAL_MS`].
#[derive(Debug, Clone, Default)]
pub struct RoomMeter {
    counts: Rollup,
    /// Something happened that is worth a report (a frame, a socket opening or closing); SQL
    /// row counts and alarm lag alone are not, or the report's own alarm would keep the room
    /// reporting forever.
    active: bool,
    last_gauges: Option<Gauges>,
    last_report_at: Option<i64>,
}

impl RoomMeter {
    /// A message or thread reply was posted.
    pub fn message(&mut self) {
        self.counts.messages += 1;
        self.active = true;
    }

    /// An event was sequenced.
    pub fn event(&mut self) {
        self.counts.events += 1;
        self.active = true;
    }

    /// An assistant answer ended.
    pub fn answer(&mut self, failed: bool, first_token_ms: u64, total_ms: u64) {
        self.counts.answers += 1;
        if failed {
            self.counts.answers_failed += 1;
        } else {
            self.counts.first_token_ms.record(first_token_ms);
            self.counts.total_ms.record(total_ms);
        }
        self.active = true;
    }

    /// Someone rated an answer (a withdrawn vote is not counted).
    pub fn rating(&mut self, up: bool) {
        if up {
            self.counts.up += 1;
        } else {
            self.counts.down += 1;
        }
        self.active = true;
    }

    /// A socket opened.
    pub fn connected(&mut self) {
        self.counts.connects += 1;
        self.active = true;
    }

    /// A socket closed: the connections changed.
    pub fn disconnected(&mut self) {
        self.active = true;
    }

    /// One fan-out: how long it took and to how many sockets.
    pub fn broadcast(&mut self, micros: u64, sockets: u64) {
        self.counts.broadcasts += 1;
        self.counts.broadcast_us.record(micros);
        self.counts.fanout.record(sockets);
    }

    /// SQLite rows read and written.
    pub fn sql(&mut self, read: u64, written: u64) {
        self.counts.rows_read += read;
        self.counts.rows_written += written;
    }

    /// The room's alarm ran `ms` after it was due.
    pub fn alarm_lag(&mut self, ms: u64) {
        self.counts.alarm_lag_ms.record(ms);
    }

    /// Whether a report is worth scheduling.
    pub fn wants_report(&self) -> bool {
        self.active
    }

    /// The batch to send now, if there is anything to say: something happened, the gauges
    /// changed, or people are connected and the last report is a heartbeat old. Counting
    /// starts afresh.
    pub fn take(&mut self, room: &str, gauges: Gauges, now: i64) -> Option<RoomReport> {
        let changed = self.last_gauges != Some(gauges);
        let heartbeat = gauges.connections > 0
            && self
                .last_report_at
                .is_none_or(|at| now - at >= HEARTBEAT_MS - REPORT_INTERVAL_MS);
        if !(self.active || changed || heartbeat) {
            // Nothing to say: the room's SQL counts wait for the next report.
            return None;
        }
        self.active = false;
        self.last_gauges = Some(gauges);
        self.last_report_at = Some(now);
        Some(RoomReport {
            room: room.to_owned(),
            counts: std::mem::take(&mut self.counts),
            gauges,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The aggregator's view of every room's gauges

/// Each room's last reported gauges, and their sum: what "connected now" means everywhere.
#[derive(Debug, Clone, Default)]
pub struct GaugeBook {
    rooms: BTreeMap<String, (Gauges, i64)>,
}

impl GaugeBook {
    /// A book of stored gauges (`(room, gauges, reported at)`).
    pub fn from_rows(rows: impl IntoIterator<Item = (String, Gauges, i64)>) -> GaugeBook {
        GaugeBook {
            rooms: rows.into_iter().map(|(r, g, at)| (r, (g, at))).collect(),
        }
    }

    /// Records a room's gauges (a room with nobody connected leaves the book).
    pub fn set(&mut self, room: &str, gauges: Gauges, at: i64) {
        if gauges.connections == 0 && gauges.watchers == 0 {
            self.rooms.remove(room);
        } else {
            self.rooms.insert(room.to_owned(), (gauges, at));
        }
    }

    /// Forgets rooms that have not reported for [`GAUGE_TTL_MS`]; returns their names.
    pub fn expire(&mut self, now: i64) -> Vec<String> {
        let stale: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, (_, at))| now - at > GAUGE_TTL_MS)
            .map(|(room, _)| room.clone())
            .collect();
        for room in &stale {
            self.rooms.remove(room);
        }
        stale
    }

    /// The sum over rooms, with the number of rooms where someone is connected.
    pub fn totals(&self) -> Gauges {
        let mut total = Gauges::default();
        for (gauges, _) in self.rooms.values() {
            total.connections += gauges.connections;
            total.users += gauges.users;
            total.watchers += gauges.watchers;
            total.db_bytes += gauges.db_bytes;
            total.rooms += u64::from(gauges.connections > 0);
        }
        total
    }

    /// A room's gauges, if it has someone connected.
    pub fn room(&self, room: &str) -> Option<Gauges> {
        self.rooms.get(room).map(|(g, _)| *g)
    }
}

// ---------------------------------------------------------------------------------------------
// What the pages read

/// The period a page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Range {
    /// The last hour, per minute.
    #[serde(rename = "1h")]
    Hour,
    /// The last 24 hours, per minute.
    #[serde(rename = "24h")]
    Day,
    /// The last 30 days, per hour.
    #[serde(rename = "30d")]
    Month,
}

/// How finely rollups are kept, in minutes (the stored `res`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Per minute, kept 24 h.
    Minute = 1,
    /// Per hour, kept 30 days.
    Hour = 60,
    /// Per day, kept 31 days (per-room totals over 30 days).
    Day = 1440,
}

impl Resolution {
    /// Every resolution, finest first.
    pub const ALL: [Resolution; 3] = [Resolution::Minute, Resolution::Hour, Resolution::Day];

    /// The period's length, ms.
    pub fn step_ms(self) -> i64 {
        self as i64 * MINUTE_MS
    }

    /// How long rollups at this resolution are kept, ms.
    pub fn kept_ms(self) -> i64 {
        match self {
            Resolution::Minute => DAY_MS,
            Resolution::Hour => 30 * DAY_MS,
            Resolution::Day => 31 * DAY_MS,
        }
    }
}

impl Range {
    /// `?range=` as given (`1h`, `24h`, `30d`).
    pub fn parse(text: &str) -> Option<Range> {
        match text {
            "1h" => Some(Range::Hour),
            "24h" => Some(Range::Day),
            "30d" => Some(Range::Month),
            _ => None,
        }
    }

    /// As written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::Day => "24h",
            Range::Month => "30d",
        }
    }

    /// How far back it reaches, ms.
    pub fn span_ms(self) -> i64 {
        match self {
            Range::Hour => HOUR_MS,
            Range::Day => DAY_MS,
            Range::Month => 30 * DAY_MS,
        }
    }

    /// The resolution of its points.
    pub fn points(self) -> Resolution {
        match self {
            Range::Hour | Range::Day => Resolution::Minute,
            Range::Month => Resolution::Hour,
        }
    }

    /// The resolution its per-room totals are summed from: the coarsest that still fits the
    /// range, so a 30-day table reads 30 rows per room, not 720.
    pub fn totals(self) -> Resolution {
        match self {
            Range::Hour => Resolution::Minute,
            Range::Day => Resolution::Hour,
            Range::Month => Resolution::Day,
        }
    }

    /// The first period start inside the range ending at `now`.
    pub fn start(self, now: i64, resolution: Resolution) -> i64 {
        let step = resolution.step_ms();
        floor_to(now, step) - floor_to(self.span_ms(), step) + step
    }
}

/// p50 and p99 of a distribution (absent when it is empty).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Median.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50: Option<u64>,
    /// 99th percentile.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99: Option<u64>,
}

impl Percentiles {
    /// Of a histogram.
    pub fn of(histogram: &Histogram) -> Percentiles {
        Percentiles {
            p50: histogram.percentile(0.5),
            p99: histogram.percentile(0.99),
        }
    }

    fn is_empty(&self) -> bool {
        self.p50.is_none() && self.p99.is_none()
    }
}

/// One point of a page's time series.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Point {
    /// The period's start, ms since the epoch.
    pub at: i64,
    /// Messages posted.
    #[serde(skip_serializing_if = "is_zero")]
    pub messages: u64,
    /// Assistant answers ended.
    #[serde(skip_serializing_if = "is_zero")]
    pub answers: u64,
    /// Of which failed.
    #[serde(skip_serializing_if = "is_zero")]
    pub answers_failed: u64,
    /// Thumbs up.
    #[serde(skip_serializing_if = "is_zero")]
    pub up: u64,
    /// Thumbs down.
    #[serde(skip_serializing_if = "is_zero")]
    pub down: u64,
    /// Accounts created.
    #[serde(skip_serializing_if = "is_zero")]
    pub accounts: u64,
    /// Events sequenced.
    #[serde(skip_serializing_if = "is_zero")]
    pub events: u64,
    /// Peak sockets connected.
    #[serde(skip_serializing_if = "is_zero")]
    pub connections: u64,
    /// Peak people connected.
    #[serde(skip_serializing_if = "is_zero")]
    pub users: u64,
    /// Peak rooms with someone connected.
    #[serde(skip_serializing_if = "is_zero")]
    pub rooms: u64,
    /// Assistant time to first token, ms.
    #[serde(skip_serializing_if = "Percentiles::is_empty")]
    pub first_token: Percentiles,
    /// Assistant time to the whole answer, ms.
    #[serde(skip_serializing_if = "Percentiles::is_empty")]
    pub total: Percentiles,
    /// Fan-out time, µs.
    #[serde(skip_serializing_if = "Percentiles::is_empty")]
    pub broadcast_us: Percentiles,
}

impl Point {
    /// The point of a period's rollup, its gauges those of `gauges` (the peak, or what held
    /// since an earlier period when nothing was reported in this one).
    pub fn of(at: i64, rollup: &Rollup, gauges: Gauges) -> Point {
        Point {
            at,
            messages: rollup.messages,
            answers: rollup.answers,
            answers_failed: rollup.answers_failed,
            up: rollup.up,
            down: rollup.down,
            accounts: rollup.accounts,
            events: rollup.events,
            connections: gauges.connections,
            users: gauges.users,
            rooms: gauges.rooms,
            first_token: Percentiles::of(&rollup.first_token_ms),
            total: Percentiles::of(&rollup.total_ms),
            broadcast_us: Percentiles::of(&rollup.broadcast_us),
        }
    }
}

/// The dense series of a range: one point per period from [`Range::start`] to `now`'s period,
/// counters 0 where nothing was reported, and gauges carried forward from the last report
/// before (a room reports whenever its connections change, so what it said last still holds).
/// `rows` are `(period start, rollup)` in any order; `before` is the last rollup before the
/// range.
pub fn series(
    range: Range,
    now: i64,
    rows: &[(i64, Rollup)],
    before: Option<&Rollup>,
) -> Vec<Point> {
    let resolution = range.points();
    let step = resolution.step_ms();
    let start = range.start(now, resolution);
    let end = floor_to(now, step);
    let by_start: BTreeMap<i64, &Rollup> = rows.iter().map(|(at, r)| (*at, r)).collect();
    let mut held = before.and_then(|r| r.last).unwrap_or_default();
    // Rows before the range only pass their gauges on.
    for (_, rollup) in by_start.range(..start) {
        held = rollup.last.unwrap_or(held);
    }
    let mut points = Vec::with_capacity(((end - start) / step + 1).max(0) as usize);
    let mut at = start;
    while at <= end {
        let point = match by_start.get(&at) {
            Some(rollup) => {
                let peak = rollup.peak.unwrap_or(held).max(held);
                let point = Point::of(at, rollup, peak);
                held = rollup.last.unwrap_or(held);
                point
            }
            None => Point::of(at, &Rollup::default(), held),
        };
        points.push(point);
        at += step;
    }
    points
}

/// One room's line in a page's table: its totals over the range and how it runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RoomLine {
    /// The room's slug.
    pub room: String,
    /// Messages posted.
    pub messages: u64,
    /// Assistant answers ended.
    pub answers: u64,
    /// Of which failed.
    pub answers_failed: u64,
    /// Thumbs up.
    pub up: u64,
    /// Thumbs down.
    pub down: u64,
    /// Events sequenced.
    pub events: u64,
    /// Events per second over the range.
    pub events_per_s: f64,
    /// Sockets opened.
    pub connects: u64,
    /// Sockets connected now.
    pub connections: u64,
    /// People connected now.
    pub users: u64,
    /// Peak sockets in the range.
    pub peak_connections: u64,
    /// SQLite rows read.
    pub rows_read: u64,
    /// SQLite rows written.
    pub rows_written: u64,
    /// The database's size at its last report, bytes.
    pub db_bytes: u64,
    /// Fan-out time, µs.
    pub broadcast_us: Percentiles,
    /// Sockets per fan-out.
    pub fanout: Percentiles,
    /// Alarm lag, ms.
    pub alarm_lag_ms: Percentiles,
    /// Assistant time to first token, ms.
    pub first_token: Percentiles,
    /// Assistant time to the whole answer, ms.
    pub total: Percentiles,
}

impl RoomLine {
    /// The line of a room's rollup over `range`, with its gauges now (if it has someone
    /// connected).
    pub fn of(room: &str, rollup: &Rollup, range: Range, now: Option<Gauges>) -> RoomLine {
        let now = now.unwrap_or_default();
        RoomLine {
            room: room.to_owned(),
            messages: rollup.messages,
            answers: rollup.answers,
            answers_failed: rollup.answers_failed,
            up: rollup.up,
            down: rollup.down,
            events: rollup.events,
            events_per_s: rollup.events as f64 / (range.span_ms() as f64 / 1000.0),
            connects: rollup.connects,
            connections: now.connections,
            users: now.users,
            peak_connections: rollup.peak.map_or(0, |p| p.connections),
            rows_read: rollup.rows_read,
            rows_written: rollup.rows_written,
            db_bytes: rollup
                .last
                .map_or(now.db_bytes, |g| g.db_bytes.max(now.db_bytes)),
            broadcast_us: Percentiles::of(&rollup.broadcast_us),
            fanout: Percentiles::of(&rollup.fanout),
            alarm_lag_ms: Percentiles::of(&rollup.alarm_lag_ms),
            first_token: Percentiles::of(&rollup.first_token_ms),
            total: Percentiles::of(&rollup.total_ms),
        }
    }
}

/// p50, p75 and p99 of one web vital.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Vital {
    /// Page loads that measured it.
    pub samples: u64,
    /// Median.
    pub p50: Option<u64>,
    /// 75th percentile (the threshold the web's "good" ratings use).
    pub p75: Option<u64>,
    /// 99th percentile.
    pub p99: Option<u64>,
}

impl Vital {
    /// Of a histogram.
    pub fn of(histogram: &Histogram) -> Vital {
        Vital {
            samples: histogram.count(),
            p50: histogram.percentile(0.5),
            p75: histogram.percentile(0.75),
            p99: histogram.percentile(0.99),
        }
    }
}

/// The browsers' vitals over a range.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VitalsSummary {
    /// Largest contentful paint, ms.
    pub lcp_ms: Vital,
    /// Interaction to next paint, ms.
    pub inp_ms: Vital,
    /// Cumulative layout shift, thousandths.
    pub cls_milli: Vital,
    /// Time to the first message on screen, ms.
    pub first_message_ms: Vital,
}

impl VitalsSummary {
    /// Of a rollup.
    pub fn of(rollup: &Rollup) -> VitalsSummary {
        VitalsSummary {
            lcp_ms: Vital::of(&rollup.lcp_ms),
            inp_ms: Vital::of(&rollup.inp_ms),
            cls_milli: Vital::of(&rollup.cls_milli),
            first_message_ms: Vital::of(&rollup.first_message_ms),
        }
    }
}

/// Where a page's history came from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The aggregating Durable Object's own rollups (local development, and production
    /// without the Analytics Engine SQL API settings).
    #[default]
    DurableObject,
    /// Workers Analytics Engine, through its SQL API (production).
    AnalyticsEngine,
}

/// `GET /api/admin/analytics` and `GET /api/rooms/<slug>/analytics`: one page's numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Analytics {
    /// The range shown.
    pub range: Option<Range>,
    /// Period length of the points, ms.
    pub step_ms: i64,
    /// When it was computed.
    pub now: i64,
    /// Where the history came from.
    pub source: Source,
    /// Why the preferred source was not used, if it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    /// The time series (everywhere, or the one room's).
    pub points: Vec<Point>,
    /// Per room, busiest first (only the room asked about, for its owner).
    pub rooms: Vec<RoomLine>,
    /// Connected now.
    pub current: Gauges,
    /// Browser vitals (admins only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vitals: Option<VitalsSummary>,
    /// The slowest recent requests (admins only).
    pub slow: Vec<SlowRequest>,
}

impl Analytics {
    /// Takes a live update into a per-minute series: the current minute's point is replaced,
    /// a new minute is appended (the oldest dropping out), and the connected-now numbers follow.
    /// An hourly series (30 days) only takes the numbers: one minute is not an hour.
    pub fn apply_live(&mut self, update: &LiveUpdate) {
        self.current = update.current;
        if self.step_ms != MINUTE_MS {
            return;
        }
        match self.points.last() {
            Some(last) if last.at == update.minute.at => {
                if let Some(last) = self.points.last_mut() {
                    *last = update.minute.clone();
                }
            }
            Some(last) if last.at < update.minute.at => {
                self.points.push(update.minute.clone());
                self.points.remove(0);
            }
            _ => {}
        }
    }
}

/// What an open analytics page's socket receives after each batch (at most one a second).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LiveUpdate {
    /// Always "metrics": a type tag for clients that read other frames too.
    #[serde(rename = "type")]
    pub kind: String,
    /// The current minute so far, everywhere.
    pub minute: Point,
    /// Connected now, everywhere.
    pub current: Gauges,
    /// The rooms whose batches this update carries.
    pub rooms: Vec<String>,
}

/// The frame type of a [`LiveUpdate`].
pub const LIVE_KIND: &str = "metrics";

// ---------------------------------------------------------------------------------------------
// Browser vitals and slow requests

/// Largest body `POST /api/vitals` reads.
pub const VITALS_MAX_BYTES: usize = 1024;

/// What one page load measured (`POST /api/vitals`). Every field is optional: a page hidden
/// before its first interaction has no INP.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitalsReport {
    /// Largest contentful paint, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lcp_ms: Option<f64>,
    /// Interaction to next paint, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inp_ms: Option<f64>,
    /// Cumulative layout shift (unitless).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cls: Option<f64>,
    /// From navigation to the first message on screen, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_message_ms: Option<f64>,
}

/// The plausible range of each vital: a browser never reports past these, so a value outside
/// is a broken or forged report, refused rather than skewing the percentiles.
const VITAL_LIMITS: [(&str, f64); 4] = [
    ("lcp_ms", 120_000.0),
    ("inp_ms", 60_000.0),
    ("cls", 100.0),
    ("first_message_ms", 300_000.0),
];

impl VitalsReport {
    /// Checks every value against its range; at least one must be present.
    pub fn validate(&self) -> Result<(), ChatError> {
        let values = [self.lcp_ms, self.inp_ms, self.cls, self.first_message_ms];
        if values.iter().all(Option::is_none) {
            return Err(ChatError::new(
                ErrorCode::InvalidInput,
                "A vitals report carries at least one measurement.",
            ));
        }
        for ((name, max), value) in VITAL_LIMITS.iter().zip(values) {
            if let Some(v) = value {
                if !v.is_finite() || v < 0.0 || v > *max {
                    return Err(ChatError::new(
                        ErrorCode::InvalidInput,
                        format!("{name} must be between 0 and {max}."),
                    ));
                }
            }
        }
        Ok(())
    }

    /// As a rollup of one page load (CLS in thousandths, everything rounded).
    pub fn rollup(&self) -> Rollup {
        let mut rollup = Rollup::default();
        let put = |h: &mut Histogram, v: Option<f64>, scale: f64| {
            if let Some(v) = v {
                h.record((v * scale).round() as u64);
            }
        };
        put(&mut rollup.lcp_ms, self.lcp_ms, 1.0);
        put(&mut rollup.inp_ms, self.inp_ms, 1.0);
        put(&mut rollup.cls_milli, self.cls, 1000.0);
        put(&mut rollup.first_message_ms, self.first_message_ms, 1.0);
        rollup
    }
}

/// One phase of a request's time (`Server-Timing`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    /// `session`, `directory`, `room` or `total`.
    pub name: String,
    /// Milliseconds.
    pub ms: f64,
}

/// A request that took longer than the threshold, with where its time went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowRequest {
    /// When it was answered, ms since the epoch.
    pub at: i64,
    /// HTTP method.
    pub method: String,
    /// The route, with ids in it replaced (`/api/rooms/:slug/members`).
    pub route: String,
    /// Response status.
    pub status: u16,
    /// Total time, ms.
    pub ms: f64,
    /// The measured phases.
    pub phases: Vec<Phase>,
}

/// The route of an API path with the parts that name a room, user, file or token replaced,
/// so the slow-request list groups alike requests and carries no ids.
pub fn route_of(path: &str) -> String {
    let segments: Vec<&str> = path
        .trim_start_matches("/api/")
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let mut out = String::from("/api");
    for (i, segment) in segments.iter().enumerate() {
        let named = match (segments.first(), i) {
            (Some(&"rooms"), 1) => Some(":slug"),
            (Some(&"rooms"), 3) => Some(":id"),
            (Some(&"users" | &"avatars"), 1) => Some(":user"),
            (Some(&"avatars"), 2) => Some(":id"),
            (Some(&"admin"), 2) if segments.get(1) == Some(&"users") => Some(":user"),
            (Some(&"me"), 2) => Some(":id"),
            (Some(&"sessions"), 1) => Some(":id"),
            _ => None,
        };
        out.push('/');
        match named {
            Some(name) => out.push_str(name),
            // Anything else long or odd is an id the table above does not know.
            None if segment.len() > 24
                || !segment
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'_') =>
            {
                out.push_str(":id");
            }
            None => out.push_str(segment),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_falls_in_the_bucket_whose_range_holds_it_and_buckets_are_ordered() {
        let mut previous = 0;
        for value in (0..5_000u64).chain([u64::MAX / 3, u64::MAX - 1, u64::MAX]) {
            let bucket = bucket_of(value);
            let (low, high) = bucket_range(bucket);
            assert!(
                low <= value && value <= high,
                "{value} in {bucket}: {low}..={high}"
            );
            assert!(bucket >= previous, "buckets never go down as values grow");
            previous = bucket;
        }
        assert_eq!(bucket_of(u64::MAX), LAST_BUCKET);
        // Exact below 16, then within 1/32 of the value when read from the middle.
        assert_eq!(bucket_value(bucket_of(7)), 7);
        for value in [17u64, 100, 999, 12_345, 9_876_543] {
            let read = bucket_value(bucket_of(value)) as f64;
            assert!(
                (read - value as f64).abs() / value as f64 <= 1.0 / 32.0,
                "{value}: {read}"
            );
        }
    }

    #[test]
    fn percentiles_follow_the_nearest_rank_rule_within_the_bucket_precision() {
        let mut h = Histogram::default();
        for v in 1..=100u64 {
            h.record(v);
        }
        assert_eq!(h.count(), 100);
        let p50 = h.percentile(0.5).unwrap();
        let p99 = h.percentile(0.99).unwrap();
        assert!((49..=51).contains(&p50), "{p50}");
        assert!((97..=101).contains(&p99), "{p99}");
        assert_eq!(h.percentile(1.0).map(|v| v >= 99), Some(true));
        assert_eq!(Histogram::default().percentile(0.5), None);
        // One slow outlier among 99 fast ones is the p99 only when it is more than 1%.
        let mut h = Histogram::default();
        for _ in 0..99 {
            h.record(10);
        }
        h.record(5_000);
        assert_eq!(h.percentile(0.99), Some(10));
        assert!(h.percentile(1.0).unwrap() > 4_800);
    }

    #[test]
    fn merging_histograms_equals_recording_everything_in_one() {
        let (mut a, mut b, mut all) = (
            Histogram::default(),
            Histogram::default(),
            Histogram::default(),
        );
        for v in [3u64, 80, 80, 1_000, 65_000] {
            a.record(v);
            all.record(v);
        }
        for v in [1u64, 80, 70_000, 2] {
            b.record(v);
            all.record(v);
        }
        a.merge(&b);
        assert_eq!(a, all);
        // The wire form reads back the same, and a shuffled, repeated list is normalized.
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Histogram>(&json).unwrap(), a);
        let messy: Histogram = serde_json::from_str("[[40,1],[3,2],[40,4],[2000,1]]").unwrap();
        assert_eq!(Vec::from(messy), vec![(3, 2), (40, 5), (LAST_BUCKET, 1)]);
    }

    fn gauges(connections: u64, users: u64) -> Gauges {
        Gauges {
            connections,
            users,
            rooms: u64::from(connections > 0),
            ..Gauges::default()
        }
    }

    #[test]
    fn rollups_add_counters_keep_peak_and_last_gauges_and_merge_distributions() {
        let mut minute = Rollup {
            messages: 3,
            up: 1,
            ..Rollup::default()
        }
        .with_gauges(gauges(5, 3));
        minute.first_token_ms.record(400);
        let mut later = Rollup {
            messages: 2,
            down: 1,
            ..Rollup::default()
        }
        .with_gauges(gauges(2, 2));
        later.first_token_ms.record(900);
        minute.merge(&later);
        assert_eq!((minute.messages, minute.up, minute.down), (5, 1, 1));
        assert_eq!(minute.peak, Some(gauges(5, 3)));
        assert_eq!(
            minute.last,
            Some(gauges(2, 2)),
            "the later report's gauges hold now"
        );
        assert_eq!(minute.first_token_ms.count(), 2);
        // Merging in any grouping gives the same totals: minutes into hours into days.
        let parts: Vec<Rollup> = (1..=6u64)
            .map(|i| Rollup {
                messages: i,
                events: 2 * i,
                ..Rollup::default()
            })
            .collect();
        let mut whole = Rollup::default();
        parts.iter().for_each(|p| whole.merge(p));
        let (mut left, mut right) = (Rollup::default(), Rollup::default());
        parts[..2].iter().for_each(|p| left.merge(p));
        parts[2..].iter().for_each(|p| right.merge(p));
        left.merge(&right);
        assert_eq!(left, whole);
        assert_eq!((whole.messages, whole.events), (21, 42));
    }

    #[test]
    fn a_room_reports_only_what_happened_since_its_last_batch_and_nothing_when_idle() {
        let mut meter = RoomMeter::default();
        assert!(!meter.wants_report());
        for _ in 0..7 {
            meter.message();
            meter.event();
        }
        meter.answer(false, 300, 2_000);
        meter.answer(true, 0, 0);
        meter.rating(true);
        meter.sql(40, 9);
        assert!(meter.wants_report());
        let report = meter.take("lobby", gauges(2, 2), 1_000).expect("a batch");
        assert_eq!(report.room, "lobby");
        assert_eq!((report.counts.messages, report.counts.events), (7, 7));
        assert_eq!(
            (report.counts.answers, report.counts.answers_failed),
            (2, 1)
        );
        assert_eq!(
            report.counts.first_token_ms.count(),
            1,
            "a failed answer has no latency"
        );
        assert_eq!(
            (report.counts.rows_read, report.counts.rows_written),
            (40, 9)
        );
        assert!(!meter.wants_report());
        // Nothing new and the same gauges: no batch, whatever the SQL counters did (the
        // report's own alarm reads the database, and must not cause the next report).
        meter.sql(5, 0);
        meter.alarm_lag(12);
        assert!(!meter.wants_report());
        assert_eq!(meter.take("lobby", gauges(2, 2), 6_000), None);
        // A socket closing changes the gauges: reported, with the SQL counts that waited.
        meter.disconnected();
        let report = meter
            .take("lobby", gauges(1, 1), 11_000)
            .expect("gauges changed");
        assert_eq!(report.counts.messages, 0);
        assert_eq!(report.counts.rows_read, 5);
        assert_eq!(report.counts.alarm_lag_ms.count(), 1);
    }

    #[test]
    fn a_quiet_room_with_people_connected_reports_a_heartbeat_and_an_empty_room_does_not() {
        let mut meter = RoomMeter::default();
        meter.connected();
        assert!(meter.take("r", gauges(1, 1), 0).is_some());
        assert_eq!(meter.take("r", gauges(1, 1), HEARTBEAT_MS / 2), None);
        assert!(
            meter.take("r", gauges(1, 1), HEARTBEAT_MS).is_some(),
            "heartbeat"
        );
        meter.disconnected();
        assert!(meter.take("r", gauges(0, 0), HEARTBEAT_MS + 10).is_some());
        assert_eq!(meter.take("r", gauges(0, 0), 5 * HEARTBEAT_MS), None);
    }

    #[test]
    fn the_gauge_book_sums_rooms_drops_empty_ones_and_forgets_rooms_that_went_silent() {
        let mut book = GaugeBook::default();
        book.set("a", gauges(3, 2), 0);
        book.set("b", gauges(4, 4), 0);
        book.set("c", gauges(1, 1), GAUGE_TTL_MS);
        assert_eq!(
            book.totals(),
            Gauges {
                connections: 8,
                users: 7,
                rooms: 3,
                ..Gauges::default()
            }
        );
        book.set("b", gauges(0, 0), 10);
        assert_eq!(book.totals().rooms, 2);
        assert_eq!(book.expire(GAUGE_TTL_MS + 1), vec!["a".to_owned()]);
        assert_eq!(book.totals(), gauges(1, 1));
    }

    #[test]
    fn a_series_is_dense_with_zero_counters_and_gauges_carried_from_the_last_report() {
        let now = 10 * HOUR_MS + 30 * MINUTE_MS + 17_000;
        let minute = |m: i64| floor_to(now, MINUTE_MS) - m * MINUTE_MS;
        let rows = vec![
            (
                minute(5),
                Rollup {
                    messages: 4,
                    ..Rollup::default()
                }
                .with_gauges(gauges(3, 2)),
            ),
            (
                minute(2),
                Rollup {
                    messages: 1,
                    ..Rollup::default()
                }
                .with_gauges(gauges(1, 1)),
            ),
            // Outside the range: only its gauges matter (none here).
            (
                minute(120),
                Rollup {
                    messages: 50,
                    ..Rollup::default()
                },
            ),
        ];
        let points = series(
            Range::Hour,
            now,
            &rows,
            Some(&Rollup::default().with_gauges(gauges(9, 9))),
        );
        assert_eq!(points.len(), 60);
        assert_eq!(points.last().map(|p| p.at), Some(minute(0)));
        assert_eq!(points.first().map(|p| p.at), Some(minute(59)));
        let at = |m: i64| points.iter().find(|p| p.at == minute(m)).expect("point");
        assert_eq!(at(10).connections, 9, "held from before the range");
        assert_eq!(
            (at(5).messages, at(5).connections),
            (4, 9),
            "the peak includes what held"
        );
        assert_eq!((at(4).messages, at(4).connections), (0, 3));
        assert_eq!((at(2).messages, at(2).connections), (1, 3));
        assert_eq!(at(0).connections, 1);
        assert_eq!(points.iter().map(|p| p.messages).sum::<u64>(), 5);
        // 30 days: one point an hour.
        let month = series(Range::Month, now, &[], None);
        assert_eq!(month.len(), 30 * 24);
        assert_eq!(month[1].at - month[0].at, HOUR_MS);
    }

    #[test]
    fn a_live_update_replaces_the_current_minute_or_moves_the_window_on() {
        let point = |at: i64, messages: u64| Point {
            at,
            messages,
            ..Point::default()
        };
        let mut page = Analytics {
            step_ms: MINUTE_MS,
            points: vec![point(0, 1), point(MINUTE_MS, 2)],
            ..Analytics::default()
        };
        let update = |at: i64, messages: u64| LiveUpdate {
            kind: LIVE_KIND.into(),
            minute: point(at, messages),
            current: gauges(4, 3),
            rooms: vec!["r".into()],
        };
        page.apply_live(&update(MINUTE_MS, 5));
        assert_eq!(page.points, vec![point(0, 1), point(MINUTE_MS, 5)]);
        assert_eq!(page.current.connections, 4);
        page.apply_live(&update(2 * MINUTE_MS, 1));
        assert_eq!(
            page.points,
            vec![point(MINUTE_MS, 5), point(2 * MINUTE_MS, 1)]
        );
        page.apply_live(&update(0, 9));
        assert_eq!(page.points.len(), 2, "an old minute changes nothing");
        let mut month = Analytics {
            step_ms: HOUR_MS,
            points: vec![point(0, 1)],
            ..Analytics::default()
        };
        month.apply_live(&update(MINUTE_MS, 3));
        assert_eq!(month.points, vec![point(0, 1)]);
    }

    #[test]
    fn ranges_parse_from_their_url_form_only() {
        for range in [Range::Hour, Range::Day, Range::Month] {
            assert_eq!(Range::parse(range.as_str()), Some(range));
            assert_eq!(serde_json::to_value(range).unwrap(), range.as_str());
        }
        assert_eq!(Range::parse("7d"), None);
        assert_eq!(Range::Month.totals(), Resolution::Day);
    }

    #[test]
    fn a_vitals_report_is_accepted_in_range_and_refused_out_of_range_or_empty() {
        let good = VitalsReport {
            lcp_ms: Some(1_800.0),
            inp_ms: Some(120.0),
            cls: Some(0.08),
            first_message_ms: None,
        };
        assert!(good.validate().is_ok());
        let rollup = good.rollup();
        let cls = rollup.cls_milli.percentile(0.5).expect("cls");
        assert!(
            (78..=83).contains(&cls),
            "0.08 is 80 thousandths, read within a bucket: {cls}"
        );
        assert_eq!(rollup.first_message_ms.count(), 0);
        for bad in [
            VitalsReport {
                lcp_ms: Some(-1.0),
                ..good.clone()
            },
            VitalsReport {
                inp_ms: Some(f64::NAN),
                ..good.clone()
            },
            VitalsReport {
                cls: Some(1e9),
                ..good.clone()
            },
            VitalsReport {
                first_message_ms: Some(400_000.0),
                ..good.clone()
            },
            VitalsReport::default(),
        ] {
            assert_eq!(
                bad.validate().unwrap_err().code,
                ErrorCode::InvalidInput,
                "{bad:?}"
            );
        }
        assert!(serde_json::from_str::<VitalsReport>(r#"{"lcp_ms":1,"secret":2}"#).is_err());
    }

    #[test]
    fn routes_name_their_kind_of_id_and_keep_no_ids() {
        assert_eq!(
            route_of("/api/rooms/lobby-3/members"),
            "/api/rooms/:slug/members"
        );
        assert_eq!(
            route_of("/api/rooms/lobby/files/abc123DEF"),
            "/api/rooms/:slug/files/:id"
        );
        assert_eq!(route_of("/api/users/u_9f8e7d6c"), "/api/users/:user");
        assert_eq!(route_of("/api/admin/users/xyz"), "/api/admin/users/:user");
        assert_eq!(route_of("/api/admin/analytics"), "/api/admin/analytics");
        assert_eq!(route_of("/api/session"), "/api/session");
        assert_eq!(
            route_of("/api/auth/github/Callback"),
            "/api/auth/github/:id"
        );
    }
}
