//! The room's schema, created and migrated in one place and versioned by
//! `meta.schema_version`. Migrations are only ever appended: a room stored by any earlier
//! version opens with every step after its own applied in order.

/// Schema migrations, applied in order; index + 1 is the version they bring the room to.
pub const MIGRATIONS: &[&str] = &[
    // v1: the event log, the current state of messages, and the edit history.
    "CREATE TABLE events (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        author_id TEXT NOT NULL,
        client_id TEXT NOT NULL,
        target INTEGER,
        body TEXT NOT NULL
    );
    CREATE UNIQUE INDEX events_by_mutation ON events (author_id, client_id);
    CREATE INDEX events_by_target ON events (target) WHERE target IS NOT NULL;
    CREATE TABLE messages (
        seq INTEGER PRIMARY KEY,
        at INTEGER NOT NULL,
        author TEXT NOT NULL,
        client_id TEXT NOT NULL,
        text TEXT NOT NULL,
        edited_at INTEGER,
        deleted INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE message_versions (
        seq INTEGER NOT NULL,
        replaced_at INTEGER NOT NULL,
        text TEXT NOT NULL,
        PRIMARY KEY (seq, replaced_at)
    );",
    // v2: the assistant. An answer is a message with its assistant state as JSON; the state
    // is also a column so the few unfinished answers are found by index on wake.
    "ALTER TABLE messages ADD COLUMN answer TEXT;
    ALTER TABLE messages ADD COLUMN answer_state TEXT;
    CREATE INDEX messages_unfinished ON messages (answer_state)
        WHERE answer_state IN ('queued', 'streaming');",
    // v3 (rooms): threads, reactions, pins, members, read positions, mentions, and full-text
    // search. The FTS5 index reads its text from `messages` (external content, so the text is
    // stored once) and triggers keep it true on every change of `messages.text`, from any
    // code path: an edit replaces the indexed words, a delete (text set to '') removes them.
    "ALTER TABLE messages ADD COLUMN author_id TEXT;
    UPDATE messages SET author_id = json_extract(author, '$.id');
    ALTER TABLE messages ADD COLUMN thread INTEGER;
    ALTER TABLE messages ADD COLUMN in_main INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE messages ADD COLUMN reply_count INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN last_reply_at INTEGER;
    ALTER TABLE messages ADD COLUMN reactions TEXT;
    ALTER TABLE messages ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN flags INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX messages_by_thread ON messages (thread, seq) WHERE thread IS NOT NULL;
    CREATE INDEX messages_pinned ON messages (seq) WHERE pinned = 1;
    CREATE TABLE members (
        user_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        last_seen INTEGER NOT NULL
    );
    CREATE INDEX members_by_last_seen ON members (last_seen);
    CREATE TABLE reads (user_id TEXT PRIMARY KEY, seq INTEGER NOT NULL);
    CREATE TABLE mentions (
        user_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        PRIMARY KEY (user_id, seq)
    ) WITHOUT ROWID;
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        text, content = 'messages', content_rowid = 'seq',
        tokenize = 'unicode61 remove_diacritics 2'
    );
    INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
    CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
    END;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
        INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
    END;",
    // roles: who belongs to the room and how (role, ban, mute; `members` above only tracks
    // names and last visits for mentions), its invite links, and the audit log.
    "CREATE TABLE member_roles (
        user_id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        banned INTEGER NOT NULL DEFAULT 0,
        muted_until INTEGER,
        joined_at INTEGER NOT NULL,
        renamed_at INTEGER
    );
    CREATE INDEX member_roles_by_rename ON member_roles (renamed_at) WHERE renamed_at IS NOT NULL;
    CREATE TABLE invites (
        token TEXT PRIMARY KEY,
        created_by TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        max_uses INTEGER,
        uses INTEGER NOT NULL DEFAULT 0,
        revoked_at INTEGER
    );
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        actor_id TEXT NOT NULL,
        actor_name TEXT NOT NULL,
        action TEXT NOT NULL,
        target_id TEXT,
        detail TEXT NOT NULL
    );",
    // watch: a deleted message's mentions, for the watchers of unread counts.
    "CREATE INDEX mentions_by_seq ON mentions (seq);",
    // mentions by name: a mention looks up only the members it could name (their lowercased
    // name, `mentions::name_key`), not every member of the room. Rows from before get SQLite's
    // `lower` (ASCII) until the member's next join writes the full key.
    "ALTER TABLE members ADD COLUMN name_key TEXT;
    UPDATE members SET name_key = lower(name);
    CREATE INDEX members_by_name_key ON members (name_key);",
    // network bans (security issue, item 3): the network (a keyed hash the Worker computes;
    // never an address) a guest member last connected from, and the timed bans of networks
    // that a moderator's ban of a guest makes. One row per (network, banned user), so lifting
    // one ban leaves another guest's ban of the same network in force.
    "ALTER TABLE member_roles ADD COLUMN network TEXT;
    CREATE TABLE network_bans (
        network TEXT NOT NULL,
        user_id TEXT NOT NULL,
        until_ms INTEGER NOT NULL,
        PRIMARY KEY (network, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX network_bans_by_user ON network_bans (user_id);",
    // The message counter is no longer written with every message (a third write per message
    // on the busiest path): `message_count` counts the messages up to `message_count_upto`,
    // and reading it adds the few stored since (a range of the primary key).
    "INSERT INTO meta (key, value)
        SELECT 'message_count_upto', CAST(COALESCE(MAX(seq), 0) AS TEXT) FROM messages WHERE true
        ON CONFLICT (key) DO UPDATE SET value = excluded.value;",
    // The search index is written in batches (`SqlStore::index_pending`), not by a trigger on
    // every message: each write of an FTS5 index ends as a new index segment when its
    // transaction commits, and a room commits once per message. Messages after
    // `fts_indexed_upto` are not in the index yet, so an edit or delete of one leaves the index
    // alone (the batch reads the current text); every search indexes what is pending first.
    "DROP TRIGGER IF EXISTS messages_fts_insert;
    DROP TRIGGER IF EXISTS messages_fts_update;
    DROP TRIGGER IF EXISTS messages_fts_delete;
    INSERT INTO meta (key, value)
        SELECT 'fts_indexed_upto', CAST(COALESCE(MAX(seq), 0) AS TEXT) FROM messages WHERE true
        ON CONFLICT (key) DO UPDATE SET value = excluded.value;
    CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages
    WHEN old.seq <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'fts_indexed_upto')
    BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
        INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
    END;
    CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
    WHEN old.seq <= (SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'fts_indexed_upto')
    BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
    END;",
    // How recent a member's stored name is (`MemberRecord::name_as_of`): a connect that read
    // the name before a rename reached the room must not undo it.
    "ALTER TABLE member_roles ADD COLUMN name_as_of INTEGER;",
    // Private answers ("catch me up", thread summaries): never events, so never replayed or
    // broadcast; kept a day so an asker who reloads mid-answer still gets it.
    "CREATE TABLE private_answers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id TEXT NOT NULL,
        at INTEGER NOT NULL,
        state TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX private_answers_by_user ON private_answers (user_id, at);
    CREATE INDEX private_answers_unfinished ON private_answers (state)
        WHERE state IN ('queued', 'streaming');",
    // Attachments. An upload is announced, then its bytes stored (in R2, by the Worker), then
    // attached to one message in the same transaction that stores the message, so a message
    // never names an upload the room could sweep. `gone_at` marks rows whose objects are to be
    // deleted (their message was deleted, or they were never attached within a day); the row
    // goes once the object has. A message keeps its files as JSON beside its text (what pages
    // and events carry), with `tags` holding its images' labels for `tag:` search.
    "CREATE TABLE uploads (
        id TEXT PRIMARY KEY,
        uploader TEXT NOT NULL,
        client_id TEXT NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        hints TEXT,
        attachment TEXT,
        thumb INTEGER NOT NULL DEFAULT 0,
        kind TEXT,
        message INTEGER,
        position INTEGER,
        gone_at INTEGER
    );
    CREATE UNIQUE INDEX uploads_by_client ON uploads (uploader, client_id);
    CREATE INDEX uploads_by_uploader ON uploads (uploader, created_at);
    CREATE INDEX uploads_by_message ON uploads (message, position) WHERE message IS NOT NULL;
    CREATE INDEX uploads_waiting ON uploads (created_at) WHERE message IS NULL;
    CREATE INDEX uploads_gone ON uploads (gone_at) WHERE gone_at IS NOT NULL;
    ALTER TABLE messages ADD COLUMN attachments TEXT;
    ALTER TABLE messages ADD COLUMN tags TEXT;",
];

/// Splits a migration into statements at `;`, keeping a trigger's `BEGIN … END` body (which
/// has its own semicolons) in one statement.
pub fn statements(migration: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for piece in migration.split(';') {
        current.push_str(piece);
        let open_trigger =
            current.contains("CREATE TRIGGER") && !current.trim_end().ends_with("END");
        if open_trigger {
            current.push(';');
            continue;
        }
        if !current.trim().is_empty() {
            out.push(std::mem::take(&mut current));
        }
        current.clear();
    }
    out
}
