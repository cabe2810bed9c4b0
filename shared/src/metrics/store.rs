//! The aggregating `Metrics` object's storage, over the same two-method [`Sql`] as the room's
//! store (the Durable Object's SQLite in production, `rusqlite` in the tests below): rollups per
//! minute (kept 24 h), hour (30 days) and day (31 days, for per-room totals), for everywhere
//! (room `''`) and per room; each room's last gauges; the slowest recent requests.
//!
//! A batch is merged into its rows by reading them, merging in Rust ([`Rollup::merge`]) and
//! writing them back: six small rows per batch (room and everywhere, three resolutions), at
//! most one batch per active room every [`super::REPORT_INTERVAL_MS`]. Reads are keyed: a
//! page's series reads one row per period (`(res, room, at)` is the primary key), its table one
//! row per room per hour or day.

use std::collections::BTreeMap;

use super::{
    floor_to, Analytics, GaugeBook, Gauges, Range, Resolution, Rollup, RoomLine, RoomReport,
    SlowRequest, Source, VitalsSummary, SLOW_KEPT,
};
use crate::room::store::{Sql, SqlValue, StoreError};

/// The room name of the rollups of everywhere.
pub const EVERYWHERE: &str = "";
/// Rooms listed at most in a page's table (the busiest).
const LINES_MAX: usize = 100;
/// Slow requests a page lists.
const SLOW_LISTED: usize = 50;
/// Minute rollups exported in one go (Analytics Engine takes 250 data points per invocation).
pub const EXPORT_BATCH: usize = 100;

const SCHEMA: [&str; 5] = [
    "CREATE TABLE IF NOT EXISTS rollups (
        res INTEGER NOT NULL,
        room TEXT NOT NULL,
        at INTEGER NOT NULL,
        data TEXT NOT NULL,
        exported INTEGER NOT NULL DEFAULT 1,
        PRIMARY KEY (res, room, at)
    ) WITHOUT ROWID",
    // Per-room totals over a range, and pruning.
    "CREATE INDEX IF NOT EXISTS rollups_by_time ON rollups (res, at)",
    // Minutes not yet written to Analytics Engine (or, locally, D1).
    "CREATE INDEX IF NOT EXISTS rollups_unexported ON rollups (at) WHERE exported = 0",
    "CREATE TABLE IF NOT EXISTS gauges (
        room TEXT PRIMARY KEY,
        data TEXT NOT NULL,
        at INTEGER NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS slow (
        id INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        data TEXT NOT NULL
    )",
];

fn json<T: serde::Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(StoreError::new)
}

/// The metrics tables of one database.
pub struct MetricsStore<D: Sql> {
    sql: D,
}

impl<D: Sql> MetricsStore<D> {
    /// Opens the store, creating its tables if they are missing.
    pub fn open(sql: D) -> Result<Self, StoreError> {
        for statement in SCHEMA {
            sql.execute(statement, &[])?;
        }
        Ok(MetricsStore { sql })
    }

    /// The underlying connection.
    pub fn sql(&self) -> &D {
        &self.sql
    }

    /// Every room's stored gauges.
    pub fn gauges(&self) -> Result<GaugeBook, StoreError> {
        let rows = self.sql.query("SELECT room, data, at FROM gauges", &[])?;
        let mut stored = Vec::with_capacity(rows.len());
        for row in rows {
            stored.push((row.text(0)?, row.json::<Gauges>(1)?, row.int(2)?));
        }
        Ok(GaugeBook::from_rows(stored))
    }

    fn save_gauges(&self, room: &str, gauges: Gauges, at: i64) -> Result<(), StoreError> {
        if gauges.connections == 0 && gauges.watchers == 0 {
            return self
                .sql
                .execute("DELETE FROM gauges WHERE room = ?1", &[room.into()]);
        }
        self.sql.execute(
            "INSERT INTO gauges (room, data, at) VALUES (?1, ?2, ?3)
             ON CONFLICT (room) DO UPDATE SET data = excluded.data, at = excluded.at",
            &[room.into(), json(&gauges)?.into(), at.into()],
        )
    }

