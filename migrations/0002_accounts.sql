-- Accounts and server-side sessions. Times are ms since the epoch, like the room directory.

-- A user: the id is the guest id the person had before their first sign-in, so the messages
-- they wrote as a guest stay theirs.
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT,
    email_verified INTEGER NOT NULL DEFAULT 0,
    role TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('admin', 'user')),
    -- Set: the account is disabled (no sign-in; its sessions were ended).
    disabled_at INTEGER,
    created_at INTEGER NOT NULL
);

CREATE INDEX users_by_verified_email ON users (email) WHERE email_verified = 1;

-- A provider account linked to a user ('github', 'google', 'apple', 'discord', 'local').
CREATE TABLE identities (
    provider TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    email TEXT,
    email_verified INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (provider, subject)
);

CREATE INDEX identities_by_user ON identities (user_id);
CREATE INDEX identities_by_verified_email ON identities (email) WHERE email_verified = 1;

-- A signed-in browser. `id` is the SHA-256 (hex) of the random token in the cookie, so a leak
-- of this table does not leak usable cookies.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    idle_expires_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    user_agent TEXT,
    place TEXT,
    revoked_at INTEGER
);

CREATE INDEX sessions_by_user ON sessions (user_id, last_seen_at DESC);

-- The rooms a session opened a socket to (written at each upgrade), so ending a session or
-- disabling a user knows which room objects to tell to close its sockets.
CREATE TABLE session_rooms (
    session_id TEXT NOT NULL,
    room TEXT NOT NULL,
    PRIMARY KEY (session_id, room)
);
