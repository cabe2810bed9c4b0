-- Profiles, room membership index, private rooms and the global audit log. Accounts, global
-- roles and disabling live in 0002 (users).

-- Everything a user says about themselves, and what they ask of the assistant. `name` is the
-- display name as last seen (an account's own name stays in users.name; guests have no users
-- row, so their profile card reads it here).
CREATE TABLE profiles (
    user_id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    avatar_key TEXT,
    bio TEXT NOT NULL DEFAULT '',
    pronouns TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT '',
    time_zone TEXT NOT NULL DEFAULT '',
    language TEXT NOT NULL DEFAULT '',
    accent TEXT NOT NULL DEFAULT '',
    theme TEXT NOT NULL DEFAULT 'system',
    ai_tone TEXT NOT NULL DEFAULT '',
    ai_interests TEXT NOT NULL DEFAULT '',
    ai_instructions TEXT NOT NULL DEFAULT '',
    ai_language TEXT NOT NULL DEFAULT '',
    ai_memory INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL
);

-- Invite-only rooms are hidden from the directory but for their members.
ALTER TABLE rooms ADD COLUMN private INTEGER NOT NULL DEFAULT 0;

-- Which rooms a user has joined is `room_members` (0005): it also hides private rooms from
-- the directory of non-members and finds the rooms to tell about a profile change. Roles,
-- bans and mutes live in each room's own storage (the room decides at connect time).

-- Global privileged actions (admin: role changes, disabling users). Each room keeps its own.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    actor_id TEXT NOT NULL,
    actor_name TEXT NOT NULL,
    action TEXT NOT NULL,
    target_id TEXT,
    detail TEXT NOT NULL DEFAULT ''
);
