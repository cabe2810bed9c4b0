-- Live analytics (issue 12): each closed minute's rollup, per room and for everywhere
-- (room = ''), written by the Metrics Durable Object. The local stand-in for Workers Analytics
-- Engine, which production writes instead (the same minutes, as data points), so the numbers
-- can be queried with SQL in both places (`wrangler d1 execute DB --local --command …`).
-- Counts are per minute; connections, users and rooms are the minute's peaks; latencies are
-- the assistant's, in ms; `data` is the whole rollup as JSON (histograms included), the same
-- shape the Metrics object keeps.
CREATE TABLE metrics_minutes (
    minute INTEGER NOT NULL,          -- the minute's start, ms since the epoch
    room TEXT NOT NULL,               -- the room's slug; '' for everywhere
    messages INTEGER NOT NULL DEFAULT 0,
    answers INTEGER NOT NULL DEFAULT 0,
    answers_failed INTEGER NOT NULL DEFAULT 0,
    up INTEGER NOT NULL DEFAULT 0,
    down INTEGER NOT NULL DEFAULT 0,
    accounts INTEGER NOT NULL DEFAULT 0,
    events INTEGER NOT NULL DEFAULT 0,
    connects INTEGER NOT NULL DEFAULT 0,
    connections INTEGER NOT NULL DEFAULT 0,
    users INTEGER NOT NULL DEFAULT 0,
    rooms INTEGER NOT NULL DEFAULT 0,
    rows_read INTEGER NOT NULL DEFAULT 0,
    rows_written INTEGER NOT NULL DEFAULT 0,
    first_token_p50 INTEGER,
    first_token_p99 INTEGER,
    total_p50 INTEGER,
    total_p99 INTEGER,
    data TEXT NOT NULL,
    PRIMARY KEY (minute, room)
);

-- One room's history.
CREATE INDEX metrics_minutes_by_room ON metrics_minutes (room, minute);