    /// One stored rollup.
    pub fn rollup(
        &self,
        res: Resolution,
        room: &str,
        at: i64,
    ) -> Result<Option<Rollup>, StoreError> {
        let rows = self.sql.query(
            "SELECT data FROM rollups WHERE res = ?1 AND room = ?2 AND at = ?3",
            &[(res as i64).into(), room.into(), at.into()],
        )?;
        rows.first().map(|row| row.json(0)).transpose()
    }

    /// Merges `delta` into the rollups of `room` that hold `now`, at every resolution.
    fn add(&self, room: &str, delta: &Rollup, now: i64) -> Result<(), StoreError> {
        for res in Resolution::ALL {
            let at = floor_to(now, res.step_ms());
            let mut rollup = self.rollup(res, room, at)?.unwrap_or_default();
            rollup.merge(delta);
            // Only minutes are exported; a changed minute is exported (again) once it closed.
            let exported = res != Resolution::Minute;
            self.sql.execute(
                "INSERT INTO rollups (res, room, at, data, exported) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (res, room, at) DO UPDATE SET
                   data = excluded.data, exported = excluded.exported",
                &[
                    (res as i64).into(),
                    room.into(),
                    at.into(),
                    json(&rollup)?.into(),
                    exported.into(),
                ],
            )?;
        }
        Ok(())
    }

    /// Records a room's batch: its gauges in `book` and in storage, its counts in its own
    /// rollups and in everywhere's (with everywhere's gauges summed from `book`). Returns
    /// everywhere's current minute so far, for the live pages.
    pub fn record_report(
        &self,
        report: &RoomReport,
        book: &mut GaugeBook,
        now: i64,
    ) -> Result<Rollup, StoreError> {
        book.set(&report.room, report.gauges, now);
        self.save_gauges(&report.room, report.gauges, now)?;
        let mine = Gauges {
            rooms: u64::from(report.gauges.connections > 0),
            ..report.gauges
        };
        self.add(&report.room, &report.counts.clone().with_gauges(mine), now)?;
        self.record_everywhere(&report.counts, book, now)
    }

    /// Records what is counted for everywhere only (accounts, browser vitals), or nothing but
    /// the gauges (after stale rooms were forgotten). Returns everywhere's current minute.
    pub fn record_everywhere(
        &self,
        delta: &Rollup,
        book: &GaugeBook,
        now: i64,
    ) -> Result<Rollup, StoreError> {
        self.add(EVERYWHERE, &delta.clone().with_gauges(book.totals()), now)?;
        Ok(self
            .rollup(
                Resolution::Minute,
                EVERYWHERE,
                floor_to(now, Resolution::Minute.step_ms()),
            )?
            .unwrap_or_default())
    }

    /// Forgets the gauges of rooms silent for too long ([`GaugeBook::expire`]); true when
    /// any went (everywhere's gauges changed).
    pub fn expire_gauges(&self, book: &mut GaugeBook, now: i64) -> Result<bool, StoreError> {
        let stale = book.expire(now);
        for room in &stale {
            self.sql.execute(
                "DELETE FROM gauges WHERE room = ?1",
                &[room.as_str().into()],
            )?;
        }
        Ok(!stale.is_empty())
    }

    /// Keeps a slow request, and only the latest [`SLOW_KEPT`].
    pub fn record_slow(&self, slow: &SlowRequest) -> Result<(), StoreError> {
        self.sql.execute(
            "INSERT INTO slow (at, data) VALUES (?1, ?2)",
            &[slow.at.into(), json(slow)?.into()],
        )?;
        self.sql.execute(
            "DELETE FROM slow WHERE id <= (SELECT MAX(id) FROM slow) - ?1",
            &[(SLOW_KEPT as i64).into()],
        )
    }

    /// The latest slow requests, newest first.
    pub fn slow(&self, limit: usize) -> Result<Vec<SlowRequest>, StoreError> {
        let rows = self.sql.query(
            "SELECT data FROM slow ORDER BY id DESC LIMIT ?1",
            &[(limit as i64).into()],
        )?;
        rows.iter().map(|row| row.json(0)).collect()
    }

