-- The assistant. Each room says when the assistant answers there; every finished answer
-- version and every rating is recorded here for the admins' aggregates (per room and model).
ALTER TABLE rooms ADD COLUMN assistant TEXT NOT NULL DEFAULT 'mention';

CREATE TABLE ai_answers (
    id INTEGER PRIMARY KEY,
    room TEXT NOT NULL,
    target INTEGER NOT NULL,
    asker TEXT NOT NULL,
    state TEXT NOT NULL,          -- done | stopped | failed
    provider TEXT NOT NULL,
    model TEXT NOT NULL,
    tokens_in INTEGER NOT NULL,
    tokens_out INTEGER NOT NULL,
    first_token_ms INTEGER NOT NULL,
    total_ms INTEGER NOT NULL,
    error TEXT,                   -- error code when failed
    at INTEGER NOT NULL
);
CREATE INDEX ai_answers_by_model ON ai_answers (model, room);

-- One vote per user and answer (changeable); the reason is seen only by admins.
CREATE TABLE ai_feedback (
    room TEXT NOT NULL,
    target INTEGER NOT NULL,
    user_id TEXT NOT NULL,
    vote INTEGER NOT NULL,        -- 1 up, -1 down, 0 withdrawn
    reason TEXT,
    model TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (room, target, user_id)
);
CREATE INDEX ai_feedback_recent_low ON ai_feedback (vote, at DESC);

-- What the assistant learned about users who opted in; they can view and delete it.
CREATE TABLE ai_memory (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL,
    fact TEXT NOT NULL,
    room TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX ai_memory_by_user ON ai_memory (user_id, id);

-- Each user's private 1:1 room with the assistant (created on first use).
CREATE TABLE ai_rooms (
    user_id TEXT PRIMARY KEY,
    slug TEXT NOT NULL
);
