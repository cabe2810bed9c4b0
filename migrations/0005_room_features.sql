-- Who has joined which room (written by the room on a member's first join). Cross-room search
-- and the room list's unread counts ask only the rooms a user belongs to.
CREATE TABLE room_members (
    slug TEXT NOT NULL,
    user_id TEXT NOT NULL,
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (slug, user_id)
);

CREATE INDEX room_members_by_user ON room_members (user_id, slug);