    /// `room`'s series over `range` and its rollup over the whole range.
    pub fn series(
        &self,
        range: Range,
        room: &str,
        now: i64,
    ) -> Result<(Vec<super::Point>, Rollup), StoreError> {
        let res = range.points();
        let start = range.start(now, res);
        let rows = self.sql.query(
            "SELECT at, data FROM rollups WHERE res = ?1 AND room = ?2 AND at >= ?3 ORDER BY at",
            &[(res as i64).into(), room.into(), start.into()],
        )?;
        let mut periods = Vec::with_capacity(rows.len());
        let mut total = Rollup::default();
        for row in rows {
            let rollup: Rollup = row.json(1)?;
            total.merge(&rollup);
            periods.push((row.int(0)?, rollup));
        }
        let before = self.sql.query(
            "SELECT data FROM rollups WHERE res = ?1 AND room = ?2 AND at < ?3
             ORDER BY at DESC LIMIT 1",
            &[(res as i64).into(), room.into(), start.into()],
        )?;
        let before: Option<Rollup> = before.first().map(|row| row.json(0)).transpose()?;
        Ok((super::series(range, now, &periods, before.as_ref()), total))
    }

    /// Each room's rollup over `range` (one room's, if named), from the coarsest resolution
    /// that fits the range.
    pub fn room_totals(
        &self,
        range: Range,
        room: Option<&str>,
        now: i64,
    ) -> Result<BTreeMap<String, Rollup>, StoreError> {
        let res = range.totals();
        let start = range.start(now, res);
        let rows = match room {
            Some(room) => self.sql.query(
                "SELECT room, data FROM rollups WHERE res = ?1 AND room = ?2 AND at >= ?3",
                &[(res as i64).into(), room.into(), start.into()],
            )?,
            None => self.sql.query(
                "SELECT room, data FROM rollups WHERE res = ?1 AND at >= ?2 AND room != ''",
                &[(res as i64).into(), start.into()],
            )?,
        };
        let mut totals: BTreeMap<String, Rollup> = BTreeMap::new();
        for row in rows {
            let rollup: Rollup = row.json(1)?;
            totals.entry(row.text(0)?).or_default().merge(&rollup);
        }
        Ok(totals)
    }

    /// A page's numbers: everywhere's (with every room's line, vitals and slow requests) when
    /// `room` is `None`, else that room's alone.
    pub fn analytics(
        &self,
        range: Range,
        room: Option<&str>,
        book: &GaugeBook,
        now: i64,
    ) -> Result<Analytics, StoreError> {
        let (points, total) = self.series(range, room.unwrap_or(EVERYWHERE), now)?;
        let mut rooms: Vec<RoomLine> = self
            .room_totals(range, room, now)?
            .iter()
            .map(|(name, rollup)| RoomLine::of(name, rollup, range, book.room(name)))
            .collect();
        rooms.sort_by(|a, b| {
            (b.messages, b.events, b.connections).cmp(&(a.messages, a.events, a.connections))
        });
        rooms.truncate(LINES_MAX);
        let everywhere = room.is_none();
        Ok(Analytics {
            range: Some(range),
            step_ms: range.points().step_ms(),
            now,
            source: Source::DurableObject,
            warning: None,
            points,
            rooms,
            current: match room {
                None => book.totals(),
                Some(room) => book.room(room).unwrap_or_default(),
            },
            vitals: everywhere.then(|| VitalsSummary::of(&total)),
            slow: if everywhere {
                self.slow(SLOW_LISTED)?
            } else {
                Vec::new()
            },
        })
    }

    /// Closed minutes not yet exported (before `before`), oldest first: `(at, room, rollup)`.
    pub fn unexported(&self, before: i64) -> Result<Vec<(i64, String, Rollup)>, StoreError> {
        let rows = self.sql.query(
            "SELECT at, room, data FROM rollups WHERE exported = 0 AND at < ?1 AND res = 1
             ORDER BY at LIMIT ?2",
            &[before.into(), (EXPORT_BATCH as i64).into()],
        )?;
        rows.iter()
            .map(|row| Ok((row.int(0)?, row.text(1)?, row.json(2)?)))
            .collect()
    }

