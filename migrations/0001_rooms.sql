-- The room directory. Each room's messages live in its own Durable Object; this table only
-- lists rooms, and each room writes its count and last activity here in batches.
CREATE TABLE rooms (
    slug TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    topic TEXT NOT NULL DEFAULT '',
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    last_activity INTEGER,
    message_count INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX rooms_by_activity ON rooms (COALESCE(last_activity, created_at) DESC);