    /// Marks a minute rollup exported.
    pub fn mark_exported(&self, at: i64, room: &str) -> Result<(), StoreError> {
        self.sql.execute(
            "UPDATE rollups SET exported = 1 WHERE res = 1 AND room = ?1 AND at = ?2",
            &[room.into(), at.into()],
        )
    }

    /// Deletes rollups past their resolution's keeping time.
    pub fn prune(&self, now: i64) -> Result<(), StoreError> {
        for res in Resolution::ALL {
            self.sql.execute(
                "DELETE FROM rollups WHERE res = ?1 AND at < ?2",
                &[(res as i64).into(), SqlValue::from(now - res.kept_ms())],
            )?;
        }
        Ok(())
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::super::{Phase, Point, RoomReport, DAY_MS, HOUR_MS, MINUTE_MS};
    use super::*;
    use crate::room::store::sqlite::Sqlite;

    fn store() -> MetricsStore<Sqlite> {
        MetricsStore::open(Sqlite::memory().expect("sqlite")).expect("schema")
    }

    fn report(room: &str, messages: u64, connections: u64) -> RoomReport {
        let mut counts = Rollup {
            messages,
            events: messages,
            rows_read: 10 * messages,
            ..Rollup::default()
        };
        counts.broadcast_us.record(40);
        RoomReport {
            room: room.into(),
            counts,
            gauges: Gauges {
                connections,
                users: connections,
                db_bytes: 8192,
                ..Gauges::default()
            },
        }
    }

    const T0: i64 = 1_700_000_000_000;

    #[test]
    fn batches_add_up_per_room_and_everywhere_with_connections_summed_over_rooms() {
        let store = store();
        let mut book = store.gauges().unwrap();
        store
            .record_report(&report("a", 3, 2), &mut book, T0)
            .unwrap();
        store
            .record_report(&report("b", 4, 5), &mut book, T0 + 1_000)
            .unwrap();
        let minute = store
            .record_report(&report("a", 2, 1), &mut book, T0 + 2_000)
            .unwrap();
        assert_eq!(minute.messages, 9);
        assert_eq!(minute.last.map(|g| (g.connections, g.rooms)), Some((6, 2)));
        assert_eq!(minute.peak.map(|g| g.connections), Some(7));

        let page = store
            .analytics(Range::Day, None, &book, T0 + 3_000)
            .unwrap();
        assert_eq!(page.points.len(), 24 * 60);
        assert_eq!(page.points.iter().map(|p| p.messages).sum::<u64>(), 9);
        assert_eq!(page.current.connections, 6);
        let a = page.rooms.iter().find(|l| l.room == "a").expect("room a");
        assert_eq!((a.messages, a.connections, a.peak_connections), (5, 1, 2));
        assert_eq!(a.rows_read, 50);
        assert_eq!(a.db_bytes, 8192);
        assert_eq!(a.broadcast_us.p50, Some(40));
        assert_eq!(page.rooms[0].room, "a", "busiest first");
        assert!(page.vitals.is_some());

        // A room's owner sees that room alone.
        let mine = store
            .analytics(Range::Day, Some("b"), &book, T0 + 3_000)
            .unwrap();
        assert_eq!(mine.points.iter().map(|p| p.messages).sum::<u64>(), 4);
        assert_eq!(mine.rooms.len(), 1);
        assert_eq!(mine.current.connections, 5);
        assert!(mine.vitals.is_none() && mine.slow.is_empty());
    }

    #[test]
    fn gauges_survive_a_restart_and_rooms_that_went_silent_stop_counting() {
        let store = store();
        let mut book = store.gauges().unwrap();
        store
            .record_report(&report("a", 1, 2), &mut book, T0)
            .unwrap();
        store
            .record_report(
                &report("b", 1, 3),
                &mut book,
                T0 + super::super::HEARTBEAT_MS,
            )
            .unwrap();
        // The object restarts: its book is read back.
        let mut book = store.gauges().unwrap();
        assert_eq!(book.totals().connections, 5);
        let later = T0 + super::super::GAUGE_TTL_MS + 1;
        assert!(store.expire_gauges(&mut book, later).unwrap());
        assert_eq!(book.totals().connections, 3);
        assert_eq!(store.gauges().unwrap().totals().connections, 3);
        // A room whose last socket closed leaves the book.
        store
            .record_report(&report("b", 0, 0), &mut book, later)
            .unwrap();
        assert_eq!(store.gauges().unwrap().totals().connections, 0);
    }

    #[test]
    fn thirty_days_read_hourly_points_and_daily_room_totals() {
        let store = store();
        let mut book = GaugeBook::default();
        for day in 0..3 {
            store
                .record_report(&report("a", 10, 1), &mut book, T0 - day * DAY_MS)
                .unwrap();
        }
        let page = store.analytics(Range::Month, None, &book, T0).unwrap();
        assert_eq!(page.step_ms, HOUR_MS);
        assert_eq!(page.points.len(), 30 * 24);
        assert_eq!(page.points.iter().map(|p| p.messages).sum::<u64>(), 30);
        assert_eq!(page.rooms[0].messages, 30);
        // The last 24 hours hold one of the three days.
        let day = store.analytics(Range::Day, None, &book, T0).unwrap();
        assert_eq!(day.points.iter().map(|p| p.messages).sum::<u64>(), 10);
        assert_eq!(day.rooms[0].messages, 10);
    }

    #[test]
    fn closed_minutes_are_exported_once_and_old_rollups_pruned() {
        let store = store();
        let mut book = GaugeBook::default();
        store
            .record_report(&report("a", 1, 1), &mut book, T0)
            .unwrap();
        let now = T0 + MINUTE_MS;
        let open_minute = floor_to(now, MINUTE_MS);
        store
            .record_report(&report("a", 1, 1), &mut book, now)
            .unwrap();
        let pending = store.unexported(open_minute).unwrap();
        // The closed minute, for the room and everywhere; not the minute still open.
        assert_eq!(pending.len(), 2);
        assert!(pending.iter().all(|(at, _, _)| *at < open_minute));
        for (at, room, _) in &pending {
            store.mark_exported(*at, room).unwrap();
        }
        assert!(store.unexported(open_minute).unwrap().is_empty());
        assert_eq!(store.unexported(open_minute + MINUTE_MS).unwrap().len(), 2);

        store.prune(T0 + 2 * DAY_MS).unwrap();
        let minute = store
            .rollup(Resolution::Minute, "a", floor_to(T0, MINUTE_MS))
            .unwrap();
        assert!(minute.is_none(), "minutes are kept a day");
        let hour = store
            .rollup(Resolution::Hour, "a", floor_to(T0, HOUR_MS))
            .unwrap();
        assert!(hour.is_some(), "hours are kept 30 days");
    }

    #[test]
    fn only_the_latest_slow_requests_are_kept_newest_first() {
        let store = store();
        for i in 0..(SLOW_KEPT as i64 + 20) {
            store
                .record_slow(&SlowRequest {
                    at: T0 + i,
                    method: "GET".into(),
                    route: "/api/rooms".into(),
                    status: 200,
                    ms: 600.0,
                    phases: vec![Phase {
                        name: "session".into(),
                        ms: 12.0,
                    }],
                })
                .unwrap();
        }
        let listed = store.slow(1_000).unwrap();
        assert_eq!(listed.len(), SLOW_KEPT);
        assert_eq!(listed[0].at, T0 + SLOW_KEPT as i64 + 19);
    }

    #[test]
    fn accounts_and_vitals_count_for_everywhere_only() {
        let store = store();
        let book = GaugeBook::default();
        let vitals = super::super::VitalsReport {
            lcp_ms: Some(1_500.0),
            ..Default::default()
        };
        store
            .record_everywhere(
                &Rollup {
                    accounts: 1,
                    ..Rollup::default()
                },
                &book,
                T0,
            )
            .unwrap();
        store
            .record_everywhere(&vitals.rollup(), &book, T0)
            .unwrap();
        let page = store.analytics(Range::Hour, None, &book, T0).unwrap();
        assert_eq!(
            page.points.iter().map(|p: &Point| p.accounts).sum::<u64>(),
            1
        );
        assert_eq!(page.vitals.map(|v| v.lcp_ms.samples), Some(1));
        assert!(page.rooms.is_empty());
    }
}
